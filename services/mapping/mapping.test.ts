import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mappingSchema, type MappingConfig } from '../../config/schema.ts';
import { INSTANCE_STATES, type Instance, type MapResult, type Skip, type WorkloadEntry } from '../model.ts';
import {
  checkEntry,
  entryName,
  indexAutoRegistered,
  ListingMapper,
  type MapContext,
  mapInstance,
  mapInstances,
  nameLabelValue,
  normalizeLabelValue,
  SKIP_CODES,
  skipKeepsEntry,
  type SkipCode,
} from './index.ts';
import { runSync } from '../slices.ts';
import { isLabelValue } from './syntax.ts';

// Most cases are about other tags: any namespace is allowed here; the namespace policy has its own cases.
const CTX = { ownerId: 'prod', scopeKey: 'aws:prod:123456789012:us-east-1', observedAt: '2025-01-01T00:00:00.000Z', namespaces: { global: ['*'] } };
const RULES: MappingConfig = mappingSchema.parse({});

/** Rules as config would give them: the patch goes through the schema, defaults fill the rest. */
function rules(patch: Record<string, unknown>): MappingConfig {
  return mappingSchema.parse(patch);
}

function vm(over: Partial<Instance> = {}): Instance {
  return {
    provider: 'aws',
    account: '123456789012',
    region: 'us-east-1',
    zone: 'us-east-1a',
    id: 'i-0abc',
    name: 'db-1',
    state: 'running',
    privateIPv4s: ['10.0.0.5'],
    publicIPv4s: [],
    ipv6s: [],
    networkId: 'vpc-1',
    tags: { mesh: 'true' },
    observedAt: '2025-01-01T00:00:00.000Z',
    ...over,
  };
}

/** An instance selected by the default rules, with extra tags. */
function tagged(tags: Record<string, string>, over: Partial<Instance> = {}): Instance {
  return vm({ ...over, tags: { mesh: 'true', ...tags } });
}

function entryOf(result: MapResult): WorkloadEntry {
  if (result.kind !== 'entry') throw new Error(`expected an entry, got ${result.skip.code}: ${result.skip.reason}`);
  return result.entry;
}

function skipOf(result: MapResult): Skip {
  if (result.kind !== 'skip') throw new Error(`expected a skip, got entry ${result.entry.metadata.name}`);
  return result.skip;
}

describe('seed example', () => {
  it('maps two tagged postgres VMs to entries with app label, port, service account and locality', () => {
    const tags = { mesh: 'true', 'mesh-app': 'postgres', 'mesh-ports': 'postgres:5432', 'mesh-service-account': 'postgres-vm' };
    const a = vm({ id: 'i-0aaa', name: 'pg-a', tags, privateIPv4s: ['10.0.1.10'] });
    const b = vm({ id: 'i-0bbb', name: 'pg-b', tags, privateIPv4s: ['10.0.1.11'] });
    const { entries, skips } = mapInstances([a, b], RULES, CTX);
    expect(skips).toEqual([]);
    expect(entries).toEqual(
      [a, b].map((instance) => ({
        apiVersion: 'networking.istio.io/v1',
        kind: 'WorkloadEntry',
        metadata: {
          name: `aws-${instance.id}`,
          namespace: 'default',
          labels: { 'app.kubernetes.io/managed-by': 'vm-mesh-sync', 'vm-mesh-sync.io/name': `aws-${instance.id}`, 'vm-mesh-sync.io/owner': 'prod' },
          annotations: {
            'vm-mesh-sync.io/source': `aws:123456789012:us-east-1:${instance.id}`,
            'vm-mesh-sync.io/scope': CTX.scopeKey,
            'vm-mesh-sync.io/observed-at': '2025-01-01T00:00:00.000Z',
          },
        },
        spec: {
          address: instance.privateIPv4s[0],
          ports: { postgres: 5432 },
          labels: { app: 'postgres' },
          serviceAccount: 'postgres-vm',
          locality: 'us-east-1/us-east-1a',
        },
      })),
    );
    for (const entry of entries) expect(checkEntry(entry)).toEqual([]);
  });
});

describe('service tag', () => {
  const OWNER = 'vm-mesh-sync.io/installation';
  const SERVICE = 'vm-mesh-sync.io/service';
  const cases: Array<{ name: string; tags: Record<string, string>; rules?: MappingConfig; labels: Record<string, string> | undefined }> = [
    { name: 'absent: no service labels', tags: {}, labels: undefined },
    { name: 'blank: no service labels', tags: { 'mesh-service': '  ' }, labels: undefined },
    { name: 'a name', tags: { 'mesh-service': 'postgres' }, labels: { [OWNER]: 'prod', [SERVICE]: 'postgres' } },
    { name: 'trimmed and lowercased', tags: { 'mesh-service': ' Postgres ' }, labels: { [OWNER]: 'prod', [SERVICE]: 'postgres' } },
    { name: 'inner spaces become dashes', tags: { 'mesh-service': 'orders  db' }, labels: { [OWNER]: 'prod', [SERVICE]: 'orders-db' } },
    { name: 'beside labels from tags, sorted', tags: { 'mesh-service': 'pg', 'mesh-app': 'postgres' }, labels: { app: 'postgres', [OWNER]: 'prod', [SERVICE]: 'pg' } },
    { name: 'the tag name is configurable', tags: { svc: 'api', 'mesh-service': 'ignored' }, rules: rules({ service: { tag: 'svc' } }), labels: { [OWNER]: 'prod', [SERVICE]: 'api' } },
    { name: 'a broad tag prefix does not turn the service tag into a label', tags: { 'mesh-service': 'pg' }, rules: rules({ labels: { tagPrefix: 'mesh-' } }), labels: { [OWNER]: 'prod', [SERVICE]: 'pg' } },
    { name: 'nor the health tag', tags: { 'mesh-service': 'pg', 'mesh-health': 'tcp:5432' }, rules: rules({ labels: { tagPrefix: 'mesh-' } }), labels: { [OWNER]: 'prod', [SERVICE]: 'pg' } },
  ];

  it.each(cases)('$name', ({ tags, rules: r, labels }) => {
    const entry = entryOf(mapInstance(tagged(tags), r ?? RULES, CTX));
    expect(entry.spec.labels).toEqual(labels);
    expect(checkEntry(entry)).toEqual([]);
  });

  it('gives every valid service name an entry whose service label is that name', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/), (name) => {
        const entry = entryOf(mapInstance(tagged({ 'mesh-service': name }), RULES, CTX));
        expect(entry.spec.labels?.[SERVICE]).toBe(name);
        expect(checkEntry(entry)).toEqual([]);
      }),
    );
  });
});

describe('skip codes', () => {
  const autoRegistered = indexAutoRegistered([
    { key: 'vms/reviews-10.0.0.5', address: '10.0.0.5', autoRegistrationGroup: 'reviews' },
  ]);
  const cases: Array<{ name: string; instance: Instance; rules?: MappingConfig; ctx?: MapContext; code: SkipCode; reason: string | RegExp }> = [
    { name: 'no selector tag', instance: vm({ tags: {} }), code: 'VMS_SKIP_NOT_SELECTED', reason: /^not tagged mesh=true;/ },
    { name: 'selector tag with another value', instance: vm({ tags: { mesh: 'false' } }), code: 'VMS_SKIP_NOT_SELECTED', reason: "its mesh tag is 'false'" },
    {
      name: 'any-value selector without the tag',
      instance: vm({ tags: {} }),
      rules: rules({ selector: { value: '*' } }),
      code: 'VMS_SKIP_NOT_SELECTED',
      reason: 'has no mesh tag; only instances with one get an entry',
    },
    { name: 'stopped', instance: vm({ state: 'stopped' }), code: 'VMS_SKIP_NOT_RUNNING', reason: 'the instance is stopped, not running' },
    { name: 'terminated', instance: vm({ state: 'terminated' }), code: 'VMS_SKIP_NOT_RUNNING', reason: 'is terminated' },
    {
      name: 'no private IPv4',
      instance: vm({ privateIPv4s: [], publicIPv4s: ['54.1.2.3'] }),
      code: 'VMS_SKIP_NO_ADDRESS',
      reason: 'the instance has no private IPv4 address (address.prefer is private-ipv4); give it one, or tag it mesh-address=first-available to use any address it has',
    },
    { name: 'unknown address choice', instance: tagged({ 'mesh-address': 'private' }), code: 'VMS_SKIP_BAD_ADDRESS_TAG', reason: "tag mesh-address: 'private' is not an address choice" },
    {
      name: 'port out of range',
      instance: tagged({ 'mesh-ports': 'pg:99999' }),
      code: 'VMS_SKIP_BAD_PORTS',
      reason: "tag mesh-ports: 'pg:99999' is not a port (use name:port with a port from 1 to 65535)",
    },
    {
      name: 'label value with nothing usable',
      instance: tagged({ 'mesh-app': '日本語' }),
      code: 'VMS_SKIP_BAD_LABEL',
      reason: "tag mesh-app: '日本語' cannot be a label value, nothing usable is left of it (use up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)",
    },
    { name: 'prefix tag naming a bad label key', instance: tagged({ 'mesh-label-Team Name': 'x' }), code: 'VMS_SKIP_BAD_LABEL', reason: "tag 'mesh-label-Team Name' would set the label 'Team Name', which is not a valid label key" },
    { name: 'prefix tag with nothing after the prefix', instance: tagged({ 'mesh-label-': 'x' }), code: 'VMS_SKIP_BAD_LABEL', reason: "would set the label ''" },
    { name: 'a label tag naming the service label', instance: tagged({ 'mesh-service': 'pg', 'mesh-label-vm-mesh-sync.io/service': 'other' }), code: 'VMS_SKIP_BAD_LABEL', reason: "sets the label 'vm-mesh-sync.io/service', which vm-mesh-sync sets itself" },
    { name: 'a label tag naming the installation label', instance: tagged({ 'mesh-label-vm-mesh-sync.io/installation': 'other' }), code: 'VMS_SKIP_BAD_LABEL', reason: "'vm-mesh-sync.io/installation', which vm-mesh-sync sets itself" },
    { name: 'a label tag naming the managed-by label', instance: tagged({ 'mesh-label-app.kubernetes.io/managed-by': 'vm-mesh-sync' }), code: 'VMS_SKIP_BAD_LABEL', reason: "'app.kubernetes.io/managed-by', which vm-mesh-sync sets itself" },
    { name: 'namespace with underscore', instance: tagged({ 'mesh-namespace': 'team_payments' }), code: 'VMS_SKIP_BAD_NAMESPACE', reason: "tag mesh-namespace: 'team_payments' is not a namespace name" },
    { name: 'namespace too long', instance: tagged({ 'mesh-namespace': 'n'.repeat(64) }), code: 'VMS_SKIP_BAD_NAMESPACE', reason: 'at most 63 characters' },
    { name: 'namespace with a dot', instance: tagged({ 'mesh-namespace': 'team.a' }), code: 'VMS_SKIP_BAD_NAMESPACE', reason: "'team.a'" },
    {
      name: 'service account with underscore',
      instance: tagged({ 'mesh-service-account': 'postgres_vm' }),
      code: 'VMS_SKIP_BAD_SERVICE_ACCOUNT',
      reason: "tag mesh-service-account: 'postgres_vm' is not a service account name",
    },
    {
      name: 'bad service account default',
      instance: vm(),
      // The config schema refuses this value; mapping still guards against it.
      rules: { ...rules({}), serviceAccount: { ...rules({}).serviceAccount, default: 'Bad Account' } },
      code: 'VMS_SKIP_BAD_SERVICE_ACCOUNT',
      reason: "mapping.serviceAccount.default: 'Bad Account'",
    },
    { name: 'weight zero', instance: tagged({ 'mesh-weight': '0' }), code: 'VMS_SKIP_BAD_WEIGHT', reason: "tag mesh-weight: '0' is not a weight (use a whole number from 1 to 4294967295)" },
    { name: 'network with a space', instance: tagged({ 'mesh-network': 'my net' }), code: 'VMS_SKIP_BAD_NETWORK', reason: "tag mesh-network: 'my net' is not a network name" },
    {
      name: 'bad network from byNetworkId',
      instance: vm({ networkId: 'vpc-9' }),
      // The config schema refuses this value; mapping still guards against it.
      rules: { ...rules({}), network: { ...rules({}).network, byNetworkId: { 'vpc-9': 'net/west' } } },
      code: 'VMS_SKIP_BAD_NETWORK',
      reason: "mapping.network.byNetworkId['vpc-9']: 'net/west'",
    },
    { name: 'service with an underscore', instance: tagged({ 'mesh-service': 'pg_main' }), code: 'VMS_SKIP_BAD_SERVICE', reason: "tag mesh-service: 'pg_main' is not a service name" },
    { name: 'service starting with a digit', instance: tagged({ 'mesh-service': '9pg' }), code: 'VMS_SKIP_BAD_SERVICE', reason: 'starting with a letter' },
    { name: 'service too long', instance: tagged({ 'mesh-service': `s${'x'.repeat(63)}` }), code: 'VMS_SKIP_BAD_SERVICE', reason: 'at most 63 characters' },
    { name: 'region too long for a locality', instance: vm({ region: 'r'.repeat(2049) }), code: 'VMS_SKIP_BAD_LOCALITY', reason: 'longer than 2048 characters' },
    {
      name: 'health tag that names no probe',
      instance: tagged({ 'mesh-health': 'true' }),
      code: 'VMS_SKIP_BAD_HEALTH',
      reason: "tag mesh-health: 'true' names no probe; the Istio agent on the VM needs one to report health (use http:PORT/PATH",
    },
    {
      name: 'health tag under a configured name',
      instance: tagged({ probe: 'http:0/x' }),
      rules: rules({ health: { tag: 'probe' } }),
      code: 'VMS_SKIP_BAD_HEALTH',
      reason: "tag probe: 'http:0/x' has '0' where a port from 1 to 65535 belongs",
    },
    {
      name: 'address and network of an auto-registered entry',
      instance: vm(),
      ctx: { ...CTX, autoRegistered },
      code: 'VMS_SKIP_AUTO_REGISTERED',
      reason: "Istio auto-registered this VM as WorkloadEntry vms/reviews-10.0.0.5 (WorkloadGroup 'reviews', address 10.0.0.5, no network)",
    },
    {
      name: 'auto-registered wins over a bad tag, which would keep our entry',
      instance: tagged({ 'mesh-ports': 'pg:99999', 'mesh-namespace': 'Bad_NS' }),
      ctx: { ...CTX, autoRegistered },
      code: 'VMS_SKIP_AUTO_REGISTERED',
      reason: 'would make Istio see the VM twice, so it gets none and any it has is deleted',
    },
  ];

  it.each(cases)('$name → $code', ({ instance, rules: r, ctx, code, reason }) => {
    const skip = skipOf(mapInstance(instance, r ?? RULES, ctx ?? CTX));
    expect(skip.code).toBe(code);
    if (typeof reason === 'string') expect(skip.reason).toContain(reason);
    else expect(skip.reason).toMatch(reason);
    expect(skip.keepsEntry).toBe(code !== 'VMS_SKIP_NOT_SELECTED' && code !== 'VMS_SKIP_NOT_RUNNING' && code !== 'VMS_SKIP_AUTO_REGISTERED');
  });

  it('has a case for every code', () => {
    const covered = new Set<string>([...cases.map((c) => c.code), 'VMS_SKIP_DUPLICATE_NAME', 'VMS_SKIP_NAMESPACE_NOT_ALLOWED',
      // Decided across the VMs of a service: services/mapping/mesh-services.test.ts.
      'VMS_SKIP_SERVICE_PORT_CONFLICT']);
    expect([...covered].sort()).toEqual(Object.keys(SKIP_CODES).sort());
  });

  it('carries the instance, scope and source', () => {
    const skip = skipOf(mapInstance(vm({ state: 'pending' }), RULES, CTX));
    expect(skip).toEqual({
      instance: { provider: 'aws', account: '123456789012', region: 'us-east-1', zone: 'us-east-1a', id: 'i-0abc', name: 'db-1' },
      scopeKey: CTX.scopeKey,
      source: 'aws:123456789012:us-east-1:i-0abc',
      code: 'VMS_SKIP_NOT_RUNNING',
      reason: 'the instance is pending, not running; it gets an entry again when it runs',
      keepsEntry: false,
    });
  });

  it('checks selection before state and state before values', () => {
    expect(skipOf(mapInstance(vm({ state: 'stopped', tags: { 'mesh-ports': 'x:0' } }), RULES, CTX)).code).toBe('VMS_SKIP_NOT_SELECTED');
    expect(skipOf(mapInstance(tagged({ 'mesh-ports': 'x:0' }, { state: 'stopped' }), RULES, CTX)).code).toBe('VMS_SKIP_NOT_RUNNING');
  });

  it('keeps reasons on one line even for tag values with newlines', () => {
    const skip = skipOf(mapInstance(tagged({ 'mesh-weight': 'a\nb' }), RULES, CTX));
    expect(skip.reason).toContain("'a\\u000ab'");
    expect(skip.reason).not.toContain('\n');
  });
});

describe('selector', () => {
  const cases: Array<{ tags: Record<string, string>; selector?: Record<string, string>; selected: boolean }> = [
    { tags: { mesh: 'true' }, selected: true },
    { tags: { mesh: 'TRUE' }, selected: true },
    { tags: { mesh: ' True ' }, selected: true },
    { tags: { mesh: 'yes' }, selected: false },
    { tags: { mesh: '' }, selected: false },
    { tags: { Mesh: 'true' }, selected: false },
    { tags: { mesh: 'anything' }, selector: { value: '*' }, selected: true },
    { tags: { mesh: '' }, selector: { value: '*' }, selected: true },
    { tags: {}, selector: { value: '*' }, selected: false },
    { tags: { 'service-mesh': 'Enabled' }, selector: { tag: 'service-mesh', value: 'enabled' }, selected: true },
    { tags: { mesh: 'true' }, selector: { tag: 'service-mesh', value: 'enabled' }, selected: false },
  ];
  it.each(cases)('$tags with $selector → $selected', ({ tags, selector, selected }) => {
    const result = mapInstance(vm({ tags }), rules({ selector: selector ?? {} }), CTX);
    expect(result.kind === 'entry').toBe(selected);
    if (!selected) expect(skipOf(result).code).toBe('VMS_SKIP_NOT_SELECTED');
  });
});

describe('label values', () => {
  const cases: Array<[string, string]> = [
    ['postgres', 'postgres'],
    ['  Payments Team ', 'Payments-Team'],
    ['a \t\n b', 'a-b'],
    ['v1.2_3', 'v1.2_3'],
    ['a/b:c', 'a-b-c'],
    ['a@@b', 'a--b'],
    ['café', 'caf'],
    ['a😀b', 'a-b'],
    ['--abc--', 'abc'],
    ['_.x._', 'x'],
    ['x'.repeat(70), 'x'.repeat(63)],
    [`${'a'.repeat(62)}-b`, 'a'.repeat(62)],
    ['日本', ''],
    ['', ''],
  ];
  it.each(cases)('%j → %j', (raw, expected) => {
    expect(normalizeLabelValue(raw)).toBe(expected);
  });
});

describe('labels', () => {
  const staticRules = rules({ labels: { static: { app: 'static', tier: 'db' } } });
  const cases: Array<{ name: string; tags: Record<string, string>; rules?: MappingConfig; labels: Record<string, string> | undefined }> = [
    { name: 'none', tags: {}, labels: undefined },
    { name: 'fromTags', tags: { 'mesh-app': 'postgres', 'mesh-version': 'v14' }, labels: { app: 'postgres', version: 'v14' } },
    { name: 'prefix', tags: { 'mesh-label-team': 'payments', 'mesh-label-example.com/tier': 'gold' }, labels: { team: 'payments', 'example.com/tier': 'gold' } },
    { name: 'static only', tags: {}, rules: staticRules, labels: { app: 'static', tier: 'db' } },
    { name: 'prefix overrides static', tags: { 'mesh-label-app': 'prefix' }, rules: staticRules, labels: { app: 'prefix', tier: 'db' } },
    { name: 'fromTags overrides prefix and static', tags: { 'mesh-label-app': 'prefix', 'mesh-app': 'tagged' }, rules: staticRules, labels: { app: 'tagged', tier: 'db' } },
    {
      name: 'first fromTags entry wins for the same label',
      tags: { 'mesh-app': 'first', app: 'second' },
      rules: rules({ labels: { fromTags: { 'mesh-app': 'app', app: 'app' } } }),
      labels: { app: 'first' },
    },
    {
      name: 'later fromTags entry used when the first tag is absent',
      tags: { app: 'second' },
      rules: rules({ labels: { fromTags: { 'mesh-app': 'app', app: 'app' } } }),
      labels: { app: 'second' },
    },
    { name: 'values normalized', tags: { 'mesh-app': ' Order Service ' }, labels: { app: 'Order-Service' } },
    { name: 'empty value kept as empty label', tags: { 'mesh-app': '' }, labels: { app: '' } },
    { name: 'blank value becomes an empty label', tags: { 'mesh-app': '   ' }, labels: { app: '' } },
    {
      name: 'broad prefix leaves control tags alone',
      tags: { 'mesh-team': 'payments', 'mesh-ports': '80', 'mesh-namespace': 'apps' },
      rules: rules({ labels: { tagPrefix: 'mesh-', fromTags: {} } }),
      labels: { team: 'payments' },
    },
    { name: 'empty prefix turns prefix labels off', tags: { 'mesh-label-team': 'x' }, rules: rules({ labels: { tagPrefix: '' } }), labels: undefined },
    { name: 'inherited key names are ordinary tags', tags: { constructor: 'x', 'mesh-label-constructor': 'y' }, labels: { constructor: 'y' } },
  ];
  it.each(cases)('$name', ({ tags, rules: r, labels }) => {
    expect(entryOf(mapInstance(tagged(tags), r ?? RULES, CTX)).spec.labels).toEqual(labels);
  });

  it('skips more than 256 labels, accepts 256', () => {
    const many = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`mesh-label-l${i}`, 'x']));
    expect(Object.keys(entryOf(mapInstance(tagged(many(256)), RULES, CTX)).spec.labels ?? {})).toHaveLength(256);
    const skip = skipOf(mapInstance(tagged(many(257)), RULES, CTX));
    expect(skip.code).toBe('VMS_SKIP_BAD_LABEL');
    expect(skip.reason).toContain('257 labels; a WorkloadEntry takes at most 256');
  });

  it('orders labels by key whatever the tag order', () => {
    const entry = entryOf(mapInstance(tagged({ 'mesh-label-zone': 'a', 'mesh-app': 'x', 'mesh-label-b': 'c' }), RULES, CTX));
    expect(Object.keys(entry.spec.labels ?? {})).toEqual(['app', 'b', 'zone']);
  });

  it('puts only ownership labels in metadata', () => {
    const entry = entryOf(mapInstance(tagged({ 'mesh-app': 'postgres', 'mesh-label-team': 'a' }), RULES, CTX));
    expect(entry.metadata.labels).toEqual({ 'app.kubernetes.io/managed-by': 'vm-mesh-sync', 'vm-mesh-sync.io/name': entry.metadata.name, 'vm-mesh-sync.io/owner': 'prod' });
  });
});

describe('namespace', () => {
  const cases: Array<{ tags: Record<string, string>; rules?: MappingConfig; namespace: string }> = [
    { tags: {}, namespace: 'default' },
    { tags: {}, rules: rules({ namespace: { default: 'vms' } }), namespace: 'vms' },
    { tags: { 'mesh-namespace': 'Payments' }, namespace: 'payments' },
    { tags: { 'mesh-namespace': ' Payments  Team ' }, namespace: 'payments-team' },
    { tags: { 'mesh-namespace': '' }, namespace: 'default' },
    { tags: { 'mesh-namespace': '   ' }, rules: rules({ namespace: { default: 'vms' } }), namespace: 'vms' },
    { tags: { 'mesh-namespace': 'n'.repeat(63) }, namespace: 'n'.repeat(63) },
  ];
  it.each(cases)('$tags → $namespace', ({ tags, rules: r, namespace }) => {
    expect(entryOf(mapInstance(tagged(tags), r ?? RULES, CTX)).metadata.namespace).toBe(namespace);
  });

  it('stamps the entry with the observation of the context, not the time the provider read the instance', () => {
    const entry = entryOf(mapInstance(tagged({}, { observedAt: '2030-01-01T00:00:00.000Z' }), RULES, { ...CTX, observedAt: '2025-06-01T00:00:00.000001Z' }));
    expect(entry.metadata.annotations['vm-mesh-sync.io/observed-at']).toBe('2025-06-01T00:00:00.000001Z');
  });

  it('names the config key when the default is bad', () => {
    const bad: MappingConfig = { ...RULES, namespace: { ...RULES.namespace, default: 'Not_A_Namespace' } };
    const skip = skipOf(mapInstance(vm(), bad, CTX));
    expect(skip.code).toBe('VMS_SKIP_BAD_NAMESPACE');
    expect(skip.reason).toContain("mapping.namespace.default: 'Not_A_Namespace'");
  });
});

describe('namespace policy', () => {
  const policyCtx = (global: string[], block?: string[]) => ({ ...CTX, namespaces: block ? { global, block } : { global } });
  const cases: Array<{ name: string; tags: Record<string, string>; global: string[]; block?: string[]; namespace?: string }> = [
    { name: 'no policy given: the default namespace alone', tags: {}, global: ['default'], namespace: 'default' },
    { name: 'a tag outside the default list', tags: { 'mesh-namespace': 'istio-system' }, global: ['default'] },
    { name: 'kube-system is refused like any other', tags: { 'mesh-namespace': 'kube-system' }, global: ['default', 'databases'] },
    { name: 'an exact name in the list', tags: { 'mesh-namespace': 'databases' }, global: ['default', 'databases'], namespace: 'databases' },
    { name: 'a glob', tags: { 'mesh-namespace': 'team-payments' }, global: ['team-*'], namespace: 'team-payments' },
    { name: 'a glob matches whole names only', tags: { 'mesh-namespace': 'my-team-payments' }, global: ['team-*'] },
    { name: 'the block list narrows the global one', tags: { 'mesh-namespace': 'team-b' }, global: ['team-*'], block: ['team-a'] },
    { name: 'the block list cannot widen the global one', tags: { 'mesh-namespace': 'other' }, global: ['team-*'], block: ['other'] },
    { name: 'a name in both lists', tags: { 'mesh-namespace': 'team-a' }, global: ['team-*'], block: ['team-a'], namespace: 'team-a' },
    { name: 'the default namespace is checked too', tags: {}, global: ['databases'] },
  ];
  it.each(cases)('$name', ({ tags, global, block, namespace }) => {
    const result = mapInstance(tagged(tags), RULES, policyCtx(global, block));
    if (namespace !== undefined) {
      expect(entryOf(result).metadata.namespace).toBe(namespace);
      return;
    }
    const skip = skipOf(result);
    expect(skip.code).toBe('VMS_SKIP_NAMESPACE_NOT_ALLOWED');
    expect(skip.reason).toContain('mapping.namespace.allowed');
    // A namespace tag outside the list is a value we cannot use: an entry the VM has stays.
    expect(skip.keepsEntry).toBe(true);
  });

  it('without a policy in the context, only mapping.namespace.default is allowed', () => {
    const { namespaces: _dropped, ...bare } = CTX;
    expect(skipOf(mapInstance(tagged({ 'mesh-namespace': 'istio-system', 'mesh-app': 'istiod' }), RULES, bare)).code).toBe('VMS_SKIP_NAMESPACE_NOT_ALLOWED');
    expect(entryOf(mapInstance(tagged({}), RULES, bare)).metadata.namespace).toBe('default');
  });
});

describe('service account', () => {
  const cases: Array<{ tags: Record<string, string>; rules?: MappingConfig; serviceAccount: string | undefined }> = [
    { tags: {}, serviceAccount: undefined },
    { tags: { 'mesh-service-account': 'Postgres-VM' }, serviceAccount: 'postgres-vm' },
    { tags: { 'mesh-service-account': ' db.reader ' }, serviceAccount: 'db.reader' },
    { tags: {}, rules: rules({ serviceAccount: { default: 'vm-default' } }), serviceAccount: 'vm-default' },
    { tags: { 'mesh-service-account': '' }, rules: rules({ serviceAccount: { default: 'vm-default' } }), serviceAccount: undefined },
    { tags: { 'mesh-service-account': 's'.repeat(253) }, serviceAccount: 's'.repeat(253) },
  ];
  it.each(cases)('$tags → $serviceAccount', ({ tags, rules: r, serviceAccount }) => {
    const entry = entryOf(mapInstance(tagged(tags), r ?? RULES, CTX));
    expect(entry.spec.serviceAccount).toBe(serviceAccount);
    expect('serviceAccount' in entry.spec).toBe(serviceAccount !== undefined);
  });

  it.each(['s'.repeat(254), 'a..b', '-sa', 'sa acct'])('skips %j', (value) => {
    expect(skipOf(mapInstance(tagged({ 'mesh-service-account': value }), RULES, CTX)).code).toBe('VMS_SKIP_BAD_SERVICE_ACCOUNT');
  });
});

describe('ports', () => {
  const ok: Array<[string, Record<string, number> | undefined]> = [
    ['postgres:5432,metrics:9187', { postgres: 5432, metrics: 9187 }],
    ['postgres-5432_metrics-9187', { postgres: 5432, metrics: 9187 }],
    ['postgres=5432; metrics=9187', { postgres: 5432, metrics: 9187 }],
    ['postgres : 5432 , metrics: 9187', { postgres: 5432, metrics: 9187 }],
    ['http:80 https:443', { http: 80, https: 443 }],
    ['5432', { 'tcp-5432': 5432 }],
    ['05432', { 'tcp-5432': 5432 }],
    ['http-web-8080', { 'http-web': 8080 }],
    ['HTTP:80', { http: 80 }],
    ['p:1,q:65535', { p: 1, q: 65535 }],
    [`${'a'.repeat(62)}:80`, { ['a'.repeat(62)]: 80 }],
    ['', undefined],
    [' ,; _ ', undefined],
  ];
  it.each(ok)('%j → %j', (value, ports) => {
    const entry = entryOf(mapInstance(tagged({ 'mesh-ports': value }), RULES, CTX));
    expect(entry.spec.ports).toEqual(ports);
    expect('ports' in entry.spec).toBe(ports !== undefined);
  });

  const bad: Array<[string, string]> = [
    ['pg:99999', "tag mesh-ports: 'pg:99999' is not a port (use name:port with a port from 1 to 65535)"],
    ['pg:0', "'pg:0' is not a port"],
    ['pg:abc', "'pg:abc' is not a port"],
    ['pg:', "'pg:' is not a port"],
    ['a:1:2', "'a:1:2' is not a port"],
    ['70000', "'70000' is not a port"],
    ['pg-70000', "'pg-70000' is not a port"],
    ['postgres', "'postgres' has no port number (use name:port with a port from 1 to 65535, e.g. postgres:5432)"],
    ['http-web', "'http-web' has no port number"],
    [':80', "':80' has no port name"],
    ['-80', "'-80' has no port name"],
    ['p@g:80', "'p@g:80' has the invalid port name 'p@g'"],
    ['-web:80', "has the invalid port name '-web'"],
    ['web-:80', "has the invalid port name 'web-'"],
    [`${'a'.repeat(63)}:80`, 'at most 62 characters'],
    ['http:80,HTTP:81', "the port name 'http' is given twice"],
    ['80,tcp-80:81', "the port name 'tcp-80' is given twice"],
  ];
  it.each(bad)('%j → VMS_SKIP_BAD_PORTS', (value, reason) => {
    const skip = skipOf(mapInstance(tagged({ 'mesh-ports': value }), RULES, CTX));
    expect(skip.code).toBe('VMS_SKIP_BAD_PORTS');
    expect(skip.reason).toContain(reason);
  });

  it('accepts 128 ports and skips 129', () => {
    const list = (n: number): string => Array.from({ length: n }, (_, i) => `p${i}:${1000 + i}`).join(',');
    expect(Object.keys(entryOf(mapInstance(tagged({ 'mesh-ports': list(128) }), RULES, CTX)).spec.ports ?? {})).toHaveLength(128);
    expect(skipOf(mapInstance(tagged({ 'mesh-ports': list(129) }), RULES, CTX)).reason).toBe(
      'tag mesh-ports lists 129 ports; a WorkloadEntry takes at most 128',
    );
  });

  it('uses ports.default only when the tag is absent', () => {
    const withDefault = rules({ ports: { default: { HTTP: 8080 } } });
    expect(entryOf(mapInstance(vm(), withDefault, CTX)).spec.ports).toEqual({ http: 8080 });
    expect(entryOf(mapInstance(tagged({ 'mesh-ports': 'grpc:9000' }), withDefault, CTX)).spec.ports).toEqual({ grpc: 9000 });
    expect(entryOf(mapInstance(tagged({ 'mesh-ports': '' }), withDefault, CTX)).spec.ports).toBeUndefined();
  });
});

describe('address', () => {
  const cases: Array<{ name: string; over: Partial<Instance>; prefer?: string; tag?: string; address?: string; reason?: string }> = [
    { name: 'private by default', over: { privateIPv4s: ['10.0.0.5', '10.0.0.6'], publicIPv4s: ['54.1.2.3'] }, address: '10.0.0.5' },
    { name: 'public preferred', over: { publicIPv4s: ['54.1.2.3'] }, prefer: 'public-ipv4', address: '54.1.2.3' },
    { name: 'ipv6 preferred', over: { ipv6s: ['2600:1f18::5'] }, prefer: 'ipv6', address: '2600:1f18::5' },
    { name: 'first-available falls to public', over: { privateIPv4s: [], publicIPv4s: ['54.1.2.3'], ipv6s: ['2600::1'] }, prefer: 'first-available', address: '54.1.2.3' },
    { name: 'first-available on an IPv6-only instance', over: { privateIPv4s: [], ipv6s: ['2600::1'] }, prefer: 'first-available', address: '2600::1' },
    { name: 'tag overrides prefer', over: { privateIPv4s: [], ipv6s: ['2600::1'] }, tag: 'ipv6', address: '2600::1' },
    { name: 'tag compared trimmed and case-insensitively', over: { ipv6s: ['2600::1'] }, tag: ' IPv6 ', address: '2600::1' },
    { name: 'blank tag falls back to prefer', over: {}, tag: '', address: '10.0.0.5' },
    { name: 'first usable value in the list', over: { privateIPv4s: ['10.0.0.0/24', '10.0.0.7'] }, address: '10.0.0.7' },
    { name: 'surrounding whitespace trimmed', over: { privateIPv4s: [' 10.0.0.8 '] }, address: '10.0.0.8' },
    {
      name: 'IPv6-only instance with the default preference',
      over: { privateIPv4s: [], ipv6s: ['2600::1'] },
      reason: 'the instance has no private IPv4 address (address.prefer is private-ipv4); give it one, or tag it mesh-address=first-available to use any address it has',
    },
    { name: 'no private IP, with a tag asking for it', over: { privateIPv4s: [], publicIPv4s: ['54.1.2.3'] }, tag: 'private-ipv4', reason: '(tag mesh-address is private-ipv4)' },
    { name: 'prefix-form address', over: { privateIPv4s: ['10.0.0.0/24'] }, reason: "no usable private IPv4 address (address.prefer is private-ipv4) ('10.0.0.0/24' is a prefix, not an address)" },
    { name: 'IPv6 prefix', over: { ipv6s: ['2600::/64'] }, prefer: 'ipv6', reason: "'2600::/64' is a prefix, not an address" },
    { name: 'IPv6 with a zone', over: { ipv6s: ['fe80::1%eth0'] }, prefer: 'ipv6', reason: "'fe80::1%eth0' carries a zone" },
    { name: 'IPv4 with leading zeros', over: { privateIPv4s: ['010.0.0.1'] }, reason: "'010.0.0.1' is not an IPv4 address" },
    { name: 'IPv6 in the IPv4 list', over: { privateIPv4s: ['2600::1'] }, reason: "'2600::1' is not an IPv4 address" },
    { name: 'unspecified address', over: { privateIPv4s: ['0.0.0.0'] }, reason: "'0.0.0.0' is the unspecified address" },
    { name: 'unspecified IPv6', over: { ipv6s: ['::'] }, prefer: 'ipv6', reason: "'::' is the unspecified address" },
    { name: 'nothing at all', over: { privateIPv4s: [] }, prefer: 'first-available', reason: 'no private IPv4, public IPv4 or IPv6 address (address.prefer is first-available); give it one' },
  ];
  it.each(cases)('$name', ({ over, prefer, tag, address, reason }) => {
    const tags: Record<string, string> = tag === undefined ? {} : { 'mesh-address': tag };
    const result = mapInstance(tagged(tags, over), rules({ address: prefer === undefined ? {} : { prefer } }), CTX);
    if (address !== undefined) {
      expect(entryOf(result).spec.address).toBe(address);
    } else {
      const skip = skipOf(result);
      expect(skip.code).toBe('VMS_SKIP_NO_ADDRESS');
      expect(skip.keepsEntry).toBe(true);
      expect(skip.reason).toContain(reason);
    }
  });
});

describe('locality', () => {
  const cases: Array<{ region: string; zone: string; enabled?: boolean; locality: string | undefined }> = [
    { region: 'us-east-1', zone: 'us-east-1a', locality: 'us-east-1/us-east-1a' },
    { region: 'eastus', zone: '', locality: 'eastus' },
    { region: 'europe-west1', zone: 'europe-west1-b', locality: 'europe-west1/europe-west1-b' },
    { region: '', zone: 'us-east-1a', locality: undefined },
    { region: 'dc/1', zone: 'rack/7', locality: 'dc-1/rack-7' },
    { region: 'us-east-1', zone: 'us-east-1a', enabled: false, locality: undefined },
  ];
  it.each(cases)('$region + $zone (enabled $enabled) → $locality', ({ region, zone, enabled, locality }) => {
    const entry = entryOf(mapInstance(vm({ region, zone }), rules({ locality: { enabled: enabled ?? true } }), CTX));
    expect(entry.spec.locality).toBe(locality);
    expect('locality' in entry.spec).toBe(locality !== undefined);
  });
});

describe('network', () => {
  const byId = rules({ network: { name: 'fallback', byNetworkId: { 'vpc-1': 'net-east', 'vpc-2': 'net-west' } } });
  const cases: Array<{ name: string; tags: Record<string, string>; networkId?: string; rules?: MappingConfig; network: string | undefined }> = [
    { name: 'none configured', tags: {}, network: undefined },
    { name: 'by network id', tags: {}, networkId: 'vpc-2', rules: byId, network: 'net-west' },
    { name: 'name when the id is not mapped', tags: {}, networkId: 'vpc-9', rules: byId, network: 'fallback' },
    { name: 'name when the instance has no network id', tags: {}, networkId: undefined, rules: byId, network: 'fallback' },
    { name: 'inherited key is not a mapped id', tags: {}, networkId: 'constructor', rules: byId, network: 'fallback' },
    { name: 'tag wins over id and name', tags: { 'mesh-network': 'net-tagged' }, networkId: 'vpc-1', rules: byId, network: 'net-tagged' },
    { name: 'blank tag means no network', tags: { 'mesh-network': ' ' }, networkId: 'vpc-1', rules: byId, network: undefined },
    { name: 'name alone', tags: {}, rules: rules({ network: { name: 'onprem' } }), network: 'onprem' },
  ];
  it.each(cases)('$name', ({ tags, networkId, rules: r, network }) => {
    const entry = entryOf(mapInstance(tagged(tags, { networkId }), r ?? RULES, CTX));
    expect(entry.spec.network).toBe(network);
    expect('network' in entry.spec).toBe(network !== undefined);
  });

  it.each(['my net', 'n'.repeat(64), '-net', 'net/1', 'Ünet'])('skips network tag %j', (value) => {
    expect(skipOf(mapInstance(tagged({ 'mesh-network': value }), RULES, CTX)).code).toBe('VMS_SKIP_BAD_NETWORK');
  });
});

describe('weight', () => {
  const ok: Array<[string | undefined, number | undefined]> = [
    [undefined, undefined],
    ['', undefined],
    ['10', 10],
    [' 7 ', 7],
    ['007', 7],
    ['1', 1],
    ['4294967295', 4294967295],
  ];
  it.each(ok)('%j → %j', (value, weight) => {
    const entry = entryOf(mapInstance(tagged(value === undefined ? {} : { 'mesh-weight': value }), RULES, CTX));
    expect(entry.spec.weight).toBe(weight);
    expect('weight' in entry.spec).toBe(weight !== undefined);
  });

  it.each(['0', '4294967296', '99999999999999999999', '1.5', '1e3', '+5', '-1', '0x10', 'ten', '٣'])('skips %j', (value) => {
    expect(skipOf(mapInstance(tagged({ 'mesh-weight': value }), RULES, CTX)).code).toBe('VMS_SKIP_BAD_WEIGHT');
  });
});

describe('health', () => {
  const annotations = (tags: Record<string, string>, r: MappingConfig = RULES): Record<string, string> => entryOf(mapInstance(tagged(tags), r, CTX)).metadata.annotations;

  it.each<[string, Record<string, string>, MappingConfig, Record<string, string> | undefined]>([
    ['an http probe', { 'mesh-health': 'http:8080/healthz' }, RULES, { 'proxy.istio.io/health-checks-enabled': 'true', 'vm-mesh-sync.io/health-check': 'http:8080/healthz' }],
    ['the dash form of the same probe', { 'mesh-health': 'http-8080-healthz' }, RULES, { 'proxy.istio.io/health-checks-enabled': 'true', 'vm-mesh-sync.io/health-check': 'http:8080/healthz' }],
    ['a tcp probe', { 'mesh-health': ' TCP:5432 ' }, RULES, { 'proxy.istio.io/health-checks-enabled': 'true', 'vm-mesh-sync.io/health-check': 'tcp:5432' }],
    ['a configured tag name', { probe: 'https-8443-ready' }, rules({ health: { tag: 'probe' } }), { 'proxy.istio.io/health-checks-enabled': 'true', 'vm-mesh-sync.io/health-check': 'https:8443/ready' }],
    ['no health tag', {}, RULES, undefined],
    ['a blank health tag', { 'mesh-health': '  ' }, RULES, undefined],
    ['the default tag when another is configured', { 'mesh-health': 'tcp:5432' }, rules({ health: { tag: 'probe' } }), undefined],
  ])('%s', (_, tags, r, expected) => {
    const got = annotations(tags, r);
    const health = Object.fromEntries(Object.entries(got).filter(([k]) => k.includes('health')));
    expect(health).toEqual(expected ?? {});
  });

  it('the entry with health checking passes checkEntry', () => {
    expect(checkEntry(entryOf(mapInstance(tagged({ 'mesh-health': 'http:8080/healthz' }), RULES, CTX)))).toEqual([]);
  });
});

describe('mapping with auto-registered entries', () => {
  const autoRegistered = indexAutoRegistered([{ key: 'vms/reviews-10.0.0.5', address: '10.0.0.5', network: 'net-a', autoRegistrationGroup: 'reviews' }]);

  it.each<[string, Instance, MappingConfig, 'entry' | 'VMS_SKIP_AUTO_REGISTERED' | 'VMS_SKIP_NOT_RUNNING' | 'VMS_SKIP_NOT_SELECTED']>([
    ['same address, ours without a network', vm(), RULES, 'VMS_SKIP_AUTO_REGISTERED'],
    ['same address and network', vm({ tags: { mesh: 'true', 'mesh-network': 'net-a' } }), RULES, 'VMS_SKIP_AUTO_REGISTERED'],
    ['same address, network from byNetworkId', vm(), rules({ network: { byNetworkId: { 'vpc-1': 'net-a' } } }), 'VMS_SKIP_AUTO_REGISTERED'],
    ['same address on another network', vm({ tags: { mesh: 'true', 'mesh-network': 'net-b' } }), RULES, 'entry'],
    ['another address', vm({ privateIPv4s: ['10.0.0.9'] }), RULES, 'entry'],
    ['the address tag chooses the matching address', vm({ privateIPv4s: ['10.0.0.9'], publicIPv4s: ['10.0.0.5'], tags: { mesh: 'true', 'mesh-address': 'public-ipv4' } }), RULES, 'VMS_SKIP_AUTO_REGISTERED'],
    ['not running: leaves the mesh anyway', vm({ state: 'stopped' }), RULES, 'VMS_SKIP_NOT_RUNNING'],
    ['not selected: leaves the mesh anyway', vm({ tags: {} }), RULES, 'VMS_SKIP_NOT_SELECTED'],
  ])('%s', (_, instance, rules, expected) => {
    const result = mapInstance(instance, rules, { ...CTX, autoRegistered });
    expect(result.kind === 'entry' ? 'entry' : result.skip.code).toBe(expected);
  });

  it('the skip says which entry Istio made, names the namespace ours would be in, and does not keep our entry', () => {
    const result = mapInstance(vm({ tags: { mesh: 'true', 'mesh-namespace': 'vms' } }), RULES, { ...CTX, namespaces: { global: ['vms'] }, autoRegistered });
    expect(result.kind).toBe('skip');
    if (result.kind !== 'skip') return;
    expect(result.skip).toMatchObject({ code: 'VMS_SKIP_AUTO_REGISTERED', namespace: 'vms', keepsEntry: false, source: 'aws:123456789012:us-east-1:i-0abc' });
    expect(result.skip.reason).toBe(
      "Istio auto-registered this VM as WorkloadEntry vms/reviews-10.0.0.5 (WorkloadGroup 'reviews', address 10.0.0.5, network 'net-a'); " +
        'an entry of ours at address 10.0.0.5 with no network would make Istio see the VM twice, so it gets none and any it has is deleted. ' +
        'Leave the VM to auto-registration, or stop it auto-registering (remove ISTIO_META_AUTO_REGISTER_GROUP from its sidecar) to have vm-mesh-sync manage it',
    );
  });

  it('a listing skips the duplicates and maps the rest as without the index', () => {
    const instances = [vm({ id: 'i-1' }), vm({ id: 'i-2', privateIPv4s: ['10.0.0.9'] })];
    const { entries, skips } = mapInstances(instances, RULES, { ...CTX, autoRegistered });
    expect(skips.map((s) => [s.instance.id, s.code])).toEqual([['i-1', 'VMS_SKIP_AUTO_REGISTERED']]);
    expect(entries).toEqual(mapInstances([instances[1]!], RULES, CTX).entries);
  });
});

describe('entryName', () => {
  const azureId = '/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/RG-Payments/providers/Microsoft.Compute/virtualMachines/db-1';
  const cases: Array<[Instance['provider'], string, string]> = [
    ['aws', 'i-0abc123def4567890', 'aws-i-0abc123def4567890'],
    ['gcp', '1234567890123456789', 'gcp-1234567890123456789'],
    ['azure', '0F8FAD5B-D9CB-469F-A165-70867728950E', 'azure-0f8fad5b-d9cb-469f-a165-70867728950e'],
    ['static', 'Web-01', 'static-web-01'],
    ['azure', azureId, 'azure-subscriptions-00000000-0000-0000-0000-000000000001-resourcegroups-rg-payments-providers-microsoft-compute-virtualmachines-db-1-61ec27ce03'],
    ['azure', azureId.toLowerCase(), 'azure-subscriptions-00000000-0000-0000-0000-000000000001-resourcegroups-rg-payments-providers-microsoft-compute-virtualmachines-db-1-61ec27ce03'],
    ['static', 'web.01', 'static-web-01-9fe2438661'],
  ];
  it.each(cases)('%s %j → %j', (provider, id, name) => {
    expect(entryName({ provider, id })).toBe(name);
  });

  it('keeps ids that differ only in punctuation apart', () => {
    const names = ['web-01', 'web.01', 'web_01', 'web--01', 'web/01', '-web-01'].map((id) => entryName({ provider: 'static', id }));
    expect(new Set(names).size).toBe(names.length);
  });

  it('cuts long ids to 253 characters with a hash', () => {
    const a = entryName({ provider: 'static', id: 'x'.repeat(300) });
    const b = entryName({ provider: 'static', id: `${'x'.repeat(299)}y` });
    expect(a).toHaveLength(253);
    expect(a).toMatch(/^static-x+-[0-9a-f]{10}$/);
    expect(b).not.toBe(a);
    expect(entryName({ provider: 'static', id: 'x'.repeat(246) })).toHaveLength(253);
  });

  it('gives every name a valid label value of its own: the name when it fits, else its head and a hash', () => {
    const azure = entryName({ provider: 'azure', id: azureId });
    expect(nameLabelValue('aws-i-0abc123def4567890')).toBe('aws-i-0abc123def4567890');
    expect(nameLabelValue(azure)).toMatch(/^azure-subscriptions-00000000-0000-0000-0000-00000000-[0-9a-f]{10}$/);
    fc.assert(
      fc.property(fc.constantFrom('aws', 'gcp', 'azure', 'static'), fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ maxLength: 300 }), (provider, a, b) => {
        const [x, y] = [entryName({ provider, id: a }), entryName({ provider, id: b })];
        expect(isLabelValue(nameLabelValue(x)), x).toBe(true);
        expect(nameLabelValue(x).length).toBeLessThanOrEqual(63);
        if (x.length <= 63) expect(nameLabelValue(x)).toBe(x);
        if (x !== y) expect(nameLabelValue(x)).not.toBe(nameLabelValue(y));
      }),
      { numRuns: 2000 },
    );
  });

  it('hashes non-ASCII letters that lowercase to ASCII', () => {
    expect(entryName({ provider: 'static', id: '\u212A' })).not.toBe(entryName({ provider: 'static', id: 'k' }));
  });

  it.each(['web-01', 'a', '0', 'x'.repeat(246), 'x'.repeat(247), 'web--01', 'web-', '-web', 'Web-01', 'web.01', ''])(
    'names %j by the four rules, whether or not they change it',
    (id) => {
      expect(entryName({ provider: 'static', id })).toBe(byTheRules(`static-${id}`));
    },
  );

  it('names every id by the four rules, ids that are a name already included', () => {
    const id = fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.stringMatching(/^[a-zA-Z0-9.-]{0,260}$/), fc.stringMatching(/^[a-z0-9]+(-[a-z0-9]+)*$/));
    fc.assert(
      fc.property(fc.constantFrom('aws', 'gcp', 'azure', 'static'), id, (provider, id) => {
        expect(entryName({ provider, id })).toBe(byTheRules(`${provider}-${id}`));
      }),
      { numRuns: 2000 },
    );
  });

  /** The rules of entryName applied one by one, every time. */
  function byTheRules(raw: string): string {
    const lower = raw.replace(/[A-Z]/g, (c) => c.toLowerCase());
    const clean = lower.replace(/[^a-z0-9-]/g, '-').replace(/-+/g, '-').replace(/^-+|-+$/g, '');
    if (clean === lower && clean.length <= 253) return clean;
    const hash = createHash('sha256').update(lower, 'utf16le').digest('hex').slice(0, 10);
    return `${clean.slice(0, 242).replace(/-+$/, '')}-${hash}`;
  }
});

describe('mapInstances duplicates', () => {
  const web = vm({ provider: 'static', account: 'onprem', region: 'dc1', id: 'Web', name: 'web-upper' });
  const webLower = vm({ provider: 'static', account: 'onprem', region: 'dc1', id: 'web', name: 'web-lower' });

  it.each([
    ['listed order', [web, webLower]],
    ['reversed order', [webLower, web]],
  ])('the source that sorts first keeps the name (%s)', (_order, instances) => {
    const { entries, skips } = mapInstances(instances, RULES, CTX);
    expect(entries.map((e) => e.metadata.annotations['vm-mesh-sync.io/source'])).toEqual(['static:onprem:dc1:Web']);
    expect(skips).toHaveLength(1);
    expect(skips[0]?.code).toBe('VMS_SKIP_DUPLICATE_NAME');
    expect(skips[0]?.source).toBe('static:onprem:dc1:web');
    expect(skips[0]?.instance).toEqual({ provider: 'static', account: 'onprem', region: 'dc1', zone: webLower.zone, id: 'web', name: 'web-lower' });
    expect(skips[0]?.keepsEntry).toBe(true);
    expect(skips[0]?.reason).toContain("its entry default/static-web is already taken by 'static:onprem:dc1:Web'");
  });

  it('allows the same name in different namespaces', () => {
    const { entries, skips } = mapInstances([web, { ...webLower, tags: { mesh: 'true', 'mesh-namespace': 'other' } }], RULES, CTX);
    expect(entries).toHaveLength(2);
    expect(skips).toEqual([]);
  });

  it('passes other skips through in input order', () => {
    const { entries, skips } = mapInstances([vm({ id: 'i-1', state: 'stopped' }), vm({ id: 'i-2' }), vm({ id: 'i-3', tags: {} })], RULES, CTX);
    expect(entries.map((e) => e.metadata.name)).toEqual(['aws-i-2']);
    expect(skips.map((s) => [s.instance.id, s.code])).toEqual([
      ['i-1', 'VMS_SKIP_NOT_RUNNING'],
      ['i-3', 'VMS_SKIP_NOT_SELECTED'],
    ]);
  });
});

describe('mapping a listing page by page', () => {
  // Static ids that differ only in letter case give the same entry name: duplicates across pages.
  const listing = fc.array(
    fc.record({
      id: fc.constantFrom('a', 'A', 'b', 'B', 'c', 'web-1', 'Web-1', 'WEB-1'),
      region: fc.constantFrom('dc1', 'dc2'),
      zone: fc.constantFrom('z1', 'z2', 'z3'),
      state: fc.constantFrom('running', 'running', 'running', 'stopped'),
      ns: fc.constantFrom(undefined, 'other'),
    }),
    { maxLength: 24 },
  );
  const instancesOf = (items: Array<{ id: string; region: string; zone: string; state: string; ns: string | undefined }>): Instance[] =>
    items.map((x, i) =>
      vm({
        provider: 'static',
        account: 'onprem',
        region: x.region,
        zone: x.zone,
        id: x.id,
        name: `n-${i}`,
        state: x.state as Instance['state'],
        tags: { mesh: 'true', ...(x.ns ? { 'mesh-namespace': x.ns } : {}) },
      }),
    );

  it('gives what mapping the whole listing gives, wherever the pages break, and the smallest source keeps each name', () => {
    fc.assert(
      fc.property(listing, fc.array(fc.nat(24), { maxLength: 4 }), (items, cuts) => {
        const instances = instancesOf(items);
        const whole = mapInstances(instances, RULES, CTX);
        const mapper = new ListingMapper(RULES, CTX);
        const bounds = [0, ...[...cuts].sort((x, y) => x - y).map((c) => Math.min(c, instances.length)), instances.length];
        for (let i = 0; i + 1 < bounds.length; i++) runSync(mapper.add(instances.slice(bounds[i], bounds[i + 1])));
        const paged = mapper.finish();
        expect(paged).toEqual(whole);
        expect(mapper.instances).toBe(instances.length);

        // Every instance is an entry or a skip, once; names are unique; the smallest source wins.
        expect(whole.entries.length + whole.skips.length).toBe(instances.length);
        const keys = whole.entries.map((e) => `${e.metadata.namespace}/${e.metadata.name}`);
        expect(new Set(keys).size).toBe(keys.length);
        for (const skip of whole.skips.filter((k) => k.code === 'VMS_SKIP_DUPLICATE_NAME')) {
          const owner = /already taken by '([^']+)'/.exec(skip.reason)?.[1];
          const winner = whole.entries.find((e) => e.metadata.annotations['vm-mesh-sync.io/source'] === owner);
          expect(winner, skip.reason).toBeDefined();
          expect(owner! < skip.source || owner === skip.source).toBe(true);
        }
        // Input order: entries as listed, skips as listed.
        const at = (source: string, name: string) => instances.findIndex((x, i) => `static:onprem:${x.region}:${x.id}` === source && `n-${i}` === name);
        const skipOrder = whole.skips.map((k) => at(k.source, k.instance.name));
        expect([...skipOrder].sort((x, y) => x - y)).toEqual(skipOrder);
        // A skip names its own instance, whether it lost its name when listed or later.
        whole.skips.forEach((k, i) => {
          const { provider, account, region, zone, id, name } = instances[skipOrder[i]!]!;
          expect(k.instance).toEqual({ provider, account, region, zone, id, name });
        });
      }),
      { numRuns: 300 },
    );
  });
});

describe('mapInstances memory', () => {
  it('shares one frozen copy of equal label and port maps between the entries of a listing', () => {
    const tags = { mesh: 'true', 'mesh-app': 'web', 'mesh-ports': 'http:8080' };
    const { entries } = mapInstances([vm({ id: 'i-1', tags }), vm({ id: 'i-2', tags: { ...tags } }), vm({ id: 'i-3', tags: { ...tags, 'mesh-app': 'db' } })], RULES, CTX);
    const [a, b, c] = entries.map((e) => e!);
    expect(a!.spec.labels).toBe(b!.spec.labels);
    expect(a!.spec.ports).toBe(b!.spec.ports);
    // The metadata labels name each entry (NAME_LABEL): one map each.
    expect(a!.metadata.labels).toEqual({ ...c!.metadata.labels, 'vm-mesh-sync.io/name': 'aws-i-1' });
    expect(a!.spec.labels).not.toBe(c!.spec.labels);
    expect(c!.spec.labels).toEqual({ app: 'db' });
    // A change to a shared map would reach every entry holding it: it is refused.
    expect(() => {
      (a!.spec.labels as Record<string, string>).app = 'x';
    }).toThrow(TypeError);
    expect(b!.spec.labels).toEqual({ app: 'web' });
  });
});

describe('checkEntry', () => {
  const valid = entryOf(mapInstance(tagged({ 'mesh-app': 'postgres', 'mesh-ports': 'pg:5432', 'mesh-weight': '3', 'mesh-network': 'n1' }), RULES, CTX));
  const cases: Array<[string, (e: WorkloadEntry) => void, string]> = [
    ['bad name', (e) => void (e.metadata.name = 'Bad_Name'), 'metadata.name'],
    ['bad namespace', (e) => void (e.metadata.namespace = 'a.b'), 'metadata.namespace'],
    ['no address', (e) => void delete e.spec.address, 'spec.address'],
    ['prefix address', (e) => void (e.spec.address = '10.0.0.0/8'), 'spec.address'],
    ['port out of range', (e) => void (e.spec.ports = { pg: 70000 }), 'spec.ports.pg'],
    ['port name too long', (e) => void (e.spec.ports = { ['a'.repeat(63)]: 80 }), 'port name must be valid'],
    ['empty ports', (e) => void (e.spec.ports = {}), 'spec.ports'],
    ['bad label value', (e) => void (e.spec.labels = { app: 'a b' }), 'spec.labels.app'],
    ['bad label key', (e) => void (e.spec.labels = { 'a b': 'x' }), 'spec.labels.a b'],
    ['empty labels', (e) => void (e.spec.labels = {}), 'spec.labels'],
    ['bad service account', (e) => void (e.spec.serviceAccount = 'A'), 'spec.serviceAccount'],
    ['weight zero', (e) => void (e.spec.weight = 0), 'spec.weight'],
    ['locality with four parts', (e) => void (e.spec.locality = 'a/b/c/d'), 'spec.locality'],
    ['empty network', (e) => void (e.spec.network = ''), 'spec.network'],
    ['workload label in metadata', (e) => void (e.metadata.labels.app = 'x'), 'metadata.labels.app'],
    ['missing owner', (e) => void delete e.metadata.labels['vm-mesh-sync.io/owner'], 'metadata.labels.vm-mesh-sync.io/owner'],
    ['missing name label', (e) => void delete e.metadata.labels['vm-mesh-sync.io/name'], 'metadata.labels.vm-mesh-sync.io/name'],
    ['name label of another name', (e) => void (e.metadata.labels['vm-mesh-sync.io/name'] = 'aws-i-other'), 'metadata.labels.vm-mesh-sync.io/name'],
    ['istio auto-registration annotation', (e) => void (e.metadata.annotations['istio.io/workloadController'] = 'x'), 'istio.io/workloadController'],
    ['wrong apiVersion', (e) => void ((e as { apiVersion: string }).apiVersion = 'networking.istio.io/v1beta1'), 'apiVersion'],
  ];

  it('accepts a mapped entry', () => {
    expect(checkEntry(valid)).toEqual([]);
  });

  it.each(cases)('rejects %s', (_name, mutate, path) => {
    const entry = structuredClone(valid);
    mutate(entry);
    const problems = checkEntry(entry);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.join('\n')).toContain(path);
  });
});

describe('properties', () => {
  const knownKeys = ['mesh', 'mesh-app', 'mesh-version', 'mesh-namespace', 'mesh-service-account', 'mesh-ports', 'mesh-address', 'mesh-network', 'mesh-weight', 'mesh-health'];
  const key = fc.oneof(
    fc.constantFrom(...knownKeys),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }).map((s) => `mesh-label-${s}`),
    fc.constantFrom('__proto__', 'constructor', 'toString', 'mesh-label-', 'mesh-label-a/b', 'mesh-label-example.com/x'),
  );
  const value = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.stringMatching(/^[a-zA-Z0-9:=,;_ .\-]{0,40}$/),
    fc.constantFrom('true', ' TRUE ', '', '   ', 'postgres:5432', 'postgres-5432_metrics-9187', 'first-available', 'ipv6', 'public-ipv4', '10', 'payments', 'http:8080/healthz', 'tcp-5432'),
  );
  // Tags a careful engineer would write, so that a good share of runs end in an entry to check.
  const plainKey = fc.oneof(fc.constantFrom('mesh-app', 'mesh-version', 'mesh-ports'), fc.stringMatching(/^mesh-label-[a-z]{1,10}$/));
  const plainValue = fc.oneof(fc.stringMatching(/^[a-zA-Z0-9 ._-]{0,20}$/), fc.constantFrom('postgres:5432', 'http-80_grpc-9090', '443'));
  const address = fc.oneof(
    fc.ipV4(),
    fc.ipV6(),
    fc.constantFrom('10.0.0.0/24', 'fe80::1%eth0', '0.0.0.0', '::', '', ' 10.1.2.3 ', '010.0.0.1'),
    fc.string({ maxLength: 20 }),
  );
  const instance = fc.record({
    provider: fc.constantFrom('static', 'aws', 'gcp', 'azure'),
    account: fc.string({ maxLength: 20 }),
    region: fc.string({ unit: 'binary', maxLength: 20 }),
    zone: fc.string({ unit: 'binary', maxLength: 20 }),
    id: fc.string({ unit: 'binary', maxLength: 300 }),
    name: fc.string({ maxLength: 20 }),
    state: fc.oneof({ weight: 3, arbitrary: fc.constant('running') }, { weight: 1, arbitrary: fc.constantFrom(...INSTANCE_STATES) }),
    privateIPv4s: fc.oneof(fc.array(address, { maxLength: 3 }), fc.tuple(fc.ipV4()).map((a) => [...a])),
    publicIPv4s: fc.array(address, { maxLength: 3 }),
    ipv6s: fc.array(address, { maxLength: 3 }),
    networkId: fc.option(fc.constantFrom('vpc-1', 'vpc-2', 'constructor'), { nil: undefined }),
    tags: fc
      .tuple(fc.oneof(fc.dictionary(key, value, { maxKeys: 12 }), fc.dictionary(plainKey, plainValue, { maxKeys: 6 })), fc.boolean())
      .map(([tags, selected]) => (selected ? { ...tags, mesh: 'true' } : tags)),
    observedAt: fc.constant('2025-01-01T00:00:00.000Z'),
  }) as fc.Arbitrary<Instance>;
  const ruleSets = [RULES, rules({ address: { prefer: 'first-available' }, network: { byNetworkId: { 'vpc-1': 'net-1' } }, labels: { tagPrefix: 'mesh-' } })];

  it('never throws, and every entry passes checkEntry and every skip is well formed', () => {
    let entries = 0;
    fc.assert(
      fc.property(instance, fc.constantFrom(...ruleSets), (vmInstance, r) => {
        const result = mapInstance(vmInstance, r, CTX);
        if (result.kind === 'entry') {
          entries += 1;
          expect(checkEntry(result.entry)).toEqual([]);
        } else {
          const code = result.skip.code as SkipCode;
          expect(Object.keys(SKIP_CODES)).toContain(code);
          expect(result.skip.keepsEntry).toBe(skipKeepsEntry(code));
          expect(result.skip.reason).not.toMatch(/[\n\r]/);
          expect(result.skip.reason.length).toBeGreaterThan(0);
        }
        expect(mapInstance(vmInstance, r, CTX)).toEqual(result);
      }),
      { numRuns: 2000 },
    );
    // Guards the property against generators that only ever produce skips.
    expect(entries).toBeGreaterThan(200);
  });

  it.each<[string, MappingConfig, Array<Record<string, string>>]>([
    ['an absent ports tag and an empty one', rules({ ports: { default: { http: 8080 } } }), [{}, { 'mesh-ports': '' }, {}]],
    ['a label tag and the same value under another tag', RULES, [{ 'mesh-app': 'a' }, { 'mesh-version': 'a' }, { 'mesh-label-app': 'a' }]],
    ['a value that spells the next tag', RULES, [{ 'mesh-app': 'xmesh-version:y' }, { 'mesh-app': 'x', 'mesh-version': 'y' }]],
  ])('a listing tells apart %s', (_, r, tagSets) => {
    const instances = tagSets.map((tags, i) => vm({ id: `vm-${i}`, tags: { mesh: 'true', ...tags } }));
    const { entries } = mapInstances(instances, r, CTX);
    expect(entries).toEqual(instances.map((i) => entryOf(mapInstance(i, r, CTX))));
  });

  it('a listing maps each instance as mapInstance alone does, though equal tag values are worked out once per listing', () => {
    // Few distinct tags and values, so that instances share them and the listing's memos are hit.
    const sharedKey = fc.constantFrom('mesh-app', 'mesh-version', 'mesh-ports', 'mesh-label-tier', 'mesh-label-x', 'mesh-labelx', 'mesh-service', 'mesh-namespace', 'other');
    const sharedValue = fc.constantFrom('a', 'b', 'a:1', '1:a', 'http:80', 'http-80', '', ' ', 'x\u0000y', 'x', '\u0000', 'pg:99999', 'pg', 'Pg ', 'team-a', 'Team B');
    // Few regions and zones too, so that instances share localities.
    const place = fc.constantFrom(['dc1', 'a'], ['dc1', ''], ['dc2', 'a'], ['', 'a'], ['dc1/x', 'b/c'], ['dc1', 'a/b']);
    const listing = fc
      .array(fc.tuple(fc.dictionary(sharedKey, sharedValue, { maxKeys: 5 }), place, instance), { maxLength: 30 })
      .map((items) => items.map(([tags, [region, zone], base], i) => ({ ...base, id: `vm-${i}`, region, zone, tags: { ...tags, mesh: 'true' } })));
    // Namespace tags are checked against the context's policy, which the listing's memo must follow.
    const contexts: MapContext[] = [CTX, { ...CTX, namespaces: { global: ['team-*', 'default'] } }, { ownerId: 'other', scopeKey: 's', observedAt: CTX.observedAt }];
    let hits = 0;
    fc.assert(
      fc.property(listing, fc.constantFrom(...ruleSets, rules({ ports: { default: { http: 8080 } }, labels: { tagPrefix: '' } })), fc.constantFrom(...contexts), (instances, r, ctx) => {
        const { entries, skips } = mapInstances(instances, r, ctx);
        const alone = instances.map((i) => mapInstance(i, r, ctx));
        expect(entries).toEqual(alone.filter((m) => m.kind === 'entry').map(entryOf));
        expect(skips).toEqual(alone.filter((m) => m.kind === 'skip').map(skipOf));
        // Instances whose ports tag (or its absence) an earlier instance of the listing had.
        hits += instances.length - new Set(instances.map((i) => JSON.stringify((i.tags as Record<string, string>)['mesh-ports'] ?? null))).size;
      }),
      { numRuns: 500 },
    );
    // Guards the property against generators whose instances never share tag values.
    expect(hits).toBeGreaterThan(1000);
  });

  it('entryName is always a DNS-1123 subdomain and apart for ids that differ beyond ASCII case', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), fc.string({ unit: 'binary', maxLength: 400 }), (a, b) => {
        const name = entryName({ provider: 'azure', id: a });
        expect(name.length).toBeLessThanOrEqual(253);
        expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
        const fold = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
        if (fold(a) !== fold(b)) expect(entryName({ provider: 'azure', id: b })).not.toBe(name);
      }),
      { numRuns: 1000 },
    );
  });
});
