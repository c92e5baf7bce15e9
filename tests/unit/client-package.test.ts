import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * `npm pack` of clients/typescript must give a tarball that installs and imports on its own: no
 * dependency on the server's packages. Its one runtime dependency (dockerode, for
 * ExecutionContainer) comes from npm's cache when it is there (`--prefer-offline`): the root's
 * `npm install` put it there.
 */
const packageDir = path.resolve(import.meta.dirname, '..', '..', 'clients', 'typescript');

describe('the code-interpreter-client package', () => {
  let scratch: string | undefined;
  afterAll(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('packs into a tarball that installs offline and imports', async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'client-package-'));
    const npm = (args: string[], cwd: string) =>
      execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], {
        cwd,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, npm_config_update_notifier: 'false' },
      });
    npm(['pack', '--pack-destination', scratch], packageDir);
    const [tarball] = (await readdir(scratch)).filter((name) => name.endsWith('.tgz'));
    expect(tarball).toMatch(/^code-interpreter-client-.*\.tgz$/);

    const project = path.join(scratch, 'project');
    await mkdir(project);
    await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    npm(['install', '--prefer-offline', path.join(scratch, tarball!)], project);

    const installed = path.join(project, 'node_modules');
    const manifest = JSON.parse(await readFile(path.join(installed, 'code-interpreter-client', 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    // dockerode (and its types, which the declarations name) and nothing of the server's.
    expect(Object.keys(manifest.dependencies ?? {}).sort()).toEqual(['@types/dockerode', 'dockerode']);
    const names = (await readdir(installed)).filter((name) => !name.startsWith('.'));
    expect(names).toEqual(expect.arrayContaining(['code-interpreter-client', 'dockerode']));
    for (const server of ['fastify', 'pino', '@jupyterlab', 'typebox']) expect(names).not.toContain(server);
    const files = await readdir(path.join(installed, 'code-interpreter-client', 'dist'));
    expect(files).toEqual(
      expect.arrayContaining(['index.js', 'index.d.ts', 'container.d.ts', 'execution-client.d.ts', 'resource-client.d.ts']),
    );

    const script = [
      "import { ExecutionClient, ExecutionContainer, ResourceClient, CodeInterpreterError, NotFoundError, ExecutionError, TimeoutError } from 'code-interpreter-client';",
      'const client = new ExecutionClient({ port: 49999 });',
      'new ResourceClient({ port: 49999 });',
      "console.log(JSON.stringify([typeof client.connect, new NotFoundError('m', 'ERR_FILE_NOT_FOUND', 404) instanceof CodeInterpreterError, new ExecutionError('E', 'v', 't').name, new TimeoutError('t').name, (() => { try { return new ExecutionContainer().executorPort; } catch (error) { return error.message.startsWith('executorPort is not known'); } })()]));",
    ].join('\n');
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, encoding: 'utf8' });
    expect(JSON.parse(output)).toEqual(['function', true, 'E', 'TimeoutError', true]);
  }, 120_000);
});
