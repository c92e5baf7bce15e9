import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { usageBetween, usageDialect, type UsageSample } from '../../server/runs/usage.js';
import { userExpressionsOf } from '../helpers/kernel-messages.js';

const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const MB = 1024 * 1024;

/**
 * Runs `before`, then the probes around `during`, in one real Python process, the way the
 * kernel evaluates user_expressions, and hands each probe's value back as the kernel's
 * text/plain repr would carry it.
 */
function measure(during: string, before = ''): { begin: UsageSample; end: UsageSample; leftovers: string[] } {
  const dialect = usageDialect('python')!;
  const [beginExpression] = Object.values(dialect.begin().userExpressions);
  const [endExpression] = Object.values(dialect.end().userExpressions);
  const source = [
    'import json',
    before,
    `names = set(globals())`,
    `begin = ${beginExpression}`,
    during,
    `end = ${endExpression}`,
    // What the probes left in the namespace besides the names this script made itself.
    `print(json.dumps([repr(begin), repr(end), sorted(set(globals()) - names - {"begin", "end", "names"})]))`,
  ].join('\n');
  const [begin, end, leftovers] = JSON.parse(execFileSync(python, ['-c', source], { encoding: 'utf8' })) as [string, string, string[]];
  const sample = (plain: string) =>
    dialect.sampleFrom(userExpressionsOf({ code_interpreter_usage: { status: 'ok', data: { 'text/plain': plain } } }))!;
  return { begin: sample(begin), end: sample(end), leftovers };
}

// A second of CPU can take many seconds of wall time on a loaded machine.
describe('python usage probes, run by a real Python', { timeout: 60_000 }, () => {
  it('measure about one second of CPU for a one-second busy loop', () => {
    const { begin, end, leftovers } = measure('import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass');
    const { cpu_ms } = usageBetween(begin, end);
    expect(cpu_ms).toBeGreaterThanOrEqual(950);
    expect(cpu_ms).toBeLessThan(1500);
    expect(leftovers.filter((name) => name !== 't' && name !== 'time')).toEqual([]);
  });

  it('see a 200 MB allocation in the peak, even once it was freed', () => {
    const { begin, end } = measure('x = b"x" * (200 * 1024 * 1024)\ndel x');
    expect(begin.reset).toBe(true);
    const { peak_memory_bytes, cpu_ms } = usageBetween(begin, end);
    expect(peak_memory_bytes).toBeGreaterThanOrEqual(200 * MB);
    expect(cpu_ms).toBeLessThan(1000);
  });

  it('reset the peak: a larger allocation before the execution does not count', () => {
    // 400 MB before the first probe, freed; 50 MB during the execution.
    const { begin, end } = measure('y = b"y" * (50 * 1024 * 1024)\ndel y', 'x = b"x" * (400 * 1024 * 1024)\ndel x');
    expect(begin.highWaterBytes).toBeGreaterThanOrEqual(400 * MB);
    const { peak_memory_bytes } = usageBetween(begin, end);
    expect(peak_memory_bytes).toBeGreaterThanOrEqual(50 * MB);
    expect(peak_memory_bytes).toBeLessThan(300 * MB);
  });
});

describe('usageBetween', () => {
  const sample = (cpuSeconds: number, highWaterBytes: number | null, reset: boolean): UsageSample => ({
    cpuSeconds,
    highWaterBytes,
    reset,
  });

  it('reports the peak after a reset as it is', () => {
    expect(usageBetween(sample(1.5, 500, true), sample(2.25, 300, false))).toEqual({ cpu_ms: 750, peak_memory_bytes: 300 });
  });

  it('without a reset, reports the peak only when the execution raised it', () => {
    expect(usageBetween(sample(1, 500, false), sample(1, 800, false))).toEqual({ cpu_ms: 0, peak_memory_bytes: 800 });
    expect(usageBetween(sample(1, 500, false), sample(1, 500, false))).toEqual({ cpu_ms: 0, peak_memory_bytes: null });
  });

  it('reports nothing it could not measure', () => {
    expect(usageBetween(undefined, sample(1, 1, false))).toEqual({ cpu_ms: null, peak_memory_bytes: null });
    expect(usageBetween(sample(1, 1, true), sample(2, null, false))).toEqual({ cpu_ms: 1000, peak_memory_bytes: null });
  });
});

describe('python usage replies', () => {
  const dialect = usageDialect('python')!;
  it('ignore what they do not recognise', () => {
    expect(dialect.sampleFrom(undefined)).toBeUndefined();
    expect(dialect.sampleFrom(userExpressionsOf({ code_interpreter_usage: { status: 'error', ename: 'NameError' } }))).toBeUndefined();
    expect(
      dialect.sampleFrom(userExpressionsOf({ code_interpreter_usage: { status: 'ok', data: { 'text/plain': "'zz; code()'" } } })),
    ).toBeUndefined();
    const notJson = Buffer.from('{cpu', 'utf8').toString('hex');
    expect(
      dialect.sampleFrom(userExpressionsOf({ code_interpreter_usage: { status: 'ok', data: { 'text/plain': `'${notJson}'` } } })),
    ).toBeUndefined();
  });

  it('are measured only for languages that have probes', () => {
    expect(usageDialect('python')).toBeDefined();
    expect(usageDialect('Python')).toBeDefined();
    expect(usageDialect('r')).toBeUndefined();
  });
});
