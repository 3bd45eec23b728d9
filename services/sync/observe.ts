// From providers to desired entries: list every scope, map every instance. The only I/O here is
// the providers' own and the clock; a provider that throws or times out becomes an incomplete
// listing, so a cloud API outage can never turn into deletes.
import type { Config } from '../../config/schema.ts';
import { brokenListing, listingPages } from '../../providers/paging.ts';
import type { PagedListing, Provider } from '../../providers/provider.ts';
import { type AutoRegisteredIndex, ListingMapper, type MapContext, namespacePolicy, type NamespacePolicy } from '../mapping/index.ts';
import { mapLimited } from '../concurrency.ts';
import type { Instance, Listing, Scope, Skip, WorkloadEntry } from '../model.ts';
import { runSliced } from '../slices.ts';
import type { Clock } from '../stamp.ts';

/** What one scope looks like now: its listing, the entries it wants and the instances it skipped. */
export interface ScopeObservation {
  scope: Scope;
  provider: Provider;
  /** Whether the listing was whole, and its problems; its instances are not kept once mapped. */
  listing: Omit<Listing, 'instances'>;
  /** Instances the listing returned. */
  listed: number;
  entries: WorkloadEntry[];
  skips: Skip[];
  /** The stamp taken when the listing started: every entry, and every delete, of this observation carries it. */
  observedAt: string;
  /** Where the scope's entries may live. */
  namespaces: NamespacePolicy;
  /** How long the listing took, in milliseconds. */
  durationMs: number;
}

/** The parts of the config that decide how a scope's instances are mapped. */
export type MappingRules = Pick<Config, 'ownerId' | 'mapping' | 'providers'>;

/** How to observe. */
export interface ObserveOptions {
  config: MappingRules;
  /** The one clock observations are stamped by. */
  clock: Clock;
  /** A listing that takes longer is abandoned and counts as incomplete. */
  timeoutMs: number;
  /** Scopes listed at once. */
  concurrency?: number;
  /** Only these scope keys (all when absent). */
  only?: ReadonlySet<string>;
  /** The entries istiod auto-registered (indexAutoRegistered of Writer.listForeign); absent: none known. */
  autoRegistered?: AutoRegisteredIndex;
}

/** The namespace policy of a scope: the global list and that of the scope's provider block. */
export function scopeNamespaces(config: MappingRules, scope: Scope): NamespacePolicy {
  const block = config.providers.find((p) => p.name === scope.source && p.type === scope.provider);
  return namespacePolicy(config.mapping.namespace, block?.namespaces);
}

/** The mapping context of an observation of `scope` stamped `observedAt`, against the auto-registered entries known. */
export function mapContext(
  config: MappingRules,
  scope: Scope,
  observedAt: string,
  autoRegistered?: AutoRegisteredIndex,
): Required<Omit<MapContext, 'shared' | 'autoRegistered'>> & Pick<MapContext, 'autoRegistered'> {
  return { ownerId: config.ownerId, scopeKey: scope.key, observedAt, namespaces: scopeNamespaces(config, scope), ...(autoRegistered ? { autoRegistered } : {}) };
}

/**
 * Lists one scope, handing each page to `onPage` as it comes (the whole listing at once from a
 * provider that does not list page by page); never throws: failures and time-outs come back as a
 * listing that `failed`, whose pages must not be used.
 */
export async function listScopePages(provider: Provider, scope: Scope, timeoutMs: number, onPage: (instances: Instance[]) => Promise<void>): Promise<PagedListing> {
  // A timer of our own, cleared as soon as the listing ends: a pending time-out would keep this
  // listing reachable until it fired.
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`listing took longer than ${timeoutMs} ms`);
      controller.abort(err);
      reject(err);
    }, timeoutMs);
  });
  try {
    return await Promise.race([listingPages(provider, scope, controller.signal, onPage), timedOut]);
  } catch (err) {
    return brokenListing(scope, `listing ${scope.key} failed: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Stamps, lists and maps one scope, each page as it arrives, in slices that leave the event loop
 * free. The stamp is taken before the first page is asked for, so whatever the listing decides is
 * no newer than the oldest page it read. A listing that failed gives no entries.
 */
export async function observeScope(
  provider: Provider,
  scope: Scope,
  options: Pick<ObserveOptions, 'config' | 'clock' | 'timeoutMs' | 'autoRegistered'>,
): Promise<ScopeObservation> {
  const observedAt = await options.clock();
  const started = performance.now();
  const ctx = mapContext(options.config, scope, observedAt, options.autoRegistered);
  const mapper = new ListingMapper(options.config.mapping, ctx);
  const { failed, ...listing } = await listScopePages(provider, scope, options.timeoutMs, (page) => runSliced(mapper.add(page)));
  const { entries, skips } = failed ? { entries: [], skips: [] } : mapper.finish();
  return {
    scope,
    provider,
    listing,
    listed: failed ? 0 : mapper.instances,
    entries,
    skips,
    observedAt,
    namespaces: ctx.namespaces,
    durationMs: performance.now() - started,
  };
}

/** Lists and maps every scope of every provider, a few at a time. */
export async function observeScopes(providers: readonly Provider[], options: ObserveOptions): Promise<ScopeObservation[]> {
  const work: Array<{ provider: Provider; scope: Scope }> = [];
  for (const provider of providers) {
    for (const scope of provider.scopes()) {
      if (!options.only || options.only.has(scope.key)) work.push({ provider, scope });
    }
  }
  return mapLimited(work, options.concurrency ?? 4, ({ provider, scope }) => observeScope(provider, scope, options));
}
