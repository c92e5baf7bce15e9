import { Readable } from 'node:stream';
import { Busboy, type BusboyFileStream } from '@fastify/busboy';

/**
 * multipart/form-data uploads read with busboy, one part after the other: each part's body is
 * streamed to its reader as it arrives (busboy waits while a body is not read), so an upload of
 * any size holds a chunk or two in memory. What busboy refuses becomes a MultipartError.
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
  /** `filename=` as sent (a path: directories are kept), undefined when the part has none. */
  filename?: string;
  /** Read it (or not) before asking for the next part: what is left of it is then skipped. */
  body: AsyncIterable<Buffer>;
}

/** Bytes of one part's header block: far more than a Content-Disposition and a Content-Type. */
const MAX_HEADER_BYTES = 16 * 1024;

/**
 * The parts of `source`, a body of Content-Type `contentType`, in order. The next part is handed
 * out once the previous one's body was read or left: what is left of it is skipped.
 */
export async function* readMultipart(
  source: AsyncIterable<Buffer | Uint8Array>,
  contentType: string,
  maxParts: number,
): AsyncGenerator<MultipartPart> {
  let parser: ReturnType<typeof Busboy>;
  try {
    parser = new Busboy({
      headers: { 'content-type': contentType },
      // The SDK names each file by its full path; busboy would keep the last segment only.
      preservePath: true,
      // Every part is a body to stream, with or without a filename: none is buffered as a field.
      isPartAFile: () => true,
      limits: { parts: maxParts, files: maxParts, headerSize: MAX_HEADER_BYTES, headerPairs: 64 },
    });
  } catch (error) {
    throw new MultipartError((error as Error).message);
  }

  const waiting: Array<{ part: MultipartPart; stream: BusboyFileStream }> = [];
  let failure: Error | undefined;
  let finished = false;
  let wake: (() => void) | undefined;
  const notify = () => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const fail = (error: Error) => {
    failure ??= error;
    notify();
  };
  const tooMany = () => fail(new MultipartError(`more than ${maxParts} parts in one upload`));

  parser.on('file', (name: string, stream: BusboyFileStream, filename: string | undefined) => {
    waiting.push({ part: { name, filename, body: partBody(stream, () => failure) }, stream });
    notify();
  });
  parser.on('partsLimit', tooMany);
  parser.on('filesLimit', tooMany);
  parser.on('error', (error: unknown) => fail(new MultipartError(describe(error))));
  parser.on('finish', () => {
    finished = true;
    notify();
  });
  const input = Readable.from(source);
  input.on('error', fail);
  input.pipe(parser);

  try {
    for (;;) {
      if (failure) throw failure;
      const next = waiting.shift();
      if (next) {
        yield next.part;
        // Left unread, or read in part: busboy goes on to the next part once this one is drained.
        next.stream.resume();
        continue;
      }
      if (finished) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    input.unpipe(parser);
    input.destroy();
    for (const { stream } of waiting) stream.resume();
  }
}

/** A part's bytes; a body cut short fails with a MultipartError, and leaving early does not stop the parser. */
async function* partBody(stream: BusboyFileStream, failure: () => Error | undefined): AsyncGenerator<Buffer> {
  try {
    // Not destroyed when the reader stops early: the rest is skipped by resume() instead.
    for await (const chunk of stream.iterator({ destroyOnReturn: false })) yield chunk as Buffer;
  } catch (error) {
    throw failure() ?? new MultipartError(describe(error));
  }
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // busboy's own words ("Unexpected end of multipart data", "Multipart: Boundary not found").
  return message.replace(/^Multipart: /, '').slice(0, 200);
}
