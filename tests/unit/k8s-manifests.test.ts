/**
 * deploy/kubernetes/ checked without a cluster (none can run on CI machines): every layout is
 * rendered from its kustomization.yaml, each object is validated by kubernetes-models and, since
 * those validators accept unknown fields, its field names are checked strictly against the
 * models' type declarations (read with the TypeScript compiler); agent-sandbox's objects are
 * validated against its CRDs' schemas made strict. Every pod template must satisfy Pod Security
 * "restricted" and this project's own settings (probes, limits, read-only root).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import ts from 'typescript';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodTemplate as PodTemplateModel } from 'kubernetes-models/v1/PodTemplate';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  deployDir,
  parseDocuments,
  podTemplates,
  readManifest,
  renderLayout,
  type K8sObject,
  type PodTemplate,
} from '../helpers/k8s-manifests.js';

const root = path.resolve(import.meta.dirname, '../..');
const renderUser = (name: string) => execFileSync('bash', [path.join(deployDir, 'render-user.sh'), name], { encoding: 'utf8' });

/** Everything in deploy/kubernetes/: each layout, the opt-in files beside it, a rendered user. */
const everything: { source: string; objects: K8sObject[] }[] = [
  { source: 'plain (kustomize)', objects: renderLayout('plain') },
  { source: 'plain/pdb.yaml', objects: readManifest('plain/pdb.yaml') },
  { source: 'render-user.sh alice', objects: parseDocuments(renderUser('alice'), 'render-user.sh') },
  { source: 'agent-sandbox (kustomize)', objects: renderLayout('agent-sandbox') },
  { source: 'agent-sandbox/claim-example.yaml', objects: readManifest('agent-sandbox/claim-example.yaml') },
];
const allObjects = everything.flatMap(({ objects }) => objects);
const copy = <T>(value: T): T => structuredClone(value);

// --- kubernetes-models: values, and field names through the type declarations ---------------------

const models: Record<string, { model: new (data: never) => { validate(): void }; type: string; module: string }> = {
  'v1/Service': { model: Service, type: 'IService', module: 'kubernetes-models/v1/Service' },
  'v1/Secret': { model: Secret, type: 'ISecret', module: 'kubernetes-models/v1/Secret' },
  'apps/v1/StatefulSet': { model: StatefulSet, type: 'IStatefulSet', module: 'kubernetes-models/apps/v1/StatefulSet' },
  'networking.k8s.io/v1/NetworkPolicy': {
    model: NetworkPolicy,
    type: 'INetworkPolicy',
    module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
  },
  'policy/v1/PodDisruptionBudget': {
    model: PodDisruptionBudget,
    type: 'IPodDisruptionBudget',
    module: 'kubernetes-models/policy/v1/PodDisruptionBudget',
  },
  'v1/PodTemplate': { model: PodTemplateModel, type: 'IPodTemplate', module: 'kubernetes-models/v1/PodTemplate' },
};
const key = (object: K8sObject) => `${object.apiVersion}/${object.kind}`;

/** The declared types of the models, resolved once: a program over one virtual file that names them. */
const declared = (() => {
  const entry = path.join(root, 'tests/unit/__k8s-types__.ts');
  const source = Object.entries(models)
    .map(
      ([name, { type, module }], index) =>
        `import type { ${type} as T${index} } from '${module}';\nexport declare const v${index}: T${index}; // ${name}`,
    )
    .join('\n');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  const readFile = host.readFile.bind(host);
  host.getSourceFile = (file, language, ...rest) =>
    file === entry ? ts.createSourceFile(file, source, language) : getSourceFile(file, language, ...rest);
  host.fileExists = (file) => file === entry || fileExists(file);
  host.readFile = (file) => (file === entry ? source : readFile(file));
  const program = ts.createProgram([entry], options, host);
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(entry)!;
  const unresolved = ts.getPreEmitDiagnostics(program, file);
  if (unresolved.length) throw new Error(ts.flattenDiagnosticMessageText(unresolved[0]!.messageText, '\n'));
  const types = new Map<string, ts.Type>();
  Object.keys(models).forEach((name, index) => {
    const symbol = checker.getExportsOfModule(checker.getSymbolAtLocation(file)!).find((s) => s.name === `v${index}`)!;
    types.set(name, checker.getTypeOfSymbol(symbol));
  });
  return { checker, types };
})();

/** Field names the declared type does not have, as paths; maps (labels, limits) take any name. */
function unknownFields(value: unknown, type: ts.Type, at = ''): string[] {
  const { checker } = declared;
  if (value === null || typeof value !== 'object') return [];
  const concrete = checker.getNonNullableType(type);
  const members = concrete.isUnion() ? concrete.types : [concrete];
  if (Array.isArray(value)) {
    const array = members.find((member) => checker.isArrayType(member)) as ts.TypeReference | undefined;
    if (!array) return [`${at}: not a list here`];
    const element = checker.getTypeArguments(array)[0]!;
    return value.flatMap((item, index) => unknownFields(item, element, `${at}[${index}]`));
  }
  const shape = members.find((member) => member.flags & ts.TypeFlags.Object && !checker.isArrayType(member));
  if (!shape) return [`${at}: not an object here`];
  const [index] = checker.getIndexInfosOfType(shape);
  return Object.entries(value).flatMap(([name, item]) => {
    const property = checker.getPropertyOfType(shape, name);
    if (property) return unknownFields(item, checker.getTypeOfSymbol(property), `${at}.${name}`);
    return index ? unknownFields(item, index.type, `${at}.${name}`) : [`${at}.${name}`];
  });
}

function checkCore(object: K8sObject, name = key(object)): string[] {
  const entry = models[name];
  if (!entry) return [`${name}: no model to check it with`];
  try {
    new entry.model(copy(object) as never).validate();
  } catch (error) {
    return [`${name}: ${(error as Error).message}`];
  }
  return unknownFields(object, declared.types.get(name)!).map((field) => `${name}: unknown field ${field}`);
}

/** A SandboxTemplate's pod template, checked as a core PodTemplate's. */
const asPodTemplate = (template: PodTemplate): K8sObject => ({ apiVersion: 'v1', kind: 'PodTemplate', metadata: { name: 'x' }, template });

describe('deploy/kubernetes: core objects', () => {
  const core = allObjects.filter((object) => !object.apiVersion.includes('agents.x-k8s.io'));

  it('renders both layouts with the objects each flavour needs', () => {
    expect(renderLayout('plain').map(key).sort()).toEqual(['apps/v1/StatefulSet', 'networking.k8s.io/v1/NetworkPolicy', 'v1/Service']);
    expect(
      renderLayout('agent-sandbox')
        .map((object) => object.kind)
        .sort(),
    ).toEqual(['SandboxTemplate', 'SandboxWarmPool']);
  });

  it('are valid and have no unknown field (kubernetes-models 5.1, strictly)', () => {
    expect(core.length).toBeGreaterThanOrEqual(7);
    expect(core.flatMap((object) => checkCore(object))).toEqual([]);
  });

  it("checks the sandbox template's pod as a core pod template", () => {
    const sandbox = podTemplates(allObjects).filter(({ where }) => where.startsWith('SandboxTemplate'));
    expect(sandbox).toHaveLength(1);
    expect(checkCore(asPodTemplate(sandbox[0]!.template))).toEqual([]);
  });

  it('fails on a misspelt field name, nested deep, and on a wrong value', () => {
    const statefulSet = copy(core.find((object) => object.kind === 'StatefulSet')!) as K8sObject & { spec: { template: PodTemplate } };
    const context = statefulSet.spec.template.spec.containers[0]!.securityContext!;
    context.readOnlyRootFileSystem = context.readOnlyRootFilesystem;
    delete context.readOnlyRootFilesystem;
    expect(checkCore(statefulSet)).toEqual([
      'apps/v1/StatefulSet: unknown field .spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem',
    ]);
    const wrongValue = copy(core.find((object) => object.kind === 'StatefulSet')!) as K8sObject & { spec: { replicas: unknown } };
    wrongValue.spec.replicas = 'one';
    expect(checkCore(wrongValue).join()).toMatch(/replicas/);
  });
});

// --- agent-sandbox: its CRDs' schemas, made strict --------------------------------------------------

// The repository's parent holds shared/ on these machines and in CI; nowhere else to get them from.
// A git worktree's parent is not the repository's: its main checkout's (beside .git) is.
const crdDir = (() => {
  const parents = [path.dirname(root)];
  try {
    const common = execFileSync('git', ['rev-parse', '--path-format=absolute', '--git-common-dir'], { cwd: root, encoding: 'utf8' }).trim();
    parents.push(path.dirname(path.dirname(common)));
  } catch {
    // not a git checkout: the parent above is all there is
  }
  const candidates = parents.map((parent) => path.join(parent, 'shared/k8s/agent-sandbox-crds'));
  return candidates.find((candidate) => existsSync(candidate)) ?? candidates[0]!;
})();
const haveCrds = existsSync(crdDir);
if (!haveCrds) console.warn(`k8s-manifests: agent-sandbox CRD checks not run: ${crdDir} does not exist`);

type Schema = Record<string, unknown> & { properties?: Record<string, Schema>; items?: Schema; additionalProperties?: unknown };

/** additionalProperties: false wherever a schema lists its properties and keeps no unknown fields. */
function strict(schema: Schema): Schema {
  const out: Schema = {};
  for (const [name, value] of Object.entries(schema)) {
    if (name.startsWith('x-kubernetes-') || name === 'description' || name === 'format') continue;
    if (name === 'properties')
      out.properties = Object.fromEntries(Object.entries(value as Record<string, Schema>).map(([field, sub]) => [field, strict(sub)]));
    else if (name === 'items' || (name === 'additionalProperties' && typeof value === 'object')) out[name] = strict(value as Schema);
    else if (name === 'anyOf' || name === 'allOf' || name === 'oneOf') out[name] = (value as Schema[]).map(strict);
    else out[name] = value;
  }
  // metadata is declared as a bare object: the API server checks it as ObjectMeta.
  if (schema.properties && schema.additionalProperties === undefined && !schema['x-kubernetes-preserve-unknown-fields'])
    out.additionalProperties = false;
  return out;
}

const crdValidators = (() => {
  if (!haveCrds) return new Map<string, (object: unknown) => string[]>();
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
  const validators = new Map<string, (object: unknown) => string[]>();
  for (const file of readdirSync(crdDir).filter((name) => name.endsWith('.yaml'))) {
    const crd = parse(readFileSync(path.join(crdDir, file), 'utf8')) as {
      spec: { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
    };
    for (const version of crd.spec.versions) {
      const validate = ajv.compile(strict(version.schema.openAPIV3Schema));
      validators.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, (object) =>
        validate(object)
          ? []
          : (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message} ${JSON.stringify(error.params)}`),
      );
    }
  }
  return validators;
})();

describe.skipIf(!haveCrds)(`deploy/kubernetes: agent-sandbox objects against the CRDs in ${crdDir}`, () => {
  const sandboxObjects = allObjects.filter((object) => object.apiVersion.includes('agents.x-k8s.io'));
  const check = (object: K8sObject) => {
    const validate = crdValidators.get(key(object));
    return validate ? validate(object) : [`${key(object)}: no CRD`];
  };

  it('are valid v1beta1 objects with no unknown field', () => {
    expect(sandboxObjects.map((object) => object.kind).sort()).toEqual(['SandboxClaim', 'SandboxTemplate', 'SandboxWarmPool']);
    expect(sandboxObjects.flatMap(check)).toEqual([]);
  });

  it('fails on a misspelt field name, at the top and deep in the pod template', () => {
    const claim = copy(sandboxObjects.find((object) => object.kind === 'SandboxClaim')!) as K8sObject & { spec: Record<string, unknown> };
    claim.spec.warmPoolReference = claim.spec.warmPoolRef;
    delete claim.spec.warmPoolRef;
    expect(check(claim).join('\n')).toMatch(/additionalProperty":"warmPoolReference"/);
    const template = copy(sandboxObjects.find((object) => object.kind === 'SandboxTemplate')!) as K8sObject & {
      spec: { podTemplate: PodTemplate };
    };
    (template.spec.podTemplate.spec.containers[1]!.startupProbe as Record<string, unknown>).httpGEt = {};
    expect(check(template).join('\n')).toMatch(/httpGEt/);
  });
});

// --- Pod Security "restricted", and this project's own settings ---------------------------------------

const allowedVolumes = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];

/** The rules of the Pod Security Standards' "restricted" profile (baseline included) that a template can break. */
function restrictedViolations(template: PodTemplate): string[] {
  const spec = template.spec;
  const pod = spec.securityContext ?? {};
  const problems: string[] = [];
  for (const field of ['hostNetwork', 'hostPID', 'hostIPC', 'hostUsers'] as const) {
    if (field === 'hostUsers' ? spec[field] === true && false : spec[field] === true) problems.push(`pod: ${field}`);
  }
  for (const volume of spec.volumes ?? []) {
    const type = Object.keys(volume).find((name) => name !== 'name');
    if (!type || !allowedVolumes.includes(type)) problems.push(`volume ${volume.name}: type ${type} not allowed`);
  }
  if ((pod as Record<string, unknown>).sysctls) problems.push('pod: sysctls');
  if (pod.runAsUser === 0) problems.push('pod: runAsUser 0');
  const podSeccomp = pod.seccompProfile?.type;
  if (podSeccomp !== undefined && !['RuntimeDefault', 'Localhost'].includes(podSeccomp)) problems.push(`pod: seccompProfile ${podSeccomp}`);
  for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
    const at = `container ${container.name}`;
    const context = container.securityContext ?? {};
    if (context.privileged === true) problems.push(`${at}: privileged`);
    if (context.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation must be false`);
    if (!(context.runAsNonRoot ?? pod.runAsNonRoot)) problems.push(`${at}: runAsNonRoot must be true`);
    if (context.runAsUser === 0) problems.push(`${at}: runAsUser 0`);
    const seccomp = context.seccompProfile?.type ?? podSeccomp;
    if (!seccomp || !['RuntimeDefault', 'Localhost'].includes(seccomp))
      problems.push(`${at}: seccompProfile must be RuntimeDefault or Localhost`);
    if (!context.capabilities?.drop?.includes('ALL')) problems.push(`${at}: capabilities must drop ALL`);
    const added = (context.capabilities?.add ?? []).filter((name) => name !== 'NET_BIND_SERVICE');
    if (added.length) problems.push(`${at}: adds capabilities ${added.join(',')}`);
    if (context.procMount !== undefined && context.procMount !== 'Default') problems.push(`${at}: procMount`);
    if ((container.ports ?? []).some((port) => port.hostPort)) problems.push(`${at}: hostPort`);
  }
  return problems;
}

/** What this project asks of its pods beyond the profile (docs/deployment.md says why). */
function projectViolations(template: PodTemplate): string[] {
  const spec = template.spec;
  const problems: string[] = [];
  if (spec.automountServiceAccountToken !== false) problems.push('pod: automountServiceAccountToken must be false');
  if (spec.enableServiceLinks !== false) problems.push('pod: enableServiceLinks must be false');
  if (spec.containers.map((container) => container.name).join() !== 'jupyter,api') problems.push('pod: containers must be jupyter, api');
  const volumes = new Set([...(spec.volumes ?? []).map((volume) => volume.name), 'workspace']);
  for (const container of spec.containers) {
    const at = `container ${container.name}`;
    if (container.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem must be true`);
    for (const resource of ['memory', 'ephemeral-storage']) {
      if (!container.resources?.limits?.[resource]) problems.push(`${at}: no ${resource} limit`);
      if (!container.resources?.requests?.[resource]) problems.push(`${at}: no ${resource} request`);
    }
    const mounts = new Map((container.volumeMounts ?? []).map((mount) => [mount.mountPath, mount.name]));
    for (const needed of ['/tmp', '/home/user', '/run/code-interpreter'])
      if (!mounts.has(needed)) problems.push(`${at}: nothing writable at ${needed}`);
    for (const name of mounts.values()) if (!volumes.has(name)) problems.push(`${at}: no volume ${name}`);
    if (!container.securityContext?.runAsUser) problems.push(`${at}: needs its own runAsUser`);
  }
  const api = spec.containers.find((container) => container.name === 'api');
  if (api?.startupProbe?.httpGet?.path !== '/health') problems.push('api: startupProbe must GET /health');
  if (api?.livenessProbe?.httpGet?.path !== '/health') problems.push('api: livenessProbe must GET /health');
  if (api?.readinessProbe?.httpGet?.path !== '/ready') problems.push('api: readinessProbe must GET /ready');
  const [jupyter] = spec.containers;
  if (jupyter && api && jupyter.securityContext?.runAsUser === api.securityContext?.runAsUser)
    problems.push('pod: the API and the kernels must run as different users');
  if ((jupyter?.env ?? []).some((variable) => ['ACCESS_TOKEN', 'METRICS_TOKEN'].includes(variable.name)))
    problems.push("jupyter: must not receive the API's tokens");
  return problems;
}

describe('deploy/kubernetes: every pod template', () => {
  const templates = podTemplates(allObjects);

  it('meets Pod Security "restricted" and the project\'s settings', () => {
    expect(templates.map(({ where }) => where)).toEqual([
      'StatefulSet/code-interpreter-example',
      'StatefulSet/code-interpreter-alice',
      'SandboxTemplate/code-interpreter',
    ]);
    expect(
      templates.flatMap(({ where, template }) =>
        [...restrictedViolations(template), ...projectViolations(template)].map((problem) => `${where}: ${problem}`),
      ),
    ).toEqual([]);
  });

  it('the checkers find each kind of breach', () => {
    const base = templates[0]!.template;
    const broken = (change: (spec: PodTemplate['spec']) => void) => {
      const template = copy(base);
      change(template.spec);
      return [...restrictedViolations(template), ...projectViolations(template)];
    };
    expect(broken((spec) => (spec.containers[0]!.securityContext!.allowPrivilegeEscalation = true))).toEqual([
      'container jupyter: allowPrivilegeEscalation must be false',
    ]);
    expect(broken((spec) => delete spec.securityContext!.runAsNonRoot)).toEqual([
      'container jupyter: runAsNonRoot must be true',
      'container api: runAsNonRoot must be true',
    ]);
    expect(broken((spec) => (spec.containers[1]!.securityContext!.capabilities = { drop: ['ALL'], add: ['SYS_ADMIN'] }))).toEqual([
      'container api: adds capabilities SYS_ADMIN',
    ]);
    expect(broken((spec) => (spec.securityContext!.seccompProfile = { type: 'Unconfined' }))).toContain('pod: seccompProfile Unconfined');
    expect(broken((spec) => spec.volumes!.push({ name: 'host', hostPath: { path: '/' } }))).toEqual([
      'volume host: type hostPath not allowed',
    ]);
    expect(broken((spec) => (spec.containers[0]!.securityContext!.readOnlyRootFilesystem = false))).toEqual([
      'container jupyter: readOnlyRootFilesystem must be true',
    ]);
    expect(broken((spec) => (spec.containers[1]!.securityContext!.runAsUser = 1001))).toEqual([
      'pod: the API and the kernels must run as different users',
    ]);
  });

  it('is the same pod in both flavours, but for the workspace volume, the tokens and the access settings', () => {
    const [plain, , sandbox] = templates.map(({ template }) => template.spec);
    const comparable = (spec: PodTemplate['spec']) => ({
      securityContext: spec.securityContext,
      containers: spec.containers.map(({ env, resources, ...rest }) => ({
        ...rest,
        env: env?.map((variable) => variable.name).filter((name) => !['ACCESS_TOKEN', 'AUTH_MODE', 'ALLOWED_HOSTS'].includes(name)),
        memory: resources?.limits?.memory,
      })),
      volumes: spec.volumes?.filter((volume) => volume.name !== 'workspace'),
    });
    expect(comparable(sandbox!)).toEqual(comparable(plain!));
  });
});

describe('deploy/kubernetes/render-user.sh', () => {
  it('renames every object for the user and draws fresh tokens', () => {
    const [first, second] = [renderUser('alice'), renderUser('alice')];
    expect(first).not.toMatch(/example/);
    const secret = (text: string) => parseDocuments(text, 'render-user.sh')[0] as K8sObject & { stringData: Record<string, string> };
    expect(Object.keys(secret(first).stringData).sort()).toEqual(['ACCESS_TOKEN', 'JUPYTER_TOKEN', 'METRICS_TOKEN']);
    for (const value of Object.values(secret(first).stringData)) expect(value).toMatch(/^[0-9a-f]{64}$/);
    expect(secret(first).stringData.ACCESS_TOKEN).not.toBe(secret(second).stringData.ACCESS_TOKEN);
    expect(new Set(parseDocuments(first, 'render-user.sh').map((object) => object.metadata?.name))).toEqual(
      new Set(['code-interpreter-alice']),
    );
  });

  it('refuses a name that is no DNS label, saying what a name may be', () => {
    const result = spawnSync('bash', [path.join(deployDir, 'render-user.sh'), 'Alice_1'], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/lower-case letters, digits/);
  });
});
