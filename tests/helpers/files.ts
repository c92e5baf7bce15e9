import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { authHeaders, baseUrl, createContext, deleteContext, errorsOf, execute, stdoutOf } from './api.js';

/**
 * What the tests of the file API (tests/integration/files-*.test.ts) share: requests whose
 * paths go out byte for byte, and a directory and a context of each test file's own.
 */

export const dir = `files-test-${randomBytes(4).toString('hex')}`;
export const target = new URL(baseUrl);

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * A request whose path goes out byte for byte: fetch and URL would resolve `..` and `%2e%2e`
 * before sending, and hostile paths are exactly what must reach the server.
 */
export function send(method: string, rawPath: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: target.hostname, port: target.port, method, path: rawPath, headers: authHeaders(headers) },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

export const files = (p: string) => `/files/${p.split('/').map(encodeURIComponent).join('/')}`;
export const put = (p: string, body: Buffer | string, headers: Record<string, string> = {}) => send('PUT', files(p), body, headers);
export const get = (p: string, headers: Record<string, string> = {}) => send('GET', files(p), undefined, headers);
export const del = (p: string) => send('DELETE', files(p));
export const list = (p: string) => send('GET', `/files?path=${encodeURIComponent(p)}`);
export const jsonOf = <T = Record<string, unknown>>(response: RawResponse) => JSON.parse(response.body.toString('utf8')) as T;

export interface Listing {
  path: string;
  entries: Array<{ name: string; type: 'file' | 'dir'; size: number | null; modified: number }>;
}

let contextId: string;

/** Runs Python in this file's own context, whose cwd is the workspace root; returns stdout. */
export async function python(code: string): Promise<string> {
  const events = await execute({ context_id: contextId, code });
  const errors = errorsOf(events);
  if (errors.length > 0) throw new Error(`Python failed: ${JSON.stringify(errors)}`);
  return stdoutOf(events);
}

export const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/**
 * Gives the calling test file its own context (the one {@link python} runs in) and removes the
 * file's directory and that context when the file is done.
 */
export function useFilesContext(): void {
  beforeAll(async () => {
    contextId = (await createContext()).id;
  });

  afterAll(async () => {
    await del(dir);
    await deleteContext(contextId);
  });
}

/** Python that prints `{relative path: sha256 or "-> target" or "dir"}` for a tree, as the kernel sees it. */
export const treeDigest = (tree: string) =>
  [
    'import hashlib, json, os',
    `top = ${JSON.stringify(tree)}`,
    'out = {}',
    'for here, dirs, names in os.walk(top):',
    '    for name in dirs + names:',
    '        full = os.path.join(here, name); rel = os.path.relpath(full, top)',
    '        if os.path.islink(full): out[rel] = "-> " + os.readlink(full)',
    '        elif os.path.isdir(full): out[rel] = "dir"',
    '        elif os.path.isfile(full): out[rel] = hashlib.sha256(open(full, "rb").read()).hexdigest()',
    'print(json.dumps(out, sort_keys=True))',
  ].join('\n');

/** The same digest for a local directory (what tar extracted). */
export async function localDigest(top: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(relative: string): Promise<void> {
    for (const name of await readdir(path.join(top, relative))) {
      const rel = relative ? `${relative}/${name}` : name;
      const stats = await lstat(path.join(top, rel));
      if (stats.isSymbolicLink()) out[rel] = `-> ${await readlink(path.join(top, rel))}`;
      else if (stats.isDirectory()) {
        out[rel] = 'dir';
        await walk(rel);
      } else out[rel] = sha256(await readFile(path.join(top, rel)));
    }
  }
  await walk('');
  return out;
}
