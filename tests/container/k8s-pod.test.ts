/**
 * The Kubernetes pods of deploy/kubernetes/ (the plain StatefulSet's and the agent-sandbox
 * template's), run under Docker with the pod's own settings (tests/helpers/k8s-pod.ts): users,
 * the read-only root, the token kept from kernel code, commands through the shared socket, the
 * probes while Jupyter is down, SIGTERM, and claim mode behind the router.
 */
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEvents } from '../helpers/api.js';
import { image, mustDocker } from '../helpers/docker.js';
import { plainPod, readManifest, type K8sObject, type PodTemplate } from '../helpers/k8s-manifests.js';
import { probe, startPod, tokens, type Pod } from '../helpers/k8s-pod.js';

describe.skipIf(!image)('the Kubernetes pod, as Docker containers with its settings', () => {
  const spec = plainPod().spec;
  const jupyter = spec.containers.find((container) => container.name === 'jupyter')!;
  const api = spec.containers.find((container) => container.name === 'api')!;
  const secret = tokens();
  let pod: Pod;
  let baseUrl = '';
  let names = { jupyter: '', api: '' };

  const authorized = (path: string, init: RequestInit = {}) =>
    fetch(`${baseUrl}${path}`, {
      ...init,
      headers: { 'x-access-token': secret.ACCESS_TOKEN, 'content-type': 'application/json', ...(init.headers as Record<string, string>) },
    });
  const stdout = async (code: string) => {
    const response = await authorized('/execute', { method: 'POST', body: JSON.stringify({ code }) });
    expect(response.status).toBe(200);
    const events = await readEvents(response);
    expect(events.filter((event) => event.type === 'error')).toEqual([]);
    return events
      .filter((event) => event.type === 'stdout')
      .map((event) => event.text)
      .join('');
  };

  beforeAll(async () => {
    pod = await startPod(image, spec, secret);
    ({ baseUrl, names } = pod);
  }, 180_000);

  afterAll(async () => {
    await pod?.remove();
  });

  it('answers the probes: /health and /ready', async () => {
    for (const probe of [api.startupProbe, api.livenessProbe, api.readinessProbe]) {
      const response = await fetch(`${baseUrl}${probe!.httpGet!.path}`);
      expect(response.status).toBe(200);
    }
  });

  it('runs the containers as the manifest says: users, read-only root, no capabilities, the memory limit', async () => {
    for (const [name, container] of [[names.jupyter, jupyter] as const, [names.api, api] as const]) {
      const inspected = JSON.parse(await mustDocker(['inspect', name])) as [
        { Config: { User: string }; HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[]; Memory: number; SecurityOpt: string[] } },
      ];
      const { Config, HostConfig } = inspected[0];
      expect(Config.User).toBe(`${container.securityContext!.runAsUser}:${container.securityContext!.runAsGroup}`);
      expect(HostConfig.ReadonlyRootfs).toBe(true);
      expect(HostConfig.CapDrop).toEqual(['ALL']);
      expect(HostConfig.SecurityOpt).toContain('no-new-privileges');
      expect(HostConfig.Memory).toBeGreaterThan(0);
    }
  });

  it('runs code, with the workspace shared between the kernels and the API', async () => {
    expect(await stdout('print(6 * 7)')).toBe('42\n');
    await stdout("open('/home/user/from-kernel.txt', 'w').write('written by a kernel')");
    const response = await authorized('/files/from-kernel.txt');
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('written by a kernel');
    // The other way round: a file the API wrote, which kernel code may change (the shared group, umask 002).
    expect((await authorized('/files/from-api.txt', { method: 'PUT', body: 'by the API' })).status).toBe(201);
    expect(
      await stdout(
        "f = open('/home/user/from-api.txt', 'a'); f.write(', then a kernel'); f.close(); print(open('/home/user/from-api.txt').read())",
      ),
    ).toBe('by the API, then a kernel\n');
  });

  it("keeps the API's token away from kernel code: no process of the kernels' container holds it, the API's files are not there", async () => {
    await mustDocker(['exec', names.api, 'sh', '-c', 'echo api-only > /tmp/api-only']);
    const scan = await stdout(`
import glob, os
token = ${JSON.stringify(secret.ACCESS_TOKEN)}.encode()
readable, holders, api_seen = 0, [], False
for pid in glob.glob('/proc/[0-9]*'):
    for part in ('environ', 'cmdline'):
        try:
            data = open(f'{pid}/{part}', 'rb').read()
        except OSError:
            continue
        readable += 1
        if token in data:
            holders.append(pid)
        if b'dist/server/main.js' in data:
            api_seen = True
print(readable > 2, holders, api_seen, os.path.exists('/tmp/api-only'))
`);
    expect(scan).toBe('True [] False False\n');
    // The same scan in the API's container finds it: the scan can see a holder where there is one.
    const own = await mustDocker([
      'exec',
      names.api,
      'sh',
      '-c',
      `grep -l -a ${secret.ACCESS_TOKEN} /proc/[0-9]*/environ 2>/dev/null | wc -l`,
    ]);
    expect(Number(own)).toBeGreaterThan(0);
  });

  it("runs commands through the process host as the kernels' user, over the shared socket", async () => {
    const response = await authorized('/processes', { method: 'POST', body: JSON.stringify({ cmd: 'sh', args: ['-c', 'id -u; id -G'] }) });
    expect(response.status).toBe(200);
    const events = await readEvents(response);
    const text = events
      .filter((event) => event.type === 'stdout')
      .map((event) => event.text)
      .join('');
    expect(text).toBe(`${jupyter.securityContext!.runAsUser}\n${jupyter.securityContext!.runAsGroup} ${spec.securityContext!.fsGroup}\n`);
  });

  it('stays live but not ready while Jupyter is down, and ready again once start-up.sh restarted it', async () => {
    await mustDocker(['exec', names.jupyter, 'sh', '-c', "kill -9 $(pgrep -f '^/usr/bin/python3 -I -m jupyter_server')"]);
    const seen = new Set<string>();
    const deadline = Date.now() + 60_000;
    // start-up.sh starts Jupyter again; meanwhile the API stays live (no restart) and not ready.
    while (Date.now() < deadline) {
      const statuses = `${await probe(baseUrl, '/health')} ${await probe(baseUrl, '/ready')}`;
      seen.add(statuses);
      if (seen.has('200 503') && statuses === '200 200') break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect([...seen].sort()).toEqual(['200 200', '200 503']);
  }, 90_000);

  it('stops on SIGTERM within the grace period, exiting 0 (what kubelet sends at pod deletion)', async () => {
    const grace = String(spec.terminationGracePeriodSeconds);
    for (const name of [names.api, names.jupyter]) {
      await mustDocker(['stop', '--time', grace, name], 60_000);
      expect(await mustDocker(['inspect', '--format', '{{.State.ExitCode}}', name])).toBe('0');
    }
  });
});

/** The agent-sandbox template's pod: claim mode behind the router, which calls it by its Service's name. */
describe.skipIf(!image)("the agent-sandbox template's pod, as Docker containers with its settings", () => {
  const template = readManifest('agent-sandbox/sandbox-template.yaml')[0] as K8sObject & { spec: { podTemplate: PodTemplate } };
  let pod: Pod;

  beforeAll(async () => {
    pod = await startPod(image, template.spec.podTemplate.spec, tokens());
  }, 180_000);

  afterAll(async () => {
    await pod?.remove();
  });

  it('is claimed through the router: its Host passes, the token works in X-Access-Token', async () => {
    // What the router sends: Host rewritten to the Service's name, no Authorization.
    const host = 'sandbox-1.sandboxes.svc.cluster.local:49999';
    const send = (path: string, headers: Record<string, string>, method = 'GET') =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const request = httpRequest(`${pod.baseUrl}${path}`, { method, headers }, (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk.toString()));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        });
        request.on('error', reject);
        request.end();
      });
    expect((await send('/claim', { host: 'code-interpreter.attacker.example' }, 'POST')).status).toBe(403);
    const claimed = await send('/claim', { host }, 'POST');
    expect(claimed.status).toBe(200);
    const { token } = JSON.parse(claimed.body) as { token: string };
    expect((await send('/contexts', { host })).status).toBe(401);
    expect((await send('/contexts', { host, 'x-access-token': token })).status).toBe(200);
    expect((await send('/claim', { host }, 'POST')).status).toBe(404);
  });
});
