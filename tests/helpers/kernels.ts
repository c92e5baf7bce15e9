import { readdir, readFile } from 'node:fs/promises';

/** Python code that prints the id of the Jupyter kernel it runs in (from its connection file's name). */
export const PYTHON_KERNEL_ID_CODE =
  'import re as _re, ipykernel.connect as _c\nprint(_re.search(r"kernel-([0-9a-f-]+)\\.json", _c.get_connection_file()).group(1))\ndel _re, _c';

export interface JupyterKernel {
  id: string;
  name: string;
  last_activity: string;
}

/**
 * The kernels Jupyter runs, through its own REST API. Jupyter 1.x can answer 500 while a kernel
 * is being shut down (the listing meets it half gone): that answer is asked again.
 */
export async function jupyterKernels(jupyterUrl: string, token: string): Promise<JupyterKernel[]> {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(`${jupyterUrl}/api/kernels`, { headers: { authorization: `token ${token}` } });
    if (response.status === 200) return (await response.json()) as JupyterKernel[];
    if (response.status !== 500 || attempt >= 20) throw new Error(`GET /api/kernels answered ${response.status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The pids of the processes started for a kernel (their command line names its connection file). */
export async function kernelPids(kernelId: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(`kernel-${kernelId}.json`)) pids.push(Number(entry));
  }
  return pids;
}
