import { readFileSync, writeFileSync } from 'node:fs';

/** Resident memory of a process, from /proc/<pid>/status, in bytes. */
export interface MemoryReading {
  rss: number;
  /** Peak resident size since start, or since the last {@link resetPeak}. */
  hwm: number;
}

export function readMemory(pid: number): MemoryReading {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(match[1]) * 1024;
  };
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/**
 * Resets the kernel's peak-RSS counter (VmHWM) to the current RSS, so that the peak read after a
 * benchmark belongs to that benchmark alone (Linux >= 4.0; needs the right to write the target's
 * clear_refs, which the owner has). Returns false when the kernel refused.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface MemoryPeak {
  /** RSS just before the measured work started. */
  before: number;
  /** Highest RSS seen: the larger of the sampled maximum and VmHWM (when it could be reset). */
  peak: number;
  /** Whether VmHWM was reset, and so counts in `peak`. */
  hwmReset: boolean;
  samples: number;
}

/**
 * Samples a process's RSS while work runs. The sampler runs on this process's event loop, which
 * is busy reading responses during a benchmark, so samples can be late; VmHWM, reset at the
 * start, catches any peak between samples.
 */
export class MemorySampler {
  private readonly timer: NodeJS.Timeout;
  private readonly before: number;
  private readonly hwmReset: boolean;
  private peakSampled: number;
  private samples = 0;

  constructor(
    private readonly pid: number,
    intervalMs = 10,
  ) {
    this.before = readMemory(pid).rss;
    this.hwmReset = resetPeak(pid);
    this.peakSampled = this.before;
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    try {
      const { rss } = readMemory(this.pid);
      this.samples += 1;
      if (rss > this.peakSampled) this.peakSampled = rss;
    } catch {
      // The process is gone; stop() reports what was seen.
    }
  }

  stop(): MemoryPeak {
    clearInterval(this.timer);
    this.sample();
    let peak = this.peakSampled;
    if (this.hwmReset) {
      try {
        peak = Math.max(peak, readMemory(this.pid).hwm);
      } catch {
        // gone
      }
    }
    return { before: this.before, peak, hwmReset: this.hwmReset, samples: this.samples };
  }
}
