/**
 * The Kubernetes manifests of deploy/kubernetes/, read the way kustomize would list them (the
 * resources of each kustomization.yaml, plain multi-document YAML) without kubectl, which CI
 * machines need not have. Shared by the manifest checks and the container test that runs the
 * pod's containers under Docker with the pod's own settings.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export const deployDir = path.resolve(import.meta.dirname, '../../deploy/kubernetes');

export type K8sObject = { apiVersion: string; kind: string; metadata?: { name?: string }; [key: string]: unknown };
// What the checks below read of a pod; the objects themselves are checked against the full schemas.
export type Container = {
  name: string;
  image?: string;
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  securityContext?: Record<string, unknown> & {
    runAsUser?: number;
    runAsGroup?: number;
    runAsNonRoot?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
  };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  ports?: { name?: string; containerPort: number; hostPort?: number }[];
  startupProbe?: { httpGet?: { path: string } };
  livenessProbe?: { httpGet?: { path: string } };
  readinessProbe?: { httpGet?: { path: string } };
};
export type PodSpec = Record<string, unknown> & {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: Container['securityContext'] & { fsGroup?: number; supplementalGroups?: number[] };
  volumes?: (Record<string, unknown> & { name: string; emptyDir?: { medium?: string; sizeLimit?: string } })[];
  automountServiceAccountToken?: boolean;
  enableServiceLinks?: boolean;
};
export type PodTemplate = { metadata?: Record<string, unknown>; spec: PodSpec };

export function parseDocuments(text: string, where: string): K8sObject[] {
  return parseAllDocuments(text).flatMap((document, index) => {
    if (document.errors.length) throw new Error(`${where} #${index}: ${document.errors[0]!.message}`);
    const object = document.toJS() as K8sObject | null;
    return object === null ? [] : [object];
  });
}

export function readManifest(file: string): K8sObject[] {
  return parseDocuments(readFileSync(path.join(deployDir, file), 'utf8'), file);
}

/** The objects a layout's kustomization.yaml lists (resources only: the layouts use nothing else). */
export function renderLayout(layout: string): K8sObject[] {
  const [kustomization] = readManifest(path.join(layout, 'kustomization.yaml')) as unknown as { resources?: string[] }[];
  const resources = kustomization?.resources ?? [];
  if (!resources.length) throw new Error(`${layout}/kustomization.yaml lists no resources`);
  return resources.flatMap((file) => readManifest(path.join(layout, file)));
}

/** Every pod template among the objects, with where it was found. */
export function podTemplates(objects: K8sObject[]): { where: string; template: PodTemplate }[] {
  const found: { where: string; template: PodTemplate }[] = [];
  for (const object of objects) {
    const spec = object.spec as { template?: PodTemplate; podTemplate?: PodTemplate } | undefined;
    const template = object.kind === 'SandboxTemplate' ? spec?.podTemplate : spec?.template;
    if (template) found.push({ where: `${object.kind}/${object.metadata?.name}`, template });
  }
  return found;
}

/** The StatefulSet of the plain layout: the pod the container test runs. */
export function plainPod(): PodTemplate {
  const statefulSet = renderLayout('plain').find((object) => object.kind === 'StatefulSet');
  if (!statefulSet) throw new Error('plain/ has no StatefulSet');
  return podTemplates([statefulSet])[0]!.template;
}
