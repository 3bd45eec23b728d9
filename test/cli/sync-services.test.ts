// The Services (or ServiceEntries) and WorkloadGroups of mesh services, end to end: the real CLI,
// the static provider, the real Kubernetes client and the fake API server, which checks Services
// by Kubernetes' rules, ServiceEntries by istiod's and WorkloadGroups against Istio's CRD.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KubeService, WorkloadEntry, WorkloadGroup } from '../../services/model.ts';
import { FakeKubeApiServer, type KubeObject } from '../fakes/kube-api-server.ts';
import { meshMachine, runCli, Workspace } from '../helpers/cli.ts';

const WE = 'workloadentries';
const SVC = 'services';
const WG = 'workloadgroups';
const SE = 'serviceentries';

/** A VM of mesh service `service` (default postgres). */
const pg = (id: string, ip: string, tags: Record<string, string> = {}) => meshMachine(id, ip, { 'mesh-service': 'postgres', ...tags });

describe('sync --once writes the objects of mesh services', () => {
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
  const services = () => server.objects(SVC, 'default') as unknown as KubeService[];
  const groups = () => server.objects(WG, 'default') as unknown as WorkloadGroup[];
  const entries = () => server.objects(WE, 'default') as unknown as WorkloadEntry[];
  const summary = (stdout: string) => JSON.parse(stdout) as { conflicts: Array<{ key: string; kind: string }>; results: Record<string, number> };

  it('creates the Service and WorkloadGroup, and a second run makes zero writes of any kind', async () => {
    ws.writeInventory([pg('pg-1', '10.0.1.10'), pg('pg-2', '10.0.1.11')]);
    const first = await sync();
    expect(first.code, first.stderr).toBe(0);
    const [service] = services();
    expect(services()).toHaveLength(1);
    expect(service!.metadata.name).toBe('postgres');
    expect(service!.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'vm-mesh-sync', 'vm-mesh-sync.io/owner': 'default' });
    expect(service!.metadata.annotations).toMatchObject({ 'vm-mesh-sync.io/scope': 'mesh-services' });
    // The API server filled in what is its own; it is never compared.
    expect((service!.spec as unknown as { clusterIP: string }).clusterIP).toMatch(/^10\.96\./);
    expect(service!.spec.ports).toEqual([{ name: 'postgres', port: 5432, protocol: 'TCP', targetPort: 5432 }]);
    // The selector selects both entries.
    const selected = entries().filter((e) => Object.entries(service!.spec.selector).every(([k, v]) => e.spec.labels?.[k] === v));
    expect(selected.map((e) => e.metadata.name).sort()).toEqual(['static-pg-1', 'static-pg-2']);
    expect(groups().map((g) => [g.metadata.name, g.spec.template])).toEqual([['postgres', { ports: { postgres: 5432 } }]]);

    server.counts.reset();
    const second = await sync();
    expect(second.code, second.stderr).toBe(0);
    expect(server.counts.writes()).toBe(0);
    expect(server.counts.of(SVC).list).toBeGreaterThan(0);
    expect(server.counts.of(WG).list).toBeGreaterThan(0);
    expect(summary(second.stdout).results).toEqual({});
  });

  it('with services.kind service-entry: a ServiceEntry instead of a Service, and still zero writes the second time', async () => {
    ws.writeConfig({ kubernetes: { kubeconfig }, services: { kind: 'service-entry', workloadGroups: false } });
    ws.writeInventory([pg('pg-1', '10.0.1.10'), pg('pg-2', '10.0.1.11')]);
    expect((await sync()).code).toBe(0);
    const se = server.objects(SE, 'default') as unknown as Array<{ metadata: { name: string }; spec: Record<string, unknown> }>;
    expect(se.map((o) => [o.metadata.name, o.spec.hosts])).toEqual([['postgres', ['postgres.default.svc.cluster.local']]]);
    expect(services()).toEqual([]);
    expect(groups()).toEqual([]);
    server.counts.reset();
    expect((await sync()).code).toBe(0);
    expect(server.counts.writes()).toBe(0);
    // A kind turned off is not even read: the installation may hold no permission for it.
    expect(server.counts.of(SVC).list + server.counts.of(WG).list).toBe(0);
  });

  it('with services.kind off and no WorkloadGroups: sync --once, plan and explain make no request of those kinds at all', async () => {
    ws.writeConfig({ kubernetes: { kubeconfig }, services: { kind: 'off', workloadGroups: false } });
    ws.writeInventory([pg('pg-1', '10.0.1.10'), pg('pg-2', '10.0.1.11')]);
    const run = await sync();
    expect(run.code, run.stderr).toBe(0);
    expect(entries().map((e) => e.spec.labels?.['vm-mesh-sync.io/service'])).toEqual(['postgres', 'postgres']);
    expect((await runCli(['plan', '--config', ws.configFile])).code).toBe(0);
    expect((await runCli(['explain', 'static:pg-1', '--config', ws.configFile])).code).toBe(0);
    expect((await sync()).code).toBe(0);
    for (const kind of [SVC, SE, WG]) expect(server.counts.total(undefined, kind), kind).toBe(0);
  });

  it('a foreign Service of the same name stays byte-identical and is reported as a conflict', async () => {
    const foreign = server.put({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'postgres', namespace: 'default', labels: { team: 'dba' } },
      spec: { selector: { app: 'legacy-postgres' }, ports: [{ name: 'tcp', port: 5432 }] },
    });
    const before = JSON.stringify(foreign);
    ws.writeInventory([pg('pg-1', '10.0.1.10'), pg('pg-2', '10.0.1.11')]);
    const run = await sync();
    // The VMs are not reachable by the service's name until someone acts: the run failed.
    expect(run.code).toBe(1);
    expect(JSON.stringify(server.get(SVC, 'default', 'postgres'))).toBe(before);
    expect(summary(run.stdout).conflicts).toContainEqual({ key: 'Service/default/postgres', kind: 'not-owned' });
    expect(run.stderr).toContain('Service default/postgres exists and is not managed by vm-mesh-sync');
    expect(run.stderr).toContain('delete or rename that Service, or tag the VMs with another mesh-service');
    // The entries and the WorkloadGroup are written all the same.
    expect(entries()).toHaveLength(2);
    expect(groups()).toHaveLength(1);

    const plan = await runCli(['plan', '--config', ws.configFile]);
    expect(plan.stdout).toContain('# conflict Service/default/postgres: Service default/postgres exists and is not managed by vm-mesh-sync');

    // A second run: still not one write to it.
    server.counts.reset();
    expect((await sync()).code).toBe(1);
    expect(server.counts.writes(SVC)).toBe(0);
    expect(JSON.stringify(server.get(SVC, 'default', 'postgres'))).toBe(before);
  });

  it('a foreign Service whose selector already selects the VMs: "served by your Service", and the run succeeds', async () => {
    const foreign = server.put({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'postgres', namespace: 'default' },
      spec: { selector: { app: 'postgres' }, ports: [{ name: 'postgres', port: 5432 }] },
    });
    const before = JSON.stringify(foreign);
    ws.writeInventory([pg('pg-1', '10.0.1.10'), pg('pg-2', '10.0.1.11')]);
    const run = await sync();
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.stringify(server.get(SVC, 'default', 'postgres'))).toBe(before);
    expect(run.stderr).toContain('served by your Service, whose selector already selects the 2 VMs of mesh service postgres');
  });

  it('removing one of two VMs updates the ports only if they changed', async () => {
    ws.writeInventory([pg('pg-1', '10.0.1.10'), pg('pg-2', '10.0.1.11'), pg('pg-3', '10.0.1.12', { 'mesh-ports': 'postgres:5432,metrics:9187' })]);
    expect((await sync()).code).toBe(0);
    expect(services()[0]!.spec.ports.map((p) => `${p.name}:${p.port}`)).toEqual(['postgres:5432', 'metrics:9187']);

    // pg-2 goes; the ports the others carry are the same: the Service is not written.
    ws.writeInventory([pg('pg-1', '10.0.1.10'), pg('pg-3', '10.0.1.12', { 'mesh-ports': 'postgres:5432,metrics:9187' })]);
    server.counts.reset();
    expect((await sync()).code).toBe(0);
    expect(entries().map((e) => e.metadata.name).sort()).toEqual(['static-pg-1', 'static-pg-3']);
    expect(server.counts.writes(SVC)).toBe(0);

    // pg-3 goes, and with it the only metrics port: the Service is updated to the one port left.
    const clusterIP = (services()[0]!.spec as unknown as { clusterIP: string }).clusterIP;
    ws.writeInventory([pg('pg-1', '10.0.1.10')]);
    server.counts.reset();
    expect((await sync()).code).toBe(0);
    expect(server.counts.writes(SVC)).toBe(1);
    const [service] = services();
    expect(service!.spec.ports).toEqual([{ name: 'postgres', port: 5432, protocol: 'TCP', targetPort: 5432 }]);
    // Updated in place, not replaced: clients keep its address.
    expect((service!.spec as unknown as { clusterIP: string }).clusterIP).toBe(clusterIP);
    expect(groups()[0]!.spec.template.ports).toEqual({ postgres: 5432 });
    server.counts.reset();
    expect((await sync()).code).toBe(0);
    expect(server.counts.writes()).toBe(0);
  });

  it('says which VMs are left out of their service and which service has no port, with their codes', async () => {
    ws.writeInventory([
      pg('pg-1', '10.0.1.10'),
      pg('pg-2', '10.0.1.11'),
      pg('pg-3', '10.0.1.12', { 'mesh-ports': 'postgres:5433' }),
      pg('cache-1', '10.0.1.20', { 'mesh-service': 'cache', 'mesh-ports': '' }),
    ]);
    const run = await sync();
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ leftOutOfServices: 1, servicesWithoutPorts: 1 });
    expect(run.stderr).toMatch(/VMS_SKIP_SERVICE_PORT_CONFLICT[\s\S]*default\/static-pg-3|default\/static-pg-3[\s\S]*VMS_SKIP_SERVICE_PORT_CONFLICT/);
    expect(run.stderr).toContain('left out of its service: its port postgres:5433 disagrees with postgres:5432');
    expect(run.stderr).toContain('VMS_SKIP_SERVICE_NO_PORTS');
  });

  it('removing the last VM removes its Service and WorkloadGroup', async () => {
    ws.writeInventory([pg('pg-1', '10.0.1.10'), meshMachine('web-1', '10.0.2.10', { 'mesh-service': 'web', 'mesh-ports': 'http:8080' })]);
    expect((await sync()).code).toBe(0);
    expect(services().map((s) => s.metadata.name).sort()).toEqual(['postgres', 'web']);
    ws.writeInventory([meshMachine('web-1', '10.0.2.10', { 'mesh-service': 'web', 'mesh-ports': 'http:8080' })]);
    const run = await sync();
    expect(run.code, run.stderr).toBe(0);
    expect(services().map((s) => s.metadata.name)).toEqual(['web']);
    expect(groups().map((g) => g.metadata.name)).toEqual(['web']);
    expect(entries().map((e) => e.metadata.name)).toEqual(['static-web-1']);
  });

  it('the deletion guard holds the removal of Services back like that of entries, until forced', async () => {
    ws.writeConfig({ kubernetes: { kubeconfig }, deletionGuard: { allowDeletesUpTo: 0, maxDeleteFraction: 0.5 } });
    const plain = [1, 2, 3].map((i) => meshMachine(`plain-${i}`, `10.0.3.${i}`));
    ws.writeInventory([pg('pg-1', '10.0.1.10'), meshMachine('web-1', '10.0.2.10', { 'mesh-service': 'web', 'mesh-ports': 'http:8080' }), ...plain]);
    expect((await sync()).code).toBe(0);
    expect(services()).toHaveLength(2);
    // Both services lose their only VM: 2 of 5 entries go, which the guard allows, but 4 of the 4
    // objects of mesh services (2 Services, 2 WorkloadGroups) would go too, which it holds back.
    ws.writeInventory(plain);
    const held = await sync();
    expect(held.code).toBe(3);
    expect(held.stderr).toContain('the plan would delete 4 of 4 entries in scope mesh-services (100%), more than 50% and more than 0');
    expect(entries()).toHaveLength(3);
    expect(services()).toHaveLength(2);
    expect((await sync('--force')).code).toBe(0);
    expect(services()).toEqual([]);
    expect(groups()).toEqual([]);
    expect(entries()).toHaveLength(3);
  });

  it('an owned Service another tool edited is put back to our fields; fields it added that are not ours stay', async () => {
    ws.writeInventory([pg('pg-1', '10.0.1.10')]);
    expect((await sync()).code).toBe(0);
    const live = services()[0] as unknown as KubeObject;
    const spec = live.spec as Record<string, unknown>;
    server.put({ ...live, spec: { ...spec, selector: { app: 'other' }, sessionAffinity: 'ClientIP' } } as KubeObject);
    server.counts.reset();
    expect((await sync()).code).toBe(0);
    expect(server.counts.writes(SVC)).toBe(1);
    const after = services()[0]!.spec as unknown as Record<string, unknown>;
    expect(after.selector).toEqual({ 'vm-mesh-sync.io/installation': 'default', 'vm-mesh-sync.io/service': 'postgres' });
    expect(after.sessionAffinity).toBe('ClientIP');
  });
});
