import { describe, expect, it } from 'vitest';
import { SerialQueue } from '../../server/contexts/serial-queue.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('SerialQueue', () => {
  it('runs jobs one at a time in arrival order', async () => {
    const queue = new SerialQueue(10);
    const log: string[] = [];
    const job = (name: string) => async () => {
      log.push(`start ${name}`);
      await tick();
      log.push(`end ${name}`);
      return name;
    };
    const results = await Promise.all([queue.run(job('a')), queue.run(job('b')), queue.run(job('c'))]);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  it('moves on after a job fails', async () => {
    const queue = new SerialQueue(10);
    const failing = queue.run(async () => {
      throw new Error('boom');
    });
    await expect(failing).rejects.toThrow('boom');
    await expect(queue.run(async () => 'next')).resolves.toBe('next');
  });

  it('withdraws a waiting job whose signal aborts, leaving no trace', async () => {
    const queue = new SerialQueue(10);
    let release!: () => void;
    const first = queue.run(() => new Promise<void>((resolve) => (release = resolve)));
    const controller = new AbortController();
    let ran = false;
    const waiting = queue.run(async () => {
      ran = true;
    }, controller.signal);
    expect(queue.waitingCount).toBe(1);
    controller.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    expect(queue.waitingCount).toBe(0);
    release();
    await first;
    expect(ran).toBe(false);
    expect(queue.busy).toBe(false);
  });

  it('reports full once the cap of waiting jobs is reached', async () => {
    const queue = new SerialQueue(1);
    let release!: () => void;
    const first = queue.run(() => new Promise<void>((resolve) => (release = resolve)));
    expect(queue.full).toBe(false);
    const second = queue.run(async () => undefined);
    expect(queue.full).toBe(true);
    await tick();
    release();
    await Promise.all([first, second]);
    expect(queue.full).toBe(false);
  });

  it('rejects every waiting job on demand', async () => {
    const queue = new SerialQueue(10);
    let release!: () => void;
    const first = queue.run(() => new Promise<void>((resolve) => (release = resolve)));
    const waiting = [queue.run(async () => 1), queue.run(async () => 2)];
    queue.rejectWaiting(new Error('closing'));
    for (const job of waiting) await expect(job).rejects.toThrow('closing');
    release();
    await first;
  });
});
