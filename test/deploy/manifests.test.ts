// The Kubernetes manifests under deploy/: they parse, every kustomization builds from files that
// exist, the example overlay yields a runnable installation, the RBAC is exactly what the writer
// needs, the pods are locked down, and the mounted config is one the service accepts.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../config/load.ts';
import { readInventory } from '../../providers/static/inventory.ts';
import { silentLogger } from '../../services/logger.ts';
import { Metrics } from '../../services/metrics.ts';
import { buildServers, type Readiness } from '../../services/server/server.ts';
import {
  DEPLOY,
  findKubectl,
  isDir,
  type K8sObject,
  kustomizationFile,
  kustomizationRefs,
  kustomizeBuild,
  only,
  readYaml,
  readYamlDocs,
  resourceObjects,
  ROOT,
  selects,
  yamlFiles,
} from './deploy-files.ts';
import { clusterRoleRules, roleRules } from './rbac.ts';

const BASE = path.join(DEPLOY, 'base');
const EXAMPLE = path.join(DEPLOY, 'overlays', 'example');
const CONFIG_DIR = '/etc/vm-mesh-sync';
const CONFIG_FILE = `${CONFIG_DIR}/config.yaml`;
/** What the writer calls (services/writer/kube-api.ts), stated here on its own. */
const CRUD = ['create', 'delete', 'get', 'list', 'patch'];
/** The writer's rules with mesh services turned off (the mesh-services-off component). */
const ENTRY_RULES = [
  { apiGroup: '', resource: 'events', verbs: ['create'] },
  { apiGroup: '', resource: 'serviceaccounts', verbs: ['create', 'get'] },
  { apiGroup: 'networking.istio.io', resource: 'workloadentries', verbs: CRUD },
];
const WRITER_RULES = [
  { apiGroup: '', resource: 'events', verbs: ['create'] },
  { apiGroup: '', resource: 'serviceaccounts', verbs: ['create', 'get'] },
  { apiGroup: '', resource: 'services', verbs: CRUD },
  { apiGroup: 'networking.istio.io', resource: 'serviceentries', verbs: CRUD },
  { apiGroup: 'networking.istio.io', resource: 'workloadentries', verbs: CRUD },
  { apiGroup: 'networking.istio.io', resource: 'workloadgroups', verbs: CRUD },
];
const KUBECTL = findKubectl();
const NO_KUBECTL = 'kubectl is not installed: `kubectl kustomize` cannot run (apt-get install kubernetes-client)';

const rel = (file: string) => path.relative(ROOT, file);

/** `kubectl kustomize` of an overlay on the example with one of deploy/components added. */
function buildExampleWith(component: string): K8sObject[] {
  // Kustomize takes only relative paths; the overlay lives in a temporary folder.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vms-overlay-'));
  try {
    const overlay = path.join(dir, 'overlay');
    mkdirSync(overlay);
    writeFileSync(
      path.join(overlay, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'namespace: vm-mesh-sync',
        'resources:',
        `  - ${path.relative(overlay, EXAMPLE)}`,
        'components:',
        `  - ${path.relative(overlay, path.join(DEPLOY, 'components', component))}`,
        '',
      ].join('\n'),
    );
    return kustomizeBuild(KUBECTL!, overlay);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every kustomization folder under deploy/. */
function kustomizationDirs(dir = DEPLOY): string[] {
  return yamlFiles(dir)
    .filter((f) => /^kustomization\.ya?ml$/.test(path.basename(f)))
    .map((f) => path.dirname(f));
}

/** A container's effective security setting: the container's own, else the pod's. */
function effective(pod: any, container: any, key: string): unknown {
  return container.securityContext?.[key] ?? pod.securityContext?.[key];
}

/** The HTTP servers of `serve` with stub collaborators; `readiness` says what /readyz reports. */
function stubServers(readiness: () => Readiness = () => ({ ready: true, checks: {} })) {
  return buildServers({
    logger: silentLogger(),
    metrics: new Metrics({ defaultMetrics: false }),
    bodyLimit: 1_048_576,
    receivers: new Map(),
    refresh: async () => {},
    readiness: async () => readiness(),
    status: async () => ({}),
  });
}

function baseObjects(): K8sObject[] {
  return resourceObjects(BASE);
}

function baseDeployment(): any {
  return only(baseObjects(), 'Deployment', 'vm-mesh-sync');
}

function appContainer(deployment: any): any {
  const containers = deployment.spec.template.spec.containers as any[];
  expect(containers.map((c) => c.name)).toEqual(['vm-mesh-sync']);
  return containers[0];
}

/** The files of the base's configMapGenerator, as the pod sees them (key → file contents). */
function generatedConfigFiles(): Record<string, string> {
  const k = readYaml(kustomizationFile(BASE)!);
  const gen = (k.configMapGenerator as any[]).find((g) => g.name === 'vm-mesh-sync-config');
  expect(gen, 'configMapGenerator vm-mesh-sync-config').toBeDefined();
  const files: Record<string, string> = {};
  for (const f of gen.files as string[]) {
    const [key, file] = f.includes('=') ? [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] : [path.basename(f), f];
    files[key] = readFileSync(path.resolve(BASE, file), 'utf8');
  }
  return files;
}

/** Writes a ConfigMap's data the way a volume mount does and loads config.yaml from it. */
async function loadMountedConfig(data: Record<string, string>, env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vms-configmap-'));
  try {
    for (const [key, text] of Object.entries(data)) writeFileSync(path.join(dir, key), text);
    const config = loadConfig(path.join(dir, 'config.yaml'), env);
    const inventories = [];
    for (const p of config.providers) {
      if (p.type !== 'static') continue;
      // The inventory must be one of the mounted files, not a path that exists only in the repo.
      expect(path.dirname(p.inventory), `provider ${p.name}: inventory outside the mounted ConfigMap`).toBe(dir);
      inventories.push(await readInventory(p.inventory));
    }
    return { config, inventories };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('YAML files under deploy/', () => {
  const files = yamlFiles(DEPLOY);

  it('exist for the base, the overlay and both components', () => {
    for (const dir of [BASE, EXAMPLE, path.join(DEPLOY, 'components', 'redis'), path.join(DEPLOY, 'components', 'servicemonitor')]) {
      expect(kustomizationFile(dir), `${rel(dir)}/kustomization.yaml`).toBeDefined();
    }
  });

  it.each(files.map((f) => [rel(f), f]))('%s parses, and every document is a Kubernetes object', (_name, file) => {
    const docs = readYamlDocs(file) as Array<Record<string, any>>;
    expect(docs.length).toBeGreaterThan(0);
    // Generator inputs (config, inventory) are not objects; everything else must be one.
    if (rel(file).startsWith('deploy/base/config/')) return;
    for (const doc of docs) {
      expect(typeof doc.apiVersion, `${rel(file)}: apiVersion`).toBe('string');
      expect(typeof doc.kind, `${rel(file)}: kind`).toBe('string');
      if (!/^Kustomization|Component$/.test(doc.kind)) expect(doc.metadata?.name, `${rel(file)}: metadata.name`).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    }
  });
});

describe('kustomizations', () => {
  const dirs = kustomizationDirs();

  it.each(dirs.map((d) => [rel(d), d]))('%s refers only to local files and folders that exist', (_name, dir) => {
    const file = kustomizationFile(dir)!;
    const refs = kustomizationRefs(file);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref.ref, `${rel(file)} ${ref.field}: remote references make the build depend on the network`).not.toMatch(/^[a-z]+:\/\/|^github\.com\//);
      if (isDir(ref.target)) {
        expect(ref.mayBeDir, `${rel(file)} ${ref.field}: ${ref.ref} is a folder`).toBe(true);
        const sub = kustomizationFile(ref.target);
        expect(sub, `${rel(file)} ${ref.field}: ${ref.ref} has no kustomization.yaml`).toBeDefined();
        const kind = readYaml(sub!).kind ?? 'Kustomization';
        expect(kind, `${rel(file)} ${ref.field}: ${ref.ref}`).toBe(ref.field === 'components' ? 'Component' : 'Kustomization');
      } else {
        expect(() => readFileSync(ref.target), `${rel(file)} ${ref.field}: ${ref.ref} does not exist`).not.toThrow();
      }
    }
  });

  it('leave secret.example.yaml out of every build, and it holds no value', () => {
    const example = path.join(BASE, 'secret.example.yaml');
    for (const dir of dirs) {
      for (const ref of kustomizationRefs(kustomizationFile(dir)!)) expect(ref.target, rel(dir)).not.toBe(example);
    }
    const secrets = readYamlDocs(example) as K8sObject[];
    expect(secrets.map((s) => s.kind)).toEqual(['Secret', 'Secret']);
    const deployment = baseDeployment();
    const c = appContainer(deployment);
    // Every key the Deployment reads from a Secret is documented in the example, and vice versa.
    const wanted = new Set<string>();
    for (const e of c.env as any[]) if (e.valueFrom?.secretKeyRef) wanted.add(`${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}`);
    for (const v of deployment.spec.template.spec.volumes as any[]) if (v.secret) wanted.add(`${v.secret.secretName}/key.json`);
    const documented = new Set(secrets.flatMap((s) => Object.keys(s.stringData ?? {}).map((k) => `${s.metadata.name}/${k}`)));
    expect([...documented].sort()).toEqual([...wanted].sort());
    for (const s of secrets) {
      for (const [key, value] of Object.entries(s.stringData as Record<string, string>)) {
        expect(value === '' || value === '{}' || value.includes('CHANGE-ME'), `${s.metadata.name}/${key} must be a placeholder`).toBe(true);
      }
    }
  });
});

describe('the base Deployment', () => {
  it('runs `serve` with the config from the mounted ConfigMap, two replicas, a minute to drain', () => {
    const d = baseDeployment();
    const c = appContainer(d);
    expect(d.spec.replicas).toBe(2);
    expect(c.command).toBeUndefined(); // the image's ENTRYPOINT is node bin/vm-mesh-sync.js
    expect(c.args).toEqual(['serve', '--config', CONFIG_FILE]);
    expect(d.spec.template.spec.terminationGracePeriodSeconds).toBe(60);
    const mount = (c.volumeMounts as any[]).find((m) => m.mountPath === CONFIG_DIR);
    expect(mount?.readOnly).toBe(true);
    const volume = (d.spec.template.spec.volumes as any[]).find((v) => v.name === mount.name);
    expect(volume.configMap.name).toBe('vm-mesh-sync-config');
    expect(Object.keys(generatedConfigFiles())).toContain('config.yaml');
  });

  it('listens on the ports the config serves (webhooks on server.port 8080, the rest on server.adminPort 8081), probed on the admin port', async () => {
    const c = appContainer(baseDeployment());
    const defaults = parseConfig({ providers: [{ type: 'static', name: 'x', inventory: 'x.yaml' }] });
    const { config } = await loadMountedConfig(generatedConfigFiles());
    expect(c.ports).toEqual([
      { name: 'http', containerPort: defaults.server.port, protocol: 'TCP' },
      { name: 'admin', containerPort: defaults.server.adminPort, protocol: 'TCP' },
    ]);
    expect(config.server.port).toBe(defaults.server.port);
    expect(config.server.adminPort).toBe(defaults.server.adminPort);
    expect([defaults.server.port, defaults.server.adminPort]).toEqual([8080, 8081]);
    expect(config.server.host).toBe('0.0.0.0');
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    if (c.startupProbe) expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
  });

  it('probes routes the server answers: liveness stays 200 while draining, readiness turns 503', async () => {
    const c = appContainer(baseDeployment());
    let readiness: Readiness = { ready: true, checks: { redis: { ok: true }, kubernetes: { ok: true } } };
    const servers = stubServers(() => readiness);
    try {
      const get = async (url: string) => (await servers.admin.inject({ method: 'GET', url })).statusCode;
      const liveness = [c.livenessProbe, c.startupProbe].filter(Boolean).map((p) => p.httpGet.path as string);
      const readinessPath = c.readinessProbe.httpGet.path as string;
      for (const url of [...liveness, readinessPath]) expect(await get(url), url).toBe(200);
      // Redis down: the pod leaves the Service but is not restarted.
      readiness = { ready: false, checks: { redis: { ok: false, detail: 'ECONNREFUSED' } } };
      expect(await get(readinessPath)).toBe(503);
      for (const url of liveness) expect(await get(url), url).toBe(200);
      // SIGTERM: the same while in-flight jobs finish.
      readiness = { ready: true, checks: {} };
      servers.setShuttingDown();
      expect(await get(readinessPath)).toBe(503);
      for (const url of liveness) expect(await get(url), url).toBe(200);
    } finally {
      await servers.close();
    }
  });

  it('has memory and cpu requests and a memory limit', () => {
    const c = appContainer(baseDeployment());
    expect(c.resources).toEqual({ requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } });
    // The V8 heap must fit inside the limit.
    const heap = (c.env as any[]).find((e) => e.name === 'NODE_OPTIONS')?.value as string | undefined;
    if (heap) expect(Number(/--max-old-space-size=(\d+)/.exec(heap)?.[1])).toBeLessThan(512);
    // Few allocator arenas, each of which would keep the memory its threads freed.
    const arenas = (c.env as any[]).find((e) => e.name === 'MALLOC_ARENA_MAX')?.value as string | undefined;
    expect(Number(arenas)).toBeGreaterThan(0);
    expect(Number(arenas)).toBeLessThanOrEqual(4);
  });

  it('runs as uid 1000, non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp', () => {
    const d = baseDeployment();
    const pod = d.spec.template.spec;
    const c = appContainer(d);
    expect(effective(pod, c, 'runAsNonRoot')).toBe(true);
    expect(effective(pod, c, 'runAsUser')).toBe(1000);
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(c.securityContext.privileged ?? false).toBe(false);
    expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'] });
    expect((effective(pod, c, 'seccompProfile') as { type: string }).type).toBe('RuntimeDefault');
    expect(pod.hostNetwork ?? false).toBe(false);
    expect(pod.hostPID ?? false).toBe(false);
  });

  it('writes only to /tmp, an emptyDir; every other mount is read-only', () => {
    const d = baseDeployment();
    const c = appContainer(d);
    const volumes = new Map((d.spec.template.spec.volumes as any[]).map((v) => [v.name, v]));
    const writable = (c.volumeMounts as any[]).filter((m) => !m.readOnly);
    expect(writable.map((m) => m.mountPath)).toEqual(['/tmp']);
    expect(volumes.get(writable[0].name)?.emptyDir).toBeDefined();
    for (const m of c.volumeMounts as any[]) expect(volumes.has(m.name), `volume ${m.name}`).toBe(true);
  });

  it('takes REDIS_URL and cloud credentials from Secrets, never inline', () => {
    const d = baseDeployment();
    const env = appContainer(d).env as any[];
    const redis = env.find((e) => e.name === 'REDIS_URL');
    expect(redis.value).toBeUndefined();
    expect(redis.valueFrom.secretKeyRef).toEqual({ name: 'vm-mesh-sync', key: 'redis-url' });
    const credentials = env.filter((e) => /^(AWS|AZURE)_/.test(e.name));
    expect(credentials.map((e) => e.name)).toEqual(
      expect.arrayContaining(['AWS_WEBHOOK_API_KEY', 'AZURE_CLIENT_ID', 'AZURE_TENANT_ID']),
    );
    for (const e of credentials) {
      expect(e.value, e.name).toBeUndefined();
      expect(e.valueFrom?.secretKeyRef?.optional, `${e.name} comes from an optional Secret key`).toBe(true);
    }
    for (const e of env) if (/KEY|SECRET|PASSWORD|TOKEN/.test(e.name)) expect(e.value, `${e.name} is inline`).toBeUndefined();
    const gcp = (d.spec.template.spec.volumes as any[]).find((v) => v.secret);
    expect(gcp.secret.optional).toBe(true);
    const keyFile = env.find((e) => e.name === 'GOOGLE_APPLICATION_CREDENTIALS')?.value as string;
    const mount = (appContainer(d).volumeMounts as any[]).find((m) => m.name === gcp.name);
    expect(path.posix.dirname(keyFile)).toBe(mount.mountPath);
  });

  it('spreads its replicas over nodes, and the PodDisruptionBudget keeps one', () => {
    const objects = baseObjects();
    const d = only(objects, 'Deployment', 'vm-mesh-sync');
    const pod = d.spec.template.spec;
    const podLabels = d.spec.template.metadata.labels;
    const spread = (pod.topologySpreadConstraints ?? []).filter(
      (t: any) => t.topologyKey === 'kubernetes.io/hostname' && selects(t.labelSelector?.matchLabels, podLabels),
    );
    const anti = [
      ...(pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []),
      ...(pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((p: any) => p.podAffinityTerm),
    ].filter((t: any) => t.topologyKey === 'kubernetes.io/hostname' && selects(t.labelSelector?.matchLabels, podLabels));
    expect(spread.length + anti.length).toBeGreaterThan(0);
    expect(selects(d.spec.selector.matchLabels, podLabels)).toBe(true);
    const pdb = only(objects, 'PodDisruptionBudget');
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.minAvailable).toBeLessThan(d.spec.replicas);
    expect(selects(pdb.spec.selector.matchLabels, podLabels)).toBe(true);
  });

  it('is reached through a Service on port 8080 named http for webhooks, and a Service on 8081 named admin for the rest', () => {
    const objects = baseObjects();
    const d = only(objects, 'Deployment', 'vm-mesh-sync');
    const svc = only(objects, 'Service', 'vm-mesh-sync');
    expect(svc.spec.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
    const admin = only(objects, 'Service', 'vm-mesh-sync-admin');
    expect(admin.spec.ports).toEqual([{ name: 'admin', port: 8081, targetPort: 'admin', protocol: 'TCP' }]);
    for (const s of [svc, admin]) {
      expect(selects(s.spec.selector, d.spec.template.metadata.labels)).toBe(true);
      expect((appContainer(d).ports as any[]).map((p) => p.name)).toContain(s.spec.ports[0].targetPort);
    }
  });

  it('has a NetworkPolicy for its pods: webhooks from the ingress namespace, the admin port from monitoring, nothing else', () => {
    const objects = baseObjects();
    const d = only(objects, 'Deployment', 'vm-mesh-sync');
    const policy = only(objects, 'NetworkPolicy', 'vm-mesh-sync');
    expect(selects(policy.spec.podSelector.matchLabels, d.spec.template.metadata.labels)).toBe(true);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    const rules = (policy.spec.ingress as any[]).map((r) => ({ from: r.from.map((f: any) => f.namespaceSelector.matchLabels['kubernetes.io/metadata.name']), ports: r.ports.map((p: any) => p.port) }));
    expect(rules).toEqual([
      { from: ['ingress-nginx'], ports: ['http'] },
      { from: ['monitoring'], ports: ['admin'] },
    ]);
    const named = (appContainer(d).ports as any[]).map((p) => p.name);
    for (const r of rules) for (const port of r.ports) expect(named).toContain(port);
  });
});

describe('the ClusterRole', () => {
  it('grants exactly what the writer calls', () => {
    expect(clusterRoleRules()).toEqual(WRITER_RULES);
  });

  it('has no wildcard, no Secrets, no escalation verbs', () => {
    const role = only(baseObjects(), 'ClusterRole');
    for (const rule of role.rules as Array<Record<string, string[]>>) {
      for (const list of Object.values(rule)) expect(list, JSON.stringify(rule)).not.toContain('*');
      expect(rule.resources).not.toContain('secrets');
      for (const verb of ['escalate', 'bind', 'impersonate', 'watch', 'update', 'deletecollection']) expect(rule.verbs).not.toContain(verb);
    }
  });

  it('is bound to the ServiceAccount the Deployment runs as, and is the only grant', () => {
    const objects = baseObjects();
    const binding = only(objects, 'ClusterRoleBinding');
    const sa = only(objects, 'ServiceAccount');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: only(objects, 'ClusterRole').metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'vm-mesh-sync' }]);
    expect(only(objects, 'Deployment').spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
    expect(objects.filter((o) => ['Role', 'RoleBinding'].includes(o.kind))).toEqual([]);
  });
});

describe("the base's config", () => {
  it('is accepted by loadConfig when mounted, and its inventory is read completely', async () => {
    const { config, inventories } = await loadMountedConfig(generatedConfigFiles());
    expect(config.providers.length).toBeGreaterThan(0);
    // Connection strings come from the environment; the file holds no password.
    expect(readFileSync(path.join(BASE, 'config', 'config.yaml'), 'utf8')).not.toMatch(/redis:\/\/|password/i);
    for (const inv of inventories) {
      expect(inv.problems).toEqual([]);
      expect(inv.complete).toBe(true);
      expect(inv.machines.length).toBeGreaterThan(0);
    }
  });

  it('is rejected by loadConfig when broken (the check above can fail)', async () => {
    const files = generatedConfigFiles();
    await expect(loadMountedConfig({ ...files, 'config.yaml': `${files['config.yaml']}\nserverr: {}\n` })).rejects.toThrow(/serverr/);
  });
});

describe.skipIf(!KUBECTL)('kubectl kustomize deploy/overlays/example', () => {
  let objects: K8sObject[] = [];
  beforeAll(() => {
    objects = kustomizeBuild(KUBECTL!, EXAMPLE);
  });

  it('yields the installation: base objects, a generated ConfigMap, Redis; no Secret', () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    const configMap = only(objects, 'ConfigMap');
    expect(kinds).toEqual(
      [
        'ClusterRole/vm-mesh-sync',
        'ClusterRoleBinding/vm-mesh-sync',
        `ConfigMap/${configMap.metadata.name}`,
        'Deployment/vm-mesh-sync',
        'Namespace/vm-mesh-sync',
        'NetworkPolicy/vm-mesh-sync',
        'NetworkPolicy/vm-mesh-sync-redis',
        'PodDisruptionBudget/vm-mesh-sync',
        'Service/vm-mesh-sync',
        'Service/vm-mesh-sync-admin',
        'Service/vm-mesh-sync-redis',
        'ServiceAccount/vm-mesh-sync',
        'StatefulSet/vm-mesh-sync-redis',
      ].sort(),
    );
    expect(configMap.metadata.name).toMatch(/^vm-mesh-sync-config-[a-z0-9]{10}$/);
  });

  it('puts every namespaced object in vm-mesh-sync and binds the role to that ServiceAccount', () => {
    const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);
    for (const o of objects) {
      if (clusterScoped.has(o.kind)) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBeUndefined();
      else expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('vm-mesh-sync');
    }
    expect(only(objects, 'ClusterRoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', name: 'vm-mesh-sync', namespace: 'vm-mesh-sync' }]);
  });

  it('pins the image and mounts the generated ConfigMap, whose config.yaml passes loadConfig', async () => {
    const d = only(objects, 'Deployment', 'vm-mesh-sync');
    const c = appContainer(d);
    expect(c.image).toMatch(/^[a-z0-9.-]+(\/[a-z0-9._-]+)+:[A-Za-z0-9._-]+$/);
    expect(c.image).not.toMatch(/:latest$/);
    const configMap = only(objects, 'ConfigMap');
    const volume = (d.spec.template.spec.volumes as any[]).find((v) => v.configMap);
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    const { config } = await loadMountedConfig(configMap.data);
    expect(config.server.port).toBe((c.ports as any[])[0].containerPort);
  });

  it('runs every container of every workload as non-root with a read-only root filesystem', () => {
    const workloads = objects.filter((o) => ['Deployment', 'StatefulSet'].includes(o.kind));
    expect(workloads.length).toBe(2);
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        const where = `${w.kind}/${w.metadata.name} ${c.name}`;
        expect(effective(pod, c, 'runAsNonRoot'), where).toBe(true);
        expect(effective(pod, c, 'runAsUser'), where).not.toBe(0);
        expect(c.securityContext?.readOnlyRootFilesystem, where).toBe(true);
        expect(c.securityContext?.allowPrivilegeEscalation, where).toBe(false);
        expect(c.securityContext?.capabilities?.drop, where).toEqual(['ALL']);
        expect(c.image, where).toMatch(/:[A-Za-z0-9._-]+$/);
      }
    }
  });

  it('runs one Redis behind a headless Service at the address the docs give for redis-url', () => {
    const sts = only(objects, 'StatefulSet', 'vm-mesh-sync-redis');
    const svc = only(objects, 'Service', 'vm-mesh-sync-redis');
    expect(sts.spec.replicas).toBe(1);
    expect(sts.spec.serviceName).toBe(svc.metadata.name);
    expect(svc.spec.clusterIP).toBe('None');
    expect(selects(svc.spec.selector, sts.spec.template.metadata.labels)).toBe(true);
    // The controller's Service must not pick up the Redis pod, nor the other way round.
    expect(selects(only(objects, 'Service', 'vm-mesh-sync').spec.selector, sts.spec.template.metadata.labels)).toBe(false);
    expect(selects(svc.spec.selector, only(objects, 'Deployment').spec.template.metadata.labels)).toBe(false);
    const redis = sts.spec.template.spec.containers[0];
    expect(redis.image).toMatch(/^redis:7\./);
    expect(redis.args.join(' ')).toContain('--maxmemory-policy noeviction');
    const port = svc.spec.ports[0].port as number;
    const documented = `redis://${svc.metadata.name}:${port}`;
    expect(readFileSync(path.join(DEPLOY, 'README.md'), 'utf8')).toContain(`--from-literal=redis-url=${documented}`);
    expect(readFileSync(path.join(BASE, 'secret.example.yaml'), 'utf8')).toContain(documented);
    // The NetworkPolicy lets the controller's pods in.
    const policy = only(objects, 'NetworkPolicy', 'vm-mesh-sync-redis');
    expect(selects(policy.spec.podSelector.matchLabels, sts.spec.template.metadata.labels)).toBe(true);
    expect(selects(policy.spec.ingress[0].from[0].podSelector.matchLabels, only(objects, 'Deployment').spec.template.metadata.labels)).toBe(true);
  });

  it('adds a ServiceMonitor scraping /metrics of the Service when the servicemonitor component is used', async () => {
    const built = buildExampleWith('servicemonitor');
    {
      const monitor = only(built, 'ServiceMonitor');
      expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
      expect(monitor.metadata.namespace).toBe('vm-mesh-sync');
      const selected = built.filter((o) => o.kind === 'Service' && selects(monitor.spec.selector.matchLabels, o.metadata.labels));
      expect(selected.map((s) => s.metadata.name)).toEqual(['vm-mesh-sync-admin']);
      expect(monitor.spec.endpoints).toHaveLength(1);
      expect(monitor.spec.endpoints[0]).toMatchObject({ port: 'admin', path: '/metrics' });
      expect((selected[0]!.spec.ports as any[]).map((p) => p.name)).toContain('admin');
      const app = stubServers();
      try {
        const scrape = await app.admin.inject({ method: 'GET', url: monitor.spec.endpoints[0].path });
        expect(scrape.statusCode).toBe(200);
        expect(scrape.headers['content-type']).toMatch(/^text\/plain/);
      } finally {
        await app.close();
      }
    }
  });
});

describe.runIf(KUBECTL)('namespaced RBAC', () => {
  it('the component drops the cluster-wide grant and deploy/namespaced-rbac grants the writer its rules per namespace', () => {
    const built = buildExampleWith('namespaced-rbac');
    expect(built.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toEqual([]);
    expect(built.filter((o) => o.kind === 'Deployment')).toHaveLength(1);
    const rbac = kustomizeBuild(KUBECTL!, path.join(DEPLOY, 'namespaced-rbac'));
    const roles = rbac.filter((o) => o.kind === 'Role');
    expect(roles.length).toBeGreaterThan(0);
    for (const role of roles) {
      expect(roleRules(role)).toEqual(WRITER_RULES);
      const binding = rbac.find((o) => o.kind === 'RoleBinding' && o.metadata.namespace === role.metadata.namespace);
      expect(binding?.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
      expect(binding?.subjects).toEqual([{ kind: 'ServiceAccount', name: 'vm-mesh-sync', namespace: 'vm-mesh-sync' }]);
    }
    expect(roles.map((r) => r.metadata.namespace)).toContain('default');
  });
});

describe.runIf(KUBECTL)('mesh services off', () => {
  it('the component turns Services, ServiceEntries and WorkloadGroups off in the config and grants no permission on them', async () => {
    const built = buildExampleWith('mesh-services-off');
    expect(roleRules(only(built, 'ClusterRole'))).toEqual(ENTRY_RULES);
    // Exactly the base's rules but those on the kinds of mesh services.
    expect(ENTRY_RULES).toEqual(clusterRoleRules().filter((r) => !['services', 'serviceentries', 'workloadgroups'].includes(r.resource)));
    const env = Object.fromEntries((appContainer(only(built, 'Deployment')).env as Array<{ name: string; value?: string }>).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ VMS_SERVICES_KIND: 'off', VMS_WORKLOAD_GROUPS: 'false' });
    const { config } = await loadMountedConfig(generatedConfigFiles(), { VMS_SERVICES_KIND: env.VMS_SERVICES_KIND!, VMS_WORKLOAD_GROUPS: env.VMS_WORKLOAD_GROUPS! });
    expect(config.services).toMatchObject({ kind: 'off', workloadGroups: false });
    // Without it, the shipped config writes both.
    const shipped = await loadMountedConfig(generatedConfigFiles());
    expect(shipped.config.services).toMatchObject({ kind: 'service', workloadGroups: true });
  });
});

describe.runIf(!KUBECTL)('kubectl kustomize (skipped)', () => {
  it('needs kubectl', (ctx) => {
    ctx.skip(NO_KUBECTL);
  });
});
