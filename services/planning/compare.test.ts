import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { WorkloadEntry } from '../model.ts';
import { HEALTH_CHECKS_ANNOTATION, NAME_LABEL, OBSERVED_AT_ANNOTATION, SCOPE_ANNOTATION } from '../model.ts';
import { diffEntries, entriesEqual } from './compare.ts';
import type { EntryDifference } from './compare.ts';
import { T0, clone, entry } from './fixtures.ts';

const base = entry('vm-1');

function live(change: (e: WorkloadEntry) => void, from: WorkloadEntry = base): WorkloadEntry {
  const copy = clone(from);
  change(copy);
  return copy;
}

const cases: Array<{ name: string; desired: WorkloadEntry; live: WorkloadEntry; diff: EntryDifference[] }> = [
  { name: 'identical', desired: base, live: clone(base), diff: [] },
  {
    name: 'an entry written before the name label existed is not rewritten for it alone',
    desired: entry('vm-1', { labels: { [NAME_LABEL]: 'vm-1' } }),
    live: base,
    diff: [],
  },
  {
    name: 'a name label of another value is corrected',
    desired: entry('vm-1', { labels: { [NAME_LABEL]: 'vm-1' } }),
    live: entry('vm-1', { labels: { [NAME_LABEL]: 'vm-2' } }),
    diff: [{ path: `metadata.labels[${NAME_LABEL}]`, desired: 'vm-1', live: 'vm-2' }],
  },
  {
    name: 'a name label the desired entry does not set is removed',
    desired: base,
    live: entry('vm-1', { labels: { [NAME_LABEL]: 'vm-1' } }),
    diff: [{ path: `metadata.labels[${NAME_LABEL}]`, desired: undefined, live: 'vm-1' }],
  },
  {
    name: 'server fields on the live object are not ours',
    desired: base,
    live: live((e) => {
      e.metadata.resourceVersion = '42';
      e.metadata.uid = 'u-1';
    }),
    diff: [],
  },
  {
    name: 'map key order does not matter',
    desired: entry('vm-1', { spec: { address: '10.0.0.1', ports: { http: 80, grpc: 81 } } }),
    live: entry('vm-1', { spec: { ports: { grpc: 81, http: 80 }, address: '10.0.0.1' } }),
    diff: [],
  },
  {
    name: 'absent ports equal empty ports',
    desired: entry('vm-1', { spec: { address: '10.0.0.1' } }),
    live: entry('vm-1', { spec: { address: '10.0.0.1', ports: {} } }),
    diff: [],
  },
  {
    name: 'undefined fields equal absent ones',
    desired: entry('vm-1', { spec: { address: '10.0.0.1', network: undefined, labels: undefined } }),
    live: entry('vm-1', { spec: { address: '10.0.0.1' } }),
    diff: [],
  },
  {
    name: 'an empty list equals an absent one, in fields we do not know',
    desired: base,
    live: live((e) => {
      (e.spec as Record<string, unknown>)['extra'] = [];
    }),
    diff: [],
  },
  {
    name: 'a list only the live object has names its items',
    desired: base,
    live: live((e) => {
      (e.spec as Record<string, unknown>)['extra'] = ['x'];
    }),
    diff: [{ path: 'spec.extra[0]', desired: undefined, live: 'x' }],
  },
  {
    name: 'proto3 zero values of spec fields equal absent ones',
    desired: entry('vm-1', { spec: { address: '10.0.0.1', weight: 0, network: '' } }),
    live: entry('vm-1', { spec: { address: '10.0.0.1' } }),
    diff: [],
  },
  {
    name: 'an empty spec label value is a real label',
    desired: entry('vm-1', { spec: { address: '10.0.0.1', labels: { tier: '' } } }),
    live: entry('vm-1', { spec: { address: '10.0.0.1' } }),
    diff: [{ path: 'spec.labels[tier]', desired: '', live: undefined }],
  },
  {
    name: 'a changed port names the port',
    desired: base,
    live: live((e) => {
      e.spec.ports = { http: 9090 };
    }),
    diff: [{ path: 'spec.ports[http]', desired: 8080, live: 9090 }],
  },
  {
    name: 'a changed address',
    desired: base,
    live: live((e) => {
      e.spec.address = '10.0.0.2';
    }),
    diff: [{ path: 'spec.address', desired: '10.0.0.1', live: '10.0.0.2' }],
  },
  {
    name: 'a spec field only the live object has is ours to remove',
    desired: base,
    live: live((e) => {
      e.spec.serviceAccount = 'legacy';
    }),
    diff: [{ path: 'spec.serviceAccount', desired: undefined, live: 'legacy' }],
  },
  {
    name: 'only the observation time differs',
    desired: base,
    live: live((e) => {
      e.metadata.annotations[OBSERVED_AT_ANNOTATION] = '2020-01-01T00:00:00.000Z';
    }),
    diff: [],
  },
  {
    name: 'the live object has no observation time',
    desired: base,
    live: live((e) => {
      delete e.metadata.annotations[OBSERVED_AT_ANNOTATION];
    }),
    diff: [],
  },
  {
    name: 'labels and annotations others added are ignored',
    desired: base,
    live: live((e) => {
      e.metadata.labels['team'] = 'db';
      e.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'] = '{}';
    }),
    diff: [],
  },
  {
    name: 'an annotation in our domain that desired no longer sets',
    desired: base,
    live: live((e) => {
      e.metadata.annotations['vm-mesh-sync.io/legacy'] = 'x';
    }),
    diff: [{ path: 'metadata.annotations[vm-mesh-sync.io/legacy]', desired: undefined, live: 'x' }],
  },
  {
    name: 'a changed scope annotation',
    desired: base,
    live: live((e) => {
      e.metadata.annotations[SCOPE_ANNOTATION] = 'aws:old';
    }),
    diff: [{ path: `metadata.annotations[${SCOPE_ANNOTATION}]`, desired: 'aws:a', live: 'aws:old' }],
  },
  {
    name: 'a desired label missing live',
    desired: entry('vm-1', { labels: { 'vm-mesh-sync.io/app': 'pg' } }),
    live: clone(base),
    diff: [{ path: 'metadata.labels[vm-mesh-sync.io/app]', desired: 'pg', live: undefined }],
  },
  {
    name: "istiod's status and its connection annotations on a health-checked entry are not ours",
    desired: entry('vm-1', { annotations: { [HEALTH_CHECKS_ANNOTATION]: 'true' } }),
    live: live(
      (e) => {
        (e as unknown as Record<string, unknown>)['status'] = {
          conditions: [{ type: 'Healthy', status: 'True', lastProbeTime: '2025-01-01T00:00:05Z', lastTransitionTime: '2025-01-01T00:00:05Z' }],
        };
        e.metadata.annotations['istio.io/workloadController'] = 'istiod-7d9f';
        e.metadata.annotations['istio.io/connectedAt'] = '2025-01-01T00:00:04.123456789Z';
      },
      entry('vm-1', { annotations: { [HEALTH_CHECKS_ANNOTATION]: 'true' } }),
    ),
    diff: [],
  },
  {
    name: 'the health annotation is ours to remove when the health tag is gone',
    desired: base,
    live: live((e) => {
      e.metadata.annotations[HEALTH_CHECKS_ANNOTATION] = 'true';
    }),
    diff: [{ path: `metadata.annotations[${HEALTH_CHECKS_ANNOTATION}]`, desired: undefined, live: 'true' }],
  },
  {
    name: 'another Istio annotation only the live object has is not ours',
    desired: base,
    live: live((e) => {
      e.metadata.annotations['proxy.istio.io/config'] = '{}';
    }),
    diff: [],
  },
  {
    name: 'several differences come in a stable order',
    desired: base,
    live: live((e) => {
      e.spec = { address: '10.0.0.9', ports: { http: 8080, admin: 9000 }, labels: { app: 'vm-1' }, locality: 'us-east-1/us-east-1b' };
      e.metadata.labels['app.kubernetes.io/managed-by'] = 'someone';
    }),
    diff: [
      { path: 'metadata.labels[app.kubernetes.io/managed-by]', desired: 'vm-mesh-sync', live: 'someone' },
      { path: 'spec.address', desired: '10.0.0.1', live: '10.0.0.9' },
      { path: 'spec.locality', desired: 'us-east-1/us-east-1a', live: 'us-east-1/us-east-1b' },
      { path: 'spec.ports[admin]', desired: undefined, live: 9000 },
    ],
  },
];

describe('entriesEqual and diffEntries', () => {
  it.each(cases)('$name', ({ desired, live, diff }) => {
    expect(diffEntries(desired, live)).toEqual(diff);
    expect(entriesEqual(desired, live)).toBe(diff.length === 0);
  });

  it('tolerates a live object whose metadata maps were omitted by the API server', () => {
    const bare = live((e) => {
      (e.metadata as { labels?: unknown }).labels = undefined;
      (e.metadata as { annotations?: unknown }).annotations = undefined;
    });
    expect(entriesEqual(base, bare)).toBe(false);
    expect(diffEntries(base, bare).map((d) => d.path)).toEqual([
      'metadata.labels[app.kubernetes.io/managed-by]',
      'metadata.labels[vm-mesh-sync.io/owner]',
      `metadata.annotations[${SCOPE_ANNOTATION}]`,
      'metadata.annotations[vm-mesh-sync.io/source]',
    ]);
  });

  it('agrees with diffEntries and ignores key order, for any spec', () => {
    const spec = fc.record(
      {
        address: fc.constantFrom('', '10.0.0.1', '10.0.0.2'),
        ports: fc.dictionary(fc.constantFrom('http', 'grpc', 'tcp'), fc.integer({ min: 1, max: 3 })),
        labels: fc.dictionary(fc.constantFrom('app', 'tier', 'version'), fc.constantFrom('', 'a', 'b')),
        network: fc.constantFrom('', 'vpc-1'),
        weight: fc.integer({ min: 0, max: 2 }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(spec, spec, fc.constantFrom(T0, '2030-01-01T00:00:00.000Z'), (a, b, observedAt) => {
        const desired = entry('vm-1', { spec: a });
        const other = entry('vm-1', { spec: b, observedAt });
        const reversed = entry('vm-1', { spec: reverseKeys(a) as typeof a, observedAt });
        expect(entriesEqual(desired, other)).toBe(diffEntries(desired, other).length === 0);
        expect(entriesEqual(desired, reversed)).toBe(true);
        expect(entriesEqual(desired, other)).toBe(entriesEqual(other, desired));
        // An entry compared with itself (a stand-in that is the desired entry) is equal, as its diff says.
        expect(entriesEqual(other, other)).toBe(true);
        expect(diffEntries(other, other)).toEqual([]);
      }),
    );
  });

  it('answers the same for a map both entries share as for an equal copy of it, and finds nothing between an entry and itself', () => {
    const map = fc.option(fc.dictionary(fc.constantFrom('app', 'tier', 'http'), fc.constantFrom('', 'a', 'b')), { nil: undefined });
    fc.assert(
      fc.property(map, map, fc.constantFrom('labels', 'ports', 'metadata.labels', 'metadata.annotations'), (a, b, where) => {
        const desired = entry('vm-1', { spec: { address: '10.0.0.1', ...(where === 'ports' ? { ports: a as Record<string, number> | undefined } : { labels: a }) } });
        const other = clone(desired);
        // `other` takes `b`, then the map `desired` has at the same place: the same object, or a copy.
        const put = (e: WorkloadEntry, value: Record<string, string> | undefined) => {
          if (where === 'metadata.labels' || where === 'metadata.annotations') {
            const field = where === 'metadata.labels' ? 'labels' : 'annotations';
            (e.metadata as unknown as Record<string, unknown>)[field] = value;
          } else (e.spec as Record<string, unknown>)[where] = value;
        };
        const from = (e: WorkloadEntry) =>
          where === 'metadata.labels' ? e.metadata.labels : where === 'metadata.annotations' ? e.metadata.annotations : (e.spec as Record<string, Record<string, string> | undefined>)[where];
        put(other, b);
        const shared = clone(other);
        put(shared, from(desired));
        const copied = clone(shared);
        expect(entriesEqual(desired, shared)).toBe(entriesEqual(desired, copied));
        expect(diffEntries(desired, shared)).toEqual(diffEntries(desired, copied));
        expect(entriesEqual(desired, other)).toBe(diffEntries(desired, other).length === 0);
        expect(entriesEqual(other, other)).toBe(true);
        expect(diffEntries(other, other)).toEqual([]);
      }),
    );
  });
});

function reverseKeys(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .reverse()
      .map(([k, v]) => [k, reverseKeys(v)]),
  );
}
