/**
 * Conditional and range requests for downloads (RFC 9110 sections 13 and 14), as pure
 * functions of the request headers and the file's validators. Small enough to own: a library
 * such as @fastify/send opens files by path itself, which would undo the descriptor-based
 * containment of the workspace.
 */

export interface Validators {
  size: number;
  mtimeMs: number;
  /** A strong entity tag, quotes included. */
  etag: string;
}

export interface DownloadHeaders {
  range?: string | undefined;
  ifRange?: string | undefined;
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
}

export type DownloadPlan = { status: 304 } | { status: 200 } | { status: 206; start: number; end: number } | { status: 416 };

/** HTTP dates have whole seconds: Last-Modified and If-Modified-Since compare at that grain. */
export function lastModified(mtimeMs: number): string {
  return new Date(Math.floor(mtimeMs / 1000) * 1000).toUTCString();
}

/** Decides how to answer a GET or HEAD for a file: 304, the whole file, one range, or 416. */
export function planDownload(headers: DownloadHeaders, file: Validators): DownloadPlan {
  if (notModified(headers, file)) return { status: 304 };
  if (headers.range === undefined || !rangeApplies(headers.ifRange, file)) return { status: 200 };
  const range = parseRange(headers.range, file.size);
  if (range === undefined) return { status: 200 };
  if (range === 'unsatisfiable') return { status: 416 };
  return { status: 206, ...range };
}

function notModified(headers: DownloadHeaders, file: Validators): boolean {
  // If-None-Match takes precedence: If-Modified-Since is ignored when it is present.
  if (headers.ifNoneMatch !== undefined) {
    const tags = headers.ifNoneMatch.split(',').map((tag) => tag.trim());
    return tags.some((tag) => tag === '*' || opaque(tag) === opaque(file.etag));
  }
  if (headers.ifModifiedSince !== undefined) {
    const since = Date.parse(headers.ifModifiedSince);
    return !Number.isNaN(since) && Math.floor(file.mtimeMs / 1000) * 1000 <= since;
  }
  return false;
}

/** Weak comparison: `W/"x"` and `"x"` match. */
function opaque(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/**
 * If-Range: resume only if the file is still the one the client has part of (same strong
 * tag, or exactly the same Last-Modified date); otherwise send it whole.
 */
function rangeApplies(ifRange: string | undefined, file: Validators): boolean {
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return value === file.etag;
  return value === lastModified(file.mtimeMs);
}

/**
 * Parses a `bytes=` range against a file size. Returns undefined when the header is to be
 * ignored (another unit, malformed, or several ranges: serving the whole file instead of a
 * multipart answer is allowed and every client copes), 'unsatisfiable' for 416.
 */
export function parseRange(header: string, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return undefined;
  const [, first, last] = match as unknown as [string, string, string];
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (!Number.isSafeInteger(suffix)) return undefined;
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  // A last position beyond any file (even beyond 2^53) just means "to the end".
  const end = last === '' || !Number.isSafeInteger(Number(last)) ? Number.MAX_SAFE_INTEGER : Number(last);
  if (!Number.isSafeInteger(start) || end < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}
