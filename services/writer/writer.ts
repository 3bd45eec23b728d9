// Applies one Change to the cluster so that doing it twice, late, or at the same time as another
// worker leaves the same result: ownership is checked on every write, an older observation never
// replaces a newer one, nothing is sent when nothing changed, and every write carries the
// resourceVersion (or uid) it was decided on, so a concurrent writer turns into a retry instead of
// a lost update.
import type { BaseLogger } from 'pino';
import { backoffCeiling, jitteredBackoff } from '../backoff.ts';
import { VmsError } from '../errors.ts';
import type { Change, EntryKey, ForeignEntry, MeshServiceKind, MeshServiceObject, OwnedKind, OwnedObject, WorkloadEntry } from '../model.ts';
import { AUTO_REGISTRATION_GROUP_ANNOTATION, DEFAULT_KUBE_PAGE_SIZE, entryKey, MANAGED_BY_LABEL, MANAGED_BY_VALUE, NAME_LABEL, OBSERVED_AT_ANNOTATION, OWNER_LABEL, SCOPE_ANNOTATION, SERVICE_LABEL } from '../model.ts';
import { deriveMeshServices, DesiredEntry, matchesNamespace, nameLabelValue, plainEntry } from '../mapping/index.ts';
import { entriesEqual, isOwned } from '../planning/index.ts';
import { compareStamps } from '../stamp.ts';
import type { KubeApi, ListOptions } from './kube-api.ts';
import { PresenceCache } from './presence-cache.ts';
import { removalPatch } from './removals.ts';
import { TransientKubeError } from './transient-kube-error.ts';

/**
 * What applying one change did. `stale`: the live entry carries a newer observation. `conflict`:
 * the live entry belongs to another scope (its scope annotation), which keeps it.
 */
export type ApplyResult = 'created' | 'updated' | 'unchanged' | 'stale' | 'deleted' | 'absent' | 'conflict';

/** The logger calls the writer makes; a pino logger fits. */
export type WriterLogger = Pick<BaseLogger, 'debug' | 'info' | 'warn'>;

/**
 * How long a service account seen present is trusted when an entry has to be created: entries are
 * created in bursts that share a few accounts, so this costs a GET per account every few seconds,
 * and a cluster that lost its accounts gets them back with its entries.
 */
const RECHECK_ON_CREATE_MS = 10_000;
/** Names asked for in one request by findByNames: a selector of 100 values of up to 63 characters is at most about 6.5 KB of URL. */
const NAMES_PER_LOOKUP = 100;

/** How a Writer talks to the cluster and whose entries it may touch. */
export interface WriterOptions {
  api: KubeApi;
  /** Only entries labelled with this owner id (and managed-by vm-mesh-sync) are ever changed. */
  ownerId: string;
  /** Server-side apply field manager. */
  fieldManager: string;
  /** Create the service account an entry names when its namespace lacks it. */
  ensureServiceAccounts: boolean;
  /**
   * Namespaces (names or `*` globs) this installation may write entries and service accounts to
   * (config mapping.namespace.allowed); a create or update anywhere else is refused. Deletes are
   * not: removing our own entry from a namespace that is no longer allowed is the clean-up the
   * planner decided. Absent: any.
   */
  namespaces?: readonly string[];
  /**
   * List owned entries namespace by namespace, in these (config kubernetes.listNamespaces
   * `allowed`), for clusters that grant a Role per namespace; absent: one cluster-wide list.
   */
  listNamespaces?: readonly string[];
  logger?: WriterLogger;
  /** Re-reads after a 409 before giving up with a TransientKubeError (default 5). */
  maxConflicts?: number;
  /** Page size of listings (default DEFAULT_KUBE_PAGE_SIZE). */
  pageSize?: number;
  /** Retries of each page of a listing of owned entries (a failed page is asked again, not the whole listing). */
  listRetry?: RetryOptions;
  /** How long a service account seen present is not looked up again (default 5 min). */
  serviceAccountTtlMs?: number;
  /** How many present service accounts are remembered (default 10,000). */
  serviceAccountCacheSize?: number;
  /** For tests: the clock, the pause between retries and the jitter source. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** How applyWithRetry retries transient failures. */
export interface RetryOptions {
  /** Tries in all, the first included (default 5). */
  maxAttempts?: number;
  /** First pause; doubles on each retry, with jitter (default 500 ms). */
  baseDelayMs?: number;
  /** Longest pause between tries, Retry-After included (default 60 s). */
  maxDelayMs?: number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** What an apply may know beyond its change. */
export interface ApplyContext {
  /**
   * The newest change recorded for an entry key and not yet known to be applied (the desired
   * store in `serve`), or null. An entry whose pending change is a delete it will win is leaving:
   * it does not keep its mesh service's objects, whose delete may run before its own.
   */
  pending?: (key: EntryKey) => Promise<Change | null>;
}

/** Applies changes to WorkloadEntries (and the service accounts they name) idempotently. */
export class Writer {
  readonly #api: KubeApi;
  readonly #ownerId: string;
  readonly #fieldManager: string;
  readonly #ensureServiceAccounts: boolean;
  readonly #namespaces: readonly string[] | undefined;
  readonly #listNamespaces: readonly string[] | undefined;
  readonly #logger: WriterLogger | undefined;
  readonly #maxConflicts: number;
  readonly #pageSize: number;
  readonly #listRetry: RetryOptions;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #knownServiceAccounts: PresenceCache;
  /** Lookups in flight, so that concurrent changes naming one account share one GET. */
  readonly #pendingServiceAccounts = new Map<string, Promise<void>>();

  constructor(options: WriterOptions) {
    this.#api = options.api;
    this.#ownerId = options.ownerId;
    this.#fieldManager = options.fieldManager;
    this.#ensureServiceAccounts = options.ensureServiceAccounts;
    this.#namespaces = options.namespaces;
    this.#listNamespaces = options.listNamespaces;
    this.#logger = options.logger;
    this.#maxConflicts = options.maxConflicts ?? 5;
    this.#pageSize = options.pageSize ?? DEFAULT_KUBE_PAGE_SIZE;
    this.#listRetry = options.listRetry ?? {};
    this.#sleep = options.sleep ?? defaultSleep;
    this.#random = options.random ?? Math.random;
    this.#knownServiceAccounts = new PresenceCache({
      ttlMs: options.serviceAccountTtlMs ?? 5 * 60_000,
      maxSize: options.serviceAccountCacheSize ?? 10_000,
      ...(options.now ? { now: options.now } : {}),
    });
  }

  /** The label selector of the entries this installation owns. */
  get ownerSelector(): string {
    return `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${OWNER_LABEL}=${this.#ownerId}`;
  }

  /** Applies one change. Throws TransientKubeError (retry) or VmsError (permanent). */
  async apply(given: Change, context: ApplyContext = {}): Promise<ApplyResult> {
    if (given.op === 'delete') return this.#delete(given, context);
    // A desired entry in compact form is written as the WorkloadEntry it reads as.
    const change = given.entry instanceof DesiredEntry ? { ...given, entry: plainEntry(given.entry) } : given;
    const namespace = change.entry.metadata.namespace;
    if (this.#namespaces && !matchesNamespace(namespace, this.#namespaces)) {
      throw new VmsError(
        'VMS_ERR_NAMESPACE_NOT_ALLOWED',
        `upsert ${change.key}: namespace ${namespace} is not in mapping.namespace.allowed [${this.#namespaces.join(', ')}]; nothing was written`,
        { namespace },
      );
    }
    return this.#upsert(change);
  }

  /**
   * apply() with retries of transient failures, for `sync --once` where no queue retries for us:
   * exponential backoff with jitter, or the server's Retry-After when it sent one. Permanent
   * errors are thrown at once.
   */
  async applyWithRetry(change: Change, options: RetryOptions = {}): Promise<ApplyResult> {
    return this.withRetry(() => this.apply(change), options, change.key);
  }

  /**
   * Runs `call` with the retries of applyWithRetry, for calls no queue retries either: each page
   * of a listing of owned entries, which a resync plans against, so that a single 429 does not
   * fail the resync.
   */
  async withRetry<T>(call: () => Promise<T>, options: RetryOptions = {}, what = 'request'): Promise<T> {
    const maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    const baseDelayMs = options.baseDelayMs ?? 500;
    const maxDelayMs = options.maxDelayMs ?? 60_000;
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!(err instanceof TransientKubeError) || attempt >= maxAttempts) throw err;
        const delay = Math.min(maxDelayMs, this.#retryDelay(err, attempt, baseDelayMs));
        if (attempt === 1) {
          // Said at once, with how long it may go on, so that a run against an API server that is
          // down does not look hung. Later retries of the same call are debug.
          let waits = 0;
          for (let a = 1; a < maxAttempts; a++) waits += Math.min(maxDelayMs, backoffCeiling(baseDelayMs, a));
          this.#logger?.warn(
            { key: what, code: 'VMS_ERR_KUBE_TRANSIENT', reason: err.reason, attempts: maxAttempts, waitsUpToMs: waits },
            `the Kubernetes API failed (${err.message}); retrying ${what} up to ${maxAttempts - 1} more times, waiting up to ${Math.ceil(waits / 1000)} s in all besides the requests' own time-outs`,
          );
        } else {
          this.#logger?.debug({ key: what, attempt, delayMs: delay, reason: err.reason }, 'transient Kubernetes error, retrying');
        }
        await this.#sleep(delay);
      }
    }
  }

  /**
   * Every entry this installation owns, in all namespaces. `keep` may replace each entry as it is
   * read with a smaller stand-in, or leave it out (see sameAsDesired in
   * services/sync/plan-scopes.ts), so that a large listing is not held twice; `read` counts every
   * entry read (see ListOptions).
   */
  async listOwned(keep?: (entry: WorkloadEntry) => WorkloadEntry | undefined, read?: { entries: number }): Promise<WorkloadEntry[]> {
    return this.#list({ ...(keep ? { keep } : {}), ...(read ? { read } : {}) });
  }

  /**
   * The WorkloadEntries that are not this installation's (another tool's, another owner id's,
   * hand-written ones, istiod's auto-registered ones), with what planning reads of them: a name
   * among them is a conflict, never a create that would be refused again at every run, and an
   * auto-registered one at an address we map makes that instance a VMS_SKIP_AUTO_REGISTERED. The
   * label selector only narrows what the server sends; ownership and the annotation are checked here.
   */
  async listForeign(): Promise<ForeignEntry[]> {
    const entries = await this.#list({}, `${OWNER_LABEL}!=${this.#ownerId}`);
    return entries.filter((e) => !isOwned(e, this.#ownerId)).map(foreignEntry);
  }

  /**
   * This owner's entries named `name`, in any namespace (an instance's entry wherever its namespace
   * tag put it). The field selector only narrows what the server sends: what it returns is
   * checked here, since a proxy or an old server may ignore it.
   */
  async findOwnedByName(name: string): Promise<WorkloadEntry[]> {
    return (await this.findByName(name)).filter((e) => isOwned(e, this.#ownerId));
  }

  /**
   * Every entry named `name`, in any namespace, ours or not: a refresh plans against all of them,
   * so that a name another object holds is a conflict rather than a create refused at every event.
   */
  async findByName(name: string): Promise<WorkloadEntry[]> {
    const found = await this.#list({ fieldSelector: `metadata.name=${name}` }, '');
    return found.filter((e) => e.metadata.name === name);
  }

  /**
   * The entries named one of `names`, in any namespace, ours and other installations': found by
   * NAME_LABEL, one list request per NAMES_PER_LOOKUP names, where a field selector takes a request
   * per name (and the API server scans every entry for each). The selector only narrows what the
   * server sends: names are compared here, ownership by the planner. An entry written by a version
   * without the label is not found; a create planned for its name finds it (409) and updates it.
   */
  async findByNames(names: Iterable<string>): Promise<WorkloadEntry[]> {
    const wanted = new Set(names);
    const byValue = new Set<string>();
    for (const name of wanted) byValue.add(nameLabelValue(name));
    const values = [...byValue];
    const out: WorkloadEntry[] = [];
    for (let i = 0; i < values.length; i += NAMES_PER_LOOKUP) {
      const selector = `${NAME_LABEL} in (${values.slice(i, i + NAMES_PER_LOOKUP).join(',')})`;
      for (const entry of await this.#list({}, selector)) if (wanted.has(entry.metadata.name)) out.push(entry);
    }
    return out;
  }

  async #list(options: Pick<ListOptions, 'fieldSelector' | 'keep' | 'read'>, selector = this.ownerSelector): Promise<WorkloadEntry[]> {
    const what =
      selector === this.ownerSelector
        ? 'page of owned entries'
        : selector === '' || selector.startsWith(NAME_LABEL)
          ? 'page of entries by name'
          : 'page of entries not ours';
    const page = <T>(request: () => Promise<T>): Promise<T> => this.withRetry(request, this.#listRetry, what);
    if (!this.#listNamespaces) return this.#api.listOwnedEntries(selector, this.#pageSize, { ...options, page });
    const out: WorkloadEntry[] = [];
    for (const namespace of this.#listNamespaces) {
      out.push(...(await this.#api.listOwnedEntries(selector, this.#pageSize, { ...options, namespace, page })));
    }
    return out;
  }

  #retryDelay(err: TransientKubeError, attempt: number, baseDelayMs: number): number {
    if (err.retryAfterMs !== undefined) {
      // At least what the server asked for; a little more so that replicas do not return together.
      return err.retryAfterMs + Math.floor(this.#random() * Math.min(1000, err.retryAfterMs * 0.1 + 1));
    }
    return jitteredBackoff(baseDelayMs, attempt, this.#random);
  }

  async #upsert(change: Extract<Change, { op: 'upsert' }>): Promise<ApplyResult> {
    const desired = this.#desired(change);
    const { namespace, name } = desired.metadata;
    const kind = desired.kind;
    for (let conflicts = 0; conflicts <= this.#maxConflicts; conflicts++) {
      // A create the plan expects costs one request; if the object exists after all, the 409 brings us back here to read it.
      const live = change.expectAbsent && conflicts === 0 ? null : await this.#get(kind, namespace, name);
      if (live) {
        this.#assertOwned(live);
        const liveScope = scopeOf(live);
        if (liveScope !== scopeOf(desired) && liveScope !== change.takeOverFrom) return this.#conflict(change, liveScope);
        if (isNewer(live.metadata.annotations[OBSERVED_AT_ANNOTATION], change.observedAt)) return 'stale';
        if (entriesEqual(desired, live)) return 'unchanged';
      }
      try {
        if (desired.kind !== 'WorkloadEntry') {
          // Services, ServiceEntries and WorkloadGroups: created, then merge-patched (lists are
          // replaced whole, and what we no longer set is removed with a null).
          if (!live) {
            await this.#api.createObject(desired, { fieldManager: this.#fieldManager });
            return 'created';
          }
          const patch = mergePatchBody(desired, removalPatch(desired, live) ?? {}, live.metadata.resourceVersion);
          await this.#api.mergePatchObject(desired.kind, namespace, name, patch, { fieldManager: this.#fieldManager });
          return 'updated';
        }
        const liveEntry = live as WorkloadEntry | null;
        // An entry that is missing may mean a cluster that lost its objects: its service account is
        // then looked at again unless it was seen a moment ago, whatever the cache says.
        await this.#ensureServiceAccount(desired, liveEntry ? undefined : RECHECK_ON_CREATE_MS);
        if (!liveEntry) {
          await this.#api.createEntry(desired, { fieldManager: this.#fieldManager });
          return 'created';
        }
        const removals = removalPatch(desired, liveEntry);
        if (removals) {
          await this.#api.mergePatchEntry(namespace, name, mergePatchBody(desired, removals, liveEntry.metadata.resourceVersion), {
            fieldManager: this.#fieldManager,
          });
          return 'updated';
        }
        const guarded: WorkloadEntry = { ...desired, metadata: { ...desired.metadata } };
        if (liveEntry.metadata.resourceVersion) guarded.metadata.resourceVersion = liveEntry.metadata.resourceVersion;
        await this.#api.applyEntry(guarded, { fieldManager: this.#fieldManager });
        return 'updated';
      } catch (err) {
        // 409: created or changed meanwhile; 404 on apply: deleted meanwhile. Read again and decide again.
        if (!isRaceLost(err)) throw err;
        this.#logger?.debug({ key: change.key, reason: (err as TransientKubeError).reason }, 'object changed meanwhile, reading it again');
      }
    }
    throw this.#tooManyConflicts(change);
  }

  async #delete(change: Extract<Change, { op: 'delete' }>, context: ApplyContext): Promise<ApplyResult> {
    const { namespace, name } = change;
    const kind = change.kind ?? 'WorkloadEntry';
    for (let conflicts = 0; conflicts <= this.#maxConflicts; conflicts++) {
      const live = await this.#get(kind, namespace, name);
      if (!live) return 'absent';
      this.#assertOwned(live);
      if (scopeOf(live) !== change.scopeKey) return this.#conflict(change, scopeOf(live));
      // A delete needs a strictly newer observation: of two of the same instant, the object stays.
      if (!isNewer(change.observedAt, live.metadata.annotations[OBSERVED_AT_ANNOTATION] ?? '')) return 'stale';
      // A mesh service's object goes only when the entries of ours that name the service, as the
      // cluster is now, no longer call for it: entries another scope created after the plan read
      // the cluster keep it; those on their way out do not.
      if (kind !== 'WorkloadEntry' && (await this.#stillCalledFor(kind, namespace, name, context))) {
        this.#logger?.info({ key: change.key }, `${change.key} is kept: the entries of ours in ${namespace} that name mesh service ${name} still call for it`);
        return 'stale';
      }
      try {
        const preconditions = {
          ...(live.metadata.resourceVersion ? { resourceVersion: live.metadata.resourceVersion } : {}),
          ...(live.metadata.uid ? { uid: live.metadata.uid } : {}),
        };
        const deleted = kind === 'WorkloadEntry' ? await this.#api.deleteEntry(namespace, name, preconditions) : await this.#api.deleteObject(kind, namespace, name, preconditions);
        return deleted ? 'deleted' : 'absent';
      } catch (err) {
        if (!isRaceLost(err)) throw err;
        this.#logger?.debug({ key: change.key }, 'object changed before delete, reading it again');
      }
    }
    throw this.#tooManyConflicts(change);
  }

  /** The live object of any kind we write, or null. */
  async #get(kind: OwnedKind, namespace: string, name: string): Promise<OwnedObject | null> {
    return kind === 'WorkloadEntry' ? this.#api.getEntry(namespace, name) : this.#api.getObject(kind, namespace, name);
  }

  /**
   * True when the entries we own in `namespace` that name mesh service `service` (its spec label)
   * call for its object of this kind, by the rules the plan derives it by (deriveMeshServices): a
   * WorkloadGroup while any names it, a Service or ServiceEntry only while one of them has a port.
   */
  async #stillCalledFor(kind: MeshServiceKind, namespace: string, service: string, context: ApplyContext): Promise<boolean> {
    const page = <T>(request: () => Promise<T>): Promise<T> => this.withRetry(request, this.#listRetry, 'page of owned entries');
    const entries = await this.#api.listOwnedEntries(this.ownerSelector, this.#pageSize, { namespace, page });
    const naming: WorkloadEntry[] = [];
    for (const e of entries) {
      if (!isOwned(e, this.#ownerId) || e.spec.labels?.[SERVICE_LABEL] !== service) continue;
      if (!(await this.#leaving(e, context))) naming.push(e);
    }
    if (naming.length === 0) return false;
    const derived = deriveMeshServices(naming, {
      ownerId: this.#ownerId,
      kind: kind === 'Service' ? 'service' : kind === 'ServiceEntry' ? 'service-entry' : 'off',
      workloadGroups: kind === 'WorkloadGroup',
      // Not compared: only which objects are derived matters here.
      clusterDomain: 'cluster.local',
    });
    return [...derived.services, ...derived.workloadGroups].some((o) => o.kind === kind && o.metadata.name === service);
  }

  /**
   * True when the entry's pending change is a delete that will remove it, by the rules #delete
   * applies: the entry's own scope, and an observation newer than the one it was written from.
   */
  async #leaving(entry: WorkloadEntry, context: ApplyContext): Promise<boolean> {
    if (!context.pending) return false;
    const next = await context.pending(entryKey(entry.metadata.namespace, entry.metadata.name));
    return (
      next !== null &&
      next.op === 'delete' &&
      (next.kind ?? 'WorkloadEntry') === 'WorkloadEntry' &&
      next.scopeKey === scopeOf(entry) &&
      isNewer(next.observedAt, entry.metadata.annotations?.[OBSERVED_AT_ANNOTATION] ?? '')
    );
  }

  /**
   * The objects of the kinds mesh services are written as (per config `services`: Services or
   * ServiceEntries, and WorkloadGroups), all of them, split into ours and not ours on our side.
   * A kind turned off is not read at all: the installation may hold no permission for it.
   */
  async listMeshServiceObjects(services: { kind: 'service' | 'service-entry' | 'off'; workloadGroups: boolean }): Promise<{ owned: MeshServiceObject[]; foreign: MeshServiceObject[] }> {
    const kinds: MeshServiceKind[] = [];
    if (services.kind === 'service') kinds.push('Service');
    if (services.kind === 'service-entry') kinds.push('ServiceEntry');
    if (services.workloadGroups) kinds.push('WorkloadGroup');
    const out = { owned: [] as MeshServiceObject[], foreign: [] as MeshServiceObject[] };
    const page = <T>(request: () => Promise<T>): Promise<T> => this.withRetry(request, this.#listRetry, 'page of mesh service objects');
    for (const kind of kinds) {
      const all: MeshServiceObject[] = [];
      if (!this.#listNamespaces) all.push(...(await this.#api.listObjects(kind, this.#pageSize, { page })));
      else for (const namespace of this.#listNamespaces) all.push(...(await this.#api.listObjects(kind, this.#pageSize, { namespace, page })));
      for (const obj of all) (isOwned(obj, this.#ownerId) ? out.owned : out.foreign).push(obj);
    }
    return out;
  }

  /** The object as we write it: marked as ours and stamped with the observation it comes from. */
  #desired(change: Extract<Change, { op: 'upsert' }>): OwnedObject {
    const { metadata } = change.entry;
    return {
      ...change.entry,
      metadata: {
        name: metadata.name,
        namespace: metadata.namespace,
        labels: { ...metadata.labels, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: this.#ownerId },
        annotations: { ...metadata.annotations, [OBSERVED_AT_ANNOTATION]: change.observedAt },
      },
    } as OwnedObject;
  }

  #assertOwned(live: OwnedObject): void {
    if (isOwned(live, this.#ownerId)) return;
    const labels = live.metadata.labels;
    const managedBy = labels[MANAGED_BY_LABEL];
    const owner = labels[OWNER_LABEL];
    const group = live.metadata.annotations?.[AUTO_REGISTRATION_GROUP_ANNOTATION];
    const why = group
      ? `Istio auto-registered it (WorkloadGroup "${group}"), so it is istiod's whatever its labels say`
      : managedBy !== MANAGED_BY_VALUE
        ? `it is not labelled ${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}${managedBy ? ` (managed by "${managedBy}")` : ''}`
        : `it belongs to owner id "${owner ?? ''}", not "${this.#ownerId}"`;
    throw new VmsError('VMS_ERR_NOT_OWNED', `${live.kind} ${live.metadata.namespace}/${live.metadata.name} exists and ${why}`, {
      namespace: live.metadata.namespace,
      name: live.metadata.name,
      managedBy,
      owner,
    });
  }

  #conflict(change: Change, liveScope: string): ApplyResult {
    this.#logger?.warn(
      { key: change.key, op: change.op, scope: liveScope },
      `${change.key} belongs to scope ${liveScope || '(none)'}; this ${change.op} from another scope is not applied`,
    );
    return 'conflict';
  }

  #tooManyConflicts(change: Change): TransientKubeError {
    return new TransientKubeError(`${change.op} ${change.key}: still conflicting after ${this.#maxConflicts + 1} tries`, {
      status: 409,
      reason: 'Conflict',
    });
  }

  async #ensureServiceAccount(entry: WorkloadEntry, maxAgeMs?: number): Promise<void> {
    const name = entry.spec.serviceAccount;
    if (!this.#ensureServiceAccounts || !name) return;
    const namespace = entry.metadata.namespace;
    const key = `${namespace}/${name}`;
    if (this.#knownServiceAccounts.has(key, maxAgeMs)) return;
    let pending = this.#pendingServiceAccounts.get(key);
    if (!pending) {
      pending = this.#lookUpOrCreateServiceAccount(namespace, name).finally(() => this.#pendingServiceAccounts.delete(key));
      this.#pendingServiceAccounts.set(key, pending);
    }
    await pending;
    this.#knownServiceAccounts.add(key);
  }

  async #lookUpOrCreateServiceAccount(namespace: string, name: string): Promise<void> {
    // An existing account is left exactly as it is, whoever made it.
    if (await this.#api.getServiceAccount(namespace, name)) return;
    const created = await this.#api.createServiceAccount(namespace, name, {
      [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
      [OWNER_LABEL]: this.#ownerId,
    });
    if (created) this.#logger?.info({ namespace, serviceAccount: name }, 'created service account');
  }
}

/** The desired object as a merge patch, with the removals' nulls and the resourceVersion precondition. */
function mergePatchBody(desired: OwnedObject, removals: Record<string, unknown>, resourceVersion: string | undefined): Record<string, unknown> {
  const body = mergeDeep(
    {
      metadata: { labels: desired.metadata.labels, annotations: desired.metadata.annotations },
      spec: desired.spec,
    },
    removals,
  );
  if (resourceVersion) (body.metadata as Record<string, unknown>).resourceVersion = resourceVersion;
  return body;
}

function mergeDeep(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] =
      value !== null && typeof value === 'object' && current !== null && typeof current === 'object'
        ? mergeDeep(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}

/** A 409, or a 404 from a guarded write: another writer got there first. */
function isRaceLost(err: unknown): boolean {
  return err instanceof TransientKubeError && (err.status === 409 || err.status === 404);
}

/**
 * True when observation stamp `a` is later than `b`. Stamps are compared as instants
 * (`…:00Z` equals `…:00.000000Z`); a missing or unreadable stamp is the oldest, so a hand-edited
 * `observed-at: manual` never freezes an entry.
 */
export function isNewer(a: string | undefined, b: string): boolean {
  return compareStamps(a, b) > 0;
}

function scopeOf(entry: OwnedObject): string {
  return entry.metadata.annotations?.[SCOPE_ANNOTATION] ?? '';
}

/** What planning reads of an entry that is not ours: its key, address, network and auto-registration group. */
function foreignEntry(entry: WorkloadEntry): ForeignEntry {
  const out: ForeignEntry = { key: entryKey(entry.metadata.namespace, entry.metadata.name) };
  const { address, network } = entry.spec ?? {};
  if (typeof address === 'string' && address !== '') out.address = address;
  if (typeof network === 'string' && network !== '') out.network = network;
  const group = entry.metadata.annotations?.[AUTO_REGISTRATION_GROUP_ANNOTATION];
  if (typeof group === 'string' && group !== '') out.autoRegistrationGroup = group;
  return out;
}
