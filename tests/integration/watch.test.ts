import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authHeaders, baseUrl, errorsOf, execute, json, request } from '../helpers/api.js';
import { WsClient, type Frame } from './ws-client.js';

interface Line {
  type: string;
  [key: string]: unknown;
}

/** A GET /watch stream whose lines a test can wait for. */
class WatchStream {
  readonly lines: Line[] = [];
  ended = false;
  private readonly controller = new AbortController();

  static async open(query: string): Promise<WatchStream> {
    const stream = new WatchStream();
    const response = await fetch(`${baseUrl}/watch?${query}`, { headers: authHeaders(), signal: stream.controller.signal });
    expect(response.status, await (response.status === 200 ? Promise.resolve('') : response.clone().text())).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    void stream.read(response);
    await stream.waitFor((line) => line.type === 'watching');
    return stream;
  }

  private async read(response: Response): Promise<void> {
    const decoder = new TextDecoder();
    let pending = '';
    try {
      for await (const chunk of response.body!) {
        pending += decoder.decode(chunk as Uint8Array, { stream: true });
        let newline: number;
        while ((newline = pending.indexOf('\n')) >= 0) {
          this.lines.push(JSON.parse(pending.slice(0, newline)) as Line);
          pending = pending.slice(newline + 1);
        }
      }
    } catch {
      // aborted by close()
    }
    this.ended = true;
  }

  async waitFor(match: (line: Line) => boolean, timeoutMs = 10_000): Promise<Line> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(match);
      if (found) return found;
      if (this.ended) throw new Error(`the stream ended first; lines: ${JSON.stringify(this.lines)}`);
      if (Date.now() > deadline) throw new Error(`no such line within ${timeoutMs} ms; lines: ${JSON.stringify(this.lines)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  events(): Array<[string, unknown]> {
    return this.lines.filter((line) => !['watching', 'keepalive'].includes(line.type)).map((line) => [line.type, line.name]);
  }

  close(): void {
    this.controller.abort();
  }
}

const dir = 'watch-tests';

/**
 * Changes are made by kernel code in the default context (whose cwd is the workspace), so that
 * the suite holds against a container too, where the workspace is not on this machine's disk.
 */
async function inWorkspace(code: string): Promise<void> {
  const events = await execute({ code: `import os, shutil\n${code}` });
  expect(errorsOf(events)).toEqual([]);
}

describe('GET /watch', () => {
  beforeAll(async () => {
    await inWorkspace(`os.makedirs("${dir}/sub/deeper", exist_ok=True)`);
  });
  afterAll(async () => {
    await inWorkspace(`shutil.rmtree("${dir}", ignore_errors=True)`);
  });

  it('streams each kind of change, in order, for changes made through the API and by code', async () => {
    const stream = await WatchStream.open(`path=${dir}`);
    try {
      expect(stream.lines[0]).toEqual({ type: 'watching', path: dir, recursive: false });
      // Through the file API: its temporary upload name never shows, only the file it becomes.
      const put = await request('PUT', `/files/${dir}/api.txt`, 'first');
      expect(put.status).toBe(201);
      await stream.waitFor((line) => line.type === 'create' && line.name === 'api.txt');
      // By kernel code, on a file of its own (in the image it may not chmod the API's).
      await inWorkspace(`open("${dir}/a.txt", "w").close()`);
      await stream.waitFor((line) => line.type === 'create' && line.name === 'a.txt');
      await inWorkspace(`open("${dir}/a.txt", "a").write("second")`);
      await stream.waitFor((line) => line.type === 'write' && line.name === 'a.txt');
      await inWorkspace(`os.chmod("${dir}/a.txt", 0o600)`);
      await stream.waitFor((line) => line.type === 'chmod' && line.name === 'a.txt');
      await inWorkspace(`os.rename("${dir}/a.txt", "${dir}/b.txt")`);
      await stream.waitFor((line) => line.type === 'create' && line.name === 'b.txt');
      await inWorkspace(`os.remove("${dir}/b.txt")`);
      await stream.waitFor((line) => line.type === 'remove' && line.name === 'b.txt');

      const events = stream.events().filter(([, name]) => name === 'a.txt' || name === 'b.txt');
      const firstOf = (type: string, name: string) => events.findIndex(([t, n]) => t === type && n === name);
      expect(firstOf('create', 'a.txt')).toBe(0);
      expect(firstOf('write', 'a.txt')).toBeGreaterThan(firstOf('create', 'a.txt'));
      expect(firstOf('chmod', 'a.txt')).toBeGreaterThan(firstOf('write', 'a.txt'));
      expect(firstOf('rename', 'a.txt')).toBeGreaterThan(firstOf('chmod', 'a.txt'));
      expect(firstOf('create', 'b.txt')).toBeGreaterThan(firstOf('rename', 'a.txt'));
      expect(firstOf('remove', 'b.txt')).toBeGreaterThan(firstOf('create', 'b.txt'));
      expect(stream.events().some(([, name]) => String(name).startsWith('.upload-'))).toBe(false);
    } finally {
      stream.close();
    }
  });

  it('reports changes below the directory only when recursive', async () => {
    const flat = await WatchStream.open(`path=${dir}`);
    const deep = await WatchStream.open(`path=${dir}&recursive=true`);
    try {
      expect(deep.lines[0]).toEqual({ type: 'watching', path: dir, recursive: true });
      await inWorkspace(`open("${dir}/sub/deeper/x.txt", "w").write("x")`);
      await deep.waitFor((line) => line.type === 'create' && line.name === 'sub/deeper/x.txt');
      // A marker at the top: once the flat watch saw it, it would have seen the deep one too.
      await inWorkspace(`open("${dir}/marker.txt", "w").write("m")`);
      await flat.waitFor((line) => line.type === 'create' && line.name === 'marker.txt');
      expect(flat.events().some(([, name]) => String(name).includes('x.txt'))).toBe(false);
    } finally {
      flat.close();
      deep.close();
    }
  });

  it.each([
    ['a missing directory', `path=${dir}/nothing-here`, 404, 'ERR_FILE_NOT_FOUND'],
    ['a file', `path=${dir}/marker.txt`, 400, 'ERR_NOT_A_DIRECTORY'],
    ['a path outside the workspace', 'path=../..', 400, 'ERR_PATH_OUTSIDE_WORKSPACE'],
    ['a bad recursive', `path=${dir}&recursive=yes`, 400, 'ERR_VALIDATION'],
  ])('refuses %s before streaming', async (_what, query, status, code) => {
    await inWorkspace(`open("${dir}/marker.txt", "w").write("m")`);
    const response = await request('GET', `/watch?${query}`);
    expect(response.status).toBe(status);
    expect(((await response.json()) as { code: string }).code).toBe(code);
  });

  it('is described in /openapi.json', async () => {
    const { body } = await json<{ paths: Record<string, Record<string, unknown>> }>('GET', '/openapi.json');
    expect(body.paths['/watch']?.get).toBeDefined();
  });
});

describe('/ws watch frames', () => {
  beforeAll(async () => {
    await inWorkspace(`os.makedirs("${dir}", exist_ok=True)`);
  });

  it('starts a watch, streams its events with its id, and stops it', async () => {
    const client = await WsClient.open();
    try {
      client.send({ type: 'watch_start', request_id: 'w1', path: dir, recursive: true });
      const started = await client.waitFor((frame) => frame.request_id === 'w1');
      expect(started).toMatchObject({ type: 'watch_started', path: dir, recursive: true });
      const id = started.watch_id as string;
      await inWorkspace(`open("${dir}/ws.txt", "w").write("ws")`);
      const event = await client.waitFor((frame: Frame) => frame.type === 'watch_event' && frame.name === 'ws.txt');
      expect(event).toEqual({ type: 'watch_event', watch_id: id, event: 'create', name: 'ws.txt' });

      client.send({ type: 'watch_stop', request_id: 's1', watch_id: id });
      expect(await client.waitFor((frame) => frame.type === 'watch_ended')).toEqual({
        type: 'watch_ended',
        request_id: 's1',
        watch_id: id,
      });
      const count = client.frames.length;
      await inWorkspace(`open("${dir}/after-stop.txt", "w").write("x")`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(client.frames.slice(count).filter((frame) => frame.type === 'watch_event')).toEqual([]);

      client.send({ type: 'watch_stop', request_id: 's2', watch_id: id });
      expect(await client.waitFor((frame) => frame.request_id === 's2')).toMatchObject({
        type: 'request_error',
        status: 400,
        watch_id: id,
      });
      client.send({ type: 'watch_start', request_id: 'w2', path: `${dir}/none` });
      expect(await client.waitFor((frame) => frame.request_id === 'w2')).toMatchObject({
        type: 'request_error',
        code: 'ERR_FILE_NOT_FOUND',
      });
    } finally {
      client.close();
    }
  });
});
