import { randomBytes } from 'node:crypto';
import { base64Encode } from '@bufbuild/protobuf/wire';
import { describe, expect, it } from 'vitest';
import { installUint8ArrayToBase64 } from '../../server/uint8array-base64.js';

// protobuf-es looked for a native toBase64 when it loaded, above: it found none (Node 20 and 24
// have none), so base64Encode here is its own encoder, the reference for ours.
const hadNative = typeof Uint8Array.prototype.toBase64 === 'function';

describe('Uint8Array.prototype.toBase64 where the runtime lacks it', () => {
  installUint8ArrayToBase64();

  it.skipIf(hadNative)('encodes as protobuf-es does, in its three encodings, at every length and offset', () => {
    const encodings = {
      std: { alphabet: 'base64' },
      std_raw: { alphabet: 'base64', omitPadding: true },
      url: { alphabet: 'base64url', omitPadding: true },
    } as const;
    for (let length = 0; length < 70; length++) {
      const whole = randomBytes(length + 3);
      // A view into a larger buffer: only its own bytes count.
      const bytes = new Uint8Array(whole.buffer, whole.byteOffset + 1, length);
      for (const [encoding, options] of Object.entries(encodings)) {
        expect(bytes.toBase64!(options), `${encoding}, ${length} bytes`).toBe(base64Encode(bytes, encoding as keyof typeof encodings));
      }
    }
  });

  it('follows the standard: RFC 4648 vectors, padding on request in base64url, a bad alphabet refused', () => {
    const bytes = (text: string) => new TextEncoder().encode(text);
    expect(['', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar'].map((text) => bytes(text).toBase64!())).toEqual([
      '',
      'Zg==',
      'Zm8=',
      'Zm9v',
      'Zm9vYg==',
      'Zm9vYmE=',
      'Zm9vYmFy',
    ]);
    expect(new Uint8Array([0xfb, 0xff]).toBase64!()).toBe('+/8=');
    expect(new Uint8Array([0xfb, 0xff]).toBase64!({ alphabet: 'base64url' })).toBe('-_8=');
    expect(new Uint8Array([0xfb, 0xff]).toBase64!({ alphabet: 'base64url', omitPadding: true })).toBe('-_8');
    expect(() => new Uint8Array(1).toBase64!({ alphabet: 'hex' as 'base64' })).toThrow(TypeError);
    expect(Object.keys(new Uint8Array(1))).toEqual(['0']);
  });
});
