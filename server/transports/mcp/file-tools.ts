import { Readable } from 'node:stream';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import mime from 'mime-types';
import { InvalidRequestError } from '../../errors.js';
import type { OpenFile, WorkspaceFiles } from '../../workspace/files.js';
import { formatBytes, text } from './answers.js';

/** Images a model can look at: the formats MCP clients pass on as images. */
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

export interface ReadOptions {
  maxTextChars: number;
  maxFileBytes: number;
  baseUrl: string;
}

/** The download URL of a workspace file, each segment encoded as the file routes read it. */
export function downloadUrl(baseUrl: string, display: string): string {
  return `${baseUrl}/files/${display.split('/').map(encodeURIComponent).join('/')}`;
}

export async function listFiles(files: WorkspaceFiles, path: string, limit: number, cursor: string | undefined): Promise<CallToolResult> {
  const listing = await files.list(path, { limit, cursor });
  const lines = listing.entries.map((entry) =>
    entry.type === 'dir'
      ? `${entry.name}/`
      : `${entry.name}  ${entry.size!.toLocaleString('en-US')} bytes  ${new Date(entry.modified * 1000).toISOString().slice(0, 19)}Z`,
  );
  const count = `${listing.entries.length} ${listing.entries.length === 1 ? 'entry' : 'entries'}`;
  const header = `${listing.path === '.' ? 'Workspace root' : listing.path}: ${cursor === undefined ? '' : 'continued, '}${count}`;
  if (listing.next_cursor !== null)
    lines.push(
      `[more entries follow: call list_files with path ${JSON.stringify(listing.path)} and cursor ${JSON.stringify(listing.next_cursor)}]`,
    );
  if (listing.omitted > 0)
    lines.push(`[${listing.omitted} entries with names that are not valid UTF-8 or hold control characters are not listed]`);
  return text(lines.length === 0 ? `${header} (empty directory)` : `${header}\n${lines.join('\n')}`);
}

/**
 * Text as text, images as images, other files as an embedded blob; what is too large for an
 * answer is cut (text) or replaced by its download URL. Only what the answer can carry is
 * read: a 10 GB file costs the same as a small one.
 */
export async function readFile(files: WorkspaceFiles, path: string, options: ReadOptions): Promise<CallToolResult> {
  const file = await files.openFile(path);
  const url = downloadUrl(options.baseUrl, file.display);
  const type = mime.lookup(file.name) || 'application/octet-stream';
  const tooLarge = `${file.display} is ${file.size.toLocaleString('en-US')} bytes of ${type}, more than the ${formatBytes(options.maxFileBytes)} this tool returns. Download it with GET ${url} (with the same access token), or work on it with execute_code.`;

  if (IMAGE_TYPES.has(type)) {
    if (file.size > options.maxFileBytes) {
      await file.close();
      return text(tooLarge);
    }
    return { content: [{ type: 'image', data: (await readPrefix(file, file.size)).toString('base64'), mimeType: type }] };
  }

  // Enough bytes for the text an answer carries (a character is at most 4 bytes in UTF-8), or
  // the whole file when it can be embedded.
  const wanted = Math.min(file.size, Math.max(options.maxTextChars * 4, file.size <= options.maxFileBytes ? file.size : 0));
  const bytes = await readPrefix(file, wanted);
  const decoded = decodeText(bytes, wanted < file.size);
  if (decoded !== undefined) {
    if (decoded.length <= options.maxTextChars && wanted === file.size) return text(decoded);
    const shown = decoded.slice(0, options.maxTextChars);
    return text(
      `${shown}\n[... cut: ${file.display} is ${file.size.toLocaleString('en-US')} bytes; the first ${shown.length.toLocaleString('en-US')} characters are shown. ` +
        `Read further parts with execute_code (e.g. open(path).read()[start:end]), or download it with GET ${url}.]`,
    );
  }
  if (file.size > options.maxFileBytes) return text(tooLarge);
  return {
    content: [
      { type: 'text', text: `${file.display}: ${file.size.toLocaleString('en-US')} bytes of ${type}, embedded below.` },
      { type: 'resource', resource: { uri: url, mimeType: type, blob: bytes.toString('base64') } },
    ],
  };
}

/** Reads the first `length` bytes and closes the file. */
async function readPrefix(file: OpenFile, length: number): Promise<Buffer> {
  if (length === 0) {
    await file.close();
    return Buffer.alloc(0);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of file.stream(0, length - 1)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The bytes as text when they are UTF-8 without NUL bytes, else undefined. A prefix of a
 * longer file may end inside a character: that last partial character is dropped.
 */
function decodeText(bytes: Buffer, isPrefix: boolean): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: isPrefix });
  } catch {
    return undefined;
  }
}

export async function writeFile(
  files: WorkspaceFiles,
  path: string,
  content: string,
  encoding: 'utf8' | 'base64',
  maxBytes: number,
): Promise<CallToolResult> {
  const bytes = encoding === 'base64' ? decodeBase64(content) : Buffer.from(content, 'utf8');
  const result = await files.write(path, Readable.from([bytes]), { maxBytes });
  return text(`${result.created ? 'Created' : 'Replaced'} ${result.path} (${result.size.toLocaleString('en-US')} bytes).`);
}

/** Node's decoder skips what is not base64; a file written from a mangled string must not be. */
function decodeBase64(content: string): Buffer {
  const compact = content.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.replace(/=+$/, '').length % 4 === 1) {
    throw new InvalidRequestError("content is not valid base64 (standard alphabet A-Z a-z 0-9 + /, optional '=' padding)");
  }
  return Buffer.from(compact, 'base64');
}

export async function deleteFile(files: WorkspaceFiles, path: string): Promise<CallToolResult> {
  await files.remove(path);
  return text(`Deleted ${path}.`);
}
