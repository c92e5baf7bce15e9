import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { forgetCounterFile, oomCounterPath, oomKillCount, readCounter } from '../../server/contexts/oom-kills.js';

const dir = mkdtempSync(path.join(tmpdir(), 'oom-kills-'));
afterAll(() => {
  forgetCounterFile();
  rmSync(dir, { recursive: true, force: true });
});

describe('oomKillCount', () => {
  it('reads the same count as the file it found holds', () => {
    const file = oomCounterPath();
    // Linux: a cgroup's file or /proc/vmstat; elsewhere there is none to read.
    if (file === undefined) {
      expect(oomKillCount()).toBeUndefined();
      return;
    }
    const expected = Number(/^oom_kill (\d+)$/m.exec(readFileSync(file, 'utf8'))![1]);
    // The count only grows; nothing here kills a process, so it stays put.
    expect(oomKillCount()).toBe(expected);
    expect(oomKillCount()).toBe(expected);
  });

  it('keeps one descriptor open however often it is read', () => {
    if (oomCounterPath() === undefined) return;
    oomKillCount();
    const before = readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 200; i++) oomKillCount();
    expect(readdirSync('/proc/self/fd').length).toBe(before);
  });

  it('reads the file afresh each time through the descriptor it keeps', () => {
    const file = path.join(dir, 'memory.events');
    writeFileSync(file, 'low 0\nhigh 0\nmax 0\noom 2\noom_kill 3\n');
    const fd = openSync(file, 'r');
    try {
      expect(readCounter({ fd })).toBe(3);
      // Rewritten in place (same inode), as the kernel regenerates the file on each read.
      writeFileSync(file, 'low 0\nhigh 0\nmax 0\noom 9\noom_kill 7\n');
      expect(readCounter({ fd })).toBe(7);
      // Longer than the buffer it starts with: read in several reads, the count at the end.
      writeFileSync(file, `${'pgfault 123456789\n'.repeat(3000)}oom_kill 11\n`);
      expect(readCounter({ fd })).toBe(11);
      writeFileSync(file, 'oom_kill_disable 0\nunder_oom 0\n');
      expect(readCounter({ fd })).toBeUndefined();
    } finally {
      closeSync(fd);
    }
  });

  it('is undefined for a descriptor that cannot be read', () => {
    expect(readCounter({ fd: 987654 })).toBeUndefined();
  });
});
