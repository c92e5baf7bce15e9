import { describe, expect, it } from 'vitest';
import { EventLog } from '../../server/executions/event-log.js';
import { RetainedLogs, SharedLogBudget } from '../../server/executions/retained-logs.js';

/** An execution or a process, as far as keeping its log goes. */
class Item {
  readonly log: EventLog;
  finishedAtMs: number | undefined;

  constructor(
    readonly id: string,
    owner: RetainedLogs<Item>,
  ) {
    this.log = new EventLog(1024 * 1024, owner.budget);
    owner.add(this);
  }

  print(bytes: number): void {
    this.log.append({ type: 'stdout', text: 'x'.repeat(bytes), timestamp: '2026-01-01T00:00:00.000Z' });
  }
}

const retention = { retentionMs: 60_000, maxRetained: 100, totalBufferBytes: 1 };

describe('SharedLogBudget', () => {
  it('bounds the events of two kinds together, trimming the finished ones of either kind first', () => {
    const shared = new SharedLogBudget(16 * 1024);
    const executions = new RetainedLogs<Item>(retention, shared);
    const processes = new RetainedLogs<Item>(retention, shared);

    const finishedExecution = new Item('e1', executions);
    for (let i = 0; i < 6; i++) finishedExecution.print(1000);
    finishedExecution.finishedAtMs = Date.now();
    const runningExecution = new Item('e2', executions);
    runningExecution.print(1000);

    // A chatty process: together the two kinds pass the one bound, and the finished execution pays.
    const runningProcess = new Item('p1', processes);
    for (let i = 0; i < 12; i++) runningProcess.print(1000);

    expect(shared.buffered).toBeLessThanOrEqual(16 * 1024);
    expect(executions.totalBufferedBytes).toBe(processes.totalBufferedBytes);
    expect(finishedExecution.log.firstIndex).toBeGreaterThan(0);
    expect(runningExecution.log.firstIndex).toBe(0);

    // Forgetting gives the bytes back to the one budget.
    executions.forget(finishedExecution);
    executions.forget(runningExecution);
    processes.forget(runningProcess);
    expect(shared.buffered).toBe(0);
  });
});

describe('RetainedLogs', () => {
  const finish = (owner: RetainedLogs<Item>, item: Item, at = Date.now()) => {
    item.finishedAtMs = at;
    owner.finished(item);
  };

  it('forgets the earliest finished beyond the cap, whatever order they started in, and never a running one', () => {
    const owner = new RetainedLogs<Item>({ ...retention, maxRetained: 2 });
    const [a, b, c] = ['a', 'b', 'c', 'running'].map((id) => new Item(id, owner)) as [Item, Item, Item, Item];
    finish(owner, c);
    finish(owner, a);
    expect(owner.values().map((item) => item.id)).toEqual(['a', 'b', 'c', 'running']);
    finish(owner, b);
    expect(owner.values().map((item) => item.id)).toEqual(['a', 'b', 'running']);
    owner.stop();
  });

  it('forgets a finished one once its retention has passed, and one forgotten meanwhile is not counted', async () => {
    const owner = new RetainedLogs<Item>({ ...retention, retentionMs: 30, maxRetained: 1 });
    const [early, removed, late] = ['early', 'removed', 'late'].map((id) => new Item(id, owner)) as [Item, Item, Item];
    finish(owner, removed);
    owner.forget(removed);
    finish(owner, early);
    expect(owner.values().map((item) => item.id)).toEqual(['early', 'late']);
    await new Promise((resolve) => setTimeout(resolve, 15));
    finish(owner, late);
    // Over the cap: the earlier one goes at once.
    expect(owner.values().map((item) => item.id)).toEqual(['late']);
    // Past its retention, the timer the sweep left forgets the last one too.
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(owner.values()).toEqual([]);
    owner.stop();
  });
});
