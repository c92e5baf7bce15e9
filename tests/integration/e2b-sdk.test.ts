import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Sandbox, type OutputMessage } from '@e2b/code-interpreter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkContextOutsideWorkspace } from '../helpers/e2b-contexts.js';
import { portIsFree } from '../helpers/processes.js';
import { startServer, type StartedServer } from '../helpers/start-server.js';

/**
 * The official e2b SDK, as its users call it. Its debug mode makes no cloud call and sends
 * every request to http://localhost:49999, a port it does not let anyone change: this file
 * starts its own server there, and is skipped only when something else holds the port.
 */
const SDK_PORT = 49999;

const portFree = await portIsFree(SDK_PORT);
if (!portFree) {
  console.warn(`e2b SDK tests SKIPPED: port ${SDK_PORT} is taken by another process, and the SDK's debug mode talks to that port only`);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe.skipIf(!portFree)(`the e2b SDK (@e2b/code-interpreter) in debug mode, on localhost:${SDK_PORT}`, () => {
  let server: StartedServer;
  let sandbox: Sandbox;

  beforeAll(async () => {
    // localhost, as the SDK resolves it: both loopback addresses where the machine has them.
    server = await startServer({}, { port: SDK_PORT, host: 'localhost' });
    sandbox = await Sandbox.create({ debug: true });
  });

  afterAll(async () => {
    await server?.stop();
  });

  describe('runCode', () => {
    it('returns stdout and stderr', async () => {
      const execution = await sandbox.runCode('import sys\nprint("hello")\nprint("oops", file=sys.stderr)');
      expect(execution.error).toBeUndefined();
      expect(execution.logs.stdout.join('')).toBe('hello\n');
      expect(execution.logs.stderr.join('')).toBe('oops\n');
      expect(execution.executionCount).toBeGreaterThan(0);
    });

    it("returns the cell's value as the main result", async () => {
      const execution = await sandbox.runCode('x = 20\nx * 2 + 2');
      expect(execution.text).toBe('42');
      expect(execution.results).toHaveLength(1);
      expect(execution.results[0]!.isMainResult).toBe(true);
      expect(execution.results[0]!.formats()).toEqual([]);
    });

    it('keeps state between calls, like notebook cells', async () => {
      await sandbox.runCode('kept = "still here"');
      expect((await sandbox.runCode('kept')).text).toBe('still here');
    });

    it('returns rich results next to text: HTML from a DataFrame', async () => {
      const execution = await sandbox.runCode('import pandas as pd\npd.DataFrame({"a": [1, 2]})');
      expect(execution.results[0]!.html).toContain('<table');
      expect(execution.results[0]!.formats()).toContain('html');
    });

    it('reports an error raised by the code, with name, value and traceback', async () => {
      const onError: string[] = [];
      const execution = await sandbox.runCode('print("before")\n1 / 0', { onError: (error) => void onError.push(error.name) });
      expect(execution.logs.stdout.join('')).toBe('before\n');
      expect(execution.error?.name).toBe('ZeroDivisionError');
      expect(execution.error?.value).toBe('division by zero');
      expect(execution.error?.traceback).toContain('ZeroDivisionError');
      expect(onError).toEqual(['ZeroDivisionError']);
    });

    it('streams stdout to onStdout while the code still runs', async () => {
      // The code waits for a file that only the onStdout callback creates: unless the first
      // line reaches the callback while the code runs, it prints "not streamed" and ends.
      const signal = path.join(server.workspaceDir, `streamed-${Date.now()}`);
      const lines: OutputMessage[] = [];
      const execution = await sandbox.runCode(
        [
          'import os, time',
          'print("first", flush=True)',
          'deadline = time.monotonic() + 20',
          `while not os.path.exists(${JSON.stringify(signal)}) and time.monotonic() < deadline:`,
          '    time.sleep(0.02)',
          `print("second" if os.path.exists(${JSON.stringify(signal)}) else "not streamed")`,
        ].join('\n'),
        {
          onStdout: async (output) => {
            lines.push(output);
            if (output.line === 'first\n') await writeFile(signal, '');
          },
        },
      );
      expect(existsSync(signal)).toBe(true);
      // The first line came on its own (the signal file exists); after it, the kernel may split
      // a print into chunks ("second", "\n") as its output thread flushes them.
      expect(lines[0]?.line).toBe('first\n');
      expect(lines.map((output) => output.line).join('')).toBe('first\nsecond\n');
      expect(lines.every((output) => output.error === false)).toBe(true);
      expect(execution.logs.stdout.join('')).toBe('first\nsecond\n');
    });

    it('returns a matplotlib figure as a PNG result', async () => {
      const results: string[] = [];
      const execution = await sandbox.runCode(
        'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title("squares")\nplt.show()',
        { onResult: (result) => void results.push(...result.formats()) },
      );
      expect(execution.error).toBeUndefined();
      const plot = execution.results.find((result) => result.png !== undefined);
      expect(plot).toBeDefined();
      expect(plot!.isMainResult).toBe(false);
      const png = Buffer.from(plot!.png!, 'base64');
      expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      expect(png.length).toBeGreaterThan(1000);
      expect(results).toContain('png');
    });

    it('sets envs for one call only, restoring what was there', async () => {
      await sandbox.runCode('import os\nos.environ["E2B_KEPT"] = "before"\nos.environ.pop("E2B_ONLY_NOW", None)');
      const execution = await sandbox.runCode('import os\nprint(os.environ["E2B_ONLY_NOW"], os.environ["E2B_KEPT"])', {
        envs: { E2B_ONLY_NOW: 'it is "quoted"\n', E2B_KEPT: 'during' },
      });
      expect(execution.error).toBeUndefined();
      expect(execution.logs.stdout.join('')).toBe('it is "quoted"\n during\n');
      const after = await sandbox.runCode('import os\nprint(os.environ.get("E2B_ONLY_NOW"), os.environ["E2B_KEPT"])');
      expect(after.logs.stdout.join('')).toBe('None before\n');
    });

    it('runs code in another language by name: R', async () => {
      const execution = await sandbox.runCode('cat(sum(c(1, 2, 3)), "\\n")\nsum(c(1, 2, 3))', { language: 'r' });
      expect(execution.error).toBeUndefined();
      expect(execution.logs.stdout.join('')).toBe('6 \n');
      // IRkernel shows a value as display data, one result with several formats.
      expect(execution.results.map((result) => result.text)).toEqual(['[1] 6']);
    });

    it('runs bash by name: state and cwd kept between calls, envs for one call, a failing command as an error', async () => {
      const first = await sandbox.runCode('greet() { echo "hi $1"; }\nCOUNT=41\ncd /tmp', { language: 'bash' });
      expect(first.error).toBeUndefined();
      const second = await sandbox.runCode('greet there; echo $((COUNT + 1)) "$PWD" "$TOKEN"', {
        language: 'bash',
        envs: { TOKEN: 'once' },
      });
      expect(second.error).toBeUndefined();
      expect(second.logs.stdout.join('')).toBe('hi there\n42 /tmp once\n');
      expect((await sandbox.runCode('echo "[$TOKEN]"', { language: 'bash' })).logs.stdout.join('')).toBe('[]\n');
      const failed = await sandbox.runCode('ls /no/such/path', { language: 'bash' });
      expect(failed.error).toBeDefined();
      expect(failed.logs.stderr.join('')).toMatch(/No such file or directory/);
    });
  });

  describe('contexts', () => {
    it('creates, lists, restarts and removes a context', async () => {
      const context = await sandbox.createCodeContext({ cwd: server.workspaceDir, language: 'python' });
      expect(context).toEqual({ id: expect.any(String), language: 'python', cwd: server.workspaceDir });

      await sandbox.runCode('in_context = 1', { context });
      expect((await sandbox.runCode('in_context + 1', { context })).text).toBe('2');
      // Contexts keep their state apart.
      expect((await sandbox.runCode('in_context')).error?.name).toBe('NameError');

      expect((await sandbox.listCodeContexts()).map((listed) => listed.id)).toContain(context.id);

      // The SDK sends Content-Type: application/json with no body here.
      await sandbox.restartCodeContext(context);
      expect((await sandbox.runCode('in_context', { context })).error?.name).toBe('NameError');
      expect((await sandbox.runCode('import os\nprint(os.getcwd())', { context })).logs.stdout.join('')).toBe(`${server.workspaceDir}\n`);

      // ...and here.
      await sandbox.removeCodeContext(context.id);
      expect((await sandbox.listCodeContexts()).map((listed) => listed.id)).not.toContain(context.id);
      await expect(sandbox.runCode('1', { context })).rejects.toThrow(/not found/i);
      await expect(sandbox.removeCodeContext(context)).rejects.toThrow(/not found/i);
    });

    it("creates, uses, lists, restarts and removes a context whose cwd is outside the workspace ('/tmp')", async () => {
      await checkContextOutsideWorkspace(sandbox, '/tmp');
    });

    it('creates a context with the defaults: Python in the workspace', async () => {
      const context = await sandbox.createCodeContext();
      expect(context.language).toBe('python');
      expect(context.cwd).toBe(server.workspaceDir);
      await sandbox.removeCodeContext(context);
    });

    it('creates an R context and runs code in it', async () => {
      const context = await sandbox.createCodeContext({ language: 'r' });
      expect(context.language).toBe('r');
      await sandbox.runCode('x <- 21', { context });
      expect((await sandbox.runCode('cat(x * 2)', { context })).logs.stdout).toEqual(['42']);
      await sandbox.removeCodeContext(context);
    });
  });
});
