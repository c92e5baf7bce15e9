import { afterAll, describe, expect, it } from 'vitest';
import { createContext, deleteContext, errorsOf, execute, request, stdoutOf } from '../helpers/api.js';

/**
 * Processes a kernel starts end with its context, those that left the kernel's session included
 * (`setsid`, a daemon's double fork). Checked from another context, so that it holds against a
 * server on this machine and against the container alike.
 */
describe('processes started by a kernel', () => {
  const created: string[] = [];
  afterAll(async () => {
    for (const id of created) await deleteContext(id);
  });

  // Starts a plain child, one in a new session, and a double-forked daemon in a new session whose
  // parent has exited; prints their pids once all three run.
  const spawnDetached = [
    'import os, subprocess, sys, time',
    'plain = subprocess.Popen(["sleep", "1000"])',
    'session = subprocess.Popen(["sleep", "1001"], start_new_session=True)',
    'read_end, write_end = os.pipe()',
    'if os.fork() == 0:',
    '    os.setsid()',
    '    if os.fork() == 0:',
    '        os.write(write_end, str(os.getpid()).encode())',
    '        os.execvp("sleep", ["sleep", "1002"])',
    '    os._exit(0)',
    'daemon = int(os.read(read_end, 32))',
    'time.sleep(0.2)',
    'print(plain.pid, session.pid, daemon)',
  ].join('\n');

  const alive = (pids: number[]) =>
    [
      'import os',
      `for pid in ${JSON.stringify(pids)}:`,
      '    try:',
      '        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]',
      '    except OSError:',
      '        state = "gone"',
      '    print(pid, "alive" if state not in ("Z", "X", "gone") else "gone")',
    ].join('\n');

  async function checkAfter(end: (id: string) => Promise<void>): Promise<void> {
    const doomed = await createContext();
    created.push(doomed.id);
    const watcher = await createContext();
    created.push(watcher.id);
    const started = await execute({ code: spawnDetached, context_id: doomed.id });
    expect(errorsOf(started)).toEqual([]);
    const pids = stdoutOf(started).trim().split(' ').map(Number);
    expect(pids).toHaveLength(3);

    const before = stdoutOf(await execute({ code: alive(pids), context_id: watcher.id }));
    expect(before).toBe(pids.map((pid) => `${pid} alive\n`).join(''));

    await end(doomed.id);
    let after = '';
    for (let attempt = 0; attempt < 50; attempt++) {
      after = stdoutOf(await execute({ code: alive(pids), context_id: watcher.id }));
      if (!after.includes('alive')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(after).toBe(pids.map((pid) => `${pid} gone\n`).join(''));
  }

  it('end when the context is deleted', async () => {
    await checkAfter(async (id) => {
      expect((await request('DELETE', `/contexts/${id}`)).status).toBe(200);
    });
  });

  it('end when the context is restarted', async () => {
    await checkAfter(async (id) => {
      expect((await request('POST', `/contexts/${id}/restart`)).status).toBe(200);
    });
  });

  it('end when the kernel dies', async () => {
    await checkAfter(async (id) => {
      const events = await execute({ code: 'import os, signal\nos.kill(os.getpid(), signal.SIGKILL)', context_id: id });
      expect(errorsOf(events).map((event) => event.name)).toContain('KernelDied');
    });
  });
});
