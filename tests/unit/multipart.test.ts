import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MultipartError, readMultipart } from '../../server/transports/http/multipart.js';

const BOUNDARY = '----formdata-undici-0123456789';
const TYPE = `multipart/form-data; boundary=${BOUNDARY}`;

function body(parts: { name: string; filename?: string; data: Buffer | string }[], preamble = ''): Buffer {
  const chunks: Buffer[] = [Buffer.from(preamble)];
  for (const part of parts) {
    const filename = part.filename === undefined ? '' : `; filename="${part.filename}"`;
    chunks.push(
      Buffer.from(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.name}"${filename}\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
    );
    chunks.push(Buffer.from(part.data));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

/** The body in chunks of `size` bytes, as a slow network would deliver it. */
async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

async function collect(source: AsyncIterable<Buffer>, read: (name: string) => boolean = () => true) {
  const parts: { name: string; filename?: string; data: Buffer }[] = [];
  for await (const part of readMultipart(source, TYPE, 100)) {
    const chunks: Buffer[] = [];
    if (read(part.name)) for await (const chunk of part.body) chunks.push(chunk);
    parts.push({ name: part.name, filename: part.filename, data: Buffer.concat(chunks) });
  }
  return parts;
}

describe('readMultipart', () => {
  // Bodies that hold most of a delimiter, CRLFs and dashes: a parser that cuts at the wrong
  // place, or hands out what may be a delimiter's start, shows it here.
  const tricky = Buffer.concat([Buffer.from(`\r\n--${BOUNDARY.slice(0, -1)}x\r\n-`), randomBytes(3000), Buffer.from('\r\n--')]);
  const parts = [
    { name: 'file', filename: '/home/user/a.txt', data: tricky },
    { name: 'note', data: 'not a file' },
    { name: 'file', filename: 'b/c.bin', data: '' },
    { name: 'file', filename: 'd.bin', data: randomBytes(70_000) },
  ];

  for (const size of [1, 7, 64, 1000, 1 << 20]) {
    it(`reads every part byte for byte in chunks of ${size} bytes`, async () => {
      const read = await collect(chunked(body(parts, 'a preamble to ignore\r\n'), size));
      expect(read.map((part) => [part.name, part.filename])).toEqual(parts.map((part) => [part.name, part.filename]));
      read.forEach((part, i) => expect(part.data.equals(Buffer.from(parts[i]!.data))).toBe(true));
    });
  }

  it('skips a part whose body is not read, or read only in part', async () => {
    const read = await collect(chunked(body(parts), 13), (name) => name !== 'note');
    expect(read[3]!.data.equals(parts[3]!.data as Buffer)).toBe(true);
    const names: string[] = [];
    for await (const part of readMultipart(chunked(body(parts), 100), TYPE, 100)) {
      names.push(part.filename ?? part.name);
      for await (const chunk of part.body) {
        void chunk;
        break;
      }
    }
    expect(names).toEqual(['/home/user/a.txt', 'note', 'b/c.bin', 'd.bin']);
  });

  it('reads escaped quotes and UTF-8 in a filename', async () => {
    const data = Buffer.concat([
      Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a \\"b\\" ü.txt"\r\n\r\nx\r\n--${BOUNDARY}--`),
    ]);
    expect((await collect(chunked(data, 5)))[0]!.filename).toBe('a "b" ü.txt');
  });

  it.each([
    ['a body cut short', body(parts).subarray(0, 500)],
    ['a body without a boundary', Buffer.from('hello')],
    ['headers that never end', Buffer.concat([Buffer.from(`--${BOUNDARY}\r\nX: `), Buffer.alloc(200_000, 97)])],
  ])('refuses %s', async (_what, data) => {
    await expect(collect(chunked(data, 64))).rejects.toThrow(/Unexpected end/);
    await expect(collect(chunked(data, 64))).rejects.toBeInstanceOf(MultipartError);
  });

  it('refuses a Content-Type without a boundary before reading the body', async () => {
    const read = readMultipart(chunked(body(parts), 64), 'multipart/form-data', 100);
    await expect(read.next()).rejects.toBeInstanceOf(MultipartError);
  });

  it('leaves out a part without Content-Disposition', async () => {
    const data = Buffer.from(`--${BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--${BOUNDARY}--`);
    expect(await collect(chunked(data, 64))).toEqual([]);
  });

  it('refuses more parts than allowed', async () => {
    const many = body(Array.from({ length: 5 }, () => ({ name: 'file', filename: 'x', data: 'x' })));
    const read = async () => {
      for await (const part of readMultipart(chunked(many, 64), TYPE, 4)) for await (const chunk of part.body) void chunk;
    };
    await expect(read()).rejects.toThrow(/more than 4 parts/);
  });
});
