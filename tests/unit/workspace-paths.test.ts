import { describe, expect, it } from 'vitest';
import { isInside, parseWorkspacePath } from '../../server/workspace/paths.js';

/** Paths as a router hands them over (decoded once), each with the error code it must get. */
const hostile: Array<[string, string]> = [
  ['..', 'ERR_PATH_OUTSIDE_WORKSPACE'],
  ['../etc/passwd', 'ERR_PATH_OUTSIDE_WORKSPACE'],
  ['a/../../etc/passwd', 'ERR_PATH_OUTSIDE_WORKSPACE'],
  ['a/..', 'ERR_PATH_OUTSIDE_WORKSPACE'],
  ['./../x', 'ERR_PATH_OUTSIDE_WORKSPACE'],
  ['a/b/../../..', 'ERR_PATH_OUTSIDE_WORKSPACE'],
  ['/etc/passwd', 'ERR_PATH_OUTSIDE_WORKSPACE'],
  ['//etc/passwd', 'ERR_PATH_OUTSIDE_WORKSPACE'],
  ['/home/user/file.txt', 'ERR_PATH_OUTSIDE_WORKSPACE'],
  ['..\\etc\\passwd', 'ERR_INVALID_PATH'],
  ['a\\b', 'ERR_INVALID_PATH'],
  ['C:\\Windows', 'ERR_INVALID_PATH'],
  ['a\0b', 'ERR_INVALID_PATH'],
  ['file.txt\0.png', 'ERR_INVALID_PATH'],
  // Encoded twice: the router decoded once, these are what is left.
  ['%2e%2e/etc/passwd', 'ERR_INVALID_PATH'],
  ['%2E%2E%2Fetc', 'ERR_INVALID_PATH'],
  ['..%2fetc', 'ERR_INVALID_PATH'],
  ['a%5c..%5c..', 'ERR_INVALID_PATH'],
  ['a%00', 'ERR_INVALID_PATH'],
  [`${'a'.repeat(256)}`, 'ERR_INVALID_PATH'],
  [`${'é'.repeat(128)}`, 'ERR_INVALID_PATH'],
  [`${'abcdefgh/'.repeat(500)}`, 'ERR_INVALID_PATH'],
  // The server's own work in progress.
  ['.upload-0123456789abcdef01234567.part', 'ERR_INVALID_PATH'],
  ['a/.extract-0123456789abcdef01234567/x', 'ERR_INVALID_PATH'],
  ['.copy-0123456789abcdef01234567', 'ERR_INVALID_PATH'],
];

describe('parseWorkspacePath', () => {
  it.each(hostile)('refuses %j with %s', (raw, code) => {
    expect(() => parseWorkspacePath(raw)).toThrow(expect.objectContaining({ code, statusCode: 400 }));
  });

  it.each([
    ['', '.', []],
    ['.', '.', []],
    ['./', '.', []],
    ['a.txt', 'a.txt', ['a.txt']],
    ['dir/', 'dir', ['dir']],
    ['a//b/./c', 'a/b/c', ['a', 'b', 'c']],
    ['...', '...', ['...']],
    ['..a/b..', '..a/b..', ['..a', 'b..']],
    ['.hidden', '.hidden', ['.hidden']],
    ['100% done.txt', '100% done.txt', ['100% done.txt']],
    ['name with spaces/ünïcödé ✓.txt', 'name with spaces/ünïcödé ✓.txt', ['name with spaces', 'ünïcödé ✓.txt']],
    [`${'a'.repeat(255)}`, 'a'.repeat(255), ['a'.repeat(255)]],
  ])('accepts %j as %j', (raw, display, segments) => {
    expect(parseWorkspacePath(raw)).toEqual({ display, segments });
  });

  it('names the problem in its message', () => {
    expect(() => parseWorkspacePath('../x')).toThrow(/outside the workspace/);
    expect(() => parseWorkspacePath('a\\b')).toThrow(/backslash/);
    expect(() => parseWorkspacePath('a\0b')).toThrow(/NUL/);
    expect(() => parseWorkspacePath('x/'.repeat(3000))).toThrow(/longer than 4095 bytes/);
  });

  it('keeps messages short for huge paths', () => {
    try {
      parseWorkspacePath('x/'.repeat(3000));
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message.length).toBeLessThan(400);
    }
  });
});

describe('isInside', () => {
  it.each([
    ['/home/user', '/home/user', true],
    ['/home/user', '/home/user/a', true],
    ['/home/user', '/home/user/..a', true],
    ['/home/user', '/home/user2', false],
    ['/home/user', '/home/user2/secret', false],
    ['/home/user', '/home/use', false],
    ['/home/user', '/home', false],
    ['/home/user', '/etc/passwd', false],
    ['/', '/anything', true],
  ])('isInside(%j, %j) is %s', (root, target, expected) => {
    expect(isInside(root, target)).toBe(expected);
  });
});
