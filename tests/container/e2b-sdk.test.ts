import { Sandbox } from '@e2b/code-interpreter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainer, type Container } from '../helpers/docker.js';
import { envdCases } from '../helpers/e2b-commands.js';
import { checkContextOutsideWorkspace } from '../helpers/e2b-contexts.js';

/**
 * The official e2b SDK against the image. Its debug mode sends code to localhost:49999 and
 * commands, terminals and git to envd's port, localhost:49983, with no token, so the container is
 * published on both ports, open (no ACCESS_TOKEN) and on loopback only. scripts/docker-ci.sh runs this after `npm test`, whose own
 * SDK server on that port has stopped by then.
 */
describe('the e2b SDK in debug mode against the container (localhost:49999 and 49983)', () => {
  let container: Container;
  let sandbox: Sandbox;

  beforeAll(async () => {
    container = await startContainer(['-p', '127.0.0.1:49999:49999', '-p', '127.0.0.1:49983:49983'], { ACCESS_TOKEN: '' });
    sandbox = await Sandbox.create({ debug: true });
  });
  afterAll(async () => {
    await container?.remove();
  });

  it("creates, uses, lists, restarts and removes a context in '/tmp', outside the workspace", async () => {
    await checkContextOutsideWorkspace(sandbox, '/tmp');
  });

  it('runs code in the default context as before', async () => {
    const execution = await sandbox.runCode('import os\nprint(os.getcwd())');
    expect(execution.error).toBeUndefined();
    expect(execution.logs.stdout.join('')).toBe('/home/user\n');
  });

  it("runs bash by name in the image's bash kernel", async () => {
    const execution = await sandbox.runCode('N=6; echo $((N * 7)) "$(whoami)"', { language: 'bash' });
    expect(execution.error).toBeUndefined();
    expect(execution.logs.stdout.join('')).toBe('42 user\n');
  });

  it("returns a matplotlib figure's chart next to its PNG, from the image's extractor", async () => {
    const execution = await sandbox.runCode(
      'import matplotlib.pyplot as plt\nplt.bar(["a", "b"], [3, 5])\nplt.title("Counts")\nplt.show()',
    );
    expect(execution.error).toBeUndefined();
    const figure = execution.results.find((result) => result.png !== undefined);
    expect(figure?.chart).toMatchObject({ type: 'bar', title: 'Counts' });
    const elements = (figure!.chart as unknown as { elements: Array<{ label: string; value: number }> }).elements;
    expect(elements.map((bar) => [bar.label, bar.value])).toEqual([
      ['a', 3],
      ['b', 5],
    ]);
  });

  // The same cases as against a local server: the image's process host, its users and its git.
  envdCases(() => ({ sandbox, workspaceDir: '/home/user' }));
});
