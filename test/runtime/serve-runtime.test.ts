// The runtime of `serve` as a real process against real Redis and the fake API server: SIGTERM in
// the middle of a large drain loses no job, /status tells what the last resyncs found, and Events
// about unusable tags reach the cluster without flooding it.
import { writeFileSync } from 'node:fs';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { entryKey, type WorkloadEntry } from '../../services/model.ts';
import { APPLY_QUEUE_NAME, jobKeys } from '../../services/queue/change-queue.ts';
import type { ScopeStatus } from '../../services/runtime/status-store.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { type Machine, meshMachine, Workspace, matchesInventory } from '../helpers/cli.ts';
import { cleanupPrefix, freePort, ServeProcess, uniquePrefix, waitFor } from '../helpers/serve.ts';

const WE = 'workloadentries';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function machines(n: number): Machine[] {
  return Array.from({ length: n }, (_, i) => meshMachine(`vm-${i}`, `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`));
}

interface StatusDoc {
  ownerId: string;
  queue: Record<string, number>;
  scopes: ScopeStatus[];
}

interface KubeEvent {
  involvedObject: { kind: string; name: string; namespace: string };
  reason: string;
  message: string;
  type: string;
}

describe('serve runtime', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;
  let prefix: string;
  const procs: ServeProcess[] = [];

  const writeConfig = (extra: Record<string, unknown> = {}) =>
    ws.writeConfig({
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { prefix },
      resync: { interval: '1s' },
      queue: { concurrency: 4, backoff: '100ms', stalledAfter: '3s' },
      log: { level: 'warn' },
      ...extra,
    });
  const start = async (): Promise<ServeProcess> => {
    const proc = new ServeProcess(ws.configFile, await freePort(), { REDIS_URL });
    procs.push(proc);
    await proc.started();
    return proc;
  };
  const entries = () => server.objects(WE, 'default') as unknown as WorkloadEntry[];
  const converged = (inventory: Machine[]) => matchesInventory(entries(), inventory);
  const status = async (proc: ServeProcess) => (await proc.get('/status')).body as StatusDoc;

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ws = new Workspace();
    prefix = uniquePrefix('serve-runtime');
    writeConfig();
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    await server.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  it('SIGTERM during a large drain exits 0 with every unapplied change still queued; a second start applies them', async () => {
    const inventory = machines(300);
    ws.writeInventory(inventory);
    // One resync is enough here; a later one would queue the missing entries again and hide a lost job.
    writeConfig({ resync: { interval: '1h' } });
    server.latencyMs = 20;
    const first = await start();
    await waitFor(() => entries().length >= 20, 60_000, () => first.output);

    const exit = await first.stop('SIGTERM');
    expect(exit.code, first.output).toBe(0);
    const appliedBefore = entries().length;
    expect(appliedBefore).toBeLessThan(300);

    // Nothing in flight is abandoned and nothing is dropped: what is not in the cluster is still queued.
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue(APPLY_QUEUE_NAME, { connection: redis, prefix });
    try {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed');
      expect(counts.active).toBe(0);
      expect(counts.failed).toBe(0);
      const queued = await queue.getJobs(['waiting', 'delayed', 'prioritized']);
      const keys = new Set(queued.flatMap((job) => jobKeys(job.data)));
      expect(keys.size).toBe(300 - appliedBefore);
      expect(entries().some((e) => keys.has(entryKey(e.metadata.namespace, e.metadata.name)))).toBe(false);
    } finally {
      await queue.close();
      redis.disconnect();
    }

    // The second start cannot read the inventory, so its resync plans nothing: only the jobs the
    // first process left in Redis can bring the cluster to the inventory.
    ws.writeInventoryText('machines: [\n');
    const second = await start();
    await waitFor(() => converged(inventory), 90_000, () => `${entries().length} entries\n${second.output}`);
    const metrics = (await second.get('/metrics')).body as string;
    expect(metrics).not.toMatch(/vms_changes_enqueued_total\{[^}]*\} [1-9]/);
    expect((await second.stop('SIGTERM')).code).toBe(0);
  }, 180_000);

  it('scopes resyncing at once share their listings of owned entries, and each still converges', async () => {
    const scopes = ['s0', 's1', 's2', 's3', 's4', 's5'];
    const inventories = scopes.map((name, i) => {
      const file = `${ws.dir}/inventory-${name}.yaml`;
      const vms = [meshMachine(`${name}-a`, `10.2.${i}.1`), meshMachine(`${name}-b`, `10.2.${i}.2`)];
      writeFileSync(file, stringify({ machines: vms }));
      return { name, file, vms };
    });
    writeConfig({
      resync: { interval: '1h' },
      providers: inventories.map(({ name, file }) => ({ type: 'static', name, inventory: file })),
    });
    // A listing of owned entries takes long enough for the other scopes to reach the cluster meanwhile.
    const ownedLists = () => server.requests.filter((r) => r.resource === WE && r.verb === 'list' && (r.query.labelSelector ?? '').includes('owner=')).length;
    server.faults.push({ match: { verb: 'list', resource: WE }, delayMs: 400 });
    const proc = await start();
    await waitFor(async () => (await status(proc)).scopes.filter((sc) => sc.lastSuccessAt !== '').length === scopes.length, 60_000, () => proc.output);
    await waitFor(() => entries().length === 12, 30_000, () => proc.output);
    expect(entries().map((e) => e.metadata.name).sort()).toEqual(inventories.flatMap(({ name }) => [`static-${name}-a`, `static-${name}-b`]).sort());
    // Six resyncs; at most two list the cloud at a time, and those reaching the cluster while a listing runs share the next.
    expect(ownedLists()).toBeGreaterThanOrEqual(2);
    expect(ownedLists()).toBeLessThan(scopes.length);
  });

  it('/status shows each scope with its last resync, counts, skipped instances with reasons, and the queue depth', async () => {
    ws.writeInventory([
      meshMachine('pg-1', '10.0.1.10'),
      meshMachine('pg-2', '10.0.1.11'),
      { id: 'untagged', privateIPv4: '10.0.9.9', tags: { 'mesh-app': 'postgres' } },
      { ...meshMachine('pg-stopped', '10.0.1.12'), state: 'stopped' },
      meshMachine('pg-bad', '10.0.1.13', { 'mesh-ports': 'pg:99999' }),
    ]);
    const proc = await start();
    await waitFor(async () => (await status(proc)).scopes[0]?.lastResyncAt !== '', 30_000, () => proc.output);
    await waitFor(() => entries().length === 2, 30_000, () => proc.output);
    const STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'];
    const pending = (doc: StatusDoc) => STATES.reduce((n, state) => n + (doc.queue[state] ?? 0), 0);
    // Settled: a resync saw both entries, and the jobs that wrote them have left the queue.
    await waitFor(async () => {
      const doc = await status(proc);
      return doc.scopes[0]?.owned === 2 && pending(doc) === 0;
    }, 30_000, () => proc.output);

    const doc = await status(proc);
    expect(doc.ownerId).toBe('default');
    expect(doc.scopes).toHaveLength(1);
    const scope = doc.scopes[0]!;
    expect(scope.scopeKey).toBe('static:onprem');
    expect(Number.isNaN(Date.parse(scope.lastResyncAt))).toBe(false);
    expect(scope.lastSuccessAt).not.toBe('');
    expect(scope.error).toBe('');
    expect(scope).toMatchObject({ complete: true, instances: 5, entries: 2, owned: 2, changes: 0, held: [], skipCount: 3 });
    const skips = new Map(scope.skips.map((s) => [s.instance.id, s]));
    expect(skips.get('untagged')).toMatchObject({ code: 'VMS_SKIP_NOT_SELECTED', keepsEntry: false });
    expect(skips.get('pg-stopped')).toMatchObject({ code: 'VMS_SKIP_NOT_RUNNING', keepsEntry: false });
    expect(skips.get('pg-bad')).toMatchObject({ code: 'VMS_SKIP_BAD_PORTS', keepsEntry: true });
    expect(skips.get('pg-bad')?.reason).toContain("'pg:99999' is not a port");
    for (const state of STATES) expect(typeof doc.queue[state]).toBe('number');

    // The queue depth is live: changes waiting behind a slow API server show in it.
    server.latencyMs = 200;
    ws.writeInventory(machines(40));
    await waitFor(async () => pending(await status(proc)) > 0, 30_000, () => proc.output);
    server.latencyMs = 0;
    expect((await proc.stop('SIGTERM')).code).toBe(0);
  }, 90_000);

  it('an invalid tag becomes a Warning Event on the entry, once per object and reason however many resyncs run', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-bad', '10.0.1.13', { 'mesh-ports': 'pg:99999' })]);
    const proc = await start();
    const badEvents = () =>
      (server.objects('events', 'default') as unknown as KubeEvent[]).filter((e) => e.involvedObject.name === 'static-pg-bad' && e.reason === 'BadPorts');
    await waitFor(() => badEvents().length > 0, 30_000, () => proc.output);

    const [event] = badEvents();
    expect(event).toMatchObject({ type: 'Warning', involvedObject: { kind: 'WorkloadEntry', namespace: 'default', name: 'static-pg-bad' } });
    expect(event!.message).toContain('VMS_SKIP_BAD_PORTS');
    expect(event!.message).toContain("'pg:99999' is not a port");

    // At least two more resyncs (each lists the owned entries once) find the same bad tag.
    server.counts.reset();
    await waitFor(() => server.counts.total('list', WE) >= 3, 30_000, () => proc.output);
    expect(badEvents()).toHaveLength(1);
    expect(server.counts.of('events').create).toBe(0);
    // The good machine got no Event at all.
    expect((server.objects('events', 'default') as unknown as KubeEvent[]).filter((e) => e.involvedObject.name === 'static-pg-1')).toEqual([]);
    expect((await proc.stop('SIGTERM')).code).toBe(0);
  }, 90_000);

  it("a skipped instance's Warning Event goes to the namespace its entry would be in", async () => {
    server.createNamespace('payments');
    writeConfig({ mapping: { namespace: { allowed: ['default', 'payments'] } } });
    ws.writeInventory([meshMachine('pay-bad', '10.0.1.14', { 'mesh-namespace': 'payments', 'mesh-ports': 'pg:99999' })]);
    const proc = await start();
    const inPayments = () => (server.objects('events', 'payments') as unknown as KubeEvent[]).filter((e) => e.involvedObject.name === 'static-pay-bad');
    await waitFor(() => inPayments().length > 0, 30_000, () => proc.output);
    expect(inPayments()[0]).toMatchObject({ reason: 'BadPorts', involvedObject: { namespace: 'payments', name: 'static-pay-bad' } });
    expect((server.objects('events', 'default') as unknown as KubeEvent[]).filter((e) => e.involvedObject.name === 'static-pay-bad')).toEqual([]);
    expect((await proc.stop('SIGTERM')).code).toBe(0);
  }, 90_000);
});
