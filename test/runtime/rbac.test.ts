// The ClusterRole covers exactly what the writer calls, checked by driving the real Writer, the
// runtime's readiness check and its Events through every path against the fake API server and
// comparing the (API group, resource, verb) triples the server saw with deploy/base's ClusterRole.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.ts';
import { createProviders } from '../../providers/index.ts';
import { silentLogger } from '../../services/logger.ts';
import { Metrics } from '../../services/metrics.ts';
import type { Change, WorkloadEntry, WorkloadEntrySpec } from '../../services/model.ts';
import { entryKey, INSTALLATION_LABEL, keyOfObject, MANAGED_BY_LABEL, MANAGED_BY_VALUE, type MeshServiceObject, MESH_SERVICES_SCOPE, OWNER_LABEL, SERVICE_LABEL, SOURCE_ANNOTATION } from '../../services/model.ts';
import { deriveMeshServices } from '../../services/mapping/index.ts';
import { EventRecorder } from '../../services/runtime/event-recorder.ts';
import { Runtime } from '../../services/runtime/runtime.ts';
import { createKubeApi, type KubeApi } from '../../services/writer/kube-api.ts';
import { Writer } from '../../services/writer/writer.ts';
import { type ClusterRoleRule, clusterRoleRules } from '../deploy/rbac.ts';
import { FakeKubeApiServer, type RequestRecord, type Verb } from '../fakes/kube-api-server.ts';
import { Workspace } from '../helpers/cli.ts';
import { cleanupPrefix, uniquePrefix, waitFor } from '../helpers/serve.ts';

const OWNER = 'rbac-test';
const NS = 'default';
const WE = 'workloadentries';

/** The RBAC verb a request needs: server-side apply and merge patch are both PATCH requests. */
const RBAC_VERB: Record<Verb, string> = {
  get: 'get',
  list: 'list',
  watch: 'watch',
  create: 'create',
  apply: 'patch',
  patch: 'patch',
  update: 'update',
  delete: 'delete',
  deletecollection: 'deletecollection',
};

let server: FakeKubeApiServer;
let api: KubeApi;
let writer: Writer;

beforeAll(async () => {
  server = new FakeKubeApiServer();
  await server.start();
  api = createKubeApi(server.kubeConfig(), { requestTimeoutMs: 5000 });
  writer = new Writer({ api, ownerId: OWNER, fieldManager: 'vm-mesh-sync', ensureServiceAccounts: true });
});
afterAll(async () => {
  await server.close();
});

function entry(name: string, spec: Partial<WorkloadEntrySpec> = {}): WorkloadEntry {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: {
      name,
      namespace: NS,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: OWNER },
      annotations: { [SOURCE_ANNOTATION]: `static:rbac::${name}` },
    },
    spec: { address: '10.0.0.1', ports: { http: 8080 }, labels: { app: 'web' }, ...spec },
  };
}
/** A Service, a ServiceEntry and a WorkloadGroup, as derived for one mesh service. */
function meshServiceObjects(): MeshServiceObject[] {
  const member = entry('pg', { labels: { app: 'pg', [SERVICE_LABEL]: 'pg', [INSTALLATION_LABEL]: OWNER }, ports: { postgres: 5432 } });
  const options = { ownerId: OWNER, workloadGroups: true, clusterDomain: 'cluster.local' };
  const services = deriveMeshServices([member], { ...options, kind: 'service' });
  const entries = deriveMeshServices([member], { ...options, kind: 'service-entry', workloadGroups: false });
  return [...services.services, ...entries.services, ...services.workloadGroups];
}
const at = (s: number) => `2025-01-01T00:00:${String(s).padStart(2, '0')}.000Z`;
const upsert = (e: WorkloadEntry, s: number): Change => ({ op: 'upsert', key: entryKey(NS, e.metadata.name), entry: e, observedAt: at(s) });
const del = (name: string, s: number): Change => ({ op: 'delete', key: entryKey(NS, name), namespace: NS, name, scopeKey: '', observedAt: at(s) });

/** Plural resource → API group, read from the fake server's discovery documents. */
async function resourceGroups(base: string): Promise<Map<string, string>> {
  const get = async (path: string) => (await (await fetch(`${base}${path}`)).json()) as Record<string, any>;
  const groups = new Map<string, string>();
  for (const r of (await get('/api/v1')).resources as Array<{ name: string }>) groups.set(r.name, '');
  for (const g of (await get('/apis')).groups as Array<{ name: string; versions: Array<{ groupVersion: string }> }>) {
    for (const v of g.versions) {
      for (const r of (await get(`/apis/${v.groupVersion}`)).resources as Array<{ name: string }>) groups.set(r.name, g.name);
    }
  }
  return groups;
}

/** The requests seen, as ClusterRole rows: one per (group, resource), verbs sorted, rows sorted like clusterRoleRules(). */
function asRules(requests: readonly RequestRecord[], groups: ReadonlyMap<string, string>): ClusterRoleRule[] {
  const rows = new Map<string, ClusterRoleRule>();
  for (const r of requests) {
    const apiGroup = groups.get(r.resource);
    if (apiGroup === undefined) throw new Error(`discovery does not know resource ${r.resource}`);
    const row = rows.get(`${apiGroup}/${r.resource}`) ?? { apiGroup, resource: r.resource, verbs: [] };
    row.verbs = [...new Set([...row.verbs, RBAC_VERB[r.verb]])].sort();
    rows.set(`${apiGroup}/${r.resource}`, row);
  }
  return [...rows.values()].sort((a, b) => a.apiGroup.localeCompare(b.apiGroup) || a.resource.localeCompare(b.resource));
}

describe('RBAC', () => {
  it('the ClusterRole grants every (group, resource, verb) the writer, readiness and Events use, and nothing else', async () => {
    server.reset();

    // Writes, with the result each path must give, so that a path silently not taken fails here.
    server.put({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sa-present', namespace: NS } });
    expect(await writer.apply(upsert(entry('a', { serviceAccount: 'sa-missing' }), 1))).toBe('created');
    expect(server.get('serviceaccounts', NS, 'sa-missing')).toBeDefined();
    expect(await writer.apply(upsert(entry('b', { serviceAccount: 'sa-present' }), 1))).toBe('created');
    expect(await writer.apply(upsert(entry('a', { serviceAccount: 'sa-missing', address: '10.0.0.2' }), 2))).toBe('updated');
    // Dropping a field goes through a merge patch rather than apply.
    expect(await writer.apply(upsert(entry('a', { serviceAccount: 'sa-missing', address: '10.0.0.2', ports: undefined }), 3))).toBe('updated');
    expect(await writer.apply(upsert(entry('a', { serviceAccount: 'sa-missing', address: '10.0.0.2', ports: undefined }), 4))).toBe('unchanged');
    expect(await writer.apply(upsert(entry('a', { address: '10.9.9.9' }), 1))).toBe('stale');
    server.faults.push({ match: { verb: 'apply', resource: WE }, status: 409, count: 1 });
    expect(await writer.apply(upsert(entry('a', { serviceAccount: 'sa-missing', address: '10.0.0.3', ports: undefined }), 5))).toBe('updated');
    expect(server.counts.faults).toBe(1);
    expect(await writer.apply(del('b', 6))).toBe('deleted');
    expect(await writer.apply(del('never-there', 6))).toBe('absent');

    // The objects of mesh services, of every kind the writer may write (Services or ServiceEntries
    // by config services.kind, and WorkloadGroups): create, update (merge patch), delete.
    for (const obj of meshServiceObjects()) {
      const key = keyOfObject(obj);
      const up = (o: MeshServiceObject, s: number): Change => ({ op: 'upsert', key, entry: o, observedAt: at(s) });
      expect(await writer.apply(up(obj, 1))).toBe('created');
      expect(await writer.apply(up(obj, 2))).toBe('unchanged');
      const changed = structuredClone(obj);
      changed.metadata.labels.tier = 'db';
      expect(await writer.apply(up(changed, 3))).toBe('updated');
      expect(await writer.apply({ op: 'delete', key, kind: obj.kind, namespace: NS, name: obj.metadata.name, scopeKey: MESH_SERVICES_SCOPE, observedAt: at(4) })).toBe('deleted');
    }
    const listed = await writer.listMeshServiceObjects({ kind: 'service-entry', workloadGroups: true });
    expect(listed).toEqual({ owned: [], foreign: [] });

    // Reads.
    expect((await writer.listOwned()).map((e) => e.metadata.name)).toEqual(['a']);
    expect((await writer.findOwnedByName('a')).map((e) => e.metadata.name)).toEqual(['a']);

    // The runtime's readiness check (its own owner id, so its resync leaves these entries alone).
    const ws = new Workspace();
    const prefix = uniquePrefix('rbac');
    try {
      ws.writeConfig({ ownerId: 'rbac-readiness', redis: { prefix }, resync: { interval: '1h' } });
      const config = loadConfig(ws.configFile, process.env.REDIS_URL ? { REDIS_URL: process.env.REDIS_URL } : {});
      const providers = await createProviders(config.providers, { mapping: config.mapping });
      const runtimeWriter = new Writer({ api, ownerId: config.ownerId, fieldManager: 'vm-mesh-sync', ensureServiceAccounts: true });
      const runtime = await Runtime.start({ config, providers, api, writer: runtimeWriter, metrics: new Metrics(), logger: silentLogger() });
      try {
        expect((await runtime.readiness()).checks.kubernetes).toEqual({ ok: true });
      } finally {
        await runtime.close(5000);
      }
    } finally {
      await cleanupPrefix(prefix);
      ws.remove();
    }

    // An Event about an entry that could not be written.
    const events = new EventRecorder(api, { instance: 'rbac-test' });
    events.writeFailed(`${NS}/a`, 'VMS_ERR_KUBE_REJECTED', 'the API server refused the entry');
    await waitFor(() => server.objects('events', NS).length === 1, 10_000);

    const seen = asRules(server.requests, await resourceGroups(server.url));
    // Both kinds of PATCH were sent (server-side apply and merge patch); RBAC knows them as one verb.
    expect(new Set(server.requests.filter((r) => r.resource === WE).map((r) => r.verb))).toEqual(new Set(['get', 'list', 'create', 'apply', 'patch', 'delete']));
    for (const resource of ['services', 'serviceentries', 'workloadgroups']) {
      expect(new Set(server.requests.filter((r) => r.resource === resource).map((r) => r.verb)), resource).toEqual(new Set(['get', 'list', 'create', 'patch', 'delete']));
    }
    // Every pair seen is granted, and every granted verb was seen.
    expect(seen).toEqual(clusterRoleRules());
  });
});
