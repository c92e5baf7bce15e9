/**
 * The Kubernetes pod of deploy/kubernetes/, run under Docker with the pod's own settings (no
 * cluster runs on CI machines): each container of a pod template becomes a `docker run` whose
 * flags are derived from the manifest, so that the two cannot drift apart: runAsUser/runAsGroup
 * and fsGroup -> --user/--group-add, readOnlyRootFilesystem -> --read-only, capabilities ->
 * --cap-drop, allowPrivilegeEscalation: false -> no-new-privileges, the memory limit -> --memory,
 * each emptyDir -> a tmpfs (one shared by both containers: a tmpfs volume), the workspace claim
 * -> a volume, the pod's network -> --network container:<first>. Used by the container test of
 * the pod and, through tests/helpers/global-setup.ts (POD_IMAGE), to run the integration suite
 * against the pod. What Docker cannot show: probes, the NetworkPolicy, kubelet's own handling of
 * fsGroup.
 */
import { randomBytes } from 'node:crypto';
import { docker, mustDocker, uniqueName } from './docker-cli.js';
import type { Container, PodSpec } from './k8s-manifests.js';

/** Kubernetes quantities as Docker's sizes: 2Gi -> 2g, 512Mi -> 512m. */
export function dockerSize(quantity: string): string {
  const match = /^(\d+)(Ki|Mi|Gi)$/.exec(quantity);
  if (!match) throw new Error(`no Docker size for ${quantity}`);
  return `${match[1]}${{ Ki: 'k', Mi: 'm', Gi: 'g' }[match[2] as 'Ki' | 'Mi' | 'Gi']}`;
}

/** `docker run` flags for one container of the pod; `volumes` maps the pod's shared volumes to Docker volumes. */
function dockerFlags(
  spec: PodSpec,
  container: Container,
  secret: Record<string, string>,
  volumes: Map<string, string>,
  overrides: PodOverrides,
): string[] {
  const flags: string[] = [];
  const context = container.securityContext ?? {};
  const pod = spec.securityContext ?? {};
  if (!(context.runAsNonRoot ?? pod.runAsNonRoot) || !context.runAsUser) throw new Error(`${container.name}: no non-root user`);
  flags.push('--user', `${context.runAsUser}:${context.runAsGroup ?? context.runAsUser}`);
  for (const group of [pod.fsGroup, ...(pod.supplementalGroups ?? [])]) if (group !== undefined) flags.push('--group-add', String(group));
  if (context.readOnlyRootFilesystem) flags.push('--read-only');
  for (const capability of context.capabilities?.drop ?? []) flags.push('--cap-drop', capability);
  for (const capability of context.capabilities?.add ?? []) flags.push('--cap-add', capability);
  if (context.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges');
  // RuntimeDefault is Docker's default seccomp profile: nothing to add.
  if ((context.seccompProfile?.type ?? pod.seccompProfile?.type) !== 'RuntimeDefault')
    throw new Error(`${container.name}: no RuntimeDefault seccomp`);
  const memory = overrides.memoryLimits?.[container.name] ?? container.resources?.limits?.memory;
  if (memory) flags.push('--memory', dockerSize(memory), '--memory-swap', dockerSize(memory));
  for (const variable of container.env ?? []) {
    const reference = variable.valueFrom?.secretKeyRef;
    const value = reference ? secret[reference.key] : variable.value;
    if (value === undefined) throw new Error(`${container.name}: no value for ${variable.name}`);
    flags.push('-e', `${variable.name}=${value}`);
  }
  for (const [name, value] of Object.entries(overrides.env ?? {})) flags.push('-e', `${name}=${value}`);
  for (const mount of container.volumeMounts ?? []) {
    const shared = volumes.get(mount.name);
    if (shared) {
      flags.push('-v', `${shared}:${mount.mountPath}`);
      continue;
    }
    const emptyDir = spec.volumes?.find((volume) => volume.name === mount.name)?.emptyDir;
    if (!emptyDir) throw new Error(`${container.name}: no volume ${mount.name}`);
    // kubelet makes an emptyDir 0777, and under fsGroup group-owned and setgid.
    const size = emptyDir.sizeLimit ? `size=${dockerSize(emptyDir.sizeLimit)},` : '';
    flags.push('--tmpfs', `${mount.mountPath}:${size}mode=2777${pod.fsGroup ? `,gid=${pod.fsGroup}` : ''}`);
  }
  return flags;
}

/** A probe's answer as kubelet sees it: the status, or 0 when nothing answered in time. */
export const probe = (baseUrl: string, path: string) =>
  fetch(`${baseUrl}${path}`, { signal: AbortSignal.timeout(3_000) }).then(
    (response) => response.status,
    () => 0,
  );

/** What a run may change of the manifest's settings (the integration suite's needs; say why where used). */
export interface PodOverrides {
  /** Variables added to both containers, after the manifest's (so an empty value unsets one). */
  env?: Record<string, string>;
  /** Memory limits by container name, in Kubernetes quantities, instead of the manifest's. */
  memoryLimits?: Record<string, string>;
}

export interface Pod {
  baseUrl: string;
  names: { jupyter: string; api: string };
  remove(): Promise<void>;
}

/**
 * Starts a pod's two containers, the first owning the network namespace (the API's ports are
 * published there), and waits until /ready answers 200. Volumes both mount become Docker
 * volumes: an emptyDir a tmpfs one, a claim an ordinary one.
 */
export async function startPod(image: string, spec: PodSpec, secret: Record<string, string>, overrides: PodOverrides = {}): Promise<Pod> {
  const [first, second] = spec.containers as [Container, Container];
  const prefix = uniqueName('k8s-pod');
  const names = { jupyter: `${prefix}-${first.name}`, api: `${prefix}-${second.name}` };
  const remove = async () => {
    await docker(['rm', '-f', names.api, names.jupyter]);
    const volumes = (await docker(['volume', 'ls', '-q', '--filter', `name=${prefix}`])).stdout.split('\n').filter(Boolean);
    if (volumes.length) await docker(['volume', 'rm', ...volumes]);
  };
  const mounted = (container: Container) => new Set((container.volumeMounts ?? []).map((mount) => mount.name));
  const shared = [...mounted(first)].filter((name) => mounted(second).has(name));
  const volumes = new Map<string, string>();
  try {
    for (const name of shared) {
      const volume = `${prefix}-${name}`;
      const emptyDir = spec.volumes?.find((candidate) => candidate.name === name)?.emptyDir;
      const size = emptyDir?.sizeLimit ? `size=${dockerSize(emptyDir.sizeLimit)},` : '';
      const tmpfs = ['--opt', 'type=tmpfs', '--opt', 'device=tmpfs', '--opt', `o=${size}mode=2777,gid=${spec.securityContext!.fsGroup}`];
      await mustDocker(['volume', 'create', ...(emptyDir ? ['--driver', 'local', ...tmpfs] : []), volume]);
      volumes.set(name, volume);
    }
    const published = spec.containers
      .flatMap((container) => container.ports ?? [])
      .flatMap((port) => ['-p', `127.0.0.1::${port.containerPort}`]);
    await mustDocker(['run', '-d', '--name', names.jupyter, ...published, ...dockerFlags(spec, first, secret, volumes, overrides), image]);
    await mustDocker([
      'run',
      '-d',
      '--name',
      names.api,
      '--network',
      `container:${names.jupyter}`,
      ...dockerFlags(spec, second, secret, volumes, overrides),
      image,
    ]);
    const port = (await mustDocker(['port', names.jupyter, '49999/tcp'])).split('\n')[0]!.replace(/.*:/, '');
    const baseUrl = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 120_000;
    // A fetch whose connection docker-proxy accepted before the API listens holds nothing open:
    // in a process with no other handle (vitest's global setup) Node would exit mid-wait.
    const keepAlive = setInterval(() => {}, 1_000);
    try {
      for (;;) {
        if ((await probe(baseUrl, '/ready')) === 200) return { baseUrl, names, remove };
        if (Date.now() > deadline) {
          const logs = await Promise.all([names.jupyter, names.api].map((name) => docker(['logs', '--tail', '30', name])));
          throw new Error(`the pod did not become ready: ${logs.map((log) => log.stdout + log.stderr).join('\n---\n')}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      clearInterval(keepAlive);
    }
  } catch (error) {
    await remove();
    throw error;
  }
}

export const tokens = () => ({
  ACCESS_TOKEN: `access-${randomBytes(24).toString('hex')}`,
  METRICS_TOKEN: `metrics-${randomBytes(24).toString('hex')}`,
  JUPYTER_TOKEN: `jupyter-${randomBytes(24).toString('hex')}`,
});
