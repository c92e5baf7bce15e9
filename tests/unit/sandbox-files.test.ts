import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalFiles, permissionsString, toFileError } from '../../server/process-host/files.js';
import { ProtocolError, parseEntry, parseHostEvent, parseHostRequest } from '../../server/process-host/protocol.js';
import { SandboxFileError } from '../../server/sandbox-files/types.js';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('permissionsString', () => {
  it('writes modes as ls -l does, special bits included', () => {
    expect(permissionsString(0o100644, 'file')).toBe('-rw-r--r--');
    expect(permissionsString(0o040755, 'directory')).toBe('drwxr-xr-x');
    expect(permissionsString(0o120777, 'symlink')).toBe('lrwxrwxrwx');
    expect(permissionsString(0o041777, 'directory')).toBe('drwxrwxrwt');
    expect(permissionsString(0o041776, 'directory')).toBe('drwxrwxrwT');
    expect(permissionsString(0o104755, 'file')).toBe('-rwsr-xr-x');
    expect(permissionsString(0o102644, 'file')).toBe('-rw-r-Sr--');
    expect(permissionsString(0o000000, 'file')).toBe('----------');
    expect(permissionsString(0o010600, 'other')).toBe('prw-------');
    expect(permissionsString(0o140755, 'other')).toBe('srwxr-xr-x');
    expect(permissionsString(0o020620, 'other')).toBe('crw--w----');
  });
});

describe('toFileError', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: something`), { code });

  it('keeps our errno names and says what failed on which path', () => {
    const error = toFileError(errno('ENOENT'), 'read', '/a/b');
    expect(error).toBeInstanceOf(SandboxFileError);
    expect(error.code).toBe('ENOENT');
    expect(error.message).toBe("read '/a/b': no such file or directory");
    expect(toFileError(errno('ENOTEMPTY'), 'move', '/x').code).toBe('ENOTEMPTY');
  });

  it('maps relatives to ours, and anything else to EIO with its name', () => {
    expect(toFileError(errno('EDQUOT'), 'write', '/x').code).toBe('ENOSPC');
    expect(toFileError(errno('EMFILE'), 'read', '/x').code).toBe('ELIMIT');
    const unknown = toFileError(errno('ESTALE'), 'stat', '/x');
    expect(unknown.code).toBe('EIO');
    expect(unknown.message).toContain('ESTALE');
    expect(toFileError(new Error('plain'), 'stat', '/x').code).toBe('EIO');
  });

  it('passes a SandboxFileError through unchanged', () => {
    const original = new SandboxFileError('ELIMIT', 'too many');
    expect(toFileError(original, 'list', '/x')).toBe(original);
  });
});

describe('file requests and events on the wire', () => {
  it('accepts each call with its fields', () => {
    expect(parseHostRequest(json({ op: 'fs', call: 'stat', path: '/a', extra: 1 }))).toEqual({ op: 'fs', call: 'stat', path: '/a' });
    expect(parseHostRequest(json({ op: 'fs', call: 'move', source: 'a', destination: 'b' }))).toEqual({
      op: 'fs',
      call: 'move',
      source: 'a',
      destination: 'b',
    });
    expect(parseHostRequest(json({ op: 'fs', call: 'list', path: '.', depth: 3 }))).toMatchObject({ depth: 3 });
    expect(parseHostRequest(json({ op: 'fs', call: 'watch', path: '.', recursive: true }))).toMatchObject({ recursive: true });
    expect(parseHostRequest(json({ op: 'fs_end' }))).toEqual({ op: 'fs_end' });
  });

  it.each([
    ['an unknown call', { op: 'fs', call: 'chown', path: '/a' }, /unknown call/],
    ['no path', { op: 'fs', call: 'stat' }, /path must be a path/],
    ['an empty path', { op: 'fs', call: 'read', path: '' }, /path must be a path/],
    ['NUL in a path', { op: 'fs', call: 'write', path: 'a\0b' }, /no NUL/],
    ['a path too long', { op: 'fs', call: 'stat', path: 'a'.repeat(4097) }, /1\.\.4096/],
    ['a numeric destination', { op: 'fs', call: 'move', source: 'a', destination: 5 }, /destination must be a path/],
    ['a fractional depth', { op: 'fs', call: 'list', path: '.', depth: 1.5 }, /depth/],
    ['a depth too deep', { op: 'fs', call: 'list', path: '.', depth: 5000 }, /depth/],
    ['recursive as a string', { op: 'fs', call: 'watch', path: '.', recursive: 'yes' }, /recursive must be a boolean/],
  ])('refuses %s', (_what, message, reason) => {
    expect(() => parseHostRequest(json(message))).toThrow(ProtocolError);
    expect(() => parseHostRequest(json(message))).toThrow(reason);
  });

  const entry = {
    name: 'a.txt',
    type: 'file',
    path: '/w/a.txt',
    size: 3,
    mode: 0o644,
    permissions: '-rw-r--r--',
    owner: 'user',
    group: 'user',
    modifiedMs: 1.5,
  };

  it('checks every field of an entry from the host', () => {
    expect(parseEntry({ ...entry, symlinkTarget: 'b', unknown: true })).toEqual({ ...entry, symlinkTarget: 'b' });
    for (const broken of [
      { ...entry, type: 'fifo' },
      { ...entry, size: -1 },
      { ...entry, size: 1.5 },
      { ...entry, mode: 0o10000 },
      { ...entry, permissions: 'rw-r--r--' },
      { ...entry, owner: 'x'.repeat(300) },
      { ...entry, path: '' },
      { ...entry, modifiedMs: 'yesterday' },
      { ...entry, symlinkTarget: 3 },
      null,
      [entry],
    ])
      expect(() => parseEntry(broken), JSON.stringify(broken)).toThrow(ProtocolError);
  });

  it('checks the events of file calls', () => {
    expect(parseHostEvent(json({ ev: 'fs_result' }))).toEqual({ ev: 'fs_result' });
    expect(parseHostEvent(json({ ev: 'fs_entries', entries: [entry] }))).toEqual({ ev: 'fs_entries', entries: [entry] });
    expect(parseHostEvent(json({ ev: 'watch_event', type: 'chmod', name: 'a/b' }))).toEqual({
      ev: 'watch_event',
      type: 'chmod',
      name: 'a/b',
    });
    expect(parseHostEvent(json({ ev: 'fs_error', code: 'EACCES', message: 'no' }))).toEqual({
      ev: 'fs_error',
      code: 'EACCES',
      message: 'no',
    });
    expect(() => parseHostEvent(json({ ev: 'fs_error', code: 'EWHAT', message: 'no' }))).toThrow(ProtocolError);
    expect(() => parseHostEvent(json({ ev: 'watch_event', type: 'moved', name: 'a' }))).toThrow(ProtocolError);
    expect(() => parseHostEvent(json({ ev: 'fs_entries', entries: [{ ...entry, size: 'big' }] }))).toThrow(ProtocolError);
    expect(() => parseHostEvent(json({ ev: 'fs_opened' }))).toThrow(ProtocolError);
  });
});

describe('LocalFiles', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'local-files-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('resolves relative paths in the workspace and ~ in the home directory', async () => {
    mkdirSync(path.join(root, 'ws/sub'), { recursive: true });
    mkdirSync(path.join(root, 'home'));
    writeFileSync(path.join(root, 'home/.profile'), '');
    const files = new LocalFiles({ workspace: path.join(root, 'ws'), home: path.join(root, 'home') });
    expect(files.resolve('sub/../sub')).toBe(path.join(root, 'ws/sub'));
    expect(files.resolve('/etc/./hosts')).toBe('/etc/hosts');
    expect((await files.stat('~/.profile')).path).toBe(path.join(root, 'home/.profile'));
    expect(files.resolve('~other')).toBe(path.join(root, 'ws/~other'));
    expect(() => files.resolve('')).toThrow(/must not be empty/);
    expect(() => files.resolve('x\0')).toThrow(/NUL/);
  });

  it('fails a listing past its bound with ELIMIT, and a depth below 1 with EINVAL', async () => {
    mkdirSync(path.join(root, 'many/sub'), { recursive: true });
    for (let index = 0; index < 5; index++) writeFileSync(path.join(root, 'many/sub', `f${index}`), '');
    const files = new LocalFiles({ workspace: root, maxListEntries: 4 });
    expect(await files.list('many', 1)).toHaveLength(1);
    await expect(files.list('many', 2)).rejects.toMatchObject({ code: 'ELIMIT' });
    await expect(files.list('many', 0)).rejects.toMatchObject({ code: 'EINVAL' });
    // Exactly the bound is still a listing.
    expect(await new LocalFiles({ workspace: root, maxListEntries: 6 }).list('many', 2)).toHaveLength(6);
  });

  it('writes a file whose name is as long as names may be', async () => {
    const files = new LocalFiles({ workspace: root });
    const name = 'é'.repeat(127);
    expect(
      await files.write(
        name,
        (async function* () {
          yield Buffer.from('long');
        })(),
      ),
    ).toMatchObject({ name, size: 4 });
  });

  it('stops a listing when its signal is aborted', async () => {
    const files = new LocalFiles({ workspace: root });
    await expect(files.list('many', 3, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
  });
});
