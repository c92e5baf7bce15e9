import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomToken } from '../helpers/processes.js';
import { readEvents, type ExecutionEvent } from '../helpers/api.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * What kernel code can learn about the server on a development machine (start-up.sh on this
 * machine, one uid for everything): the kernels inherit none of the server's variables, Jupyter
 * writes its token nowhere, and serves only the API's endpoints. The container suite checks the
 * rest (the API under its own uid). These tests start their own start-up.sh, with tokens set.
 */
describe('kernels and the server secrets', () => {
  const accessToken = `access-${randomToken()}`;
  let server: StartedServer;
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'ci-secrets-tmp-'));
    server = await startServer({
      ACCESS_TOKEN: accessToken,
      CORS_ORIGINS: 'https://app.example.com',
      MAX_OUTPUT_BYTES: '32MiB',
      EXECUTION_TIMEOUT: '120',
      VISIBLE_TO_CODE: 'yes',
      TMPDIR: tmp,
    });
  });
  afterAll(async () => {
    await server?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  async function run(code: string): Promise<string> {
    const response = await fetch(`${server.baseUrl}/execute`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ code }),
    });
    expect(response.status).toBe(200);
    const events: ExecutionEvent[] = await readEvents(response);
    const errors = events.filter((event) => event.type === 'error');
    expect(errors).toEqual([]);
    return events
      .filter((event) => event.type === 'stdout')
      .map((event) => event.text)
      .join('');
  }

  it("leaves the server's variables out of the kernels' environment", async () => {
    const environment = JSON.parse(await run('import json, os\nprint(json.dumps(dict(os.environ)))')) as Record<string, string>;
    for (const name of [
      'ACCESS_TOKEN',
      'JUPYTER_TOKEN',
      'JUPYTER_URL',
      'HOST',
      'PORT',
      'WORKSPACE_DIR',
      'CORS_ORIGINS',
      'MAX_OUTPUT_BYTES',
      'EXECUTION_TIMEOUT',
    ]) {
      expect(environment, name).not.toHaveProperty(name);
    }
    const values = Object.values(environment).join('\n');
    expect(values).not.toContain(accessToken);
    expect(values).not.toContain(server.jupyterToken);
    // Not an emptied environment: what the operator set for the code still arrives.
    expect(environment.VISIBLE_TO_CODE).toBe('yes');
    expect(environment.PATH).toBeTruthy();
  });

  it("writes Jupyter's token into no file of its runtime directory", async () => {
    const found = await run(
      [
        'import os, jupyter_core.paths as paths',
        'runtime = paths.jupyter_runtime_dir()',
        'jupyter = os.getppid()  # the kernel launcher',
        'jupyter = int(open(f"/proc/{jupyter}/stat").read().rsplit(")", 1)[1].split()[1])',
        `tokens = [${JSON.stringify(server.jupyterToken)}.encode(), ${JSON.stringify(accessToken)}.encode()]`,
        'hits = []',
        'for name in sorted(os.listdir(runtime)):',
        '    try:',
        '        data = open(os.path.join(runtime, name), "rb").read()',
        '    except OSError:',
        '        continue',
        '    if any(token in data for token in tokens):',
        '        hits.append(name)',
        'print(f"jupyter={jupyter} info_file={os.path.exists(os.path.join(runtime, f\'jpserver-{jupyter}.json\'))} hits={hits}")',
      ].join('\n'),
    );
    expect(found).toMatch(/^jupyter=\d+ info_file=False hits=\[\]\n$/);
  });

  it('Jupyter serves only what the API uses', async () => {
    const jupyter = (pathname: string, method = 'GET') =>
      fetch(`${server.jupyterUrl}${pathname}`, { method, headers: { authorization: `token ${server.jupyterToken}` } }).then(
        (response) => response.status,
      );
    expect(await jupyter('/api/status')).toBe(200);
    expect(await jupyter('/api/kernelspecs')).toBe(200);
    expect(await jupyter('/api/kernels')).toBe(200);
    for (const pathname of [
      '/api/contents',
      '/api/contents/etc/passwd',
      '/files/etc/passwd',
      '/api/sessions',
      '/api/config/notebook',
      '/api/nbconvert',
      '/view/x',
      '/login',
    ]) {
      expect(await jupyter(pathname), pathname).toBe(404);
    }
    expect(await jupyter('/api/shutdown', 'POST')).toBe(404);
    // And the token is still required for what remains.
    expect((await fetch(`${server.jupyterUrl}/api/kernels`)).status).toBe(403);
  });

  it('leaves no temporary IPython directory behind once stopped', async () => {
    expect((await readdir(tmp)).filter((name) => name.startsWith('code-interpreter-ipython.'))).toHaveLength(1);
    expect(await server.stop()).toBe(0);
    expect(await readdir(tmp)).toEqual([]);
  });
});
