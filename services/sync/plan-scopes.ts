// Joins observations with what the cluster holds and plans. Pure: no I/O, time comes in.
import type { Config } from '../../config/schema.ts';
import { calculatePlan, type Conflict, type DesiredScope, entriesEqual, isOwned, type Plan, planSliced, type UpsertChange } from '../planning/index.ts';
import { ShardedMap, ShardedSet } from '../shards.ts';
import { CHECKPOINT_EVERY, runSync, type Sliced } from '../slices.ts';
import { deriveMeshServices, HeldEntry, type HeldShape, type MeshServices, nameOfEntry, namespaceAllowed, namespaceOfEntry, serviceOfEntry, specOfEntry } from '../mapping/index.ts';
import {
  AUTO_REGISTRATION_GROUP_ANNOTATION,
  type Change,
  type EntryKey,
  entryKey,
  type ForeignEntry,
  HEALTH_CHECK_ANNOTATION,
  keyOfObject,
  type KubeService,
  MANAGED_BY_LABEL,
  MESH_SERVICES_SCOPE,
  type MeshServiceObject,
  type OwnedObject,
  OWNER_LABEL,
  SCOPE_ANNOTATION,
  SERVICE_LABEL,
  SOURCE_ANNOTATION,
  type Skip,
  type WorkloadEntry,
} from '../model.ts';
import { compareStamps } from '../stamp.ts';
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
 * - an entry the observations want otherwise (a resync that changes it) is only ever looked at for
 *   its name, namespace, ownership labels and scope, and for being different: the plan writes the
 *   desired entry, and the writer reads the live one again before it writes. It is held slim (see
 *   below) and marked CHANGED_MARK, so that it never equals a desired entry;
 * - an entry of a scope that is not observed here, under a name nothing observed wants, is only
 *   ever looked at for its name, namespace, ownership labels and scope (it is another scope's to
 *   plan, or an orphan): it is held slim too, so that a resync of one scope among many does not
 *   hold every other scope's entries whole. When its scope is one of `configuredScopes` and it
 *   names no mesh service, it is not held at all: a plan whose scopes are the observed ones (as
 *   planScopes plans them) passes over it altogether, since its own scope's resync plans it, and a
 *   resync of one scope among twenty holds the entries of its own. An entry without a scope, or of
 *   a scope not configured, is held: the plan reports it as an orphan;
 * - any other entry is kept as read: one of an observed scope that nothing wants, one whose name
 *   several desired entries want (the plan picks which, and it may equal that one), one that istiod
 *   auto-registered (its annotation makes it not ours), one whose source a skipped instance keeps
 *   its entry by (desiredScopes reads its source and takes it whole), one that lacks a part.
 * Slim is the name, namespace, the ownership labels and the scope annotation, in maps shared among
 * the entries that have equal ones, and the apiVersion and kind as one string each (parsed from
 * each entry's JSON, every entry has a copy of its own). An entry that names a mesh service
 * (SERVICE_LABEL) keeps what the Services and WorkloadGroups planned with this resync are derived
 * from (planMeshServices reads every scope's entries, and a changed entry whose update the policy
 * drops stays as it is): its spec's labels, ports, service account and network, and its health
 * check.
 */
export function* sameAsDesired(
  observed: ReadonlyArray<Pick<ObservedScope, 'entries' | 'scope' | 'skips'>>,
  configuredScopes: Iterable<string> = [],
): Sliced<(live: WorkloadEntry) => WorkloadEntry | undefined> {
  // By namespace, then name: the strings the entries have already, where a key string made for
  // each desired entry and each entry read would be held, or thrown away, a hundred thousand times.
  const desired = new Map<string, ShardedMap<WorkloadEntry>>();
  const scopes = new Set(observed.map((o) => o.scope.key));
  const configured = new Set(configuredScopes);
  const keptSources = new Set<string>();
  // The desired entries indexed last under a name that another desired entry wants too: the plan
  // picks one of them (pickDesired), and the entry may differ from one and equal another.
  const contested = new Set<WorkloadEntry>();
  let indexed = 0;
  for (const o of observed) {
    for (const s of o.skips) if (s.keepsEntry) keptSources.add(s.source);
    for (const e of o.entries) {
      const namespace = namespaceOfEntry(e);
      const name = nameOfEntry(e);
      let byName = desired.get(namespace);
      if (byName === undefined) {
        byName = new ShardedMap();
        desired.set(namespace, byName);
      }
      const shard = byName.mapFor(name);
      if (shard.has(name)) contested.add(e);
      shard.set(name, e);
      if (++indexed % CHECKPOINT_EVERY === 0) yield;
    }
  }
  const shared = new Interner();
  return (live) => {
    const want = desired.get(live.metadata.namespace)?.get(live.metadata.name);
    // Neither is ever the desired entry: the one is istiod's (which entriesEqual does not look at),
    // and for the other the plan picks among several desired entries, which may not be equal.
    if (live.metadata.annotations?.[AUTO_REGISTRATION_GROUP_ANNOTATION] !== undefined) return live;
    if (want !== undefined && contested.size > 0 && contested.has(want)) return live;
    if (want !== undefined && entriesEqual(want, live)) return want;
    const { labels, annotations } = live.metadata;
    if (!isCopyableMap(live.spec) || !isCopyableMap(labels) || !isCopyableMap(annotations)) return live;
    const scope = annotations[SCOPE_ANNOTATION];
    if (want === undefined && (scope === undefined || scopes.has(scope))) return live;
    const source = annotations[SOURCE_ANNOTATION];
    if (source !== undefined && keptSources.has(source)) return live;
    const names = live.spec.labels?.[SERVICE_LABEL] !== undefined;
    // Another configured scope's (the observed ones were kept whole above), and the plan reads
    // nothing of it: no desired entry takes its name, no mesh service its labels.
    if (want === undefined && !names && scope !== undefined && configured.has(scope)) return undefined;
    const health = names ? annotations[HEALTH_CHECK_ANNOTATION] : undefined;
    const held: Record<string, string> = {};
    if (scope !== undefined) held[SCOPE_ANNOTATION] = scope;
    if (health !== undefined) held[HEALTH_CHECK_ANNOTATION] = health;
    if (want !== undefined) held[CHANGED_MARK] = 'true';
    // One shape for the stand-ins that differ only in name: an object of their own is their name's.
    const shape: HeldShape = {
      apiVersion: shared.string(live.apiVersion),
      kind: shared.string(live.kind),
      namespace: shared.string(live.metadata.namespace),
      labels: shared.map(ownershipLabels(labels)),
      annotations: shared.map(held),
      spec: names ? shared.map(serviceSpec(live.spec, shared) as Record<string, string>) : SLIM_SPEC,
    };
    return new HeldEntry(want !== undefined ? nameOfEntry(want) : live.metadata.name, shared.map(shape as unknown as Record<string, string>) as unknown as HeldShape);
  };
}

/**
 * The annotation that marks the stand-in of a changed entry (sameAsDesired). It is in our domain,
 * and no desired entry sets it, so entriesEqual never finds the stand-in equal to one. Stand-ins
 * are planned, never written.
 */
export const CHANGED_MARK = 'vm-mesh-sync.io/planned-as-changed';

/** A plain object whose keys assignment copies as keys (none is `__proto__`). */
function isCopyableMap(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Object.hasOwn(value, '__proto__');
}

/**
 * The labels planning reads of another scope's entry: those of ownership (isOwned). Not the name
 * label, which would make each entry's map one of its own to intern.
 */
function ownershipLabels(labels: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (labels?.[MANAGED_BY_LABEL] !== undefined) out[MANAGED_BY_LABEL] = labels[MANAGED_BY_LABEL];
  if (labels?.[OWNER_LABEL] !== undefined) out[OWNER_LABEL] = labels[OWNER_LABEL];
  return out;
}

/**
 * What the Services and WorkloadGroups derived with a resync read of another scope's entry that
 * names a mesh service (deriveMeshServices): its labels, ports, service account and network, with
 * its maps shared among the entries that have equal ones.
 */
function serviceSpec(spec: WorkloadEntry['spec'], shared: Interner): WorkloadEntry['spec'] {
  const out: WorkloadEntry['spec'] = { address: '' };
  if (spec.ports !== undefined) out.ports = shared.map(spec.ports);
  if (spec.labels !== undefined) out.labels = shared.map(spec.labels);
  if (spec.serviceAccount !== undefined) out.serviceAccount = shared.string(spec.serviceAccount);
  if (spec.network !== undefined) out.network = shared.string(spec.network);
  return out;
}

/** The spec of a slim stand-in that names no mesh service: never read, so one object serves all. */
const SLIM_SPEC = Object.freeze({ address: '' }) as WorkloadEntry['spec'];

/** Options of one planning run. */
export interface PlanRunOptions {
  /** Let held deletes through. */
  force?: boolean;
  /** A plan of a few instances: only owned entries with these names are looked at (PlanOptions.onlyNames). */
  onlyNames?: ReadonlySet<string>;
  /** Every scope in the config; owned entries of other scopes are orphans and are kept. */
  configuredScopes: Iterable<string>;
  /** Entries (or their keys) that exist and are not ours (Writer.listForeign): a conflict, never a create. */
  foreign?: Iterable<EntryKey | ForeignEntry>;
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
    { desired: desiredScopes(observed, owned), owned, ...(options.foreign ? { foreign: foreignKeys(options.foreign) } : {}) },
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
  const ownedKeys = new ShardedSet();
  for (let i = 0; i < owned.length; i++) {
    ownedKeys.add(entryKey(namespaceOfEntry(owned[i]!), nameOfEntry(owned[i]!)));
    if (i % CHECKPOINT_EVERY === 0) yield;
  }
  for (let i = 0; i < plan.changes.length; i++) {
    const change = plan.changes[i]!;
    if (change.op === 'upsert' && !ownedKeys.has(change.key)) plan.changes[i] = absentUpsert(change);
    if (i % CHECKPOINT_EVERY === 0) yield;
  }
  return plan;
}

/**
 * An upsert marked expectAbsent, written out field by field: a copy by spread would keep the
 * fields V8 laid out for the original in the object and put the new one in a property array of
 * its own, 40 bytes more for each of the hundred thousand creates of a first sync.
 */
function absentUpsert(change: UpsertChange): Change {
  const { op, key, entry, observedAt, takeOverFrom } = change;
  return takeOverFrom === undefined ? { op, key, entry, observedAt, expectAbsent: true } : { op, key, entry, observedAt, expectAbsent: true, takeOverFrom };
}

/** Does not compile once an upsert has a field absentUpsert does not copy. */
const ABSENT_UPSERT_COPIES_EVERY_FIELD: [Exclude<keyof UpsertChange, 'op' | 'key' | 'entry' | 'observedAt' | 'expectAbsent' | 'takeOverFrom'>] extends [never] ? true : never = true;
void ABSENT_UPSERT_COPIES_EVERY_FIELD;

function* foreignKeys(foreign: Iterable<EntryKey | ForeignEntry>): Iterable<EntryKey> {
  for (const item of foreign) yield typeof item === 'string' ? item : item.key;
}

/** Every skip of the observations, in scope order. */
export function allSkips(observed: readonly ObservedScope[]): Skip[] {
  return observed.flatMap((o) => o.skips);
}

/**
 * The entries naming a mesh service that the cluster holds once `plan` is applied: the owned
 * entries (stand-ins included), with the plan's upserts in and its deletes out. Whatever the plan
 * keeps (the entries of other scopes, of incomplete listings, of held deletes, of conflicts, of a
 * policy that drops deletes) stays as it is. Only entries with SERVICE_LABEL are kept, since only
 * they make Services: a scope of 100,000 entries naming none costs a pass, not a map of them all.
 */
export function entriesAfter(owned: readonly WorkloadEntry[], plan: Plan): WorkloadEntry[] {
  return runSync(entriesAfterSliced(owned, plan));
}

/** entriesAfter as sliced work, for large scopes in `serve`. */
export function* entriesAfterSliced(owned: readonly WorkloadEntry[], plan: Plan): Sliced<WorkloadEntry[]> {
  const names = (e: WorkloadEntry): boolean => specOfEntry(e)?.labels?.[SERVICE_LABEL] !== undefined;
  const after = new Map<EntryKey, WorkloadEntry>();
  for (let i = 0; i < owned.length; i++) {
    const e = owned[i]!;
    if (names(e)) after.set(entryKey(namespaceOfEntry(e), nameOfEntry(e)), e);
    if (i % CHECKPOINT_EVERY === 0) yield;
  }
  for (let i = 0; i < plan.changes.length; i++) {
    const change = plan.changes[i]!;
    if (i % CHECKPOINT_EVERY === 0) yield;
    if (change.op === 'delete') after.delete(change.key);
    else if (change.entry.kind === 'WorkloadEntry') {
      // An upsert that drops the service label takes the entry out of its service.
      if (names(change.entry)) after.set(change.key, change.entry);
      else after.delete(change.key);
    }
  }
  return [...after.values()];
}

/** What the cluster holds of the kinds mesh services are written as (Writer.listMeshServiceObjects). */
export interface MeshServiceObjects {
  /** Carrying our owner labels (checked on our side). */
  owned: MeshServiceObject[];
  /** Not ours: another tool's, a person's, another owner id's. Their names are conflicts. */
  foreign: MeshServiceObject[];
}

/** The Services (or ServiceEntries) and WorkloadGroups of a plan, and their changes. */
export interface MeshServicesPlan {
  /** What the entries call for, with the entries left out and the services without ports. */
  derived: MeshServices;
  /** The changes to the objects of mesh services, planned like entries, in their own scope MESH_SERVICES_SCOPE. */
  plan: Plan;
}

/**
 * Plans the Services (or ServiceEntries) and WorkloadGroups of mesh services with the planner that
 * plans entries, in the scope MESH_SERVICES_SCOPE that all of them carry.
 *
 * They are derived from the entries the cluster holds once the entry plan is applied
 * (entriesAfter): this plan's desired entries for the scopes it observed, and the owned entries
 * as they are for every other scope, so that a service whose VMs span several scopes gets the
 * ports of all of them whichever scope is resynced (the stand-ins of sameAsDesired keep the
 * entries that name a service whole). Deletes need a complete picture: the scope
 * MESH_SERVICES_SCOPE counts as listed completely only when every scope this plan observed was,
 * and then an owned Service no entry names is deleted, through the same deletion guard as
 * entries. A plan of a few names (a refresh) sees no such picture and plans no mesh services: the
 * next resync does.
 */
export function planMeshServices(
  config: Pick<Config, 'ownerId' | 'policy' | 'deletionGuard' | 'services'>,
  observed: readonly ObservedScope[],
  entries: readonly WorkloadEntry[],
  objects: MeshServiceObjects,
  options: { force?: boolean; foreign?: readonly ForeignEntry[] } = {},
): MeshServicesPlan {
  const derived = deriveMeshServices(entries, { ownerId: config.ownerId, ...config.services });
  const complete = observed.length > 0 && observed.every((o) => o.listing.complete);
  let observedAt = observed[0]?.observedAt ?? '';
  for (const o of observed) if (compareStamps(o.observedAt, observedAt) < 0) observedAt = o.observedAt;
  const desired: OwnedObject[] = [...derived.services, ...derived.workloadGroups];
  // VMs that auto-registered through one of our WorkloadGroups have entries of istiod's, not
  // ours, so none of ours may name the service any more. Their group (the entries' controller)
  // and its Service are kept as they are while such an entry is there.
  const registeredThrough = new Set<string>();
  for (const f of options.foreign ?? []) {
    if (f.autoRegistrationGroup !== undefined) registeredThrough.add(`${f.key.slice(0, f.key.indexOf('/'))}/${f.autoRegistrationGroup}`);
  }
  const derivedKeys = new Set(desired.map(keyOfObject));
  for (const live of objects.owned) {
    const { namespace, name } = live.metadata;
    if (isOwned(live, config.ownerId) && registeredThrough.has(`${namespace}/${name}`) && !derivedKeys.has(keyOfObject(live))) desired.push(live);
  }
  const scope = { key: MESH_SERVICES_SCOPE, provider: 'static', source: '', account: '' } as const;
  const plan = calculatePlan(
    {
      desired: [{ scope, complete, problems: [], entries: desired, observedAt }],
      owned: objects.owned.filter((o) => isOwned(o, config.ownerId)),
      foreign: [...objects.foreign, ...objects.owned.filter((o) => !isOwned(o, config.ownerId))].map(keyOfObject),
    },
    {
      ownerId: config.ownerId,
      policy: config.policy,
      guard: config.deletionGuard,
      force: options.force ?? false,
      scopes: [MESH_SERVICES_SCOPE],
      configuredScopes: [MESH_SERVICES_SCOPE],
    },
  );
  const ownedKeys = new Set(objects.owned.map(keyOfObject));
  plan.changes = plan.changes.map((c) => (c.op === 'upsert' && !ownedKeys.has(c.key) ? { ...c, expectAbsent: true } : c.op === 'delete' ? { ...c, kind: kindOfKey(c.key) } : c));
  const foreignByKey = new Map(objects.foreign.map((o) => [keyOfObject(o), o]));
  plan.conflicts = plan.conflicts.map((c) => (c.kind === 'not-owned' ? notOwnedService(c, foreignByKey.get(c.key), entries, config.ownerId) : c));
  plan.skippedScopes = plan.skippedScopes.map((s) => ({
    ...s,
    reason: `a scope of this plan was not listed completely, so no Service, ServiceEntry or WorkloadGroup is deleted until every scope is`,
  }));
  return { derived, plan };
}

function kindOfKey(key: EntryKey): MeshServiceObject['kind'] {
  return key.slice(0, key.indexOf('/')) as MeshServiceObject['kind'];
}

/**
 * The conflict of a mesh service whose object name is taken by an object that is not ours: said
 * so, and when it is a Service whose selector already selects every entry of the service, that the
 * VMs are served by it.
 */
function notOwnedService(conflict: Conflict, foreign: MeshServiceObject | undefined, entries: readonly WorkloadEntry[], ownerId: string): Conflict {
  const kind = kindOfKey(conflict.key);
  const [, namespace = '', name = ''] = conflict.key.split('/');
  const members = entries.filter((e) => {
    const of = serviceOfEntry(e, ownerId);
    return of?.namespace === namespace && of.service === name;
  });
  const selector = foreign?.kind === 'Service' ? ((foreign as KubeService).spec?.selector ?? {}) : {};
  const selects = Object.keys(selector).length > 0 && members.length > 0 && members.every((e) => Object.entries(selector).every(([k, v]) => e.spec.labels?.[k] === v));
  const what = `${kind} ${namespace}/${name} exists and is not managed by vm-mesh-sync with owner "${ownerId}"; it is left alone`;
  const reason = selects
    ? `${what}: served by your Service, whose selector already selects the ${members.length} VMs of mesh service ${name}`
    : `${what} and mesh service ${name} gets no ${kind} of its own: delete or rename that ${kind}, or tag the VMs with another mesh-service`;
  return { ...conflict, reason, ...(selects ? { servedByForeign: true } : {}) };
}

/** Joins the entry plan and the mesh services' plan into one: changes, conflicts and counts of both. */
export function joinPlans(a: Plan, b: Plan): Plan {
  const sum = (k: keyof Plan['summary']): number => a.summary[k] + b.summary[k];
  return {
    changes: [...a.changes, ...b.changes],
    held: [...a.held, ...b.held],
    forced: [...a.forced, ...b.forced],
    conflicts: [...a.conflicts, ...b.conflicts],
    orphaned: [...a.orphaned, ...b.orphaned],
    skippedScopes: [...a.skippedScopes, ...b.skippedScopes],
    summary: {
      create: sum('create'),
      update: sum('update'),
      delete: sum('delete'),
      unchanged: sum('unchanged'),
      held: sum('held'),
      dropped: sum('dropped'),
    },
  };
}
