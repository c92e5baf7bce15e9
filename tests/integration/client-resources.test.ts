import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlreadyExistsError, CodeInterpreterError, NotFoundError, ResourceClient } from '../../clients/typescript/src/index.js';
import { accessToken, baseUrl } from '../helpers/api.js';
import { snapshot } from '../helpers/tree.js';

const { hostname: host, port } = new URL(baseUrl);
const client = new ResourceClient({ host, port: Number(port), accessToken: accessToken || null });
const remote = `client-resources-${Date.now()}`;

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

describe('ResourceClient', () => {
  let scratch: string;

  beforeAll(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'client-resources-'));
  });
  afterAll(async () => {
    await client.delete(remote).catch(() => {});
    await rm(scratch, { recursive: true, force: true });
  });

  it('uploads and downloads a file, creating parents on both sides', async () => {
    const local = path.join(scratch, 'hello.txt');
    await writeFile(local, 'hello, world\n');
    expect(await client.uploadFile(local, `${remote}/a/b/hello.txt`)).toMatchObject({ path: `${remote}/a/b/hello.txt`, size: 13 });
    const back = path.join(scratch, 'down', 'deeper', 'hello.txt');
    await client.downloadFile(`${remote}/a/b/hello.txt`, back);
    expect(await readFile(back, 'utf8')).toBe('hello, world\n');
  });

  it('makes directories, lists, copies, moves and deletes', async () => {
    await client.makeDirectory(`${remote}/made/deep`);
    await client.makeDirectory(`${remote}/made/deep`);
    await client.uploadStream([new TextEncoder().encode('one')], `${remote}/made/one.txt`);
    const entries = await client.list(`${remote}/made`);
    expect(entries.map(({ name, type, size }) => ({ name, type, size }))).toEqual([
      { name: 'deep', type: 'dir', size: null },
      { name: 'one.txt', type: 'file', size: 3 },
    ]);
    await client.copy(`${remote}/made/one.txt`, `${remote}/made/two.txt`);
    await expect(client.move(`${remote}/made/two.txt`, `${remote}/made/one.txt`)).rejects.toBeInstanceOf(AlreadyExistsError);
    await client.move(`${remote}/made/two.txt`, `${remote}/moved/three.txt`);
    await client.copy(`${remote}/made`, `${remote}/moved`, { overwrite: true });
    expect((await client.list(`${remote}/moved`)).map((entry) => entry.name)).toEqual(['deep', 'one.txt']);
    await client.delete(`${remote}/moved`);
    const error = await client.list(`${remote}/moved`).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toBeInstanceOf(CodeInterpreterError);
    expect(error).toMatchObject({ code: 'ERR_FILE_NOT_FOUND', status: 404 });
  });

  it('lists a directory of more than one page', async () => {
    const many = path.join(scratch, 'many');
    await mkdir(many);
    await Promise.all(Array.from({ length: 1005 }, (_, index) => writeFile(path.join(many, `f${String(index).padStart(4, '0')}`), '')));
    await client.uploadDirectory(many, `${remote}/many`);
    const names = (await client.list(`${remote}/many`)).map((entry) => entry.name);
    expect(names).toHaveLength(1005);
    expect(names.at(-1)).toBe('f1004');
  });

  it('fails a download of a missing file with NotFoundError and leaves no partial file', async () => {
    const target = path.join(scratch, 'missing.bin');
    await expect(client.downloadFile(`${remote}/no-such-file`, target)).rejects.toMatchObject({ code: 'ERR_FILE_NOT_FOUND' });
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('round-trips a directory byte for byte', async () => {
    const source = path.join(scratch, 'tree');
    await mkdir(path.join(source, 'sub', 'deeper'), { recursive: true });
    await mkdir(path.join(source, 'empty'));
    await writeFile(path.join(source, 'top.txt'), 'top\n');
    await writeFile(path.join(source, 'empty-file'), '');
    await writeFile(path.join(source, 'sub', 'binary.bin'), randomBytes(300_000));
    await writeFile(path.join(source, 'sub', 'deeper', 'name with spaces & ü.txt'), 'unicode\n');
    const answer = await client.uploadDirectory(source, `${remote}/tree`);
    expect(answer.entries).toBeGreaterThanOrEqual(6);
    const target = path.join(scratch, 'tree-back');
    await client.downloadDirectory(`${remote}/tree`, target);
    // Contents and names, not modes: the server gives extracted files its own (its umask).
    const contents = async (dir: string) => (await snapshot(dir)).map((entry) => entry.replace(/ [0-7]{3}$/, ''));
    expect(await contents(target)).toEqual(await contents(source));
  });

  it('streams a 50 MiB file up and down', async () => {
    const big = path.join(scratch, 'big.bin');
    const chunk = randomBytes(1024 * 1024);
    await pipeline(
      (function* () {
        for (let index = 0; index < 50; index++) {
          chunk[0] = index;
          yield Buffer.from(chunk);
        }
      })(),
      createWriteStream(big),
    );
    const expected = await sha256File(big);
    expect(await client.uploadFile(big, `${remote}/big.bin`)).toMatchObject({ size: 50 * 1024 * 1024 });
    const back = path.join(scratch, 'big-back.bin');
    await client.downloadFile(`${remote}/big.bin`, back);
    expect((await stat(back)).size).toBe(50 * 1024 * 1024);
    expect(await sha256File(back)).toBe(expected);
  });

  it('checks its arguments', async () => {
    await expect(client.uploadFile(scratch, 'x')).rejects.toThrow(/is not a file/);
    await expect(client.uploadDirectory(path.join(scratch, 'hello.txt'), 'x')).rejects.toThrow(/is not a directory/);
    await expect(client.delete('')).rejects.toThrow(/remotePath must be a non-empty path/);
  });
});
