import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  authHeaders,
  baseUrl,
  createContext,
  deleteContext,
  errorsOf,
  execute,
  json,
  mainResult,
  request,
  stdoutOf,
} from '../helpers/api.js';

const created: string[] = [];
afterAll(async () => {
  await Promise.all(created.map((id) => deleteContext(id)));
});

/** `directory` with symlinks resolved, as the server's kernels see it. */
async function realPathInKernel(directory: string): Promise<string> {
  return stdoutOf(await execute({ code: `import os\nprint(os.path.realpath(${JSON.stringify(directory)}))` })).trim();
}

async function newContext(body: Record<string, unknown> = {}) {
  const context = await createContext(body);
  created.push(context.id);
  return context;
}

describe('contexts', () => {
  it('creates a Python context in the workspace by default, answering 200', async () => {
    const response = await request('POST', '/contexts', {});
    expect(response.status).toBe(200);
    const context = (await response.json()) as { id: string; language: string; cwd: string };
    created.push(context.id);
    expect(context.language).toBe('python');
    const events = await execute({ code: 'import os\nprint(os.getcwd())', context_id: context.id });
    expect(stdoutOf(events).trim()).toBe(context.cwd);
  });

  it('accepts POST /contexts with no body at all', async () => {
    const response = await fetch(`${baseUrl}/contexts`, { method: 'POST', headers: authHeaders() });
    expect(response.status).toBe(200);
    created.push(((await response.json()) as { id: string }).id);
  });

  it('starts the kernel in the requested cwd', async () => {
    const probe = await execute({ code: 'import os, tempfile\nd = tempfile.mkdtemp(dir=os.getcwd())\nprint(d)' });
    const directory = stdoutOf(probe).trim();
    const context = await newContext({ cwd: directory });
    expect(context.cwd).toBe(directory);
    const events = await execute({ code: 'import os\nprint(os.getcwd())', context_id: context.id });
    expect(stdoutOf(events).trim()).toBe(directory);
  });

  it('refuses a missing cwd outside the workspace with 400, creates nothing and leaves no kernel behind', async () => {
    const before = (await json<unknown[]>('GET', '/contexts')).body.length;
    const missing = `/tmp/ci-missing-cwd-${process.pid}-${Date.now()}/deeper`;
    const { status, body } = await json<{ code: string; message: string }>('POST', '/contexts', { cwd: missing });
    expect(status).toBe(400);
    expect(body.code).toBe('ERR_INVALID_CWD');
    expect(body.message).toMatch(/does not exist.*created only inside the workspace/);
    expect((await json<unknown[]>('GET', '/contexts')).body.length).toBe(before);
    // Asked of the kernel: on the container's suite the server's /tmp is not this machine's.
    const created = await execute({ code: `import os\nprint(os.path.exists(${JSON.stringify(path.dirname(missing))}))` });
    expect(stdoutOf(created).trim()).toBe('False');
  });

  it('refuses a cwd that is a file, inside the workspace or outside it', async () => {
    await execute({ code: 'open("plain-file.txt", "w").close()' });
    for (const cwd of ['plain-file.txt', '/etc/hostname']) {
      const { status, body } = await json<{ code: string; message: string }>('POST', '/contexts', { cwd });
      expect({ cwd, status, code: body.code }).toEqual({ cwd, status: 400, code: 'ERR_INVALID_CWD' });
      expect(body.message).toMatch(/is not a directory/);
    }
    await request('DELETE', '/files/plain-file.txt');
  });

  it('creates a missing cwd inside the workspace, relative or absolute', async () => {
    const root = (await newContext()).cwd;
    const relative = `made-for-cwd-${Date.now()}/a/b`;
    const byRelative = await newContext({ cwd: relative });
    expect(byRelative.cwd).toBe(path.posix.join(root, relative));
    const absolute = path.posix.join(root, `made-absolute-${Date.now()}`, 'c');
    const byAbsolute = await newContext({ cwd: absolute });
    expect(byAbsolute.cwd).toBe(absolute);
    for (const context of [byRelative, byAbsolute]) {
      const events = await execute({ code: 'import os\nopen("w.txt", "a").write("x")\nprint(os.getcwd())', context_id: context.id });
      expect(errorsOf(events)).toEqual([]);
      expect(stdoutOf(events).trim()).toBe(context.cwd);
    }
    // The file API sees them as ordinary workspace directories.
    const listing = await json<{ entries: Array<{ name: string }> }>('GET', `/files?path=${encodeURIComponent(relative)}`);
    expect(listing.body.entries.map((entry) => entry.name)).toContain('w.txt');
  });

  it('takes a directory whose name begins with two dots, such as ..data, for one inside the workspace', async () => {
    const root = (await newContext()).cwd;
    const name = `..data-${Date.now()}`;
    for (const cwd of [path.posix.join(root, name), name]) {
      const context = await newContext({ cwd });
      expect(context.cwd).toBe(path.posix.join(root, name));
      const events = await execute({ code: 'import os\nopen("in-dots.txt", "w").close()\nprint(os.getcwd())', context_id: context.id });
      expect(stdoutOf(events).trim()).toBe(path.posix.join(root, name));
    }
    const listing = await json<{ entries: Array<{ name: string }> }>('GET', `/files?path=${encodeURIComponent(name)}`);
    expect(listing.body.entries.map((entry) => entry.name)).toEqual(['in-dots.txt']);
    expect((await request('DELETE', `/files/${encodeURIComponent(name)}`)).status).toBe(204);
  });

  it('takes a cwd outside the workspace the way e2b clients send it: used, listed, restarted and deleted', async () => {
    const directory = stdoutOf(await execute({ code: 'import tempfile\nprint(tempfile.mkdtemp(dir="/tmp"))' })).trim();
    expect(directory).toMatch(/^\/tmp\//);
    for (const cwd of ['/tmp', directory, '/']) {
      const { status, body: context } = await json<{ id: string; language: string; cwd: string }>('POST', '/contexts', {
        language: 'python',
        cwd,
      });
      expect({ cwd, status }).toEqual({ cwd, status: 200 });
      created.push(context.id);
      expect(context.cwd).toBe(cwd);
      const run = async () => stdoutOf(await execute({ code: 'import os\nx = 41\nprint(os.getcwd())', context_id: context.id })).trim();
      expect(await run()).toBe(cwd);
      const listed = (await json<Array<{ id: string; cwd: string }>>('GET', '/contexts')).body.find((entry) => entry.id === context.id);
      expect(listed).toEqual({ id: context.id, language: 'python', cwd });
      const restarted = await json<{ id: string; cwd: string }>('POST', `/contexts/${context.id}/restart`);
      expect(restarted).toEqual({ status: 200, body: { id: context.id, language: 'python', cwd } });
      const after = await execute({ code: 'import os\nprint("x" in globals(), os.getcwd())', context_id: context.id });
      expect(stdoutOf(after).trim()).toBe(`False ${cwd}`);
      expect((await request('DELETE', `/contexts/${context.id}`)).status).toBe(200);
    }
    await execute({ code: `import shutil\nshutil.rmtree(${JSON.stringify(directory)})` });
  });

  it('follows a symlink from the workspace to a directory outside it, and resolves .. from the workspace', async () => {
    const root = (await newContext()).cwd;
    await execute({ code: 'import os\nif not os.path.islink("link-out"):\n    os.symlink("/etc", "link-out")' });
    for (const [cwd, expected] of [
      ['link-out', '/etc'],
      ['..', path.posix.dirname(root)],
    ] as const) {
      const context = await newContext({ cwd });
      const events = await execute({ code: 'import os\nprint(os.path.realpath(os.getcwd()))', context_id: context.id });
      expect({ cwd, printed: stdoutOf(events).trim() }).toEqual({ cwd, printed: await realPathInKernel(expected) });
    }
    await request('DELETE', '/files/link-out');
  });

  it("refuses, with 400, a directory the kernels' user cannot enter", async (test) => {
    // Only where the kernels do not run as root (the image): root enters every directory.
    const identity = stdoutOf(await execute({ code: 'import os\nprint(os.geteuid(), os.access("/root", os.X_OK))' })).trim();
    if (identity.split(' ')[0] === '0') test.skip('the kernels run as root here, and root may enter any directory');
    expect(identity.split(' ')[1]).toBe('False');
    const before = (await json<unknown[]>('GET', '/contexts')).body.length;
    // Twice: the first is served from the kernel pool (its move fails), the second starts a kernel.
    for (let attempt = 0; attempt < 2; attempt++) {
      const { status, body } = await json<{ code: string; message: string }>('POST', '/contexts', { cwd: '/root' });
      expect({ status, code: body.code }).toEqual({ status: 400, code: 'ERR_INVALID_CWD' });
      expect(body.message).toMatch(/cannot be entered by the kernels' user/);
    }
    expect((await json<unknown[]>('GET', '/contexts')).body.length).toBe(before);
  });

  it('refuses a language with no kernel, naming the available ones', async () => {
    const { status, body } = await json<{ message: string }>('POST', '/contexts', { language: 'cobol' });
    expect(status).toBe(400);
    expect(body.message).toMatch(/cobol/);
    expect(body.message).toMatch(/python/);
    const viaExecute = await json<{ message: string }>('POST', '/execute', { code: '1', language: 'cobol' });
    expect(viaExecute.status).toBe(400);
  });

  it('isolates state between contexts', async () => {
    const a = await newContext();
    const b = await newContext();
    await execute({ code: 'secret = 1', context_id: a.id });
    const [error] = errorsOf(await execute({ code: 'secret', context_id: b.id }));
    expect(error?.name).toBe('NameError');
  });

  it('lists every context, the default one included', async () => {
    const context = await newContext();
    await execute({ code: '1' });
    const { status, body } = await json<Array<{ id: string; language: string; cwd: string }>>('GET', '/contexts');
    expect(status).toBe(200);
    expect(body.map((entry) => entry.id)).toContain(context.id);
    expect(body.filter((entry) => entry.language === 'python').length).toBeGreaterThanOrEqual(2);
  });

  it('restart wipes state and keeps the id and cwd', async () => {
    const context = await newContext();
    await execute({ code: 'kept = 1', context_id: context.id });
    const { status, body } = await json<{ id: string; cwd: string }>('POST', `/contexts/${context.id}/restart`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: context.id, cwd: context.cwd });
    const [error] = errorsOf(await execute({ code: 'kept', context_id: context.id }));
    expect(error?.name).toBe('NameError');
    expect(mainResult(await execute({ code: '2 * 21', context_id: context.id }))?.text).toBe('42');
  });

  it('delete shuts the context down; it is then unknown', async () => {
    const context = await newContext();
    const response = await request('DELETE', `/contexts/${context.id}`);
    expect(response.status).toBe(200);
    expect((await json('POST', '/execute', { code: '1', context_id: context.id })).status).toBe(404);
    const listed = (await json<Array<{ id: string }>>('GET', '/contexts')).body.map((entry) => entry.id);
    expect(listed).not.toContain(context.id);
  });

  it('ends a request still waiting for a deleted context with ContextDeleted', async () => {
    const context = await createContext();
    const running = execute({ context_id: context.id, code: 'import time\ntime.sleep(2)' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const waiting = execute({ context_id: context.id, code: 'print("never")' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await request('DELETE', `/contexts/${context.id}`)).status).toBe(200);
    const events = await waiting;
    expect(errorsOf(events)[0]?.name).toBe('ContextDeleted');
    expect(stdoutOf(events)).toBe('');
    expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
    expect((await running).at(-1)).toEqual({ type: 'end_of_execution' });
  });

  it('answers 404 for unknown ids on every context route', async () => {
    expect((await json('POST', '/contexts/nope/restart')).status).toBe(404);
    expect((await json('DELETE', '/contexts/nope')).status).toBe(404);
    expect((await json('POST', '/execute', { code: '1', context_id: 'nope' })).status).toBe(404);
  });

  it('runs different contexts in parallel', async () => {
    const a = await newContext();
    const b = await newContext();
    const started = Date.now();
    await Promise.all([
      execute({ code: 'import time; time.sleep(1.5)', context_id: a.id }),
      execute({ code: 'import time; time.sleep(1.5)', context_id: b.id }),
    ]);
    expect(Date.now() - started).toBeLessThan(2900);
  });

  it('creates exactly one default context per language under concurrent first use', async () => {
    const before = await json<Array<{ id: string; language: string }>>('GET', '/contexts');
    // Python's default exists already; delete it so that the next uses race to create it.
    const defaults = before.body.filter((entry) => entry.language === 'python' && !created.includes(entry.id));
    for (const entry of defaults) await request('DELETE', `/contexts/${entry.id}`);
    const results = await Promise.all(
      Array.from({ length: 5 }, () => execute({ code: 'import os; print(os.getpid())', language: 'python' })),
    );
    const pids = new Set(results.map((events) => stdoutOf(events).trim()));
    expect(pids.size).toBe(1);
    const after = await json<Array<{ id: string; language: string }>>('GET', '/contexts');
    const newDefaults = after.body.filter((entry) => entry.language === 'python' && !created.includes(entry.id));
    expect(newDefaults).toHaveLength(1);
  });

  it('keeps executions that name no context working after the default is restarted or deleted', async () => {
    await execute({ code: 'x = 1' });
    const listed = await json<Array<{ id: string; language: string }>>('GET', '/contexts');
    const defaultContext = listed.body.find((entry) => entry.language === 'python' && !created.includes(entry.id))!;
    expect((await json('POST', `/contexts/${defaultContext.id}/restart`)).status).toBe(200);
    expect(mainResult(await execute({ code: '1 + 1' }))?.text).toBe('2');
    expect((await json('DELETE', `/contexts/${defaultContext.id}`)).status).toBe(200);
    expect(mainResult(await execute({ code: '2 + 2' }))?.text).toBe('4');
  });
});
