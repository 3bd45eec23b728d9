// `serve` is SIGKILLed at random points of a large drain, three times in a row, then started
// cleanly: the cluster ends equal to the inventory, and no entry was ever created twice (a job
// taken over from a killed process finds the entry it already wrote instead of writing it again).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WorkloadEntry } from '../../services/model.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { type Machine, meshMachine, Workspace, matchesInventory } from '../helpers/cli.ts';
import { cleanupPrefix, freePort, ServeProcess, uniquePrefix, waitFor } from '../helpers/serve.ts';
import { type CreationCounter, countCreations } from '../helpers/watch-counter.ts';

const WE = 'workloadentries';
const MACHINES = 600;
const KILLS = 3;

/** A small seeded generator (mulberry32), so that a failing run names the seed that replays it. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('serve killed repeatedly during a drain', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;
  let prefix: string;
  let watch: CreationCounter;
  const procs: ServeProcess[] = [];

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    watch = await countCreations(server.url);
    ws = new Workspace();
    prefix = uniquePrefix('faults-kill');
    ws.writeConfig({
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { prefix },
      resync: { interval: '1s' },
      queue: { concurrency: 8, backoff: '100ms', stalledAfter: '2s' },
      log: { level: 'silent' },
    });
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    watch.close();
    await server.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  const start = async (): Promise<ServeProcess> => {
    const proc = new ServeProcess(ws.configFile, await freePort());
    procs.push(proc);
    await proc.started();
    return proc;
  };
  const entries = () => server.objects(WE, 'default') as unknown as WorkloadEntry[];
  const converged = (inventory: Machine[]) => matchesInventory(entries(), inventory);

  it(`${KILLS} SIGKILLs at random points, then a clean start: cluster equals inventory, no entry created twice`, async () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    const random = seeded(seed);
    const inventory = Array.from({ length: MACHINES }, (_, i) => meshMachine(`vm-${i}`, `10.7.${Math.floor(i / 250)}.${(i % 250) + 1}`));
    ws.writeInventory(inventory);
    // Slow enough that each life of the process sees only part of the drain.
    server.latencyMs = 8;

    let reached = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      // A random point in the next stretch of the drain, before it can be finished.
      const room = MACHINES * 0.85 - reached;
      const target = Math.floor(reached + room * (0.1 + 0.3 * random()));
      const proc = await start();
      await waitFor(() => entries().length >= target, 60_000, () => `seed ${seed}: ${entries().length} entries, waiting for ${target}`);
      const exit = await proc.stop('SIGKILL');
      expect(exit.signal, `seed ${seed}`).toBe('SIGKILL');
      reached = entries().length;
    }
    expect(reached, `seed ${seed}: the kills must fall inside the drain`).toBeLessThan(MACHINES);

    const last = await start();
    await waitFor(() => converged(inventory), 90_000, () => `seed ${seed}: ${entries().length} entries of ${MACHINES}`);

    // Each name was created exactly once, and nothing was ever deleted on the way. The watch
    // stream may still be delivering the last creations the store already shows.
    await waitFor(() => watch.added.size >= MACHINES, 10_000).catch(() => {});
    const twice = [...watch.added].filter(([, n]) => n > 1).map(([key]) => key);
    expect(twice, `seed ${seed}`).toEqual([]);
    expect(watch.added.size).toBe(MACHINES);
    expect(watch.deleted.size).toBe(0);
    expect(server.counts.of(WE).delete).toBe(0);
    // Jobs that were running when a process died ran again: none is left failed, in any queue.
    await waitFor(async () => {
      const status = (await last.get('/status')).body as { queue: Record<string, number>; refreshQueue: Record<string, number> };
      return status.queue.active === 0 && status.queue.waiting === 0;
    }, 30_000);
    const status = (await last.get('/status')).body as { queue: Record<string, number>; refreshQueue: Record<string, number> };
    expect({ apply: status.queue.failed, refresh: status.refreshQueue.failed }, `seed ${seed}`).toEqual({ apply: 0, refresh: 0 });
    expect((await last.stop('SIGTERM')).code).toBe(0);
  }, 170_000);
});
