// Newest observation wins, as a property: random interleavings of upserts and deletes (with random
// observation times) of a few entries, enqueued by two producers at once and applied by two apply
// workers with their own writers, against real Redis and the fake API server. Whatever the order,
// each entry ends at its newest observation: present with that observation's spec, or absent.
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change, WorkloadEntry } from '../../services/model.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, OBSERVED_AT_ANNOTATION, OWNER_LABEL, entryKey } from '../../services/model.ts';
import { startApplyWorker } from '../../services/queue/apply-worker.ts';
import { ChangeQueue } from '../../services/queue/change-queue.ts';
import { RedisDesiredStore } from '../../services/queue/desired-store.ts';
import { createRedis } from '../../services/queue/redis.ts';
import { createKubeApi } from '../../services/writer/kube-api.ts';
import { Writer } from '../../services/writer/writer.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { cleanupPrefix, uniquePrefix, waitFor } from '../helpers/serve.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const OWNER = 'newest-wins';
const WE = 'workloadentries';
const NAMES = ['vm-a', 'vm-b', 'vm-c'] as const;
const EPOCH = Date.UTC(2025, 0, 1);

/** One observation: which entry, upsert or delete, when (ms after EPOCH), which producer sends it, and a pause before. */
interface Observation {
  entry: number;
  op: 'upsert' | 'delete';
  at: number;
  producer: 0 | 1;
  pauseMs: number;
}

// Times are unique per entry: two observations of one instant have no "newest" to check against.
const observations = fc.uniqueArray(
  fc.record({
    entry: fc.integer({ min: 0, max: NAMES.length - 1 }),
    op: fc.constantFrom<'upsert' | 'delete'>('upsert', 'upsert', 'delete'),
    at: fc.integer({ min: 0, max: 5000 }),
    producer: fc.constantFrom<0 | 1>(0, 1),
    pauseMs: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: 1, max: 8 }), weight: 1 }),
  }),
  { minLength: 1, maxLength: 30, selector: (o) => `${o.entry}:${o.at}` },
);

function change(ns: string, o: Observation): Change {
  const name = NAMES[o.entry]!;
  const observedAt = new Date(EPOCH + o.at).toISOString();
  if (o.op === 'delete') return { op: 'delete', key: entryKey(ns, name), namespace: ns, name, scopeKey: '', observedAt };
  const entry: WorkloadEntry = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace: ns, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: OWNER }, annotations: {} },
    // The address encodes the observation, so the spec itself shows which one was applied last.
    spec: { address: `10.${o.entry}.${Math.floor(o.at / 250)}.${(o.at % 250) + 1}`, ports: { http: 8080 + (o.at % 7) } },
  };
  return { op: 'upsert', key: entryKey(ns, name), entry, observedAt };
}

describe('newest observation wins', () => {
  let server: FakeKubeApiServer;

  beforeAll(async () => {
    server = new FakeKubeApiServer({ latencyMs: 1 });
    await server.start();
  });
  afterAll(async () => {
    await server.close();
  });

  /** Runs one interleaving through the queue and returns the entries as they ended, by name. */
  async function runInterleaving(obs: Observation[], run: number): Promise<{ ns: string; live: Map<string, Record<string, any> | undefined>; failed: number }> {
    const ns = `nw-${run}-${Math.random().toString(36).slice(2, 8)}`;
    server.createNamespace(ns);
    const prefix = uniquePrefix('newest-wins');
    const connections: Redis[] = [];
    const connect = (role: 'producer' | 'worker') => {
      const redis = createRedis(REDIS_URL, { role });
      connections.push(redis);
      return redis;
    };
    // Two producers, as two replicas resyncing and taking webhooks at once.
    const producers = [0, 1].map(() => {
      const connection = connect('producer');
      return new ChangeQueue({ connection, prefix, store: new RedisDesiredStore(connection, prefix), attempts: 10, backoffMs: 20, keepFailed: 100 });
    });
    // Two workers with a writer each, as two replicas applying.
    const workers = [0, 1].map(() =>
      startApplyWorker({
        connection: REDIS_URL,
        prefix,
        store: new RedisDesiredStore(connect('worker'), prefix),
        writer: new Writer({ api: createKubeApi(server.kubeConfig()), ownerId: OWNER, fieldManager: 'vm-mesh-sync', ensureServiceAccounts: false }),
        concurrency: 2,
      }),
    );
    try {
      await Promise.all(
        producers.map(async (queue, p) => {
          for (const o of obs.filter((x) => x.producer === p)) {
            if (o.pauseMs > 0) await new Promise((r) => setTimeout(r, o.pauseMs));
            await queue.enqueue([change(ns, o)]);
          }
        }),
      );
      const queue = producers[0]!;
      const drained = async () => {
        const c = await queue.counts();
        return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) === 0;
      };
      const expected = newest(obs);
      const matches = () => NAMES.every((name, i) => liveMatches(server.get(WE, ns, name) as Record<string, any> | undefined, expected.get(i), ns));
      await waitFor(async () => matches() && (await drained()), 20_000, () => `run ${run} did not settle`).catch(() => {});
      const failed = (await queue.counts()).failed ?? 0;
      return { ns, live: new Map(NAMES.map((name) => [name, server.get(WE, ns, name) as Record<string, any> | undefined])), failed };
    } finally {
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all(producers.map((q) => q.close()));
      await Promise.all(connections.map((c) => c.quit().catch(() => c.disconnect())));
      await cleanupPrefix(prefix);
    }
  }

  it('for any interleaving, producers and workers, every entry ends at its newest observation', async () => {
    let run = 0;
    let withDeletes = 0;
    await fc.assert(
      fc.asyncProperty(observations, async (obs) => {
        const { ns, live, failed } = await runInterleaving(obs, run++);
        const expected = newest(obs);
        if ([...expected.values()].some((o) => o.op === 'delete')) withDeletes++;
        expect(failed).toBe(0);
        NAMES.forEach((name, i) => {
          const want = expected.get(i);
          const obj = live.get(name);
          if (want === undefined || want.op === 'delete') {
            expect(obj, `${name} should be absent`).toBeUndefined();
          } else {
            const c = change(ns, want);
            expect(obj?.metadata.annotations[OBSERVED_AT_ANNOTATION], name).toBe(c.observedAt);
            expect(obj?.spec, name).toEqual(c.op === 'upsert' ? c.entry.spec : undefined);
          }
        });
      }),
      { numRuns: 30, endOnFailure: true },
    );
    // The runs covered entries whose newest observation is a removal, not only upserts.
    expect(withDeletes).toBeGreaterThan(0);
  }, 150_000);
});

/** The newest observation of each entry index. */
function newest(obs: Observation[]): Map<number, Observation> {
  const out = new Map<number, Observation>();
  for (const o of obs) {
    const current = out.get(o.entry);
    if (!current || o.at > current.at) out.set(o.entry, o);
  }
  return out;
}

function liveMatches(obj: Record<string, any> | undefined, want: Observation | undefined, ns: string): boolean {
  if (want === undefined || want.op === 'delete') return obj === undefined;
  const c = change(ns, want);
  return obj?.metadata.annotations[OBSERVED_AT_ANNOTATION] === c.observedAt && JSON.stringify(obj?.spec) === JSON.stringify(c.op === 'upsert' ? c.entry.spec : undefined);
}
