// Generated bad input at every door: webhook requests to the real receivers, config files,
// inventory files, tag values. Whatever comes in, the answer is a coded error (never a crash, an
// unhandled rejection or a 5xx other than the designed 503), and whatever is accepted is valid.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { MAX_DURATION_MS } from '../../config/duration.ts';
import { ENV_OVERRIDES, loadConfig, parseConfig } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { createProviders } from '../../providers/index.ts';
import { parseInventory, readInventory } from '../../providers/static/inventory.ts';
import { ERROR_CODES, VmsError } from '../../services/errors.ts';
import { silentLogger } from '../../services/logger.ts';
import { checkEntry, mapInstances, plainEntry } from '../../services/mapping/index.ts';
import { Metrics } from '../../services/metrics.ts';
import type { Instance, InstanceRef, WorkloadEntry } from '../../services/model.ts';
import { webhookReceivers } from '../../services/runtime/receivers.ts';
import type { FastifyInstance } from 'fastify';
import { buildServers } from '../../services/server/server.ts';
import { type FakeGoogleCerts, PUSH_AUDIENCE, PUSH_SERVICE_ACCOUNT, startFakeGoogleCerts } from '../fakes/gcp/google-certs.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { meshMachine, runCli, Workspace } from '../helpers/cli.ts';
import { anyValue, applyMutations, mutations } from '../helpers/mutate.ts';

const FIXTURES = path.join(import.meta.dirname, '../fixtures');
const fixture = (name: string): unknown => JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8'));
const AWS_KEY = 'aws-webhook-key-0123456789';
const AZURE_SECRET = 'azure-query-secret-0123456789';
const AZURE_SUBSCRIPTION = '1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b';

// Every unhandled rejection of this file, so that a test can say there was none.
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});

/** Expects an error to be a VmsError whose code starts with `prefix`, and says so when it is not. */
function expectCoded(err: unknown, prefix: string): void {
  expect(err, `expected a VmsError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`).toBeInstanceOf(VmsError);
  expect((err as VmsError).code.startsWith(prefix), (err as VmsError).code).toBe(true);
}

describe('webhook requests to the real receivers', () => {
  let google: FakeGoogleCerts;
  let app: FastifyInstance;
  let gcpToken: string;
  const refreshes: Array<{ provider: string; refs: InstanceRef[] }> = [];
  let refreshFails = false;

  beforeAll(async () => {
    google = await startFakeGoogleCerts();
    gcpToken = await google.sign();
    const config = parseConfig({
      providers: [
        { type: 'aws', name: 'prod', regions: ['us-east-1'], accounts: [{ id: '123456789012' }], webhook: { apiKey: { value: AWS_KEY } } },
        { type: 'gcp', name: 'shop', projects: ['shop-prod'], webhook: { audience: PUSH_AUDIENCE, serviceAccountEmail: PUSH_SERVICE_ACCOUNT, certsUrl: google.url } },
        { type: 'azure', name: 'subs', subscriptions: [AZURE_SUBSCRIPTION], webhook: { querySecret: { value: AZURE_SECRET } } },
      ],
    });
    const providers = await createProviders(config.providers, { mapping: config.mapping });
    app = buildServers({
      logger: silentLogger(),
      metrics: new Metrics(),
      bodyLimit: 64 * 1024,
      receivers: webhookReceivers(providers),
      refresh: async (provider, refs) => {
        if (refreshFails) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
        refreshes.push({ provider, refs });
      },
      readiness: async () => ({ ready: true, checks: {} }),
      status: async () => ({}),
    }).webhooks;
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
    await google.close();
  });

  /** A push envelope carrying `payload` as Pub/Sub does (base64 JSON). */
  const envelope = (payload: unknown): unknown => {
    const e = structuredClone(fixture('gcp/pubsub-push-envelope.json')) as { message: { data: string } };
    e.message.data = Buffer.from(JSON.stringify(payload) ?? '', 'utf8').toString('base64');
    return e;
  };
  // Valid deliveries of each provider, the starting points of the mutations.
  const bases: Record<'aws' | 'gcp' | 'azure', unknown[]> = {
    aws: [fixture('aws/ec2-state-change-pending.json'), fixture('aws/tag-change-on-resource.json'), fixture('aws/eventbridge-ec2-state-change-terminated.json')],
    gcp: [
      envelope(fixture('gcp/asset-feed-instance-created.json')),
      envelope(fixture('gcp/audit-log-instances-insert.json')),
      envelope(fixture('gcp/audit-log-instances-setlabels.json')),
    ],
    azure: [fixture('azure/eventgrid-vm-write.json'), fixture('azure/cloudevents-batch.json'), fixture('azure/eventgrid-subscription-validation.json')],
  };
  // For GCP, mutations also reach inside the base64 `data`: the payload is mutated, then wrapped.
  const gcpPayloads = [fixture('gcp/asset-feed-instance-created.json'), fixture('gcp/audit-log-instances-insert.json'), fixture('gcp/asset-feed-instance-deleted.json')];

  const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,16}$/).filter(
    (name) => !['content-length', 'transfer-encoding', 'host', 'connection', 'expect', 'upgrade', 'te', 'trailer', 'content-type'].includes(name),
  );
  const headerValue = fc.oneof(fc.stringMatching(/^[\x20-\x7e]{0,60}$/), fc.constantFrom('Bearer', 'Basic Og==', 'Bearer a.b.c', `Bearer ${'x'.repeat(3000)}`));
  const contentType = fc.oneof(
    { arbitrary: fc.constant('application/json'), weight: 8 },
    { arbitrary: fc.constantFrom('application/cloudevents+json', 'application/cloudevents-batch+json', 'text/plain', 'application/xml', 'APPLICATION/JSON; charset=latin1', ''), weight: 2 },
  );
  const provider = fc.oneof({ arbitrary: fc.constantFrom('aws', 'gcp', 'azure'), weight: 9 }, { arbitrary: fc.string({ maxLength: 10 }), weight: 1 });
  // Mostly with valid credentials, so that the body is what gets tested.
  const credentials = fc.oneof({ arbitrary: fc.constant('valid'), weight: 8 }, { arbitrary: fc.constantFrom('none', 'wrong'), weight: 2 });
  const body = (kind: string) =>
    fc.oneof(
      { arbitrary: fc.tuple(fc.nat(), mutations()).map(([i, m]) => JSON.stringify(applyMutations(pick(kind, i), m)) ?? ''), weight: 6 },
      {
        arbitrary: fc.tuple(fc.nat(), mutations()).map(([i, m]) => JSON.stringify(envelope(applyMutations(gcpPayloads[i % gcpPayloads.length], m)))),
        weight: kind === 'gcp' ? 4 : 0,
      },
      { arbitrary: fc.json({ maxDepth: 3 }), weight: 1 },
      { arbitrary: fc.string({ unit: 'binary', maxLength: 200 }), weight: 1 },
      { arbitrary: fc.constantFrom('', ' ', '[]', '{}', 'null', '"x"', '{"__proto__":{"a":1}}', '['.repeat(2000), `"${'a'.repeat(70 * 1024)}"`), weight: 1 },
    );
  const pick = (kind: string, i: number): unknown => {
    const list = bases[kind as keyof typeof bases] ?? bases.aws;
    return list[i % list.length];
  };

  const request = fc
    .record({ provider, credentials, contentType, method: fc.constantFrom('POST', 'POST', 'POST', 'OPTIONS'), extra: fc.dictionary(headerName, headerValue, { maxKeys: 4 }), refreshFails: fc.boolean() })
    .chain((r) => body(r.provider).map((payload) => ({ ...r, payload })));

  it('never answer a 5xx other than the designed 503, always with a coded body, and refresh only configured instances', async () => {
    let accepted = 0;
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers: Record<string, string> = { ...r.extra };
        if (r.contentType) headers['content-type'] = r.contentType;
        let query = '';
        if (r.credentials !== 'none') {
          const valid = r.credentials === 'valid';
          if (r.provider === 'aws') headers['x-api-key'] = valid ? AWS_KEY : `${AWS_KEY}x`;
          if (r.provider === 'gcp') headers.authorization = `Bearer ${valid ? gcpToken : `${gcpToken.slice(0, -4)}AAAA`}`;
          if (r.provider === 'azure') query = `?code=${valid ? AZURE_SECRET : 'nope'}`;
        }
        if (r.provider === 'azure' && r.method === 'OPTIONS') headers['webhook-request-origin'] = 'eventgrid.azure.net';
        refreshFails = r.refreshFails;
        const before = refreshes.length;
        const res = await app.inject({ method: r.method as 'POST' | 'OPTIONS', url: `/webhooks/${encodeURIComponent(r.provider)}${query}`, headers, payload: r.payload });
        if (res.statusCode >= 500) {
          expect(res.statusCode, res.body).toBe(503);
          expect(res.json().code).toBe('VMS_ERR_REDIS_UNREACHABLE');
        }
        if (res.statusCode >= 400) {
          rejected++;
          const json = res.json() as { code: keyof typeof ERROR_CODES; hint: string };
          expect(Object.keys(ERROR_CODES)).toContain(json.code);
          expect(json.hint).toBe(ERROR_CODES[json.code]);
          expect(res.body).not.toMatch(/\n\s+at /);
        } else {
          accepted++;
        }
        if (res.statusCode === 202) {
          const calls = refreshes.slice(before);
          expect(calls).toHaveLength(1);
          for (const ref of calls[0]!.refs) {
            expect(ref.provider).toBe(r.provider);
            expect(['123456789012', 'shop-prod', AZURE_SUBSCRIPTION]).toContain(ref.account);
          }
        } else {
          expect(refreshes.length).toBe(before);
        }
      }),
      { numRuns: 600, seed: 600 },
    );
    // Both sides of the route were reached.
    expect(accepted).toBeGreaterThan(50);
    expect(rejected).toBeGreaterThan(50);
    expect(refreshes.length).toBeGreaterThan(10);
    expect(unhandled).toEqual([]);
  }, 60_000);
});

describe('config files', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'vms-bad-config-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const valid = {
    ownerId: 'prod',
    policy: 'sync',
    deletionGuard: { maxDeleteFraction: 0.5, allowDeletesUpTo: 2 },
    mapping: {
      selector: { tag: 'mesh', value: 'true' },
      labels: { fromTags: { 'mesh-app': 'app' }, tagPrefix: 'mesh-label-', static: { location: 'dc1' } },
      namespace: { tag: 'mesh-namespace', default: 'default' },
      ports: { tag: 'mesh-ports', default: { http: 8080 } },
      network: { name: 'net-1', byNetworkId: { 'vpc-1': 'net-2' } },
    },
    providers: [
      { type: 'static', name: 'onprem', inventory: 'inventory.yaml' },
      { type: 'aws', name: 'prod', regions: ['us-east-1'], accounts: [{ id: '123456789012' }], timeout: '30s', webhook: { apiKey: { value: { env: 'AWS_KEY' } } } },
      { type: 'gcp', name: 'shop', projects: ['shop-prod'], retryDelay: '500ms', webhook: { audience: 'https://x.example.com', serviceAccountEmail: 'a@b.iam.gserviceaccount.com' } },
      { type: 'azure', name: 'subs', subscriptions: [AZURE_SUBSCRIPTION], maxRetryDelay: '30s', webhook: { querySecret: { value: { file: '/run/secret' } } } },
    ],
    resync: { interval: '5m', timeout: '2m' },
    redis: { url: 'redis://127.0.0.1:6379', prefix: '{vms}' },
    kubernetes: { pageSize: 500 },
    queue: { concurrency: 16, attempts: 12, backoff: '1s', stalledAfter: '15s' },
    server: { port: 8080 },
    log: { level: 'info' },
  };
  const fragments = [
    'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n',
    'providers: *missing\n',
    'providers: !!binary aGVsbG8=\n',
    'providers: !!set {a, b}\n',
    'ownerId: !custom x\n',
    '? [a, b]\n: 1\n',
    '__proto__: {policy: x}\n',
    '<<: {policy: x}\n',
    'a: 1\n---\nb: 2\n',
    `a: ${'['.repeat(3000)}${']'.repeat(3000)}\n`,
    'resync: {timeout: 600h}\n',
    `resync: {interval: ${'9'.repeat(400)}h}\n`,
    '\uFEFF',
    'policy: sync\npolicy: sync\n',
    '\t- x',
  ];
  const text = fc.oneof(
    { arbitrary: fc.tuple(mutations(5), fc.boolean()).map(([m, json]) => serialize(applyMutations(valid, m), json)), weight: 5 },
    // One change, or none (the environment then does the damage), so that loading succeeds often enough to check what it returns.
    { arbitrary: fc.tuple(mutations(1), fc.boolean()).map(([m, json]) => serialize(applyMutations(valid, m), json)), weight: 2 },
    { arbitrary: fc.boolean().map((json) => serialize(valid, json)), weight: 1 },
    { arbitrary: fc.tuple(fc.jsonValue({ maxDepth: 4 }), fc.boolean()).map(([v, json]) => serialize(v, json)), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 300 }), weight: 1 },
    { arbitrary: fc.tuple(fc.constantFrom(...fragments), fc.boolean()).map(([f, withValid]) => (withValid ? `${serialize(valid, false)}${f}` : f)), weight: 2 },
  );
  const env = fc.dictionary(
    fc.constantFrom(...ENV_OVERRIDES.map((o) => o.env)),
    fc.oneof(fc.constantFrom('', '0', '-1', '1e999', 'NaN', '99999', 'redis://:secret@127.0.0.1:1', 'not a url', 'upsert-only', 'debug', '{x}'), fc.string({ maxLength: 20 })),
    { maxKeys: 3 },
  );

  it('either load, with every duration a timer can wait for, or throw a VmsError with a VMS_ERR_CONFIG_* code', () => {
    let loaded = 0;
    let refused = 0;
    let n = 0;
    fc.assert(
      fc.property(text, env, (content, vars) => {
        const file = path.join(dir, `config-${n++}.yaml`);
        writeFileSync(file, content);
        let config: Readonly<Config>;
        try {
          config = loadConfig(file, vars);
        } catch (err) {
          refused++;
          expectCoded(err, 'VMS_ERR_CONFIG_');
          return;
        }
        loaded++;
        expect(Object.isFrozen(config)).toBe(true);
        const durations = [config.resync.interval, config.resync.timeout, config.queue.backoff, config.queue.stalledAfter];
        for (const p of config.providers) {
          if (p.type === 'aws') durations.push(p.timeout);
          if (p.type === 'gcp') durations.push(p.timeout, p.retryDelay);
          if (p.type === 'azure') durations.push(p.timeout, p.retryDelay, p.maxRetryDelay);
        }
        for (const ms of durations) {
          expect(Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_DURATION_MS, `duration ${ms}`).toBe(true);
        }
      }),
      { numRuns: 500, seed: 500 },
    );
    expect(loaded).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(100);
  });
});

function serialize(value: unknown, json: boolean): string {
  if (value === undefined) return '';
  return json ? JSON.stringify(value) : stringify(value);
}

describe('inventory files', () => {
  const INVENTORY_CODES = ['VMS_ERR_INVENTORY_NOT_FOUND', 'VMS_ERR_INVENTORY_PARSE', 'VMS_ERR_INVENTORY_ENTRY'];
  let dir: string;
  let cluster: FakeKubeApiServer;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'vms-bad-inventory-'));
    cluster = new FakeKubeApiServer();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const validDoc = { machines: [meshMachine('pg-1', '10.0.0.1'), { ...meshMachine('pg-2', '10.0.0.2'), publicIPv4: ['203.0.113.2'], ipv6: ['2001:db8::2'] }, { id: 'bare' }] };
  const validText = readFileSync(path.join(FIXTURES, 'inventories/valid.yaml'), 'utf8');
  const text = fc.oneof(
    { arbitrary: fc.tuple(mutations(5), fc.boolean()).map(([m, json]) => serialize(applyMutations(validDoc, m), json)), weight: 6 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 300 }), weight: 1 },
    { arbitrary: fc.tuple(fc.jsonValue({ maxDepth: 4 }), fc.boolean()).map(([v, json]) => serialize(v, json)), weight: 1 },
    // Cut or spliced real files: half-written inventories.
    { arbitrary: fc.tuple(fc.nat(validText.length), fc.nat(validText.length), fc.string({ maxLength: 10 })).map(([a, b, s]) => validText.slice(0, a) + s + validText.slice(b)), weight: 2 },
  );

  it('never throw; every problem carries an inventory code; what is read maps to entries the API server accepts', async () => {
    let machines = 0;
    let entries = 0;
    let n = 0;
    await fc.assert(
      fc.asyncProperty(text, async (content) => {
        const parsed = parseInventory(content, 'inventory.yaml');
        expect(parsed.complete).toBe(parsed.problems.length === 0);
        for (const p of parsed.problems) expect(INVENTORY_CODES).toContain(p.code);
        expect(new Set(parsed.machines.map((m) => m.id)).size).toBe(parsed.machines.length);
        // The file path gives the same answer.
        const file = path.join(dir, `inventory-${n++}.yaml`);
        writeFileSync(file, content);
        const read = await readInventory(file);
        expect(read.machines).toEqual(parsed.machines);
        expect(read.problems.map((p) => p.code)).toEqual(parsed.problems.map((p) => p.code));

        machines += parsed.machines.length;
        const instances: Instance[] = parsed.machines.map((m) => ({ provider: 'static', account: 'onprem', ...m, observedAt: '2025-01-01T00:00:00.000Z' }));
        const mapped = mapInstances(instances, parseConfig({ providers: [{ type: 'static', name: 'onprem', inventory: 'x' }] }).mapping, { ownerId: 'default', scopeKey: 'static:onprem', observedAt: '2025-01-01T00:00:00.000Z' });
        for (const entry of mapped.entries) {
          entries++;
          expectAccepted(cluster, entry);
        }
      }),
      { numRuns: 400, seed: 400 },
    );
    expect(machines).toBeGreaterThan(100);
    expect(entries).toBeGreaterThan(50);
    expect(unhandled).toEqual([]);
  });

  it('one with many garbage entries and a few good ones: sync --once writes the good ones, deletes nothing and exits 1 naming the scope', async () => {
    const garbage = fc.sample(
      fc.tuple(mutations(3), fc.nat()).map(([m, i]) => applyMutations(validDoc.machines[i % validDoc.machines.length], m)),
      { numRuns: 150, seed: 42 },
    );
    const good = Array.from({ length: 5 }, (_, i) => meshMachine(`good-${i}`, `10.50.0.${i + 1}`));
    // Good machines spread between the garbage.
    const machines: unknown[] = [...garbage];
    good.forEach((m, i) => machines.splice(i * 30, 0, m));
    const server = new FakeKubeApiServer();
    await server.start();
    const ws = new Workspace();
    try {
      ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) }, log: { level: 'silent' } });
      ws.writeInventoryText(stringify({ machines }));
      const run = await runCli(['sync', '--once', '--config', ws.configFile]);
      expect(run.code).toBe(1);
      expect(run.stderr).not.toMatch(/\n\s+at /);
      const summary = JSON.parse(run.stdout) as { incompleteScopes: string[]; failed: unknown[] };
      expect(summary.incompleteScopes).toEqual(['static:onprem']);
      const names = new Set(server.objects('workloadentries', 'default').map((e) => e.metadata.name as string));
      for (const m of good) expect(names.has(`static-${m.id}`), m.id).toBe(true);
      expect(server.counts.total('delete')).toBe(0);
    } finally {
      await server.close();
      ws.remove();
    }
  });
});

describe('tag values', () => {
  const keys = ['mesh', 'mesh-app', 'mesh-version', 'mesh-namespace', 'mesh-service-account', 'mesh-ports', 'mesh-address', 'mesh-network', 'mesh-weight'];
  const key = fc.oneof(
    { arbitrary: fc.constantFrom(...keys), weight: 6 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 70 }).map((s) => `mesh-label-${s}`), weight: 2 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 20 }), weight: 1 },
  );
  const value = fc.oneof(
    { arbitrary: fc.string({ unit: 'binary', maxLength: 80 }), weight: 2 },
    { arbitrary: fc.stringMatching(/^[a-zA-Z0-9:=,;_ .\-/]{0,80}$/), weight: 3 },
    { arbitrary: anyValue.map((v) => (typeof v === 'string' ? v : JSON.stringify(v) ?? '')), weight: 1 },
    { arbitrary: fc.constantFrom('true', 'TRUE', 'postgres:5432', 'http:80,grpc:9090', 'a:0', 'a:65536', 'x'.repeat(64), '1', '4294967296', 'ipv6', 'public-ipv4', 'default', 'kube-system'), weight: 2 },
  );
  const instance: fc.Arbitrary<Instance> = fc.record({
    provider: fc.constantFrom('static', 'aws', 'gcp', 'azure'),
    account: fc.constantFrom('123456789012', 'shop-prod', 'onprem'),
    region: fc.oneof(fc.constantFrom('us-east-1', 'europe-west1', ''), fc.string({ unit: 'binary', maxLength: 40 })),
    zone: fc.oneof(fc.constantFrom('us-east-1a', '', '1'), fc.string({ unit: 'binary', maxLength: 40 })),
    id: fc.oneof(fc.stringMatching(/^i-[0-9a-f]{17}$/), fc.string({ unit: 'binary', maxLength: 80 })),
    name: fc.string({ maxLength: 20 }),
    state: fc.constant('running' as const),
    privateIPv4s: fc.array(fc.oneof(fc.ipV4(), fc.string({ maxLength: 16 })), { minLength: 1, maxLength: 2 }),
    publicIPv4s: fc.array(fc.ipV4(), { maxLength: 1 }),
    ipv6s: fc.array(fc.ipV6(), { maxLength: 1 }),
    tags: fc.dictionary(key, value, { maxKeys: 10 }).map((tags) => ({ ...tags, mesh: 'true' })),
    observedAt: fc.constant('2025-01-01T00:00:00.000Z'),
  });

  it('map to skips with a code or to entries that pass checkEntry and Istio’s CRD schema and rules on the API server', () => {
    const cluster = new FakeKubeApiServer();
    const rules = parseConfig({ providers: [{ type: 'static', name: 'onprem', inventory: 'x' }], mapping: { serviceAccount: { default: 'vm' } } }).mapping;
    let entries = 0;
    let refusedNamespaces = 0;
    fc.assert(
      fc.property(fc.array(instance, { minLength: 1, maxLength: 5 }), (instances) => {
        // The shipped namespace policy: the default namespace alone.
        const { entries: mapped, skips } = mapInstances(instances, rules, { ownerId: 'default', scopeKey: 'fuzz', observedAt: '2025-01-01T00:00:00.000Z' });
        expect(mapped.length + skips.length).toBe(instances.length);
        for (const skip of skips) expect(skip.code).toMatch(/^VMS_SKIP_[A-Z_]+$/);
        refusedNamespaces += skips.filter((s) => s.code === 'VMS_SKIP_NAMESPACE_NOT_ALLOWED').length;
        for (const entry of mapped) {
          entries++;
          // A tag never places an endpoint outside the allowed namespaces (kube-system included).
          expect(entry.metadata.namespace).toBe('default');
          expectAccepted(cluster, entry);
        }
      }),
      { numRuns: 400, seed: 400 },
    );
    expect(entries).toBeGreaterThan(50);
    expect(refusedNamespaces).toBeGreaterThan(10);
  });
});

/** Expects `entry` to pass checkEntry and the fake API server's validation (Istio's CRD schema and CEL rules). */
function expectAccepted(cluster: FakeKubeApiServer, entry: WorkloadEntry): void {
  expect(checkEntry(entry)).toEqual([]);
  cluster.createNamespace(entry.metadata.namespace);
  // As the writer sends it: a desired entry in compact form as the WorkloadEntry it reads as.
  expect(() => cluster.put(structuredClone(plainEntry(entry)) as never, { validate: true }), JSON.stringify(entry)).not.toThrow();
  cluster.remove('workloadentries', entry.metadata.namespace, entry.metadata.name);
}
