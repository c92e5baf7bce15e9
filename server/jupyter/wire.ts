import { isAscii, isUtf8 } from 'node:buffer';
import type { KernelMessage, ServerConnection } from '@jupyterlab/services';

type Serializer = ServerConnection.ISettings['serializer'];

/** The kernel WebSocket protocol @jupyterlab/services negotiates with Jupyter Server ≥ 1.23. */
const V1_PROTOCOL = 'v1.kernel.websocket.jupyter.org';

const ENCODED_TEXT = Symbol('stream text as the kernel encoded it');

/** A stream message's text as the kernel encoded it. */
export interface EncodedText {
  /** A JSON string literal in valid UTF-8, quotes included, that parses to the text. */
  json: Buffer;
  /**
   * The text's UTF-8 size, when the literal tells it without decoding: an ASCII literal without
   * `\u` escapes holds ASCII text only, one byte per character.
   */
  utf8Bytes: number | undefined;
}

/**
 * @jupyterlab/services' message serializer with a cheaper decoder for the kernel's stream
 * messages (stdout, stderr), which carry nearly every byte a busy kernel sends.
 *
 * The library's v1 decoder copies each part of a message out of the frame, decodes it with a
 * TextDecoder and parses it; the server then measured the text, serialized it again into an
 * event and encoded that again for the socket: for a 1 MiB print, five passes over the text in
 * the API's one thread. Here a stream message's content is read in place: its small fields are
 * parsed, and the text is kept, next to its decoded string, as the JSON string literal the
 * kernel wrote (valid UTF-8, quotes included), which events.ts splices into the event's line
 * instead of serializing the text again. Everything else, and anything unexpected in a stream
 * message (binary buffers, a value that is not a string, bytes that are not UTF-8), goes to the
 * library's decoder, so it is decoded exactly as before.
 */
export function kernelMessageSerializer(library: Serializer): Serializer {
  return {
    serialize: (msg, protocol) => library.serialize(msg, protocol),
    deserialize: (data, protocol) =>
      (protocol === V1_PROTOCOL && data instanceof ArrayBuffer ? decodeStreamMessage(Buffer.from(data)) : undefined) ??
      library.deserialize(data, protocol),
  };
}

/**
 * The text of a stream message's content as the kernel encoded it. Undefined for messages not
 * decoded here, or whose text has been replaced since.
 */
export function encodedStreamText(content: object): EncodedText | undefined {
  const kept = (content as { [ENCODED_TEXT]?: EncodedText & { text: string } })[ENCODED_TEXT];
  return kept !== undefined && kept.text === (content as { text?: unknown }).text ? kept : undefined;
}

/**
 * A v1 frame: a little-endian uint64 count of offsets, the offsets, then the parts they delimit:
 * channel, header, parent header, metadata, content, and binary buffers if any. Undefined unless
 * it is a stream message this decoder takes (see {@link decodeStreamContent}).
 */
export function decodeStreamMessage(frame: Buffer): KernelMessage.IMessage | undefined {
  try {
    if (frame.length < 8) return undefined;
    const count = Number(frame.readBigUInt64LE(0));
    // Five parts, so six offsets; more would mean binary buffers, which streams never have.
    if (count !== 6 || frame.length < 8 * (count + 1)) return undefined;
    const offsets: number[] = [];
    for (let i = 1; i <= count; i++) {
      const offset = Number(frame.readBigUInt64LE(8 * i));
      if (offset > frame.length || offset < (offsets.at(-1) ?? 8 * (count + 1))) return undefined;
      offsets.push(offset);
    }
    const part = (i: number) => frame.toString('utf8', offsets[i], offsets[i + 1]);
    const header = JSON.parse(part(1)) as KernelMessage.IHeader;
    if (header === null || typeof header !== 'object' || header.msg_type !== 'stream') return undefined;
    const content = decodeStreamContent(frame.subarray(offsets[4], offsets[5]));
    if (content === undefined) return undefined;
    return {
      channel: part(0) as KernelMessage.Channel,
      header,
      parent_header: JSON.parse(part(2)) as KernelMessage.IMessage['parent_header'],
      metadata: JSON.parse(part(3)) as KernelMessage.IMessage['metadata'],
      content,
      buffers: [],
    };
  } catch {
    // Whatever this decoder cannot read, the library's decoder reads, or reports, as it always did.
    return undefined;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * A stream message's content: a JSON object whose values are all strings, one of them `text`
 * (`{"name": "stdout", "text": "..."}` from ipykernel). The structure is walked here and every
 * string is checked by JSON.parse, so the result equals JSON.parse of the whole; the text's
 * literal is kept as it is. Undefined for any other shape, and when the text is not valid UTF-8
 * (Python writes a lone surrogate escape as a raw byte): the library then decodes it with
 * replacement characters, as before.
 */
export function decodeStreamContent(json: Buffer): Record<string, string> | undefined {
  const fields: Record<string, string> = {};
  let textJson: Buffer | undefined;
  let i = skipSpace(json, 0);
  if (json[i] !== OPEN_BRACE) return undefined;
  i = skipSpace(json, i + 1);
  for (;;) {
    if (json[i] !== QUOTE) return undefined;
    const keyEnd = stringEnd(json, i);
    const key = JSON.parse(json.toString('utf8', i, keyEnd)) as string;
    // A key that would set the object's prototype rather than a field: not a stream's.
    if (key === '__proto__') return undefined;
    i = skipSpace(json, keyEnd);
    if (json[i] !== COLON) return undefined;
    i = skipSpace(json, i + 1);
    if (json[i] !== QUOTE) return undefined;
    const valueEnd = stringEnd(json, i);
    if (key === 'text') {
      textJson = json.subarray(i, valueEnd);
      // Holds the key's place, as JSON.parse would; the decoded text comes once it is known.
      fields.text = '';
    } else {
      fields[key] = JSON.parse(json.toString('utf8', i, valueEnd)) as string;
    }
    i = skipSpace(json, valueEnd);
    if (json[i] === COMMA) {
      i = skipSpace(json, i + 1);
      continue;
    }
    if (json[i] !== CLOSE_BRACE) return undefined;
    if (skipSpace(json, i + 1) !== json.length) return undefined;
    break;
  }
  if (textJson === undefined || !isUtf8(textJson)) return undefined;
  // An ASCII literal reads the same as Latin-1, which Node copies without decoding UTF-8 (and
  // from about 1 MB on keeps outside V8's heap, so that JSON.parse's input is no garbage).
  const ascii = isAscii(textJson);
  const text = JSON.parse(textJson.toString(ascii ? 'latin1' : 'utf8')) as string;
  fields.text = text;
  const utf8Bytes = ascii && textJson.indexOf('\\u') === -1 ? text.length : undefined;
  Object.defineProperty(fields, ENCODED_TEXT, { value: { text, json: textJson, utf8Bytes } });
  return fields;
}

/** Index just past the closing quote of the string literal opening at `start`. */
function stringEnd(json: Buffer, start: number): number {
  for (let from = start + 1; ;) {
    const quote = json.indexOf(QUOTE, from);
    if (quote === -1) throw new SyntaxError('unterminated string');
    // Escaped when an odd number of backslashes precede it.
    let backslashes = 0;
    while (json[quote - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

function skipSpace(json: Buffer, from: number): number {
  let i = from;
  while (i < json.length) {
    const byte = json[i];
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) break;
    i++;
  }
  return i;
}
