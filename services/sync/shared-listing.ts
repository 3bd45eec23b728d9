// The listing of owned entries that resyncs plan against, shared by the resyncs that ask for it
// at about the same time. Every resync needs every owned entry (another scope's name is a
// conflict, and a mesh service spans scopes), so without sharing, a fleet spread over many scopes
// would list the whole cluster once per scope: twenty scopes, twenty listings of everything.
import type { WorkloadEntry } from '../model.ts';
import { runSliced } from '../slices.ts';
import { type ObservedScope, sameAsDesired } from './plan-scopes.ts';

/** What a resync hands over for its listing: its scope, desired entries and skips (see sameAsDesired). */
export type ListingFor = Pick<ObservedScope, 'entries' | 'scope' | 'skips'>;

/**
 * Lists every owned entry, each passed through `keep` as it is read, which gives what to hold of it
 * or undefined for nothing (see listingOf).
 */
export type ListOwned = (keep: (entry: WorkloadEntry) => WorkloadEntry | undefined) => Promise<OwnedListing>;

/** A listing of owned entries as a resync plans against it. */
export interface OwnedListing {
  /** What is held of the entries read (see sameAsDesired): stand-ins, and none of those planning passes over. */
  entries: WorkloadEntry[];
  /** How many owned entries the listing read. */
  listed: number;
}

/** What lists owned entries (Writer.listOwned): each through `keep`, every one read counted in `read`. */
interface OwnedEntries {
  listOwned(keep: (entry: WorkloadEntry) => WorkloadEntry | undefined, read: { entries: number }): Promise<WorkloadEntry[]>;
}

/** The ListOwned of a writer; `onListed` is told how many entries each listing read. */
export function listingOf(writer: OwnedEntries, onListed?: (entries: number) => void): ListOwned {
  return async (keep) => {
    const read = { entries: 0 };
    const entries = await writer.listOwned(keep, read);
    onListed?.(read.entries);
    return { entries, listed: read.entries };
  };
}

interface Batch {
  observed: ListingFor[];
  done: Promise<OwnedListing>;
  resolve: (owned: OwnedListing) => void;
  reject: (err: unknown) => void;
}

/**
 * Returns a listing function for resyncs: a call is answered by a listing that starts after the
 * call was made (a resync must not plan against a cluster read before its own observation was
 * confirmed), and the calls made while a listing runs share the next one. Each entry of a scope
 * in a shared listing is held as sameAsDesired holds it for that scope's observation, so every
 * resync of the batch plans exactly as it would against a listing of its own. `configuredScopes`
 * are those the resyncs' plans know as configured (see sameAsDesired).
 */
export function shareListings(list: ListOwned, configuredScopes: readonly string[] = []): (observed: ListingFor) => Promise<OwnedListing> {
  let running = false;
  let next: Batch | undefined;

  const start = (batch: Batch): void => {
    running = true;
    next = undefined;
    void (async () => {
      try {
        const keep = await runSliced(sameAsDesired(batch.observed, configuredScopes));
        batch.resolve(await list(keep));
      } catch (err) {
        batch.reject(err);
      } finally {
        running = false;
        if (next) start(next);
      }
    })();
  };

  return (observed) => {
    if (!next) {
      let resolve!: Batch['resolve'];
      let reject!: Batch['reject'];
      const done = new Promise<OwnedListing>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      next = { observed: [], done, resolve, reject };
    }
    const batch = next;
    batch.observed.push(observed);
    if (!running) start(batch);
    return batch.done;
  };
}
