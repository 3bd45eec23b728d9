// The writer against the fake API server through the real @kubernetes/client-node client.
import diagnostics from 'node:diagnostics_channel';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Fault, FakeKubeApiServer } from '../../test/fakes/kube-api-server.ts';
import { isVmsError, VmsError } from '../errors.ts';
import type { Change, WorkloadEntry, WorkloadEntrySpec } from '../model.ts';
import {
  INSTALLATION_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  MESH_SERVICES_SCOPE,
  NAME_LABEL,
  OBSERVED_AT_ANNOTATION,
  OWNER_LABEL,
  SCOPE_ANNOTATION,
  SERVICE_LABEL,
  SOURCE_ANNOTATION,
  entryKey,
  objectKey,
} from '../model.ts';
import { deriveMeshServices } from '../mapping/index.ts';
import { createKubeApi } from './kube-api.ts';
import type { KubeApi } from './kube-api.ts';
import { TransientKubeError } from './transient-kube-error.ts';
import { CHECKPOINT_EVERY, SLICE_MS } from '../slices.ts';
import { Writer } from './writer.ts';
import type { WriterOptions } from './writer.ts';
import { rejection } from '../../test/helpers/errors.ts';
import { countLoopTurns } from '../../test/helpers/loop-turns.ts';

const OWNER = 'test-owner';
const WE = 'workloadentries';
const SA = 'serviceaccounts';
const T1 = '2025-01-01T00:00:01.000Z';
const T2 = '2025-01-01T00:00:02.000Z';
const T3 = '2025-01-01T00:00:03.000Z';

let server: FakeKubeApiServer;
let api: KubeApi;
let ns: string;
let nsCounter = 0;

beforeAll(async () => {
  server = new FakeKubeApiServer();
  await server.start();
  api = createKubeApi(server.kubeConfig(), { requestTimeoutMs: 5000 });
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  // A namespace per test keeps objects apart; counters and faults start from zero.
  ns = `t${++nsCounter}`;
  server.createNamespace(ns);
  server.reset();
});

function entry(name: string, spec: Partial<WorkloadEntrySpec> = {}, namespace = ns): WorkloadEntry {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: {
      name,
      namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: OWNER },
      annotations: { [SOURCE_ANNOTATION]: `static:inv:local:${name}` },
    },
    spec: { address: '10.0.0.1', ports: { http: 8080 }, labels: { app: 'web' }, ...spec },
  };
}

function upsert(e: WorkloadEntry, observedAt: string): Change {
  return { op: 'upsert', key: entryKey(e.metadata.namespace, e.metadata.name), entry: e, observedAt };
}

function del(name: string, observedAt: string, namespace = ns): Change {
  return { op: 'delete', key: entryKey(namespace, name), namespace, name, scopeKey: '', observedAt };
}

function writer(options: Partial<WriterOptions> = {}): Writer {
  return new Writer({ api, ownerId: OWNER, fieldManager: 'vm-mesh-sync', ensureServiceAccounts: true, ...options });
}

function live(name: string, namespace = ns): Record<string, any> | undefined {
  return server.get(WE, namespace, name) as Record<string, any> | undefined;
}

/** A KubeApi that runs `hook` once, right after the n-th getEntry, to simulate a concurrent writer. */
function raceAfterGet(hook: () => void, afterCall = 1): KubeApi {
  let calls = 0;
  return {
    ...api,
    async getEntry(namespace, name) {
      const result = await api.getEntry(namespace, name);
      if (++calls === afterCall) hook();
      return result;
    },
  };
}

describe('Writer upsert', () => {
  it('creates an absent entry, marked as ours and stamped with the observation', async () => {
    const result = await writer().apply(upsert(entry('vm-1'), T1));
    expect(result).toBe('created');
    const obj = live('vm-1');
    expect(obj?.spec).toEqual({ address: '10.0.0.1', ports: { http: 8080 }, labels: { app: 'web' } });
    expect(obj?.metadata.labels).toMatchObject({ [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: OWNER });
    expect(obj?.metadata.annotations[OBSERVED_AT_ANNOTATION]).toBe(T1);
    expect(server.counts.of(WE).create).toBe(1);
  });

  it('sends no write at all when the live entry already matches (a newer observation of the same state)', async () => {
    const w = writer();
    await w.apply(upsert(entry('vm-1'), T1));
    server.reset();
    expect(await w.apply(upsert(entry('vm-1'), T2))).toBe('unchanged');
    expect(server.writes()).toBe(0);
    expect(server.counts.of(WE).get).toBe(1);
  });

  it('updates a changed entry by server-side apply under the live resourceVersion', async () => {
    const w = writer();
    await w.apply(upsert(entry('vm-1'), T1));
    server.reset();
    expect(await w.apply(upsert(entry('vm-1', { address: '10.0.0.2' }), T2))).toBe('updated');
    const obj = live('vm-1');
    expect(obj?.spec.address).toBe('10.0.0.2');
    expect(obj?.metadata.annotations[OBSERVED_AT_ANNOTATION]).toBe(T2);
    expect(server.counts.of(WE).apply).toBe(1);
    expect(server.requests.find((r) => r.verb === 'apply')?.query).toMatchObject({ fieldManager: 'vm-mesh-sync', force: 'true' });
  });

  it('removes fields the desired entry dropped, so the next resync finds nothing to do', async () => {
    const w = writer();
    await w.apply(upsert(entry('vm-1', { weight: 5, ports: { http: 8080, grpc: 9090 } }), T1));
    expect(await w.apply(upsert(entry('vm-1'), T2))).toBe('updated');
    const obj = live('vm-1');
    expect(obj?.spec.weight).toBeUndefined();
    expect(obj?.spec.ports).toEqual({ http: 8080 });
    server.reset();
    expect(await w.apply(upsert(entry('vm-1'), T3))).toBe('unchanged');
    expect(server.writes()).toBe(0);
  });

  it('takes back spec fields someone else added (the spec is ours as a whole)', async () => {
    const w = writer();
    await w.apply(upsert(entry('vm-1'), T1));
    const edited = live('vm-1')!;
    edited.spec.weight = 3;
    server.put(edited as never, { fieldManager: 'kubectl-edit' });
    expect(await w.apply(upsert(entry('vm-1'), T2))).toBe('updated');
    expect(live('vm-1')?.spec.weight).toBeUndefined();
  });

  it('does not apply an observation older than the one the entry carries', async () => {
    const w = writer();
    await w.apply(upsert(entry('vm-1', { address: '10.0.0.2' }), T2));
    server.reset();
    expect(await w.apply(upsert(entry('vm-1', { address: '10.0.0.9' }), T1))).toBe('stale');
    expect(server.writes()).toBe(0);
    expect(live('vm-1')?.spec.address).toBe('10.0.0.2');
  });

  it('refuses to touch an entry it does not own, and writes nothing', async () => {
    server.put({ ...entry('foreign'), metadata: { name: 'foreign', namespace: ns, labels: { app: 'hand-made' } } });
    server.put({ ...entry('other'), metadata: { name: 'other', namespace: ns, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: 'someone-else' } } });
    server.reset();
    const w = writer();
    const foreign = await rejection(w.apply(upsert(entry('foreign', { address: '10.9.9.9' }), T3)));
    const other = await rejection(w.apply(upsert(entry('other', { address: '10.9.9.9' }), T3)));
    expect(isVmsError(foreign, 'VMS_ERR_NOT_OWNED')).toBe(true);
    expect(isVmsError(other, 'VMS_ERR_NOT_OWNED')).toBe(true);
    expect((other as VmsError).message).toContain('someone-else');
    expect(server.writes()).toBe(0);
    expect(live('foreign')?.spec.address).toBe('10.0.0.1');
  });

  it('re-reads and applies again when the entry changed between its read and the write (409)', async () => {
    const w0 = writer();
    await w0.apply(upsert(entry('vm-1'), T1));
    // Someone else (still ours, say another replica) bumps the object right after our GET.
    const racing = raceAfterGet(() => {
      const obj = live('vm-1')!;
      obj.metadata.labels.extra = 'x';
      server.put(obj as never);
    });
    server.reset();
    const result = await writer({ api: racing }).apply(upsert(entry('vm-1', { address: '10.0.0.2' }), T2));
    expect(result).toBe('updated');
    expect(server.counts.of(WE).apply).toBe(2);
    expect(server.requests.filter((r) => r.verb === 'apply').map((r) => r.status)).toEqual([409, 200]);
    expect(live('vm-1')?.spec.address).toBe('10.0.0.2');
    expect(live('vm-1')?.metadata.labels.extra).toBe('x');
  });

  it('re-reads when the entry was created meanwhile (409 AlreadyExists) and finds nothing left to do', async () => {
    const e = entry('vm-1');
    const creatingRace = raceAfterGet(() => {
      server.put({ ...e, metadata: { ...e.metadata, annotations: { ...e.metadata.annotations, [OBSERVED_AT_ANNOTATION]: T1 } } } as never);
    });
    const result = await writer({ api: creatingRace }).apply(upsert(e, T1));
    expect(result).toBe('unchanged');
    expect(server.requests.filter((r) => r.verb === 'create').map((r) => r.status)).toEqual([409]);
  });

  it('gives up with a TransientKubeError after a bounded number of conflicts', async () => {
    const w = writer({ maxConflicts: 2 });
    await w.apply(upsert(entry('vm-1'), T1));
    server.faults.push({ match: { verb: 'apply', resource: WE }, status: 409 });
    const err = await rejection(w.apply(upsert(entry('vm-1', { address: '10.0.0.2' }), T2)));
    expect(err).toBeInstanceOf(TransientKubeError);
    expect(server.counts.of(WE).apply).toBe(3);
  });

  it('reports an object the server rejects as VMS_ERR_KUBE_REJECTED with the server reason', async () => {
    const err = await rejection(writer().apply(upsert(entry('vm-bad', { ports: { http: 70000 } }), T1)));
    expect(isVmsError(err, 'VMS_ERR_KUBE_REJECTED')).toBe(true);
    expect((err as Error).message).toContain('port must be between 1-65535');
    expect(err).not.toBeInstanceOf(TransientKubeError);
    expect(live('vm-bad')).toBeUndefined();
  });

  it('reports a missing namespace as VMS_ERR_KUBE_NAMESPACE_MISSING', async () => {
    const noSa = entry('vm-1', {}, 'nowhere');
    const err = await rejection(writer().apply(upsert(noSa, T1)));
    expect(isVmsError(err, 'VMS_ERR_KUBE_NAMESPACE_MISSING')).toBe(true);
    expect((err as Error).message).toContain('"nowhere"');
    // The same when the service account is what is created first.
    const withSa = entry('vm-2', { serviceAccount: 'db' }, 'nowhere');
    const err2 = await rejection(writer().apply(upsert(withSa, T1)));
    expect(isVmsError(err2, 'VMS_ERR_KUBE_NAMESPACE_MISSING')).toBe(true);
  });
});

describe('Writer delete', () => {
  it('deletes an owned entry', async () => {
    const w = writer();
    await w.apply(upsert(entry('vm-1'), T1));
    expect(await w.apply(del('vm-1', T2))).toBe('deleted');
    expect(live('vm-1')).toBeUndefined();
  });

  it('sends preconditions: an entry replaced after the read is not deleted blindly', async () => {
    const w = writer();
    await w.apply(upsert(entry('vm-1'), T1));
    const before = live('vm-1')!;
    const err = await rejection(api.deleteEntry(ns, 'vm-1', { resourceVersion: String(Number(before.metadata.resourceVersion) - 1), uid: before.metadata.uid }));
    expect(err).toBeInstanceOf(TransientKubeError);
    expect((err as TransientKubeError).status).toBe(409);
    const err2 = await rejection(api.deleteEntry(ns, 'vm-1', { uid: '00000000-0000-0000-0000-000000000000' }));
    expect((err2 as TransientKubeError).status).toBe(409);
    expect(live('vm-1')).toBeDefined();
  });

  it('retries after a concurrent change and deletes the new version', async () => {
    const w = writer();
    await w.apply(upsert(entry('vm-1'), T1));
    const racing = raceAfterGet(() => {
      const obj = live('vm-1')!;
      obj.metadata.labels.extra = 'x';
      server.put(obj as never);
    });
    server.reset();
    expect(await writer({ api: racing }).apply(del('vm-1', T2))).toBe('deleted');
    expect(server.requests.filter((r) => r.verb === 'delete').map((r) => r.status)).toEqual([409, 200]);
    expect(live('vm-1')).toBeUndefined();
  });

  it('refuses a foreign entry and one of another owner id, deleting nothing', async () => {
    server.put({ ...entry('foreign'), metadata: { name: 'foreign', namespace: ns, labels: {} } });
    server.put({ ...entry('other'), metadata: { name: 'other', namespace: ns, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: 'someone-else' } } });
    server.reset();
    const w = writer();
    expect(isVmsError(await rejection(w.apply(del('foreign', T3))), 'VMS_ERR_NOT_OWNED')).toBe(true);
    expect(isVmsError(await rejection(w.apply(del('other', T3))), 'VMS_ERR_NOT_OWNED')).toBe(true);
    expect(server.counts.of(WE).delete).toBe(0);
    expect(live('foreign')).toBeDefined();
    expect(live('other')).toBeDefined();
  });

  it('is done when the entry is absent, or vanishes before the DELETE (404)', async () => {
    const w = writer();
    expect(await w.apply(del('never-there', T1))).toBe('absent');
    expect(server.counts.of(WE).delete).toBe(0);
    await w.apply(upsert(entry('vm-1'), T1));
    const vanishing = raceAfterGet(() => server.remove(WE, ns, 'vm-1'));
    expect(await writer({ api: vanishing }).apply(del('vm-1', T2))).toBe('absent');
    expect(server.requests.filter((r) => r.verb === 'delete').map((r) => r.status)).toEqual([404]);
  });

  it('does not delete on an observation older than the entry', async () => {
    const w = writer();
    await w.apply(upsert(entry('vm-1'), T2));
    expect(await w.apply(del('vm-1', T1))).toBe('stale');
    expect(live('vm-1')).toBeDefined();
  });
});

describe('Writer namespaces', () => {
  it('refuses a create or update outside the allowed namespaces: no entry, no service account', async () => {
    const w = writer({ namespaces: ['default', 'team-*'] });
    const error = await rejection(w.apply(upsert(entry('vm-1', { serviceAccount: 'vm' }), T1)));
    expect(isVmsError(error, 'VMS_ERR_NAMESPACE_NOT_ALLOWED')).toBe(true);
    expect(live('vm-1')).toBeUndefined();
    expect(server.counts.writes()).toBe(0);
  });

  it('deletes its own entry in a namespace that is no longer allowed', async () => {
    await writer().apply(upsert(entry('vm-1'), T1));
    expect(await writer({ namespaces: ['default'] }).apply(del('vm-1', T2))).toBe('deleted');
    expect(live('vm-1')).toBeUndefined();
  });
});

describe('Writer.applyWithRetry', () => {
  function recordingSleep(): { sleep: (ms: number) => Promise<void>; delays: number[] } {
    const delays: number[] = [];
    return { delays, sleep: async (ms) => void delays.push(ms) };
  }

  it('waits at least what a 429 Retry-After asks for, then succeeds', async () => {
    const { sleep, delays } = recordingSleep();
    server.faults.push({ match: { verb: 'create', resource: WE }, status: 429, retryAfterSeconds: 2, count: 1 });
    const result = await writer({ sleep }).applyWithRetry(upsert(entry('vm-1'), T1), { maxAttempts: 3, baseDelayMs: 10 });
    expect(result).toBe('created');
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeGreaterThanOrEqual(2000);
    expect(server.requests.filter((r) => r.verb === 'create').map((r) => r.status)).toEqual([429, 201]);
  });

  it('retries 500s with growing backoff', async () => {
    const { sleep, delays } = recordingSleep();
    server.faults.push({ match: { verb: 'create', resource: WE }, status: 500, count: 2 });
    const result = await writer({ sleep, random: () => 0.999 }).applyWithRetry(upsert(entry('vm-1'), T1), { maxAttempts: 5, baseDelayMs: 100 });
    expect(result).toBe('created');
    expect(delays).toHaveLength(2);
    expect(delays[1]!).toBeGreaterThan(delays[0]!);
    expect(server.counts.of(WE).create).toBe(3);
  });

  it('retries dropped connections', async () => {
    const { sleep } = recordingSleep();
    server.faults.push({ match: { verb: 'create', resource: WE }, drop: true, count: 1 });
    expect(await writer({ sleep }).applyWithRetry(upsert(entry('vm-1'), T1), { maxAttempts: 3, baseDelayMs: 1 })).toBe('created');
    expect(live('vm-1')).toBeDefined();
  });

  it('gives up after maxAttempts with the transient error', async () => {
    const { sleep, delays } = recordingSleep();
    server.faults.push({ match: { verb: 'get', resource: WE }, status: 503 });
    const err = await rejection(writer({ sleep }).applyWithRetry(upsert(entry('vm-1'), T1), { maxAttempts: 3, baseDelayMs: 1 }));
    expect(err).toBeInstanceOf(TransientKubeError);
    expect(delays).toHaveLength(2);
    expect(server.counts.of(WE).get).toBe(3);
  });

  it('throws permanent errors at once', async () => {
    const { sleep, delays } = recordingSleep();
    const err = await rejection(writer({ sleep }).applyWithRetry(upsert(entry('vm-bad', { ports: { http: 0 } }), T1), { maxAttempts: 5 }));
    expect(isVmsError(err, 'VMS_ERR_KUBE_REJECTED')).toBe(true);
    expect(delays).toHaveLength(0);
    expect(server.counts.of(WE).create).toBe(1);
  });
});

describe('Writer service accounts', () => {
  it('creates a missing service account, labelled as ours', async () => {
    await writer().apply(upsert(entry('vm-1', { serviceAccount: 'db' }), T1));
    const sa = server.get(SA, ns, 'db') as Record<string, any> | undefined;
    expect(sa?.metadata.labels).toEqual({ [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: OWNER });
  });

  it('leaves an existing (unlabelled) service account exactly as it is', async () => {
    server.put({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'db', namespace: ns } });
    const before = server.get(SA, ns, 'db')!;
    server.reset();
    expect(await writer().apply(upsert(entry('vm-1', { serviceAccount: 'db' }), T1))).toBe('created');
    expect(server.writes(SA)).toBe(0);
    expect(server.get(SA, ns, 'db')).toEqual(before);
  });

  it('looks an account up once for many entries naming it', async () => {
    const w = writer();
    const changes = Array.from({ length: 40 }, (_, i) => upsert(entry(`vm-${i}`, { serviceAccount: 'shared' }), T1));
    const results = await Promise.all(changes.map((c) => w.apply(c)));
    expect(results.every((r) => r === 'created')).toBe(true);
    expect(server.counts.of(SA).get).toBe(1);
    expect(server.counts.of(SA).create).toBe(1);
    // And later changes use what is remembered.
    await w.apply(upsert(entry('vm-0', { serviceAccount: 'shared', address: '10.0.0.7' }), T2));
    expect(server.counts.of(SA).get).toBe(1);
  });

  it('a cluster that lost its accounts gets them back with its entries, whatever the cache says', async () => {
    let now = 0;
    const w = writer({ now: () => now });
    await w.apply(upsert(entry('vm-1', { serviceAccount: 'db' }), T1));
    expect(server.get(SA, ns, 'db')).toBeDefined();
    // The cluster loses the entry and the account; the cache still says the account is there.
    server.remove(WE, ns, 'vm-1');
    server.remove(SA, ns, 'db');
    now = 60_000;
    expect(await w.apply(upsert(entry('vm-1', { serviceAccount: 'db' }), T2))).toBe('created');
    expect(server.get(SA, ns, 'db')).toBeDefined();
    // An update of an entry that is there trusts the cache: no lookup.
    server.counts.reset();
    now = 120_000;
    await w.apply(upsert(entry('vm-1', { serviceAccount: 'db', address: '10.0.0.9' }), T3));
    expect(server.counts.of(SA).get).toBe(0);
  });

  it('does nothing about service accounts when told not to', async () => {
    await writer({ ensureServiceAccounts: false }).apply(upsert(entry('vm-1', { serviceAccount: 'db' }), T1));
    expect(server.get(SA, ns, 'db')).toBeUndefined();
    expect(server.counts.of(SA).get).toBe(0);
  });
});

describe('Writer.listOwned', () => {
  it('lists only this owner id’s entries, page by page', async () => {
    const w = writer({ pageSize: 3 });
    for (let i = 0; i < 7; i++) await w.apply(upsert(entry(`vm-${i}`), T1));
    server.put({ ...entry('foreign'), metadata: { name: 'foreign', namespace: ns, labels: {} } });
    server.put({ ...entry('other'), metadata: { name: 'other', namespace: ns, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: 'someone-else' } } });
    server.reset();
    const owned = (await w.listOwned()).filter((e) => e.metadata.namespace === ns);
    expect(owned.map((e) => e.metadata.name).sort()).toEqual(['vm-0', 'vm-1', 'vm-2', 'vm-3', 'vm-4', 'vm-5', 'vm-6']);
    expect(owned[0]?.metadata.resourceVersion).toBeTruthy();
    expect(server.counts.of(WE).list).toBeGreaterThanOrEqual(3);
    expect(server.requests.filter((r) => r.verb === 'list').every((r) => r.query.limit === '3')).toBe(true);
  });

  it('finds this owner’s entries of one name in every namespace', async () => {
    const w = writer();
    const other = `${ns}-b`;
    server.createNamespace(other);
    await w.apply(upsert(entry('vm-x'), T1));
    await w.apply(upsert(entry('vm-x', {}, other), T1));
    await w.apply(upsert(entry('vm-y'), T1));
    server.put({ ...entry('vm-x'), metadata: { name: 'vm-x', namespace: 'default', labels: {} } });
    const found = await w.findOwnedByName('vm-x');
    expect(found.map((e) => `${e.metadata.namespace}/${e.metadata.name}`).sort()).toEqual([`${ns}/vm-x`, `${other}/vm-x`].sort());
  });

  it('finds the entries of many names in every namespace by their name label, 100 names a request, and compares the names itself', async () => {
    const w = writer();
    const other = `${ns}-c`;
    server.createNamespace(other);
    const named = (name: string, namespace: string, label = name): WorkloadEntry => {
      const e = entry(name, {}, namespace);
      return { ...e, metadata: { ...e.metadata, labels: { ...e.metadata.labels, [NAME_LABEL]: label } } };
    };
    const names = Array.from({ length: 150 }, (_, i) => `n-${i}`);
    for (const [i, name] of names.entries()) await w.apply(upsert(named(name, i % 3 === 0 ? other : ns), T1));
    // Another installation's entry of a wanted name is found too: the planner makes it a conflict.
    server.put({ ...named('n-1', 'default'), metadata: { ...named('n-1', 'default').metadata, labels: { [NAME_LABEL]: 'n-1', [OWNER_LABEL]: 'someone-else' } } });
    // A label that names a wanted entry on an object of another name is not that entry.
    await w.apply(upsert(named('imposter', ns, 'n-2'), T1));
    await w.apply(upsert(named('n-999', ns), T1));
    server.reset();
    const found = await w.findByNames([...names, 'absent']);
    const keys = found.map((e) => `${e.metadata.namespace}/${e.metadata.name}`).sort();
    expect(keys).toEqual([...names.map((name, i) => `${i % 3 === 0 ? other : ns}/${name}`), 'default/n-1'].sort());
    const lists = server.requests.filter((r) => r.verb === 'list');
    expect(lists).toHaveLength(2);
    expect(lists.every((r) => r.query.labelSelector?.startsWith(`${NAME_LABEL} in (`))).toBe(true);
  });

  it('asks a failed page again, not the whole listing', async () => {
    const w = writer({ pageSize: 2, listRetry: { maxAttempts: 3, baseDelayMs: 1 }, sleep: async () => {} });
    for (let i = 0; i < 5; i++) await w.apply(upsert(entry(`vm-${i}`), T1));
    server.reset();
    // The first page passes (a fault that only delays), the second fails twice (429, then a
    // dropped connection) before it is answered.
    server.faults.push({ match: { verb: 'list', resource: WE }, delayMs: 1, count: 1 });
    server.faults.push({ match: { verb: 'list', resource: WE }, status: 429, retryAfterSeconds: 0, count: 1 });
    server.faults.push({ match: { verb: 'list', resource: WE }, drop: true, count: 1 });
    const owned = (await w.listOwned()).filter((e) => e.metadata.namespace === ns);
    expect(owned.map((e) => e.metadata.name).sort()).toEqual(['vm-0', 'vm-1', 'vm-2', 'vm-3', 'vm-4']);
    const listed = server.requests.filter((r) => r.verb === 'list');
    // The second page was asked three times with the same continue token; the first page once.
    expect(listed.slice(0, 4).map((r) => r.status)).toEqual([200, 429, 0, 200]);
    expect(new Set(listed.slice(1, 4).map((r) => r.query.continue)).size).toBe(1);
    expect(listed[1]!.query.continue).toBeTruthy();
    expect(listed.filter((r) => r.query.continue === undefined)).toHaveLength(1);
    expect(listed.filter((r) => r.query.continue === undefined)).toHaveLength(1);
  });

  it('has sent the request for the next page when it reads the entries of the one that came, and keeps them in order', async () => {
    const w = writer({ pageSize: 2 });
    for (let i = 0; i < 5; i++) await w.apply(upsert(entry(`vm-${i}`), T1));
    // Requests as undici writes them to the socket (its diagnostics channel).
    const sent: string[] = [];
    const onSend = (message: unknown) => {
      const { request } = message as { request: { method: string; path: string } };
      if (request.method === 'GET' && request.path.includes('/workloadentries?')) sent.push(request.path);
    };
    diagnostics.subscribe('undici:client:sendHeaders', onSend);
    try {
      // For each entry read: how many list requests had been sent by then.
      const seen: Array<{ name: string; sent: number }> = [];
      const owned = await w.listOwned((e) => {
        seen.push({ name: e.metadata.name, sent: sent.length });
        return e;
      });
      expect(owned.filter((e) => e.metadata.namespace === ns).map((e) => e.metadata.name)).toEqual(['vm-0', 'vm-1', 'vm-2', 'vm-3', 'vm-4']);
      expect(owned.map((e) => e.metadata.name)).toEqual(seen.map((s) => s.name));
      // Page k's entries (two a page) are read once page k+1 has been sent for; the last page's
      // entries once no more are to come.
      const pages = sent.length;
      expect(pages).toBe(Math.ceil(seen.length / 2));
      expect(seen.map((s) => s.sent)).toEqual(seen.map((_, i) => Math.min(Math.floor(i / 2) + 2, pages)));
    } finally {
      diagnostics.unsubscribe('undici:client:sendHeaders', onSend);
    }
  });

  it('reads a page of many entries in slices, the event loop running between them, and loses none', async () => {
    const n = 1300;
    for (let i = 0; i < n; i++) server.put(entry(`vm-${String(i).padStart(4, '0')}`) as unknown as Parameters<FakeKubeApiServer['put']>[0]);
    const w = writer({ pageSize: 1000 });
    // Turns of the event loop, counted while the listing runs.
    const loop = countLoopTurns();
    // Every entry read, in order (other tests' namespaces too: the listing is cluster-wide).
    const seen: Array<{ key: string; turn: number; kept: boolean }> = [];
    const read = { entries: 0 };
    try {
      const owned = await w.listOwned((e) => {
        const at = seen.length + 1;
        // A slice that has run for longer than its share gives the loop back at the next checkpoint.
        if (at % CHECKPOINT_EVERY === 1) for (const until = performance.now() + SLICE_MS + 1; performance.now() < until; );
        // Every third entry is left out, the others kept as read.
        seen.push({ key: `${e.metadata.namespace}/${e.metadata.name}`, turn: loop.turns, kept: at % 3 !== 0 });
        return at % 3 === 0 ? undefined : e;
      }, read);
      const mine = seen.filter((s) => s.key.startsWith(`${ns}/`));
      expect(mine.map((s) => s.key)).toEqual(Array.from({ length: n }, (_, i) => `${ns}/vm-${String(i).padStart(4, '0')}`));
      expect(owned.map((e) => `${e.metadata.namespace}/${e.metadata.name}`)).toEqual(seen.filter((s) => s.kept).map((s) => s.key));
      expect(read.entries).toBe(seen.length);
    } finally {
      loop.stop();
    }
    // Within the first page (1000 entries), the loop turned between one slice and the next.
    const firstPage = seen.slice(0, 1000);
    const slices = new Set(firstPage.map((s) => s.turn));
    expect(slices.size).toBeGreaterThanOrEqual(4);
  });

  it('asks a page cut off halfway again, and counts its entries once', async () => {
    const w = writer({ pageSize: 3, listRetry: { maxAttempts: 3, baseDelayMs: 1 }, sleep: async () => {} });
    for (let i = 0; i < 7; i++) await w.apply(upsert(entry(`vm-${i}`), T1));
    server.reset();
    // The first page passes; the second is cut after its first entry has come whole.
    const cut: Fault = { match: { verb: 'list', resource: WE }, cutAfterBytes: 1500, count: 1 };
    server.faults.push({ match: { verb: 'list', resource: WE }, delayMs: 1, count: 1 });
    server.faults.push(cut);
    const all = await w.listOwned();
    const keys = all.map((e) => `${e.metadata.namespace}/${e.metadata.name}`);
    expect(new Set(keys).size).toBe(keys.length);
    const owned = all.filter((e) => e.metadata.namespace === ns);
    expect(owned.map((e) => e.metadata.name).sort()).toEqual(['vm-0', 'vm-1', 'vm-2', 'vm-3', 'vm-4', 'vm-5', 'vm-6']);
    expect(cut.fired).toBe(1);
    // The second page was asked twice with the same continue token.
    const listed = server.requests.filter((r) => r.verb === 'list');
    expect(listed[1]!.query.continue).toBeTruthy();
    expect(listed[2]!.query.continue).toBe(listed[1]!.query.continue);
  });

  it('gives up on a page after the retries, with the server’s reason', async () => {
    const w = writer({ pageSize: 2, listRetry: { maxAttempts: 2, baseDelayMs: 1 }, sleep: async () => {} });
    for (let i = 0; i < 3; i++) await w.apply(upsert(entry(`vm-${i}`), T1));
    server.reset();
    server.faults.push({ match: { verb: 'list', resource: WE }, status: 500 });
    await expect(w.listOwned()).rejects.toThrow(/500/);
    expect(server.requests.filter((r) => r.verb === 'list')).toHaveLength(2);
  });

  it('starts over when the server says the listing expired (410)', async () => {
    const w = writer({ pageSize: 2 });
    for (let i = 0; i < 5; i++) await w.apply(upsert(entry(`vm-${i}`), T1));
    server.reset();
    server.faults.push({ match: { verb: 'list', resource: WE }, status: 410, count: 1 });
    const owned = (await w.listOwned()).filter((e) => e.metadata.namespace === ns);
    expect(owned).toHaveLength(5);
    expect(server.requests.filter((r) => r.verb === 'list')[0]?.status).toBe(410);
  });

  it('starts over, keeping nothing of the pages read, when a later page is expired (410)', async () => {
    const w = writer({ pageSize: 2 });
    for (let i = 0; i < 5; i++) await w.apply(upsert(entry(`vm-${i}`), T1));
    server.reset();
    // The first page passes (a fault that only delays), the second answers 410.
    server.faults.push({ match: { verb: 'list', resource: WE }, delayMs: 1, count: 1 });
    server.faults.push({ match: { verb: 'list', resource: WE }, status: 410, count: 1 });
    const read = { entries: 0 };
    let seen = 0;
    const all = await w.listOwned((e) => {
      seen++;
      return e;
    }, read);
    const owned = all.filter((e) => e.metadata.namespace === ns);
    expect(owned.map((e) => e.metadata.name)).toEqual(['vm-0', 'vm-1', 'vm-2', 'vm-3', 'vm-4']);
    // `keep` saw the first page twice; what was read counts the attempt that got through.
    expect(seen).toBe(all.length + 2);
    expect(read.entries).toBe(all.length);
    const listed = server.requests.filter((r) => r.verb === 'list');
    expect(listed.slice(0, 2).map((r) => r.status)).toEqual([200, 410]);
    expect(listed[1]!.query.continue).toBeTruthy();
    expect(listed[2]!.query.continue).toBeUndefined();
    expect(listed.filter((r) => r.query.continue === undefined)).toHaveLength(2);
  });
});

describe('creates the plan expects', () => {
  it('cost one request when the entry is absent', async () => {
    const w = writer({ ensureServiceAccounts: false });
    const change = { ...upsert(entry('fresh'), T1), expectAbsent: true };
    expect(await w.apply(change)).toBe('created');
    expect(server.counts.total('get', WE)).toBe(0);
    expect(server.counts.total('create', WE)).toBe(1);
    expect(live('fresh')?.spec.address).toBe('10.0.0.1');
  });

  it('fall back to reading when the entry exists after all, and keep the newer observation', async () => {
    const w = writer({ ensureServiceAccounts: false });
    await w.apply(upsert(entry('raced', { address: '10.0.0.2' }), T2));
    const older = { ...upsert(entry('raced', { address: '10.0.0.9' }), T1), expectAbsent: true };
    expect(await w.apply(older)).toBe('stale');
    expect(live('raced')?.spec.address).toBe('10.0.0.2');
    const newer = { ...upsert(entry('raced', { address: '10.0.0.3' }), T3), expectAbsent: true };
    expect(await w.apply(newer)).toBe('updated');
    expect(live('raced')?.spec.address).toBe('10.0.0.3');
  });
});

describe('deleting a mesh service\'s object', () => {
  // One entry of scope static:a names service pg, written at T1, and its Service is ours. A
  // delete of the Service at T2 must not remove it while the entry still calls for it, unless the
  // entry itself is on its way out: its newest recorded change is a delete that will remove it.
  async function setUp(w: Writer): Promise<Change> {
    const e = entry('pg-1', { labels: { app: 'pg', [SERVICE_LABEL]: 'pg', [INSTALLATION_LABEL]: OWNER } });
    e.metadata.annotations[SCOPE_ANNOTATION] = 'static:a';
    expect(await w.apply(upsert(e, T1))).toBe('created');
    const svc = deriveMeshServices([e], { ownerId: OWNER, kind: 'service', workloadGroups: false, clusterDomain: 'cluster.local' }).services[0]!;
    expect(await w.apply({ op: 'upsert', key: objectKey('Service', ns, 'pg'), entry: svc, observedAt: T1 })).toBe('created');
    return { op: 'delete', kind: 'Service', key: objectKey('Service', ns, 'pg'), namespace: ns, name: 'pg', scopeKey: MESH_SERVICES_SCOPE, observedAt: T2 };
  }
  const entryDelete = (scopeKey: string, observedAt: string): Change => ({ op: 'delete', key: entryKey(ns, 'pg-1'), namespace: ns, name: 'pg-1', scopeKey, observedAt });

  it.each([
    { pending: 'nothing', next: () => null, result: 'stale' },
    { pending: 'a delete of its scope, newer than the entry', next: () => entryDelete('static:a', T2), result: 'deleted' },
    { pending: 'a delete of the instant the entry was written from', next: () => entryDelete('static:a', T1), result: 'stale' },
    { pending: 'a delete decided by another scope', next: () => entryDelete('static:b', T2), result: 'stale' },
    { pending: 'an upsert', next: () => upsert(entry('pg-1'), T2), result: 'stale' },
  ])('with $pending pending for the entry: $result', async ({ next, result }) => {
    const w = writer({ ensureServiceAccounts: false });
    const change = await setUp(w);
    const asked: string[] = [];
    const pending = async (key: string) => {
      asked.push(key);
      return key === entryKey(ns, 'pg-1') ? next() : null;
    };
    expect(await w.apply(change, { pending })).toBe(result);
    expect(asked).toEqual([entryKey(ns, 'pg-1')]);
    expect(server.get('services', ns, 'pg') === undefined).toBe(result === 'deleted');
    expect(live('pg-1')).toBeDefined();
  });

  it('without a pending lookup, an entry naming the service keeps it', async () => {
    const w = writer({ ensureServiceAccounts: false });
    const change = await setUp(w);
    expect(await w.apply(change)).toBe('stale');
    expect(server.get('services', ns, 'pg')).toBeDefined();
  });
});

describe('connections', () => {
  it('the client reuses its connections instead of opening one per request', async () => {
    const own = createKubeApi(server.kubeConfig(), { requestTimeoutMs: 5000 });
    const before = server.connections;
    for (let i = 0; i < 30; i++) await own.getEntry(ns, `absent-${i}`);
    expect(server.connections - before).toBeLessThanOrEqual(2);
  });
});
