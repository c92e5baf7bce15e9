/**
 * A streaming multipart/form-data reader (RFC 7578): parts one after the other, each body read
 * as it arrives, so an upload of any size holds no more than a chunk and a delimiter in memory.
 * No parser library is in the dependencies; this one reads what browsers, undici's FormData and
 * curl send, and refuses anything else with a MultipartError.
 */

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

export interface MultipartPart {
  /** The form field's name (`name=` of Content-Disposition). */
  name: string;
  /** `filename=`, undefined when the part has none. */
  filename?: string;
  /** Read it (or not) before asking for the next part: what is left of it is then skipped. */
  body: AsyncIterable<Buffer>;
}

/** Bytes of one part's header block: far more than a Content-Disposition and a Content-Type. */
const MAX_HEADER_BYTES = 16 * 1024;
/** RFC 2046: at most 70 characters. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/** The boundary of a `multipart/form-data; boundary=...` Content-Type; throws when there is none. */
export function boundaryOf(contentType: string): string {
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (boundary === undefined || !BOUNDARY.test(boundary)) throw new MultipartError('the multipart Content-Type has no valid boundary');
  return boundary;
}

/**
 * The parts of `source`, in order. The next part is read only once the previous body has been
 * consumed; a body that is not consumed is skipped when the next part is asked for.
 */
export async function* readMultipart(
  source: AsyncIterable<Buffer | Uint8Array>,
  boundary: string,
  maxParts: number,
): AsyncGenerator<MultipartPart> {
  const reader = new ChunkReader(source[Symbol.asyncIterator]());
  const dashBoundary = Buffer.from(`--${boundary}`);
  const delimiter = Buffer.from(`\r\n--${boundary}`);

  // The preamble (RFC 2046 allows one) ends at the first boundary, which has no CRLF before it
  // when it opens the body.
  await reader.skipPast(dashBoundary, MAX_HEADER_BYTES, 'the body does not start with the multipart boundary');
  for (let count = 0; ; count++) {
    // After a boundary: `--` ends the body, CRLF starts a part.
    const after = await reader.take(2, 'the body ends inside a boundary');
    if (after.equals(Buffer.from('--'))) return;
    if (!after.equals(Buffer.from('\r\n'))) throw new MultipartError('a multipart boundary is followed by neither CRLF nor --');
    if (count >= maxParts) throw new MultipartError(`more than ${maxParts} parts in one upload`);
    const header = await reader.takeUntil(Buffer.from('\r\n\r\n'), MAX_HEADER_BYTES, 'a part has no end of headers');
    const part = partHeaders(header.toString('utf8'));
    let finished = false;
    const body = (async function* () {
      yield* reader.until(delimiter);
      finished = true;
    })();
    yield { ...part, body };
    if (!finished) {
      // Skipped, or left half-read: the rest of it is read past here.
      await body.return(undefined);
      for await (const chunk of reader.until(delimiter)) void chunk;
    }
  }
}

function partHeaders(block: string): { name: string; filename?: string } {
  let disposition: string | undefined;
  for (const line of block.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon === -1) throw new MultipartError('a part header line has no colon');
    if (line.slice(0, colon).trim().toLowerCase() === 'content-disposition') disposition = line.slice(colon + 1).trim();
  }
  if (disposition === undefined) throw new MultipartError('a part has no Content-Disposition header');
  const params = dispositionParams(disposition);
  const name = params.get('name');
  if (name === undefined) throw new MultipartError('a part has no name in its Content-Disposition');
  return { name, filename: params.get('filename') };
}

/** `form-data; name="file"; filename="a b.txt"`: quoted strings with backslash escapes, or tokens. */
function dispositionParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  const type = /^\s*([^;\s]+)\s*/.exec(value);
  if (!type || type[1]!.toLowerCase() !== 'form-data') throw new MultipartError('a part is not form-data');
  let rest = value.slice(type[0].length);
  while (rest.length > 0) {
    const param = /^;\s*([^=\s;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))\s*/s.exec(rest);
    if (!param) throw new MultipartError('a part has a malformed Content-Disposition');
    const key = param[1]!.toLowerCase();
    // Only the first of a repeated parameter counts, as Go's mime.ParseMediaType (envd) refuses duplicates.
    if (params.has(key)) throw new MultipartError(`a part's Content-Disposition repeats ${key}`);
    params.set(key, param[2] !== undefined ? param[2].replace(/\\(.)/gs, '$1') : param[3]!);
    rest = rest.slice(param[0].length);
  }
  return params;
}

/** Buffered reading from an async iterator of chunks, holding at most a chunk plus what a search needs. */
class ChunkReader {
  #buffer: Buffer = Buffer.alloc(0);
  #ended = false;

  constructor(private readonly source: AsyncIterator<Buffer | Uint8Array>) {}

  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    const next = await this.source.next();
    if (next.done) {
      this.#ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    return true;
  }

  async take(length: number, truncated: string): Promise<Buffer> {
    while (this.#buffer.length < length) if (!(await this.#fill())) throw new MultipartError(truncated);
    const taken = this.#buffer.subarray(0, length);
    this.#buffer = this.#buffer.subarray(length);
    return taken;
  }

  async takeUntil(marker: Buffer, max: number, truncated: string): Promise<Buffer> {
    for (;;) {
      const at = this.#buffer.indexOf(marker);
      if (at !== -1) {
        if (at > max) throw new MultipartError(`${truncated} within ${max} bytes`);
        const taken = this.#buffer.subarray(0, at);
        this.#buffer = this.#buffer.subarray(at + marker.length);
        return taken;
      }
      if (this.#buffer.length > max + marker.length) throw new MultipartError(`${truncated} within ${max} bytes`);
      if (!(await this.#fill())) throw new MultipartError(truncated);
    }
  }

  async skipPast(marker: Buffer, max: number, truncated: string): Promise<void> {
    await this.takeUntil(marker, max, truncated);
  }

  /** The bytes before `marker`, as they come; the marker itself is consumed. */
  async *until(marker: Buffer): AsyncGenerator<Buffer> {
    for (;;) {
      const at = this.#buffer.indexOf(marker);
      if (at !== -1) {
        const last = this.#buffer.subarray(0, at);
        this.#buffer = this.#buffer.subarray(at);
        // The marker stays in the buffer until the last chunk has been taken: a reader that
        // stops here leaves it for the next search, which must not run on into the next part.
        if (last.length > 0) yield last;
        this.#buffer = this.#buffer.subarray(marker.length);
        return;
      }
      // All but the tail that could be the marker's beginning is body.
      const safe = this.#buffer.length - (marker.length - 1);
      if (safe > 0) {
        const chunk = this.#buffer.subarray(0, safe);
        this.#buffer = this.#buffer.subarray(safe);
        yield chunk;
      }
      if (!(await this.#fill())) throw new MultipartError('the body ends inside a part (no closing boundary)');
    }
  }
}
