import { describe, expect, it } from 'vitest';
import { fileContexts, errorsOf, execute, json, mainResult, readEvents, request, stdoutOf, type ExecutionEvent } from '../helpers/api.js';

// JavaScript and TypeScript contexts run Deno's Jupyter kernel (image/kernels/js, image/kernels/ts).

const { newContext, track } = fileContexts();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const stderrOf = (events: ExecutionEvent[]) =>
  events
    .filter((event) => event.type === 'stderr')
    .map((event) => event.text as string)
    .join('');

// A 1x1 PNG.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

describe.each(['javascript', 'typescript'])('%s contexts', (language) => {
  it('run code with top-level await, keep state across cells and answer stdout, stderr and results', async () => {
    const context = await newContext(language);
    const typed = language === 'typescript' ? ': number' : '';
    await execute({ context_id: context, code: `const kept${typed} = await Promise.resolve(21);` });
    const events = await execute({ context_id: context, code: 'console.log("out", kept); console.error("err"); kept * 2' });
    expect(errorsOf(events)).toEqual([]);
    expect(stdoutOf(events)).toBe('out 21\n');
    expect(stderrOf(events)).toBe('err\n');
    expect(mainResult(events)?.text).toBe('42');
    const contexts = (await json<Array<{ id: string; language: string }>>('GET', '/contexts')).body;
    expect(contexts.find((entry) => entry.id === context)?.language).toBe(language);
  });

  it('reports errors with their name, message and stack', async () => {
    const context = await newContext(language);
    const events = await execute({
      context_id: context,
      code: 'function inner() { return null.field; }\nfunction outer() { return inner(); }\nouter()',
    });
    const [error] = errorsOf(events);
    expect(error).toMatchObject({ name: 'TypeError' });
    expect(error!.value).toMatch(/null/);
    expect(error!.traceback).toMatch(/at inner[\s\S]*at outer/);
  });

  it('shows rich output: HTML and PNG', async () => {
    const context = await newContext(language);
    const html = mainResult(await execute({ context_id: context, code: 'Deno.jupyter.html`<b>bold</b>`' }));
    expect(html?.html).toBe('<b>bold</b>');
    const events = await execute({ context_id: context, code: `await Deno.jupyter.display({ "image/png": "${PNG}" }, { raw: true }); 1` });
    const png = events.find((event) => event.type === 'result' && event.png);
    expect(png).toMatchObject({ is_main_result: false, png: PNG });
  });

  it('applies env_vars for one execution and restores them exactly', async () => {
    const context = await newContext(language);
    const value = `it's "quoted" \\ \`\${x}\` $(id) ünï 🚀`;
    await execute({ context_id: context, code: 'Deno.env.set("KEPT_VAR", "original"); Deno.env.delete("NEW_VAR");' });
    const during = await execute({
      context_id: context,
      code: 'console.log(JSON.stringify([Deno.env.get("NEW_VAR"), process.env.KEPT_VAR]))',
      env_vars: { NEW_VAR: value, KEPT_VAR: 'temporary' },
    });
    expect(errorsOf(during)).toEqual([]);
    expect(JSON.parse(stdoutOf(during))).toEqual([value, 'temporary']);
    const after = await execute({
      context_id: context,
      code: 'JSON.stringify([Deno.env.get("NEW_VAR") ?? null, Deno.env.get("KEPT_VAR")])',
    });
    expect(JSON.parse(mainResult(after)!.text as string)).toEqual([null, 'original']);
    // Restored even when the code throws.
    await execute({ context_id: context, code: 'throw new Error("x")', env_vars: { KEPT_VAR: 'temporary' } });
    expect(mainResult(await execute({ context_id: context, code: 'Deno.env.get("KEPT_VAR")' }))?.text).toBe('original');
  });

  it('stops a busy loop at the timeout and keeps the state', async () => {
    const context = await newContext(language);
    await execute({ context_id: context, code: 'globalThis.survivor = 7;' });
    const events = await execute({ context_id: context, code: 'while (true) {}', timeout: 1 });
    expect(errorsOf(events)).toMatchObject([{ name: 'TimeoutError' }]);
    expect(mainResult(await execute({ context_id: context, code: 'survivor' }))?.text).toBe('7');
  });
});

describe('JavaScript and TypeScript', () => {
  it('take js and ts as short names, and run in default contexts', async () => {
    const js = mainResult(await execute({ language: 'js', code: '[1, 2, 3].map((n) => n * 2).join(",")' }));
    expect(js?.text).toBe('2,4,6');
    const ts = mainResult(await execute({ language: 'ts', code: 'const f = (n: number): string => `n=${n}`; f(3)' }));
    expect(ts?.text).toBe('n=3');
    const { body } = await json<{ id: string; language: string }>('POST', '/contexts', { language: 'ts' });
    track(body.id);
    expect(body.language).toBe('typescript');
  });

  it('POST /contexts/{id}/interrupt stops a busy loop and the context runs on', async () => {
    const context = await newContext('typescript');
    const response = await request('POST', '/execute', { context_id: context, code: 'let spins = 0; while (true) { spins++; }' });
    const events = readEvents(response);
    await sleep(1000);
    expect((await json('POST', `/contexts/${context}/interrupt`)).status).toBe(200);
    // Deno ends the interrupted cell without an error message of its own.
    const received = (await events).filter((event) => event.type !== 'keepalive');
    expect(received.at(-1)).toEqual({ type: 'end_of_execution' });
    expect(Number(mainResult(await execute({ context_id: context, code: 'spins' }))?.text)).toBeGreaterThan(0);
  });

  it('restarts a kernel stuck in an await it cannot interrupt, and says the state was lost', async () => {
    const context = await newContext('javascript');
    await execute({ context_id: context, code: 'globalThis.lost = 1;' });
    const events = await execute({ context_id: context, code: 'await new Promise((resolve) => setTimeout(resolve, 120_000))', timeout: 1 });
    const [error] = errorsOf(events);
    expect(error).toMatchObject({ name: 'TimeoutError' });
    expect(error!.value).toMatch(/restarted/);
    expect(mainResult(await execute({ context_id: context, code: 'typeof globalThis.lost' }))?.text).toBe('undefined');
  });

  it('ends an execution whose code replaced console.log, and the next ones too', async () => {
    const context = await newContext('javascript');
    const started = Date.now();
    const events = await execute({ context_id: context, code: 'globalThis.saved = console.log; console.log = () => {}; 7' });
    expect(mainResult(events)?.text).toBe('7');
    expect(mainResult(await execute({ context_id: context, code: '8' }))?.text).toBe('8');
    // Each waited for a line that never came, for two seconds at most.
    expect(Date.now() - started).toBeLessThan(15_000);
    await execute({ context_id: context, code: 'console.log = globalThis.saved' });
    expect(stdoutOf(await execute({ context_id: context, code: 'console.log("back")' }))).toBe('back\n');
  });

  it('delivers every result and stream of back-to-back executions', async () => {
    // Deno's kernel can announce idle before its last outputs; none may be lost.
    const context = await newContext('typescript');
    for (let i = 0; i < 60; i++) {
      const events = await execute({ context_id: context, code: `console.error("e${i}"); ${i}` });
      expect(stderrOf(events)).toBe(`e${i}\n`);
      expect(mainResult(events)?.text).toBe(String(i));
    }
  });
});
