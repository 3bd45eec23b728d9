// `plan` and `sync --once` end to end: the real CLI, the static provider, the real Kubernetes
// client and the fake API server that validates against Istio's CRD.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { checkEntry } from '../../services/mapping/index.ts';
import type { KubeService, WorkloadEntry, WorkloadGroup } from '../../services/model.ts';
import { FakeKubeApiServer, WORKLOADENTRY_CRD, WORKLOADGROUP_CRD } from '../fakes/kube-api-server.ts';
import { meshMachine, runCli, Workspace } from '../helpers/cli.ts';

const WE = 'workloadentries';

describe('plan', () => {
  it('prints valid WorkloadEntries and skip reasons for the shipped example, with no cluster', async () => {
    const run = await runCli(['plan', '--config', 'config/examples/static.yaml']);
    expect(run.code).toBe(0);
    const all = parseAllDocuments(run.stdout).map((d) => d.toJS() as WorkloadEntry | null).filter((d) => d !== null);
    const docs = all.filter((d) => d.kind === 'WorkloadEntry');
    expect(docs.length).toBeGreaterThanOrEqual(2);
    const server = new FakeKubeApiServer({ crdFiles: [WORKLOADENTRY_CRD, WORKLOADGROUP_CRD] });
    for (const entry of docs) {
      expect(entry.kind).toBe('WorkloadEntry');
      expect(checkEntry(entry)).toEqual([]);
      // The fake API server checks the object against Istio's CRD schema and CEL rules.
      expect(() => server.put(entry as never, { validate: true })).not.toThrow();
    }
    expect(docs.map((d) => d.spec.locality)).toContain('us-east-1/us-east-1a');
    expect(run.stdout).toContain('planned against an empty cluster');
    expect(run.stdout).toMatch(/VMS_SKIP_BAD_PORTS: tag mesh-ports: 'pg:99999' is not a port/);
    expect(run.stdout).toMatch(/VMS_SKIP_NOT_RUNNING/);
    expect(run.stdout).toMatch(/VMS_SKIP_NOT_SELECTED/);
    // The seed example's postgres VMs: the guide's Service and a WorkloadGroup, which the API
    // server (Kubernetes' Service rules; Istio's CRD with its CEL rules) accepts.
    const rest = all.filter((d) => d.kind !== 'WorkloadEntry') as unknown as Array<{ kind: string; metadata: { name: string }; spec: Record<string, unknown> }>;
    expect(rest.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual(['Service/postgres', 'WorkloadGroup/postgres']);
    const [service, group] = rest as [KubeService, WorkloadGroup];
    expect(service.spec.ports).toEqual([{ name: 'postgres', port: 5432, protocol: 'TCP', targetPort: 5432 }]);
    const postgres = docs.filter((d) => d.metadata.name.startsWith('static-pg-'));
    expect(postgres.map((d) => d.metadata.name)).toEqual(['static-pg-1', 'static-pg-2']);
    for (const entry of postgres) for (const [k, v] of Object.entries(service.spec.selector)) expect(entry.spec.labels?.[k]).toBe(v);
    expect(docs.filter((d) => Object.entries(service.spec.selector).every(([k, v]) => d.spec.labels?.[k] === v))).toHaveLength(2);
    expect(group.spec.template).toEqual({ ports: { postgres: 5432 }, serviceAccount: 'postgres-vm' });
    for (const obj of rest) expect(() => server.put(obj as never, { validate: true })).not.toThrow();
  });

  it('json output lists changes and skips', async () => {
    const run = await runCli(['plan', '--config', 'config/examples/static.yaml', '--output', 'json']);
    expect(run.code).toBe(0);
    const doc = JSON.parse(run.stdout) as { summary: { create: number }; skipped: Array<{ code: string }> };
    expect(doc.summary.create).toBeGreaterThanOrEqual(2);
    expect(doc.skipped.map((s) => s.code)).toContain('VMS_SKIP_NOT_RUNNING');
  });

  it('shows the services of the entries as ServiceEntries when asked, and the VMs whose ports disagree', async () => {
    const ws = new Workspace({ services: { kind: 'service-entry', workloadGroups: false } });
    try {
      ws.writeInventory([
        meshMachine('pg-1', '10.0.1.1', { 'mesh-service': 'postgres' }),
        meshMachine('pg-2', '10.0.1.2', { 'mesh-service': 'postgres' }),
        meshMachine('pg-3', '10.0.1.3', { 'mesh-service': 'postgres', 'mesh-ports': 'postgres:5433' }),
      ]);
      const run = await runCli(['plan', '--config', ws.configFile, '--output', 'json']);
      expect(run.code, run.stderr).toBe(0);
      const doc = JSON.parse(run.stdout) as { services: { services: Array<{ kind: string; spec: { hosts: string[]; ports: unknown[] } }>; workloadGroups: unknown[]; excluded: Array<{ key: string; code: string; reason: string }> } };
      expect(doc.services.services.map((s) => [s.kind, s.spec.hosts, s.spec.ports])).toEqual([
        ['ServiceEntry', ['postgres.default.svc.cluster.local'], [{ number: 5432, name: 'postgres', targetPort: 5432 }]],
      ]);
      expect(doc.services.workloadGroups).toEqual([]);
      expect(doc.services.excluded).toEqual([
        {
          key: 'default/static-pg-3',
          code: 'VMS_SKIP_SERVICE_PORT_CONFLICT',
          reason: 'its port postgres:5433 disagrees with postgres:5432, which 2 of the 3 VMs of service postgres in default use; tag it mesh-ports with postgres:5432, or give it another mesh-service',
        },
      ]);
      const yaml = await runCli(['plan', '--config', ws.configFile]);
      expect(yaml.stdout).toContain('# left out of service default/postgres: default/static-pg-3 VMS_SKIP_SERVICE_PORT_CONFLICT: its port postgres:5433 disagrees');
    } finally {
      ws.remove();
    }
  });

  it('a bad config exits 2 and names the key', async () => {
    const ws = new Workspace({ policy: 'delete-everything', mapping: { portz: {} } });
    try {
      const run = await runCli(['plan', '--config', ws.configFile]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('VMS_ERR_CONFIG_INVALID');
      expect(run.stderr).toContain('policy');
      expect(run.stderr).toContain('unknown key "portz"');
    } finally {
      ws.remove();
    }
  });

  it('a missing config file exits 2', async () => {
    const run = await runCli(['plan', '--config', '/nonexistent/config.yaml']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('VMS_ERR_CONFIG_NOT_FOUND');
  });
});

describe('sync --once against the fake API server', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;
  let kubeconfig: string;

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ws = new Workspace();
    kubeconfig = server.writeKubeconfig(ws.dir);
    ws.writeConfig({ kubernetes: { kubeconfig } });
  });
  afterEach(async () => {
    await server.close();
    ws.remove();
  });

  const sync = (...extra: string[]) => runCli(['sync', '--once', '--config', ws.configFile, ...extra]);
  const entries = () => server.objects(WE, 'default') as unknown as WorkloadEntry[];

  it('creates entries, and a second run makes zero write requests', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11'), { id: 'untagged', privateIPv4: '10.0.9.9' }]);
    const first = await sync();
    expect(first.code).toBe(0);
    expect(entries().map((e) => e.metadata.name).sort()).toEqual(['static-pg-1', 'static-pg-2']);

    server.counts.reset();
    const second = await sync();
    expect(second.code).toBe(0);
    expect(server.counts.writes()).toBe(0);
    expect(server.counts.total('list')).toBeGreaterThan(0);
  });

  it('a VM removed from the inventory loses its entry; a tag change updates its entry', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11'), meshMachine('pg-3', '10.0.1.12')]);
    expect((await sync()).code).toBe(0);
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10', { 'mesh-ports': 'postgres:5433' }), meshMachine('pg-2', '10.0.1.11')]);
    expect((await sync()).code).toBe(0);
    const byName = new Map(entries().map((e) => [e.metadata.name, e]));
    expect([...byName.keys()].sort()).toEqual(['static-pg-1', 'static-pg-2']);
    expect(byName.get('static-pg-1')?.spec.ports).toEqual({ postgres: 5433 });
  });

  it('never modifies or deletes an entry without our owner label or with another owner id', async () => {
    const foreign = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name: 'static-pg-1', namespace: 'default', labels: { team: 'dba' } },
      spec: { address: '192.168.0.1' },
    };
    const otherOwner = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: {
        name: 'static-gone',
        namespace: 'default',
        labels: { 'app.kubernetes.io/managed-by': 'vm-mesh-sync', 'vm-mesh-sync.io/owner': 'other-cluster' },
        annotations: { 'vm-mesh-sync.io/scope': 'static:onprem', 'vm-mesh-sync.io/source': 'static:onprem::gone' },
      },
      spec: { address: '192.168.0.2' },
    };
    server.put(foreign as never);
    server.put(otherOwner as never);
    const before = JSON.stringify([server.get(WE, 'default', 'static-pg-1'), server.get(WE, 'default', 'static-gone')]);
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11')]);
    server.counts.reset();
    const run = await sync();
    // pg-1's entry name is taken by an object that is not ours: a conflict, never sent; the rest syncs.
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).conflicts).toEqual([{ key: 'default/static-pg-1', kind: 'not-owned' }]);
    expect(JSON.stringify([server.get(WE, 'default', 'static-pg-1'), server.get(WE, 'default', 'static-gone')])).toBe(before);
    expect(server.get(WE, 'default', 'static-pg-2')).toBeDefined();
    expect(server.counts.writes(WE)).toBe(1);
    // plan says so too, and a second run sends nothing while the name stays taken.
    const plan = await runCli(['plan', '--config', ws.configFile, '--output', 'json']);
    expect(JSON.parse(plan.stdout).conflicts).toEqual([expect.objectContaining({ key: 'default/static-pg-1', kind: 'not-owned' })]);
    server.counts.reset();
    expect((await sync()).code).toBe(1);
    expect(server.counts.writes(WE)).toBe(0);
    // Once the foreign entry is gone, the instance gets its entry.
    server.remove(WE, 'default', 'static-pg-1');
    expect((await sync()).code).toBe(0);
    expect(server.get(WE, 'default', 'static-pg-1')).toMatchObject({ spec: { address: '10.0.1.10' } });
  });

  it('says at once, with a code, that the API server failed and how long it retries, and then succeeds', async () => {
    ws.writeConfig({ kubernetes: { kubeconfig }, queue: { attempts: 4, backoff: '200ms' } });
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10')]);
    server.faults.push({ match: { verb: 'list', resource: WE }, status: 503, count: 2 });
    const run = await sync();
    expect(run.code).toBe(0);
    const retrying = run.stderr.split('\n').filter((l) => l.includes('VMS_ERR_KUBE_TRANSIENT'));
    // One line for the call, not one per attempt: it names the call, the attempts and the waits.
    expect(retrying).toHaveLength(1);
    // The first listing of a run is of the entries that are not ours (mapping needs the auto-registered ones).
    expect(retrying[0]).toMatch(/retrying page of entries not ours up to 3 more times, waiting up to 2 s in all/);
    expect(entries().map((e) => e.metadata.name)).toEqual(['static-pg-1']);
  });

  it('an incomplete listing deletes nothing', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11'), meshMachine('pg-3', '10.0.1.12')]);
    expect((await sync()).code).toBe(0);
    // pg-2 and pg-3 disappear while one entry of the file is malformed: the listing is incomplete.
    ws.writeInventoryText('machines:\n  - id: pg-1\n    privateIPv4: 10.0.1.10\n    region: us-east-1\n    tags: {mesh: "true"}\n  - id: broken\n    privateIPv4: not-an-ip\n');
    server.counts.reset();
    const run = await sync();
    expect(run.code).toBe(1);
    expect(server.counts.total('delete')).toBe(0);
    expect(entries().map((e) => e.metadata.name).sort()).toEqual(['static-pg-1', 'static-pg-2', 'static-pg-3']);

    // An unreadable inventory: the same.
    ws.writeInventoryText('machines: [\n');
    expect((await sync()).code).toBe(1);
    expect(server.counts.total('delete')).toBe(0);
    expect(entries()).toHaveLength(3);
  });

  it('bad tag values skip their instance, keep its existing entry, and the others still sync', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11')]);
    expect((await sync()).code).toBe(0);
    ws.writeInventory([
      meshMachine('pg-1', '10.0.1.10', { 'mesh-ports': 'pg:99999' }),
      meshMachine('pg-2', '10.0.1.11', { 'mesh-app': 'postgres-main' }),
      meshMachine('pg-4', '10.0.1.14', { 'mesh-namespace': 'Not A Namespace!' }),
    ]);
    const run = await sync();
    expect(run.code).toBe(0);
    const byName = new Map(entries().map((e) => [e.metadata.name, e]));
    expect(byName.get('static-pg-1')?.spec.ports).toEqual({ postgres: 5432 });
    expect(byName.get('static-pg-2')?.spec.labels?.app).toBe('postgres-main');
    expect(byName.has('static-pg-4')).toBe(false);
  });

  it('a namespace tag outside mapping.namespace.allowed is skipped with its code; nothing is written there', async () => {
    ws.writeInventory([
      meshMachine('pg-1', '10.0.1.10', { 'mesh-namespace': 'kube-system', 'mesh-service-account': 'coredns' }),
      meshMachine('pg-2', '10.0.1.11'),
    ]);
    const planned = await runCli(['plan', '--config', ws.configFile, '--output', 'json']);
    expect(planned.stdout).toContain('VMS_SKIP_NAMESPACE_NOT_ALLOWED');
    const run = await sync();
    expect(run.code).toBe(0);
    expect(entries().map((e) => `${e.metadata.namespace}/${e.metadata.name}`)).toEqual(['default/static-pg-2']);
    expect(server.counts.writes('serviceaccounts')).toBe(0);
  });

  it('narrowing mapping.namespace.allowed removes the entries left in a namespace no longer allowed', async () => {
    server.createNamespace('databases');
    ws.writeConfig({ kubernetes: { kubeconfig }, mapping: { namespace: { allowed: ['default', 'databases'] } } });
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10', { 'mesh-namespace': 'databases' }), meshMachine('pg-2', '10.0.1.11')]);
    const everywhere = () => (server.objects(WE) as unknown as WorkloadEntry[]).map((e) => `${e.metadata.namespace}/${e.metadata.name}`).sort();
    expect((await sync()).code).toBe(0);
    expect(everywhere()).toEqual(['databases/static-pg-1', 'default/static-pg-2']);

    ws.writeConfig({ kubernetes: { kubeconfig } });
    expect((await sync()).code).toBe(0);
    expect(everywhere()).toEqual(['default/static-pg-2']);
  });

  it('a missing namespace fails that change with a clear code and the others still sync', async () => {
    ws.writeConfig({ kubernetes: { kubeconfig }, mapping: { namespace: { allowed: ['default', 'nowhere'] } } });
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10', { 'mesh-namespace': 'nowhere' }), meshMachine('pg-2', '10.0.1.11')]);
    const run = await sync();
    expect(run.code).toBe(1);
    expect(run.stdout + run.stderr).toContain('nowhere');
    expect(entries().map((e) => e.metadata.name)).toEqual(['static-pg-2']);
  });

  it('plan reads the cluster when one is reachable and shows updates as a diff', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10')]);
    expect((await sync()).code).toBe(0);
    ws.writeInventory([meshMachine('pg-1', '10.0.1.20')]);
    server.counts.reset();
    const run = await runCli(['plan', '--config', ws.configFile, '--output', 'diff']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('~ default/static-pg-1');
    expect(run.stdout).toContain('spec.address: "10.0.1.10" -> "10.0.1.20"');
    expect(server.counts.writes()).toBe(0);
  });

  it('the deletion guard holds a mass delete back until forced, and says so with exit code 3', async () => {
    ws.writeInventory(Array.from({ length: 10 }, (_, i) => meshMachine(`vm-${i}`, `10.0.2.${i + 1}`)));
    expect((await sync()).code).toBe(0);
    ws.writeInventory([meshMachine('vm-0', '10.0.2.1')]);
    const held = await sync();
    expect(held.code).toBe(3);
    expect(JSON.parse(held.stdout)).toMatchObject({ held: 9, failed: [] });
    expect(entries()).toHaveLength(10);
    expect((await sync('--force')).code).toBe(0);
    expect(entries().map((e) => e.metadata.name)).toEqual(['static-vm-0']);
  });
});
