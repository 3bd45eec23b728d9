import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mappingSchema } from '../config/schema.ts';
import {
  annotationOfEntry,
  DesiredEntry,
  nameOfEntry,
  namespaceOfEntry,
  plainChange,
  plainEntry,
  sourceOfEntry,
  specOfEntry,
} from './desired-entry.ts';
import { mapInstances } from './mapping/index.ts';
import { HEALTH_CHECK_ANNOTATION, OBSERVED_AT_ANNOTATION, SCOPE_ANNOTATION, SOURCE_ANNOTATION, type Change, type Instance } from './model.ts';
import { diffEntries, entriesEqual } from './planning/index.ts';

const RULES = mappingSchema.parse({ locality: { enabled: true } });
const CTX = { ownerId: 'prod', scopeKey: 'static:onprem', observedAt: '2026-01-01T00:00:00.000Z', namespaces: { global: ['*'] } };

function vm(i: number, tags: Record<string, string>): Instance {
  return {
    provider: 'static',
    account: 'onprem',
    region: 'eu-west-1',
    zone: `eu-west-1${'abc'[i % 3]}`,
    id: `vm-${i}`,
    name: `vm ${i}`,
    state: 'running',
    privateIPv4s: [`10.0.${Math.floor(i / 250)}.${(i % 250) + 1}`],
    publicIPv4s: [],
    ipv6s: [],
    tags: { mesh: 'true', ...tags },
    observedAt: CTX.observedAt,
  };
}

/** Tags that vary what an entry's shape holds: namespace, service, ports, labels, network, weight, health. */
const tagSets = fc.record(
  {
    'mesh-namespace': fc.constantFrom('default', 'db', 'web'),
    'mesh-service': fc.constantFrom('pg', 'api'),
    'mesh-ports': fc.constantFrom('pg:5432', 'http:8080,grpc:9090'),
    'mesh-app': fc.constantFrom('postgres', 'api'),
    'mesh-network': fc.constantFrom('n1', 'n2'),
    'mesh-weight': fc.constantFrom('1', '5'),
    'mesh-health': fc.constantFrom('http:8080/healthz', 'tcp:5432'),
  },
  { requiredKeys: [] },
);

describe('DesiredEntry', () => {
  it('reads, serializes and compares as the WorkloadEntry it stands for, and its direct reads agree with its metadata', () => {
    fc.assert(
      fc.property(fc.array(tagSets, { minLength: 1, maxLength: 30 }), (tags) => {
        const { entries } = mapInstances(
          tags.map((t, i) => vm(i, t)),
          RULES,
          CTX,
        );
        expect(entries.length).toBe(tags.length);
        for (const entry of entries) {
          expect(entry).toBeInstanceOf(DesiredEntry);
          const plain = plainEntry(entry);
          expect(plain).not.toBeInstanceOf(DesiredEntry);
          // What the queue and the writer get: the same fields, in the same order.
          expect(JSON.stringify(entry)).toBe(JSON.stringify(plain));
          expect(JSON.parse(JSON.stringify(entry))).toStrictEqual(JSON.parse(JSON.stringify(plain)));
          expect(Object.keys(plain.spec)[0]).toBe('address');
          expect(entriesEqual(entry, plain)).toBe(true);
          expect(entriesEqual(plain, entry)).toBe(true);
          expect(diffEntries(entry, plain)).toEqual([]);
          expect(nameOfEntry(entry)).toBe(plain.metadata.name);
          expect(namespaceOfEntry(entry)).toBe(plain.metadata.namespace);
          expect(sourceOfEntry(entry)).toBe(plain.metadata.annotations[SOURCE_ANNOTATION]);
          for (const key of [SOURCE_ANNOTATION, SCOPE_ANNOTATION, OBSERVED_AT_ANNOTATION, HEALTH_CHECK_ANNOTATION]) {
            expect(annotationOfEntry(entry, key)).toBe(plain.metadata.annotations[key]);
          }
          const { address, ...rest } = plain.spec;
          expect(address).toBe((entry as DesiredEntry).address);
          expect({ ...specOfEntry(entry) }).toStrictEqual(rest);
        }
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('holds one shape for the entries of a listing that share namespace, spec but the address, and health check', () => {
    const instances = Array.from({ length: 1000 }, (_, i) => vm(i, { 'mesh-service': i % 2 === 0 ? 'pg' : 'api', 'mesh-ports': 'pg:5432' }));
    const { entries } = mapInstances(instances, RULES, CTX);
    const shapes = new Set(entries.map((e) => (e as DesiredEntry).shape));
    // Two services in three zones (the locality is in the spec).
    expect(shapes.size).toBe(6);
    expect(new Set(entries.map((e) => (e as DesiredEntry).address)).size).toBe(1000);
  });

  it('gives a new metadata and spec on every read: changing one changes neither the entry nor the others of its shape', () => {
    // Two in one zone: the same locality.
    const { entries } = mapInstances([vm(1, { 'mesh-app': 'a' }), vm(4, { 'mesh-app': 'a' })], RULES, CTX);
    const [a, b] = entries as [DesiredEntry, DesiredEntry];
    expect(a.shape).toBe(b.shape);
    const before = JSON.stringify(b);
    const meta = a.metadata;
    meta.name = 'changed';
    meta.annotations[SCOPE_ANNOTATION] = 'other';
    a.spec.address = '192.0.2.1';
    expect(a.metadata).not.toBe(meta);
    expect(a.metadata.name).toBe('static-vm-1');
    expect(a.metadata.annotations[SCOPE_ANNOTATION]).toBe(CTX.scopeKey);
    expect(a.spec.address).toBe('10.0.0.2');
    expect(JSON.stringify(b)).toBe(before);
  });

  it('plainChange gives an upsert the plain entry, and leaves deletes and plain entries as they are', () => {
    const [entry] = mapInstances([vm(1, {})], RULES, CTX).entries;
    const upsert: Change = { op: 'upsert', key: 'default/static-vm-1', entry: entry!, observedAt: CTX.observedAt };
    const plain = plainChange(upsert);
    expect(plain).not.toBe(upsert);
    expect(plain.op === 'upsert' && plain.entry).not.toBeInstanceOf(DesiredEntry);
    expect(structuredClone(plain)).toStrictEqual(JSON.parse(JSON.stringify(upsert)));
    expect(plainChange(plain)).toBe(plain);
    const remove: Change = { op: 'delete', key: 'default/x', namespace: 'default', name: 'x', scopeKey: CTX.scopeKey, observedAt: CTX.observedAt };
    expect(plainChange(remove)).toBe(remove);
  });
});
