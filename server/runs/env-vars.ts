/**
 * Code that sets environment variables in a kernel for one execution and restores them after.
 *
 * Names and values never appear in the generated source as literals: each is hex-encoded UTF-8
 * and decoded by the kernel, so quotes, backslashes, newlines, `$()` or any Unicode arrive
 * byte-identical and can never be read as code. The user's own code is sent separately and
 * unmodified, so its traceback line numbers stay the user's.
 */

export type EnvVars = Record<string, string>;

/** What the kernel reported about the variables before they were set: value, or null if unset. */
export type PreviousEnv = Record<string, string | null>;

export interface ApplyRequest {
  code: string;
  userExpressions: Record<string, string>;
}

export interface EnvVarDialect {
  /** The silent request that sets the variables and reports their previous values. */
  apply(vars: EnvVars): ApplyRequest;
  /** Reads the previous values from the reply's `user_expressions`, if this dialect uses them. */
  previousFrom(userExpressions: Record<string, string> | undefined): PreviousEnv | undefined;
  /** The silent code that puts every variable back as it was. */
  restore(vars: EnvVars, previous: PreviousEnv | undefined): string;
}

/** Returns why `name` cannot be an environment variable name, or undefined when it can. */
export function invalidEnvVarName(name: string): string | undefined {
  if (name === '') return 'the name is empty';
  if (name.includes('=')) return 'the name contains "="';
  if (name.includes('\0')) return 'the name contains a NUL byte';
  if (/[\r\n]/.test(name)) return 'the name contains a line break';
  if (name === '__proto__') return PROTO_NAME_PROBLEM;
  return undefined;
}

/**
 * Every transport refuses this name the same way: JSON bodies are parsed with prototype
 * poisoning refused outright (`{"__proto__": ...}` would replace an object's prototype where
 * such a map is copied), and the HTTP parser names the key instead of calling the body invalid.
 */
export const PROTO_NAME_PROBLEM = 'the name __proto__ is not accepted (in JavaScript it is the prototype of an object, not a key)';

/**
 * Why a parser that refuses prototype keys (`__proto__`, `constructor.prototype`) refused
 * `body`: `env-var` when `__proto__` is an `env_vars` name, `key` when the body is JSON with such
 * a key elsewhere, undefined when it is not JSON at all. Parses plainly, which makes such keys
 * own properties, and only reads the result.
 */
export function prototypeKeyProblem(body: string): 'env-var' | 'key' | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const vars = (parsed as { env_vars?: unknown } | null)?.env_vars;
  return typeof vars === 'object' && vars !== null && Object.hasOwn(vars, '__proto__') ? 'env-var' : 'key';
}

/** Returns why `value` cannot be an environment variable value, or undefined when it can. */
export function invalidEnvVarValue(value: string): string | undefined {
  // The C environment is NUL-terminated: no kernel can store such a value.
  if (value.includes('\0')) return 'the value contains a NUL byte';
  return undefined;
}

const hex = (text: string): string => Buffer.from(text, 'utf8').toString('hex');

const PREVIOUS_KEY = 'previous_env';

const python: EnvVarDialect = {
  apply(vars) {
    const decode = (text: string) => `bytes.fromhex('${hex(text)}').decode('utf-8')`;
    const pairs = Object.entries(vars).map(([name, value]) => `${decode(name)}: ${decode(value)}`);
    // An expression, evaluated by the kernel after the (empty) code: it records the previous
    // values, sets the new ones and answers the previous ones hex-encoded, leaving no name
    // behind in the user's namespace.
    const expression =
      `(lambda os, new: (lambda previous: (os.environ.update(new), ` +
      `__import__('json').dumps(previous).encode('utf-8').hex())[1])` +
      `({name: os.environ.get(name) for name in new}))(__import__('os'), {${pairs.join(', ')}})`;
    return { code: '', userExpressions: { [PREVIOUS_KEY]: expression } };
  },
  previousFrom(userExpressions) {
    const plain = userExpressions?.[PREVIOUS_KEY];
    if (plain === undefined) return undefined;
    const encoded = plain.replace(/^'|'$/g, '');
    if (!/^[0-9a-f]*$/.test(encoded)) return undefined;
    return JSON.parse(Buffer.from(encoded, 'hex').toString('utf8')) as PreviousEnv;
  },
  restore(vars, previous) {
    const decode = (text: string) => `bytes.fromhex('${hex(text)}').decode('utf-8')`;
    const entries = Object.keys(vars).map((name) => {
      const value = previous?.[name];
      return `(${decode(name)}, ${value === null || value === undefined ? 'None' : decode(value)})`;
    });
    // Without a report of the previous values (the set step failed), variables are removed.
    return (
      `(lambda os: [os.environ.__setitem__(name, value) if value is not None else os.environ.pop(name, None) ` +
      `for name, value in (${entries.join(', ')},)])(__import__('os'))`
    );
  },
};

const R_PREVIOUS = '.code_interpreter_previous_env';
const R_DECODE =
  'function(h) if (nchar(h) == 0L) "" else ' +
  '{ x <- rawToChar(as.raw(strtoi(substring(h, seq(1L, nchar(h), 2L), seq(2L, nchar(h), 2L)), 16L))); ' +
  'Encoding(x) <- "UTF-8"; x }';

const r: EnvVarDialect = {
  apply(vars) {
    const names = Object.keys(vars).map((name) => `"${hex(name)}"`);
    const values = Object.values(vars).map((value) => `"${hex(value)}"`);
    // R kernels do not evaluate user_expressions reliably, so the previous values are kept in
    // a dot-name (hidden from ls()) until the restore step removes it.
    const code =
      `local({ decode <- ${R_DECODE}; ` +
      `names <- vapply(c(${names.join(', ')}), decode, ""); values <- vapply(c(${values.join(', ')}), decode, ""); ` +
      `assign("${R_PREVIOUS}", Sys.getenv(names, unset = NA, names = TRUE), envir = globalenv()); ` +
      `do.call(Sys.setenv, as.list(setNames(values, names))) })`;
    return { code, userExpressions: {} };
  },
  previousFrom() {
    return undefined;
  },
  restore() {
    return (
      `local({ if (exists("${R_PREVIOUS}", envir = globalenv())) { ` +
      `previous <- get("${R_PREVIOUS}", envir = globalenv()); ` +
      `for (name in names(previous)) { if (is.na(previous[[name]])) Sys.unsetenv(name) ` +
      `else do.call(Sys.setenv, setNames(list(previous[[name]]), name)) }; ` +
      `rm(list = "${R_PREVIOUS}", envir = globalenv()) } })`
    );
  },
};

const DENO_PREVIOUS = 'Symbol.for("code-interpreter.previous-env")';
const DENO_DECODE = '(h) => new TextDecoder().decode(new Uint8Array((h.match(/../g) ?? []).map((b) => parseInt(b, 16))))';

/** JavaScript and TypeScript, both run by Deno's kernel (which has no user_expressions). */
const deno: EnvVarDialect = {
  apply(vars) {
    const pairs = Object.entries(vars).map(([name, value]) => `[d("${hex(name)}"), d("${hex(value)}")]`);
    // The previous values wait under a global symbol (invisible to the user's names) until the
    // restore step takes them back; the function returns nothing, so no result is shown.
    const code =
      `(() => { const d = ${DENO_DECODE}; const vars = [${pairs.join(', ')}]; ` +
      `globalThis[${DENO_PREVIOUS}] = vars.map(([name]) => [name, Deno.env.get(name) ?? null]); ` +
      `for (const [name, value] of vars) Deno.env.set(name, value); })()`;
    return { code, userExpressions: {} };
  },
  previousFrom() {
    return undefined;
  },
  restore() {
    return (
      `(() => { const previous = globalThis[${DENO_PREVIOUS}]; if (!previous) return; ` +
      `delete globalThis[${DENO_PREVIOUS}]; ` +
      `for (const [name, value] of previous) { if (value === null) Deno.env.delete(name); else Deno.env.set(name, value); } })()`
    );
  },
};

/** Bytes as bash's `printf '%b'` reads them back: `\xHH` each, so nothing in them is ever code. */
const bashBytes = (text: string): string => `'${hex(text).replace(/../g, '\\x$&')}'`;

/**
 * Bash (image/kernels/bash_kernel.py sources each request's code at the shell's top level). The
 * previous values wait in an associative array until the restore step takes them back, as in R;
 * `printf -v` keeps trailing line breaks, which `$(...)` would strip. A name bash cannot hold (not
 * an identifier) makes the step fail, so the execution reports EnvVarsError instead of running
 * without it.
 */
const bash: EnvVarDialect = {
  apply(vars) {
    const entries = Object.entries(vars);
    // Every name is checked before any is set: a failed step is not restored.
    const checks = entries.map(
      ([name]) => `{ printf -v __ci_n '%b' ${bashBytes(name)} && [[ $__ci_n =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; } || __ci_env_failed=1`,
    );
    const sets = entries.map(
      ([name, value]) =>
        `printf -v __ci_n '%b' ${bashBytes(name)}; printf -v __ci_v '%b' ${bashBytes(value)}; ` +
        `if [ -n "\${!__ci_n+set}" ]; then __ci_env_prev[$__ci_n]=\${!__ci_n}; else __ci_env_unset+=("$__ci_n"); fi; ` +
        `export -- "$__ci_n=$__ci_v"`,
    );
    const code = [
      '__ci_env_failed=',
      ...checks,
      'if [ -n "$__ci_env_failed" ]; then unset -v __ci_n __ci_env_failed; return 1; fi',
      'unset -v __ci_env_failed; declare -gA __ci_env_prev=(); declare -ga __ci_env_unset=()',
      ...sets,
      'unset -v __ci_n __ci_v',
    ].join('\n');
    return { code, userExpressions: {} };
  },
  previousFrom() {
    return undefined;
  },
  restore() {
    return [
      'if declare -p __ci_env_prev >/dev/null 2>&1; then',
      '  for __ci_n in "${!__ci_env_prev[@]}"; do export -- "$__ci_n=${__ci_env_prev[$__ci_n]}"; done',
      '  for __ci_n in "${__ci_env_unset[@]}"; do unset -v -- "$__ci_n"; done',
      '  unset -v __ci_n __ci_env_prev __ci_env_unset',
      'fi',
    ].join('\n');
  },
};

const DIALECTS: Record<string, EnvVarDialect> = { python, r, javascript: deno, typescript: deno, bash };

/** The dialect for a kernel language, or undefined when env_vars cannot be applied to it. */
export function envVarDialect(language: string): EnvVarDialect | undefined {
  return DIALECTS[language.toLowerCase()];
}
