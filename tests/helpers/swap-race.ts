import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Swaps two paths with renameat2(RENAME_EXCHANGE) in a loop until killed, as hostile code in a
 * kernel would; resolves once the loop runs. Debian's Python (ctypes) does the system call.
 */
export async function startSwapRace(a: string, b: string): Promise<ChildProcess> {
  const code = [
    'import ctypes, sys',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'a, b = sys.argv[1].encode(), sys.argv[2].encode()',
    'print("ready", flush=True)',
    'while True: libc.renameat2(-100, a, -100, b, 2)',
  ].join('\n');
  const racer = spawn('/usr/bin/python3', ['-c', code, a, b], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    racer.once('error', reject);
    racer.stdout.once('data', () => resolve());
  });
  return racer;
}
