// From providers to desired entries: list every scope, map every instance. The only I/O here is
// the providers' own; a provider that throws or times out becomes an incomplete listing, so a
// cloud API outage can never turn into deletes.
import type { MappingConfig } from '../../config/schema.ts';
import type { Provider } from '../../providers/provider.ts';
import { mapInstances } from '../mapping/index.ts';
import type { Listing, Scope, Skip, WorkloadEntry } from '../model.ts';

/** What one scope looks like now: its listing, the entries it wants and the instances it skipped. */
export interface ScopeObservation {
  scope: Scope;
  provider: Provider;
  listing: Listing;
  entries: WorkloadEntry[];
  skips: Skip[];
  /** How long the listing took, in milliseconds. */
  durationMs: number;
}

/** How to observe. */
export interface ObserveOptions {
  mapping: MappingConfig;
  ownerId: string;
  /** A listing that takes longer is abandoned and counts as incomplete. */
  timeoutMs: number;
  /** Scopes listed at once. */
  concurrency?: number;
  /** Only these scope keys (all when absent). */
  only?: ReadonlySet<string>;
}

/** Lists one scope; never throws: failures and time-outs come back as an incomplete listing. */
export async function listScope(provider: Provider, scope: Scope, timeoutMs: number): Promise<Listing> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const listing = await Promise.race([
      provider.list(scope, signal),
      new Promise<never>((_, reject) => {
        signal.addEventListener('abort', () => reject(new Error(`listing took longer than ${timeoutMs} ms`)), { once: true });
      }),
    ]);
    return listing;
  } catch (err) {
    return {
      scope,
      instances: [],
      complete: false,
      problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: `listing ${scope.key} failed: ${(err as Error).message}` }],
    };
  }
}

/** Maps a listing to the entries its scope wants. */
export function mapListing(provider: Provider, listing: Listing, mapping: MappingConfig, ownerId: string, durationMs = 0): ScopeObservation {
  const { entries, skips } = mapInstances(listing.instances, mapping, { ownerId, scopeKey: listing.scope.key });
  return { scope: listing.scope, provider, listing, entries, skips, durationMs };
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
      const started = performance.now();
      const listing = await listScope(provider, scope, options.timeoutMs);
      results[i] = mapListing(provider, listing, options.mapping, options.ownerId, performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, work.length) }, runOne));
  return results;
}
