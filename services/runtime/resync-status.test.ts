import { describe, expect, it } from 'vitest';
import type { Problem, Scope, Skip } from '../model.ts';
import type { Plan } from '../planning/index.ts';
import type { ResyncResult } from '../sync/reconcile.ts';
import { emptyStatus, failedResyncStatus, resyncStatus, scopeGauges } from './resync-status.ts';
import type { ScopeStatus } from './status-store.ts';

const SCOPE: Scope = { key: 'aws:prod:111111111111:eu-west-1', provider: 'aws', source: 'prod', account: '111111111111', region: 'eu-west-1' };
const EARLIER = '2025-01-01T00:00:00.000Z';
const NOW = '2025-01-01T00:05:00.000Z';

function skip(code: string, id: string): Skip {
  return { instance: { provider: 'aws', account: SCOPE.account, id, name: id }, scopeKey: SCOPE.key, source: `aws:${SCOPE.account}:eu-west-1:${id}`, code, reason: code, keepsEntry: false };
}

/** A resync of SCOPE: `complete` or not, with two skips, one held delete and conflicts of this scope and another. */
function result(complete: boolean, problems: Problem[] = []): ResyncResult {
  const plan = {
    changes: [],
    held: [{ scopeKey: SCOPE.key, deletes: [{}], ownedInScope: 4, reason: 'would delete 1 of 4' }],
    forced: [],
    conflicts: [
      { key: 'ns/a', kind: 'other-scope', scopeKey: SCOPE.key, ownerScopeKey: 'aws:other', reason: 'kept by aws:other' },
      { key: 'ns/b', kind: 'not-owned', scopeKey: 'aws:elsewhere', reason: 'not ours' },
    ],
    orphaned: [],
    skippedScopes: [],
    summary: { create: 0, update: 0, delete: 0, unchanged: 3, held: 1, dropped: 0 },
  } as unknown as Plan;
  return {
    observation: {
      scope: SCOPE,
      provider: undefined as never,
      listing: { scope: SCOPE, complete, problems },
      listed: 6,
      entries: [{}, {}, {}] as never,
      skips: [skip('VMS_SKIP_STOPPED', 'i-1'), skip('VMS_SKIP_STOPPED', 'i-2')],
      observedAt: EARLIER,
      namespaces: undefined as never,
      durationMs: 10,
    },
    plan,
    instances: 6,
    owned: 4,
  };
}

const previous: ScopeStatus = {
  ...emptyStatus(SCOPE.key),
  lastResyncAt: EARLIER,
  lastSuccessAt: EARLIER,
  instances: 9,
  lastComplete: { at: EARLIER, provider: 'aws', instances: 9, entries: 8, heldDeletes: 0, skipCodes: {} },
};

describe('resyncStatus', () => {
  it('records a complete resync as the last complete one, with only its own scope’s conflicts', () => {
    const status = resyncStatus(result(true), previous, { at: NOW, durationMs: 42 });
    expect(status).toMatchObject({
      scopeKey: SCOPE.key,
      lastResyncAt: NOW,
      lastSuccessAt: NOW,
      durationMs: 42,
      complete: true,
      instances: 6,
      entries: 3,
      owned: 4,
      held: [{ deletes: 1, reason: 'would delete 1 of 4' }],
      skipCount: 2,
      error: '',
      conflicts: [{ key: 'ns/a', kind: 'other-scope', ownerScopeKey: 'aws:other', reason: 'kept by aws:other' }],
      conflictCount: 1,
      lastComplete: { at: NOW, provider: 'aws', instances: 6, entries: 3, heldDeletes: 1, skipCodes: { VMS_SKIP_STOPPED: 2 } },
    });
  });

  it.each([
    { name: 'keeps the last complete resync', before: previous, lastSuccessAt: EARLIER, lastComplete: previous.lastComplete },
    { name: 'has none before the first complete one', before: undefined, lastSuccessAt: '', lastComplete: undefined },
  ])('after an incomplete listing, $name', ({ before, lastSuccessAt, lastComplete }) => {
    const problem: Problem = { code: 'VMS_ERR_PROVIDER_FAILED', message: 'page 2 failed', at: 'page 2' };
    const status = resyncStatus(result(false, [problem]), before, { at: NOW, durationMs: 1 });
    expect(status.complete).toBe(false);
    expect(status.lastResyncAt).toBe(NOW);
    expect(status.lastSuccessAt).toBe(lastSuccessAt);
    expect(status.lastComplete).toEqual(lastComplete);
    expect(status.problems).toEqual([problem]);
  });
});

describe('failedResyncStatus', () => {
  it.each([
    { name: 'keeps the figures of the last resync that ran', before: previous, expected: { ...previous, lastResyncAt: NOW, durationMs: 7, error: 'cluster unreachable' } },
    { name: 'starts from an empty status', before: undefined, expected: { ...emptyStatus(SCOPE.key), lastResyncAt: NOW, durationMs: 7, error: 'cluster unreachable' } },
  ])('$name', ({ before, expected }) => {
    expect(failedResyncStatus(SCOPE.key, before, { at: NOW, durationMs: 7 }, 'cluster unreachable')).toEqual(expected);
  });
});

describe('scopeGauges', () => {
  it('shows the last complete resync of each configured scope, and zeros for one without', () => {
    const statuses = new Map([[SCOPE.key, { lastComplete: previous.lastComplete, conflictCount: 2 }]]);
    expect(scopeGauges([SCOPE.key, 'static:onprem'], statuses)).toEqual([
      { scope: SCOPE.key, provider: 'aws', lastSuccessAt: Date.parse(EARLIER), instances: 9, desired: 8, heldDeletes: 0, skipCodes: {}, conflicts: 2 },
      { scope: 'static:onprem', provider: '', lastSuccessAt: undefined, instances: 0, desired: 0, heldDeletes: 0, skipCodes: {}, conflicts: 0 },
    ]);
  });
});
