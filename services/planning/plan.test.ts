import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { EntryKey, OwnedObject, WorkloadEntry } from '../model.ts';
import { MANAGED_BY_LABEL, OBSERVED_AT_ANNOTATION, SCOPE_ANNOTATION, entryKey } from '../model.ts';
import { VmsError } from '../errors.ts';
import { runSync } from '../slices.ts';
import { sameAsDesired } from '../sync/plan-scopes.ts';
import { calculatePlan, isOwned, POLICIES } from './index.ts';
import type { CandidateChanges, DesiredScope, Plan, PlanInput, PlanOptions } from './index.ts';
import { NOW, OWNER, T0, clone, desired, entry, options } from './fixtures.ts';

/** A plan reduced to what a reader checks: change lines, keys and counts. */
function view(plan: Plan) {
  return {
    changes: plan.changes.map((c) => `${c.op} ${c.key}`),
    held: plan.held.map((h) => ({ scopeKey: h.scopeKey, keys: h.deletes.map((d) => d.key), ownedInScope: h.ownedInScope })),
    forced: plan.forced.map((h) => ({ scopeKey: h.scopeKey, keys: h.deletes.map((d) => d.key), ownedInScope: h.ownedInScope })),
    conflicts: plan.conflicts.map((c) => `${c.kind} ${c.key}`),
    orphaned: plan.orphaned.map((o) => `${o.key} ${o.scopeKey}`),
    skipped: plan.skippedScopes.map((s) => ({ scopeKey: s.scopeKey, suppressedDeletes: s.suppressedDeletes, problems: s.problems.length })),
    summary: plan.summary,
  };
}

type View = ReturnType<typeof view>;

const empty: View = {
  changes: [],
  held: [],
  forced: [],
  conflicts: [],
  orphaned: [],
  skipped: [],
  summary: { create: 0, update: 0, delete: 0, unchanged: 0, held: 0, dropped: 0 },
};

function expected(overrides: Partial<Omit<View, 'summary'>> & { summary?: Partial<View['summary']> } = {}): View {
  return { ...empty, ...overrides, summary: { ...empty.summary, ...overrides.summary } };
}

const a = entry('a');
const b = entry('b');
const c = entry('c');
const moved = (e: WorkloadEntry, address: string): WorkloadEntry => {
  const copy = clone(e);
  copy.spec.address = address;
  return copy;
};
const names = (prefix: string, n: number, scopeKey = 'aws:a'): WorkloadEntry[] =>
  Array.from({ length: n }, (_, i) => entry(`${prefix}${i}`, { scope: scopeKey }));

interface Case {
  name: string;
  input: PlanInput;
  options?: Partial<PlanOptions>;
  want: View;
}

const cases: Case[] = [
  {
    name: 'equal inputs give no changes',
    input: { desired: [desired('aws:a', [a, b])], owned: [clone(a), clone(b)] },
    want: expected({ summary: { unchanged: 2 } }),
  },
  {
    name: 'an absent entry is created',
    input: { desired: [desired('aws:a', [a, b])], owned: [clone(a)] },
    want: expected({ changes: ['upsert vms/b'], summary: { create: 1, unchanged: 1 } }),
  },
  {
    name: 'a different entry is updated',
    input: { desired: [desired('aws:a', [a])], owned: [moved(a, '10.9.9.9')] },
    want: expected({ changes: ['upsert vms/a'], summary: { update: 1 } }),
  },
  {
    name: 'an owned entry nobody wants is deleted',
    input: { desired: [desired('aws:a', [a])], owned: [clone(a), clone(b)] },
    want: expected({ changes: ['delete vms/b'], summary: { delete: 1, unchanged: 1 } }),
  },
  {
    name: 'upserts come before deletes, each by key',
    input: {
      desired: [desired('aws:a', [entry('z'), entry('m'), moved(c, '10.1.1.1')])],
      owned: [entry('y'), c, entry('b'), entry('x')],
    },
    want: expected({
      changes: ['upsert vms/c', 'upsert vms/m', 'upsert vms/z', 'delete vms/b', 'delete vms/x', 'delete vms/y'],
      summary: { create: 2, update: 1, delete: 3 },
    }),
  },
  {
    name: 'only the observation time differs: no change',
    input: { desired: [desired('aws:a', [entry('a', { observedAt: '2025-06-01T00:00:00.000Z' })])], owned: [a] },
    want: expected({ summary: { unchanged: 1 } }),
  },
  {
    name: 'labels and annotations others added are ignored',
    input: {
      desired: [desired('aws:a', [a])],
      owned: [entry('a', { labels: { team: 'db' }, annotations: { 'example.com/note': 'hi' } })],
    },
    want: expected({ summary: { unchanged: 1 } }),
  },
  {
    name: 'policy upsert-only: creates and updates, no deletes',
    input: { desired: [desired('aws:a', [a, b])], owned: [moved(b, '10.9.9.9'), c] },
    options: { policy: 'upsert-only' },
    want: expected({ changes: ['upsert vms/a', 'upsert vms/b'], summary: { create: 1, update: 1, dropped: 1 } }),
  },
  {
    name: 'policy create-only: only creates',
    input: { desired: [desired('aws:a', [a, b])], owned: [moved(b, '10.9.9.9'), c] },
    options: { policy: 'create-only' },
    want: expected({ changes: ['upsert vms/a'], summary: { create: 1, dropped: 2 } }),
  },
  {
    name: 'policy sync: everything',
    input: { desired: [desired('aws:a', [a, b])], owned: [moved(b, '10.9.9.9'), c] },
    options: { policy: 'sync' },
    want: expected({ changes: ['upsert vms/a', 'upsert vms/b', 'delete vms/c'], summary: { create: 1, update: 1, delete: 1 } }),
  },
  {
    name: 'a foreign key is a conflict and is not written',
    input: { desired: [desired('aws:a', [a, b])], owned: [], foreign: new Set<EntryKey>(['vms/a']) },
    want: expected({ changes: ['upsert vms/b'], conflicts: ['not-owned vms/a'], summary: { create: 1 } }),
  },
  {
    name: 'foreign objects may be given as entries',
    input: { desired: [desired('aws:a', [a])], owned: [], foreign: [entry('a', { managedBy: null, owner: null })] },
    want: expected({ conflicts: ['not-owned vms/a'] }),
  },
  {
    name: 'a foreign key wins over an owned object with the same key',
    input: { desired: [desired('aws:a', [moved(a, '10.9.9.9')])], owned: [a, b], foreign: ['vms/a', 'vms/b'] },
    want: expected({ conflicts: ['not-owned vms/a'] }),
  },
  {
    name: 'an object of another owner id is never touched',
    input: {
      desired: [desired('aws:a', [a])],
      owned: [entry('a', { owner: 'cluster-b', spec: { address: '10.2.2.2' } }), entry('b', { owner: 'cluster-b' })],
    },
    want: expected({ conflicts: ['not-owned vms/a'] }),
  },
  {
    name: 'an object without the managed-by label is never touched',
    input: { desired: [desired('aws:a', [])], owned: [entry('a', { managedBy: null }), entry('b', { managedBy: 'helm' })] },
    want: expected(),
  },
  {
    name: 'an incomplete scope deletes nothing but still upserts',
    input: {
      desired: [desired('aws:a', [a], false, [{ code: 'VMS_ERR_PROVIDER_FAILED', message: 'page 2 failed', at: 'page 2' }])],
      owned: [b, c],
    },
    want: expected({
      changes: ['upsert vms/a'],
      skipped: [{ scopeKey: 'aws:a', suppressedDeletes: 2, problems: 1 }],
      summary: { create: 1 },
    }),
  },
  {
    name: 'a failed scope deletes nothing, other scopes still delete',
    input: {
      desired: [
        desired('aws:a', [], false, [{ code: 'VMS_ERR_PROVIDER_FAILED', message: 'timeout' }]),
        desired('aws:b', []),
      ],
      owned: [a, b, entry('x', { scope: 'aws:b' })],
    },
    want: expected({
      changes: ['delete vms/x'],
      skipped: [{ scopeKey: 'aws:a', suppressedDeletes: 2, problems: 1 }],
      summary: { delete: 1 },
    }),
  },
  {
    name: 'a planned scope without a listing deletes nothing',
    input: { desired: [], owned: [a] },
    options: { scopes: ['aws:a'] },
    want: expected({ skipped: [{ scopeKey: 'aws:a', suppressedDeletes: 1, problems: 0 }] }),
  },
  {
    name: 'the guard holds all deletes of a scope beyond the fraction',
    input: { desired: [desired('aws:a', [entry('n0')])], owned: names('n', 4) },
    options: { guard: { maxDeleteFraction: 0.5, allowDeletesUpTo: 1 } },
    want: expected({
      held: [{ scopeKey: 'aws:a', keys: ['vms/n1', 'vms/n2', 'vms/n3'], ownedInScope: 4 }],
      summary: { unchanged: 1, held: 3 },
    }),
  },
  {
    name: 'force releases held deletes',
    input: { desired: [desired('aws:a', [entry('n0')])], owned: names('n', 4) },
    options: { guard: { maxDeleteFraction: 0.5, allowDeletesUpTo: 1 }, force: true },
    want: expected({
      changes: ['delete vms/n1', 'delete vms/n2', 'delete vms/n3'],
      forced: [{ scopeKey: 'aws:a', keys: ['vms/n1', 'vms/n2', 'vms/n3'], ownedInScope: 4 }],
      summary: { unchanged: 1, delete: 3 },
    }),
  },
  {
    name: 'deletes at allowDeletesUpTo are never held, even all of a scope',
    input: { desired: [desired('aws:a', [])], owned: names('n', 3) },
    options: { guard: { maxDeleteFraction: 0, allowDeletesUpTo: 3 } },
    want: expected({ changes: ['delete vms/n0', 'delete vms/n1', 'delete vms/n2'], summary: { delete: 3 } }),
  },
  {
    name: 'one delete above allowDeletesUpTo is held',
    input: { desired: [desired('aws:a', [])], owned: names('n', 3) },
    options: { guard: { maxDeleteFraction: 0, allowDeletesUpTo: 2 } },
    want: expected({
      held: [{ scopeKey: 'aws:a', keys: ['vms/n0', 'vms/n1', 'vms/n2'], ownedInScope: 3 }],
      summary: { held: 3 },
    }),
  },
  {
    name: 'deletes at exactly the fraction go through',
    input: { desired: [desired('aws:a', names('n', 2))], owned: names('n', 4) },
    options: { guard: { maxDeleteFraction: 0.5, allowDeletesUpTo: 0 } },
    want: expected({ changes: ['delete vms/n2', 'delete vms/n3'], summary: { delete: 2, unchanged: 2 } }),
  },
  {
    name: 'the guard judges each scope on its own',
    input: {
      desired: [desired('aws:a', []), desired('aws:b', names('p', 9, 'aws:b'))],
      owned: [...names('n', 2), ...names('p', 10, 'aws:b')],
    },
    options: { guard: { maxDeleteFraction: 0.5, allowDeletesUpTo: 0 } },
    want: expected({
      changes: ['delete vms/p9'],
      held: [{ scopeKey: 'aws:a', keys: ['vms/n0', 'vms/n1'], ownedInScope: 2 }],
      summary: { delete: 1, unchanged: 9, held: 2 },
    }),
  },
  {
    name: 'upsert-only holds nothing because it deletes nothing',
    input: { desired: [desired('aws:a', [])], owned: names('n', 3) },
    options: { policy: 'upsert-only', guard: { maxDeleteFraction: 0, allowDeletesUpTo: 0 } },
    want: expected({ summary: { dropped: 3 } }),
  },
  {
    name: 'an entry whose instance moved to another scope is handed over by an update, not a delete',
    input: { desired: [desired('aws:a', []), desired('aws:b', [entry('a', { scope: 'aws:b' })])], owned: [a] },
    want: expected({ changes: ['upsert vms/a'], summary: { update: 1 } }),
  },
  {
    name: 'an entry of an incomplete scope stays with it: another scope wanting it is a conflict',
    input: { desired: [desired('aws:a', [], false), desired('aws:b', [entry('a', { scope: 'aws:b' })])], owned: [a, b] },
    want: expected({
      conflicts: ['other-scope vms/a'],
      skipped: [{ scopeKey: 'aws:a', suppressedDeletes: 1, problems: 0 }],
    }),
  },
  {
    name: 'an entry of a configured scope outside this plan stays with it: a conflict, no write',
    input: { desired: [desired('aws:b', [moved(entry('a', { scope: 'aws:b' }), '10.2.0.1')])], owned: [a] },
    options: { configuredScopes: ['aws:a', 'aws:b'] },
    want: expected({ conflicts: ['other-scope vms/a'] }),
  },
  {
    name: 'an entry of a scope no longer configured is taken over by the scope that wants it',
    input: { desired: [desired('aws:b', [entry('a', { scope: 'aws:b' })])], owned: [entry('a', { scope: 'aws:gone' })] },
    want: expected({ changes: ['upsert vms/a'], summary: { update: 1 } }),
  },
  {
    name: 'an owned entry of a scope no longer configured is orphaned and kept',
    input: { desired: [desired('aws:a', [a])], owned: [a, entry('old', { scope: 'aws:gone' })] },
    want: expected({ orphaned: ['vms/old aws:gone'], summary: { unchanged: 1 } }),
  },
  {
    name: 'an owned entry without a scope annotation is orphaned and kept',
    input: { desired: [desired('aws:a', [])], owned: [entry('x', { annotations: { 'vm-mesh-sync.io/scope': '' } })] },
    want: expected({ orphaned: ['vms/x '] }),
  },
  {
    name: 'an owned entry of a configured scope outside this plan is left to its own plan',
    input: { desired: [desired('aws:a', [])], owned: [entry('x', { scope: 'aws:b' })] },
    options: { configuredScopes: ['aws:a', 'aws:b'] },
    want: expected(),
  },
  {
    name: 'a key wanted by two scopes: the scope holding it keeps it, however new the other observation',
    input: {
      desired: [
        desired('aws:a', [entry('a', { scope: 'aws:a', observedAt: '2025-01-01T00:01:00.000Z' })]),
        desired('aws:b', [moved(entry('a', { scope: 'aws:b', observedAt: '2025-01-01T00:02:00.000Z' }), '10.2.0.1')]),
      ],
      owned: [a],
    },
    want: expected({ conflicts: ['other-scope vms/a'], summary: { unchanged: 1 } }),
  },
  {
    name: 'the same key in two namespaces is two entries',
    input: { desired: [desired('aws:a', [entry('a', { namespace: 'one' }), entry('a', { namespace: 'two' })])], owned: [] },
    want: expected({ changes: ['upsert one/a', 'upsert two/a'], summary: { create: 2 } }),
  },
];

describe('calculatePlan', () => {
  it.each(cases)('$name', ({ input, options: overrides, want }) => {
    expect(view(calculatePlan(input, options(overrides)))).toEqual(want);
  });

  it('TestIdempotency: equal inputs give no changes, whatever the policy', () => {
    const entries = [a, b, c, entry('d', { namespace: 'other' })];
    for (const policy of ['sync', 'upsert-only', 'create-only'] as const) {
      const plan = calculatePlan({ desired: [desired('aws:a', entries)], owned: entries.map(clone) }, options({ policy }));
      expect(plan.changes).toEqual([]);
      expect(plan.summary.unchanged).toBe(4);
    }
  });

  it("gives upserts the observation of their entry and deletes the start of their scope's listing", () => {
    const observed = '2025-01-01T00:03:00.000Z';
    const listingStart = '2025-01-01T00:02:59.000001Z';
    const plan = calculatePlan(
      { desired: [{ ...desired('aws:a', [entry('a', { observedAt: observed })]), observedAt: listingStart }], owned: [b] },
      options(),
    );
    expect(plan.changes).toEqual([
      { op: 'upsert', key: 'vms/a', entry: entry('a', { observedAt: observed }), observedAt: observed },
      { op: 'delete', key: 'vms/b', namespace: 'vms', name: 'b', scopeKey: 'aws:a', observedAt: listingStart },
    ]);
  });

  it('a plan of a few names looks at owned entries of exactly those names, whatever else it is given', () => {
    const plan = calculatePlan({ desired: [desired('aws:a', [])], owned: [a, b, c] }, options({ onlyNames: new Set(['b']) }));
    expect(view(plan)).toEqual(expected({ changes: ['delete vms/b'], summary: { delete: 1 } }));
    // Its guard is the name set: the fraction guard does not hold its one delete back.
    const guarded = calculatePlan({ desired: [desired('aws:a', [])], owned: [b] }, options({ onlyNames: new Set(['b']), guard: { maxDeleteFraction: 0, allowDeletesUpTo: 0 } }));
    expect(guarded.changes.map((ch) => ch.key)).toEqual(['vms/b']);
  });

  it('a take-over names the scope it takes the entry from, for the writer to check', () => {
    const plan = calculatePlan({ desired: [desired('aws:b', [entry('a', { scope: 'aws:b' })])], owned: [entry('a', { scope: 'aws:gone' })] }, options());
    expect(plan.changes[0]).toMatchObject({ op: 'upsert', takeOverFrom: 'aws:gone' });
  });

  it("falls back to the scope's observation for an upsert without an observation annotation", () => {
    const bare = entry('a');
    delete bare.metadata.annotations[OBSERVED_AT_ANNOTATION];
    const plan = calculatePlan({ desired: [desired('aws:a', [bare])], owned: [] }, options());
    expect(plan.changes[0]?.observedAt).toBe(NOW);
  });

  it('explains held deletes with the counts', () => {
    const plan = calculatePlan(
      { desired: [desired('aws:a', [])], owned: names('n', 4) },
      options({ guard: { maxDeleteFraction: 0.25, allowDeletesUpTo: 2 } }),
    );
    expect(plan.held[0]?.reason).toBe(
      'the plan would delete 4 of 4 entries in scope aws:a (100%), more than 25% and more than 2; they are held back until the plan is forced',
    );
  });

  it('explains incomplete scopes, not-owned conflicts and orphans with the names involved', () => {
    const plan = calculatePlan(
      { desired: [desired('aws:a', [a], false)], owned: [entry('o', { scope: 'aws:gone' })], foreign: ['vms/a'] },
      options(),
    );
    expect(plan.skippedScopes[0]?.reason).toContain('aws:a');
    expect(plan.conflicts[0]?.reason).toBe(`vms/a exists and is not managed by vm-mesh-sync with owner "${OWNER}"; it is left alone`);
    expect(plan.orphaned[0]?.reason).toContain('scope aws:gone is not configured');
  });

  it('names every contender of a duplicate key', () => {
    const plan = calculatePlan(
      {
        desired: [
          desired('aws:b', [entry('a', { scope: 'aws:b' })]),
          desired('aws:a', [entry('a', { scope: 'aws:a' })]),
        ],
        owned: [],
      },
      options(),
    );
    // An absent key: the smaller scope key gets it, whatever the observation times.
    const upsert = plan.changes[0];
    expect(upsert?.op === 'upsert' && upsert.entry.metadata.annotations['vm-mesh-sync.io/scope']).toBe('aws:a');
    expect(plan.conflicts[0]).toMatchObject({ kind: 'other-scope', scopeKey: 'aws:b', ownerScopeKey: 'aws:a' });
    expect(plan.conflicts[0]?.reason).toBe(
      'vms/a is wanted by scope aws:a (aws:123456789012:us-east-1:a) and by scope aws:b (aws:123456789012:us-east-1:a); ' +
        'aws:a keeps it: list the instance in one provider block only',
    );
  });

  it('does not modify its inputs', () => {
    const input: PlanInput = { desired: [desired('aws:a', [b, a])], owned: [c, moved(a, '10.9.9.9')] };
    const before = clone(input);
    calculatePlan(input, options());
    expect(input).toEqual(before);
  });

  it.each([
    { name: 'unknown policy', overrides: { policy: 'everything' as PlanOptions['policy'] } },
    { name: 'empty owner id', overrides: { ownerId: '' } },
    { name: 'fraction above 1', overrides: { guard: { maxDeleteFraction: 1.5, allowDeletesUpTo: 0 } } },
    { name: 'fraction NaN', overrides: { guard: { maxDeleteFraction: Number.NaN, allowDeletesUpTo: 0 } } },
    { name: 'negative count', overrides: { guard: { maxDeleteFraction: 0.5, allowDeletesUpTo: -1 } } },
  ])('rejects options with $name', ({ overrides }) => {
    expect(() => calculatePlan({ desired: [], owned: [] }, options(overrides))).toThrow(
      expect.objectContaining({ code: 'VMS_ERR_CONFIG_INVALID' }) as unknown as VmsError,
    );
  });

  it('plans a hundred thousand entries through maps', () => {
    const n = 100_000;
    const want: WorkloadEntry[] = [];
    const live: WorkloadEntry[] = [];
    for (let i = 0; i < n; i++) {
      const scopeKey = `aws:${i % 10}`;
      const e = entry(`vm-${i}`, { scope: scopeKey });
      if (i % 10 !== 0) want.push(e);
      if (i % 7 !== 0) live.push(i % 3 === 0 ? moved(e, '10.9.9.9') : e);
    }
    const scopes = Array.from({ length: 10 }, (_, s) => desired(`aws:${s}`, want.filter((_, i) => i % 10 === s)));
    const plan = calculatePlan({ desired: scopes, owned: live }, options());
    const { create, update, delete: deleted, unchanged } = plan.summary;
    expect(create + update + unchanged).toBe(want.length);
    expect(deleted).toBe(live.filter((e) => Number(e.metadata.name.slice(3)) % 10 === 0).length);
    expect(plan.changes).toHaveLength(create + update + deleted);
  });
});

describe('POLICIES', () => {
  const candidates: CandidateChanges = {
    creates: [{ op: 'upsert', key: 'vms/a', entry: a, observedAt: T0 }],
    updates: [{ op: 'upsert', key: 'vms/b', entry: b, observedAt: T0 }],
    deletes: [{ op: 'delete', key: 'vms/c', namespace: 'vms', name: 'c', scopeKey: 'aws:a', observedAt: NOW }],
  };
  it.each([
    { policy: 'sync' as const, kept: ['vms/a', 'vms/b', 'vms/c'] },
    { policy: 'upsert-only' as const, kept: ['vms/a', 'vms/b'] },
    { policy: 'create-only' as const, kept: ['vms/a'] },
  ])('$policy keeps $kept', ({ policy, kept }) => {
    const out = POLICIES[policy](candidates);
    expect([...out.creates, ...out.updates, ...out.deletes].map((ch) => ch.key)).toEqual(kept);
  });
});

// Worlds for the properties: a few scopes, a small pool of names so keys collide, owned entries
// that are equal, different, foreign, of another owner or of an unconfigured scope.
const SCOPES = ['aws:a', 'aws:b', 'gcp:c'];
const NAME = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h');
const NS = fc.constantFrom('vms', 'db');
const ADDRESS = fc.constantFrom('10.0.0.1', '10.0.0.2');
const OBSERVED = fc.constantFrom('2025-01-01T00:00:00.000Z', '2025-01-01T00:01:00.000Z', '2025-01-01T00:02:00.000Z');

const desiredEntry = fc
  .record({ name: NAME, namespace: NS, address: ADDRESS, observedAt: OBSERVED })
  .map(({ name, namespace, address, observedAt }) => ({ name, namespace, address, observedAt }));

const world = fc.record({
  scopes: fc.tuple(
    ...SCOPES.map((key) =>
      fc.record({ key: fc.constant(key), present: fc.boolean(), complete: fc.boolean(), entries: fc.array(desiredEntry, { maxLength: 6 }) }),
    ),
  ),
  owned: fc.uniqueArray(
    fc.record({
      name: NAME,
      namespace: NS,
      address: ADDRESS,
      scope: fc.constantFrom(...SCOPES, 'aws:gone'),
      owner: fc.constantFrom(OWNER, OWNER, OWNER, 'cluster-b'),
      extraLabel: fc.boolean(),
    }),
    { selector: (o) => `${o.namespace}/${o.name}`, maxLength: 12 },
  ),
  foreign: fc.uniqueArray(fc.tuple(NS, NAME).map(([ns, name]) => entryKey(ns, name)), { maxLength: 2 }),
  policy: fc.constantFrom('sync', 'upsert-only', 'create-only') as fc.Arbitrary<PlanOptions['policy']>,
  guard: fc.record({ maxDeleteFraction: fc.constantFrom(0, 0.3, 0.5, 1), allowDeletesUpTo: fc.integer({ min: 0, max: 3 }) }),
  force: fc.boolean(),
});

type World = typeof world extends fc.Arbitrary<infer W> ? W : never;

function build(w: World): { input: PlanInput; opts: PlanOptions } {
  const scopes: DesiredScope[] = w.scopes
    .filter((s) => s.present)
    .map((s) =>
      desired(
        s.key,
        s.entries.map((e) => entry(e.name, { namespace: e.namespace, scope: s.key, observedAt: e.observedAt, spec: { address: e.address } })),
        s.complete,
      ),
    );
  const owned = w.owned.map((o) =>
    entry(o.name, { namespace: o.namespace, scope: o.scope, owner: o.owner, spec: { address: o.address }, labels: o.extraLabel ? { team: 'x' } : {} }),
  );
  return {
    input: { desired: scopes, owned, foreign: w.foreign },
    opts: options({ policy: w.policy, guard: w.guard, force: w.force, scopes: SCOPES }),
  };
}

function shuffled<T>(items: readonly T[], order: readonly number[]): T[] {
  return items
    .map((item, i) => ({ item, rank: order[i % Math.max(order.length, 1)] ?? 0, i }))
    .sort((x, y) => x.rank - y.rank || y.i - x.i)
    .map((x) => x.item);
}

/** The cluster after a plan's changes were applied (upserts replace, deletes remove). */
function apply(owned: readonly WorkloadEntry[], plan: Plan): WorkloadEntry[] {
  const cluster = new Map(owned.map((e) => [entryKey(e.metadata.namespace, e.metadata.name), e]));
  for (const change of plan.changes) {
    if (change.op === 'upsert') cluster.set(change.key, clone(change.entry as WorkloadEntry));
    else cluster.delete(change.key);
  }
  return [...cluster.values()];
}

describe('planning properties', () => {
  it('does not depend on the order of its inputs', () => {
    fc.assert(
      fc.property(world, fc.array(fc.integer(), { minLength: 1, maxLength: 20 }), (w, order) => {
        const { input, opts } = build(w);
        const reordered: PlanInput = {
          desired: shuffled(input.desired, order).map((d) => ({ ...d, entries: shuffled(d.entries, order) })),
          owned: shuffled(input.owned, order),
          foreign: new Set(shuffled([...(input.foreign ?? [])], order)),
        };
        expect(calculatePlan(reordered, opts)).toEqual(calculatePlan(input, opts));
      }),
    );
  });

  it('plans the same whether or not every owned entry is wanted, all else equal', () => {
    // An entry of a configured scope outside the plan, under a name nothing wants, is left to its
    // own plan: with it, the owned entries are never all wanted; without it, often.
    const outside = entry('outside', { scope: 'aws:outside' });
    let allWanted = 0;
    fc.assert(
      fc.property(world, (w) => {
        const { input, opts } = build(w);
        const configured = { ...opts, configuredScopes: [...SCOPES, 'aws:outside'] };
        const plan = calculatePlan(input, configured);
        expect(calculatePlan({ ...input, owned: [...input.owned, outside] }, configured)).toEqual(plan);
        const wanted = new Set(input.desired.flatMap((d) => d.entries.map((e) => entryKey(e.metadata.namespace, e.metadata.name))));
        if (input.owned.every((e) => wanted.has(entryKey(e.metadata.namespace, e.metadata.name)))) allWanted++;
      }),
      { numRuns: 500 },
    );
    expect(allWanted).toBeGreaterThan(25);
  });

  it('converges: planning again after applying a plan gives no changes but the deletes the guard held', () => {
    fc.assert(
      fc.property(world, (w) => {
        const { input, opts } = build(w);
        const first = calculatePlan(input, opts);
        const second = calculatePlan({ ...input, owned: apply(input.owned as WorkloadEntry[], first) }, opts);
        // Applied creates make a scope larger, so a delete held as too large a share of it may go
        // through now; nothing else may be left to do.
        const held = new Set(first.held.flatMap((h) => h.deletes.map((d) => d.key)));
        expect(second.changes.filter((c) => c.op !== 'delete' || !held.has(c.key))).toEqual([]);
      }),
      { seed: 1970013295, path: '93:0:0:0:3:2:3:3:5:6:5:5:2:3:4:6:7', endOnFailure: true },
    );
    fc.assert(
      fc.property(world, (w) => {
        const { input, opts } = build(w);
        const first = calculatePlan(input, opts);
        const second = calculatePlan({ ...input, owned: apply(input.owned as WorkloadEntry[], first) }, opts);
        const held = new Set(first.held.flatMap((h) => h.deletes.map((d) => d.key)));
        expect(second.changes.filter((c) => c.op !== 'delete' || !held.has(c.key))).toEqual([]);
      }),
    );
  });

  it('plans the same when owned entries are replaced by their stand-ins (sameAsDesired: the desired entry, or a slim copy of a changed entry or of another scope\'s)', () => {
    let replaced = 0;
    let leftOut = 0;
    let changed = 0;
    let slimmed = 0;
    fc.assert(
      fc.property(world, (w) => {
        const { input, opts } = build(w);
        const observed = input.desired.map((d) => ({ scope: d.scope, entries: d.entries as WorkloadEntry[], skips: [] }));
        const keep = runSync(sameAsDesired(observed));
        const owned = (input.owned as WorkloadEntry[]).map((e) => keep(e)!);
        // Given no configured scopes, it leaves nothing out.
        expect(owned.every((e) => e !== undefined)).toBe(true);
        const desired = new Set(input.desired.flatMap((d) => d.entries));
        const wanted = new Set(input.desired.flatMap((d) => d.entries.map((e) => entryKey(e.metadata.namespace, e.metadata.name))));
        owned.forEach((e, i) => {
          const live = input.owned[i]!;
          if (e === live) return;
          if (desired.has(e)) replaced++;
          else if (wanted.has(entryKey(live.metadata.namespace, live.metadata.name))) changed++;
          else slimmed++;
          if (desired.has(e)) return;
          // What planning reads of a stand-in is what it would read of the entry: its key,
          // ownership and scope.
          expect(entryKey(e.metadata.namespace, e.metadata.name)).toBe(entryKey(live.metadata.namespace, live.metadata.name));
          expect(isOwned(e, OWNER)).toBe(isOwned(live, OWNER));
          expect(e.metadata.annotations[SCOPE_ANNOTATION]).toBe(live.metadata.annotations[SCOPE_ANNOTATION]);
        });
        expect(calculatePlan({ ...input, owned }, opts)).toEqual(calculatePlan(input, opts));
        // As a resync in `serve` plans: the observed scopes are the planned ones, among more that
        // are configured. The entries of the others that nothing observed wants are left out.
        const { scopes: _planned, ...rest } = opts;
        const asServe: PlanOptions = { ...rest, configuredScopes: [...SCOPES, 'aws:outside'] };
        const keepInServe = runSync(sameAsDesired(observed, asServe.configuredScopes));
        const held = (input.owned as WorkloadEntry[]).map(keepInServe).filter((e) => e !== undefined);
        leftOut += input.owned.length - held.length;
        expect(calculatePlan({ ...input, owned: held }, asServe)).toEqual(calculatePlan(input, asServe));
      }),
      { numRuns: 300 },
    );
    // The worlds do hold entries of every kind.
    expect(leftOut).toBeGreaterThan(0);
    expect(replaced).toBeGreaterThan(0);
    expect(changed).toBeGreaterThan(0);
    expect(slimmed).toBeGreaterThan(0);
  });

  it('never changes what is not ours and never deletes what an incomplete scope listed', () => {
    fc.assert(
      fc.property(world, (w) => {
        const { input, opts } = build(w);
        const plan = calculatePlan(input, opts);
        const notOurs = new Set<string>([...(input.foreign as string[])]);
        for (const e of input.owned) {
          if (e.metadata.labels['vm-mesh-sync.io/owner'] !== OWNER || !e.metadata.labels[MANAGED_BY_LABEL]) {
            notOurs.add(entryKey(e.metadata.namespace, e.metadata.name));
          }
        }
        const complete = new Set(input.desired.filter((d) => d.complete).map((d) => d.scope.key));
        const ownedByKey = new Map(input.owned.map((e) => [entryKey(e.metadata.namespace, e.metadata.name), e]));
        for (const change of plan.changes) {
          expect(notOurs.has(change.key)).toBe(false);
          if (change.op === 'delete') {
            const scopeKey = ownedByKey.get(change.key)?.metadata.annotations['vm-mesh-sync.io/scope'] ?? '';
            expect(complete.has(scopeKey)).toBe(true);
            expect(opts.policy).toBe('sync');
          }
        }
      }),
    );
  });
});
