import { describe, expect, it } from 'vitest';
import { createContext, deleteContext, errorsOf, execute, json, mainResult, stdoutOf } from '../helpers/api.js';

const hostile = [
  `it's "quoted"`,
  'back\\slash \\n not a newline',
  'line one\nline two\r\n',
  '$(touch /tmp/pwned) `id` ${HOME}',
  "'); import os; os._exit(1); ('",
  '"""triple""" \'\'\'quotes\'\'\'',
  'ünïcödé ✓ 日本語 🚀 \u202e',
  '',
];

describe('env_vars', () => {
  it('delivers hostile values byte-identical and never runs them as code', async () => {
    const envVars = Object.fromEntries(hostile.map((value, index) => [`HOSTILE_${index}`, value]));
    const code = `import os, json\nprint(json.dumps({k: os.environ.get(k) for k in ${JSON.stringify(Object.keys(envVars))}}))`;
    const events = await execute({ code, env_vars: envVars });
    expect(errorsOf(events)).toEqual([]);
    expect(JSON.parse(stdoutOf(events))).toEqual(envVars);
  });

  it('applies to one execution only, restoring previous values exactly', async () => {
    const context = await createContext();
    try {
      await execute({ context_id: context.id, code: 'import os\nos.environ["KEPT"] = "original"\nos.environ.pop("FRESH", None)' });
      const during = await execute({
        context_id: context.id,
        code: 'import os\nprint(os.environ["KEPT"], os.environ["FRESH"])',
        env_vars: { KEPT: 'temporary', FRESH: 'new' },
      });
      expect(stdoutOf(during)).toBe('temporary new\n');
      const after = await execute({ context_id: context.id, code: 'import os\n(os.environ.get("KEPT"), os.environ.get("FRESH"))' });
      expect(mainResult(after)?.text).toBe("('original', None)");
    } finally {
      await deleteContext(context.id);
    }
  });

  it('restores variables even when the code fails', async () => {
    const events = await execute({ code: 'raise RuntimeError("boom")', env_vars: { AFTER_FAILURE: 'x' } });
    expect(errorsOf(events)[0]?.name).toBe('RuntimeError');
    const after = await execute({ code: 'import os\nrepr(os.environ.get("AFTER_FAILURE"))' });
    expect(mainResult(after)?.text).toBe('None');
  });

  it('leaves no names behind in the user namespace and does not count as executions', async () => {
    const first = (await execute({ code: 'set(dir())' }))[0]!.execution_count as number;
    const before = mainResult(await execute({ code: 'sorted(n for n in dir() if not n.startswith("_"))' }))?.text as string;
    const withEnv = await execute({ code: 'sorted(n for n in dir() if not n.startswith("_"))', env_vars: { A: '1' } });
    expect(withEnv[0]!.execution_count).toBe(first + 2);
    const names = mainResult(withEnv)?.text as string;
    expect(names).toBe(before);
  });

  it.each([
    ['an empty name', { '': 'x' }],
    ['a name with =', { 'A=B': 'x' }],
    ['a name with NUL', { 'A\u0000B': 'x' }],
    ['a name with a newline', { 'A\nB': 'x' }],
  ])('refuses %s with 400', async (_label, envVars) => {
    const { status, body } = await json<{ message: string }>('POST', '/execute', { code: '1', env_vars: envVars });
    expect(status).toBe(400);
    expect(body.message).toMatch(/environment variable/i);
  });

  it('refuses non-string values with 400', async () => {
    const { status } = await json('POST', '/execute', { code: '1', env_vars: { A: 1 } });
    expect(status).toBe(400);
  });
});
