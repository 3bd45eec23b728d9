// The queue end to end: real Redis, real BullMQ, the real writer and client against the fake API
// server. Each test has its own queue prefix and namespace and removes its Redis keys afterwards.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeKubeApiServer } from '../../test/fakes/kube-api-server.ts';
import type { Change, WorkloadEntry, WorkloadEntrySpec } from '../model.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE, OBSERVED_AT_ANNOTATION, OWNER_LABEL, SCOPE_ANNOTATION, entryKey } from '../model.ts';
import { createKubeApi } from '../writer/kube-api.ts';
import { TransientKubeError } from '../writer/transient-kube-error.ts';
import { Writer } from '../writer/writer.ts';
import { Queue, Worker } from 'bullmq';
import { VmsError } from '../errors.ts';
import { startApplyWorker } from './apply-worker.ts';
import type { ApplyOutcome, ApplyOutcomeInfo, ApplyWorker } from './apply-worker.ts';
import { APPLY_BATCH, APPLY_JOB_NAME, APPLY_QUEUE_NAME, ChangeQueue, LEGACY_APPLY_QUEUE_NAME } from './change-queue.ts';
import { MemoryDesiredStore, RedisDesiredStore } from './desired-store.ts';
import type { DesiredStore } from './desired-store.ts';
import { createRedis } from './redis.ts';
import { ScopeLeases } from './scope-lease.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const OWNER = 'q-owner';
const WE = 'workloadentries';

let server: FakeKubeApiServer;
let ns: string;
let prefix: string;
let producer: Redis;
let storeConn: Redis;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  server = new FakeKubeApiServer();
  await server.start();
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  const id = randomUUID().slice(0, 8);
  ns = `q-${id}`;
  prefix = `{vmstest-${id}}`;
  server.createNamespace(ns);
  server.reset();
  server.latencyMs = 0;
  producer = createRedis(REDIS_URL, { role: 'producer' });
  storeConn = createRedis(REDIS_URL, { role: 'worker' });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  // Every key this test made starts with its prefix.
  let cursor = '0';
  do {
    const [next, keys] = await storeConn.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await storeConn.del(...keys);
  } while (cursor !== '0');
  await closeConnection(producer);
  await closeConnection(storeConn);
});

/** Quits a connection, or drops it when it is not ready yet: a test that never used it may end first, and a connection without an offline queue cannot send QUIT before it is ready. */
async function closeConnection(connection: Redis): Promise<void> {
  if (connection.status === 'ready') await connection.quit();
  else connection.disconnect();
}

function entry(name: string, spec: Partial<WorkloadEntrySpec> = {}): WorkloadEntry {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace: ns, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: OWNER }, annotations: {} },
    spec: { address: '10.0.0.1', ports: { http: 8080 }, ...spec },
  };
}

/** Observation i, a millisecond apart. */
function at(i: number): string {
  return new Date(Date.UTC(2025, 0, 1) + i).toISOString();
}

function upsert(name: string, i: number, spec: Partial<WorkloadEntrySpec> = {}): Change {
  return { op: 'upsert', key: entryKey(ns, name), entry: entry(name, { address: `10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`, ...spec }), observedAt: at(i) };
}

function del(name: string, i: number): Change {
  return { op: 'delete', key: entryKey(ns, name), namespace: ns, name, scopeKey: '', observedAt: at(i) };
}

function live(name: string): Record<string, any> | undefined {
  return server.get(WE, ns, name) as Record<string, any> | undefined;
}

function newWriter(): Writer {
  return new Writer({ api: createKubeApi(server.kubeConfig()), ownerId: OWNER, fieldManager: 'vm-mesh-sync', ensureServiceAccounts: true });
}

function newStore(): RedisDesiredStore {
  return new RedisDesiredStore(storeConn, prefix);
}

/** Each kind of desired store, by name, made fresh. */
const STORES: Array<[string, () => DesiredStore]> = [
  ['RedisDesiredStore', (): DesiredStore => newStore()],
  ['MemoryDesiredStore', (): DesiredStore => new MemoryDesiredStore()],
];

function newQueue(store: DesiredStore, options: { attempts?: number; backoffMs?: number } = {}): ChangeQueue {
  const queue = new ChangeQueue({
    connection: producer,
    prefix,
    store,
    attempts: options.attempts ?? 5,
    backoffMs: options.backoffMs ?? 10,
    keepFailed: 100,
  });
  cleanups.push(() => queue.close());
  return queue;
}

function newWorker(
  store: DesiredStore,
  options: { concurrency?: number; lockDurationMs?: number; onResult?: (key: string, outcome: ApplyOutcome, info: ApplyOutcomeInfo) => void } = {},
): ApplyWorker {
  const handle = startApplyWorker({
    connection: REDIS_URL,
    prefix,
    store,
    writer: newWriter(),
    concurrency: options.concurrency ?? 4,
    ...(options.lockDurationMs ? { lockDurationMs: options.lockDurationMs } : {}),
    ...(options.onResult ? { onResult: options.onResult } : {}),
  });
  cleanups.push(() => handle.close());
  return handle;
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function drained(queue: ChangeQueue): Promise<boolean> {
  const c = await queue.counts();
  return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) === 0;
}

/** A deterministic shuffle (mulberry32), so a failure can be replayed. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const random = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe.each(STORES)('%s', (_name, makeStore) => {
  it('keeps the newest observation whatever the order of records', async () => {
    const store = makeStore();
    expect(await store.record(upsert('vm-1', 5))).toBe(true);
    expect(await store.record(upsert('vm-1', 3))).toBe(false);
    expect((await store.get(entryKey(ns, 'vm-1')))?.observedAt).toBe(at(5));
    expect(await store.record(del('vm-1', 7))).toBe(true);
    expect((await store.get(entryKey(ns, 'vm-1')))?.op).toBe('delete');
    expect(await store.get(entryKey(ns, 'nothing'))).toBeNull();
  });

  it('lets the later record win on equal observation times, and compares instants, not spellings', async () => {
    const store = makeStore();
    await store.record({ ...upsert('vm-1', 0, { address: '10.1.1.1' }), observedAt: '2025-01-01T00:00:00Z' });
    expect(await store.record({ ...upsert('vm-1', 0, { address: '10.2.2.2' }), observedAt: '2025-01-01T00:00:00.000Z' })).toBe(true);
    const got = await store.get(entryKey(ns, 'vm-1'));
    expect(got?.op === 'upsert' && (got.entry as WorkloadEntry).spec.address).toBe('10.2.2.2');
    // '…:00.5Z' sorts before '…:00Z' as text, but is the later instant.
    expect(await store.record({ ...upsert('vm-1', 0), observedAt: '2025-01-01T00:00:00.5Z' })).toBe(true);
    expect(await store.record({ ...upsert('vm-1', 0), observedAt: '2025-01-01T00:00:00Z' })).toBe(false);
  });

  // Changes decided by scope static:a (an upsert's entry carries it, a delete names it).
  const inScope = (change: Change): Change =>
    change.op === 'delete'
      ? { ...change, scopeKey: 'static:a' }
      : { ...change, entry: { ...change.entry, metadata: { ...change.entry.metadata, annotations: { [SCOPE_ANNOTATION]: 'static:a' } } } };

  it('a newer listing of the scope voids older deletes once listed, older upserts once planned', async () => {
    const store = makeStore();
    // Recorded before the newer listing: void from then on, so its job finds nothing to do.
    expect(await store.record(inScope(del('vm-1', 3)))).toBe(true);
    await store.confirm('static:a', at(5), 'listed');
    expect(await store.get(entryKey(ns, 'vm-1'))).toBeNull();
    expect(await store.record(inScope(del('vm-2', 4)))).toBe(false);
    // A listing that has only read its scope does not take away what an older one wanted…
    expect(await store.record(inScope(upsert('vm-3', 4)))).toBe(true);
    expect((await store.get(entryKey(ns, 'vm-3')))?.op).toBe('upsert');
    // …once its own decisions are recorded, it does.
    await store.confirm('static:a', at(5), 'planned');
    expect(await store.get(entryKey(ns, 'vm-3'))).toBeNull();
    expect(await store.record(inScope(upsert('vm-4', 4)))).toBe(false);
    // Its own changes, and newer ones, still count; so do those of other scopes.
    expect(await store.record(inScope(del('vm-5', 5)))).toBe(true);
    expect(await store.record(inScope(upsert('vm-6', 6)))).toBe(true);
    expect(await store.record(del('vm-7', 1))).toBe(true);
    // Marks never move back.
    await store.confirm('static:a', at(2), 'planned');
    expect(await store.record(inScope(upsert('vm-8', 4)))).toBe(false);
  });

  it('getMany and takeMany answer what get answers for each key, void changes included', async () => {
    const store = makeStore();
    await store.record(inScope(upsert('vm-1', 4)));
    await store.record(inScope(del('vm-2', 4)));
    await store.record(inScope(upsert('vm-3', 6)));
    await store.record(upsert('vm-4', 1));
    await store.confirm('static:a', at(5), 'planned');
    await store.confirm('static:a', at(7), 'planned', ['vm-3']);
    const keys = ['vm-1', 'vm-2', 'vm-3', 'vm-4', 'vm-none'].map((n) => entryKey(ns, n));
    const one = await Promise.all(keys.map((k) => store.get(k)));
    expect(one.map((c) => c?.observedAt ?? null)).toEqual([null, null, null, at(1), null]);
    expect(await store.getMany(keys)).toEqual(one);
    expect(await store.takeMany(keys, 'some-job')).toEqual(one);
    expect(await store.getMany([])).toEqual([]);
  });

  it('a refresh voids older changes of its own names only', async () => {
    const store = makeStore();
    await store.confirm('static:a', at(5), 'planned', ['vm-1']);
    expect(await store.record(inScope(upsert('vm-1', 4)))).toBe(false);
    expect(await store.record(inScope(del('vm-1', 4)))).toBe(false);
    expect(await store.record(inScope(upsert('vm-2', 4)))).toBe(true);
    expect(await store.record(upsert('vm-1', 4))).toBe(true);
  });
});

describe.each(STORES)('%s: recordForMany', (_name, makeStore) => {
  it('answers as recordFor does for each change in turn, in the order of the changes', async () => {
    const store = makeStore();
    // The same batch twice, under names of their own: one by one, then in one go.
    const batch = (tag: string) => [upsert(`${tag}-1`, 2), upsert(`${tag}-2`, 1), upsert(`${tag}-1`, 1), upsert(`${tag}-1`, 3), del(`${tag}-3`, 1), del(`${tag}-2`, 2)];
    const claim = { jobId: 'apply-batch', jobKeyPrefix: `${prefix}:batch-test:` };
    const oneByOne = [];
    for (const change of batch('vm-a')) oneByOne.push(await store.recordFor(change, claim));
    const together = await store.recordForMany(batch('vm-b'), claim);
    expect(together).toEqual(oneByOne);
    expect(together).toContain('superseded');
    expect((await store.get(entryKey(ns, 'vm-b-1')))?.observedAt).toBe(at(3));
    expect((await store.get(entryKey(ns, 'vm-b-2')))?.op).toBe('delete');
    expect(await store.recordForMany([], claim)).toEqual([]);
  });
});

describe('RedisDesiredStore', () => {
  it('records expire after their TTL, refreshed on each record', async () => {
    const store = new RedisDesiredStore(storeConn, prefix, { ttlMs: 60_000 });
    await store.record(upsert('vm-1', 1));
    const ttl = await storeConn.pttl(store.keyOf(entryKey(ns, 'vm-1')));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });
});

describe('claims of apply jobs', () => {
  it('RedisDesiredStore: a key stays with the job that claimed it while that job is queued and has not taken it', async () => {
    const store = newStore();
    const jobKeyPrefix = `${prefix}:claims-test:`;
    const claim = (jobId: string) => ({ jobId, jobKeyPrefix });
    expect(await store.recordFor(upsert('vm-1', 1), claim('j1'))).toBe('claimed');
    // j1 was never queued (its producer died): the next change's job takes the key over.
    expect(await store.recordFor(upsert('vm-1', 2), claim('j2'))).toBe('claimed');
    await producer.hset(`${jobKeyPrefix}j2`, 'name', 'apply');
    expect(await store.recordFor(upsert('vm-1', 3), claim('j3'))).toBe('pending');
    expect(await store.recordFor(upsert('vm-1', 0), claim('j3'))).toBe('superseded');
    // Another job's take leaves the claim; j2's lets it go.
    expect((await store.takeMany([entryKey(ns, 'vm-1')], 'j9'))[0]?.observedAt).toBe(at(3));
    expect(await store.recordFor(upsert('vm-1', 4), claim('j4'))).toBe('pending');
    expect((await store.takeMany([entryKey(ns, 'vm-1')], 'j2'))[0]?.observedAt).toBe(at(4));
    expect(await store.recordFor(upsert('vm-1', 5), claim('j5'))).toBe('claimed');
    // A claim of a job that ended (completed or failed, and kept) is taken over.
    await producer.hset(`${jobKeyPrefix}j5`, 'name', 'apply', 'finishedOn', Date.now());
    expect(await store.recordFor(upsert('vm-1', 6), claim('j6'))).toBe('claimed');
  });

  it('MemoryDesiredStore: a claim holds until its job takes the key', async () => {
    const store = new MemoryDesiredStore();
    const claim = (jobId: string) => ({ jobId, jobKeyPrefix: '' });
    expect(await store.recordFor(upsert('vm-1', 1), claim('j1'))).toBe('claimed');
    expect(await store.recordFor(upsert('vm-1', 2), claim('j2'))).toBe('pending');
    expect(await store.recordFor(upsert('vm-1', 0), claim('j2'))).toBe('superseded');
    expect((await store.takeMany([entryKey(ns, 'vm-1')], 'j1'))[0]?.observedAt).toBe(at(2));
    expect(await store.recordFor(upsert('vm-1', 3), claim('j3'))).toBe('claimed');
  });
});

describe('ScopeLeases', () => {
  it('lets one holder at a time resync a scope, keeps the lease while it works, and never frees another holder\'s', async () => {
    const leases = new ScopeLeases(storeConn, prefix, 150);
    const first = await leases.acquire('aws:a');
    expect(first).toBeDefined();
    // Renewed: still held long after its time to live.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await leases.acquire('aws:a')).toBeUndefined();
    // Another scope is not held back.
    const other = await leases.acquire('aws:b');
    expect(other).toBeDefined();
    await first!();
    const second = await leases.acquire('aws:a');
    expect(second).toBeDefined();
    // A late release of the first holder does not free the second's lease.
    await first!();
    expect(await leases.acquire('aws:a')).toBeUndefined();
    await second!();
    await other!();
  });

  it('frees the scope of a holder that died once its lease lapses', async () => {
    const key = `${prefix}:resync-lease:aws:c`;
    // A holder in a process that died: its lease is no longer renewed.
    await storeConn.set(key, 'dead-holder', 'PX', 100);
    const leases = new ScopeLeases(storeConn, prefix, 100);
    expect(await leases.acquire('aws:c')).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const taken = await leases.acquire('aws:c');
    expect(taken).toBeDefined();
    await taken!();
  });
});

describe('ChangeQueue and apply workers', () => {
  it('coalesces a burst of 50 changes to one entry into a few writes, ending at the newest', async () => {
    const store = newStore();
    const queue = newQueue(store);
    // Before any worker runs: 50 enqueues leave one waiting job.
    for (let i = 0; i < 50; i++) await queue.enqueue([upsert('vm-1', i)]);
    expect((await queue.counts()).waiting).toBe(1);
    // One job at a time: the changes that come while it writes wait in one job behind it.
    newWorker(store, { concurrency: 1 });
    await waitFor('first burst applied', async () => live('vm-1')?.metadata.annotations[OBSERVED_AT_ANNOTATION] === at(49) && (await drained(queue)));
    expect(server.writes(WE)).toBe(1);

    // While a worker is busy: its write is held until the burst is queued, so the observations
    // queued meanwhile are overtaken, whatever the machine's speed: the held write, then the newest.
    server.reset();
    let release!: () => void;
    server.faults.push({ match: { verb: ['apply', 'patch', 'update', 'create'], resource: WE }, until: new Promise<void>((r) => (release = r)), count: 1 });
    await queue.enqueue([upsert('vm-1', 50)]);
    await waitFor('the first write of the second burst held', async () => server.faults.length === 0);
    for (let i = 51; i < 100; i++) await queue.enqueue([upsert('vm-1', i)]);
    release();
    await waitFor('second burst applied', async () => live('vm-1')?.metadata.annotations[OBSERVED_AT_ANNOTATION] === at(99) && (await drained(queue)));
    expect(server.writes(WE)).toBe(2);
    const newest = upsert('vm-1', 99);
    expect(live('vm-1')?.spec.address).toBe(newest.op === 'upsert' ? (newest.entry as WorkloadEntry).spec.address : undefined);
  });

  it(`queues up to ${APPLY_BATCH} entries per job and applies every one`, async () => {
    const store = newStore();
    const queue = newQueue(store);
    const count = APPLY_BATCH * 2 + APPLY_BATCH / 2;
    const result = await queue.enqueue(Array.from({ length: count }, (_, i) => upsert(`vm-${i}`, i)));
    expect(result).toEqual({ enqueued: count, superseded: 0 });
    expect((await queue.counts()).waiting).toBe(3);
    newWorker(store);
    await waitFor('every entry created', async () => server.size(WE, ns) === count && (await drained(queue)));
    expect(server.counts.of(WE).create).toBe(count);
  });

  it('queues a change again whose key a job claimed that never came', async () => {
    const store = newStore();
    const queue = newQueue(store);
    // A producer recorded the change and died before queuing its job.
    await store.recordFor(upsert('vm-lost', 1), { jobId: 'apply-never-queued', jobKeyPrefix: queue.queue.toKey('') });
    await queue.enqueue([upsert('vm-lost', 2)]);
    expect((await queue.counts()).waiting).toBe(1);
    newWorker(store);
    await waitFor('entry created', async () => live('vm-lost')?.metadata.annotations[OBSERVED_AT_ANNOTATION] === at(2) && (await drained(queue)));
  });

  it('retries only the entries of a job that failed transiently, and keeps only those refused for good in the failed job', async () => {
    const store = newStore();
    const queue = newQueue(store, { attempts: 5, backoffMs: 10 });
    const outcomes: Array<[string, ApplyOutcome, boolean]> = [];
    const handle = startApplyWorker({
      connection: REDIS_URL,
      prefix,
      store,
      // Only `ns` is allowed: an entry elsewhere is refused before any request.
      writer: new Writer({ api: createKubeApi(server.kubeConfig()), ownerId: OWNER, fieldManager: 'vm-mesh-sync', ensureServiceAccounts: true, namespaces: [ns] }),
      concurrency: 4,
      onResult: (key, outcome, info) => outcomes.push([key, outcome, info.final]),
    });
    cleanups.push(() => handle.close());
    const elsewhere = upsert('vm-elsewhere', 1);
    const refused: Change =
      elsewhere.op === 'upsert'
        ? { ...elsewhere, key: entryKey('elsewhere', 'vm-elsewhere'), entry: { ...elsewhere.entry, metadata: { ...elsewhere.entry.metadata, namespace: 'elsewhere' } } }
        : elsewhere;
    server.faults.push({ match: { verb: 'create', resource: WE }, status: 500, count: 1 });
    await queue.enqueue([upsert('vm-a', 1), refused, upsert('vm-b', 1)]);
    await waitFor('the good entries created', async () => live('vm-a') !== undefined && live('vm-b') !== undefined && (await drained(queue)));
    expect(server.requests.filter((r) => r.verb === 'create').map((r) => r.status).sort()).toEqual([201, 201, 500]);
    const failed = await queue.queue.getFailed();
    expect(failed).toHaveLength(1);
    expect(failed[0]?.data.keys).toEqual([refused.key]);
    expect(failed[0]?.failedReason).toMatch(/^VMS_ERR_NAMESPACE_NOT_ALLOWED: /);
    // The refusal is said once, as final; the 500 as not final, then the create.
    expect(outcomes.filter(([key]) => key === refused.key).map(([, o, final]) => [o instanceof Error, final])).toEqual([[true, true]]);
    expect(outcomes.filter(([, o]) => o instanceof TransientKubeError).map(([, , final]) => final)).toEqual([false]);
  });

  it('takes the jobs of one entry that earlier versions queued on their own queue, and counts them', async () => {
    const store = newStore();
    const queue = newQueue(store);
    const change = upsert('vm-old-job', 1);
    await store.record(change);
    const legacy = new Queue(LEGACY_APPLY_QUEUE_NAME, { connection: producer, prefix });
    cleanups.push(() => legacy.close());
    await legacy.add(APPLY_JOB_NAME, { key: change.key });
    expect((await queue.counts()).waiting).toBe(1);
    newWorker(store);
    await waitFor('entry created', async () => live('vm-old-job') !== undefined && (await drained(queue)));
  });

  it('hands an entry still changing after the last pass to a new job, so a write that landed late is undone', async () => {
    const store = newStore();
    const queue = newQueue(store);
    const real = newWriter();
    let calls = 0;
    let deleted = false;
    const first = startApplyWorker({
      connection: REDIS_URL,
      prefix,
      store,
      concurrency: 1,
      maxPasses: 3,
      writer: {
        apply: async (change, context) => {
          const n = calls++;
          if (n === 2) {
            // The last pass read this upsert; before its write lands, a delete is recorded and
            // another worker applies it.
            await queue.enqueue([del('vm-k', 10)]);
            newWorker(store, { onResult: (_key, outcome) => (deleted ||= outcome === 'deleted') });
            await waitFor('the other worker deleted the entry', () => deleted);
          }
          const result = await real.apply(change, context);
          // The entry keeps changing while this job runs its passes.
          if (n < 2) await queue.enqueue([upsert('vm-k', n + 1)]);
          return result;
        },
      },
    });
    cleanups.push(() => first.close());
    await queue.enqueue([upsert('vm-k', 0)]);
    await waitFor('the late write undone', async () => calls >= 3 && deleted && live('vm-k') === undefined && (await drained(queue)));
    expect((await store.get(entryKey(ns, 'vm-k')))?.op).toBe('delete');
  });

  for (const kind of ['permanent', 'transient'] as const) {
    it(`queues the entries a closing worker did not start, at no cost of an attempt, beside a ${kind} failure on the last attempt`, async () => {
      const store = newStore();
      const queue = newQueue(store, { attempts: 1 });
      const real = newWriter();
      const first: ApplyWorker = startApplyWorker({
        connection: REDIS_URL,
        prefix,
        store,
        concurrency: 1,
        writer: {
          apply: async (change, context) => {
            if (change.key === entryKey(ns, 'vm-a')) {
              // The process is told to stop while vm-a is written, and vm-a fails.
              void first.worker.close();
              if (kind === 'permanent') throw new VmsError('VMS_ERR_NAMESPACE_NOT_ALLOWED', 'refused');
              throw new TransientKubeError('injected', { status: 500, reason: 'InternalError' });
            }
            return real.apply(change, context);
          },
        },
      });
      cleanups.push(() => first.close());
      await queue.enqueue([upsert('vm-a', 1), upsert('vm-b', 1)]);
      await waitFor('the job failed', async () => (await queue.counts()).failed === 1);
      await first.close();
      // Another replica takes over.
      newWorker(store);
      await waitFor('vm-b created', async () => live('vm-b') !== undefined && (await drained(queue)));
      const failed = await queue.queue.getFailed();
      expect(failed.map((j) => j.data.keys)).toEqual([[entryKey(ns, 'vm-a')]]);
    });
  }

  it('runs a job again however often the processes holding it died, rather than failing it', async () => {
    const store = newStore();
    const queue = newQueue(store);
    await queue.enqueue([upsert('vm-stalled', 1)]);
    // A process takes the job and dies (it never renews its lock), after the job had already been
    // left behind that way five times.
    const deadConnection = createRedis(REDIS_URL, { role: 'worker' });
    const dead = new Worker(APPLY_QUEUE_NAME, null, { connection: deadConnection, prefix, lockDuration: 200, autorun: false });
    cleanups.push(async () => {
      await dead.close(true);
      await deadConnection.quit().catch(() => {});
    });
    const job = await dead.getNextJob('dead-process');
    expect(job?.data.keys).toEqual([entryKey(ns, 'vm-stalled')]);
    await producer.hset(`${prefix}:${APPLY_QUEUE_NAME}:${job!.id}`, 'stc', 5);

    newWorker(store, { lockDurationMs: 200 });
    await waitFor('the stalled job applied', async () => live('vm-stalled') !== undefined && (await drained(queue)));
    expect((await queue.counts()).failed).toBe(0);
  });

  it('ends at the newest observation of every entry when changes arrive shuffled, with two workers of concurrency 4', async () => {
    const store = newStore();
    const queue = newQueue(store);
    const names = Array.from({ length: 12 }, (_, i) => `vm-${i}`);
    const changes: Change[] = [];
    names.forEach((name, n) => {
      for (let i = 0; i < 10; i++) {
        // Every third entry's newest observation is its removal.
        changes.push(n % 3 === 0 && i === 9 ? del(name, n * 100 + i) : upsert(name, n * 100 + i));
      }
    });
    const newest = new Map(names.map((name, n) => [name, changes[n * 10 + 9] as Change]));
    newWorker(store, { concurrency: 4 });
    newWorker(store, { concurrency: 4 });
    const order = shuffled(changes, 42);
    let superseded = 0;
    for (let i = 0; i < order.length; i += 7) {
      const result = await queue.enqueue(order.slice(i, i + 7));
      superseded += result.superseded;
    }
    expect(superseded).toBeGreaterThan(0);
    const converged = (): boolean =>
      names.every((name) => {
        const want = newest.get(name)!;
        const obj = live(name);
        return want.op === 'delete' ? obj === undefined : obj?.metadata.annotations[OBSERVED_AT_ANNOTATION] === want.observedAt;
      });
    await waitFor('every entry at its newest observation', async () => converged() && (await drained(queue)));
    for (const name of names) {
      const want = newest.get(name)!;
      if (want.op === 'upsert') expect(live(name)?.spec.address).toBe((want.entry as WorkloadEntry).spec.address);
      else expect(live(name)).toBeUndefined();
    }
    // Every superseded or coalesced change saved a write.
    expect(server.writes(WE)).toBeLessThan(changes.length);
  });

  it('fails a permanently rejected change once, keeps it, and reports the error', async () => {
    const store = newStore();
    const queue = newQueue(store, { attempts: 5 });
    const outcomes: Array<[ApplyOutcome, boolean]> = [];
    newWorker(store, { onResult: (_key, outcome, info) => outcomes.push([outcome, info.final]) });
    await queue.enqueue([upsert('vm-bad', 1, { ports: { http: 70000 } })]);
    await waitFor('job failed', async () => (await queue.counts()).failed === 1);
    const [failed] = await queue.queue.getFailed();
    expect(failed?.attemptsMade).toBe(1);
    expect(failed?.failedReason).toMatch(/^VMS_ERR_KUBE_REJECTED: .*port must be between 1-65535/);
    expect(server.counts.of(WE).create).toBe(1);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]?.[0]).toBeInstanceOf(Error);
    expect(outcomes[0]?.[1]).toBe(true);
  });

  it('retries transient 500s until the change is applied', async () => {
    const store = newStore();
    const queue = newQueue(store, { attempts: 5, backoffMs: 10 });
    const outcomes: Array<[ApplyOutcome, boolean]> = [];
    newWorker(store, { onResult: (_key, outcome, info) => outcomes.push([outcome, info.final]) });
    server.faults.push({ match: { verb: 'create', resource: WE }, status: 500, count: 2 });
    await queue.enqueue([upsert('vm-1', 1)]);
    await waitFor('entry created', async () => live('vm-1') !== undefined && (await drained(queue)));
    expect(server.counts.of(WE).create).toBe(3);
    expect((await queue.counts()).failed).toBe(0);
    expect(outcomes.map(([o, final]) => [o instanceof TransientKubeError ? 'transient' : o, final])).toEqual([
      ['transient', false],
      ['transient', false],
      ['created', true],
    ]);
  });

  it('pauses for a 429 without using up an attempt', async () => {
    const store = newStore();
    // One attempt only: had the 429 counted as a failure, the job would be failed for good.
    const queue = newQueue(store, { attempts: 1 });
    newWorker(store);
    server.faults.push({ match: { verb: 'create', resource: WE }, status: 429, retryAfterSeconds: 1, count: 1 });
    await queue.enqueue([upsert('vm-1', 1)]);
    await waitFor('entry created', async () => live('vm-1') !== undefined && (await drained(queue)));
    expect(server.requests.filter((r) => r.verb === 'create').map((r) => r.status)).toEqual([429, 201]);
    expect((await queue.counts()).failed).toBe(0);
  });

  it('close() waits for the write in flight to finish', async () => {
    const store = newStore();
    const queue = newQueue(store);
    const handle = newWorker(store);
    server.latencyMs = 150;
    await queue.enqueue([upsert('vm-1', 1)]);
    await waitFor('write in flight', () => server.requests.some((r) => r.resource === WE && r.verb !== 'get' && r.verb !== 'list'));
    await handle.close();
    expect(live('vm-1')).toBeDefined();
    const counts = await queue.counts();
    expect(counts.active).toBe(0);
    expect(counts.waiting).toBe(0);
  });
});
