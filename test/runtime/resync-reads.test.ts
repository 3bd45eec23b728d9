// The cluster reads of a resync that overlap its other work: the entries that are not ours are read
// while the cloud listing starts (mapping waits for them at its first page), and the mesh service
// objects while the owned entries are listed. Real resync path, static provider, real Redis, the
// fake API server; the reads are held back by the test to fix the order they end in.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { listingPages } from '../../providers/paging.ts';
import type { Provider } from '../../providers/provider.ts';
import type { KubeObject } from '../fakes/kube-api-server.ts';
import { resyncScope, type ReconcileDeps } from '../../services/sync/reconcile.ts';
import { meshMachine } from '../helpers/cli.ts';
import { pipelineWorld } from '../helpers/pipeline.ts';

const SCOPE = 'static:onprem';

/** A promise and the function that settles it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** The provider, with `onList` called when a listing starts and `onPage` when each page has been mapped. */
function watched(provider: Provider, onList: () => void, onPage: () => void): Provider {
  return {
    kind: provider.kind,
    name: provider.name,
    scopes: () => provider.scopes(),
    list: (scope, signal) => provider.list(scope, signal),
    listPages: async (scope, signal, onPageOf) => {
      onList();
      return listingPages(provider, scope, signal, async (instances) => {
        await onPageOf(instances);
        onPage();
      });
    },
    describe: (refs, signal) => provider.describe(refs, signal),
  };
}

/** The entry istiod makes for a VM at `address` that auto-registered. */
function autoRegistered(address: string): KubeObject {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name: `postgres-${address}`, namespace: 'default', labels: { app: 'postgres' }, annotations: { 'istio.io/autoRegistrationGroup': 'postgres' } },
    spec: { address, labels: { app: 'postgres' } },
  } as unknown as KubeObject;
}

describe('the reads of a resync', () => {
  const world = pipelineWorld();

  async function started(): Promise<ReconcileDeps> {
    world.ws.writeConfig({ kubernetes: { kubeconfig: world.server.writeKubeconfig(world.ws.dir) } });
    world.ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11')]);
    world.server.put(autoRegistered('10.0.1.10'));
    return (await world.start()).deps;
  }

  it('reads the entries that are not ours while the listing starts, and maps its first page with them', async () => {
    const deps = await started();
    const events: string[] = [];
    const listed = gate();
    const result = await resyncScope({
      ...deps,
      providers: deps.providers.map((p) => watched(p, () => (events.push('listing started'), listed.open()), () => events.push('page mapped'))),
      // Answers once the listing has started (or after a while, for a resync that waits for it first).
      listForeign: async () => {
        await Promise.race([listed.opened, sleep(3000)]);
        const foreign = await deps.listForeign();
        events.push('foreign read');
        return foreign;
      },
    }, SCOPE);
    expect(events).toEqual(['listing started', 'foreign read', 'page mapped']);
    expect(result.observation.skips.map((s) => [s.instance.id, s.code])).toEqual([['pg-1', 'VMS_SKIP_AUTO_REGISTERED']]);
    expect(result.plan.changes.map((c) => `${c.op} ${c.key}`)).toEqual(['upsert default/static-pg-2']);
  });

  it('fails with the error of the entries that are not ours, and maps and enqueues nothing', async () => {
    const deps = await started();
    let pagesMapped = 0;
    let enqueued = 0;
    const refused = new Error('workloadentries is forbidden');
    const resync = resyncScope({
      ...deps,
      providers: deps.providers.map((p) => watched(p, () => undefined, () => pagesMapped++)),
      listForeign: () => Promise.reject(refused),
      enqueue: async (changes) => (enqueued += changes.length),
    }, SCOPE);
    await expect(resync).rejects.toBe(refused);
    expect(pagesMapped).toBe(0);
    expect(enqueued).toBe(0);
  });

  it('reads the mesh service objects while the owned entries are listed', async () => {
    const deps = await started();
    const events: string[] = [];
    const owned = gate();
    const result = await resyncScope({
      ...deps,
      listOwned: async (observed) => {
        events.push('owned asked');
        owned.open();
        const listing = await deps.listOwned(observed);
        events.push('owned read');
        return listing;
      },
      // Asked for once the owned listing has been (at once for a resync that lists them one after the other).
      listMeshServiceObjects: async () => {
        await owned.opened;
        events.push('objects asked');
        return deps.listMeshServiceObjects();
      },
    }, SCOPE);
    expect(events.slice(0, 2)).toEqual(['owned asked', 'objects asked']);
    expect(result.plan.changes.map((c) => `${c.op} ${c.key}`)).toEqual(['upsert default/static-pg-2']);
  });

  it('fails with the objects’ error only once the owned listing has ended', async () => {
    const deps = await started();
    const events: string[] = [];
    const refused = new Error('services is forbidden');
    const resync = resyncScope({
      ...deps,
      listOwned: async (observed) => {
        const listing = await deps.listOwned(observed);
        events.push('owned read');
        return listing;
      },
      listMeshServiceObjects: () => Promise.reject(refused),
    }, SCOPE).catch((err: unknown) => {
      events.push('resync failed');
      throw err;
    });
    await expect(resync).rejects.toBe(refused);
    expect(events).toEqual(['owned read', 'resync failed']);
  });
});
