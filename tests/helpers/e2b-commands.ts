import { AuthenticationError, CommandExitError, TimeoutError, type Sandbox } from '@e2b/code-interpreter';
import { expect, it } from 'vitest';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * `sandbox.commands`, `sandbox.pty` and `sandbox.git` of e2b's SDK, as its users call them: the
 * same cases against a local server and against the image (envd's protocol on 49983). `setup`
 * gives the sandbox and the workspace the commands start in by default.
 */
export function envdCases(setup: () => { sandbox: Sandbox; workspaceDir: string }): void {
  it('runs a command: stdout, stderr and exit code', async () => {
    const { sandbox } = setup();
    const result = await sandbox.commands.run('echo out; echo err >&2');
    expect(result).toMatchObject({ exitCode: 0, stdout: 'out\n', stderr: 'err\n' });
  });

  it("throws a failing command's CommandExitError, with its exit code, output and Go's status", async () => {
    const { sandbox } = setup();
    const failed = await sandbox.commands.run('echo partial; exit 3').catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(CommandExitError);
    expect(failed).toMatchObject({ exitCode: 3, stdout: 'partial\n', message: 'exit status 3' });
  });

  it('passes envs and cwd, and starts in the workspace by default', async () => {
    const { sandbox, workspaceDir } = setup();
    expect((await sandbox.commands.run('echo "$FOO"; pwd', { envs: { FOO: 'bar baz' }, cwd: '/tmp' })).stdout).toBe('bar baz\n/tmp\n');
    expect((await sandbox.commands.run('pwd')).stdout).toBe(`${workspaceDir}\n`);
    await expect(sandbox.commands.run('pwd', { cwd: '/no/such/directory' })).rejects.toThrow(/cwd/i);
  });

  it('kills a command at its timeoutMs: TimeoutError, and nothing left running', async () => {
    const { sandbox } = setup();
    const started = Date.now();
    await expect(sandbox.commands.run('sleep 30', { timeoutMs: 1500 })).rejects.toBeInstanceOf(TimeoutError);
    expect(Date.now() - started).toBeLessThan(10_000);
    const handle = await sandbox.commands.run('sleep 30', { timeoutMs: 1500, background: true });
    await expect(handle.wait()).rejects.toBeInstanceOf(TimeoutError);
    // Killed with the deadline: gone from the list once reaped.
    await waitFor(async () => !(await sandbox.commands.list()).some((process) => process.pid === handle.pid));
  });

  it('runs in the background, and connect() re-attaches to the new output', async () => {
    const { sandbox } = setup();
    const before: string[] = [];
    const handle = await sandbox.commands.run('for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.3; done', {
      background: true,
      onStdout: (data) => void before.push(data),
    });
    expect(handle.pid).toBeGreaterThan(0);
    // A login shell can take a while to start: leave once the first line has been read.
    await waitFor(() => before.join('').includes('line1\n'));
    await handle.disconnect();
    const seen: string[] = [];
    const attached = await sandbox.commands.connect(handle.pid, { onStdout: (data) => void seen.push(data) });
    const result = await attached.wait();
    expect(result.exitCode).toBe(0);
    expect(seen.join('')).toContain('line8\n');
    // Only what came after connect(): the first line had been read before it.
    expect(seen.join('')).not.toContain('line1\n');
    await expect(sandbox.commands.connect(999_999)).rejects.toThrow(/not found/i);
  });

  it('writes to stdin and closes it', async () => {
    const { sandbox } = setup();
    const handle = await sandbox.commands.run('cat', { background: true, stdin: true });
    await sandbox.commands.sendStdin(handle.pid, 'hello\n');
    await sandbox.commands.sendStdin(handle.pid, encoder.encode('bytes\n'));
    await sandbox.commands.closeStdin(handle.pid);
    const result = await handle.wait();
    expect(result).toMatchObject({ exitCode: 0, stdout: 'hello\nbytes\n' });
  });

  it('lists running commands and kills one (and its tree); kill of an unknown pid is false', async () => {
    const { sandbox } = setup();
    const handle = await sandbox.commands.run('sleep 31 & sleep 32; wait', { background: true, cwd: '/tmp', envs: { MARK: 'listed' } });
    const listed = (await sandbox.commands.list()).find((process) => process.pid === handle.pid);
    expect(listed).toMatchObject({ cmd: '/bin/bash', cwd: '/tmp', envs: { MARK: 'listed' } });
    expect(listed!.args.join(' ')).toContain('sleep 31 & sleep 32');

    expect(await sandbox.commands.kill(handle.pid)).toBe(true);
    const killed = await handle.wait().catch((error: unknown) => error);
    expect(killed).toBeInstanceOf(CommandExitError);
    expect(killed).toMatchObject({ exitCode: -1, message: 'signal: killed' });
    expect((await sandbox.commands.list()).map((process) => process.pid)).not.toContain(handle.pid);
    // The tree went too: no sleep 31 left behind.
    await expect(sandbox.commands.run(`kill -0 ${handle.pid}`)).rejects.toBeInstanceOf(CommandExitError);
    await expect(sandbox.commands.run('pgrep -f "^sleep 31$"')).rejects.toBeInstanceOf(CommandExitError);
    expect(await sandbox.commands.kill(999_999)).toBe(false);
  });

  it('refuses to run as another user (root): commands run as the kernels’ user', async () => {
    const { sandbox } = setup();
    await expect(sandbox.commands.run('id -u', { user: 'root' })).rejects.toBeInstanceOf(AuthenticationError);
    expect((await sandbox.commands.run('echo ok', { user: 'user' })).stdout).toBe('ok\n');
  });

  it('opens a terminal: input, resize, output, exit', async () => {
    const { sandbox } = setup();
    let output = '';
    const terminal = await sandbox.pty.create({
      cols: 80,
      rows: 24,
      envs: { ABC: '123' },
      onData: (data) => void (output += decoder.decode(data)),
    });
    await sandbox.pty.sendInput(terminal.pid, encoder.encode('echo "abc=$ABC"\n'));
    await waitFor(() => output.includes('abc=123'));
    await sandbox.pty.resize(terminal.pid, { cols: 100, rows: 30 });
    await sandbox.pty.sendInput(terminal.pid, encoder.encode('stty size\n'));
    await waitFor(() => output.includes('30 100'));
    await sandbox.pty.sendInput(terminal.pid, encoder.encode('exit\n'));
    expect((await terminal.wait()).exitCode).toBe(0);
  });

  it('kills a terminal', async () => {
    const { sandbox } = setup();
    const terminal = await sandbox.pty.create({ cols: 80, rows: 24, onData: () => undefined });
    expect(await sandbox.pty.kill(terminal.pid)).toBe(true);
    await expect(terminal.wait()).rejects.toMatchObject({ exitCode: -1 });
  });

  it('runs git: init, add, commit, status', async () => {
    const { sandbox } = setup();
    const repo = `/tmp/e2b-git-${Date.now()}`;
    await sandbox.git.init(repo, { initialBranch: 'main' });
    await sandbox.commands.run(`echo hello > ${repo}/a.txt`);
    const dirty = await sandbox.git.status(repo);
    expect(dirty.currentBranch).toBe('main');
    expect(dirty.fileStatus.map((file) => file.name)).toEqual(['a.txt']);
    await sandbox.git.add(repo, { all: true });
    await sandbox.git.commit(repo, 'first', { authorName: 'Test', authorEmail: 'test@example.com' });
    const clean = await sandbox.git.status(repo);
    expect(clean.isClean).toBe(true);
    expect((await sandbox.commands.run(`git -C ${repo} log --format=%s`)).stdout).toBe('first\n');
    await sandbox.commands.run(`rm -rf ${repo}`);
  });
}
