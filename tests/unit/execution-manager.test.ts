import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ExecutionTarget, TargetResolver, TargetSelector } from '../../server/executions/execution.js';
import { ExecutionManager, type ExecutionManagerOptions } from '../../server/executions/manager.js';
import { FakeTarget } from '../helpers/fake-kernel.js';

/** The manager over fake contexts: every refusal and the bookkeeping, no Jupyter. */

function manager(targets: TargetResolver, options: Partial<ExecutionManagerOptions> = {}): ExecutionManager {
  return new ExecutionManager({
    targets,
    logger: pino({ level: 'silent' }),
    defaultTimeoutSeconds: 0,
    maxTimeoutSeconds: 60,
    bufferBytes: 1024 * 1024,
    totalBufferBytes: 16 * 1024 * 1024,
    retentionMs: 60_000,
    maxRetained: 100,
    maxQueuedBytes: 1024 * 1024,
    ...options,
  });
}

/** A target whose code `hold` runs until released. */
function holdingTarget(maxQueued = 8): { target: FakeTarget; release: () => void } {
  const target = new FakeTarget(undefined, maxQueued);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  target.kernel.scripts.set('hold', async (kernel) => {
    kernel.print('holding\n');
    await released;
    return 'ok';
  });
  return { target, release };
}

async function untilRunning(execution: { info: { state: string } }): Promise<void> {
  for (let i = 0; i < 100 && execution.info.state !== 'running'; i++) await sleep(1);
  expect(execution.info.state).toBe('running');
}

describe('ExecutionManager over fake contexts', () => {
  it('asks its resolver for the target, or the one a door brings', async () => {
    const asked: TargetSelector[] = [];
    const registry = new FakeTarget(undefined, 8, 'registry-default');
    const resolver: TargetResolver = {
      resolve: async (selector) => {
        asked.push(selector);
        return registry;
      },
    };
    const executions = manager(resolver);
    const first = await executions.start({ code: 'a', language: 'python' });
    expect(asked).toEqual([{ contextId: undefined, language: 'python' }]);
    expect(first.contextId).toBe('registry-default');

    const own = new FakeTarget(undefined, 8, 'session-own');
    const second = await executions.start({ code: 'b' }, { resolve: async (): Promise<ExecutionTarget> => own });
    expect(second.contextId).toBe('session-own');
    expect(asked).toHaveLength(1);
    await Promise.all([first.finished, second.finished]);
    expect(executions.list().map((info) => info.context_id)).toEqual(['session-own', 'registry-default']);
  });

  it('refuses a bad request before anything is queued', async () => {
    const target = new FakeTarget();
    const executions = manager(target);
    const refusals: Array<[Parameters<ExecutionManager['start']>[0], string]> = [
      [{ code: 'x', contextId: 'c', language: 'python' }, 'ERR_CONTEXT_AND_LANGUAGE'],
      [{ code: 'x', envVars: { 'A=B': '1' } }, 'ERR_INVALID_ENV_VAR'],
      [{ code: 'x', timeoutSeconds: 61 }, 'ERR_INVALID_REQUEST'],
      [{ code: 'x', timeoutSeconds: -1 }, 'ERR_INVALID_REQUEST'],
    ];
    for (const [request, code] of refusals) await expect(executions.start(request)).rejects.toMatchObject({ code });
    expect(executions.list()).toEqual([]);
    expect(executions.totalQueuedBytes).toBe(0);
  });

  it('refuses work beyond a busy context queue, and beyond the queued-bytes cap', async () => {
    const { target, release } = holdingTarget(1);
    const executions = manager(target, { maxQueuedBytes: 10 });
    const running = await executions.start({ code: 'hold' });
    await untilRunning(running);
    const queued = await executions.start({ code: '12345678' });
    expect(executions.totalQueuedBytes).toBe(8);
    await expect(executions.start({ code: 'x' })).rejects.toMatchObject({ code: 'ERR_CONTEXT_BUSY', statusCode: 429 });

    const roomy = holdingTarget(8);
    const other = manager(roomy.target, { maxQueuedBytes: 10 });
    await untilRunning(await other.start({ code: 'hold' }));
    await other.start({ code: '12345678' });
    await expect(other.start({ code: '123' })).rejects.toMatchObject({ code: 'ERR_QUEUE_FULL' });
    // Bytes leave the count as the executions start.
    roomy.release();
    release();
    await queued.finished;
    expect(executions.totalQueuedBytes).toBe(0);
    expect(executions.list()).toHaveLength(2);
  });

  it('tells the lifecycle of each execution in order', async () => {
    const executions = manager(new FakeTarget());
    const seen: string[] = [];
    for (const name of ['queued', 'started', 'finished'] as const) {
      executions.lifecycle.on(name, (info) => seen.push(`${name}:${info.state}${info.outcome ? `:${info.outcome}` : ''}`));
    }
    executions.lifecycle.on('output', (language, event) => seen.push(`output:${language}:${event.type}`));
    await (
      await executions.start({ code: 'hi' })
    ).finished;
    expect(seen).toEqual(['queued:queued', 'started:running', 'output:python:stdout', 'finished:finished:ok']);
  });

  it('forgets finished executions beyond the count cap, oldest first, and after their retention', async () => {
    const capped = manager(new FakeTarget(), { maxRetained: 1 });
    const first = await capped.start({ code: 'a' });
    await first.finished;
    const second = await capped.start({ code: 'b' });
    await second.finished;
    expect(() => capped.get(first.id)).toThrow(expect.objectContaining({ code: 'ERR_EXECUTION_NOT_FOUND' }));
    expect(capped.get(second.id)).toBe(second);

    const brief = manager(new FakeTarget(), { retentionMs: 30 });
    const short = await brief.start({ code: 'c' });
    await short.finished;
    expect(brief.get(short.id)).toBe(short);
    for (let i = 0; i < 100 && brief.list().length > 0; i++) await sleep(10);
    expect(() => brief.get(short.id)).toThrow(expect.objectContaining({ code: 'ERR_EXECUTION_NOT_FOUND' }));
    expect(brief.totalBufferedBytes).toBe(0);
    capped.close();
    brief.close();
  });

  it('keeps every execution within the server-wide buffer, trimming finished ones first', async () => {
    const target = new FakeTarget();
    target.kernel.scripts.set('print', async (kernel) => {
      for (let i = 0; i < 20; i++) kernel.print(`${'y'.repeat(100)}\n`);
      return 'ok';
    });
    const executions = manager(target, { totalBufferBytes: 4096 });
    const old = await executions.start({ code: 'print' });
    await old.finished;
    const { target: holding, release } = holdingTarget();
    const running = await executions.start({ code: 'hold' }, holding);
    // Its requester reads along, so nothing of the running one may go.
    const reader = running.read({ requester: true });
    await reader.next();
    const big = await executions.start({ code: 'print' });
    await big.finished;
    expect(executions.totalBufferedBytes).toBeLessThanOrEqual(4096);
    expect(old.log.firstIndex).toBeGreaterThan(0);
    expect(running.log.firstIndex).toBe(0);
    release();
    for await (const entry of reader) if (entry.type === 'end_of_execution') break;
  });
});
