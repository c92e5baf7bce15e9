import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorsOf, execute, fileContexts, json, readEvents, request, stdoutOf, type ExecutionEvent } from '../helpers/api.js';

// Bash contexts run our own kernel (image/kernels/bash_kernel.py): one persistent shell each.

const { newContext } = fileContexts();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const stderrOf = (events: ExecutionEvent[]) =>
  events
    .filter((event) => event.type === 'stderr')
    .map((event) => event.text as string)
    .join('');

describe('bash contexts', () => {
  it('runs in the default bash context and lists it with its language', async () => {
    const events = await execute({ language: 'bash', code: 'echo hello' });
    expect(errorsOf(events)).toEqual([]);
    expect(stdoutOf(events)).toBe('hello\n');
    const contexts = (await json<Array<{ language: string }>>('GET', '/contexts')).body;
    expect(contexts.some((context) => context.language === 'bash')).toBe(true);
  });

  it('keeps variables, functions and the working directory between calls; stdout and stderr apart', async () => {
    const context = await newContext('bash');
    const start = stdoutOf(await execute({ context_id: context, code: 'pwd' })).trim();
    await execute({ context_id: context, code: 'kept=21\ntwice() { echo $(( $1 * 2 )); }\nmkdir -p sub && cd sub' });
    const events = await execute({ context_id: context, code: 'twice "$kept"\necho oops >&2\npwd' });
    expect(errorsOf(events)).toEqual([]);
    expect(stdoutOf(events)).toBe(`42\n${path.posix.join(start, 'sub')}\n`);
    expect(stderrOf(events)).toBe('oops\n');
  });

  it('streams output as it comes', async () => {
    const context = await newContext('bash');
    const response = await request('POST', '/execute', { context_id: context, code: 'echo first; sleep 1.5; echo second' });
    const arrivals: Array<{ text: string; at: number }> = [];
    const started = Date.now();
    await readEvents(response, (event) => {
      if (event.type === 'stdout') arrivals.push({ text: event.text as string, at: Date.now() - started });
    });
    expect(arrivals.map((arrival) => arrival.text).join('')).toBe('first\nsecond\n');
    expect(arrivals[0]!.text).toBe('first\n');
    expect(arrivals.at(-1)!.at - arrivals[0]!.at).toBeGreaterThan(1000);
  });

  it('reports a failing command as an error carrying its exit status, and carries on', async () => {
    const context = await newContext('bash');
    const events = await execute({ context_id: context, code: 'echo before; ls /no/such/dir; exit_is_kept=yes; (exit 3)' });
    expect(stdoutOf(events)).toBe('before\n');
    expect(stderrOf(events)).toMatch(/No such file or directory/);
    expect(errorsOf(events)).toMatchObject([{ name: 'ExitCode', value: '3' }]);
    expect(stdoutOf(await execute({ context_id: context, code: 'echo "$exit_is_kept"' }))).toBe('yes\n');
    // A syntax error is a failure too, and the shell survives it.
    expect(errorsOf(await execute({ context_id: context, code: 'echo "unterminated' }))).toMatchObject([{ name: 'ExitCode' }]);
    expect(errorsOf(await execute({ context_id: context, code: 'true' }))).toEqual([]);
  });

  it('gives commands no input: a program reading stdin sees its end instead of waiting forever', async () => {
    const context = await newContext('bash');
    const events = await execute({ context_id: context, code: 'cat; read -r line; echo "read answered $?"', timeout: 10 });
    expect(stdoutOf(events)).toBe('read answered 1\n');
  });

  it('applies env_vars for one execution and restores them exactly, hostile values intact', async () => {
    const context = await newContext('bash');
    const value = `it's "quoted" \\ \`\${x}\` $(id) ünï 🚀\n\n`;
    await execute({ context_id: context, code: 'export KEPT_VAR=original; unset NEW_VAR' });
    const during = await execute({
      context_id: context,
      code: 'printf "%s|%s" "$NEW_VAR" "$KEPT_VAR"; python3 -c "import json, os; print(json.dumps(os.environ[\'NEW_VAR\'], ensure_ascii=False))"',
      env_vars: { NEW_VAR: value, KEPT_VAR: 'temporary' },
    });
    expect(errorsOf(during)).toEqual([]);
    expect(stdoutOf(during)).toBe(`${value}|temporary${JSON.stringify(value)}\n`);
    const after = await execute({ context_id: context, code: 'echo "${NEW_VAR-unset} $KEPT_VAR"; declare -p | grep -c __ci_ || true' });
    expect(stdoutOf(after)).toBe('unset original\n0\n');
    // Restored after a failing command too.
    await execute({ context_id: context, code: 'false', env_vars: { KEPT_VAR: 'temporary' } });
    expect(stdoutOf(await execute({ context_id: context, code: 'echo "$KEPT_VAR"' }))).toBe('original\n');
  });

  it('refuses an env_vars name bash cannot hold, setting none of them', async () => {
    const context = await newContext('bash');
    const events = await execute({ context_id: context, code: 'echo ran', env_vars: { GOOD_NAME: '1', 'bad-name': '2' } });
    expect(errorsOf(events)).toMatchObject([{ name: 'EnvVarsError' }]);
    expect(stdoutOf(events)).toBe('');
    expect(stdoutOf(await execute({ context_id: context, code: 'echo "${GOOD_NAME-unset}"' }))).toBe('unset\n');
  });

  it('stops `sleep 100` at the timeout and keeps the shell and its state', async () => {
    const context = await newContext('bash');
    await execute({ context_id: context, code: 'survivor=7' });
    const started = Date.now();
    const events = await execute({ context_id: context, code: 'sleep 100; echo not reached', timeout: 1 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(errorsOf(events)).toMatchObject([{ name: 'TimeoutError' }]);
    expect(stdoutOf(events)).toBe('');
    expect(stdoutOf(await execute({ context_id: context, code: 'echo $survivor' }))).toBe('7\n');
  });

  it('interrupts the foreground command on POST /contexts/{id}/interrupt', async () => {
    const context = await newContext('bash');
    await execute({ context_id: context, code: 'survivor=8' });
    const events = readEvents(await request('POST', '/execute', { context_id: context, code: 'sleep 100; echo not reached' }));
    await sleep(1000);
    expect((await json('POST', `/contexts/${context}/interrupt`)).status).toBe(200);
    const received = (await events).filter((event) => event.type !== 'keepalive');
    expect(errorsOf(received)[0]?.name).toBe('KeyboardInterrupt');
    expect(stdoutOf(received)).toBe('');
    expect(stdoutOf(await execute({ context_id: context, code: 'echo $survivor' }))).toBe('8\n');
  });

  it('starts a new shell when the code exits the old one, and says the state is lost', async () => {
    const context = await newContext('bash');
    await execute({ context_id: context, code: 'lost=yes' });
    expect(errorsOf(await execute({ context_id: context, code: 'exit 4' }))).toMatchObject([{ name: 'BashExited' }]);
    expect(stdoutOf(await execute({ context_id: context, code: 'echo "${lost-gone}"' }))).toBe('gone\n');
  });

  it('runs a context in the working directory it was created with, even with quotes and $ in its name', async () => {
    const name = `it's "odd" $HOME é ${Date.now()}`;
    // Made and checked by a new Python context in the server's workspace, wherever that is.
    const inWorkspace = await newContext('python');
    const python = (code: string) => execute({ context_id: inWorkspace, code: `import os\nname = ${JSON.stringify(name)}\n${code}` });
    expect(errorsOf(await python('os.makedirs(name)'))).toEqual([]);
    const created = await json<{ id: string; cwd: string }>('POST', '/contexts', { language: 'bash', cwd: name });
    expect(created.status).toBe(200);
    try {
      const events = await execute({ context_id: created.body.id, code: 'pwd; echo "$PWD"; touch made-here' });
      expect(stdoutOf(events)).toBe(`${created.body.cwd}\n${created.body.cwd}\n`);
      expect(path.posix.basename(created.body.cwd)).toBe(name);
      expect(stdoutOf(await python('print(os.path.isfile(os.path.join(name, "made-here")))'))).toBe('True\n');
    } finally {
      await request('DELETE', `/contexts/${created.body.id}`);
    }
  });
});
