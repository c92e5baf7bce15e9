/**
 * What makes a kernel started in one directory indistinguishable from one started in another:
 * the kernel pool starts its kernels in the workspace root before anybody asks for them, and a
 * context that wants another working directory gets one of them moved there. The code runs
 * silently (no output, no history, no execution count) and leaves no names behind.
 *
 * Each language's list was found by comparing a kernel started in a directory with one started
 * elsewhere and moved there (tests/integration/kernel-pool.test.ts keeps checking it):
 * - Python: the working directory; `sys.path[0]`, which `python -m ipykernel_launcher` sets to
 *   the directory it started in; IPython's `_dh` (directory history) and `starting_dir`.
 *   `PWD` is inherited from Jupyter either way.
 * - R: the working directory, and `PWD`, which R's start-up shell script sets to it.
 * - JavaScript and TypeScript (Deno): the working directory; relative imports follow it.
 * - Bash: the working directory and `PWD`, which `cd` sets; `OLDPWD`, which `cd` sets too, goes
 *   back to what it was: a new shell keeps the inherited one when it names a directory, and has
 *   it exported with no value otherwise.
 */
export function kernelMoveCode(language: string, from: string, to: string): string | undefined {
  const target = JSON.stringify(to);
  switch (language) {
    case 'python':
      return `exec(${JSON.stringify(PYTHON_MOVE)}, {"d": ${target}, "s": ${JSON.stringify(from)}})`;
    case 'r':
      return `local({ setwd(${target}); Sys.setenv(PWD = ${target}) })`;
    case 'javascript':
    case 'typescript':
      return `Deno.chdir(${target})`;
    case 'bash': {
      // Single quotes keep every byte but the quote itself, which is closed, escaped and reopened.
      const quoted = `'${to.replaceAll("'", "'\\''")}'`;
      return [
        `if [ -n "\${OLDPWD+set}" ]; then __ci_o=$OLDPWD; cd -- ${quoted} && OLDPWD=$__ci_o; unset -v __ci_o`,
        `else cd -- ${quoted} && unset -v OLDPWD && export OLDPWD; fi`,
      ].join('\n');
    }
    default:
      return undefined;
  }
}

/** Runs in a namespace of its own (exec's globals): the user's namespace gains nothing. */
const PYTHON_MOVE = `
import os, sys
os.chdir(d)
if sys.path[:1] == [s]:
    sys.path[0] = d
from IPython import get_ipython
ip = get_ipython()
if ip is not None:
    ip.starting_dir = d
    history = ip.user_ns.get("_dh")
    if isinstance(history, list):
        # IPython keeps pathlib paths there (strings in older versions): the same type again.
        history[:] = [type(history[0])(d) if history else d]
`;

/** Whether a kernel of `language` started in one directory can serve a context in another. */
export function canMoveKernel(language: string): boolean {
  return kernelMoveCode(language, '/', '/') !== undefined;
}
