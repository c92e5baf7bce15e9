import path from 'node:path';
import { InvalidPathError, PathOutsideWorkspaceError } from '../errors.js';

/** Linux limits: NAME_MAX per segment, PATH_MAX for the whole path (bytes, with its NUL). */
export const MAX_SEGMENT_BYTES = 255;
export const MAX_PATH_BYTES = 4095;

/**
 * `%2e`, `%2f`, `%5c` and `%00` left over after the router's single decoding mean the client
 * encoded twice. Such names are refused rather than stored literally, so that nothing between
 * the client and the server (a proxy, a second decoding) can turn them into `..` or a separator.
 */
const ENCODED_SEPARATOR = /%(?:2e|2f|5c|00)/i;

/**
 * The names the API deals in: valid UTF-8 (a JavaScript string that came from a UTF-8 request
 * is) without control characters. Tabs, newlines and escape sequences in names break the
 * shells, logs and terminals that handle them later; a name that is not UTF-8 cannot be sent
 * or shown in JSON faithfully. The API refuses to create or address other names, and
 * listings and archives leave them out (see {@link isServableName}).
 */
// eslint-disable-next-line no-control-regex -- control characters are what it looks for
const CONTROL = /[\u0001-\u001f\u007f]/;

/** Whether a name read from the disk (as bytes) is one the API can list, serve and archive. */
export function isServableName(name: Buffer): boolean {
  const text = name.toString('utf8');
  // A lossy decoding shows as U+FFFD; a genuine U+FFFD in the name survives the round trip.
  return !CONTROL.test(text) && Buffer.from(text, 'utf8').equals(name);
}

/**
 * Names the server gives its own work in progress: `.upload-*.part` beside an upload's target,
 * `.extract-*` for an archive being unpacked, `.copy-*` for a copy being made. Listings,
 * archives and copies leave them out, and no client path, archive entry or MCP write may name
 * one: a client could otherwise make files that the API then hides, or that its clean-up takes
 * for its own.
 */
const INTERNAL_NAME = /^\.(?:upload-[0-9a-f]{24}\.part|(?:extract|copy)-[0-9a-f]{24})$/;

export function isInternalName(name: string): boolean {
  return INTERNAL_NAME.test(name);
}

export const RESERVED =
  "names like .upload-….part, .extract-… and .copy-… (a dot, the word, a dash and 24 hex digits) are reserved for the server's work in progress";

/** A request path checked and split: `segments` is [] for the workspace root. */
export interface WorkspacePath {
  /** Normalized workspace-relative form for answers and messages: `.` or `a/b.txt`. */
  display: string;
  segments: string[];
}

/** Quotes a client-supplied path for an error message, cut short so that messages stay small. */
export function quote(raw: string): string {
  return JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}…` : raw);
}

/**
 * Validates a workspace-relative POSIX path as the client sent it (already percent-decoded
 * once) and splits it into segments. Lexical only: where symlinks lead is decided by
 * {@link Workspace.resolve} on real paths. Refuses rather than repairs: `..` anywhere,
 * absolute paths, backslashes, NUL bytes, double-encoded separators and over-long paths.
 */
export function parseWorkspacePath(raw: string): WorkspacePath {
  if (raw.includes('\0')) throw new InvalidPathError(quote(raw), 'NUL bytes are not allowed');
  if (CONTROL.test(raw)) throw new InvalidPathError(quote(raw), 'control characters (U+0001-U+001F, U+007F) are not allowed in names');
  if (raw.includes('\\')) throw new InvalidPathError(quote(raw), 'backslashes are not allowed; use / to separate segments');
  if (ENCODED_SEPARATOR.test(raw)) {
    throw new InvalidPathError(quote(raw), "percent-encoded '.', '/', '\\' or NUL are not allowed (was the path encoded twice?)");
  }
  if (path.posix.isAbsolute(raw)) throw new PathOutsideWorkspaceError(quote(raw));

  const segments: string[] = [];
  for (const segment of raw.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') throw new PathOutsideWorkspaceError(quote(raw));
    if (isInternalName(segment)) throw new InvalidPathError(quote(raw), RESERVED);
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
      throw new InvalidPathError(quote(raw), `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
    }
    segments.push(segment);
  }
  const display = segments.length === 0 ? '.' : segments.join('/');
  if (Buffer.byteLength(display) > MAX_PATH_BYTES) {
    throw new InvalidPathError(quote(raw), `the path is longer than ${MAX_PATH_BYTES} bytes`);
  }
  return { display, segments };
}

/**
 * Whether `target` is `root` or inside it. Both must be absolute and normalized (real paths).
 * A string prefix test would let `/home/user2` pass for `/home/user`; path.relative does not.
 */
export function isInside(root: string, target: string): boolean {
  const relative = path.relative(root, target);
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}
