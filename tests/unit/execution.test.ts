import { describe, expect, it } from 'vitest';
import { Execution, type ExecutionOptions } from '../../server/executions/execution.js';
import type { LogEntry } from '../../server/executions/event-log.js';
import type { OutputEvent } from '../../server/runs/events.js';
import type { ExecuteRequest } from '../../server/runs/run.js';
import { FakeTarget, type Script } from '../helpers/fake-kernel.js';

/**
 * An execution as a resource, with the real run policy (timeout ladder, output budget, input,
 * stop reasons) over a fake kernel: no Jupyter, every path on demand.
 */

const OPTIONS: ExecutionOptions = { bufferBytes: 1024 * 1024, onDisconnect: 'interrupt' };

function started(
  target: FakeTarget,
  request: Partial<ExecuteRequest> & { code: string },
  options: Partial<ExecutionOptions> = {},
): Execution {
  const execution = new Execution(target, { timeoutMs: 0, ...request }, { ...OPTIONS, ...options });
  execution.start(() => undefined);
  return execution;
}

async function collect(reader: AsyncIterable<LogEntry>): Promise<OutputEvent[]> {
  const events: OutputEvent[] = [];
  for await (const entry of reader) events.push(entry.event);
  return events;
}

/** A script that waits until `release` is called. */
function gate(): { script: Script; release: () => void } {
  let release!: () => void;
  const opened = new Promise<void>((resolve) => (release = resolve));
  return {
    release: () => release(),
    script: async (kernel) => {
      kernel.print('waiting\n');
      await opened;
      kernel.print('released\n');
      return 'ok';
    },
  };
}

const types = (events: OutputEvent[]) => events.map((event) => event.type);

describe('Execution over a fake kernel', () => {
  it('logs the kernel outputs in order, numbered with its id, and ends with end_of_execution', async () => {
    const target = new FakeTarget();
    target.kernel.scripts.set('work', async (kernel) => {
      kernel.print('one\n');
      kernel.result({ 'text/plain': "'two'" });
      kernel.print('three\n', 'stderr');
      kernel.result({ 'image/png': 'iVBOR' }, false);
      return 'ok';
    });
    const execution = started(target, { code: 'work' });
    const events = await collect(execution.read());
    expect(types(events)).toEqual(['number_of_executions', 'stdout', 'result', 'stderr', 'result', 'end_of_execution']);
    expect(events[0]).toEqual({ type: 'number_of_executions', execution_count: 1, execution_id: execution.id });
    expect(events[2]).toMatchObject({ type: 'result', is_main_result: true, text: 'two' });
    expect(events[4]).toMatchObject({ type: 'result', is_main_result: false, png: 'iVBOR' });
    expect(execution.info).toMatchObject({ state: 'finished', outcome: 'ok', event_count: 6, context_id: target.id, language: 'python' });
  });

  it('gives a late reader everything from where it asks, and re-attaching readers the same log', async () => {
    const target = new FakeTarget();
    const { script, release } = gate();
    target.kernel.scripts.set('slow', script);
    const execution = started(target, { code: 'slow' });
    // The first reader leaves after two events; a second attaches later, mid-run, from index 1.
    const first: OutputEvent[] = [];
    for await (const entry of execution.read()) {
      first.push(entry.event);
      if (first.length === 2) break;
    }
    expect(types(first)).toEqual(['number_of_executions', 'stdout']);
    const late = collect(execution.read({ from: 1 }));
    release();
    expect(types(await late)).toEqual(['stdout', 'stdout', 'end_of_execution']);
    await execution.finished;
    // After the end: from the start, from the middle, and past the end (the closing event only).
    expect(types(await collect(execution.read()))).toEqual(['number_of_executions', 'stdout', 'stdout', 'end_of_execution']);
    expect(types(await collect(execution.read({ from: 2 })))).toEqual(['stdout', 'end_of_execution']);
    expect(types(await collect(execution.read({ from: 99 })))).toEqual(['end_of_execution']);
  });

  it('tells a late reader how many events left the buffer', async () => {
    const target = new FakeTarget();
    target.kernel.scripts.set('loud', async (kernel) => {
      for (let i = 0; i < 50; i++) kernel.print(`${'x'.repeat(100)}\n`);
      return 'ok';
    });
    // Nobody reads as it runs, so the oldest events go once the execution holds 1 KB.
    const execution = started(target, { code: 'loud' }, { bufferBytes: 1024 });
    await execution.finished;
    const events = await collect(execution.read());
    expect(events[0]).toMatchObject({ type: 'events_dropped' });
    const dropped = (events[0] as { count: number }).count;
    expect(dropped + events.length - 1).toBe(52);
    expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
  });

  it('routes an answer to the prompt it names, once', async () => {
    const target = new FakeTarget();
    target.kernel.scripts.set('ask', async (kernel) => {
      const name = await kernel.input('name? ');
      kernel.print(`hello ${name}\n`);
      return 'ok';
    });
    const execution = started(target, { code: 'ask', stdin: true });
    const events: OutputEvent[] = [];
    for await (const { event } of execution.read()) {
      events.push(event);
      if (event.type !== 'input_request') continue;
      expect(execution.info.state).toBe('awaiting_input');
      expect(() => execution.provideInput('wrong', 'another-prompt')).toThrow(expect.objectContaining({ code: 'ERR_INPUT_NOT_PENDING' }));
      execution.provideInput('Ada', event.input_id);
      // Sent again (a retry after a lost reply): refused, never fed to a later prompt.
      expect(() => execution.provideInput('Ada', event.input_id)).toThrow(expect.objectContaining({ code: 'ERR_INPUT_NOT_PENDING' }));
    }
    expect(events.find((event) => event.type === 'input_request')).toMatchObject({ prompt: 'name? ', password: false });
    expect(events.find((event) => event.type === 'stdout')).toMatchObject({ text: 'hello Ada\n' });
    expect(execution.info.outcome).toBe('ok');
    expect(() => execution.provideInput('late')).toThrow(expect.objectContaining({ code: 'ERR_INPUT_NOT_PENDING' }));
  });

  it('interrupts a running execution (KeyboardInterrupt) and cancels a queued one', async () => {
    const target = new FakeTarget();
    target.kernel.scripts.set('loop', async (kernel) => {
      kernel.print('looping\n');
      await kernel.interrupted;
      kernel.error('KeyboardInterrupt', '');
      return 'error';
    });
    const running = started(target, { code: 'loop' });
    const queued = started(target, { code: 'next' });
    for await (const { event } of running.read()) if (event.type === 'stdout') break;
    expect(queued.info.state).toBe('queued');
    queued.interrupt();
    running.interrupt();
    expect(types(await collect(running.read()))).toEqual(['number_of_executions', 'stdout', 'error', 'end_of_execution']);
    expect(running.info.outcome).toBe('interrupted');
    expect(await collect(queued.read())).toEqual([
      expect.objectContaining({ type: 'error', name: 'ExecutionCancelled' }),
      { type: 'end_of_execution' },
    ]);
    expect(queued.info.outcome).toBe('cancelled');
    expect(target.kernel.interrupts).toBe(1);
  });

  it('interrupts at the time limit and reports a TimeoutError instead of the KeyboardInterrupt', async () => {
    const target = new FakeTarget();
    target.kernel.scripts.set('sleep', async (kernel) => {
      await kernel.interrupted;
      kernel.error('KeyboardInterrupt', '');
      return 'error';
    });
    const execution = started(target, { code: 'sleep', timeoutMs: 30 });
    const events = await collect(execution.read());
    expect(types(events)).toEqual(['number_of_executions', 'error', 'end_of_execution']);
    expect(events[1]).toMatchObject({ name: 'TimeoutError', value: 'Execution exceeded the time limit of 0.03 seconds' });
    expect(execution.info.outcome).toBe('timeout');
    expect(target.restarts).toBe(0);
  });

  it('ends a request whose reply the kernel dropped: KeyboardInterrupt when interrupted, else ExecutionAborted', async () => {
    const target = new FakeTarget();
    // ipykernel goes idle without a reply when the KeyboardInterrupt is raised in its own code.
    target.kernel.scripts.set('cut', async (kernel) => {
      await kernel.interrupted;
      return 'dropped';
    });
    target.kernel.scripts.set('broken', async () => 'dropped');
    const interrupted = started(target, { code: 'cut' });
    for await (const { event } of interrupted.read()) if (event.type === 'number_of_executions') break;
    interrupted.interrupt();
    const events = await collect(interrupted.read());
    expect(events.filter((event) => event.type === 'error')).toEqual([expect.objectContaining({ name: 'KeyboardInterrupt' })]);
    expect(interrupted.info.outcome).toBe('interrupted');

    const unprompted = started(target, { code: 'broken' });
    const errors = (await collect(unprompted.read())).filter((event) => event.type === 'error');
    expect(errors).toEqual([expect.objectContaining({ name: 'ExecutionAborted', value: expect.stringMatching(/without a reply/) })]);
    expect(unprompted.info.outcome).toBe('error');
    expect(target.restarts).toBe(0);
  });

  it('signals nothing for a stop while the environment variables are set, and never sends the code', async () => {
    const target = new FakeTarget();
    let release!: () => void;
    target.kernel.holdSilent = new Promise((resolve) => (release = resolve));
    const execution = started(target, { code: 'print("never")', envVars: { SECRET: 'x' } });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(execution.info.state).toBe('running');
    execution.interrupt();
    release();
    const events = await collect(execution.read());
    expect(types(events)).not.toContain('stdout');
    expect(execution.info.outcome).toBe('interrupted');
    expect(target.kernel.interrupts).toBe(0);
    expect(target.restarts).toBe(0);
  });

  it('restarts a kernel that ignores the interrupt past the grace period, and says the state was lost', async () => {
    const target = new FakeTarget({ interruptGraceMs: 30, maxOutputBytes: 1024 });
    // Stuck in C: SIGINT changes nothing; only the restart ends it.
    target.kernel.scripts.set('stuck', () => new Promise(() => undefined));
    const execution = started(target, { code: 'stuck', timeoutMs: 30 });
    const events = await collect(execution.read());
    expect(events.at(-2)).toMatchObject({
      name: 'TimeoutError',
      value: expect.stringMatching(/ignored the interrupt and was restarted, so its state was lost$/),
    });
    expect(execution.info.outcome).toBe('timeout');
    expect(target.kernel.interrupts).toBe(1);
    expect(target.restarts).toBe(1);
    // The context runs the next execution on its new kernel.
    const next = started(target, { code: 'print(1)' });
    await next.finished;
    expect(next.info.outcome).toBe('ok');
  });

  it('keeps text and results within one output budget and says what it dropped', async () => {
    const target = new FakeTarget({ interruptGraceMs: 1000, maxOutputBytes: 10 });
    target.kernel.scripts.set('big', async (kernel) => {
      kernel.print('12345678');
      kernel.print('abcdefgh');
      kernel.result({ 'text/plain': 'xyz' });
      kernel.print('12');
      return 'ok';
    });
    const events = await collect(started(target, { code: 'big' }).read());
    expect(events.filter((event) => event.type === 'stdout').map((event) => (event as { text: string }).text)).toEqual(['12345678', '12']);
    expect(events.find((event) => event.type === 'output_truncated')).toEqual({
      type: 'output_truncated',
      stream_bytes_dropped: 8,
      results_dropped: 1,
      limit_bytes: 10,
    });
  });

  it('interrupts when the requester goes away, unless told to continue', async () => {
    for (const onDisconnect of ['interrupt', 'continue'] as const) {
      const target = new FakeTarget();
      const { script, release } = gate();
      target.kernel.scripts.set('wait', async (kernel) => {
        const done = script(kernel);
        await Promise.race([kernel.interrupted, done]);
        return 'ok';
      });
      const execution = started(target, { code: 'wait' }, { onDisconnect });
      const gone = new AbortController();
      for await (const { event } of execution.read({ requester: true, signal: gone.signal })) {
        if (event.type === 'stdout') gone.abort();
      }
      if (onDisconnect === 'continue') {
        expect(execution.isFinished).toBe(false);
        release();
      }
      await execution.finished;
      expect(execution.info.outcome).toBe(onDisconnect === 'interrupt' ? 'abandoned' : 'ok');
      expect(target.kernel.interrupts).toBe(onDisconnect === 'interrupt' ? 1 : 0);
    }
  });

  it('adds execution_stats when asked, with what could not be measured as null', async () => {
    const execution = started(new FakeTarget(), { code: 'x', stats: true });
    const events = await collect(execution.read());
    expect(types(events).slice(-2)).toEqual(['execution_stats', 'end_of_execution']);
    expect(events.at(-2)).toMatchObject({ cpu_ms: null, peak_memory_bytes: null });
  });
});
