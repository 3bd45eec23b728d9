// A mesh service whose VMs span two scopes (two static inventories), end to end: `sync --once`,
// and the serve pipeline resyncing one scope at a time (real Redis, queue and apply workers),
// with the real Kubernetes client against the fake API server.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KubeService, WorkloadGroup } from '../../services/model.ts';
import { resyncScope } from '../../services/sync/reconcile.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { type Machine, meshMachine, runCli, Workspace } from '../helpers/cli.ts';
import { Pipeline } from '../helpers/pipeline.ts';
import { cleanupPrefix, uniquePrefix } from '../helpers/serve.ts';

const A = 'static:a';
const B = 'static:b';

/** A VM of mesh service postgres. */
const pg = (id: string, ip: string, tags: Record<string, string> = {}) => meshMachine(id, ip, { 'mesh-service': 'postgres', ...tags });
const WITH_METRICS = { 'mesh-ports': 'postgres:5432,metrics:9187' };

describe('a mesh service whose VMs span two scopes', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;
  let inventoryB: string;
  let prefix: string;
  let pipeline: Pipeline | undefined;

  const writeA = (machines: Machine[]) => ws.writeInventory(machines);
  const writeB = (machines: Machine[]) => writeFileSync(inventoryB, stringify({ machines }));
  /** namespace/name → the Service's ports as name:port. */
  const servicePorts = () =>
    Object.fromEntries((server.objects('services') as unknown as KubeService[]).map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s.spec.ports.map((p) => `${p.name}:${p.port}`)]));
  const groups = () => (server.objects('workloadgroups') as unknown as WorkloadGroup[]).map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g.spec.template.ports]);
  const entries = () => server.objects('workloadentries').map((e) => e.metadata.name).sort();
  const sync = () => runCli(['sync', '--once', '--config', ws.configFile]);

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ws = new Workspace();
    inventoryB = path.join(ws.dir, 'inventory-b.yaml');
    writeB([]);
    prefix = uniquePrefix('services-across-scopes');
    ws.writeConfig({
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { prefix },
      log: { level: 'warn' },
      providers: [
        { type: 'static', name: 'a', inventory: ws.inventoryFile },
        { type: 'static', name: 'b', inventory: inventoryB },
      ],
    });
  });
  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
    await server.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  it('sync --once: the Service has the ports of both scopes, keeps them while either has a VM, and goes with the last', async () => {
    writeA([pg('a-1', '10.0.1.10')]);
    writeB([pg('b-1', '10.0.2.10', WITH_METRICS)]);
    expect((await sync()).code).toBe(0);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432', 'metrics:9187'] });
    expect(groups()).toEqual([['default/postgres', { postgres: 5432 }]]);

    // Scope a's VM goes: b's VM keeps the Service and its ports; the WorkloadGroup now shares b's.
    writeA([]);
    expect((await sync()).code).toBe(0);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432', 'metrics:9187'] });
    expect(groups()).toEqual([['default/postgres', { postgres: 5432, metrics: 9187 }]]);

    writeB([]);
    expect((await sync()).code).toBe(0);
    expect(servicePorts()).toEqual({});
    expect(groups()).toEqual([]);
  });

  it('serve: resyncing one scope alone never drops the other scope\'s ports nor deletes the Service while the other has a VM', async () => {
    writeA([pg('a-1', '10.0.1.10')]);
    writeB([pg('b-1', '10.0.2.10', WITH_METRICS)]);
    pipeline = await Pipeline.start(ws.configFile, server);
    const resync = async (scope: string) => {
      await resyncScope(pipeline!.deps, scope);
      await pipeline!.drain();
    };

    await resync(B);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432', 'metrics:9187'] });
    await resync(A);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432', 'metrics:9187'] });
    expect(entries()).toEqual(['static-a-1', 'static-b-1']);

    // b's VM goes, but only a is resynced: b's entry is still in the cluster, and so are its ports.
    writeB([]);
    await resync(A);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432', 'metrics:9187'] });
    // b is resynced: its entry goes and the Service has a's ports alone.
    await resync(B);
    expect(entries()).toEqual(['static-a-1']);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432'] });

    // b's VM comes back and a's goes; a is resynced first: b's entry is not in the cluster yet, so
    // the Service would have no VM, but resyncing a alone must not leave b's VM without it for long:
    // once b is resynced, the Service is there with b's ports.
    writeB([pg('b-1', '10.0.2.10', WITH_METRICS)]);
    writeA([]);
    await resync(B);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432', 'metrics:9187'] });
    await resync(A);
    expect(entries()).toEqual(['static-b-1']);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432', 'metrics:9187'] });

    writeB([]);
    await resync(B);
    expect(servicePorts()).toEqual({});
    expect(groups()).toEqual([]);
    expect(await pipeline.failedJobs()).toBe(0);
  });

  it('serve: both scopes resynced at once converge by the next round, and then write nothing', async () => {
    writeA([pg('a-1', '10.0.1.10')]);
    writeB([pg('b-1', '10.0.2.10', WITH_METRICS)]);
    pipeline = await Pipeline.start(ws.configFile, server);
    const round = async () => {
      await Promise.all([resyncScope(pipeline!.deps, A), resyncScope(pipeline!.deps, B)]);
      await pipeline!.drain();
    };
    await round();
    expect(entries()).toEqual(['static-a-1', 'static-b-1']);
    // Each plan read the cluster before the other's entry was there: the Service may have one
    // scope's ports until the next round, which sees both entries.
    await round();
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432', 'metrics:9187'] });
    const writes = server.writes('workloadentries');
    await round();
    expect(server.writes('workloadentries')).toBe(writes);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432', 'metrics:9187'] });
    expect(await pipeline.failedJobs()).toBe(0);
  });

  // The entry's delete is held back at the API server, so that its Service's delete runs while
  // the entry is still there: the Service goes all the same, in serve and in sync --once.
  const slowEntryDeletes = () => server.faults.push({ match: { verb: 'delete', resource: 'workloadentries' }, delayMs: 400 });

  it('serve: the last VM going removes its Service though the Service\'s delete runs before its entry\'s', async () => {
    writeA([pg('a-1', '10.0.1.10')]);
    pipeline = await Pipeline.start(ws.configFile, server);
    await resyncScope(pipeline.deps, A);
    await pipeline.drain();
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432'] });

    slowEntryDeletes();
    writeA([]);
    await resyncScope(pipeline.deps, A);
    await pipeline.drain();
    expect(entries()).toEqual([]);
    expect(servicePorts()).toEqual({});
    expect(groups()).toEqual([]);
    expect(await pipeline.failedJobs()).toBe(0);
  });

  it('sync --once: the last VM going removes its Service though its entry\'s delete is slow', async () => {
    writeA([pg('a-1', '10.0.1.10')]);
    expect((await sync()).code).toBe(0);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432'] });

    slowEntryDeletes();
    writeA([]);
    const run = await sync();
    expect(run.code, run.stderr).toBe(0);
    expect(entries()).toEqual([]);
    expect(servicePorts()).toEqual({});
    expect(groups()).toEqual([]);
  });

  it('the last VM with ports losing them (its entry stays): the Service goes, the WorkloadGroup stays', async () => {
    writeA([pg('a-1', '10.0.1.10')]);
    writeB([pg('b-1', '10.0.2.10')]);
    expect((await sync()).code).toBe(0);
    expect(servicePorts()).toEqual({ 'default/postgres': ['postgres:5432'] });

    writeA([pg('a-1', '10.0.1.10', { 'mesh-ports': '' })]);
    writeB([pg('b-1', '10.0.2.10', { 'mesh-ports': '' })]);
    const run = await sync();
    expect(run.code, run.stderr).toBe(0);
    expect(entries()).toEqual(['static-a-1', 'static-b-1']);
    expect(servicePorts()).toEqual({});
    expect(groups()).toEqual([['default/postgres', undefined]]);
    // And it stays so: nothing is planned again.
    const plan = await runCli(['plan', '--config', ws.configFile]);
    expect(plan.stdout).toMatch(/0 to create, 0 to update, 0 to delete/);
  });
});
