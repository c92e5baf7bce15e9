import type { Sandbox } from '@e2b/code-interpreter';
import { expect } from 'vitest';

/**
 * The e2b SDK's context calls with a cwd outside the workspace, as its users make them
 * (`createCodeContext({ cwd: '/tmp' })`): the context is created there, runs code there, is
 * listed, keeps its cwd across a restart and is removed. Shared by the SDK tests against a
 * local server and against the container.
 */
export async function checkContextOutsideWorkspace(sandbox: Sandbox, cwd = '/tmp'): Promise<void> {
  const context = await sandbox.createCodeContext({ cwd, language: 'python' });
  expect(context).toEqual({ id: expect.any(String), language: 'python', cwd });
  try {
    const where = await sandbox.runCode('import os\nstate = 1\nprint(os.getcwd())', { context });
    expect(where.error).toBeUndefined();
    expect(where.logs.stdout.join('')).toBe(`${cwd}\n`);

    const listed = (await sandbox.listCodeContexts()).find((entry) => entry.id === context.id);
    expect(listed).toEqual({ id: context.id, language: 'python', cwd });

    await sandbox.restartCodeContext(context);
    const after = await sandbox.runCode('import os\nprint("state" in globals(), os.getcwd())', { context });
    expect(after.logs.stdout.join('')).toBe(`False ${cwd}\n`);
  } finally {
    await sandbox.removeCodeContext(context);
  }
  expect((await sandbox.listCodeContexts()).map((entry) => entry.id)).not.toContain(context.id);
}
