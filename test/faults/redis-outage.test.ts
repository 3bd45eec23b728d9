// Redis goes away in the middle of a drain while `serve` keeps running: killed and restarted empty
// (no persistence), or frozen with its data and thawed. The workers recover by themselves, /readyz
// says 503 while Redis is gone and 200 once it is back, and every machine of the inventory still
// ends up in the cluster.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WorkloadEntry } from '../../services/model.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { type Machine, meshMachine, Workspace, matchesInventory } from '../helpers/cli.ts';
import { hasRedisServer, PrivateRedis } from '../helpers/redis-server.ts';
import { freePort, ServeProcess, uniquePrefix, waitFor } from '../helpers/serve.ts';

const WE = 'workloadentries';
const HAS_REDIS_SERVER = hasRedisServer();
if (!HAS_REDIS_SERVER) {
  console.warn('test/faults/redis-outage.test.ts skipped: redis-server is not on PATH (apt-get install -y redis-server)');
}

describe.skipIf(!HAS_REDIS_SERVER)('serve through a Redis outage', () => {
  let server: FakeKubeApiServer;
  let redis: PrivateRedis;
  let ws: Workspace;
  let proc: ServeProcess | undefined;

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    redis = await PrivateRedis.start();
    ws = new Workspace();
  });
  afterEach(async () => {
    await proc?.stop('SIGKILL');
    proc = undefined;
    await redis.stop();
    await server.close();
    ws.remove();
  });

  const entries = () => server.objects(WE, 'default') as unknown as WorkloadEntry[];
  const converged = (inventory: Machine[]) => matchesInventory(entries(), inventory);
  const readyz = async (p: ServeProcess) => {
    try {
      return (await p.get('/readyz')).status;
    } catch {
      return 0;
    }
  };

  /** Starts serve on the private Redis with a slow cluster and waits until the drain is under way. */
  async function drainStarted(inventory: Machine[], settings: { shutdownTimeout?: string; log?: string } = {}): Promise<ServeProcess> {
    ws.writeInventory(inventory);
    ws.writeConfig({
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { url: redis.url, prefix: uniquePrefix('redis-outage') },
      resync: { interval: '1s' },
      queue: { concurrency: 4, backoff: '100ms', stalledAfter: '2s' },
      ...(settings.shutdownTimeout ? { server: { shutdownTimeout: settings.shutdownTimeout } } : {}),
      log: { level: settings.log ?? 'silent' },
    });
    // Slow writes, so that the outage falls in the middle of the drain: a job's entries, read
    // before the outage, are written during it (4 at a time) until the job next needs Redis.
    server.latencyMs = 120;
    const started = new ServeProcess(ws.configFile, await freePort());
    proc = started;
    await started.started();
    await waitFor(() => entries().length >= 40, 60_000, () => `${entries().length} entries`);
    return started;
  }
  const machines = (n: number) => Array.from({ length: n }, (_, i) => meshMachine(`vm-${i}`, `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`));

  it('killed and restarted empty: /readyz 503 while it is down, 200 after, and the cluster ends equal to the inventory', async () => {
    const inventory = machines(400);
    proc = await drainStarted(inventory);

    await redis.stop();
    const during = entries().length;
    expect(during).toBeLessThan(inventory.length);
    await waitFor(async () => (await readyz(proc!)) === 503, 20_000, () => 'readyz never answered 503 while Redis was down');
    // The HTTP server stays up while Redis is down.
    expect((await proc.get('/healthz')).status).toBe(200);

    await redis.start();
    await waitFor(() => converged(inventory), 90_000, () => `${entries().length} entries of ${inventory.length}`);
    await waitFor(async () => (await readyz(proc!)) === 200, 30_000, () => 'readyz never answered 200 after Redis came back');
    // The same process did all of it.
    expect(proc.child.exitCode).toBeNull();
    expect(proc.child.signalCode).toBeNull();
  }, 150_000);

  it('frozen and thawed with its data: /readyz 503 while it hangs, 200 after, and the cluster ends equal to the inventory', async () => {
    const inventory = machines(400);
    proc = await drainStarted(inventory);

    redis.pause();
    try {
      // Commands hang rather than fail: the readiness check's own time limit answers 503.
      await waitFor(async () => (await readyz(proc!)) === 503, 30_000, () => 'readyz never answered 503 while Redis hung');
      expect(entries().length).toBeLessThan(inventory.length);
    } finally {
      redis.resume();
    }
    await waitFor(() => converged(inventory), 90_000, () => `${entries().length} entries of ${inventory.length}`);
    await waitFor(async () => (await readyz(proc!)) === 200, 30_000, () => 'readyz never answered 200 after Redis thawed');
    expect(proc.child.exitCode).toBeNull();
  }, 150_000);

  // Every graceful step of a shutdown waits on Redis; after server.shutdownTimeout the connections
  // are dropped, so the process exits instead of waiting for the kubelet's SIGKILL.
  for (const outage of ['killed', 'frozen', 'up while the API server is slow'] as const) {
    it(`SIGTERM while Redis is ${outage}: serve drops its connections after server.shutdownTimeout and exits 0`, async () => {
      proc = await drainStarted(machines(400), { shutdownTimeout: '1s', log: 'info' });
      if (outage === 'killed') await redis.stop();
      else if (outage === 'frozen') redis.pause();
      // A write of an apply job in flight outlasts the timeout.
      else server.latencyMs = 10_000;
      if (outage === 'up while the API server is slow') {
        const slowWrite = () => server.delayed.some((d) => d.ms === 10_000 && d.method !== 'GET' && d.url.includes('/workloadentries'));
        await waitFor(slowWrite, 30_000, () => 'no write waited out the new delay');
      } else {
        await waitFor(async () => (await readyz(proc!)) === 503, 30_000, () => `readyz never answered 503 while Redis was ${outage}`);
      }
      const exit = await proc.stop('SIGTERM');
      expect(exit).toEqual({ code: 0, signal: null });
      const lines = proc.output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string; code?: string });
      const messages = lines.map((l) => l.msg);
      expect(messages).toContain('jobs still running or Redis not answering at shutdown; dropping the Redis connections (another replica picks the jobs up)');
      expect(messages).toContain('stopped');
      // The commands on the dropped connections fail: that is not an outage.
      const dropped = messages.indexOf('jobs still running or Redis not answering at shutdown; dropping the Redis connections (another replica picks the jobs up)');
      expect(lines.slice(dropped).filter((l) => l.code === 'VMS_ERR_REDIS_UNREACHABLE')).toEqual([]);
      if (outage === 'up while the API server is slow') expect(lines.filter((l) => l.code === 'VMS_ERR_REDIS_UNREACHABLE')).toEqual([]);
    }, 90_000);
  }

  it('down from the start: the admin port answers at once (/readyz 503 saying why), the outage is a few coded lines, and serve starts when Redis comes', async () => {
    await redis.stop();
    const inventory = machines(5);
    ws.writeInventory(inventory);
    ws.writeConfig({
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { url: redis.url, prefix: uniquePrefix('redis-outage') },
      resync: { interval: '1s' },
      log: { level: 'info' },
    });
    proc = new ServeProcess(ws.configFile, await freePort());
    const p = proc;
    // The admin port answers; the webhook port waits for the queue.
    await waitFor(async () => (await p.get('/healthz').catch(() => ({ status: 0 }))).status === 200, 30_000, () => p.output);
    await expect(fetch(p.url('/webhooks/static'), { method: 'POST' })).rejects.toThrow();
    const ready = await proc.get('/readyz');
    expect(ready.status).toBe(503);
    expect(JSON.stringify(ready.body)).toContain('waiting for Redis');
    // Twelve seconds of an outage: every connection, queue and worker fails on each retry, and the log
    // says so in two or three coded lines, with nothing uncoded at error level.
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    const lines = proc.output.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string | number; code?: string; msg: string });
    const outage = lines.filter((l) => l.code === 'VMS_ERR_REDIS_UNREACHABLE');
    expect(outage.length).toBeGreaterThanOrEqual(1);
    expect(outage.length).toBeLessThanOrEqual(3);
    expect(lines.filter((l) => l.level === 'error' || l.level === 50)).toEqual([]);

    await redis.start();
    await waitFor(() => converged(inventory), 60_000, () => `${entries().length} entries of ${inventory.length}`);
    await waitFor(async () => (await readyz(proc!)) === 200, 30_000, () => 'readyz never answered 200 after Redis came');
    await proc.started();
    expect(proc.output).toContain('Redis answers again');
  }, 120_000);
});
