/**
 * envd's `GET /files` and `POST /files` (e2b's spec/envd/envd.yaml) over SandboxFiles: the
 * transfers of e2b's `sandbox.files.read`/`write`/`writeFiles` and of its upload and download
 * URLs. Bodies stream both ways; errors answer in envd's shape, `{"code": <status>, "message"}`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { SandboxFileError, type FileErrorCode, type SandboxFiles } from '../../sandbox-files/types.js';
import { MultipartError, readMultipart } from './multipart.js';

/** What a /files request failed with: its HTTP status and envd's message. */
export class EnvdHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'EnvdHttpError';
  }

  get body(): { code: number; message: string } {
    return { code: this.status, message: this.message };
  }
}

/** envd's statuses for the host's errors, and those this server adds (403 where envd says 500). */
export function httpStatusOf(code: FileErrorCode): number {
  switch (code) {
    case 'ENOENT':
      return 404;
    case 'EACCES':
    case 'EPERM':
      return 403;
    case 'ENOTDIR':
    case 'EISDIR':
    case 'EINVAL':
    case 'ENAMETOOLONG':
    case 'ELOOP':
      return 400;
    case 'EEXIST':
    case 'ENOTEMPTY':
      return 409;
    case 'ENOSPC':
      return 507;
    case 'ELIMIT':
      return 429;
    default:
      return 500;
  }
}

export function toEnvdHttpError(error: unknown): EnvdHttpError {
  if (error instanceof EnvdHttpError) return error;
  if (error instanceof SandboxFileError) return new EnvdHttpError(httpStatusOf(error.code), error.message);
  if (error instanceof MultipartError) return new EnvdHttpError(400, `invalid multipart body: ${error.message}`);
  if ((error as { code?: string }).code === 'Z_DATA_ERROR') return new EnvdHttpError(400, 'the gzip-encoded body is not valid gzip');
  return new EnvdHttpError(500, (error as Error).message ?? String(error));
}

/**
 * An upload's target as the client named it. Names with a `..` part or a NUL are refused, from
 * the query and from a part's filename alike: a name that climbs is one a client built from
 * input it did not check, and NUL ends a path in the kernel, so the file would land elsewhere.
 */
export function uploadTarget(name: string, where: string): string {
  if (name === '') throw new EnvdHttpError(400, `${where} is empty`);
  if (name.includes('\0')) throw new EnvdHttpError(400, `${where} contains a NUL character`);
  if (name.split('/').includes('..')) throw new EnvdHttpError(400, `${where} has a '..' part: name the file without it`);
  if (name.length > 4096) throw new EnvdHttpError(400, `${where} is longer than 4096 characters`);
  return name;
}

export interface WrittenEntry {
  name: string;
  type: 'file';
  path: string;
}

export interface UploadOptions {
  files: SandboxFiles;
  /** `?path=`: every file part goes there (envd refuses a second one); else each part's filename. */
  path?: string;
  contentType: string;
  /** `Content-Encoding: gzip` (the SDK's `gzip` option), for a raw body. */
  gzip: boolean;
  /** The bytes of the whole request body at most (MAX_UPLOAD_BYTES). */
  maxBytes: number;
  maxParts: number;
  signal: AbortSignal;
}

/**
 * Writes an upload: a raw body (`application/octet-stream`, to `path`) or a multipart/form-data
 * one, whose `file` parts are written one after the other (other fields are skipped, as envd
 * does). Answers the written entries as envd does.
 */
export async function upload(body: Readable, options: UploadOptions): Promise<WrittenEntry[]> {
  const { files, signal } = options;
  const mediaType = options.contentType.split(';')[0]!.trim().toLowerCase();
  const limited = new ByteLimit(options.maxBytes);
  // The host's end wraps a failing source in its own error: what failed here (the size bound,
  // bad gzip) is the answer, not how the write ended.
  let sourceFailure: Error | undefined;
  const write = async (target: string, source: AsyncIterable<Uint8Array>) => {
    try {
      return await files.write(target, source, signal);
    } catch (error) {
      throw sourceFailure ?? error;
    }
  };
  limited.once('error', (error) => (sourceFailure ??= error));
  pipeline(body, limited, { signal }).catch((error: unknown) => limited.destroy(error as Error));

  if (mediaType === 'application/octet-stream') {
    if (options.path === undefined) throw new EnvdHttpError(400, 'path query parameter is required for raw body upload');
    const target = uploadTarget(options.path, 'path');
    let source: AsyncIterable<Uint8Array> = limited;
    if (options.gzip) {
      const gunzip = createGunzip();
      gunzip.once('error', (error) => (sourceFailure ??= error));
      pipeline(limited, gunzip).catch((error: unknown) => gunzip.destroy(error as Error));
      source = gunzip;
    }
    const entry = await write(target, source);
    return [{ name: entry.name, type: 'file', path: entry.path }];
  }
  if (mediaType !== 'multipart/form-data') {
    throw new EnvdHttpError(
      400,
      `unsupported content type: ${mediaType.slice(0, 100)}, expected multipart/form-data or application/octet-stream`,
    );
  }
  if (options.gzip) throw new EnvdHttpError(400, 'Content-Encoding: gzip is accepted for application/octet-stream uploads only');

  const target = options.path === undefined ? undefined : uploadTarget(options.path, 'path');
  const written: WrittenEntry[] = [];
  const names = new Set<string>();
  const sameTarget = (where: string) =>
    new EnvdHttpError(400, `you cannot upload multiple files to the same path '${where}' in one upload request`);
  for await (const part of readMultipart(limited, options.contentType, options.maxParts)) {
    if (part.name !== 'file') continue;
    const name = target ?? uploadTarget(part.filename ?? '', "a part's filename");
    // Refused before the second one is written (envd's words): it would replace the first.
    if (names.has(name)) throw sameTarget(name);
    names.add(name);
    const entry = await write(name, part.body);
    // The same file named two ways (relative and absolute) is seen only once written.
    if (written.some((earlier) => earlier.path === entry.path)) throw sameTarget(entry.path);
    written.push({ name: entry.name, type: 'file', path: entry.path });
  }
  if (written.length === 0) throw new EnvdHttpError(400, 'the multipart body has no part named "file"');
  return written;
}

/** Passes bytes through until `max`, then fails the stream with 413. */
class ByteLimit extends Transform {
  #seen = 0;

  constructor(private readonly max: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.max) callback(new EnvdHttpError(413, `the upload is larger than MAX_UPLOAD_BYTES (${this.max} bytes)`));
    else callback(null, chunk);
  }
}

/** Opens a file for `GET /files`: its entry (for the headers) and its bytes. */
export async function download(files: SandboxFiles, path: string, signal: AbortSignal): Promise<{ name: string; stream: Readable }> {
  if (path === '') throw new EnvdHttpError(400, 'path query parameter is required');
  if (path.includes('\0')) throw new EnvdHttpError(400, 'path contains a NUL character');
  const { entry, stream } = await files.read(path, signal);
  return { name: entry.name, stream };
}

export interface SignedRequest {
  /** `path` as the URL has it (empty when absent), as the SDK signed it. */
  path: string;
  operation: 'read' | 'write';
  /** `username` as the URL has it, empty when absent. */
  username: string;
  signature: string;
  /** `signature_expiration`, Unix seconds, as the URL has it. */
  expiration?: string;
}

/**
 * Whether `signature` is the one e2b's SDK (`getSignature`) and envd compute from the access
 * token: `v1_` + unpadded base64 of SHA-256 over `path:operation:user:token[:expiration]`, and
 * its expiration, when it has one, is not past.
 */
export function signatureIsValid(request: SignedRequest, token: string, nowSeconds = Date.now() / 1000): boolean {
  if (request.expiration !== undefined && !/^\d{1,12}$/.test(request.expiration)) return false;
  const fields = [request.path, request.operation, request.username, token];
  if (request.expiration !== undefined) fields.push(request.expiration);
  const expected = `v1_${createHash('sha256').update(fields.join(':'), 'utf8').digest('base64').replace(/=+$/, '')}`;
  // Digests of both, so that the comparison's time says nothing of how much matched.
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  if (!timingSafeEqual(digest(expected), digest(request.signature))) return false;
  return request.expiration === undefined || Number(request.expiration) >= Math.floor(nowSeconds);
}

/** Reads the rest of a body and drops it; false when it was more than `maxBytes` or too slow. */
export function discardRest(body: IncomingMessage, maxBytes: number, timeoutMs: number): Promise<boolean> {
  if (body.complete) return Promise.resolve(true);
  if (body.destroyed) return Promise.resolve(false);
  body.unpipe();
  return new Promise((resolve) => {
    let seen = 0;
    const done = (drained: boolean) => {
      clearTimeout(timer);
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      if (!drained) body.pause();
      resolve(drained);
    };
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > maxBytes) done(false);
    };
    const onEnd = () => done(true);
    const onError = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    body.resume();
  });
}
