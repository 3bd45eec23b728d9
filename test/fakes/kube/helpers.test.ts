import { describe, expect, it } from 'vitest';
import { decodeFieldsV1, encodeFieldsV1, fieldSetOf, serverSideApply, trackUpdate, type ManagedEntry } from './fields.ts';
import { jsonPatch, mergePatch, PatchError } from './patch.ts';
import { humanDuration, loadCrdFile } from './resources.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { ApiError } from './status.ts';
import { decodeContinue, ResourceStore, type Stored } from './store.ts';
import { defaultService, serviceEntryProblems, validateService } from './service-rules.ts';
import { WORKLOADENTRY_CRD } from '../kube-api-server.ts';

describe('label selectors', () => {
  const labels = { app: 'web', tier: 'front', n: '5' };

  it.each([
    ['', true],
    ['app=web', true],
    ['app==web,tier=front', true],
    ['app=db', false],
    ['app!=db', true],
    ['missing!=x', true],
    ['missing', false],
    ['!missing', true],
    ['!app', false],
    ['app in (db, web)', true],
    ['app notin (web)', false],
    ['missing notin (web)', true],
    ['missing in (web)', false],
    ['n>4', true],
    ['n<5', false],
    ['example.com/key=v', false],
  ])('%s → %s', (selector, expected) => {
    expect(parseLabelSelector(selector).matches(labels)).toBe(expected);
  });

  it.each(['app in (', 'app=(x', '=x', 'bad key!=x', 'app=bad value!', 'n>x'])('refuses %s with a 400', (selector) => {
    try {
      parseLabelSelector(selector);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ApiError);
      expect((e as ApiError).code).toBe(400);
    }
  });
});

describe('field selectors', () => {
  it('matches supported fields and refuses the rest', () => {
    const fs = parseFieldSelector('metadata.name=a,metadata.namespace!=kube-system', new Set(['metadata.name', 'metadata.namespace']));
    const read = (v: Record<string, string>) => (f: string) => v[f] ?? '';
    expect(fs.matches(read({ 'metadata.name': 'a', 'metadata.namespace': 'default' }))).toBe(true);
    expect(fs.matches(read({ 'metadata.name': 'a', 'metadata.namespace': 'kube-system' }))).toBe(false);
    expect(() => parseFieldSelector('spec.address=x', new Set(['metadata.name']))).toThrow(/field label not supported: spec.address/);
  });
});

describe('patches', () => {
  it('merge patch merges maps and deletes on null', () => {
    expect(mergePatch({ a: { b: 1, c: 2 }, d: [1] }, { a: { b: null, e: 3 }, d: [2] })).toEqual({ a: { c: 2, e: 3 }, d: [2] });
  });

  it('JSON patch applies every operation and fails a test', () => {
    const doc = { spec: { ports: { http: 80 }, list: [1, 2] } };
    const out = jsonPatch(doc, [
      { op: 'add', path: '/spec/ports/grpc', value: 9090 },
      { op: 'add', path: '/spec/list/-', value: 3 },
      { op: 'add', path: '/spec/list/0', value: 0 },
      { op: 'remove', path: '/spec/list/1' },
      { op: 'replace', path: '/spec/ports/http', value: 8080 },
      { op: 'copy', from: '/spec/ports/http', path: '/spec/alt' },
      { op: 'move', from: '/spec/alt', path: '/spec/moved' },
      { op: 'test', path: '/spec/moved', value: 8080 },
      { op: 'add', path: '/spec/a~1b', value: true },
    ]);
    expect(out).toEqual({ spec: { ports: { http: 8080, grpc: 9090 }, list: [0, 2, 3], moved: 8080, 'a/b': true } });
    expect(doc.spec.list).toEqual([1, 2]);
    expect(() => jsonPatch(doc, [{ op: 'test', path: '/spec/list/0', value: 9 }])).toThrow(PatchError);
    expect(() => jsonPatch(doc, [{ op: 'replace', path: '/spec/nope', value: 9 }])).toThrow(PatchError);
    expect(() => jsonPatch(doc, [{ op: 'remove', path: '/spec/list/5' }])).toThrow(PatchError);
  });
});

describe('field ownership', () => {
  const schema = loadCrdFile(WORKLOADENTRY_CRD)[0]!.schemas!.get('v1')!.root;
  const we = (spec: Record<string, unknown>, labels: Record<string, string> = {}) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name: 'x', namespace: 'default', labels },
    spec,
  });

  it('tracks leaves of structs and the elements of maps, round-tripping through FieldsV1', () => {
    const set = fieldSetOf(we({ address: 'a', ports: { http: 80 } }, { app: 'x' }), schema, true);
    const v1 = encodeFieldsV1(set);
    expect(v1).toEqual({ 'f:metadata': { 'f:labels': { 'f:app': {} } }, 'f:spec': { 'f:address': {}, 'f:ports': { 'f:http': {} } } });
    expect(decodeFieldsV1(v1)).toEqual(set);
    expect(encodeFieldsV1(decodeFieldsV1({ 'f:spec': { '.': {}, 'f:a': {} } }))).toEqual({ 'f:spec': { '.': {}, 'f:a': {} } });
  });

  it('shares fields applied with equal values and keeps what another manager still owns', () => {
    const base = { live: we({ address: 'a' }), liveEntries: [] as ManagedEntry[], apiVersion: 'networking.istio.io/v1', schema, skipStatus: true, now: 't1' };
    const first = serverSideApply({ ...base, config: we({ address: 'a', ports: { http: 80 } }), manager: 'one', force: false });
    if (!first.ok) throw new Error('conflict');
    // The first apply takes over what was there as before-first-apply.
    expect(first.entries.map((e) => e.manager)).toEqual(['before-first-apply', 'one']);
    const second = serverSideApply({ ...base, live: first.obj, liveEntries: first.entries, config: we({ address: 'a', ports: { http: 80 } }), manager: 'two', force: false });
    if (!second.ok) throw new Error('conflict');
    const dropped = serverSideApply({ ...base, live: second.obj, liveEntries: second.entries, config: we({ address: 'a' }), manager: 'one', force: false });
    if (!dropped.ok) throw new Error('conflict');
    // "two" still owns ports.http, so it stays.
    expect(dropped.obj.spec).toEqual({ address: 'a', ports: { http: 80 } });
    const clash = serverSideApply({ ...base, live: dropped.obj, liveEntries: dropped.entries, config: we({ address: 'b' }), manager: 'one', force: false });
    expect(clash).toEqual({ ok: false, conflicts: [{ manager: 'before-first-apply', field: '.spec.address' }, { manager: 'two', field: '.spec.address' }] });
  });

  it('gives an updater the fields it changed and takes them from others', () => {
    const live = we({ address: 'a', network: 'n' });
    const entries: ManagedEntry[] = [{ manager: 'applier', operation: 'Apply', apiVersion: 'v', time: 't0', set: fieldSetOf(live, schema, true) }];
    const after = trackUpdate({ live, liveEntries: entries, next: we({ address: 'b', network: 'n' }), manager: 'editor', apiVersion: 'v', schema, skipStatus: true, now: 't1' });
    expect(after.map((e) => [e.manager, encodeFieldsV1(e.set)])).toEqual([
      ['applier', { 'f:spec': { 'f:network': {} } }],
      ['editor', { 'f:spec': { 'f:address': {} } }],
    ]);
  });
});

describe('store paging', () => {
  const stored = (namespace: string, name: string, rv: number): Stored => ({
    obj: { apiVersion: 'v1', kind: 'X', metadata: { name, namespace } },
    rv,
    namespace,
    name,
  });

  it('keeps namespaces apart even when one name prefixes another', () => {
    const s = new ResourceStore();
    for (const ns of ['a', 'a-b', 'a.b', 'a0', 'b']) for (const n of ['x', 'y']) s.set(stored(ns, n, 1));
    expect(s.all('a').map((x) => `${x.namespace}/${x.name}`)).toEqual(['a/x', 'a/y']);
    expect(s.count('a-b')).toBe(2);
    expect(s.all().map((x) => x.namespace)).toEqual(['a-b', 'a-b', 'a.b', 'a.b', 'a', 'a', 'a0', 'a0', 'b', 'b']);
  });

  it('serves later pages from the snapshot of the first, for any page size', () => {
    const s = new ResourceStore();
    for (let i = 0; i < 10; i++) s.set(stored('ns', `o${i}`, 1));
    const q = { namespace: 'ns', currentRv: 5, now: 0, snapshotTtlMs: 1000 };
    const p1 = s.page({ ...q, limit: 4 });
    expect(p1.items.map((x) => x.name)).toEqual(['o0', 'o1', 'o2', 'o3']);
    expect(p1.remainingItemCount).toBe(6);
    expect(decodeContinue(p1.continue!)).toEqual({ rv: 5, start: 'ns/o3\u0000' });
    s.delete('ns', 'o5');
    s.set(stored('ns', 'o55', 6));
    const p2 = s.page({ ...q, currentRv: 6, limit: 10, continueToken: p1.continue });
    expect(p2.items.map((x) => x.name)).toEqual(['o4', 'o5', 'o6', 'o7', 'o8', 'o9']);
    expect(p2.continue).toBeUndefined();
    expect(p2.rv).toBe(5);
    expect(() => s.page({ ...q, now: 2000, limit: 2, continueToken: p1.continue })).toThrow(/too old/);
  });
});

describe('humanDuration', () => {
  it.each([
    [5_000, '5s'],
    [119_000, '119s'],
    [200_000, '3m20s'],
    [3_600_000, '60m'],
    [4 * 3_600_000, '4h'],
    [50 * 3_600_000, '2d2h'],
    [30 * 86_400_000, '30d'],
  ])('%d ms → %s', (ms, s) => {
    expect(humanDuration(ms)).toBe(s);
  });
});

describe('Service rules', () => {
  const valid = { metadata: { name: 'pg', namespace: 'db' }, spec: { selector: { app: 'pg' }, ports: [{ name: 'pg', port: 5432, protocol: 'TCP' }] } };
  const withPorts = (ports: unknown[]) => ({ ...valid, spec: { ...valid.spec, ports } });
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['a name starting with a digit', { ...valid, metadata: { name: '9pg', namespace: 'db' } }, 'metadata.name'],
    ['no ports', withPorts([]), 'spec.ports'],
    ['two ports, one unnamed', withPorts([{ name: 'a', port: 1 }, { port: 2 }]), 'spec.ports[1].name'],
    ['a repeated name', withPorts([{ name: 'a', port: 1 }, { name: 'a', port: 2 }]), 'spec.ports[1].name'],
    ['a repeated number and protocol', withPorts([{ name: 'a', port: 1 }, { name: 'b', port: 1, protocol: 'TCP' }]), 'spec.ports[1]'],
    ['an upper-case port name', withPorts([{ name: 'Pg', port: 1 }]), 'spec.ports[0].name'],
    ['an Istio protocol as protocol', withPorts([{ name: 'web', port: 80, protocol: 'HTTP' }]), 'spec.ports[0].protocol'],
    ['a port out of range', withPorts([{ name: 'a', port: 70000 }]), 'spec.ports[0].port'],
    ['a bad selector value', { ...valid, spec: { ...valid.spec, selector: { app: 'a b' } } }, 'spec.selector'],
  ];
  it.each(cases)('refuses %s', (_name, obj, field) => {
    expect(validateService(obj).map((e) => e.field)).toContain(field);
  });
  it('accepts a UDP and a TCP port of one number, and fills in the defaults', () => {
    const obj = structuredClone(withPorts([{ name: 'dns', port: 53 }, { name: 'udp-dns', port: 53, protocol: 'UDP' }]));
    expect(validateService(obj)).toEqual([]);
    defaultService(obj, () => '10.96.0.9');
    expect(obj.spec).toMatchObject({ type: 'ClusterIP', clusterIP: '10.96.0.9', ports: [{ protocol: 'TCP', targetPort: 53 }, { protocol: 'UDP', targetPort: 53 }] });
  });
});

describe('ServiceEntry rules', () => {
  const valid = {
    spec: { hosts: ['pg.db.svc.cluster.local'], location: 'MESH_INTERNAL', resolution: 'STATIC', ports: [{ number: 5432, name: 'pg' }], workloadSelector: { labels: { app: 'pg' } } },
  };
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['no host', { spec: { ...valid.spec, hosts: [] } }, 'spec.hosts'],
    ['a bad location', { spec: { ...valid.spec, location: 'INTERNAL' } }, 'spec.location'],
    ['endpoints beside a selector', { spec: { ...valid.spec, endpoints: [{ address: '10.0.0.1' }] } }, 'only one of endpoints'],
    ['a repeated number', { spec: { ...valid.spec, ports: [{ number: 1, name: 'a' }, { number: 1, name: 'b', protocol: 'UDP' }] } }, 'is used twice'],
    ['a lower-case protocol', { spec: { ...valid.spec, ports: [{ number: 1, name: 'a', protocol: 'http' }] } }, 'spec.ports[0].protocol'],
  ];
  it('accepts a MESH_INTERNAL ServiceEntry with a workload selector', () => {
    expect(serviceEntryProblems(valid)).toEqual([]);
  });
  it.each(cases)('refuses %s', (_name, obj, part) => {
    expect(serviceEntryProblems(obj).join('\n')).toContain(part);
  });
});
