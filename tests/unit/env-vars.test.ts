import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { envVarDialect, invalidEnvVarName, invalidEnvVarValue } from '../../server/runs/env-vars.js';
import { userExpressionsOf } from '../helpers/kernel-messages.js';

const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const hostile: Record<string, string> = {
  QUOTES: `it's "quoted" '''triple''' """triple"""`,
  BACKSLASH: 'C:\\path\\n\\x00not-nul \\',
  NEWLINES: 'one\ntwo\r\nthree',
  SHELL: '$(rm -rf /) `id` ${HOME} && echo pwned',
  INJECTION: "'); __import__('os')._exit(3); ('",
  UNICODE: 'ünïcödé ✓ 日本語 🚀 \u202e\u0000'.replace('\u0000', ''),
  EMPTY: '',
  'WEIRD NAME-ünï': 'value',
};

/** Runs the generated Python the way the kernel would, and returns what it prints. */
function runPython(source: string, env: Record<string, string> = {}): string {
  return execFileSync(python, ['-c', source], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
}

describe('python env-var code', () => {
  const dialect = envVarDialect('python')!;

  it('sets hostile values byte-identical and reports the previous ones', () => {
    const { code, userExpressions } = dialect.apply(hostile);
    expect(code).toBe('');
    const [expression] = Object.values(userExpressions);
    // No value appears in the source, so none can be read as code.
    for (const value of Object.values(hostile).filter((v) => v.length > 3)) expect(expression).not.toContain(value);
    const out = runPython(
      `import os, json\nprevious = ${expression}\nprint(json.dumps({"previous": previous, "now": {k: os.environ.get(k) for k in ${JSON.stringify(Object.keys(hostile))}}}))`,
      { QUOTES: 'was here' },
    );
    const { previous, now } = JSON.parse(out) as { previous: string; now: Record<string, string> };
    expect(now).toEqual(hostile);
    const reported = dialect.previousFrom(userExpressionsOf({ previous_env: { status: 'ok', data: { 'text/plain': `'${previous}'` } } }));
    expect(reported).toMatchObject({ QUOTES: 'was here', SHELL: null, EMPTY: null });
  });

  it('restores exactly: previous values back, new variables removed', () => {
    const restore = dialect.restore({ KEPT: 'temporary', FRESH: 'new' }, { KEPT: 'original "q"', FRESH: null });
    const out = runPython(`import os, json\n${restore}\nprint(json.dumps([os.environ.get("KEPT"), os.environ.get("FRESH")]))`, {
      KEPT: 'temporary',
      FRESH: 'new',
    });
    expect(JSON.parse(out)).toEqual(['original "q"', null]);
  });

  it('ignores user_expressions it does not recognise', () => {
    expect(dialect.previousFrom(undefined)).toBeUndefined();
    expect(dialect.previousFrom(userExpressionsOf({ previous_env: { status: 'error' } }))).toBeUndefined();
    expect(
      dialect.previousFrom(userExpressionsOf({ previous_env: { status: 'ok', data: { 'text/plain': "'not hex; code()'" } } })),
    ).toBeUndefined();
  });
});

describe('r env-var code', () => {
  const dialect = envVarDialect('r')!;

  it('hex-encodes names and values so none is read as code', () => {
    const { code } = dialect.apply({ KEY: `"); system("id"); ("` });
    expect(code).not.toContain('system(');
    expect(code).toContain(Buffer.from('KEY').toString('hex'));
  });

  it('sets hostile values byte-identical in R and restores the previous ones', () => {
    const { code } = dialect.apply(hostile);
    const names = Object.keys(hostile);
    const show = `cat(paste0(sapply(c(${names.map((n) => JSON.stringify(n)).join(', ')}), function(n) { v <- Sys.getenv(n, unset = NA); if (is.na(v)) "<unset>" else v }), collapse = "\u0001"))`;
    const script = `${code}\n${show}\ncat("\u0002")\n${dialect.restore(hostile, undefined)}\n${show}\ncat("\u0002", exists(".code_interpreter_previous_env"))\n`;
    const out = execFileSync('Rscript', ['-e', script], {
      env: { PATH: process.env.PATH ?? '', QUOTES: 'was here', LANG: 'C.UTF-8' },
      encoding: 'utf8',
    });
    const [during, after, leftover] = out.split('\u0002');
    expect(during!.split('\u0001')).toEqual(Object.values(hostile));
    const restored = names.map((name) => (name === 'QUOTES' ? 'was here' : '<unset>'));
    expect(after!.split('\u0001')).toEqual(restored);
    expect(leftover!.trim()).toBe('FALSE');
  });
});

describe('javascript and typescript (Deno) env-var code', () => {
  const dialect = envVarDialect('typescript')!;
  const deno = path.resolve(import.meta.dirname, '../../node_modules/@deno/linux-x64-glibc/deno');

  it('is the same dialect for both languages and never pastes a value into the code', () => {
    expect(envVarDialect('javascript')).toBe(dialect);
    const { code, userExpressions } = dialect.apply({ KEY: '`); Deno.exit(3); (`' });
    expect(code).not.toContain('Deno.exit');
    expect(userExpressions).toEqual({});
  });

  it('sets hostile values byte-identical in Deno and restores the previous ones', () => {
    const { code } = dialect.apply(hostile);
    const names = JSON.stringify(Object.keys(hostile));
    const show = `console.log(JSON.stringify(${names}.map((n) => Deno.env.get(n) ?? null)));`;
    const script = `${code};\n${show}\n${dialect.restore(hostile, undefined)};\n${show}\nconsole.log(Object.getOwnPropertySymbols(globalThis).length);\n`;
    const out = execFileSync(deno, ['eval', '--no-config', script], {
      env: { PATH: process.env.PATH ?? '', QUOTES: 'was here', NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' },
      encoding: 'utf8',
    });
    const [during, after, symbols] = out.trim().split('\n');
    expect(JSON.parse(during!)).toEqual(Object.values(hostile));
    expect(JSON.parse(after!)).toEqual(Object.keys(hostile).map((name) => (name === 'QUOTES' ? 'was here' : null)));
    // The stash of previous values is gone once they are restored.
    const baseline = execFileSync(deno, ['eval', 'console.log(Object.getOwnPropertySymbols(globalThis).length)'], { encoding: 'utf8' });
    expect(symbols).toBe(baseline.trim());
  });
});

describe('validation', () => {
  it.each([
    ['', 'empty'],
    ['A=B', '='],
    ['A\0B', 'NUL'],
    ['A\nB', 'line break'],
  ])('refuses the name %j', (name, reason) => {
    expect(invalidEnvVarName(name)).toContain(reason);
  });

  it('accepts ordinary and unusual but valid names', () => {
    expect(invalidEnvVarName('PATH')).toBeUndefined();
    expect(invalidEnvVarName('weird name-ü')).toBeUndefined();
  });

  it('refuses NUL in values, which no environment can hold', () => {
    expect(invalidEnvVarValue('a\0b')).toContain('NUL');
    expect(invalidEnvVarValue('$(x)\n"\'')).toBeUndefined();
  });

  it('has dialects for the languages with a kernel only', () => {
    expect(envVarDialect('Python')).toBeDefined();
    expect(envVarDialect('JavaScript')).toBeDefined();
    expect(envVarDialect('julia')).toBeUndefined();
  });
});
