// From providers to desired entries: list every scope, map every instance. The only I/O here is
// the providers' own and the clock; a provider that throws or times out becomes an incomplete
// listing, so a cloud API outage can never turn into deletes.
import type { Config } from '../../config/schema.ts';
import type { Provider } from '../../providers/provider.ts';
import { type MapContext, mapInstancesSliced, namespacePolicy, type NamespacePolicy } from '../mapping/index.ts';
import type { Listing, Scope, Skip, WorkloadEntry } from '../model.ts';
import { runSliced } from '../slices.ts';
import type { Clock } from '../stamp.ts';

/** What one scope looks like now: its listing, the entries it wants and the instances it skipped. */
export interface ScopeObservation {
  scope: Scope;
  provider: Provider;
  listing: Listing;
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
}

/** The namespace policy of a scope: the global list and that of the scope's provider block. */
export function scopeNamespaces(config: MappingRules, scope: Scope): NamespacePolicy {
  const block = config.providers.find((p) => p.name === scope.source && p.type === scope.provider);
  return namespacePolicy(config.mapping.namespace, block?.namespaces);
}

/** The mapping context of an observation of `scope` stamped `observedAt`. */
export function mapContext(config: MappingRules, scope: Scope, observedAt: string): Required<Omit<MapContext, 'shared'>> {
  return { ownerId: config.ownerId, scopeKey: scope.key, observedAt, namespaces: scopeNamespaces(config, scope) };
}

/** Lists one scope; never throws: failures and time-outs come back as an incomplete listing. */
export async function listScope(provider: Provider, scope: Scope, timeoutMs: number): Promise<Listing> {
  // A timer of our own, cleared as soon as the listing ends: a pending time-out would keep this
  // listing (a scope's every instance) reachable until it fired.
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
    return await Promise.race([provider.list(scope, controller.signal), timedOut]);
  } catch (err) {
    return {
      scope,
      instances: [],
      complete: false,
      problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: `listing ${scope.key} failed: ${(err as Error).message}` }],
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Maps a listing whose observation started at `observedAt`, in slices that leave the event loop free. */
export async function mapListing(provider: Provider, listing: Listing, config: MappingRules, observedAt: string, durationMs = 0): Promise<ScopeObservation> {
  const ctx = mapContext(config, listing.scope, observedAt);
  const { entries, skips } = await runSliced(mapInstancesSliced(listing.instances, config.mapping, ctx));
  return { scope: listing.scope, provider, listing, entries, skips, observedAt, namespaces: ctx.namespaces, durationMs };
}

/**
 * Stamps, lists and maps one scope. The stamp is taken before the first page is asked for, so
 * whatever the listing decides is no newer than the oldest page it read.
 */
export async function observeScope(provider: Provider, scope: Scope, options: Pick<ObserveOptions, 'config' | 'clock' | 'timeoutMs'>): Promise<ScopeObservation> {
  const observedAt = await options.clock();
  const started = performance.now();
  const listing = await listScope(provider, scope, options.timeoutMs);
  return mapListing(provider, listing, options.config, observedAt, performance.now() - started);
}

/** Lists and maps every scope of every provider, a few at a time. */
export async function observeScopes(providers: readonly Provider[], options: ObserveOptions): Promise<ScopeObservation[]> {
  const work: Array<{ provider: Provider; scope: Scope }> = [];
  for (const provider of providers) {
    for (const scope of provider.scopes()) {
      if (!options.only || options.only.has(scope.key)) work.push({ provider, scope });
    }
  }
  const results: ScopeObservation[] = new Array(work.length);
  let next = 0;
  const runOne = async (): Promise<void> => {
    while (next < work.length) {
      const i = next++;
      const { provider, scope } = work[i]!;
      results[i] = await observeScope(provider, scope, options);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, work.length) }, runOne));
  return results;
}
