import { describe, expect, it } from 'vitest';
import { createContext, deleteContext, errorsOf, execute, json, mainResult, stdoutOf } from '../helpers/api.js';

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

describe('a kernel that dies', () => {
  it.each([
    ['os._exit(1)', 'import os\nos._exit(1)'],
    ['kill -9 of the kernel process', 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)'],
  ])('%s: the stream ends with KernelDied and the context comes back with the same id and cwd', async (_label, code) => {
    const context = await createContext();
    try {
      await execute({ context_id: context.id, code: 'state = 1' });
      const events = await execute({ context_id: context.id, code });
      const [error] = errorsOf(events);
      expect(error?.name).toBe('KernelDied');
      expect(error?.value).toMatch(/state was lost/);
      expect(events.at(-1)).toEqual({ type: 'end_of_execution' });

      const listed = (await json<Array<{ id: string; cwd: string }>>('GET', '/contexts')).body.find((entry) => entry.id === context.id);
      expect(listed).toEqual({ id: context.id, language: 'python', cwd: context.cwd });
      const after = await execute({ context_id: context.id, code: 'import os\nprint(os.getcwd(), "state" in dir())' });
      expect(stdoutOf(after)).toBe(`${context.cwd} False\n`);
    } finally {
      await deleteContext(context.id);
    }
  });
});

describe('Jupyter itself dies', () => {
  it('ends the running stream with an error, then recovers by itself', async () => {
    const context = await createContext();
    try {
      await execute({ context_id: context.id, code: 'state = 1' });
      // The kernel's parent process is Jupyter Server: kill -9 it from inside.
      const events = await execute({
        context_id: context.id,
        code: 'import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(30)',
      });
      const [error] = errorsOf(events);
      expect(error?.name).toMatch(/JupyterUnavailable|KernelDied/);
      expect(events.at(-1)).toEqual({ type: 'end_of_execution' });

      // Readiness reports the outage until Jupyter is back (start-up.sh restarts it).
      await waitUntil(async () => (await json('GET', '/ready')).status === 200, 90_000);

      await waitUntil(async () => mainResult(await execute({ code: '6 * 7' }))?.text === '42', 60_000);
      const after = await execute({ context_id: context.id, code: 'print("state" in dir())' });
      expect(stdoutOf(after)).toBe('False\n');
      const listed = (await json<Array<{ id: string }>>('GET', '/contexts')).body.map((entry) => entry.id);
      expect(listed).toContain(context.id);
    } finally {
      await deleteContext(context.id);
    }
  });
});
