// Listings read page by page (Provider.listPages), and the whole listing made of them.
import type { ErrorCode } from '../services/errors.ts';
import type { Instance, Listing, Scope } from '../services/model.ts';
import type { PagedListing, Provider } from './provider.ts';

/** A listing that broke off: nothing of it may be used, and the scope deletes nothing. */
export function brokenListing(scope: Scope, message: string, at?: string, code: ErrorCode = 'VMS_ERR_PROVIDER_FAILED'): PagedListing {
  return { scope, complete: false, problems: [{ code, message, ...(at === undefined ? {} : { at }) }], failed: true };
}

/** The whole listing of a page-by-page one; a listing that broke off gives no instances. */
export async function wholeListing(listPages: (onPage: (instances: Instance[]) => Promise<void>) => Promise<PagedListing>): Promise<Listing> {
  const instances: Instance[] = [];
  const { failed, ...rest } = await listPages(async (page) => {
    for (const instance of page) instances.push(instance);
  });
  return { ...rest, instances: failed ? [] : instances };
}

/** Any provider's listing page by page: its listPages, or the whole of its list() as one page. */
export async function listingPages(provider: Pick<Provider, 'list' | 'listPages'>, scope: Scope, signal: AbortSignal | undefined, onPage: (instances: Instance[]) => Promise<void>): Promise<PagedListing> {
  if (provider.listPages) return provider.listPages(scope, signal, onPage);
  const { instances, ...rest } = await provider.list(scope, signal);
  await onPage(instances);
  return { ...rest, failed: false };
}
