// What a resync leaves in the shared status, and what /metrics reads back from it. Pure: the
// runtime reads the previous status and writes the next one; the rules in between are here.
import type { ScopeGauges } from '../metrics.ts';
import { MESH_SERVICES_SCOPE } from '../model.ts';
import type { ResyncResult } from '../sync/reconcile.ts';
import type { ScopeGaugeStatus, ScopeStatus } from './status-store.ts';

/** When a resync ended and how long it took. */
export interface ResyncTiming {
  /** RFC 3339 time the resync ended. */
  at: string;
  durationMs: number;
}

/** The status of a scope that has not resynced yet. */
export function emptyStatus(scopeKey: string): ScopeStatus {
  return {
    scopeKey,
    lastResyncAt: '',
    lastSuccessAt: '',
    durationMs: 0,
    complete: false,
    instances: 0,
    entries: 0,
    owned: 0,
    changes: 0,
    held: [],
    problems: [],
    skips: [],
    skipCount: 0,
    error: '',
  };
}

/** A resync that failed outright: the figures of the last one that ran stay, with the error beside them. */
export function failedResyncStatus(scopeKey: string, previous: ScopeStatus | undefined, timing: ResyncTiming, error: string): ScopeStatus {
  return { ...(previous ?? emptyStatus(scopeKey)), lastResyncAt: timing.at, durationMs: timing.durationMs, error };
}

/**
 * A resync that ran. An incomplete listing's figures are not the scope's: the last complete
 * resync (`lastComplete`, `lastSuccessAt`) stays as it was, and the gauges keep showing it.
 */
export function resyncStatus(result: ResyncResult, previous: ScopeStatus | undefined, timing: ResyncTiming): ScopeStatus {
  const { observation, plan } = result;
  const scopeKey = observation.scope.key;
  const complete = observation.listing.complete;
  const skipCodes: Record<string, number> = {};
  for (const s of observation.skips) skipCodes[s.code] = (skipCodes[s.code] ?? 0) + 1;
  // The conflicts of mesh services (their own scope) are every resync's: each plans them all.
  const conflicts = plan.conflicts.filter((c) => c.scopeKey === scopeKey || c.scopeKey === MESH_SERVICES_SCOPE);
  const lastComplete = complete
    ? {
        at: timing.at,
        provider: observation.scope.provider,
        instances: result.instances,
        entries: observation.entries.length,
        heldDeletes: plan.held.reduce((n, h) => n + h.deletes.length, 0),
        skipCodes,
      }
    : previous?.lastComplete;
  return {
    scopeKey,
    lastResyncAt: timing.at,
    lastSuccessAt: complete ? timing.at : (previous?.lastSuccessAt ?? ''),
    durationMs: timing.durationMs,
    complete,
    instances: result.instances,
    entries: observation.entries.length,
    owned: result.owned,
    changes: plan.changes.length,
    held: plan.held.map((h) => ({ deletes: h.deletes.length, reason: h.reason })),
    problems: observation.listing.problems,
    skips: observation.skips,
    skipCount: observation.skips.length,
    error: '',
    conflicts: conflicts.map((c) => ({ key: c.key, kind: c.kind, ...(c.ownerScopeKey ? { ownerScopeKey: c.ownerScopeKey } : {}), reason: c.reason })),
    conflictCount: conflicts.length,
    ...(lastComplete ? { lastComplete } : {}),
  };
}

/** The scope gauges of /metrics for the configured scopes, from the shared status: the same on every replica. */
export function scopeGauges(scopeKeys: readonly string[], statuses: ReadonlyMap<string, ScopeGaugeStatus>): ScopeGauges[] {
  return scopeKeys.map((scope) => {
    const status = statuses.get(scope);
    const last = status?.lastComplete;
    return {
      scope,
      provider: last?.provider ?? '',
      lastSuccessAt: last ? Date.parse(last.at) : undefined,
      instances: last?.instances ?? 0,
      desired: last?.entries ?? 0,
      heldDeletes: last?.heldDeletes ?? 0,
      skipCodes: last?.skipCodes ?? {},
      conflicts: status?.conflictCount ?? 0,
    };
  });
}
