import { describe, expect, it } from 'vitest';
import { ndjson } from '../../clients/typescript/src/ndjson.js';

async function* chunks(...parts: Array<string | Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield typeof part === 'string' ? new TextEncoder().encode(part) : part;
}

async function collect(source: AsyncIterable<unknown>): Promise<unknown[]> {
  const values: unknown[] = [];
  for await (const value of source) values.push(value);
  return values;
}

describe('the client NDJSON reader', () => {
  it('yields one value per line, whatever the chunks split', async () => {
    expect(await collect(ndjson(chunks('{"a":1}\n{"b"', ':2}\n', '\n', '{"c":3}\n')))).toEqual([{ a: 1 }, { b: 2 }, { c: 3 }]);
  });

  it('keeps a character split across chunks whole', async () => {
    const bytes = new TextEncoder().encode('{"text":"é€"}\n');
    expect(await collect(ndjson(chunks(bytes.slice(0, 10), bytes.slice(10, 12), bytes.slice(12))))).toEqual([{ text: 'é€' }]);
  });

  it('throws when the stream ends inside a line', async () => {
    await expect(collect(ndjson(chunks('{"a":1}\n{"b":')))).rejects.toThrow(/ended inside a line/);
  });

  it('throws on a line longer than its bound', async () => {
    await expect(collect(ndjson(chunks('x'.repeat(100)), 50))).rejects.toThrow(/longer than 50 bytes/);
  });
});
