import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fileContexts, errorsOf, execute, json, mainResult, stdoutOf } from '../helpers/api.js';

// Packages installed at runtime, offline: no package index is reachable here, so the test
// builds what it installs. Python installs go to the kernels' shared virtual environment, R
// installs to the user library.

const { newContext } = fileContexts();

async function run(context: string, code: string): Promise<string> {
  const events = await execute({ context_id: context, code });
  expect(errorsOf(events)).toEqual([]);
  return stdoutOf(events);
}

/** Python that writes a pure-Python wheel of package `name` (VALUE = `value`) and prints its path. */
function buildWheel(name: string, value: string): string {
  return [
    'import os, tempfile, zipfile',
    `name, value = ${JSON.stringify(name)}, ${JSON.stringify(value)}`,
    'info = f"{name}-1.0.dist-info"',
    'files = {',
    '    f"{name}/__init__.py": f"VALUE = {value!r}\\n",',
    '    f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: 1.0\\n",',
    '    f"{info}/WHEEL": "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",',
    '}',
    'files[f"{info}/RECORD"] = "".join(f"{path},,\\n" for path in [*files, f"{info}/RECORD"])',
    'wheel = os.path.join(tempfile.mkdtemp(), f"{name}-1.0-py3-none-any.whl")',
    'with zipfile.ZipFile(wheel, "w") as archive:',
    '    for path, text in files.items():',
    '        archive.writestr(path, text)',
    'print(wheel)',
  ].join('\n');
}

describe('Python packages at runtime', () => {
  const suffix = randomBytes(4).toString('hex');
  const value = `installed-${suffix}`;
  const names = { magic: `probe_magic_${suffix}`, shell: `probe_shell_${suffix}`, subprocess: `probe_subprocess_${suffix}` };

  it('installs offline with %pip, !pip and pip in a subprocess, into the shared environment', async () => {
    const context = await newContext('python');
    const wheels: Record<string, string> = {};
    for (const [way, name] of Object.entries(names)) wheels[way] = (await run(context, buildWheel(name, value))).trim();

    await run(context, `%pip install --no-index --no-deps ${wheels.magic}`);
    await run(context, `!pip install --no-index --no-deps ${wheels.shell}`);
    await run(
      context,
      `import subprocess\nsubprocess.run(["pip", "install", "--no-index", "--no-deps", ${JSON.stringify(wheels.subprocess)}], check=True)`,
    );

    // Where they went: the kernel's environment, which the user owns, not the system's Python.
    const where = await run(
      context,
      `import sys, ${names.magic}\nprint(sys.prefix != sys.base_prefix, ${names.magic}.__file__.startswith(sys.prefix))`,
    );
    expect(where.trim()).toBe('True True');
  });

  it('imports what one context installed from another context, and after a restart', async () => {
    const other = await newContext('python');
    const imports = Object.values(names)
      .map((name) => `import ${name}; print(${name}.VALUE)`)
      .join('\n');
    expect(await run(other, imports)).toBe(`${value}\n`.repeat(3));
    expect((await json('POST', `/contexts/${other}/restart`)).status).toBe(200);
    expect(await run(other, imports)).toBe(`${value}\n`.repeat(3));
  });

  it('still sees the system packages', async () => {
    const context = await newContext('python');
    expect(mainResult(await execute({ context_id: context, code: 'import numpy, pandas, matplotlib\nnumpy.__name__' }))?.text).toBe(
      'numpy',
    );
  });
});

describe('R packages at runtime', () => {
  const name = `probe${randomBytes(4).toString('hex')}`;

  it('installs a local source package into the user library, which comes first on .libPaths()', async () => {
    const context = await newContext('r');
    const source = [
      `dir <- file.path(tempfile(), "${name}"); dir.create(file.path(dir, "R"), recursive = TRUE)`,
      `writeLines(c("Package: ${name}", "Version: 1.0", "Title: Probe", "Description: A probe package.",`,
      `  "License: MIT", "Author: ci", "Maintainer: ci <ci@example.org>"), file.path(dir, "DESCRIPTION"))`,
      `writeLines("export(probe)", file.path(dir, "NAMESPACE"))`,
      `writeLines('probe <- function() "probe says hi"', file.path(dir, "R", "probe.R"))`,
      `install.packages(dir, repos = NULL, type = "source", quiet = TRUE)`,
      `cat(file.access(.libPaths()[1], 2) == 0, startsWith(find.package("${name}"), .libPaths()[1]), "\\n")`,
    ].join('\n');
    expect((await run(context, source)).trim()).toBe('TRUE TRUE');
  });

  it('loads it from another R context', async () => {
    const other = await newContext('r');
    expect(await run(other, `library(${name}); cat(probe())`)).toBe('probe says hi');
  });
});
