// The two ways a change comes about in `serve`: a resync of a whole scope (periodic) and a
// refresh of a few instances (an event). A refresh is a resync of a tiny sub-scope: the same
// mapping, the same planner and rules, stamps from the same clock. Both end in a plan whose
// changes are handed to `enqueue`; neither writes to the cluster itself.
import type { Config } from '../../config/schema.ts';
import { mapLimited } from '../concurrency.ts';
import type { Provider } from '../../providers/provider.ts';
import { entryName, indexAutoRegistered, mapInstance, nameOfEntry } from '../mapping/index.ts';
import type { Change, ForeignEntry, InstanceRef, Scope, Skip, WorkloadEntry } from '../model.ts';
import type { Plan } from '../planning/index.ts';
import type { ListingPhase } from '../queue/desired-store.ts';
import type { Clock } from '../stamp.ts';
import { mapContext, observeScope, type ScopeObservation } from './observe.ts';
import { entriesAfterSliced, joinPlans, type MeshServiceObjects, type ObservedScope, planMeshServices, planScopes, planScopesSliced } from './plan-scopes.ts';
import type { ListingFor, OwnedListing } from './shared-listing.ts';
import { runSliced } from '../slices.ts';

/** What reconciling needs from the cluster and the queue. */
export interface ReconcileDeps {
  config: Pick<Config, 'ownerId' | 'policy' | 'deletionGuard' | 'mapping' | 'resync' | 'providers' | 'services'>;
  providers: readonly Provider[];
  /**
   * Every entry we own (all namespaces), read by a listing that starts after the call, each entry
   * held as sameAsDesired holds it for this observation: a stand-in that plans the same, or nothing
   * for one the plan passes over. In `serve` the resyncs that ask while a listing runs share the
   * next one (shareListings).
   */
  listOwned: (observed: ListingFor) => Promise<OwnedListing>;
  /**
   * The entries named one of `names`, in any namespace (Writer.findByNames; those not ours make
   * their names not-owned conflicts, as do those of listForeign). A narrowing for the server only:
   * whatever it returns, the plan looks at entries of exactly the names it was given, and checks
   * ownership itself.
   */
  findByNames: (names: readonly string[]) => Promise<WorkloadEntry[]>;
  /**
   * Every entry with this name, in any namespace, ours or not, found by the name itself
   * (Writer.findByName): the way to an entry an earlier version wrote without NAME_LABEL.
   */
  findByName: (name: string) => Promise<WorkloadEntry[]>;
  /**
   * The entries in the cluster that are not ours (Writer.listForeign): their names are conflicts,
   * not creates, and those istiod auto-registered make instances at their address skips.
   */
  listForeign: () => Promise<ForeignEntry[]>;
  /** The Services (or ServiceEntries) and WorkloadGroups in the cluster, ours and not (Writer.listMeshServiceObjects). */
  listMeshServiceObjects: () => Promise<MeshServiceObjects>;
  /** Hands changes to the writer (through the queue in `serve`). */
  enqueue: (changes: Change[]) => Promise<unknown>;
  /**
   * Says that an observation of a scope (a complete listing), or of a few names in it (a
   * refresh), stamped `observedAt`, has been read (`listed`) or has its changes enqueued
   * (`planned`): changes of older observations of those entries still on their way become void
   * (see ListingPhase in services/queue/desired-store.ts).
   */
  confirm: (scopeKey: string, observedAt: string, phase: ListingPhase, names?: readonly string[]) => Promise<unknown>;
  /** The one clock every observation is stamped by (Redis TIME in `serve`). */
  clock: Clock;
}

/** The outcome of one scope's resync. */
export interface ResyncResult {
  /** The scope's observation; its listing's instances are dropped once mapped (see `instances`). */
  observation: ScopeObservation;
  plan: Plan;
  /** Instances the listing returned. */
  instances: number;
  /** Owned entries the cluster listing read (all scopes'). */
  owned: number;
}

/** Finds the provider and scope for a scope key. */
export function findScope(providers: readonly Provider[], scopeKey: string): { provider: Provider; scope: Scope } | undefined {
  for (const provider of providers) {
    const scope = provider.scopes().find((s) => s.key === scopeKey);
    if (scope) return { provider, scope };
  }
  return undefined;
}

/** The scope an instance reference belongs to: same provider kind, account and (when scoped by region) region. */
export function scopeOfRef(providers: readonly Provider[], ref: InstanceRef): { provider: Provider; scope: Scope } | undefined {
  for (const provider of providers) {
    if (provider.kind !== ref.provider) continue;
    const scope = provider.scopes().find((s) => s.account === ref.account && (s.region === undefined || s.region === ref.region));
    if (scope) return { provider, scope };
  }
  return undefined;
}

/** The keys of every scope of the providers. */
export function configuredScopes(providers: readonly Provider[]): string[] {
  return providers.flatMap((p) => p.scopes().map((s) => s.key));
}

/** Lists one scope, plans it against what we own in it, and enqueues the changes. */
export async function resyncScope(deps: ReconcileDeps, scopeKey: string, options: { force?: boolean } = {}): Promise<ResyncResult> {
  const found = findScope(deps.providers, scopeKey);
  if (!found) throw new Error(`scope ${scopeKey} is not configured`);
  // Read before the listing, because mapping needs the auto-registered entries; one that istiod
  // makes meanwhile is seen by the next resync or refresh.
  const foreign = await deps.listForeign();
  const autoRegistered = indexAutoRegistered(foreign);
  // Each page of instances is mapped as it arrives and not kept: a large scope is not held twice.
  const observation = await observeScope(found.provider, found.scope, {
    config: deps.config,
    clock: deps.clock,
    timeoutMs: deps.config.resync.timeout,
    autoRegistered,
  });
  const instances = observation.listed;
  const complete = observation.listing.complete;
  // Before the cluster is read: an older delete that has not run yet can no longer remove an
  // entry this listing is about to see and keep.
  if (complete) await deps.confirm(scopeKey, observation.observedAt, 'listed');
  const { plan, owned } = await planAgainstCluster(deps, observation, foreign, options.force ?? false);
  if (plan.changes.length > 0) await deps.enqueue(plan.changes);
  // Its decisions are in: an older upsert can no longer bring back an entry it decided against.
  if (complete) await deps.confirm(scopeKey, observation.observedAt, 'planned');
  return { observation, plan, instances, owned };
}

/**
 * Reads the owned entries and the mesh service objects and plans the observation against them.
 * The listing is let go when this returns, before the changes are enqueued: a resync that changes
 * every entry of a large scope does not hold the owned entries (each as read but for what it
 * shares with its desired entry) while a hundred thousand changes go out.
 */
async function planAgainstCluster(deps: ReconcileDeps, observation: ObservedScope, foreign: readonly ForeignEntry[], force: boolean): Promise<{ plan: Plan; owned: number }> {
  const { entries: owned, listed } = await deps.listOwned(observation);
  const objects = await deps.listMeshServiceObjects();
  const entryPlan = await runSliced(
    planScopesSliced(deps.config, [observation], owned, {
      force,
      configuredScopes: configuredScopes(deps.providers),
      foreign,
    }),
  );
  // Every resync plans the objects of every mesh service, from this scope's desired entries and
  // every other scope's owned ones (see planMeshServices).
  const after = await runSliced(entriesAfterSliced(owned, entryPlan));
  const services = planMeshServices(deps.config, [observation], after, objects, { force, foreign });
  return { plan: joinPlans(entryPlan, services.plan), owned: listed };
}

/** How many names of a refresh are looked up by name alone at once. */
const OWNED_LOOKUPS = 8;

/** The names of a refresh that neither an entry found by its name label nor a desired entry holds. */
function namesWithoutEntry(names: ReadonlySet<string>, found: readonly WorkloadEntry[], observed: readonly ObservedScope[]): string[] {
  const held = new Set<string>();
  for (const entry of found) held.add(entry.metadata.name);
  for (const o of observed) for (const entry of o.entries) held.add(nameOfEntry(entry));
  return [...names].filter((name) => !held.has(name));
}

/** The outcome of refreshing a few instances. */
export interface RefreshResult {
  plan: Plan;
  skips: Skip[];
  /** References no configured scope covers; they are left alone. */
  unknown: InstanceRef[];
}

/**
 * Describes the referenced instances, maps them and plans only their entries: a running, tagged
 * instance is upserted; one that is gone, stopped or untagged loses its entry (ours, of its scope,
 * by exact name). A reference the provider did not answer for is left alone.
 */
export async function refreshInstances(deps: ReconcileDeps, refs: readonly InstanceRef[]): Promise<RefreshResult> {
  const groups = new Map<string, { provider: Provider; scope: Scope; refs: InstanceRef[]; names: Set<string> }>();
  const unknown: InstanceRef[] = [];
  for (const ref of refs) {
    const found = scopeOfRef(deps.providers, ref);
    if (!found) {
      unknown.push(ref);
      continue;
    }
    const group = groups.get(found.scope.key) ?? { ...found, refs: [], names: new Set<string>() };
    // One instance twice in a batch is described once.
    const name = entryName(ref);
    if (group.names.has(name)) continue;
    group.names.add(name);
    group.refs.push(ref);
    groups.set(found.scope.key, group);
  }

  // As a resync does: the auto-registered entries decide skips, and a name held by another object is a conflict.
  const foreign = groups.size > 0 ? await deps.listForeign() : [];
  const autoRegistered = indexAutoRegistered(foreign);
  const observed: ObservedScope[] = [];
  const names = new Set<string>();
  /** What each group's describe decides about: its scope, stamp and entry names. */
  const decided: Array<{ scopeKey: string; observedAt: string; names: string[] }> = [];
  for (const { provider, scope, refs: scopeRefs } of groups.values()) {
    const observedAt = await deps.clock();
    const described = await provider.describe(scopeRefs);
    const ctx = mapContext(deps.config, scope, observedAt, autoRegistered);
    const asked = new Set(scopeRefs.map(entryName));
    const entries: WorkloadEntry[] = [];
    const skips: Skip[] = [];
    const groupNames = new Set<string>();
    for (const d of described) {
      const name = entryName(d.ref);
      // An answer for an instance nobody asked about decides nothing.
      if (!asked.has(name)) continue;
      names.add(name);
      groupNames.add(name);
      if (!d.instance) continue;
      const result = mapInstance(d.instance, deps.config.mapping, ctx);
      if (result.kind === 'entry') entries.push(result.entry);
      else skips.push(result.skip);
    }
    observed.push({
      scope,
      listing: { scope, complete: true, problems: [] },
      listed: described.filter((d) => d.instance !== null).length,
      entries,
      skips,
      observedAt,
      namespaces: ctx.namespaces,
    });
    decided.push({ scopeKey: scope.key, observedAt, names: [...groupNames] });
  }
  // As a listing does for its scope, for these names: older deletes are void before the cluster
  // is read, older upserts once this plan is recorded.
  for (const d of decided) await deps.confirm(d.scopeKey, d.observedAt, 'listed', d.names);
  // Ours and not ours: the planner makes a name held by another object a not-owned conflict.
  const owned = names.size > 0 ? await deps.findByNames([...names]) : [];
  // An entry an earlier version wrote carries no name label. One that the plan would keep is found
  // anyway: its create meets it (409) and updates it. One that the plan would delete is looked for
  // by its name alone, the names a batch of events keeps on the mesh costing nothing more.
  const unfound = namesWithoutEntry(names, owned, observed);
  if (unfound.length > 0) owned.push(...(await mapLimited(unfound, OWNED_LOOKUPS, (name) => deps.findByName(name))).flat());
  const plan = planScopes(deps.config, observed, owned, { configuredScopes: configuredScopes(deps.providers), onlyNames: names, foreign });
  if (plan.changes.length > 0) await deps.enqueue(plan.changes);
  for (const d of decided) await deps.confirm(d.scopeKey, d.observedAt, 'planned', d.names);
  return { plan, skips: observed.flatMap((o) => o.skips), unknown };
}
