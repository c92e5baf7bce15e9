import { describe, expect, it } from 'vitest';
import { fileContexts, errorsOf, execute, mainResult, stdoutOf } from '../helpers/api.js';

// The suite's server runs with CONTEXT_MEMORY_LIMIT=4GiB (tests/helpers/global-setup.ts;
// scripts/docker-ci.sh starts the container with the same). The allocations below ask for far
// more address space than that and fail at once, so they cost no real memory.

const { newContext } = fileContexts();

describe('CONTEXT_MEMORY_LIMIT', () => {
  it('gives Python a MemoryError beyond the cap, and the context keeps its state', async () => {
    const context = await newContext('python');
    const limit = await execute({
      context_id: context,
      code: 'import resource\nkept = "still here"\nresource.getrlimit(resource.RLIMIT_AS)[0]',
    });
    const bytes = Number(mainResult(limit)?.text);
    expect(bytes).toBeGreaterThan(0); // -1 would be RLIM_INFINITY: no cap
    expect(bytes).toBeLessThanOrEqual(2 ** 40);

    const hog = await execute({ context_id: context, code: 'hog = bytearray(64 * 2**30)' });
    expect(errorsOf(hog)).toMatchObject([{ name: 'MemoryError' }]);
    // A list that grows until the cap is hit also ends in MemoryError, not in a dead kernel.
    const grower = await execute({ context_id: context, code: 'chunks = []\nwhile True:\n    chunks.append(bytearray(256 * 2**20))' });
    expect(errorsOf(grower)).toMatchObject([{ name: 'MemoryError' }]);
    expect(stdoutOf(await execute({ context_id: context, code: 'del chunks\nprint(kept)' }))).toBe('still here\n');
  });

  it('gives R an allocation error beyond the cap, and the context keeps its state', async () => {
    const context = await newContext('r');
    await execute({ context_id: context, code: 'kept <- "still here"' });
    const limits = stdoutOf(
      await execute({ context_id: context, code: 'cat(grep("^Max address space", readLines("/proc/self/limits"), value = TRUE))' }),
    );
    expect(limits).toMatch(/^Max address space\s+\d+\s+\d+\s+bytes/);
    const [error] = errorsOf(await execute({ context_id: context, code: 'hog <- numeric(8e9)' }));
    expect(error?.value).toMatch(/cannot allocate/);
    expect(stdoutOf(await execute({ context_id: context, code: 'cat(kept)' }))).toBe('still here');
  });

  it('caps the V8 heap of JavaScript kernels at the same size', async () => {
    const python = await newContext('python');
    const cap = Number(
      mainResult(await execute({ context_id: python, code: 'import resource\nresource.getrlimit(resource.RLIMIT_AS)[0]' }))?.text,
    );
    const js = await newContext('javascript');
    const heap = Number(
      mainResult(await execute({ context_id: js, code: '(await import("node:v8")).getHeapStatistics().heap_size_limit' }))?.text,
    );
    // V8 adds its young generation to the old-space limit it was given.
    expect(heap).toBeGreaterThan(cap * 0.9);
    expect(heap).toBeLessThan(cap * 1.1);
  });
});

describe('out-of-memory priority', () => {
  it('starts every kernel with oom_score_adj 1000, above Jupyter and the API', async () => {
    const python = await newContext('python');
    const code = [
      'import os',
      'def adj(pid): return int(open(f"/proc/{pid}/oom_score_adj").read())',
      'def cmd(pid): return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\\0", b" ").decode()',
      'pid, jupyter = os.getpid(), None',
      'while pid > 1 and jupyter is None:',
      '    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])',
      '    if "jupyter_server" in cmd(pid): jupyter = pid',
      'print(adj(os.getpid()), adj(jupyter) < 1000)',
    ].join('\n');
    expect(stdoutOf(await execute({ context_id: python, code }))).toBe('1000 True\n');
    const js = await newContext('typescript');
    expect(mainResult(await execute({ context_id: js, code: 'Deno.readTextFileSync("/proc/self/oom_score_adj").trim()' }))?.text).toBe(
      '1000',
    );
    const r = await newContext('r');
    expect(stdoutOf(await execute({ context_id: r, code: 'cat(readLines("/proc/self/oom_score_adj"))' }))).toBe('1000');
  });
});
