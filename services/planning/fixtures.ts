// Builders for planning tests: entries as mapping would write them, scopes and plan options.
import type { Problem, Scope, WorkloadEntry, WorkloadEntrySpec } from '../model.ts';
import {
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  OBSERVED_AT_ANNOTATION,
  OWNER_LABEL,
  SCOPE_ANNOTATION,
  SOURCE_ANNOTATION,
} from '../model.ts';
import type { DesiredScope, PlanOptions } from './plan.ts';

/** The owner id of the installation under test. */
export const OWNER = 'cluster-a';
/** The observation time entries carry unless a test says otherwise. */
export const T0 = '2025-01-01T00:00:00.000Z';
/** The plan time tests use; deletes carry it. */
export const NOW = '2025-01-01T00:05:00.000Z';

/** How a test entry differs from the default one. */
export interface EntryShape {
  namespace?: string;
  scope?: string;
  observedAt?: string;
  /** The owner id label; null leaves it off. */
  owner?: string | null;
  /** The managed-by label; null leaves it off. */
  managedBy?: string | null;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  spec?: WorkloadEntrySpec;
}

/** A WorkloadEntry named `name` as mapping would write it, in namespace `vms` and scope `aws:a`. */
export function entry(name: string, shape: EntryShape = {}): WorkloadEntry {
  const labels: Record<string, string> = {};
  const managedBy = shape.managedBy === undefined ? MANAGED_BY_VALUE : shape.managedBy;
  const owner = shape.owner === undefined ? OWNER : shape.owner;
  if (managedBy !== null) labels[MANAGED_BY_LABEL] = managedBy;
  if (owner !== null) labels[OWNER_LABEL] = owner;
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: {
      name,
      namespace: shape.namespace ?? 'vms',
      labels: { ...labels, ...shape.labels },
      annotations: {
        [SOURCE_ANNOTATION]: `aws:123456789012:us-east-1:${name}`,
        [SCOPE_ANNOTATION]: shape.scope ?? 'aws:a',
        [OBSERVED_AT_ANNOTATION]: shape.observedAt ?? T0,
        ...shape.annotations,
      },
    },
    spec: shape.spec ?? { address: '10.0.0.1', ports: { http: 8080 }, labels: { app: name }, locality: 'us-east-1/us-east-1a' },
  };
}

/** A scope with key `key`. */
export function scope(key: string): Scope {
  return { key, provider: 'aws', source: 'prod', account: '123456789012', region: 'us-east-1' };
}

/** A complete scope result with these entries. */
export function desired(key: string, entries: WorkloadEntry[], complete = true, problems: Problem[] = []): DesiredScope {
  return { scope: scope(key), complete, problems, entries, observedAt: NOW };
}

/** Options with a guard that never trips, unless overridden. */
export function options(overrides: Partial<PlanOptions> = {}): PlanOptions {
  return {
    ownerId: OWNER,
    policy: 'sync',
    guard: { maxDeleteFraction: 1, allowDeletesUpTo: 0 },
    force: false,
    ...overrides,
  };
}

/** A deep copy, so a test can change the live side without touching the desired one. */
export function clone<T>(value: T): T {
  return structuredClone(value);
}
