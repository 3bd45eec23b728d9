// removalPatch: the merge-patch nulls for what the live object has and the desired one no longer sets.
import { describe, expect, it } from 'vitest';
import type { OwnedObject } from '../model.ts';
import { removalPatch } from './removals.ts';

const meta = { name: 'postgres', namespace: 'default', labels: {}, annotations: {} };
const group = (template: Record<string, unknown>): OwnedObject =>
  ({ apiVersion: 'networking.istio.io/v1', kind: 'WorkloadGroup', metadata: meta, spec: { metadata: { labels: { app: 'pg' } }, template } }) as OwnedObject;
const entry = (spec: Record<string, unknown>): OwnedObject => ({ apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: meta, spec }) as OwnedObject;

describe('removalPatch', () => {
  it.each([
    {
      name: 'a WorkloadGroup whose template loses everything keeps an empty template (Istio requires one)',
      desired: group({}),
      live: group({ ports: { postgres: 5432 }, serviceAccount: 'pg' }),
      patch: { spec: { template: { ports: null, serviceAccount: null } } },
    },
    {
      name: 'a WorkloadGroup whose template loses one port',
      desired: group({ ports: { postgres: 5432 } }),
      live: group({ ports: { postgres: 5432, metrics: 9187 } }),
      patch: { spec: { template: { ports: { metrics: null } } } },
    },
    { name: 'an entry field no longer set is removed', desired: entry({ address: '10.0.0.1' }), live: entry({ address: '10.0.0.1', network: 'n1' }), patch: { spec: { network: null } } },
    { name: 'an entry whose ports are all gone loses them', desired: entry({ address: '10.0.0.1' }), live: entry({ address: '10.0.0.1', ports: { http: 80 } }), patch: { spec: { ports: null } } },
    { name: 'nothing to remove', desired: group({ ports: { postgres: 5432 } }), live: group({ ports: { postgres: 5432 } }), patch: null },
  ])('$name', ({ desired, live, patch }) => {
    expect(removalPatch(desired, live)).toEqual(patch);
  });
});
