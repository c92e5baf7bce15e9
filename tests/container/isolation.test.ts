import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainer, type Container } from '../helpers/docker.js';

/**
 * Kernels apart from the server, in the image: the API runs under its own uid, so kernel code can
 * neither read its environment (the tokens) nor signal it; Jupyter's token is nowhere a kernel
 * can read.
 */
describe('kernels apart from the server (container)', () => {
  const jupyterToken = `jupyter-${randomBytes(24).toString('hex')}`;
  let container: Container;

  beforeAll(async () => {
    container = await startContainer([], { JUPYTER_TOKEN: jupyterToken });
  });
  afterAll(async () => {
    await container?.remove();
  });

  const findApi = [
    'import os, signal',
    'def find(marker):',
    '    for pid in os.listdir("/proc"):',
    '        if pid.isdigit():',
    '            try:',
    '                if marker in open(f"/proc/{pid}/cmdline", "rb").read():',
    '                    return int(pid)',
    '            except OSError:',
    '                pass',
    'api = find(b"dist/server/main.js")',
    'assert api, "the API process was not found"',
  ].join('\n');

  it("cannot read the API's environment", async () => {
    const out = await container.run(
      [
        findApi,
        'uid = next(int(line.split()[1]) for line in open(f"/proc/{api}/status") if line.startswith("Uid:"))',
        'print("different uid" if uid != os.getuid() else "same uid")',
        'try:',
        '    open(f"/proc/{api}/environ", "rb").read()',
        '    print("environ readable")',
        'except PermissionError:',
        '    print("environ denied")',
      ].join('\n'),
    );
    expect(out).toBe('different uid\nenviron denied\n');
  });

  it('cannot signal the API', async () => {
    const out = await container.run(
      [findApi, 'try:', '    os.kill(api, signal.SIGKILL)', '    print("killed")', 'except PermissionError:', '    print("denied")'].join(
        '\n',
      ),
    );
    expect(out).toBe('denied\n');
    expect((await container.fetch('/health')).status).toBe(200);
  });

  it("finds neither token in any environment, Jupyter's file or process it can read", async () => {
    const out = await container.run(
      [
        'import os, jupyter_core.paths as paths',
        `tokens = [${JSON.stringify(container.accessToken)}.encode(), ${JSON.stringify(jupyterToken)}.encode()]`,
        'hits, environs = [], 0',
        'if any(t in "\\0".join(f"{k}={v}" for k, v in os.environ.items()).encode() for t in tokens):',
        '    hits.append("own environment")',
        'for pid in os.listdir("/proc"):',
        '    if not pid.isdigit():',
        '        continue',
        '    for name in ("environ", "cmdline"):',
        '        try:',
        '            data = open(f"/proc/{pid}/{name}", "rb").read()',
        '        except OSError:',
        '            continue',
        '        environs += name == "environ"',
        '        if any(t in data for t in tokens):',
        '            hits.append(f"/proc/{pid}/{name}")',
        'runtime = paths.jupyter_runtime_dir()',
        'for name in os.listdir(runtime):',
        '    try:',
        '        if any(t in open(os.path.join(runtime, name), "rb").read() for t in tokens):',
        '            hits.append(name)',
        '    except OSError:',
        '        pass',
        'print(hits, environs > 0)',
      ].join('\n'),
    );
    // The scan read some environments (its own kernel's at least), and found no token anywhere.
    expect(out).toBe('[] True\n');
  });

  it("cannot read Jupyter's environment, though Jupyter runs under the kernels' uid", async () => {
    const out = await container.run(
      [
        'import os',
        'launcher = os.getppid()',
        'jupyter = int(open(f"/proc/{launcher}/stat").read().rsplit(")", 1)[1].split()[1])',
        'print(b"jupyter_server" in open(f"/proc/{jupyter}/cmdline", "rb").read())',
        'try:',
        '    open(f"/proc/{jupyter}/environ", "rb").read()',
        '    print("readable")',
        'except PermissionError:',
        '    print("denied")',
      ].join('\n'),
    );
    expect(out).toBe('True\ndenied\n');
  });
});
