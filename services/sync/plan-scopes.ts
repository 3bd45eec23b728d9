// Joins observations with what the cluster holds and plans. Pure: no I/O, time comes in.
import type { Config } from '../../config/schema.ts';
import { type DesiredScope, entriesEqual, type Plan, planSliced } from '../planning/index.ts';
import { CHECKPOINT_EVERY, runSync, type Sliced } from '../slices.ts';
import { deriveMeshServices, type MeshServices, namespaceAllowed } from '../mapping/index.ts';
import { type EntryKey, entryKey, SCOPE_ANNOTATION, SOURCE_ANNOTATION, type Skip, type WorkloadEntry } from '../model.ts';
import type { ScopeObservation } from './observe.ts';
import { Interner } from '../intern.ts';

/** What planning needs from an observation, without the provider object. */
export type ObservedScope = Pick<ScopeObservation, 'scope' | 'listing' | 'listed' | 'entries' | 'skips' | 'observedAt' | 'namespaces'>;

/**
 * The desired scopes for planning. An instance skipped for a value that cannot be used (a bad tag,
 * no address) keeps the entry it already has: the live entry is desired as it is, so a typo in a
 * tag never takes a VM out of the mesh. Only the scope's own entry is kept, and only in a
 * namespace the scope may still write to.
 */
export function desiredScopes(observed: readonly ObservedScope[], owned: readonly WorkloadEntry[]): DesiredScope[] {
  const bySource = new Map<string, WorkloadEntry[]>();
  // Only skips that keep their entry read this index; most resyncs have none, and a resync of a
  // large scope should not index every owned entry for nothing.
  const needed = observed.some((o) => o.skips.some((s) => s.keepsEntry));
  for (const entry of needed ? owned : []) {
    const source = entry.metadata.annotations?.[SOURCE_ANNOTATION];
    if (!source) continue;
    const list = bySource.get(source);
    if (list) list.push(entry);
    else bySource.set(source, [entry]);
  }
  return observed.map((o) => {
    const kept = o.skips
      .filter((s) => s.keepsEntry)
      .flatMap((s) => bySource.get(s.source) ?? [])
      .filter((e) => e.metadata.annotations[SCOPE_ANNOTATION] === o.scope.key && namespaceAllowed(e.metadata.namespace, o.namespaces));
    return {
      scope: o.scope,
      complete: o.listing.complete,
      problems: o.listing.problems,
      entries: kept.length > 0 ? [...o.entries, ...kept] : o.entries,
      observedAt: o.observedAt,
    };
  });
}

/**
 * A stand-in for owned entries that plans the same and takes less memory:
 * - an entry as the observations want it is the desired entry itself. Planning reads nothing of
 *   such an entry that differs from the desired one (entriesEqual holds, so the ownership labels,
 *   scope and source annotations are the same; the live observation stamp and resourceVersion are
 *   not used), so a settled scope of a hundred thousand entries is not held twice while planned;
 * - an entry of a scope that is not observed here, under a name nothing observed wants, is only
 *   ever looked at for its name, namespace, ownership labels and scope (it is another scope's to
 *   plan, or an orphan): it keeps those and drops its spec and other annotations, so that a resync
 *   of one scope among many does not hold every other scope's entries whole;
 * - any other entry is kept as read.
 */
export function* sameAsDesired(observed: ReadonlyArray<Pick<ObservedScope, 'entries' | 'scope'>>): Sliced<(live: WorkloadEntry) => WorkloadEntry> {
  const desired = new Map<string, WorkloadEntry>();
  const scopes = new Set(observed.map((o) => o.scope.key));
  for (const o of observed) {
    for (const e of o.entries) {
      desired.set(entryKey(e.metadata.namespace, e.metadata.name), e);
      if (desired.size % CHECKPOINT_EVERY === 0) yield;
    }
  }
  const shared = new Interner();
  return (live) => {
    const want = desired.get(entryKey(live.metadata.namespace, live.metadata.name));
    if (want !== undefined) return entriesEqual(want, live) ? want : live;
    const scope = live.metadata.annotations?.[SCOPE_ANNOTATION];
    if (scope === undefined || scopes.has(scope)) return live;
    return {
      apiVersion: live.apiVersion,
      kind: live.kind,
      metadata: {
        name: live.metadata.name,
        namespace: shared.string(live.metadata.namespace),
        labels: shared.map(live.metadata.labels ?? {}),
        annotations: shared.map({ [SCOPE_ANNOTATION]: scope }),
      },
      spec: OTHER_SCOPE_SPEC,
    };
  };
}

/** The spec of a stand-in for another scope's entry: never read, so one object serves all. */
const OTHER_SCOPE_SPEC = Object.freeze({ address: '' }) as WorkloadEntry['spec'];

/** Options of one planning run. */
export interface PlanRunOptions {
  /** Let held deletes through. */
  force?: boolean;
  /** A plan of a few instances: only owned entries with these names are looked at (PlanOptions.onlyNames). */
  onlyNames?: ReadonlySet<string>;
  /** Every scope in the config; owned entries of other scopes are orphans and are kept. */
  configuredScopes: Iterable<string>;
  /** Keys of entries that exist and are not ours (Writer.listForeign): a conflict, never a create. */
  foreign?: Iterable<EntryKey>;
}

/** Plans every observed scope against the owned entries with the config's policy and guard. */
export function planScopes(
  config: Pick<Config, 'ownerId' | 'policy' | 'deletionGuard'>,
  observed: readonly ObservedScope[],
  owned: readonly WorkloadEntry[],
  options: PlanRunOptions,
): Plan {
  return runSync(planScopesSliced(config, observed, owned, options));
}

/** planScopes as sliced work (services/slices.ts), for large scopes in `serve`. */
export function* planScopesSliced(
  config: Pick<Config, 'ownerId' | 'policy' | 'deletionGuard'>,
  observed: readonly ObservedScope[],
  owned: readonly WorkloadEntry[],
  options: PlanRunOptions,
): Sliced<Plan> {
  const plan = yield* planSliced(
    { desired: desiredScopes(observed, owned), owned, ...(options.foreign ? { foreign: options.foreign } : {}) },
    {
      ownerId: config.ownerId,
      policy: config.policy,
      guard: config.deletionGuard,
      force: options.force ?? false,
      ...(options.onlyNames ? { onlyNames: options.onlyNames } : {}),
      scopes: observed.map((o) => o.scope.key),
      configuredScopes: options.configuredScopes,
    },
  );
  // Creates skip the writer's read of the live object: the plan just saw there is none. A plan
  // without creates (every resync of a settled scope) marks nothing, so it skips indexing the owned entries.
  if (plan.summary.create === 0) return plan;
  const ownedKeys = new Set<string>();
  for (let i = 0; i < owned.length; i++) {
    ownedKeys.add(entryKey(owned[i]!.metadata.namespace, owned[i]!.metadata.name));
    if (i % CHECKPOINT_EVERY === 0) yield;
  }
  for (let i = 0; i < plan.changes.length; i++) {
    const change = plan.changes[i]!;
    if (change.op === 'upsert' && !ownedKeys.has(change.key)) plan.changes[i] = { ...change, expectAbsent: true };
  }
  return plan;
}

/** Every skip of the observations, in scope order. */
export function allSkips(observed: readonly ObservedScope[]): Skip[] {
  return observed.flatMap((o) => o.skips);
}

/**
 * The Services (or ServiceEntries) and WorkloadGroups the entries of these observations call for
 * (deriveMeshServices). A scope listed completely counts with the entries it wants (those kept for
 * a skip included); a scope whose listing was incomplete counts with the entries we own in it as
 * they are, so a partial listing never shrinks a service's ports.
 */
export function desiredMeshServices(
  config: Pick<Config, 'ownerId' | 'services'>,
  observed: readonly ObservedScope[],
  owned: readonly WorkloadEntry[],
): MeshServices {
  const desired = desiredScopes(observed, owned);
  const incomplete = new Set(desired.filter((d) => !d.complete).map((d) => d.scope.key));
  const entries = desired.filter((d) => d.complete).flatMap((d) => d.entries);
  for (const e of owned) if (incomplete.has(e.metadata.annotations?.[SCOPE_ANNOTATION] ?? '')) entries.push(e);
  return deriveMeshServices(entries, { ownerId: config.ownerId, ...config.services });
}
