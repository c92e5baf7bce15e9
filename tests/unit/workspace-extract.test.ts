import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ArchiveFormat } from '../../server/workspace/archive.js';
import { WorkspaceFiles } from '../../server/workspace/files.js';
import { snapshot } from '../helpers/tree.js';

let base: string;
let root: string;
let outside: string;
let scratch: string;
let files: WorkspaceFiles;

const MiB = 2 ** 20;
const at = (...parts: string[]) => path.join(root, ...parts);
const tar = (...args: string[]) => execFileSync('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function extract(raw: string, archive: string, format: ArchiveFormat = 'tar', limits: { entries?: number; bytes?: number } = {}) {
  return files.extract(raw, createReadStream(archive), {
    format,
    maxBytes: 1024 * MiB,
    maxEntries: limits.entries ?? 100_000,
    maxExtractBytes: limits.bytes ?? 512 * MiB,
  });
}

/** A fresh source directory for building one archive. */
async function source(): Promise<string> {
  return mkdtemp(path.join(scratch, 'src-'));
}

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'workspace-extract-'));
  root = path.join(base, 'ws');
  outside = path.join(base, 'outside');
  scratch = path.join(base, 'scratch');
  await mkdir(root);
  await mkdir(outside);
  await mkdir(scratch);
  await writeFile(path.join(outside, 'secret.txt'), 'outside secret');
  files = new WorkspaceFiles(root);
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('extract', () => {
  it.each(['tar', 'tar.gz'] as const)(
    'unpacks what GNU tar packed (%s): bytes, modes, empty dirs, links, Unicode and long names',
    async (format) => {
      const src = await source();
      await mkdir(path.join(src, 'empty/nested'), { recursive: true });
      await mkdir(path.join(src, 'data'));
      await writeFile(path.join(src, 'data/blob.bin'), randomBytes(3 * MiB + 5));
      await writeFile(path.join(src, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
      await writeFile(path.join(src, '\u00e9t\u00e9 \u6587\u5b57 \ud83d\ude80.txt'), 'unicode');
      await mkdir(path.join(src, 'd'.repeat(150)));
      await writeFile(path.join(src, 'd'.repeat(150), `${'n'.repeat(240)}.txt`), 'long');
      await symlink('data/blob.bin', path.join(src, 'link'));
      const archive = path.join(scratch, `tree.${format}`);
      tar(format === 'tar' ? '-cf' : '-czf', archive, '-C', src, '.');
      const result = await extract('unpacked/here', archive, format);
      expect(result).toMatchObject({ path: 'unpacked/here', entries: 10 });
      expect(result.bytes).toBe(3 * MiB + 5 + 10 + 7 + 4);
      expect(await snapshot(at('unpacked/here'))).toEqual(await snapshot(src));
      expect((await readdir(root)).sort()).toEqual(['unpacked']);
    },
  );

  it(
    'writes small files behind the parser: every byte and mtime lands, later entries of a name win, hardlinks find their source',
    { timeout: 60_000 },
    async () => {
      const pack = tarPack();
      const mtime = new Date('2020-01-02T03:04:05Z');
      // More directories than are held open at once, so descriptors are recycled under the writes.
      for (let d = 0; d < 300; d++) {
        for (let f = 0; f < 3; f++) pack.entry({ name: `d${d}/f${f}.txt`, mtime }, `${d}/${f} ${'x'.repeat((d * 7 + f) % 900)}`);
      }
      pack.entry({ name: 'same.txt', mtime }, 'first');
      pack.entry({ name: 'same.txt', mtime }, 'second, and longer than the first');
      pack.entry({ name: 'turns-link', mtime }, 'a file first');
      pack.entry({ name: 'turns-link', type: 'symlink', linkname: 'same.txt', mtime });
      pack.entry({ name: 'source.txt', mtime }, 'linked');
      pack.entry({ name: 'hard.txt', type: 'link', linkname: 'source.txt', mtime });
      pack.entry({ name: 'big.bin', mtime }, randomBytes(2 * MiB));
      pack.finalize();
      const archive = path.join(scratch, 'many.tar');
      await writeFile(archive, await buffer(pack));
      const result = await extract('many', archive);
      expect(result.entries).toBe(900 + 7);
      for (let d = 0; d < 300; d++) {
        for (let f = 0; f < 3; f++) {
          expect(await readFile(at('many', `d${d}`, `f${f}.txt`), 'utf8')).toBe(`${d}/${f} ${'x'.repeat((d * 7 + f) % 900)}`);
        }
      }
      expect((await lstat(at('many/d299/f2.txt'))).mtime).toEqual(mtime);
      expect(await readFile(at('many/same.txt'), 'utf8')).toBe('second, and longer than the first');
      expect(await readlink(at('many/turns-link'))).toBe('same.txt');
      expect((await lstat(at('many/hard.txt'))).nlink).toBe(2);
      expect(await readFile(at('many/hard.txt'), 'utf8')).toBe('linked');
      expect((await readdir(root)).sort()).toEqual(['many']);
    },
  );

  it('merges into an existing directory: archive files replace, directories merge, the rest stays', async () => {
    await mkdir(at('target/sub'), { recursive: true });
    await writeFile(at('target/keep.txt'), 'kept');
    await writeFile(at('target/sub/replace.txt'), 'old');
    await writeFile(at('target/sub/keep-too.txt'), 'kept too');
    const src = await source();
    await mkdir(path.join(src, 'sub'));
    await writeFile(path.join(src, 'sub/replace.txt'), 'new');
    await writeFile(path.join(src, 'sub/added.txt'), 'added');
    const archive = path.join(scratch, 'merge.tar');
    tar('-cf', archive, '-C', src, 'sub');
    await extract('target', archive);
    expect(await snapshot(at('target'))).toEqual([
      `keep.txt ${sha('kept')} 644`,
      'sub/',
      `sub/added.txt ${sha('added')} 644`,
      `sub/keep-too.txt ${sha('kept too')} 644`,
      `sub/replace.txt ${sha('new')} 644`,
    ]);
  });

  it('answers 409 with nothing moved when the target has a file where the archive has a directory', async () => {
    await mkdir(at('target'));
    await writeFile(at('target/a-first.txt'), 'old');
    await writeFile(at('target/sub'), 'a file in the way');
    const src = await source();
    await writeFile(path.join(src, 'a-first.txt'), 'new');
    await mkdir(path.join(src, 'sub'));
    await writeFile(path.join(src, 'sub/f'), 'x');
    const archive = path.join(scratch, 'conflict.tar');
    tar('-cf', archive, '-C', src, 'a-first.txt', 'sub');
    const before = await snapshot(at('target'));
    await expect(extract('target', archive)).rejects.toMatchObject({ code: 'ERR_ALREADY_EXISTS', statusCode: 409 });
    expect(await snapshot(at('target'))).toEqual(before);
    expect(await readdir(root)).toEqual(['target']);
  });

  it('never writes through a link of the target: the archive replaces the link itself', async () => {
    await mkdir(at('target'));
    await symlink(path.join(outside, 'secret.txt'), at('target/secret.txt'));
    const src = await source();
    await writeFile(path.join(src, 'secret.txt'), 'overwritten?');
    const archive = path.join(scratch, 'replace-link.tar');
    tar('-cf', archive, '-C', src, 'secret.txt');
    await extract('target', archive);
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('outside secret');
    expect(await readFile(at('target/secret.txt'), 'utf8')).toBe('overwritten?');
  });

  describe('refuses hostile archives whole, writing nothing and leaving no staging directory', () => {
    /** Each case builds its archive in `src` with GNU tar and names the error it must get. */
    const corpus: Array<[string, (src: string, archive: string) => Promise<void>, string, RegExp?]> = [
      [
        'an absolute path',
        async (src, archive) => {
          await writeFile(path.join(src, 'f'), 'x');
          tar('-P', '-cf', archive, '-C', src, '--transform', `s,^,${outside}/pwned-,`, 'f');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /absolute/,
      ],
      [
        "'..' in a path",
        async (src, archive) => {
          await writeFile(path.join(src, 'f'), 'x');
          tar('-P', '-cf', archive, '-C', src, '--transform', 's,^,../../outside/,', 'f');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /'\.\.'/,
      ],
      [
        'a symlink out of the workspace',
        async (src, archive) => {
          await writeFile(path.join(src, 'a-fine.txt'), 'fine');
          await symlink(outside, path.join(src, 'out'));
          tar('-cf', archive, '-C', src, 'a-fine.txt', 'out');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /symlink .* outside the workspace/,
      ],
      [
        'a relative symlink that climbs out',
        async (src, archive) => {
          await symlink('../../../outside', path.join(src, 'out'));
          tar('-cf', archive, '-C', src, 'out');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /outside the workspace/,
      ],
      [
        "a symlink that climbs out through the archive's own link (d -> ., then d/d/…/../../…)",
        async (src, archive) => {
          await symlink('.', path.join(src, 'd'));
          await symlink(`${'d/'.repeat(8)}${'../'.repeat(8)}etc`, path.join(src, 'etc'));
          tar('-cf', archive, '-C', src, 'd', 'etc');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /symlink .* leads outside the workspace/,
      ],
      [
        'the same, with the link it climbs through coming later in the archive',
        async (src, archive) => {
          await symlink('.', path.join(src, 'd'));
          await symlink(`${'d/'.repeat(8)}${'../'.repeat(8)}etc`, path.join(src, 'etc'));
          tar('-cf', archive, '-C', src, 'etc', 'd');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /symlink .* leads outside the workspace/,
      ],
      [
        'a symlink, then a file written through it',
        async (src, archive) => {
          const first = path.join(src, 'one');
          const second = path.join(src, 'two');
          await mkdir(first);
          await mkdir(path.join(second, 'l'), { recursive: true });
          // Inside the workspace, so that only the write through it is wrong.
          await symlink('.', path.join(first, 'l'));
          await writeFile(path.join(second, 'l/f'), 'through the link');
          tar('-cf', archive, '-C', first, 'l');
          tar('-rf', archive, '-C', second, 'l/f');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /through the symlink/,
      ],
      [
        'a hardlink out of the workspace',
        async (src, archive) => {
          await writeFile(path.join(src, 'hl'), 'x');
          execFileSync('ln', [path.join(src, 'hl'), path.join(src, 'f')]);
          tar('-P', '-cf', archive, '-C', src, '--transform', `s,^hl$,${outside}/secret.txt,RSh`, 'hl', 'f');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /absolute/,
      ],
      [
        'a hardlink that climbs out',
        async (src, archive) => {
          await writeFile(path.join(src, 'hl'), 'x');
          execFileSync('ln', [path.join(src, 'hl'), path.join(src, 'f')]);
          tar('-P', '-cf', archive, '-C', src, '--transform', 's,^hl$,../../outside/secret.txt,RSh', 'hl', 'f');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /'\.\.'/,
      ],
      [
        'a device',
        async (_src, archive) => {
          tar('-cf', archive, '-C', '/', 'dev/null');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /character-device/,
      ],
      [
        'a FIFO',
        async (src, archive) => {
          execFileSync('mkfifo', [path.join(src, 'fifo')]);
          tar('-cf', archive, '-C', src, 'fifo');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /fifo/,
      ],
      [
        'a 300-byte name',
        async (src, archive) => {
          await writeFile(path.join(src, 'f'), 'x');
          tar('-cf', archive, '-C', src, '--transform', `s,^f$,${'n'.repeat(300)},`, 'f');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /longer than 255 bytes/,
      ],
      [
        'a control character in a name',
        async (src, archive) => {
          await writeFile(path.join(src, 'new\nline'), 'x');
          tar('-cf', archive, '-C', src, 'new\nline');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /control characters/,
      ],
      [
        "a name reserved for the server's staging",
        async (src, archive) => {
          await mkdir(path.join(src, '.extract-0123456789abcdef01234567'));
          await writeFile(path.join(src, '.extract-0123456789abcdef01234567/f'), 'x');
          tar('-cf', archive, '-C', src, '.');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /reserved/,
      ],
      [
        "a name reserved for the server's uploads",
        async (src, archive) => {
          await writeFile(path.join(src, '.upload-0123456789abcdef01234567.part'), 'x');
          tar('-cf', archive, '-C', src, '.');
        },
        'ERR_UNSAFE_ARCHIVE_ENTRY',
        /reserved/,
      ],
      [
        '10,000 entries (over a limit of 5,000)',
        async (src, archive) => {
          await Promise.all(Array.from({ length: 10_000 }, (_, i) => writeFile(path.join(src, `f${i}`), '')));
          tar('-cf', archive, '-C', src, '.');
        },
        'ERR_EXTRACT_TOO_LARGE',
        /5000 entries/,
      ],
      [
        'a gzip bomb: one file that inflates over the byte limit',
        async (src, archive) => {
          execFileSync('truncate', ['-s', '200M', path.join(src, 'zeros')]);
          tar('-czf', archive, '-C', src, 'zeros');
        },
        'ERR_EXTRACT_TOO_LARGE',
        /MAX_EXTRACT_BYTES/,
      ],
      [
        'a gzip bomb: many files that together inflate over the byte limit',
        async (src, archive) => {
          for (let i = 0; i < 20; i++) execFileSync('truncate', ['-s', '4M', path.join(src, `zeros-${i}`)]);
          tar('-czf', archive, '-C', src, '.');
        },
        'ERR_EXTRACT_TOO_LARGE',
        /MAX_EXTRACT_BYTES/,
      ],
      [
        'a gzip bomb: endless zeros after the end of the archive',
        async (src, archive) => {
          await writeFile(path.join(src, 'f'), 'x');
          const plain = `${archive}.plain`;
          tar('-cf', plain, '-C', src, 'f');
          execFileSync('truncate', ['-s', '300M', plain]);
          execFileSync('sh', ['-c', `gzip -1 -c '${plain}' > '${archive}'`]);
          await rm(plain);
        },
        'ERR_EXTRACT_TOO_LARGE',
        /MAX_EXTRACT_BYTES/,
      ],
      [
        'a body that is no archive',
        async (_src, archive) => {
          await writeFile(archive, randomBytes(4096));
        },
        'ERR_INVALID_ARCHIVE',
      ],
      [
        'a truncated archive (after writing an entry)',
        async (src, archive) => {
          await writeFile(path.join(src, 'a'), 'complete');
          await writeFile(path.join(src, 'b'), randomBytes(100_000));
          const plain = `${archive}.plain`;
          tar('-cf', plain, '-C', src, 'a', 'b');
          execFileSync('head', ['-c', '60000', plain], { stdio: ['ignore', 'pipe', 'pipe'] });
          await writeFile(archive, execFileSync('head', ['-c', '60000', plain]));
        },
        'ERR_INVALID_ARCHIVE',
      ],
    ];

    it.each(corpus)('%s', { timeout: 60_000 }, async (_name, build, code, message) => {
      await mkdir(at('target'));
      await writeFile(at('target/existing.txt'), 'existing');
      const before = await snapshot(root);
      const src = await source();
      const archive = path.join(scratch, `hostile-${randomBytes(4).toString('hex')}`);
      await build(src, archive);
      const format = code === 'ERR_EXTRACT_TOO_LARGE' && /gzip/.test(_name) ? 'tar.gz' : 'tar';
      for (const target of ['target', 'new/target']) {
        const refusal = extract(target, archive, format, { entries: 5000, bytes: 16 * MiB });
        await expect(refusal).rejects.toMatchObject({ code, ...(message ? { message: expect.stringMatching(message) } : {}) });
        await expect(refusal).rejects.toMatchObject({ message: expect.stringMatching(/nothing was written/) });
      }
      expect(await snapshot(root)).toEqual(before);
      expect(await readdir(outside)).toEqual(['secret.txt']);
      expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('outside secret');
    });
  });

  it("gives entries the modes of files written through the API, whatever the archive's modes", async () => {
    const archive = path.join(scratch, 'modes.tar');
    await writeFile(
      archive,
      await packed([
        { name: 'read-only/', type: 'directory', mode: 0o555 },
        { name: 'read-only/closed/', type: 'directory', mode: 0o000 },
        { name: 'read-only/closed/f.txt', mode: 0o444, content: 'locked' },
        { name: 'read-only/run.sh', mode: 0o555, content: '#!/bin/sh\n' },
      ]),
    );
    await extract('tree', archive);
    // What mkdir and PUT make (0777 and 0666 less the umask), executable bits kept.
    await files.mkdir('made');
    await files.write('made/put.txt', Readable.from([Buffer.from('x')]), { maxBytes: MiB });
    const mode = async (p: string) => ((await lstat(at(p))).mode & 0o7777).toString(8);
    const [directory, file] = [await mode('made'), await mode('made/put.txt')];
    expect(
      await Promise.all(
        ['tree', 'tree/read-only', 'tree/read-only/closed', 'tree/read-only/closed/f.txt', 'tree/read-only/run.sh'].map(mode),
      ),
    ).toEqual([directory, directory, directory, file, directory]);
  });

  describe('an archive cut short answers at once with 400 and leaves nothing', () => {
    /**
     * An archive of a few kinds of entry, its bytes, and where its entries' data ends (the
     * end-of-archive marker starts there): cutting anywhere before that must be refused.
     */
    async function cuttable(): Promise<{ bytes: Buffer; dataEnd: number }> {
      const src = await source();
      await writeFile(path.join(src, 'a'), 'abc');
      await writeFile(path.join(src, 'b'), randomBytes(1500));
      await mkdir(path.join(src, 'd'));
      await writeFile(path.join(src, 'd', 'n'.repeat(150)), randomBytes(700));
      await symlink('a', path.join(src, 'l'));
      const archive = path.join(scratch, 'cuttable.tar');
      tar('--format=gnu', '-cf', archive, '-C', src, 'a', 'b', 'd', 'l');
      const bytes = await readFile(archive);
      // The end-of-archive marker: the first all-zero block where a header would be.
      let offset = 0;
      while (!bytes.subarray(offset, offset + 512).equals(Buffer.alloc(512))) {
        const size = parseInt(
          bytes
            .subarray(offset + 124, offset + 136)
            .toString('latin1')
            .replace(/\0.*$/, '')
            .trim() || '0',
          8,
        );
        offset += 512 + Math.ceil(size / 512) * 512;
      }
      return { bytes, dataEnd: offset };
    }

    /** Every block boundary before the marker, and places inside each header block. */
    function cuts(dataEnd: number): number[] {
      const at = new Set<number>();
      for (let offset = 0; offset <= dataEnd; offset += 512) for (const inside of [0, 1, 100, 157, 257, 345, 511]) at.add(offset + inside);
      return [...at].filter((cut) => cut <= dataEnd).sort((a, b) => a - b);
    }

    async function refusedAtOnce(body: Buffer, format: ArchiveFormat, what: string): Promise<void> {
      const archive = path.join(scratch, 'cut');
      await writeFile(archive, body);
      const started = performance.now();
      const outcome = await Promise.race([
        extract('target', archive, format).then(
          () => 'extracted',
          (error: Error & { code?: string }) => error.code ?? String(error),
        ),
        new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 10 s'), 10_000)),
      ]);
      expect(outcome, what).toBe('ERR_INVALID_ARCHIVE');
      expect(performance.now() - started, what).toBeLessThan(10_000);
      expect(await readdir(root), what).toEqual([]);
    }

    it('plain tar: cut at every block boundary and inside every header', { timeout: 120_000 }, async () => {
      const { bytes, dataEnd } = await cuttable();
      for (const cut of cuts(dataEnd)) await refusedAtOnce(bytes.subarray(0, cut), 'tar', `cut at ${cut} of ${bytes.length}`);
      // One zero block after the last entry is an archive GNU tar reads whole: so does the API.
      const archive = path.join(scratch, 'one-zero-block.tar');
      await writeFile(archive, bytes.subarray(0, dataEnd + 512));
      await expect(extract('target', archive)).resolves.toMatchObject({ entries: 5 });
    });

    it('tar.gz: the cut tar compressed, and the compressed archive cut', { timeout: 120_000 }, async () => {
      const { bytes, dataEnd } = await cuttable();
      for (const cut of cuts(dataEnd)) await refusedAtOnce(gzipSync(bytes.subarray(0, cut)), 'tar.gz', `gzip of a tar cut at ${cut}`);
      const compressed = gzipSync(bytes);
      for (let cut = 0; cut < compressed.length; cut += Math.max(1, Math.floor(compressed.length / 40))) {
        await refusedAtOnce(compressed.subarray(0, cut), 'tar.gz', `gzip cut at ${cut} of ${compressed.length}`);
      }
    });
  });

  it('judges a link through the links the target holds already', async () => {
    await mkdir(at('target'));
    await symlink('.', at('target/d'));
    const src = await source();
    await symlink(`${'d/'.repeat(8)}${'../'.repeat(8)}etc`, path.join(src, 'etc'));
    const archive = path.join(scratch, 'through-existing.tar');
    tar('-cf', archive, '-C', src, 'etc');
    await expect(extract('target', archive)).rejects.toMatchObject({ code: 'ERR_UNSAFE_ARCHIVE_ENTRY' });
    expect(await readdir(at('target'))).toEqual(['d']);
    // Where the link it climbs through is a directory, it stays inside: accepted.
    await mkdir(at('other/d/d/d/d/d/d/d/d'), { recursive: true });
    await extract('other', archive);
    expect(await readlink(at('other/etc'))).toBe(`${'d/'.repeat(8)}${'../'.repeat(8)}etc`);
  });

  it('keeps symlinks that stay inside the workspace, even ones that climb out of the target', async () => {
    await mkdir(at('elsewhere'));
    const src = await source();
    await symlink('../elsewhere', path.join(src, 'up'));
    const archive = path.join(scratch, 'up.tar');
    tar('-cf', archive, '-C', src, 'up');
    await extract('target', archive);
    expect(await readlink(at('target/up'))).toBe('../elsewhere');
  });
});

/** A tar archive with exactly these headers (modes a tar of the disk could not make as root). */
async function packed(entries: Array<{ name: string; type?: 'file' | 'directory'; mode: number; content?: string }>): Promise<Buffer> {
  const pack = tarPack();
  const done = buffer(pack);
  for (const entry of entries) pack.entry({ name: entry.name, type: entry.type ?? 'file', mode: entry.mode }, entry.content ?? '');
  pack.finalize();
  return done;
}

function sha(text: string): string {
  return execFileSync('sha256sum', { input: text, encoding: 'utf8' }).split(' ')[0]!;
}
