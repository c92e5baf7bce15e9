/**
 * What one execution cost the kernel: CPU time and peak resident memory, measured by the
 * kernel itself in two silent requests, one just before the user's code and one just after.
 *
 * Python kernels read `getrusage` (the kernel process and the children it waited for) and the
 * `VmHWM` line of /proc/self/status. The high-water mark is reset before the code runs by
 * writing "5" to /proc/self/clear_refs (Linux ≥ 4.0), so it is the peak of this execution,
 * not of the kernel's life. Where that reset is refused, the peak is still known when the
 * execution raised the lifetime high-water mark (it was reached during the execution);
 * otherwise it is reported as null.
 *
 * Both probes are `user_expressions` evaluated in a throwaway namespace: no name is left in the
 * user's, nothing is printed, and the execution counter does not move.
 */

/** A silent request: code (usually empty) and the expressions whose values come back. */
export interface ProbeRequest {
  code: string;
  userExpressions: Record<string, string>;
}

/** One reading taken by a probe. */
export interface UsageSample {
  /** CPU seconds (user + system) of the kernel and its waited-for children so far. */
  cpuSeconds: number;
  /** VmHWM in bytes at the time of the reading (before the reset, for the first probe). */
  highWaterBytes: number | null;
  /** Whether the first probe reset the high-water mark. */
  reset: boolean;
}

export interface ExecutionUsage {
  cpu_ms: number | null;
  peak_memory_bytes: number | null;
}

export interface UsageDialect {
  /** The probe sent right before the user's code. */
  begin(): ProbeRequest;
  /** The probe sent right after it. */
  end(): ProbeRequest;
  /** The reading in a probe's reply `user_expressions`; undefined when it is missing or malformed. */
  sampleFrom(userExpressions: Record<string, string> | undefined): UsageSample | undefined;
}

const KEY = 'code_interpreter_usage';

/** Runs in a fresh dictionary, not the user's namespace; answers hex-encoded JSON. */
const PYTHON_PROBE = (resetPeak: boolean) => `
import json, resource
def _cpu():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
def _hwm():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
hwm = _hwm()
reset = False
if ${resetPeak ? 'True' : 'False'}:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        reset = True
    except OSError:
        pass
result = json.dumps({'cpu': _cpu(), 'hwm': hwm, 'reset': reset}).encode('utf-8').hex()
`;

const pythonExpression = (source: string): string =>
  `(lambda g: (exec(bytes.fromhex('${Buffer.from(source, 'utf8').toString('hex')}').decode('utf-8'), g), g['result'])[1])({})`;

const python: UsageDialect = {
  begin: () => ({ code: '', userExpressions: { [KEY]: pythonExpression(PYTHON_PROBE(true)) } }),
  end: () => ({ code: '', userExpressions: { [KEY]: pythonExpression(PYTHON_PROBE(false)) } }),
  sampleFrom(userExpressions) {
    const plain = userExpressions?.[KEY];
    if (plain === undefined) return undefined;
    const encoded = plain.replace(/^'|'$/g, '');
    if (!/^(?:[0-9a-f]{2})+$/.test(encoded)) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(encoded, 'hex').toString('utf8'));
    } catch {
      return undefined;
    }
    const { cpu, hwm, reset } = (parsed ?? {}) as { cpu?: unknown; hwm?: unknown; reset?: unknown };
    if (typeof cpu !== 'number' || !Number.isFinite(cpu)) return undefined;
    return {
      cpuSeconds: cpu,
      highWaterBytes: typeof hwm === 'number' && Number.isFinite(hwm) ? hwm : null,
      reset: reset === true,
    };
  },
};

const DIALECTS: Record<string, UsageDialect> = { python };

/** The probes for a kernel language, or undefined when this server cannot measure it. */
export function usageDialect(language: string): UsageDialect | undefined {
  return DIALECTS[language.toLowerCase()];
}

/** CPU time and peak memory between two readings; null for what cannot be known. */
export function usageBetween(before: UsageSample | undefined, after: UsageSample | undefined): ExecutionUsage {
  if (!before || !after) return { cpu_ms: null, peak_memory_bytes: null };
  const cpu_ms = Math.max(0, Math.round((after.cpuSeconds - before.cpuSeconds) * 1000));
  let peak_memory_bytes: number | null = null;
  if (after.highWaterBytes !== null) {
    if (before.reset) peak_memory_bytes = after.highWaterBytes;
    // Without the reset the mark is the kernel's lifetime peak: it is this execution's only
    // when the execution raised it.
    else if (before.highWaterBytes !== null && after.highWaterBytes > before.highWaterBytes) peak_memory_bytes = after.highWaterBytes;
  }
  return { cpu_ms, peak_memory_bytes };
}
