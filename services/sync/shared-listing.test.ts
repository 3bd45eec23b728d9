// shareListings over every schedule of calls and listing completions (fast-check's scheduler):
// each call is answered by a listing that started after it, one listing runs at a time, calls made
// while one runs share the next, and each entry is held as sameAsDesired holds it for the
// observations of the calls sharing the listing (or not at all).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { WorkloadEntry } from '../model.ts';
import { entry, scope } from '../planning/fixtures.ts';
import { type ListingFor, type OwnedListing, shareListings } from './shared-listing.ts';

const T = '2025-01-01T00:00:00.000Z';

/** The entry of scope `scopeKey` as mapping wants it and as the cluster holds it. */
const desiredOf = (scopeKey: string): WorkloadEntry => entry(`vm-${scopeKey.replace(':', '-')}`, { scope: scopeKey, observedAt: T });
const observationOf = (scopeKey: string): ListingFor => ({ scope: scope(scopeKey), entries: [desiredOf(scopeKey)], skips: [] });
const held = (entries: ReadonlyArray<WorkloadEntry | undefined>): WorkloadEntry[] => entries.filter((e) => e !== undefined);

describe('shareListings', () => {
  it('answers each call with a listing started after it; one at a time; calls made during one share the next', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 1, max: 8 }), fc.boolean(), async (s, calls, otherConfigured) => {
        let tick = 0;
        let running = 0;
        const started: number[] = [];
        /** The listing each answer came from. */
        const listingOf = new WeakMap<WorkloadEntry[], number>();
        // The scope nobody observed is configured (its own resync plans it) or not (its entry is an orphan).
        const configured = [...Array.from({ length: calls }, (_, i) => `static:s${i}`), ...(otherConfigured ? ['static:other'] : [])];
        const share = shareListings(async (keep) => {
          expect(running).toBe(0);
          running++;
          const n = started.push(tick++) - 1;
          // The cluster holds every scope's entry as wanted, and one of a scope nobody observed.
          const live = [...Array.from({ length: calls }, (_, i) => structuredClone(desiredOf(`static:s${i}`))), desiredOf('static:other')];
          await s.schedule(Promise.resolve(), `listing ${n} ends`);
          running--;
          const out = held(live.map(keep));
          listingOf.set(out, n);
          return { entries: out, listed: live.length };
        }, configured);
        const answers: Array<{ at: number; owned: OwnedListing }> = [];
        const done = Promise.all(
          Array.from({ length: calls }, (_, i) =>
            s.schedule(Promise.resolve(), `call ${i}`).then(async () => {
              const at = tick++;
              const observed = observationOf(`static:s${i}`);
              const owned = await share(observed);
              answers[i] = { at, owned };
              // This call's own entry is held as its desired one; the unobserved scope's as a
              // stand-in, or not at all when that scope is configured. Every entry is counted.
              expect(owned.entries.find((e) => e.metadata.name === observed.entries[0]!.metadata.name)).toBe(observed.entries[0]);
              const other = owned.entries.find((e) => e.metadata.name === 'vm-static-other');
              if (otherConfigured) expect(other).toBeUndefined();
              else expect(other!.spec).toEqual({ address: '' });
              expect(owned.listed).toBe(calls + 1);
            }),
          ),
        );
        await s.waitFor(done);
        expect(answers).toHaveLength(calls);
        for (const { at, owned } of answers) expect(started[listingOf.get(owned.entries)!]).toBeGreaterThan(at);
        // No listing without a call waiting for it, and no more than one beyond the first per call made during one.
        expect(started.length).toBeLessThanOrEqual(calls);
        expect(new Set(answers.map((a) => listingOf.get(a.owned.entries))).size).toBe(started.length);
      }),
      { numRuns: 200 },
    );
  });

  it('shares one listing among the calls made while another ran', async () => {
    const releases: Array<() => void> = [];
    let listings = 0;
    const share = shareListings(async (keep) => {
      listings++;
      await new Promise<void>((resolve) => releases.push(resolve));
      return { entries: held([desiredOf('static:a')].map(keep)), listed: 1 };
    });
    const first = share(observationOf('static:a'));
    const rest = ['static:b', 'static:c', 'static:d'].map((k) => share(observationOf(k)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(listings).toBe(1);
    releases.shift()!();
    await first;
    // The three calls made while the first listing ran share the second.
    await new Promise((resolve) => setImmediate(resolve));
    expect(listings).toBe(2);
    releases.shift()!();
    const owned = await Promise.all(rest);
    expect(owned[0]).toBe(owned[1]);
    expect(owned[1]).toBe(owned[2]);
    expect(listings).toBe(2);
  });

  it('a failed listing fails the calls that shared it, and the next calls get a listing of their own', async () => {
    let fail = true;
    const share = shareListings(async (keep) => {
      if (fail) throw new Error('page 3 of owned entries: 503');
      return { entries: held([desiredOf('static:a')].map(keep)), listed: 1 };
    });
    await expect(share(observationOf('static:a'))).rejects.toThrow('503');
    fail = false;
    expect((await share(observationOf('static:a'))).entries).toHaveLength(1);
  });
});
