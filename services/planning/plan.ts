// The plan: desired entries × the entries we own in the cluster × a policy give the changes, in the
// manner of external-dns's plan.Calculate. Pure: no I/O and no clock; every change carries the
// stamp of the observation that decided it (a scope's deletes: its listing's start). Everything
// here works through Maps and Sets and one sort per output list, so a plan of a hundred thousand
// entries costs O(n log n).
import type { EntryKey, OwnedObject, Problem, Scope } from '../model.ts';
import {
  AUTO_REGISTRATION_GROUP_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  OBSERVED_AT_ANNOTATION,
  OWNER_LABEL,
  SCOPE_ANNOTATION,
  SOURCE_ANNOTATION,
  entryKey,
  keyOfObject,
} from '../model.ts';
import { annotationOfEntry, DesiredEntry, HeldEntry, labelsAndAnnotations, nameOfEntry, namespaceOfEntry, sourceOfEntry } from '../desired-entry.ts';
import { VmsError } from '../errors.ts';
import { ChunkedArray, ShardedMap } from '../shards.ts';
import { CHECKPOINT_EVERY, runSync, type Sliced, sortSliced } from '../slices.ts';
import { compareStamps } from '../stamp.ts';
import { entriesEqual } from './compare.ts';
import type { CandidateChanges, DeleteChange, PolicyName, UpsertChange } from './policy.ts';
import { POLICIES, isPolicyName } from './policy.ts';

/** Mapping's result for one scope: the entries it wants and whether the listing behind them was whole. */
export interface DesiredScope {
  scope: Scope;
  /** False when the listing was incomplete or the provider call failed: nothing in the scope is deleted. */
  complete: boolean;
  problems: Problem[];
  entries: OwnedObject[];
  /**
   * The stamp of the observation, taken from the one clock when it started: the stamp of the
   * scope's deletes (an entry whose live stamp is newer survives them).
   */
  observedAt: string;
}

/** When a plan's deletes in one scope look like an outage rather than real removals. */
export interface DeleteGuard {
  /** Hold when deletes / owned entries of the scope exceed this fraction (0..1)… */
  maxDeleteFraction: number;
  /** …and the deletes are more than this many; small scopes can always lose a few entries. */
  allowDeletesUpTo: number;
}

/** How to plan. */
export interface PlanOptions {
  /** The owner id of this installation; objects carrying another one are never touched. */
  ownerId: string;
  policy: PolicyName;
  guard: DeleteGuard;
  /** Operator override: deletes the guard would hold go through (and are listed in `forced`). */
  force: boolean;
  /**
   * A plan of a few instances (a refresh): only owned entries with these names are looked at,
   * changed or deleted, whatever else `owned` holds; the fraction guard gives way to this one.
   */
  onlyNames?: ReadonlySet<string>;
  /**
   * Scope keys this plan covers; defaults to the scopes in `desired`. A planned scope without a
   * DesiredScope counts as incomplete: its entries are kept.
   */
  scopes?: Iterable<string>;
  /**
   * Scope keys in the config, planned or not; defaults to the planned ones. Owned entries of
   * configured but unplanned scopes are left out of this plan; owned entries of a scope that is
   * not configured at all are reported as orphaned and kept.
   */
  configuredScopes?: Iterable<string>;
}

/** What planning reads. */
export interface PlanInput {
  desired: readonly DesiredScope[];
  /** Entries in the cluster selected by our owner labels; anything not ours in here is treated as foreign. */
  owned: readonly OwnedObject[];
  /** Entries (or their keys) that exist in the cluster without our ownership; a desired entry with such a key is a conflict. */
  foreign?: Iterable<EntryKey | OwnedObject>;
}

/** Deletes of one scope that the guard kept back (or that `force` let through). */
export interface HeldDeletes {
  scopeKey: string;
  deletes: DeleteChange[];
  /** Entries we own in the scope before the plan, the denominator of the guard. */
  ownedInScope: number;
  reason: string;
}

/** A desired entry planning would not write as asked. */
export interface Conflict {
  key: EntryKey;
  /**
   * `not-owned`: the object exists and is not ours, nothing is written. `other-scope`: the entry
   * belongs to another configured scope (its scope annotation), which keeps it; nothing is written.
   * `duplicate`: several instances of one plan want the key, one wins.
   */
  kind: 'not-owned' | 'other-scope' | 'duplicate';
  /** The scope that wanted the key and did not get it; empty for `not-owned` across scopes. */
  scopeKey: string;
  /** The scope that keeps the key (`other-scope`, `duplicate`). */
  ownerScopeKey?: string;
  reason: string;
  /** A mesh service's name taken by a Service not ours whose selector already selects the service's entries: its VMs are reachable. */
  servedByForeign?: boolean;
}

/** An entry we own that no configured scope accounts for; it is kept, never deleted. */
export interface Orphan {
  key: EntryKey;
  /** The scope named by the entry's annotation; empty when it has none. */
  scopeKey: string;
  reason: string;
}

/** A planned scope whose listing was not complete, so its deletes were suppressed. */
export interface SkippedScope {
  scopeKey: string;
  reason: string;
  problems: Problem[];
  /** Owned entries of the scope that no listing accounted for and that were kept for that reason. */
  suppressedDeletes: number;
}

/** Counts for humans and metrics. */
export interface PlanSummary {
  create: number;
  update: number;
  delete: number;
  /** Desired entries the cluster already has as desired. */
  unchanged: number;
  /** Deletes the guard held back. */
  held: number;
  /** Changes the policy left out (deletes under `upsert-only`, updates and deletes under `create-only`). */
  dropped: number;
}

/** The result of planning: what to change and everything that was deliberately not changed. */
export interface Plan {
  /** Upserts sorted by key, then deletes sorted by key: replacements show before removals. */
  changes: Array<UpsertChange | DeleteChange>;
  /** By scope key. */
  held: HeldDeletes[];
  /** Guard trips that `force` released; their deletes are in `changes`. By scope key. */
  forced: HeldDeletes[];
  /** By key, then kind. */
  conflicts: Conflict[];
  /** By key. */
  orphaned: Orphan[];
  /** By scope key. */
  skippedScopes: SkippedScope[];
  summary: PlanSummary;
}

/**
 * True when the object carries both of our ownership labels with this owner id, and istiod did not
 * make it: an auto-registered entry copies its WorkloadGroup's labels, ours among them if someone
 * put them there, and is still istiod's.
 */
export function isOwned(entry: OwnedObject, ownerId: string): boolean {
  // Mapping made it: it carries the ownership labels of its listing's owner, and no annotation of istiod's.
  if (entry instanceof DesiredEntry) return entry.shape.ownerId === ownerId;
  const metadata = labelsAndAnnotations(entry);
  const labels = metadata?.labels;
  if (labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE || labels[OWNER_LABEL] !== ownerId) return false;
  return !metadata?.annotations?.[AUTO_REGISTRATION_GROUP_ANNOTATION];
}

interface DesiredCandidate {
  entry: OwnedObject;
  scopeKey: string;
  observedAt: string;
}

/**
 * What a plan knows under one key: the owned entry, the desired entry that got the key (with its
 * scope and stamp in fields of the slot, not in an object of its own for each of a hundred
 * thousand entries), those that did not.
 */
interface Slot {
  live: OwnedObject | undefined;
  want: OwnedObject | undefined;
  /** The scope of `want`. */
  wantScope: string;
  /** The stamp of the observation `want` comes from. */
  wantObservedAt: string;
  /** Per scope, the best candidate that lost the key to `want` (pickDesired). */
  losers: Map<string, DesiredCandidate> | undefined;
}

/** A slot some desired entry got. */
type Wanted = Slot & { want: OwnedObject };

/** A slot with an owned entry. */
type Owned = Slot & { live: OwnedObject };

/**
 * A plan's slots by kind, namespace and name: the strings every object carries already, where a
 * key string made for each of a hundred thousand owned and desired entries, and a lookup by it in
 * two maps of them, cost far more. Kubernetes names and namespaces hold no `/`, so the three name
 * one key (objectKey) as the key string does.
 */
class Slots {
  readonly #byKind = new Map<string, Map<string, ShardedMap<Slot>>>();

  /** The slot of the object's key; an empty one the first time the key is asked for. */
  of(obj: OwnedObject): Slot {
    const namespace = namespaceOfEntry(obj);
    const name = nameOfEntry(obj);
    let byNamespace = this.#byKind.get(obj.kind);
    if (byNamespace === undefined) {
      byNamespace = new Map();
      this.#byKind.set(obj.kind, byNamespace);
    }
    let byName = byNamespace.get(namespace);
    if (byName === undefined) {
      byName = new ShardedMap();
      byNamespace.set(namespace, byName);
    }
    const shard = byName.mapFor(name);
    let slot = shard.get(name);
    if (slot === undefined) {
      slot = { live: undefined, want: undefined, wantScope: '', wantObservedAt: '', losers: undefined };
      shard.set(name, slot);
    }
    return slot;
  }
}

interface ScopeState {
  complete: boolean;
  problems: Problem[];
  observedAt: string;
}

/**
 * Computes the plan. Rules, in order:
 * - objects without both our labels and our owner id are never changed;
 * - a desired key that exists without our ownership is a `not-owned` conflict and is not written;
 * - an owned entry belongs to the scope in its scope annotation: another scope never updates or
 *   deletes it (an `other-scope` conflict) while that scope is configured; an entry of a scope
 *   that is no longer configured may be taken over by a scope that wants it;
 * - when several scopes of one plan want an absent key, the smallest scope key gets it, so the
 *   winner does not change from one plan to the next;
 * - a desired entry that is absent is created, one that differs (see entriesEqual) is updated;
 * - an owned entry no scope wants is deleted only when its scope was planned and listed completely,
 *   with the stamp of that listing; when its scope is not configured at all it is orphaned and
 *   kept, because a config edit that drops a scope by mistake must not empty it;
 * - with `onlyNames`, owned entries of other names are not looked at at all;
 * - the policy then drops kinds of change, and the guard holds a scope's deletes when they are
 *   both more than `allowDeletesUpTo` and more than `maxDeleteFraction` of what we own there.
 * Inputs are not modified; the order of every input list does not matter.
 */
export function calculatePlan(input: PlanInput, options: PlanOptions): Plan {
  return runSync(planSliced(input, options));
}

/** calculatePlan as sliced work (services/slices.ts): a large plan in `serve` leaves the event loop free. */
export function* planSliced(input: PlanInput, options: PlanOptions): Sliced<Plan> {
  checkOptions(options);
  let steps = 0;
  /** True every CHECKPOINT_EVERY items, across all the loops below. */
  const checkpoint = (): boolean => ++steps % CHECKPOINT_EVERY === 0;
  const { ownerId } = options;

  const only = options.onlyNames;
  const scopeStates = new Map<string, ScopeState>();
  for (const d of input.desired) {
    const known = scopeStates.get(d.scope.key);
    if (known) {
      known.complete &&= d.complete;
      known.problems = [...known.problems, ...d.problems];
      // Two observations of one scope: deletes carry the older start, the one both were after.
      if (compareStamps(d.observedAt, known.observedAt) < 0) known.observedAt = d.observedAt;
    } else {
      scopeStates.set(d.scope.key, { complete: d.complete, problems: d.problems, observedAt: d.observedAt });
    }
  }
  const planned = new Set<string>(options.scopes ?? []);
  for (const key of scopeStates.keys()) planned.add(key);
  const configured = new Set<string>(options.configuredScopes ?? []);
  for (const key of planned) configured.add(key);

  const foreign = new Set<EntryKey>();
  for (const item of input.foreign ?? []) {
    foreign.add(typeof item === 'string' ? item : keyOf(item));
  }
  const slots = new Slots();
  // The slots of owned entries, in the order the keys first came.
  const ours = new ChunkedArray<Owned>();
  // Indexed loops over the long lists: in a generator, a for…of makes an iterator result object per item.
  for (let i = 0; i < input.owned.length; i++) {
    const entry = input.owned[i]!;
    if (checkpoint()) yield;
    if (only && !only.has(nameOfEntry(entry))) continue;
    if (!isOwned(entry, ownerId)) {
      foreign.add(keyOf(entry));
      continue;
    }
    const slot = slots.of(entry);
    if (slot.live === undefined) ours.push(slot as Owned);
    slot.live = entry;
  }

  // The configured scope an owned entry belongs to; undefined when it has none or it is gone from the config.
  const holderOfLive = (live: OwnedObject | undefined): string | undefined => {
    const holder = live ? scopeOf(live) : '';
    return holder !== '' && configured.has(holder) ? holder : undefined;
  };
  const conflicts: Conflict[] = [];
  const wanted = yield* pickDesired(input.desired, slots, holderOfLive, conflicts, only, checkpoint);

  const candidates: CandidateChanges = { creates: [], updates: [], deletes: [] };
  let unchanged = 0;
  // Owned entries some desired entry names; when that is every one of them, none is left to delete.
  let wantedLive = 0;
  // Key strings are made only for what the plan reports: most entries of a resync are unchanged.
  for (let i = 0; i < wanted.length; i++) {
    const { want, wantScope, wantObservedAt, live } = wanted.at(i)!;
    if (checkpoint()) yield;
    if (live) wantedLive++;
    if (foreign.size > 0 && foreign.has(keyOf(want))) {
      const key = keyOf(want);
      conflicts.push({
        key,
        kind: 'not-owned',
        scopeKey: wantScope,
        reason: `${key} exists and is not managed by vm-mesh-sync with owner "${ownerId}"; it is left alone`,
      });
      continue;
    }
    const liveScope = live ? scopeOf(live) : '';
    const holder = holderOfLive(live);
    // A holder listed completely in this plan that no longer wants the entry hands it over (the
    // instance moved between scopes); any other holder keeps it.
    const handsOver = holder !== undefined && planned.has(holder) && scopeStates.get(holder)?.complete === true;
    if (holder !== undefined && holder !== wantScope && !handsOver) {
      const key = keyOf(want);
      conflicts.push({
        key,
        kind: 'other-scope',
        scopeKey: wantScope,
        ownerScopeKey: liveScope,
        reason:
          `${key} belongs to scope ${liveScope} (its ${SCOPE_ANNOTATION} annotation), which keeps it; ` +
          `scope ${wantScope} (${sourceOf(want)}) wants the same name and is left out: ` +
          'list the instance in one provider block only',
      });
      continue;
    }
    if (live && entriesEqual(want, live)) {
      unchanged++;
      continue;
    }
    const change: UpsertChange = { op: 'upsert', key: keyOf(want), entry: want, observedAt: wantObservedAt };
    // The writer checks the live entry's scope again: only a take-over the plan decided goes through.
    if (live && liveScope !== wantScope) change.takeOverFrom = liveScope;
    (live ? candidates.updates : candidates.creates).push(change);
  }

  const ownedInScope = new Map<string, number>();
  const deleteScope = new Map<EntryKey, string>();
  const suppressed = new Map<string, number>();
  const orphaned: Orphan[] = [];
  // When every owned entry is wanted (a settled scope), this loop would find nothing to delete,
  // suppress or orphan, and the counts it keeps only weigh deletes: it is skipped.
  const maybeUnwanted = wantedLive < ours.length ? ours.length : 0;
  for (let i = 0; i < maybeUnwanted; i++) {
    const { live, want } = ours.at(i)!;
    if (checkpoint()) yield;
    const scopeKey = scopeOf(live);
    if (scopeKey !== '') ownedInScope.set(scopeKey, (ownedInScope.get(scopeKey) ?? 0) + 1);
    if (want !== undefined) continue;
    const key = keyOf(live);
    if (foreign.has(key)) continue;
    if (scopeKey === '') {
      orphaned.push({ key, scopeKey, reason: `${key} has no ${SCOPE_ANNOTATION} annotation; it is kept, delete it by hand if it is stale` });
    } else if (!configured.has(scopeKey)) {
      orphaned.push({
        key,
        scopeKey,
        reason: `scope ${scopeKey} is not configured; ${key} is kept, delete it by hand if the scope was removed on purpose`,
      });
    } else if (!planned.has(scopeKey)) {
      // Configured but outside this plan (a partial resync): its own plan decides.
    } else if (scopeStates.get(scopeKey)?.complete !== true) {
      suppressed.set(scopeKey, (suppressed.get(scopeKey) ?? 0) + 1);
    } else {
      const namespace = namespaceOfEntry(live);
      const name = nameOfEntry(live);
      const observedAt = scopeStates.get(scopeKey)?.observedAt ?? '';
      candidates.deletes.push({ op: 'delete', key, namespace, name, scopeKey, observedAt });
      deleteScope.set(key, scopeKey);
    }
  }

  const skippedScopes: SkippedScope[] = [];
  for (const scopeKey of planned) {
    const state = scopeStates.get(scopeKey);
    if (state?.complete) continue;
    skippedScopes.push({
      scopeKey,
      reason: state
        ? `the listing of scope ${scopeKey} was incomplete; nothing in it is deleted until a complete listing`
        : `no listing of scope ${scopeKey} was given; nothing in it is deleted`,
      problems: state?.problems ?? [],
      suppressedDeletes: suppressed.get(scopeKey) ?? 0,
    });
  }

  const allowed = POLICIES[options.policy](candidates);
  const dropped =
    candidates.creates.length +
    candidates.updates.length +
    candidates.deletes.length -
    (allowed.creates.length + allowed.updates.length + allowed.deletes.length);

  // A plan of a few names has its guard in `onlyNames`: it cannot reach any other entry.
  const { deletes, held, forced } = only
    ? { deletes: [...allowed.deletes], held: [], forced: [] }
    : guardDeletes(allowed.deletes, deleteScope, ownedInScope, options);

  // Sorted in slices: a hundred thousand keys sorted at once hold the event loop for tens of milliseconds.
  const upserts = yield* sortSliced([...allowed.creates, ...allowed.updates], byKey);
  yield* sortSliced(deletes, byKey);
  yield* sortSliced(conflicts, (a, b) => compareStrings(a.key, b.key) || compareStrings(a.kind, b.kind) || compareStrings(a.scopeKey, b.scopeKey));
  yield* sortSliced(orphaned, byKey);
  skippedScopes.sort(byScopeKey);

  return {
    changes: [...upserts, ...deletes],
    held,
    forced,
    conflicts,
    orphaned,
    skippedScopes,
    summary: {
      create: allowed.creates.length,
      update: allowed.updates.length,
      delete: deletes.length,
      unchanged,
      held: held.reduce((n, h) => n + h.deletes.length, 0),
      dropped,
    },
  };
}

/**
 * One desired entry per key. When several scopes want one key, the scope that owns the live entry
 * keeps it; for an absent key (or one whose scope is gone) the smallest scope key gets it, so the
 * winner stays the same from one plan to the next; the others are `other-scope` conflicts. Within
 * one scope (the same instance observed twice) the newest observation wins, then the smaller
 * source and content, so the answer does not depend on input order. Gives the slots of the wanted
 * keys in the order the keys first came.
 */
function* pickDesired(
  desired: readonly DesiredScope[],
  slots: Slots,
  holderOfLive: (live: OwnedObject | undefined) => string | undefined,
  conflicts: Conflict[],
  only: ReadonlySet<string> | undefined,
  checkpoint: () => boolean,
): Sliced<ChunkedArray<Wanted>> {
  const wanted = new ChunkedArray<Wanted>();
  // Slots where some candidate lost, in the order of their first loss; per key, one losing
  // candidate per scope: a scope that lists an instance twice is one conflict.
  const contested: Wanted[] = [];
  for (const d of desired) {
    for (let i = 0; i < d.entries.length; i++) {
      const entry = d.entries[i]!;
      if (checkpoint()) yield;
      if (only && !only.has(nameOfEntry(entry))) continue;
      // Mapping always stamps the observation; the scope's stamp only keeps a hand-made entry orderable.
      const observedAt = annotationOfEntry(entry, OBSERVED_AT_ANNOTATION) ?? d.observedAt;
      const slot = slots.of(entry);
      if (slot.want === undefined) {
        slot.want = entry;
        slot.wantScope = d.scope.key;
        slot.wantObservedAt = observedAt;
        wanted.push(slot as Wanted);
        continue;
      }
      // A key wanted twice: the two as candidates, which only such keys are given.
      const candidate: DesiredCandidate = { entry, scopeKey: d.scope.key, observedAt };
      const current: DesiredCandidate = { entry: slot.want, scopeKey: slot.wantScope, observedAt: slot.wantObservedAt };
      const [win, lose] = beats(candidate, current, holderOfLive(slot.live)) ? [candidate, current] : [current, candidate];
      slot.want = win.entry;
      slot.wantScope = win.scopeKey;
      slot.wantObservedAt = win.observedAt;
      if (lose.scopeKey === win.scopeKey) continue;
      if (slot.losers === undefined) {
        slot.losers = new Map();
        contested.push(slot as Wanted);
      }
      const known = slot.losers.get(lose.scopeKey);
      if (!known || beats(lose, known, undefined)) slot.losers.set(lose.scopeKey, lose);
    }
  }
  for (const { want: winner, wantScope: winnerScope, losers } of contested) {
    const key = keyOf(winner);
    for (const loser of losers!.values()) {
      if (loser.scopeKey === winnerScope) continue;
      conflicts.push({
        key,
        kind: 'other-scope',
        scopeKey: loser.scopeKey,
        ownerScopeKey: winnerScope,
        reason:
          `${key} is wanted by scope ${winnerScope} (${sourceOf(winner)}) and by scope ${loser.scopeKey} ` +
          `(${sourceOf(loser.entry)}); ${winnerScope} keeps it: list the instance in one provider block only`,
      });
    }
  }
  return wanted;
}

function beats(a: DesiredCandidate, b: DesiredCandidate, holder: string | undefined): boolean {
  if (a.scopeKey !== b.scopeKey) {
    if (holder === a.scopeKey) return true;
    if (holder === b.scopeKey) return false;
    return compareStrings(a.scopeKey, b.scopeKey) < 0;
  }
  const byTime = compareStamps(a.observedAt, b.observedAt);
  if (byTime !== 0) return byTime > 0;
  const bySource = compareStrings(sourceOf(a.entry), sourceOf(b.entry));
  if (bySource !== 0) return bySource < 0;
  // Same instance listed twice in one scope at the same moment: keep the smaller content.
  return compareStrings(canonicalJson(a.entry), canonicalJson(b.entry)) < 0;
}

function scopeOf(entry: OwnedObject): string {
  return annotationOfEntry(entry, SCOPE_ANNOTATION) ?? '';
}

function sourceOf(entry: OwnedObject): string {
  return sourceOfEntry(entry);
}

/** Splits deletes into those that go through and those the guard holds, per scope. */
function guardDeletes(
  deletes: readonly DeleteChange[],
  deleteScope: ReadonlyMap<EntryKey, string>,
  ownedInScope: ReadonlyMap<string, number>,
  options: PlanOptions,
): { deletes: DeleteChange[]; held: HeldDeletes[]; forced: HeldDeletes[] } {
  const byScope = new Map<string, DeleteChange[]>();
  for (const change of deletes) {
    const scopeKey = deleteScope.get(change.key) ?? '';
    const list = byScope.get(scopeKey);
    if (list) list.push(change);
    else byScope.set(scopeKey, [change]);
  }
  const { maxDeleteFraction, allowDeletesUpTo } = options.guard;
  const through: DeleteChange[] = [];
  const held: HeldDeletes[] = [];
  const forced: HeldDeletes[] = [];
  for (const [scopeKey, list] of byScope) {
    const owned = ownedInScope.get(scopeKey) ?? list.length;
    const fraction = list.length / owned;
    if (list.length <= allowDeletesUpTo || fraction <= maxDeleteFraction) {
      through.push(...list);
      continue;
    }
    list.sort(byKey);
    const percent = (x: number): string => `${Math.round(x * 1000) / 10}%`;
    const trip: HeldDeletes = {
      scopeKey,
      deletes: list,
      ownedInScope: owned,
      reason:
        `the plan would delete ${list.length} of ${owned} entries in scope ${scopeKey} (${percent(fraction)}), ` +
        `more than ${percent(maxDeleteFraction)} and more than ${allowDeletesUpTo}; ` +
        (options.force ? 'deleted anyway because the plan is forced' : 'they are held back until the plan is forced'),
    };
    if (options.force) {
      through.push(...list);
      forced.push(trip);
    } else {
      held.push(trip);
    }
  }
  held.sort(byScopeKey);
  forced.sort(byScopeKey);
  return { deletes: through, held, forced };
}

function checkOptions(options: PlanOptions): void {
  if (!isPolicyName(options.policy)) {
    throw new VmsError('VMS_ERR_CONFIG_INVALID', `unknown policy "${String(options.policy)}"`, { policy: options.policy });
  }
  if (typeof options.ownerId !== 'string' || options.ownerId === '') {
    throw new VmsError('VMS_ERR_CONFIG_INVALID', 'the owner id is empty', { ownerId: options.ownerId });
  }
  const { maxDeleteFraction, allowDeletesUpTo } = options.guard;
  if (!(maxDeleteFraction >= 0 && maxDeleteFraction <= 1)) {
    throw new VmsError('VMS_ERR_CONFIG_INVALID', `the delete guard fraction must be between 0 and 1, got ${maxDeleteFraction}`, {
      maxDeleteFraction,
    });
  }
  if (!(Number.isInteger(allowDeletesUpTo) && allowDeletesUpTo >= 0)) {
    throw new VmsError('VMS_ERR_CONFIG_INVALID', `the delete guard count must be a whole number of at least 0, got ${allowDeletesUpTo}`, {
      allowDeletesUpTo,
    });
  }
}

function keyOf(entry: OwnedObject): EntryKey {
  return entry instanceof DesiredEntry || entry instanceof HeldEntry ? entryKey(entry.namespace, entry.name) : keyOfObject(entry);
}

/** Code-unit order: the same on every machine, unlike localeCompare. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byKey(a: { key: string }, b: { key: string }): number {
  return compareStrings(a.key, b.key);
}

function byScopeKey(a: { scopeKey: string }, b: { scopeKey: string }): number {
  return compareStrings(a.scopeKey, b.scopeKey);
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => compareStrings(a, b)))
      : v,
  );
}
