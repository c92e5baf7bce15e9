import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, mustDocker, startContainer, type Container } from '../helpers/docker.js';

/**
 * Code that kernel code leaves in places it can write must never run inside Jupyter, the
 * launchers or the image's helpers (some of which run as root): Jupyter sees every message
 * between the API and all kernels. The test plants, as the kernels' user, a module named after
 * every module Jupyter imports at start in the workspace (Jupyter's old working directory and
 * every kernel's), a `.pth` file and `usercustomize` in the user site-packages under HOME,
 * Jupyter configuration and a server extension under ~/.jupyter and ~/.local, then kills Jupyter
 * as kernel code could and lets it start again. Each planted file records who ran it, then hands
 * over to the real module, so the processes keep working whether or not they load it.
 * Kernels do load them, as they should (user code imports its own modules): that shows the plant
 * works.
 */
const MARKS = '/tmp/planted-code/marks';
const SHADOW = '/tmp/planted-code/shadow.py';

/** Records the process that runs it (uid, command line) in MARKS, one file per load. */
const recordSource = `
def _planted_record(what):
    import os
    try:
        with open("/proc/self/cmdline", "rb") as handle:
            cmdline = handle.read().replace(b"\\0", b" ").decode(errors="replace").strip()
        name = f"${MARKS}/{os.getpid()}-{what}"
        with open(name, "w") as handle:
            handle.write(f"{os.getuid()} {what} :: {cmdline}\\n")
    except OSError:
        pass
`;

/** A planted module: records itself, then loads the real module of that name in its place. */
const shadowSource = `${recordSource}
_planted_record(__name__)
def _planted_hand_over():
    # Only what every interpreter has loaded before it runs any file: importlib may be planted too.
    import os, sys
    bootstrap, external = sys.modules["_frozen_importlib"], sys.modules["_frozen_importlib_external"]
    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    spec = (
        bootstrap.BuiltinImporter.find_spec(__name__)
        or bootstrap.FrozenImporter.find_spec(__name__)
        or external.PathFinder.find_spec(__name__, path)
    )
    if spec is None:
        raise ImportError(f"No module named {__name__!r}")
    module = bootstrap.module_from_spec(spec)
    sys.modules[__name__] = module
    spec.loader.exec_module(module)
_planted_hand_over()
`;

// Top-level modules a Jupyter Server has loaded once initialized with the image's configuration.
const listModules = `
import json, sys
sys.argv = ["jupyter-server"]
from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.initialize(["--config=/opt/code-interpreter/jupyter_server_config.py", "--ServerApp.port=18765", "--ServerApp.port_retries=50", "--no-browser"])
import jupyter_client.manager, jupyter_client.provisioning.local_provisioner, urllib.request
names = sorted({name.split(".")[0] for name in sys.modules if name.isidentifier() or "." in name})
print(json.dumps([name for name in names if not name.startswith("__")]))
`;

describe('code planted where kernels can write (container)', () => {
  let container: Container;
  let modules: string[] = [];

  const asUser = (args: string[]) => mustDocker(['exec', '-u', 'user', '-w', '/', container.name, ...args]);

  beforeAll(async () => {
    container = await startContainer();
    // Plus what the launchers import, `venv` included (launch-kernel runs `python3 -m venv`).
    const launchers = ['venv', 'ctypes', 'fcntl', 'platform', 'resource', 'shutil', 'subprocess', 'signal', 'time'];
    modules = [...new Set([...(JSON.parse(await asUser(['/usr/bin/python3', '-I', '-c', listModules])) as string[]), ...launchers])];
  }, 240_000);
  afterAll(async () => {
    await container?.remove();
  });

  async function plant(): Promise<void> {
    const pythonVersion = await asUser([
      '/usr/bin/python3',
      '-I',
      '-c',
      'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")',
    ]);
    const userSite = `/home/user/.local/lib/python${pythonVersion}/site-packages`;
    const files: Record<string, string> = {};
    files[SHADOW] = shadowSource;
    for (const name of modules)
      files[`/home/user/${name}.py`] = `exec(compile(open(${JSON.stringify(SHADOW)}).read(), __file__, "exec"))\n`;
    files[`${userSite}/planted_marker.py`] = recordSource;
    files[`${userSite}/planted.pth`] = 'import planted_marker; planted_marker._planted_record("pth")\n';
    files[`${userSite}/usercustomize.py`] = `${recordSource}\n_planted_record("usercustomize")\n`;
    files[`${userSite}/planted_extension.py`] =
      `${recordSource}\n_planted_record("extension")\ndef _load_jupyter_server_extension(app):\n    pass\n`;
    files['/home/user/planted_extension.py'] = files[`${userSite}/planted_extension.py`]!;
    const config = `${recordSource}\n_planted_record("jupyter-config-py")\n`;
    const extension = JSON.stringify({ ServerApp: { jpserver_extensions: { planted_extension: true } } });
    for (const dir of ['/home/user/.jupyter', '/home/user/.local/etc/jupyter']) {
      files[`${dir}/jupyter_server_config.py`] = config;
      files[`${dir}/jupyter_config.py`] = config;
      files[`${dir}/jupyter_server_config.json`] = extension;
      files[`${dir}/jupyter_server_config.d/planted.json`] = extension;
    }
    const writer = [
      'import json, os, sys',
      `os.makedirs(${JSON.stringify(MARKS)}, exist_ok=True)`,
      `os.chmod(${JSON.stringify(MARKS)}, 0o777)`,
      'for path, text in json.loads(sys.argv[1]).items():',
      '    os.makedirs(os.path.dirname(path), exist_ok=True)',
      '    with open(path, "w") as handle:',
      '        handle.write(text)',
    ].join('\n');
    const result = await docker([
      'exec',
      '-u',
      'user',
      '-w',
      '/',
      container.name,
      '/usr/bin/python3',
      '-I',
      '-c',
      writer,
      JSON.stringify(files),
    ]);
    expect(result.code, result.stderr).toBe(0);
  }

  it('runs in no process but the kernels after Jupyter was killed and started again', { timeout: 180_000 }, async () => {
    expect(modules).toEqual(expect.arrayContaining(['jupyter_server', 'jupyter_client', 'tornado', 'zmq', 'urllib']));
    await plant();
    // The launcher creates the kernels' virtual environment (python3 -m venv) when it is missing.
    await asUser(['rm', '-rf', '/home/user/.venv']);
    const killed = await asUser([
      '/usr/bin/python3',
      '-I',
      '-c',
      [
        'import os, signal',
        'for pid in filter(str.isdigit, os.listdir("/proc")):',
        '    try:',
        '        if b"-m\\0jupyter_server\\0" in open(f"/proc/{pid}/cmdline", "rb").read():',
        '            os.kill(int(pid), signal.SIGKILL); print(pid)',
        '    except OSError:',
        '        pass',
      ].join('\n'),
    ]);
    expect(killed).toMatch(/^\d+$/);

    // Back: a new context (a new kernel, started by the new Jupyter through the launchers) runs code.
    let output = '';
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && output !== 'ok\n') {
      try {
        const created = await container.fetch('/contexts', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        if (created.status === 200) {
          const { id } = (await created.json()) as { id: string };
          const response = await container.fetch('/execute', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ code: 'import json\nprint("ok")', context_id: id }),
          });
          output = (await response.text()).includes('"text":"ok\\n"') ? 'ok\n' : '';
        }
      } catch {
        // not back yet
      }
      if (output !== 'ok\n') await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const marks = (await asUser(['sh', '-c', `cat ${MARKS}/* 2>/dev/null; true`])).split('\n').filter(Boolean);
    const inKernels = marks.filter((mark) => mark.includes('ipykernel_launcher'));
    const elsewhere = marks.filter((mark) => !mark.includes('ipykernel_launcher'));
    console.log(`${modules.length} modules planted; loaded ${inKernels.length} times by kernels, ${elsewhere.length} times elsewhere`);
    expect(elsewhere).toEqual([]);
    expect(output, (await docker(['logs', '--tail', '30', container.name])).stderr).toBe('ok\n');
    expect(inKernels.length).toBeGreaterThan(0);
  });
});
