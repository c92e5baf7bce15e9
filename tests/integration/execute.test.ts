import { describe, expect, it } from 'vitest';
import { errorsOf, execute, mainResult, readEvents, request, stdoutOf, type ExecutionEvent } from '../helpers/api.js';

describe('POST /execute', () => {
  it('streams stdout, the counter first and end_of_execution last', async () => {
    const events = await execute({ code: 'print("hello")' });
    expect(events[0]).toMatchObject({ type: 'number_of_executions' });
    expect(Number.isInteger(events[0]!.execution_count)).toBe(true);
    expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
    const stdout = events.find((event) => event.type === 'stdout');
    expect(stdout).toMatchObject({ text: 'hello\n' });
    expect(Date.parse(stdout!.timestamp as string)).not.toBeNaN();
  });

  it('answers with the NDJSON content type', async () => {
    const response = await request('POST', '/execute', { code: '1' });
    expect(response.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    await response.text();
  });

  it('streams output as the kernel emits it, not at the end', async () => {
    const response = await request('POST', '/execute', {
      code: 'import time\nprint("first", flush=True)\ntime.sleep(1)\nprint("second", flush=True)',
    });
    const arrivals: Array<{ text: string; at: number }> = [];
    await readEvents(response, (event) => {
      if (event.type === 'stdout') arrivals.push({ text: event.text as string, at: Date.now() });
    });
    expect(arrivals.map((arrival) => arrival.text)).toEqual(['first\n', 'second\n']);
    expect(arrivals[1]!.at - arrivals[0]!.at).toBeGreaterThan(700);
  });

  it('reports stderr separately', async () => {
    const events = await execute({ code: 'import sys\nprint("oops", file=sys.stderr)' });
    expect(
      events
        .filter((event) => event.type === 'stderr')
        .map((event) => event.text)
        .join(''),
    ).toBe('oops\n');
  });

  it("returns the cell's value as the main result, with one pair of quotes stripped", async () => {
    expect(mainResult(await execute({ code: '40 + 2' }))).toMatchObject({ text: '42', is_main_result: true, html: null, png: null });
    expect(mainResult(await execute({ code: "'abc'" }))?.text).toBe('abc');
  });

  it('reports display() output as results that are not the main result', async () => {
    const events = await execute({
      code: 'from IPython.display import display, HTML, Markdown\ndisplay(HTML("<b>hi</b>"))\ndisplay(Markdown("*md*"))\n7',
    });
    const results = events.filter((event) => event.type === 'result');
    expect(results).toHaveLength(3);
    expect(results[0]).toMatchObject({ is_main_result: false, html: '<b>hi</b>' });
    expect(results[1]).toMatchObject({ is_main_result: false, markdown: '*md*' });
    expect(results[2]).toMatchObject({ is_main_result: true, text: '7' });
  });

  it('puts MIME types without a field of their own under extra', async () => {
    const events = await execute({
      code: 'from IPython.display import display\ndisplay({"application/vnd.custom+json": {"a": 1}, "text/plain": "custom"}, raw=True)',
    });
    const result = events.find((event) => event.type === 'result');
    expect(result).toMatchObject({ text: 'custom', extra: { 'application/vnd.custom+json': { a: 1 } } });
  });

  it('returns matplotlib figures as PNG results without GUI warnings', async () => {
    const events = await execute({
      code: 'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title("squares")\nplt.show()',
    });
    const png = events.find((event) => event.type === 'result' && typeof event.png === 'string');
    expect(png).toBeDefined();
    expect(
      Buffer.from(png!.png as string, 'base64')
        .subarray(1, 4)
        .toString(),
    ).toBe('PNG');
    expect(events.filter((event) => event.type === 'stderr')).toEqual([]);
    expect(errorsOf(events)).toEqual([]);
  });

  it('reports runtime errors with name, value and a traceback string', async () => {
    const events = await execute({ code: 'x = 1\n1 / 0' });
    const [error] = errorsOf(events);
    expect(error).toMatchObject({ name: 'ZeroDivisionError', value: 'division by zero' });
    expect(typeof error!.traceback).toBe('string');
    // The user's code reaches the kernel unmodified, so line numbers are the user's.
    expect(error!.traceback as string).toMatch(/----> 2/);
    expect(events.at(-1)).toEqual({ type: 'end_of_execution' });
  });

  it('reports syntax errors', async () => {
    const [error] = errorsOf(await execute({ code: 'def broken(:\n  pass' }));
    expect(error?.name).toBe('SyntaxError');
  });

  it('keeps state across executions, like notebook cells', async () => {
    await execute({ code: 'persisted_value = 1234' });
    expect(mainResult(await execute({ code: 'persisted_value' }))?.text).toBe('1234');
  });

  it('counts executions', async () => {
    const first = (await execute({ code: '1' }))[0]!.execution_count as number;
    const second = (await execute({ code: '1' }))[0]!.execution_count as number;
    expect(second).toBe(first + 1);
  });

  it('fails input() at once instead of hanging', async () => {
    const events = await execute({ code: 'input("name? ")', timeout: 20 });
    const [error] = errorsOf(events);
    expect(error?.name).toBe('StdinNotImplementedError');
  });

  it('runs executions in one context one at a time, in arrival order', async () => {
    await execute({ code: 'order = []' });
    const runs: Array<Promise<ExecutionEvent[]>> = [];
    for (const index of [0, 1, 2, 3]) {
      runs.push(execute({ code: `import time\norder.append(${index})\ntime.sleep(0.3)\nprint(${index})` }));
      // Spaced sends make the arrival order well defined; each run takes longer than the gap.
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    const results = await Promise.all(runs);
    expect(results.map((events) => stdoutOf(events))).toEqual(['0\n', '1\n', '2\n', '3\n']);
    expect(mainResult(await execute({ code: 'order' }))?.text).toBe('[0, 1, 2, 3]');
  });
});
