import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FakeKubeApiServer, WORKLOADENTRY_CRD, type Fault, type KubeObject } from './kube-api-server.ts';
import { StructuralSchema, type SchemaProps } from './kube/schema.ts';

const run = promisify(execFile);
const GROUP = 'networking.istio.io';
const KUBECTL = '/usr/bin/kubectl';

interface Failure {
  code: number;
  body: Record<string, any>;
  headers: Record<string, string>;
}

/** The ApiException of a request that must fail, with its Status body parsed. */
async function rejection(p: Promise<unknown>): Promise<Failure> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ApiException) {
      const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
      return { code: e.code, body, headers: e.headers };
    }
    throw e;
  }
  throw new Error('expected the request to fail');
}

function entry(name: string, spec: Record<string, unknown>, labels: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  return { apiVersion: `${GROUP}/v1`, kind: 'WorkloadEntry', metadata: { name, labels, ...extra }, spec };
}

let server: FakeKubeApiServer;
let kc: KubeConfig;
let custom: CustomObjectsApi;
let core: CoreV1Api;
let nsSeq = 0;

function newNamespace(): string {
  const name = `t${++nsSeq}`;
  server.createNamespace(name);
  return name;
}

function apply(namespace: string, body: ReturnType<typeof entry>, opts: { manager?: string; force?: boolean; version?: string } = {}) {
  return custom.patchNamespacedCustomObject(
    {
      group: GROUP,
      version: opts.version ?? 'v1',
      namespace,
      plural: 'workloadentries',
      name: body.metadata.name,
      body,
      fieldManager: opts.manager ?? 'vm-mesh-sync',
      force: opts.force ?? true,
    },
    setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
  ) as Promise<KubeObject>;
}

function getEntry(namespace: string, name: string) {
  return custom.getNamespacedCustomObject({ group: GROUP, version: 'v1', namespace, plural: 'workloadentries', name }) as Promise<KubeObject>;
}

function listEntries(args: { namespace?: string; labelSelector?: string; limit?: number; _continue?: string }) {
  const { namespace, ...rest } = args;
  const p = namespace
    ? custom.listNamespacedCustomObject({ group: GROUP, version: 'v1', namespace, plural: 'workloadentries', ...rest })
    : custom.listClusterCustomObject({ group: GROUP, version: 'v1', plural: 'workloadentries', ...rest });
  return p as Promise<{ items: KubeObject[]; metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number } }>;
}

function rvOf(o: KubeObject): number {
  return Number(o.metadata.resourceVersion);
}

beforeAll(async () => {
  server = new FakeKubeApiServer();
  await server.start();
  kc = server.kubeConfig();
  custom = kc.makeApiClient(CustomObjectsApi);
  core = kc.makeApiClient(CoreV1Api);
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  server.reset();
});

describe('server-side apply', () => {
  it('creates, then a repeated apply changes nothing and keeps resourceVersion and generation', async () => {
    const ns = newNamespace();
    const body = entry('vm-1', { address: '10.0.0.1', ports: { http: 8080 } }, { app: 'web' });
    const created = await apply(ns, body);
    expect(created.metadata.generation).toBe(1);
    expect(created.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata.managedFields).toEqual([
      expect.objectContaining({ manager: 'vm-mesh-sync', operation: 'Apply', fieldsType: 'FieldsV1' }),
    ]);
    const globalRv = server.resourceVersion;

    const again = await apply(ns, body);
    expect(again.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
    expect(again.metadata.generation).toBe(1);
    expect(server.resourceVersion).toBe(globalRv);
    expect(server.counts.apply).toBe(2);
    expect(server.counts.noops).toBe(1);
    expect(server.counts.changes).toBe(1);
    expect(server.writes()).toBe(2);
    expect(server.counts.of('workloadentries').apply).toBe(2);
  });

  it('bumps resourceVersion and generation on a spec change, and only resourceVersion on a label change', async () => {
    const ns = newNamespace();
    const first = await apply(ns, entry('vm-1', { address: '10.0.0.1' }, { app: 'web' }));
    const specChanged = await apply(ns, entry('vm-1', { address: '10.0.0.2' }, { app: 'web' }));
    expect(rvOf(specChanged)).toBeGreaterThan(rvOf(first));
    expect(specChanged.metadata.generation).toBe(2);
    expect(specChanged.spec).toEqual({ address: '10.0.0.2' });

    const labelChanged = await apply(ns, entry('vm-1', { address: '10.0.0.2' }, { app: 'api' }));
    expect(rvOf(labelChanged)).toBeGreaterThan(rvOf(specChanged));
    expect(labelChanged.metadata.generation).toBe(2);
    expect(labelChanged.metadata.labels).toEqual({ app: 'api' });
  });

  it('removes fields the manager stops applying', async () => {
    const ns = newNamespace();
    await apply(ns, entry('vm-1', { address: '10.0.0.1', ports: { http: 80, grpc: 9090 }, weight: 3 }, { a: '1', b: '2' }));
    const after = await apply(ns, entry('vm-1', { address: '10.0.0.1', ports: { http: 80 } }, { a: '1' }));
    expect(after.spec).toEqual({ address: '10.0.0.1', ports: { http: 80 } });
    expect(after.metadata.labels).toEqual({ a: '1' });
  });

  it('answers 409 Conflict for a stale resourceVersion in the applied object', async () => {
    const ns = newNamespace();
    const created = await apply(ns, entry('vm-1', { address: '10.0.0.1' }));
    await apply(ns, entry('vm-1', { address: '10.0.0.2' }));
    const stale = entry('vm-1', { address: '10.0.0.3' }, {}, { resourceVersion: created.metadata.resourceVersion });
    const f = await rejection(apply(ns, stale));
    expect(f.code).toBe(409);
    expect(f.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'Operation cannot be fulfilled on workloadentries.networking.istio.io "vm-1": the object has been modified; please apply your changes to the latest version and try again',
      reason: 'Conflict',
      details: { name: 'vm-1', group: GROUP, kind: 'workloadentries' },
      code: 409,
    });
    expect((await getEntry(ns, 'vm-1')).spec).toEqual({ address: '10.0.0.2' });

    const live = await getEntry(ns, 'vm-1');
    const fresh = entry('vm-1', { address: '10.0.0.3' }, {}, { resourceVersion: live.metadata.resourceVersion });
    expect((await apply(ns, fresh)).spec).toEqual({ address: '10.0.0.3' });
  });

  it('reports field manager conflicts unless forced, and treats seeded fields as before-first-apply', async () => {
    const ns = newNamespace();
    server.put(entry('vm-1', { address: '10.9.9.9', network: 'n1' }, { owner: 'someone-else' }, { namespace: ns }) as KubeObject);
    const f = await rejection(apply(ns, entry('vm-1', { address: '10.0.0.1', network: 'n1' }), { force: false }));
    expect(f.code).toBe(409);
    expect(f.body.reason).toBe('Conflict');
    expect(f.body.message).toBe(
      'Apply failed with 1 conflict: conflict with "before-first-apply" using networking.istio.io/v1: .spec.address',
    );
    expect(f.body.details.causes).toEqual([
      { reason: 'FieldManagerConflict', message: 'conflict with "before-first-apply" using networking.istio.io/v1', field: '.spec.address' },
    ]);
    const forced = await apply(ns, entry('vm-1', { address: '10.0.0.1', network: 'n1' }), { force: true });
    expect(forced.spec).toEqual({ address: '10.0.0.1', network: 'n1' });
    // Fields owned by the other manager stay.
    expect(forced.metadata.labels).toEqual({ owner: 'someone-else' });
  });

  it('creates through any served version and prunes unknown spec fields instead of rejecting them', async () => {
    const ns = newNamespace();
    const body = entry('vm-1', { address: '10.0.0.1', notAField: 'x' });
    body.apiVersion = `${GROUP}/v1beta1`;
    const created = await apply(ns, body, { version: 'v1beta1' });
    expect(created.apiVersion).toBe(`${GROUP}/v1beta1`);
    expect(created.spec).toEqual({ address: '10.0.0.1' });
    expect(server.get('workloadentries', ns, 'vm-1')?.apiVersion).toBe(`${GROUP}/v1`);
    expect(server.requests.at(-1)?.query).toMatchObject({ fieldManager: 'vm-mesh-sync', force: 'true' });
  });

  it('warns about pruned fields, refuses them under Strict, and stores nothing on dry run', async () => {
    const ns = newNamespace();
    const url = `${server.url}/apis/${GROUP}/v1/namespaces/${ns}/workloadentries/vm-1`;
    const send = (query: string) =>
      fetch(`${url}?fieldManager=m&${query}`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/apply-patch+yaml' },
        body: JSON.stringify(entry('vm-1', { address: '10.0.0.1', extra: 1 })),
      });
    const strict = await send('fieldValidation=Strict');
    expect(strict.status).toBe(400);
    expect(((await strict.json()) as { message: string }).message).toBe('strict decoding error: unknown field "spec.extra"');
    const dry = await send('dryRun=All');
    expect(dry.status).toBe(201);
    expect(dry.headers.get('warning')).toBe(String.raw`299 - "unknown field \"spec.extra\""`);
    expect(server.get('workloadentries', ns, 'vm-1')).toBeUndefined();
    const real = await send('fieldValidation=Ignore');
    expect(real.status).toBe(201);
    expect(real.headers.get('warning')).toBeNull();
    expect(server.get('workloadentries', ns, 'vm-1')?.spec).toEqual({ address: '10.0.0.1' });
  });

  it('refuses an apply without a field manager, as the real server does', async () => {
    const ns = newNamespace();
    const f = await rejection(
      custom.patchNamespacedCustomObject(
        { group: GROUP, version: 'v1', namespace: ns, plural: 'workloadentries', name: 'vm-1', body: entry('vm-1', { address: '10.0.0.1' }) },
        setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
      ),
    );
    expect(f.code).toBe(422);
    expect(f.body.message).toBe('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
  });
});

describe('errors as the real server words them', () => {
  it('404 for a missing object, with the exact Status body', async () => {
    const ns = newNamespace();
    const f = await rejection(getEntry(ns, 'nope'));
    expect(f.code).toBe(404);
    expect(f.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'workloadentries.networking.istio.io "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', group: GROUP, kind: 'workloadentries' },
      code: 404,
    });
  });

  it('404 namespaces "x" not found when writing into a missing namespace', async () => {
    const expected = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'namespaces "missing-ns" not found',
      reason: 'NotFound',
      details: { name: 'missing-ns', kind: 'namespaces' },
      code: 404,
    };
    const viaApply = await rejection(apply('missing-ns', entry('vm-1', { address: '10.0.0.1' })));
    expect(viaApply.code).toBe(404);
    expect(viaApply.body).toEqual(expected);
    const viaCreate = await rejection(
      custom.createNamespacedCustomObject({
        group: GROUP,
        version: 'v1',
        namespace: 'missing-ns',
        plural: 'workloadentries',
        body: entry('vm-1', { address: '10.0.0.1' }),
      }),
    );
    expect(viaCreate.body).toEqual(expected);
    expect(server.size('workloadentries')).toBe(server.objects('workloadentries').length);
    expect(server.get('workloadentries', 'missing-ns', 'vm-1')).toBeUndefined();
  });

  it('409 AlreadyExists on a second create', async () => {
    const ns = newNamespace();
    const create = () =>
      custom.createNamespacedCustomObject({ group: GROUP, version: 'v1', namespace: ns, plural: 'workloadentries', body: entry('vm-1', { address: '10.0.0.1' }) });
    await create();
    const f = await rejection(create());
    expect(f.code).toBe(409);
    expect(f.body.reason).toBe('AlreadyExists');
    expect(f.body.message).toBe('workloadentries.networking.istio.io "vm-1" already exists');
  });

  it('delete: 409 on a precondition mismatch, then deletes with the right one, then 404', async () => {
    const ns = newNamespace();
    const created = await apply(ns, entry('vm-1', { address: '10.0.0.1' }));
    const del = (body?: object) =>
      custom.deleteNamespacedCustomObject({ group: GROUP, version: 'v1', namespace: ns, plural: 'workloadentries', name: 'vm-1', body });
    const wrongRv = await rejection(del({ preconditions: { resourceVersion: '1' } }));
    expect(wrongRv.code).toBe(409);
    expect(wrongRv.body.reason).toBe('Conflict');
    expect(wrongRv.body.message).toBe(
      `Operation cannot be fulfilled on workloadentries.networking.istio.io "vm-1": the object has been modified; please apply your changes to the latest version and try again`,
    );
    const wrongUid = await rejection(del({ preconditions: { uid: 'not-the-uid' } }));
    expect(wrongUid.code).toBe(409);
    expect(wrongUid.body.message).toBe(
      `Operation cannot be fulfilled on workloadentries.networking.istio.io "vm-1": Precondition failed: UID in precondition: not-the-uid, UID in object meta: ${created.metadata.uid}`,
    );
    expect(server.get('workloadentries', ns, 'vm-1')).toBeDefined();

    const status = (await del({ preconditions: { uid: created.metadata.uid, resourceVersion: created.metadata.resourceVersion } })) as Record<string, any>;
    expect(status).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'vm-1', kind: 'workloadentries' } });
    expect(server.get('workloadentries', ns, 'vm-1')).toBeUndefined();
    expect(server.resourceVersion).toBeGreaterThan(rvOf(created));
    const gone = await rejection(del());
    expect(gone.code).toBe(404);
    expect(server.counts.delete).toBe(4);
    expect(server.writes()).toBe(5);
  });

  it('keeps an object with finalizers until the last finalizer goes', async () => {
    const ns = newNamespace();
    await apply(ns, entry('vm-1', { address: '10.0.0.1' }, {}, { finalizers: ['example.com/hold'] }));
    await custom.deleteNamespacedCustomObject({ group: GROUP, version: 'v1', namespace: ns, plural: 'workloadentries', name: 'vm-1' });
    const held = server.get('workloadentries', ns, 'vm-1');
    expect(held?.metadata.deletionTimestamp).toEqual(expect.any(String));
    await custom.patchNamespacedCustomObject(
      { group: GROUP, version: 'v1', namespace: ns, plural: 'workloadentries', name: 'vm-1', body: { metadata: { finalizers: null } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(server.get('workloadentries', ns, 'vm-1')).toBeUndefined();
  });
});

describe('validation against the Istio CRD', () => {
  const cases: Array<{ what: string; body: ReturnType<typeof entry>; field: string; message: string }> = [
    { what: 'port 0', body: entry('vm-1', { address: '10.0.0.1', ports: { http: 0 } }), field: 'spec.ports[http]', message: 'Invalid value: "integer": port must be between 1-65535' },
    { what: 'port 70000', body: entry('vm-1', { address: '10.0.0.1', ports: { http: 70000 } }), field: 'spec.ports[http]', message: 'Invalid value: "integer": port must be between 1-65535' },
    { what: 'a bad port name', body: entry('vm-1', { address: '10.0.0.1', ports: { 'bad_name': 80 } }), field: 'spec.ports', message: 'Invalid value: "object": port name must be valid' },
    { what: 'neither address nor network', body: entry('vm-1', { ports: { http: 80 } }), field: 'spec', message: 'Invalid value: "object": Address is required' },
    { what: 'a UDS address with ports', body: entry('vm-1', { address: 'unix:///var/run/x.sock', ports: { http: 80 } }), field: 'spec', message: 'Invalid value: "object": UDS may not include ports' },
    { what: 'an address over 256 bytes', body: entry('vm-1', { address: 'a'.repeat(257) }), field: 'spec.address', message: 'Too long: may not be more than 256 bytes' },
    { what: 'a weight of the wrong type', body: entry('vm-1', { address: '10.0.0.1', weight: 'heavy' }), field: 'spec.weight', message: 'Invalid value: "string": spec.weight in body must be of type integer: "string"' },
    { what: 'a negative weight', body: entry('vm-1', { address: '10.0.0.1', weight: -1 }), field: 'spec.weight', message: 'Invalid value: -1: spec.weight in body should be greater than or equal to 0' },
    {
      what: 'an invalid label key',
      body: entry('vm-1', { address: '10.0.0.1' }, { 'bad key!': 'v' }),
      field: 'metadata.labels',
      message:
        "Invalid value: \"bad key!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    },
    {
      what: 'a label value over 63 characters',
      body: entry('vm-1', { address: '10.0.0.1' }, { app: 'x'.repeat(64) }),
      field: 'metadata.labels',
      message: `Invalid value: "${'x'.repeat(64)}": must be no more than 63 characters`,
    },
    {
      what: 'an invalid label value',
      body: entry('vm-1', { address: '10.0.0.1' }, { app: '-web' }),
      field: 'metadata.labels',
      message:
        "Invalid value: \"-web\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    },
    {
      what: 'a label prefix that is not a DNS subdomain',
      body: entry('vm-1', { address: '10.0.0.1' }, { 'Bad_Prefix/app': 'x' }),
      field: 'metadata.labels',
      message: expect.stringContaining('Invalid value: "Bad_Prefix/app": prefix part a lowercase RFC 1123 subdomain') as unknown as string,
    },
    {
      what: 'annotations over 256 KiB',
      body: entry('vm-1', { address: '10.0.0.1' }, {}, { annotations: { big: 'x'.repeat(256 * 1024) } }),
      field: 'metadata.annotations',
      message: 'Too long: may not be more than 262144 bytes',
    },
  ];

  it.each(cases)('rejects $what with 422 naming the field', async ({ body, field, message }) => {
    const ns = newNamespace();
    const f = await rejection(apply(ns, body));
    expect(f.code).toBe(422);
    expect(f.body.reason).toBe('Invalid');
    expect(f.body.details).toMatchObject({ name: 'vm-1', group: GROUP, kind: 'WorkloadEntry' });
    expect(f.body.details.causes).toContainEqual(expect.objectContaining({ field, message }));
    expect(f.body.message).toMatch(/^WorkloadEntry\.networking\.istio\.io "vm-1" is invalid: /);
    expect(server.get('workloadentries', ns, 'vm-1')).toBeUndefined();
  });

  it('rejects a name that is not a DNS-1123 subdomain, on create and apply', async () => {
    const ns = newNamespace();
    const f = await rejection(
      custom.createNamespacedCustomObject({ group: GROUP, version: 'v1', namespace: ns, plural: 'workloadentries', body: entry('Bad_Name', { address: '10.0.0.1' }) }),
    );
    expect(f.code).toBe(422);
    expect(f.body.details.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        field: 'metadata.name',
        message:
          "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
      },
    ]);
    const long = await rejection(apply(ns, entry('a'.repeat(254), { address: '10.0.0.1' })));
    expect(long.code).toBe(422);
    expect(long.body.details.causes[0].message).toContain('must be no more than 253 characters');
  });

  it('accepts an entry that uses every field at its limits', async () => {
    const ns = newNamespace();
    const ports = Object.fromEntries(Array.from({ length: 128 }, (_, i) => [`p${i}`, i + 1]));
    const created = await apply(
      ns,
      entry(
        'vm-full',
        { address: 'a'.repeat(256), ports, labels: { app: 'x' }, serviceAccount: 'sa', network: 'n', locality: 'r/z', weight: 4294967295 },
        { ['x'.repeat(63)]: 'y'.repeat(63), 'example.com/k': '' },
      ),
    );
    expect(Object.keys(created.spec as object)).toHaveLength(7);
    const tooMany = await rejection(apply(ns, entry('vm-2', { address: '1.1.1.1', ports: { ...ports, p128: 1 } })));
    expect(tooMany.body.details.causes).toContainEqual(
      expect.objectContaining({ field: 'spec.ports', message: 'Too many: 129: must have at most 128 items' }),
    );
  });
});

describe('every x-kubernetes-validations rule of the CRD runs', () => {
  // For each rule: a value where it must hold and one where it must not. A rule added to the CRD
  // without a case here fails the first test, so no rule is ever silently unchecked.
  const verdicts: Record<string, { holds: unknown; fails: unknown }> = {
    'self.startsWith("unix://") ? (self.substring(7, 8) == "/" || self.substring(7, 8) == "@") : true': {
      holds: 'unix:///var/run/x.sock',
      fails: 'unix://relative',
    },
    'self.startsWith("unix://") ? !self.endsWith("/") : true': { holds: '10.0.0.1', fails: 'unix:///var/run/' },
    '0 < self && self <= 65535': { holds: 443, fails: 65536 },
    'self.all(key, size(key) < 63 && key.matches("^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$"))': {
      holds: { http: 80, 'grpc-web': 81 },
      fails: { '-http': 80 },
    },
    'has(self.address) || has(self.network)': { holds: { network: 'n1' }, fails: { ports: { http: 80 } } },
    '(has(self.address) ? self.address : "").startsWith("unix://") ? !has(self.ports) : true': {
      holds: { address: 'unix:///x.sock' },
      fails: { address: 'unix:///x.sock', ports: { http: 80 } },
    },
  };

  const crd = parseYaml(readFileSync(WORKLOADENTRY_CRD, 'utf8')) as { spec: { versions: Array<{ name: string; schema: { openAPIV3Schema: SchemaProps } }> } };

  function rulesInYaml(node: unknown): string[] {
    if (Array.isArray(node)) return node.flatMap(rulesInYaml);
    if (node === null || typeof node !== 'object') return [];
    const o = node as Record<string, unknown>;
    const own = Array.isArray(o['x-kubernetes-validations']) ? (o['x-kubernetes-validations'] as Array<{ rule: string }>).map((r) => r.rule) : [];
    return [...own, ...Object.entries(o).filter(([k]) => k !== 'x-kubernetes-validations').flatMap(([, v]) => rulesInYaml(v))];
  }

  it.each(crd.spec.versions.map((v) => [v.name, v]))('compiles every rule of %s and each has a verdict case', (_name, v) => {
    const schema = new StructuralSchema(v.schema.openAPIV3Schema);
    const inYaml = rulesInYaml(v.schema.openAPIV3Schema);
    expect(inYaml.length).toBeGreaterThan(0);
    expect(schema.rules.map((r) => r.rule).sort()).toEqual([...inYaml].sort());
    for (const r of schema.rules) expect(Object.keys(verdicts), `no verdict case for rule at ${r.schemaPath}: ${r.rule}`).toContain(r.rule);
  });

  it('evaluates each rule to true and to false with the server evaluator', () => {
    const schema = new StructuralSchema(crd.spec.versions[0]!.schema.openAPIV3Schema);
    const toCel = (v: unknown): unknown =>
      typeof v === 'number' ? BigInt(v) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toCel(x)])) : v;
    for (const r of schema.rules) {
      const c = verdicts[r.rule]!;
      expect(r.evaluate(toCel(c.holds)), r.rule).toBe(true);
      expect(r.evaluate(toCel(c.fails)), r.rule).toBe(false);
    }
  });

  it('refuses to load a schema with a rule it cannot evaluate', () => {
    expect(() => new StructuralSchema({ type: 'string', 'x-kubernetes-validations': [{ rule: 'self.noSuchFunction()' }] })).toThrow(
      /cannot be evaluated by the fake API server/,
    );
  });
});

describe('list', () => {
  it('filters with label selectors in every form', async () => {
    const ns = newNamespace();
    await apply(ns, entry('a', { address: '10.0.0.1' }, { app: 'web', tier: 'front' }));
    await apply(ns, entry('b', { address: '10.0.0.2' }, { app: 'db', tier: 'back' }));
    await apply(ns, entry('c', { address: '10.0.0.3' }, { app: 'cache' }));
    const names = async (labelSelector: string) => (await listEntries({ namespace: ns, labelSelector })).items.map((i) => i.metadata.name);
    expect(await names('app=web')).toEqual(['a']);
    expect(await names('app==db')).toEqual(['b']);
    expect(await names('app!=web')).toEqual(['b', 'c']);
    expect(await names('tier')).toEqual(['a', 'b']);
    expect(await names('!tier')).toEqual(['c']);
    expect(await names('app in (web,cache)')).toEqual(['a', 'c']);
    expect(await names('app notin (web)')).toEqual(['b', 'c']);
    expect(await names('app in (web,db),tier=back')).toEqual(['b']);
    const bad = await rejection(listEntries({ namespace: ns, labelSelector: 'app in (' }));
    expect(bad.code).toBe(400);
    expect(bad.body.reason).toBe('BadRequest');
  });

  it('pages with limit/continue over a consistent snapshot, across namespaces', async () => {
    const nsA = newNamespace();
    const nsB = newNamespace();
    for (let i = 0; i < 7; i++) server.put(entry(`vm-${i}`, { address: `10.0.0.${i}` }, { app: 'x' }, { namespace: i % 2 ? nsA : nsB }) as KubeObject);
    const scope = `app=x`;
    const first = await listEntries({ labelSelector: scope, limit: 3 });
    expect(first.items).toHaveLength(3);
    expect(first.metadata.continue).toEqual(expect.any(String));
    const listRv = first.metadata.resourceVersion;

    // Changes after the first page are not seen by later pages of the same list.
    server.put(entry('vm-new', { address: '10.0.1.1' }, { app: 'x' }, { namespace: nsB }) as KubeObject);
    server.remove('workloadentries', nsB, 'vm-6');

    const seen = first.items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`);
    let token = first.metadata.continue;
    let pages = 1;
    while (token) {
      const page = await listEntries({ labelSelector: scope, limit: 3, _continue: token });
      expect(page.metadata.resourceVersion).toBe(listRv);
      seen.push(...page.items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`));
      token = page.metadata.continue;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual([...seen].sort());
    expect(seen).toHaveLength(7);
    expect(seen).toContain(`${nsB}/vm-6`);
    expect(seen).not.toContain(`${nsB}/vm-new`);
    expect(server.counts.list).toBe(3);

    const fresh = await listEntries({ namespace: nsB, labelSelector: scope });
    expect(fresh.items.map((i) => i.metadata.name)).toEqual(['vm-0', 'vm-2', 'vm-4', 'vm-new']);
    expect(Number(fresh.metadata.resourceVersion)).toBe(server.resourceVersion);
  });

  it('gives remainingItemCount without a selector, and 410 Expired for a token whose snapshot is gone', async () => {
    const ns = newNamespace();
    for (let i = 0; i < 5; i++) server.put(entry(`vm-${i}`, { address: `10.0.0.${i}` }, {}, { namespace: ns }) as KubeObject);
    const first = await listEntries({ namespace: ns, limit: 2 });
    expect(first.metadata.remainingItemCount).toBe(3);
    server.expireContinueTokens();
    const f = await rejection(listEntries({ namespace: ns, limit: 2, _continue: first.metadata.continue }));
    expect(f.code).toBe(410);
    expect(f.body.reason).toBe('Expired');
  });
});

describe('other writes', () => {
  it('merge patch, JSON patch and replace with resourceVersion preconditions', async () => {
    const ns = newNamespace();
    const created = await apply(ns, entry('vm-1', { address: '10.0.0.1', ports: { http: 80 } }));
    const patch = (body: unknown, type: PatchStrategy) =>
      custom.patchNamespacedCustomObject(
        { group: GROUP, version: 'v1', namespace: ns, plural: 'workloadentries', name: 'vm-1', body },
        setHeaderOptions('Content-Type', type),
      ) as Promise<KubeObject>;
    const merged = await patch({ spec: { ports: { grpc: 9090 } } }, PatchStrategy.MergePatch);
    expect(merged.spec).toEqual({ address: '10.0.0.1', ports: { http: 80, grpc: 9090 } });
    expect(merged.metadata.generation).toBe(2);
    const unchanged = await patch({ spec: { ports: { grpc: 9090 } } }, PatchStrategy.MergePatch);
    expect(unchanged.metadata.resourceVersion).toBe(merged.metadata.resourceVersion);
    const jp = await patch([{ op: 'replace', path: '/spec/address', value: '10.0.0.9' }], PatchStrategy.JsonPatch);
    expect((jp.spec as Record<string, unknown>).address).toBe('10.0.0.9');
    const failedTest = await rejection(patch([{ op: 'test', path: '/spec/address', value: 'nope' }], PatchStrategy.JsonPatch));
    expect(failedTest.code).toBe(422);
    const staleMerge = await rejection(patch({ metadata: { resourceVersion: created.metadata.resourceVersion }, spec: { weight: 1 } }, PatchStrategy.MergePatch));
    expect(staleMerge.code).toBe(409);
    const invalidMerge = await rejection(patch({ spec: { ports: { http: 0 } } }, PatchStrategy.MergePatch));
    expect(invalidMerge.code).toBe(422);
    const strategic = await rejection(patch({ spec: {} }, PatchStrategy.StrategicMergePatch));
    expect(strategic.code).toBe(415);

    const live = await getEntry(ns, 'vm-1');
    const replace = (body: KubeObject) =>
      custom.replaceNamespacedCustomObject({ group: GROUP, version: 'v1', namespace: ns, plural: 'workloadentries', name: 'vm-1', body }) as Promise<KubeObject>;
    const replaced = await replace({ ...live, spec: { network: 'n2' } });
    expect(replaced.spec).toEqual({ network: 'n2' });
    expect(rvOf(replaced)).toBeGreaterThan(rvOf(live));
    const stalePut = await rejection(replace({ ...live, spec: { network: 'n3' } }));
    expect(stalePut.code).toBe(409);
    const { resourceVersion: _rv, ...noRv } = replaced.metadata;
    const unconditional = await rejection(replace({ ...replaced, metadata: noRv, spec: { network: 'n3' } }));
    expect(unconditional.code).toBe(422);
    expect(unconditional.body.details.causes[0]).toMatchObject({ field: 'metadata.resourceVersion' });
    expect(server.counts.patch).toBe(7);
    expect(server.counts.update).toBe(3);
  });

  it('serves ServiceAccounts, Namespaces and Events through CoreV1Api', async () => {
    const ns = 'core-things';
    await core.createNamespace({ body: { metadata: { name: ns } } });
    expect(server.get('namespaces', undefined, ns)?.status).toEqual({ phase: 'Active' });
    const sa = await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'vm-sa' } } });
    expect(sa.metadata?.resourceVersion).toEqual(expect.any(String));
    expect((await core.listNamespacedServiceAccount({ namespace: ns })).items.map((s) => s.metadata?.name)).toEqual(['vm-sa']);
    const ev = await core.createNamespacedEvent({
      namespace: ns,
      body: {
        metadata: { generateName: 'vm-1.' },
        involvedObject: { apiVersion: `${GROUP}/v1`, kind: 'WorkloadEntry', name: 'vm-1', namespace: ns },
        reason: 'Synced',
        message: 'applied',
        type: 'Normal',
        count: 1,
        source: { component: 'vm-mesh-sync' },
      },
    });
    expect(ev.metadata?.name).toMatch(/^vm-1\.[a-z0-9]{5}$/);
    const patched = await core.patchNamespacedEvent(
      { namespace: ns, name: ev.metadata!.name!, body: { count: 2 } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    expect(patched.count).toBe(2);
    const listed = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=vm-1,reason=Synced' });
    expect(listed.items.map((e) => e.count)).toEqual([2]);
    const wrongNs = await rejection(
      core.createNamespacedEvent({ namespace: ns, body: { metadata: { name: 'e2' }, involvedObject: { kind: 'WorkloadEntry', name: 'x', namespace: 'other' } } }),
    );
    expect(wrongNs.code).toBe(422);
    expect(server.counts.of('events').create).toBe(2);
    expect(server.counts.of('events').patch).toBe(1);
  });

  it('deleting a namespace deletes what is in it', async () => {
    const ns = newNamespace();
    await apply(ns, entry('vm-1', { address: '10.0.0.1' }));
    await core.deleteNamespace({ name: ns });
    expect(server.get('workloadentries', ns, 'vm-1')).toBeUndefined();
    expect((await rejection(apply(ns, entry('vm-2', { address: '10.0.0.2' })))).code).toBe(404);
  });
});

describe('fault injection and counters', () => {
  it('answers 429 with Retry-After until the fault is used up, counting every request', async () => {
    const ns = newNamespace();
    const fault: Fault = { match: { verb: 'apply', resource: 'workloadentries' }, status: 429, retryAfterSeconds: 7, count: 2 };
    server.faults.push(fault);
    for (let i = 0; i < 2; i++) {
      const f = await rejection(apply(ns, entry('vm-1', { address: '10.0.0.1' })));
      expect(f.code).toBe(429);
      expect(f.headers['retry-after']).toBe('7');
      expect(f.body).toEqual({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'Too many requests, please try again later.',
        reason: 'TooManyRequests',
        details: { retryAfterSeconds: 7 },
        code: 429,
      });
    }
    expect(server.faults).toHaveLength(0);
    expect(server.get('workloadentries', ns, 'vm-1')).toBeUndefined();
    await apply(ns, entry('vm-1', { address: '10.0.0.1' }));
    await getEntry(ns, 'vm-1');
    expect(server.counts.apply).toBe(3);
    expect(server.counts.get).toBe(1);
    expect(server.counts.faults).toBe(2);
    expect(server.writes()).toBe(3);
    expect(fault.fired).toBe(2);
    server.counts.reset();
    expect(server.writes()).toBe(0);
  });

  it('500 and 409 faults use the real reasons; reads can be targeted alone', async () => {
    const ns = newNamespace();
    await apply(ns, entry('vm-1', { address: '10.0.0.1' }));
    server.faults.push({ match: { verb: 'get' }, status: 500, count: 1 }, { match: { verb: ['apply'] }, status: 409, count: 1 });
    const e500 = await rejection(getEntry(ns, 'vm-1'));
    expect(e500.code).toBe(500);
    expect(e500.body.reason).toBe('InternalError');
    const e409 = await rejection(apply(ns, entry('vm-1', { address: '10.0.0.2' })));
    expect(e409.code).toBe(409);
    expect(e409.body.reason).toBe('Conflict');
    expect((await getEntry(ns, 'vm-1')).spec).toEqual({ address: '10.0.0.1' });
  });

  it('drops connections, before or after the write took effect', async () => {
    const ns = newNamespace();
    server.faults.push({ match: { verb: 'apply' }, drop: true, count: 1 });
    await expect(apply(ns, entry('vm-1', { address: '10.0.0.1' }))).rejects.toThrow();
    expect(server.get('workloadentries', ns, 'vm-1')).toBeUndefined();
    server.faults.push({ match: { verb: 'apply' }, drop: true, after: true, count: 1 });
    await expect(apply(ns, entry('vm-1', { address: '10.0.0.1' }))).rejects.toThrow();
    expect(server.get('workloadentries', ns, 'vm-1')?.spec).toEqual({ address: '10.0.0.1' });
    expect(server.counts.faults).toBe(2);
    expect(server.counts.apply).toBe(2);
  });

  it('delays chosen requests so that a later write can overtake an earlier one', async () => {
    const ns = newNamespace();
    server.faults.push({ match: { verb: 'apply', name: 'vm-1' }, delayMs: 150, count: 1 });
    const first = apply(ns, entry('vm-1', { address: '10.0.0.1' }));
    await expect.poll(() => server.counts.apply).toBe(1);
    const second = await apply(ns, entry('vm-1', { address: '10.0.0.2' }));
    const late = await first;
    expect(rvOf(late)).toBeGreaterThan(rvOf(second));
    expect(server.get('workloadentries', ns, 'vm-1')?.spec).toEqual({ address: '10.0.0.1' });
    expect(server.counts.faults).toBe(0);
  });

  it('fires probabilistic faults from a seeded generator, reproducibly', async () => {
    const hits = async () => {
      const s = new FakeKubeApiServer({ seed: 42 });
      await s.start();
      try {
        const api = s.kubeConfig().makeApiClient(CustomObjectsApi);
        s.faults.push({ match: { verb: 'list' }, status: 503, probability: 0.5 });
        const out: number[] = [];
        for (let i = 0; i < 20; i++) {
          try {
            await api.listClusterCustomObject({ group: GROUP, version: 'v1', plural: 'workloadentries' });
            out.push(200);
          } catch (e) {
            out.push((e as ApiException<string>).code);
          }
        }
        return out;
      } finally {
        await s.close();
      }
    };
    const a = await hits();
    expect(a).toContain(503);
    expect(a).toContain(200);
    expect(await hits()).toEqual(a);
  });
});

describe('watch', () => {
  it('streams ADDED, MODIFIED and DELETED from a list resourceVersion, honouring label selectors', async () => {
    const ns = newNamespace();
    await apply(ns, entry('before', { address: '10.0.0.1' }, { app: 'x' }));
    const list = await listEntries({ namespace: ns });
    const events: string[] = [];
    const selected: string[] = [];
    const w = new Watch(kc);
    const path = `/apis/${GROUP}/v1/namespaces/${ns}/workloadentries`;
    const all = await w.watch(path, { resourceVersion: list.metadata.resourceVersion }, (type, obj) => events.push(`${type} ${obj.metadata.name}`), () => {});
    const some = await w.watch(path, { labelSelector: 'app=x' }, (type, obj) => selected.push(`${type} ${obj.metadata.name}`), () => {});
    try {
      await apply(ns, entry('vm-1', { address: '10.0.0.1' }, { app: 'x' }));
      await apply(ns, entry('vm-1', { address: '10.0.0.2' }, { app: 'y' }));
      await custom.deleteNamespacedCustomObject({ group: GROUP, version: 'v1', namespace: ns, plural: 'workloadentries', name: 'vm-1' });
      await expect.poll(() => events.length).toBe(3);
      await expect.poll(() => selected.length).toBe(3);
      expect(events).toEqual(['ADDED vm-1', 'MODIFIED vm-1', 'DELETED vm-1']);
      // Without a resourceVersion the watch starts with the current objects; vm-1 leaves the selection when relabelled.
      expect(selected).toEqual(['ADDED before', 'ADDED vm-1', 'DELETED vm-1']);
    } finally {
      all.abort();
      some.abort();
    }
    expect(server.counts.watch).toBe(2);
  });

  it('sends a 410 ERROR event for a resourceVersion older than the history', async () => {
    const ns = newNamespace();
    await apply(ns, entry('vm-1', { address: '10.0.0.1' }));
    const old = String(server.resourceVersion - 1);
    await apply(ns, entry('vm-2', { address: '10.0.0.1' }));
    server.compactWatchHistory();
    const got: Array<{ type: string; obj: any }> = [];
    const w = await new Watch(kc).watch(`/apis/${GROUP}/v1/namespaces/${ns}/workloadentries`, { resourceVersion: old }, (type, obj) => got.push({ type, obj }), () => {});
    try {
      await expect.poll(() => got.length).toBe(1);
      expect(got[0]).toMatchObject({ type: 'ERROR', obj: { code: 410, reason: 'Expired' } });
    } finally {
      w.abort();
    }
  });
});

describe('authentication', () => {
  it('requires the bearer token when one is configured, and the kubeconfig carries it', async () => {
    const secured = new FakeKubeApiServer({ token: 's3cret' });
    const url = await secured.start();
    try {
      const anonymous = await fetch(`${url}/api/v1/namespaces`);
      expect(anonymous.status).toBe(401);
      const namespaces = await secured.kubeConfig().makeApiClient(CoreV1Api).listNamespace();
      expect(namespaces.items.map((n) => n.metadata?.name)).toEqual(['default']);
    } finally {
      await secured.close();
    }
  });
});

describe('direct store access', () => {
  it('puts, gets, lists and removes objects without requests', () => {
    const ns = newNamespace();
    const put = server.put(entry('foreign', { address: '10.0.0.1' }, { 'app.kubernetes.io/managed-by': 'someone-else' }, { namespace: ns }) as KubeObject);
    expect(put.metadata.resourceVersion).toBe(String(server.resourceVersion));
    expect(server.get('we', ns, 'foreign')?.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'someone-else' });
    expect(server.objects('WorkloadEntry', ns).map((o) => o.metadata.name)).toEqual(['foreign']);
    expect(() => server.put(entry('bad', { ports: { http: 0 } }, {}, { namespace: ns }) as KubeObject)).toThrow(/is invalid/);
    expect(server.put(entry('bad', { ports: { http: 0 } }, {}, { namespace: ns }) as KubeObject, { validate: false }).metadata.name).toBe('bad');
    expect(() => server.put(entry('x', { address: '1.1.1.1' }, {}, { namespace: 'nowhere' }) as KubeObject)).toThrow(/createNamespace/);
    expect(server.remove('workloadentries', ns, 'foreign')).toBe(true);
    expect(server.size('workloadentries', ns)).toBe(1);
    expect(server.counts.total()).toBe(0);
  });
});

describe('kubectl against the fake', () => {
  it.skipIf(!existsSync(KUBECTL))(
    `kubectl get workloadentries -A (json, yaml and table)${existsSync(KUBECTL) ? '' : ' — skipped: /usr/bin/kubectl is not installed'}`,
    async () => {
      const ns = newNamespace();
      await apply(ns, entry('vm-kubectl', { address: '10.20.30.40', ports: { pg: 5432 } }, { app: 'db' }));
      const dir = mkdtempSync(join(tmpdir(), 'fake-kube-'));
      try {
        const env = { ...process.env, KUBECONFIG: server.writeKubeconfig(dir), HOME: dir };
        const kubectl = async (...args: string[]) => (await run(KUBECTL, [...args, '--cache-dir', join(dir, 'cache')], { env })).stdout;

        const json = JSON.parse(await kubectl('get', 'workloadentries', '-A', '-o', 'json')) as { items: KubeObject[] };
        expect(json.items).toContainEqual(
          expect.objectContaining({ metadata: expect.objectContaining({ name: 'vm-kubectl', namespace: ns }), spec: { address: '10.20.30.40', ports: { pg: 5432 } } }),
        );

        const yaml = parseYaml(await kubectl('get', 'we', '-n', ns, '-o', 'yaml')) as { items: KubeObject[] };
        expect(yaml.items.map((i) => i.metadata.name)).toEqual(['vm-kubectl']);

        const tableOut = await kubectl('get', 'we', '-A');
        const lines = tableOut.trim().split('\n');
        expect(lines[0]!.split(/\s+/)).toEqual(['NAMESPACE', 'NAME', 'AGE', 'ADDRESS']);
        expect(lines.some((l) => l.split(/\s+/)[0] === ns && l.includes('vm-kubectl') && l.includes('10.20.30.40'))).toBe(true);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
