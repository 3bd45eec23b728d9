// Istio's health checking and auto-registration end to end: the real CLI (and the serve pipeline's
// resync and refresh), the static provider, the real Kubernetes client and the fake API server,
// with istiod's part played by the test: it sets status and its annotations on our entries, and
// makes the entries of VMs that auto-registered.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Explanation } from '../../services/cli/explain-command.ts';
import { checkEntry } from '../../services/mapping/index.ts';
import type { WorkloadEntry } from '../../services/model.ts';
import { refreshInstances, resyncScope } from '../../services/sync/reconcile.ts';
import { FakeKubeApiServer, type KubeObject } from '../fakes/kube-api-server.ts';
import { meshMachine, runCli, Workspace } from '../helpers/cli.ts';
import { Pipeline } from '../helpers/pipeline.ts';
import { cleanupPrefix, uniquePrefix } from '../helpers/serve.ts';

const WE = 'workloadentries';
const SCOPE = 'static:onprem';
const HEALTHY = {
  conditions: [{ type: 'Healthy', status: 'True', lastProbeTime: '2025-01-01T00:00:05Z', lastTransitionTime: '2025-01-01T00:00:05Z' }],
};

/** The entry istiod makes for a VM whose sidecar auto-registered through WorkloadGroup `group`. */
function autoRegistered(name: string, address: string, extra: { network?: string; labels?: Record<string, string>; annotations?: Record<string, string> } = {}): KubeObject {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: {
      name,
      namespace: 'default',
      labels: { app: 'postgres', ...extra.labels },
      annotations: {
        'istio.io/autoRegistrationGroup': 'postgres',
        'istio.io/workloadController': 'istiod-7d9f',
        'istio.io/connectedAt': '2025-01-01T00:00:04.123456789Z',
        ...extra.annotations,
      },
    },
    spec: { address, labels: { app: 'postgres' }, ports: { postgres: 5432 }, serviceAccount: 'default', ...(extra.network ? { network: extra.network } : {}) },
  } as unknown as KubeObject;
}

describe('health checks and auto-registration through sync --once, plan, explain and the serve pipeline', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;
  let prefix: string;
  let pipeline: Pipeline | undefined;

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ws = new Workspace();
    prefix = uniquePrefix('istio-coexist');
    ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) }, redis: { prefix }, log: { level: 'warn' } });
  });
  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
    await server.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  const sync = async (): Promise<{ skipped: number; results: Record<string, number> }> => {
    const run = await runCli(['sync', '--once', '--config', ws.configFile]);
    expect(run.code, run.stderr).toBe(0);
    return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { skipped: number; results: Record<string, number> };
  };
  const live = (name: string) => server.get(WE, 'default', name) as unknown as (WorkloadEntry & { status?: unknown }) | undefined;
  const names = () => (server.objects(WE, 'default') as unknown as WorkloadEntry[]).map((e) => e.metadata.name).sort();

  it('a health tag writes the annotation; istiod setting status is never a reason to write, and a write never clears it', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10', { 'mesh-health': 'http:8080/healthz' }), meshMachine('pg-2', '10.0.1.11', { 'mesh-health': 'tcp-5432' })]);
    await sync();
    for (const [name, probe] of [['static-pg-1', 'http:8080/healthz'], ['static-pg-2', 'tcp:5432']] as const) {
      const entry = live(name)!;
      expect(entry.metadata.annotations['proxy.istio.io/health-checks-enabled']).toBe('true');
      expect(entry.metadata.annotations['vm-mesh-sync.io/health-check']).toBe(probe);
      expect(checkEntry(entry)).toEqual([]);
    }

    // istiod: the VM's agent connected and reported its probe healthy.
    for (const name of ['static-pg-1', 'static-pg-2']) {
      const entry = live(name)! as unknown as KubeObject;
      entry.metadata.annotations = { ...(entry.metadata.annotations as Record<string, string>), 'istio.io/workloadController': 'istiod-7d9f', 'istio.io/connectedAt': '2025-01-01T00:00:04.123456789Z' };
      (entry as unknown as { status: unknown }).status = HEALTHY;
      server.put(entry, { fieldManager: 'pilot-discovery' });
    }
    server.counts.reset();
    const again = await sync();
    expect(server.counts.writes()).toBe(0);
    expect(again.results).toEqual({});
    expect(live('static-pg-1')?.status).toEqual(HEALTHY);

    // A real change is written, and leaves istiod's status and annotations as they were.
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10', { 'mesh-health': 'http:8080/healthz', 'mesh-ports': 'postgres:5433' }), meshMachine('pg-2', '10.0.1.11')]);
    server.counts.reset();
    expect((await sync()).results).toEqual({ updated: 2 });
    expect(server.counts.writes(WE)).toBe(2);
    const pg1 = live('static-pg-1')!;
    expect(pg1.spec.ports).toEqual({ postgres: 5433 });
    expect(pg1.status).toEqual(HEALTHY);
    expect(pg1.metadata.annotations['istio.io/connectedAt']).toBe('2025-01-01T00:00:04.123456789Z');
    // The health tag is gone from pg-2: so is health checking; istiod's own marks stay for istiod to clear.
    const pg2 = live('static-pg-2')!;
    expect(pg2.metadata.annotations['proxy.istio.io/health-checks-enabled']).toBeUndefined();
    expect(pg2.metadata.annotations['vm-mesh-sync.io/health-check']).toBeUndefined();
    expect(pg2.metadata.annotations['istio.io/workloadController']).toBe('istiod-7d9f');
    expect(pg2.status).toEqual(HEALTHY);
  });

  it('a bad health tag keeps the entry the VM has, unchanged, and plan says why', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10', { 'mesh-health': 'http:8080/healthz' })]);
    await sync();
    const before = live('static-pg-1')!;
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10', { 'mesh-health': 'grpc:9090', 'mesh-ports': 'postgres:5433' })]);
    server.counts.reset();
    expect((await sync()).skipped).toBe(1);
    expect(server.counts.writes()).toBe(0);
    expect(live('static-pg-1')).toEqual(before);
    const plan = await runCli(['plan', '--config', ws.configFile]);
    expect(plan.stdout).toContain("VMS_SKIP_BAD_HEALTH: tag mesh-health: 'grpc:9090' asks for a grpc probe");
  });

  it('a VM that auto-registered gets no entry of ours, and the one it had is deleted; istiod’s entry is not touched', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11')]);
    await sync();
    expect(names()).toEqual(['static-pg-1', 'static-pg-2']);

    // pg-1's sidecar auto-registers: istiod makes its entry (named <group>-<ip>).
    const made = server.put(autoRegistered('postgres-10.0.1.10', '10.0.1.10'));
    const explained = await runCli(['explain', 'static:pg-1', '--config', ws.configFile, '--output', 'json']);
    const leaving = JSON.parse(explained.stdout) as Explanation;
    expect(leaving).toMatchObject({ verdict: 'awaiting-delete', code: 'VMS_SKIP_AUTO_REGISTERED' });
    expect(leaving.reasons.join('\n')).toContain('leaving the mesh: VMS_SKIP_AUTO_REGISTERED: Istio auto-registered this VM as WorkloadEntry default/postgres-10.0.1.10');

    const plan = await runCli(['plan', '--config', ws.configFile, '--output', 'json']);
    const planned = JSON.parse(plan.stdout) as { summary: { delete: number }; skipped: Array<{ code: string; reason: string }> };
    expect(planned.summary.delete).toBe(1);
    expect(planned.skipped.map((s) => s.code)).toEqual(['VMS_SKIP_AUTO_REGISTERED']);

    expect(await sync()).toMatchObject({ skipped: 1, results: { deleted: 1 } });
    expect(names()).toEqual(['postgres-10.0.1.10', 'static-pg-2']);
    expect(server.get(WE, 'default', 'postgres-10.0.1.10')).toEqual(made);

    server.counts.reset();
    expect((await sync()).skipped).toBe(1);
    expect(server.counts.writes()).toBe(0);
    const after = JSON.parse((await runCli(['explain', 'static:pg-1', '--config', ws.configFile, '--output', 'json'])).stdout) as Explanation;
    expect(after).toMatchObject({ verdict: 'auto-registered', code: 'VMS_SKIP_AUTO_REGISTERED' });
  });

  it('the WorkloadGroup written for a service carries the probe its VMs share, and a VM that auto-registers through it is seen as istiod’s', async () => {
    const tags = { 'mesh-service': 'postgres', 'mesh-health': 'tcp:5432' };
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10', tags), meshMachine('pg-2', '10.0.1.11', tags)]);
    await sync();
    const group = server.get('workloadgroups', 'default', 'postgres') as unknown as { spec: { metadata: { labels: Record<string, string> }; probe?: unknown } };
    expect(group.spec.probe).toEqual({ tcpSocket: { port: 5432 } });

    // pg-1's sidecar auto-registers through that group: istiod copies the group's labels onto the
    // entry it makes, metadata and spec alike.
    const labels = group.spec.metadata.labels;
    expect(Object.keys(labels)).not.toContain('vm-mesh-sync.io/owner');
    const made = server.put(autoRegistered('postgres-10.0.1.10', '10.0.1.10', { labels }));
    const summary = await sync();
    expect(summary).toMatchObject({ skipped: 1, results: { deleted: 1 } });
    expect(names()).toEqual(['postgres-10.0.1.10', 'static-pg-2']);
    expect(server.get(WE, 'default', 'postgres-10.0.1.10')).toEqual(made);

    // pg-2 auto-registers too: no entry of ours names the service any more, yet the group is the
    // controller of istiod's entries and its Service selects them, so both stay as they are.
    const service = server.get('services', 'default', 'postgres');
    const groupBefore = server.get('workloadgroups', 'default', 'postgres');
    server.put(autoRegistered('postgres-10.0.1.11', '10.0.1.11', { labels }));
    const forced = await runCli(['sync', '--once', '--force', '--config', ws.configFile]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(names()).toEqual(['postgres-10.0.1.10', 'postgres-10.0.1.11']);
    expect(server.get('workloadgroups', 'default', 'postgres')).toEqual(groupBefore);
    expect(server.get('services', 'default', 'postgres')).toEqual(service);
  });

  it('another network is another VM: the same address there gets its entry', async () => {
    ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) }, redis: { prefix }, mapping: { network: { name: 'vpc-east' } } });
    server.put(autoRegistered('postgres-10.0.1.10-vpc-west', '10.0.1.10', { network: 'vpc-west' }));
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10')]);
    expect((await sync()).skipped).toBe(0);
    expect(names()).toEqual(['postgres-10.0.1.10-vpc-west', 'static-pg-1']);
  });

  it('an auto-registered entry is istiod’s even when its WorkloadGroup gave it our ownership labels', async () => {
    const ours = { 'app.kubernetes.io/managed-by': 'vm-mesh-sync', 'vm-mesh-sync.io/owner': 'default' };
    const made = server.put(autoRegistered('postgres-10.0.1.10', '10.0.1.10', { labels: ours, annotations: { 'vm-mesh-sync.io/scope': SCOPE } }));
    ws.writeInventory([meshMachine('pg-2', '10.0.1.11')]);
    await sync();
    expect(names()).toEqual(['postgres-10.0.1.10', 'static-pg-2']);
    expect(server.get(WE, 'default', 'postgres-10.0.1.10')).toEqual(made);
  });

  // The serve pipeline (real Redis queue and workers), driven resync by resync.
  it('a refresh of a VM that auto-registered deletes our entry by its name; a resync skips it with the code', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11')]);
    pipeline = await Pipeline.start(ws.configFile, server);
    await resyncScope(pipeline.deps, SCOPE);
    await pipeline.drain();
    expect(names()).toEqual(['static-pg-1', 'static-pg-2']);

    const made = server.put(autoRegistered('postgres-10.0.1.10', '10.0.1.10'));
    const refresh = await refreshInstances(pipeline.deps, [{ provider: 'static', account: 'onprem', id: 'pg-1' }]);
    expect(refresh.skips.map((s) => [s.instance.id, s.code])).toEqual([['pg-1', 'VMS_SKIP_AUTO_REGISTERED']]);
    expect(refresh.plan.changes.map((c) => `${c.op} ${c.key}`)).toEqual(['delete default/static-pg-1']);
    await pipeline.drain();
    expect(names()).toEqual(['postgres-10.0.1.10', 'static-pg-2']);
    expect(server.get(WE, 'default', 'postgres-10.0.1.10')).toEqual(made);

    const resync = await resyncScope(pipeline.deps, SCOPE);
    expect(resync.observation.skips.map((s) => [s.instance.id, s.code])).toEqual([['pg-1', 'VMS_SKIP_AUTO_REGISTERED']]);
    expect(resync.plan.changes).toEqual([]);
  });

  it('a resync deletes our entry of a VM that auto-registered, through the deletion guard', async () => {
    const fleet = ['10.0.1.10', '10.0.1.11', '10.0.1.12', '10.0.1.13'].map((ip, i) => meshMachine(`pg-${i}`, ip));
    ws.writeInventory(fleet);
    ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) }, deletionGuard: { allowDeletesUpTo: 1, maxDeleteFraction: 0.5 } });
    pipeline = await Pipeline.start(ws.configFile, server);
    await resyncScope(pipeline.deps, SCOPE);
    await pipeline.drain();

    // Three of four auto-register at once: more than the guard lets through without --force.
    for (const m of fleet.slice(0, 3)) server.put(autoRegistered(`postgres-${String(m.privateIPv4)}`, String(m.privateIPv4)));
    const held = await resyncScope(pipeline.deps, SCOPE);
    expect(held.plan.held.map((h) => h.deletes.length)).toEqual([3]);
    expect(held.plan.changes).toEqual([]);

    const forced = await resyncScope(pipeline.deps, SCOPE, { force: true });
    expect(forced.plan.changes.map((c) => c.op)).toEqual(['delete', 'delete', 'delete']);
    await pipeline.drain();
    expect(names()).toEqual(['postgres-10.0.1.10', 'postgres-10.0.1.11', 'postgres-10.0.1.12', 'static-pg-3']);
  });
});
