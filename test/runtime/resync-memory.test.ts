// What a resync holds while its changes go out: the owned entries it planned against are garbage
// by then, so a resync that updates every entry of a large scope does not hold them through the
// enqueue (real resync path, real Redis, the fake API server).
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { WorkloadEntry } from '../../services/model.ts';
import { resyncScope } from '../../services/sync/reconcile.ts';
import { meshMachine } from '../helpers/cli.ts';
import { pipelineWorld } from '../helpers/pipeline.ts';

const SCOPE = 'static:onprem';

/** A full collection, as `--expose-gc` gives it, without starting the test process with the flag. */
function collector(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

describe('what a resync holds', () => {
  const world = pipelineWorld();

  it('lets go of the owned entries it planned against before it enqueues the changes', async () => {
    const gc = collector();
    const machines = (prefix: string) => Array.from({ length: 50 }, (_, i) => meshMachine(`vm-${i}`, `${prefix}.${i + 1}`));
    world.ws.writeConfig({ kubernetes: { kubeconfig: world.server.writeKubeconfig(world.ws.dir) } });
    world.ws.writeInventory(machines('10.0.0'));
    const pipeline = await world.start();
    const deps = pipeline.deps;
    await resyncScope(deps, SCOPE);
    await pipeline.drain();

    // Every machine moves: the next resync updates every entry, holding each owned one as read.
    world.ws.writeInventory(machines('10.0.1'));
    let listing: WeakRef<WorkloadEntry[]> | undefined;
    let heldWhileEnqueueing: boolean | undefined;
    const result = await resyncScope(
      {
        ...deps,
        listOwned: async (observed) => {
          const owned = await deps.listOwned(observed);
          listing = new WeakRef(owned.entries);
          return owned;
        },
        enqueue: async (changes) => {
          // A turn of the event loop first: a WeakRef's target is kept until the job that made it ends.
          await sleep(0);
          gc();
          heldWhileEnqueueing = listing?.deref() !== undefined;
          return deps.enqueue(changes);
        },
      },
      SCOPE,
    );
    expect(result.plan.summary.update).toBe(50);
    expect(result.owned).toBe(50);
    expect(listing).toBeDefined();
    expect(heldWhileEnqueueing).toBe(false);
    await pipeline.drain();
    expect(pipeline.entries().map((e) => e.spec.address).sort()).toEqual(machines('10.0.1').map((m) => m.privateIPv4).sort());
  });
});
