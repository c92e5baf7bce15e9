import { isUtf8 } from 'node:buffer';
import { ServerConnection, type KernelMessage } from '@jupyterlab/services';
import { describe, expect, it } from 'vitest';
import { serializeEvent, textBytes, type StreamEvent } from '../../server/runs/events.js';
import { toOutputEvent } from '../helpers/kernel-messages.js';
import { decodeStreamMessage, encodedStreamText, kernelMessageSerializer } from '../../server/jupyter/wire.js';

const V1 = 'v1.kernel.websocket.jupyter.org';
const library = ServerConnection.makeSettings({ baseUrl: 'http://localhost/', wsUrl: 'ws://localhost/' }).serializer;
const serializer = kernelMessageSerializer(library);

/** JSON as Python's json.dumps writes it (ipykernel): ", " and ": " between items. */
function pythonJson(value: Record<string, unknown>): string {
  return `{${Object.entries(value)
    .map(([key, item]) => `${JSON.stringify(key)}: ${JSON.stringify(item)}`)
    .join(', ')}}`;
}

/** `\uXXXX` for every non-ASCII code unit, as json.dumps(ensure_ascii=True) writes it. */
function asciiOnly(json: string): string {
  return json.replace(/[\u0080-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A v1 frame as Jupyter Server forwards it from the kernel: offsets, then the parts. */
function frame(parts: Array<string | Buffer>): ArrayBuffer {
  const bytes = parts.map((part) => (typeof part === 'string' ? Buffer.from(part, 'utf8') : part));
  const offsets = [8 * (bytes.length + 2)];
  for (const part of bytes) offsets.push(offsets.at(-1)! + part.length);
  const out = Buffer.alloc(offsets.at(-1)!);
  out.writeBigUInt64LE(BigInt(offsets.length), 0);
  offsets.forEach((offset, i) => out.writeBigUInt64LE(BigInt(offset), 8 * (i + 1)));
  bytes.forEach((part, i) => part.copy(out, offsets[i]));
  return out.buffer.slice(out.byteOffset, out.byteOffset + out.length);
}

const header = { msg_id: 'm1', msg_type: 'stream', username: 'u', session: 's', date: '2026-11-22T19:10:11.237000Z', version: '5.3' };
const parent = { ...header, msg_id: 'p1', msg_type: 'execute_request' };

function streamFrame(content: string | Buffer, msgHeader: Record<string, unknown> = header): ArrayBuffer {
  return frame(['iopub', JSON.stringify(msgHeader), JSON.stringify(parent), '{}', content]);
}

function decode(data: ArrayBuffer): KernelMessage.IIOPubMessage {
  return serializer.deserialize(data, V1) as KernelMessage.IIOPubMessage;
}

/** What a client reads: the event's NDJSON line, parsed. */
function lineOf(msg: KernelMessage.IIOPubMessage): { line: Buffer; parsed: unknown } {
  const line = serializeEvent(toOutputEvent(msg)!);
  return { line, parsed: JSON.parse(line.toString('utf8')) };
}

const TEXTS: Array<[string, string]> = [
  ['a megabyte line', `${'x'.repeat(1024 * 1024 - 1)}\n`],
  ['accents and CJK', 'café, naïve, 日本語\n'],
  ['emoji (surrogate pairs in JavaScript)', '🐍 and 👩‍👩‍👧 and 𝕏\n'],
  ['quotes and backslashes next to each other', 'say "hi" \\ \\\\" \\"\\\\ end\\'],
  ['control characters and separators', 'tab\there\r\n\u0000\u0001\u001f\u007f\u2028\u2029\n'],
  ['empty', ''],
];

describe('the stream message decoder', () => {
  it.each(TEXTS)('decodes %s exactly as the library does, and the line parses to the same text', (_name, text) => {
    for (const content of [pythonJson({ name: 'stdout', text }), asciiOnly(pythonJson({ name: 'stdout', text }))]) {
      const data = streamFrame(content);
      const ours = decode(data);
      expect(ours).toEqual(library.deserialize(data, V1));
      const encoded = encodedStreamText(ours.content)!;
      expect(encoded).toBeDefined();
      // Known without decoding only when it cannot be wrong; then it is the text's UTF-8 size.
      if (encoded.utf8Bytes !== undefined) expect(encoded.utf8Bytes).toBe(Buffer.byteLength(text, 'utf8'));
      expect(textBytes(toOutputEvent(ours) as StreamEvent)).toBe(Buffer.byteLength(text, 'utf8'));
      const { line, parsed } = lineOf(ours);
      expect(parsed).toEqual({ type: 'stdout', text, timestamp: header.date });
      expect(isUtf8(line)).toBe(true);
      expect(line.indexOf(0x0a)).toBe(line.length - 1);
    }
  });

  it("writes the same bytes as JSON.stringify for Python's encoding of the text", () => {
    for (const [, text] of TEXTS) {
      const msg = decode(streamFrame(pythonJson({ name: 'stderr', text })));
      expect(lineOf(msg).line.equals(Buffer.from(`${JSON.stringify({ type: 'stderr', text, timestamp: header.date })}\n`, 'utf8'))).toBe(
        true,
      );
    }
  });

  it('agrees with JSON.parse on random texts of quotes, backslashes, escapes and multi-byte characters', () => {
    const alphabet = ['a', ' ', '"', '\\', '\n', '\t', '\u0002', '/', 'é', '€', '日', '🐍', '\u2028', 'u', '0'];
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 300; round++) {
      const text = Array.from({ length: Math.floor(random() * 40) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      const content = random() < 0.5 ? pythonJson({ name: 'stdout', text }) : asciiOnly(JSON.stringify({ text, name: 'stdout' }));
      const msg = decode(streamFrame(content));
      expect(msg.content).toEqual({ name: 'stdout', text });
      // Decoded here, not by the library's decoder after this one gave up.
      const encoded = encodedStreamText(msg.content);
      expect(encoded).toBeDefined();
      if (encoded!.utf8Bytes !== undefined) expect(encoded!.utf8Bytes).toBe(Buffer.byteLength(text, 'utf8'));
      expect(textBytes(toOutputEvent(msg) as StreamEvent)).toBe(Buffer.byteLength(text, 'utf8'));
      expect(lineOf(msg).parsed).toMatchObject({ text });
    }
  });

  it('knows the size of ASCII text without measuring it, and only then', () => {
    const sizeOf = (content: string) => encodedStreamText(decode(streamFrame(content)).content)!.utf8Bytes;
    expect(sizeOf(pythonJson({ name: 'stdout', text: 'ab\n"\\' }))).toBe(5);
    // `\u00e9` is one character of two bytes; `\\u` is a backslash and a u.
    expect(sizeOf('{"name": "stdout", "text": "caf\\u00e9"}')).toBeUndefined();
    expect(sizeOf('{"name": "stdout", "text": "\\\\u"}')).toBeUndefined();
    expect(sizeOf(pythonJson({ name: 'stdout', text: 'café' }))).toBeUndefined();
  });

  it('keeps key order and the last of duplicate keys, like JSON.parse', () => {
    const content = '{ "text" : "first" ,\n"name":"stdout", "text": "second", "extra": "x" }';
    const msg = decode(streamFrame(content));
    expect(encodedStreamText(msg.content)).toBeDefined();
    expect(msg.content).toEqual(JSON.parse(content));
    expect(Object.keys(msg.content)).toEqual(Object.keys(JSON.parse(content) as object));
    expect(lineOf(msg).parsed).toMatchObject({ text: 'second' });
  });

  it('leaves text that is not UTF-8 to the library, which replaces the bad bytes as before', () => {
    // Python writes "\udcff" (surrogateescape) as the raw byte 0xff.
    const content = Buffer.concat([Buffer.from('{"name": "stdout", "text": "a'), Buffer.from([0xff]), Buffer.from('b\\n"}')]);
    const data = streamFrame(content);
    expect(decodeStreamMessage(Buffer.from(data))).toBeUndefined();
    const msg = decode(data);
    expect(msg.content).toEqual({ name: 'stdout', text: 'a\ufffdb\n' });
    expect(encodedStreamText(msg.content)).toBeUndefined();
    const { line, parsed } = lineOf(msg);
    expect(isUtf8(line)).toBe(true);
    expect(parsed).toMatchObject({ text: 'a\ufffdb\n' });
  });

  it.each([
    ['text given as a list of lines', '{"name": "stdout", "text": ["a\\n", "b"]}'],
    ['a value that is not a string', '{"name": "stdout", "text": "a", "n": 1}'],
    ['no text at all', '{"name": "stdout"}'],
    ['a __proto__ key', '{"__proto__": "x", "name": "stdout", "text": "a"}'],
  ])('leaves %s to the library', (_name, content) => {
    const data = streamFrame(content);
    expect(decodeStreamMessage(Buffer.from(data))).toBeUndefined();
    expect(decode(data)).toEqual(library.deserialize(data, V1));
  });

  it.each([
    ['an unterminated string', '{"name": "stdout", "text": "abc}'],
    ['a raw newline inside the text', '{"name": "stdout", "text": "a\nb"}'],
    ['an invalid escape', '{"name": "stdout", "text": "a\\qb"}'],
    ['something after the object', '{"name": "stdout", "text": "a"} x'],
  ])('refuses %s as the library does', (_name, content) => {
    const data = streamFrame(content);
    expect(decodeStreamMessage(Buffer.from(data))).toBeUndefined();
    expect(() => decode(data)).toThrow();
  });

  it('leaves every other message, and the JSON protocol, to the library', () => {
    const status = frame([
      'iopub',
      JSON.stringify({ ...header, msg_type: 'status' }),
      JSON.stringify(parent),
      '{}',
      '{"execution_state": "idle"}',
    ]);
    expect(decodeStreamMessage(Buffer.from(status))).toBeUndefined();
    expect(decode(status)).toEqual(library.deserialize(status, V1));
    // The JSON protocol hands the decoder a string, whatever the typings say.
    const json = JSON.stringify({ channel: 'iopub', header, parent_header: parent, metadata: {}, content: { name: 'stdout', text: 'a' } });
    expect(serializer.deserialize(json as unknown as ArrayBuffer, '')).toEqual(library.deserialize(json as unknown as ArrayBuffer, ''));
    // Messages to the kernel are the library's business alone.
    const request = { ...library.deserialize(status, V1), channel: 'shell' } as KernelMessage.IMessage;
    expect(Buffer.from(serializer.serialize(request, V1) as ArrayBuffer)).toEqual(
      Buffer.from(library.serialize(request, V1) as ArrayBuffer),
    );
  });

  it('forgets the literal once the text was replaced', () => {
    const msg = decode(streamFrame(pythonJson({ name: 'stdout', text: 'old' })));
    (msg.content as { text: string }).text = 'new';
    expect(encodedStreamText(msg.content)).toBeUndefined();
    expect(lineOf(msg).parsed).toMatchObject({ text: 'new' });
  });
});
