// `serve` as a real process against real Redis and the fake API server: it converges, survives a
// SIGKILL with changes queued, drains on SIGTERM, and several replicas share the work.
import net from 'node:net';
import { Queue } from 'bullmq';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WorkloadEntry } from '../../services/model.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { type Machine, meshMachine, Workspace, matchesInventory } from '../helpers/cli.ts';
import { cleanupPrefix, freePort, ServeProcess, uniquePrefix, waitFor } from '../helpers/serve.ts';

const WE = 'workloadentries';

function machines(n: number, third = 1): Machine[] {
  return Array.from({ length: n }, (_, i) => meshMachine(`vm-${i}`, `10.${third}.${Math.floor(i / 250)}.${(i % 250) + 1}`));
}

/** Waits until serve's change queue has nothing waiting, delayed or running; resolves to when it saw that. */
async function queueIdle(proc: ServeProcess): Promise<number> {
  let at = 0;
  await waitFor(async () => {
    const { queue } = (await proc.get('/status')).body as { queue: Record<string, number> };
    const busy = (queue.waiting ?? 1) + (queue.active ?? 1) + (queue.delayed ?? 1) + (queue.prioritized ?? 0);
    if (busy === 0) at = Date.now();
    return busy === 0;
  }, 30_000, () => proc.output);
  return at;
}

describe('serve', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;
  let prefix: string;
  const procs: ServeProcess[] = [];

  const start = async (extraEnv: NodeJS.ProcessEnv = {}): Promise<ServeProcess> => {
    const proc = new ServeProcess(ws.configFile, await freePort(), extraEnv);
    procs.push(proc);
    await proc.started();
    return proc;
  };
  const entries = () => server.objects(WE, 'default') as unknown as WorkloadEntry[];
  /** True when the cluster holds exactly the inventory's machines with the inventory's addresses. */
  const converged = (inventory: Machine[]) => matchesInventory(entries(), inventory);

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ws = new Workspace();
    prefix = uniquePrefix('serve');
    writeConfig();
  });
  const writeConfig = (concurrency = 4): void =>
    ws.writeConfig({
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { prefix },
      resync: { interval: '1s' },
      // The tests below replace whole inventories on purpose.
      deletionGuard: { maxDeleteFraction: 1 },
      queue: { concurrency, backoff: '100ms', stalledAfter: '3s' },
      log: { level: 'warn' },
    });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    await server.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  it('converges to the inventory, answers health, readiness, metrics and status, and exits 0 on SIGTERM', async () => {
    const inventory = machines(50);
    ws.writeInventory(inventory);
    const proc = await start();
    await waitFor(() => converged(inventory), 60_000, () => `${entries().length} entries`);
    await waitFor(async () => (await proc.get('/readyz')).status === 200, 30_000, () => proc.output);

    const metrics = (await proc.get('/metrics')).body as string;
    expect(metrics).toMatch(/vms_changes_applied_total\{result="created"\} 50/);
    expect(metrics).toMatch(/vms_instances_seen\{provider="static",scope="static:onprem"\} 50/);
    const status = (await proc.get('/status')).body as { scopes: Array<{ scopeKey: string; instances: number; complete: boolean }> };
    expect(status.scopes).toEqual([expect.objectContaining({ scopeKey: 'static:onprem', instances: 50, complete: true })]);

    // A resync of an unchanged inventory writes nothing. A resync that listed the cluster before the
    // first creates landed plans them again, and each costs one create answered 409 (the writer
    // tries a create the plan expects before reading): wait for one that started once the queue
    // was idle, so that every resync from here on sees the whole inventory in the cluster.
    const idleSince = await queueIdle(proc);
    await waitFor(async () => {
      const scope = ((await proc.get('/status')).body as { scopes: Array<{ lastResyncAt: string; durationMs: number }> }).scopes[0];
      return scope !== undefined && Date.parse(scope.lastResyncAt) - scope.durationMs > idleSince && (await queueIdle(proc)) > 0;
    }, 30_000, () => proc.output);
    server.counts.reset();
    await waitFor(() => server.counts.total('list', WE) >= 2, 30_000);
    expect(server.counts.writes(WE)).toBe(0);

    const exit = await proc.stop('SIGTERM');
    expect(exit.code).toBe(0);
  });

  it('a webhook port another process holds ends serve with VMS_ERR_PORT_IN_USE and exit 1, nothing left running', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10')]);
    const port = await freePort();
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(port, '0.0.0.0', resolve));
    try {
      const proc = new ServeProcess(ws.configFile, port);
      procs.push(proc);
      const exit = await Promise.race([proc.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 30_000))]);
      expect(exit).toEqual({ code: 1, signal: null });
      expect(proc.output).toContain(`VMS_ERR_PORT_IN_USE: 0.0.0.0:${port} (server.port) is in use by another process`);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('SIGKILL while changes are queued loses nothing: a restart ends with the cluster equal to the inventory', async () => {
    const first = machines(300);
    ws.writeInventory(first);
    server.latencyMs = 5;
    let proc = await start();
    await waitFor(() => entries().length >= 20, 60_000, () => proc.output);
    const killed = await proc.stop('SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    expect(entries().length).toBeLessThan(300);

    // The inventory changes while nothing runs: new addresses for all, a third of the machines gone.
    const second = machines(200, 2);
    ws.writeInventory(second);
    proc = await start();
    await waitFor(() => converged(second), 90_000, () => `${entries().length} entries`);
    // Every entry carries the newest observation: the addresses of the second inventory.
    expect(entries().every((e) => e.spec.address?.startsWith('10.2.'))).toBe(true);
    expect((await proc.stop('SIGTERM')).code).toBe(0);
  }, 180_000);

  it('two replicas share the work: both apply changes, and each scope is resynced once per interval between them', async () => {
    const inventory = machines(400);
    server.latencyMs = 10;
    // One job of up to 100 entries at a time per replica, each taking a second or more: while one
    // replica works through its job, the other takes the next, whichever polled first.
    writeConfig(1);
    const a = await start();
    const b = await start();
    ws.writeInventory(inventory);
    await waitFor(() => converged(inventory), 90_000, () => `${entries().length} entries`);

    const applied = async (p: ServeProcess) => {
      const text = (await p.get('/metrics')).body as string;
      const m = /vms_changes_applied_total\{result="created"\} (\d+)/.exec(text);
      return Number(m?.[1] ?? 0);
    };
    const [fromA, fromB] = [await applied(a), await applied(b)];
    expect(fromA).toBeGreaterThan(0);
    expect(fromB).toBeGreaterThan(0);
    expect(fromA + fromB).toBe(400);

    // Each resync lists the owned entries once. The scheduler creates one resync job per interval
    // for the scope, whatever the number of replicas; if each replica resynced on its own, the
    // lists would be twice the scheduler's iterations.
    const queue = new Queue('vms-resync', { connection: { host: '127.0.0.1', port: 6379 }, prefix });
    try {
      const iterations = async () => (await queue.getJobSchedulers()).reduce((n, s) => n + (s.iterationCount ?? 0), 0);
      const startIterations = await iterations();
      server.counts.reset();
      server.requests.length = 0;
      await waitFor(async () => (await iterations()) - startIterations >= 5, 60_000);
      // Lists of the owned entries (a resync also lists the entries that are not ours, once).
      const lists = server.requests.filter((r) => r.verb === 'list' && r.resource === WE && (r.query.labelSelector ?? '').includes('vm-mesh-sync.io/owner=')).length;
      const ran = (await iterations()) - startIterations;
      // One resync may still be running when counting stops, and one may have been running when it started.
      expect(lists).toBeGreaterThanOrEqual(ran - 2);
      expect(lists).toBeLessThanOrEqual(ran + 1);
    } finally {
      await queue.close();
    }
  }, 120_000);
});
