/**
 * `Uint8Array.prototype.toBase64` (ES2026) where the runtime lacks it, as Node 20 and 24 do.
 *
 * Why: e2b's SDKs speak Connect in JSON, where every byte of a command's output travels as a
 * base64 string, and protobuf-es encodes those with the native method when it exists and with
 * a loop in JavaScript otherwise: about 24 ms of the API's CPU per MiB of output, against 0.4 ms
 * for Node's own encoder. protobuf-es looks the method up once, when it loads, so this runs
 * first, from main.ts. Only the encoder: decoding is input, which is small.
 */
export function installUint8ArrayToBase64(): void {
  if (typeof Uint8Array.prototype.toBase64 === 'function') return;
  Object.defineProperty(Uint8Array.prototype, 'toBase64', {
    value: toBase64,
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

interface ToBase64Options {
  alphabet?: 'base64' | 'base64url';
  omitPadding?: boolean;
}

declare global {
  interface Uint8Array {
    toBase64?(options?: ToBase64Options): string;
  }
}

function toBase64(this: Uint8Array, options: ToBase64Options = {}): string {
  const alphabet = options.alphabet ?? 'base64';
  if (alphabet !== 'base64' && alphabet !== 'base64url') throw new TypeError(`unknown base64 alphabet: ${String(alphabet)}`);
  // Node's base64url never pads; its base64 always does.
  const text = Buffer.from(this.buffer, this.byteOffset, this.byteLength).toString(alphabet);
  if (alphabet === 'base64') return options.omitPadding ? text.replace(/=+$/, '') : text;
  return options.omitPadding ? text : text + '='.repeat((4 - (text.length % 4)) % 4);
}
