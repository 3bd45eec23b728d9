// A running VM never leaves the mesh because of how observations interleave: the scenarios that
// did take one out, driven through the real resync and refresh paths, real Redis (queue, desired
// store, clock) and the fake API server.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { NAME_LABEL, SCOPE_ANNOTATION, type WorkloadEntry } from '../../services/model.ts';
import { refreshInstances, resyncScope } from '../../services/sync/reconcile.ts';
import { type Machine, meshMachine } from '../helpers/cli.ts';
import { pipelineWorld } from '../helpers/pipeline.ts';

const SCOPE = 'static:onprem';

describe('never drop a running VM', () => {
  const world = pipelineWorld();

  const names = (): string[] => world.pipeline.entries().map((e) => e.metadata.name).sort();

  /**
   * Two static blocks of one account, `onprem` and `second`, each listing a `web-1` (10.1.0.1 and
   * 10.2.0.1); returns the writer of the second block's inventory.
   */
  const twoScopesListingWeb1 = (): ((machines: Machine[]) => void) => {
    const other = path.join(world.ws.dir, 'other.yaml');
    world.ws.writeConfig({
      kubernetes: { kubeconfig: world.server.writeKubeconfig(world.ws.dir) },
      providers: [
        { type: 'static', name: 'onprem', account: 'dc', inventory: world.ws.inventoryFile },
        { type: 'static', name: 'second', account: 'dc', inventory: other },
      ],
    });
    world.ws.writeInventory([meshMachine('web-1', '10.1.0.1')]);
    const writeOther = (machines: Machine[]) => writeFileSync(other, stringify({ machines }));
    writeOther([meshMachine('web-1', '10.2.0.1')]);
    return writeOther;
  };

  it('a resync that listed a VM as stopped does not delete the entry an event created while it ran', async () => {
    world.ws.writeConfig({ kubernetes: { kubeconfig: world.server.writeKubeconfig(world.ws.dir) } });
    world.ws.writeInventory([meshMachine('x', '10.0.0.1', {}), meshMachine('y', '10.0.0.2')].map((m) => (m.id === 'x' ? { ...m, state: 'stopped' } : m)));
    const pipeline = await world.start();
    const deps = pipeline.deps;
    await resyncScope(deps, SCOPE);
    await pipeline.drain();
    expect(names()).toEqual(['static-y']);

    // The next resync reads the inventory (x stopped). Before it reads the cluster, x starts, its
    // event's refresh creates the entry, and only then does the resync plan.
    const result = await resyncScope(
      {
        ...deps,
        listOwned: async (keep) => {
          world.ws.writeInventory([meshMachine('x', '10.0.0.1'), meshMachine('y', '10.0.0.2')]);
          await refreshInstances(deps, [{ provider: 'static', account: 'onprem', id: 'x' }]);
          await pipeline!.drain();
          expect(names()).toEqual(['static-x', 'static-y']);
          return deps.listOwned(keep);
        },
      },
      SCOPE,
    );
    // The stale listing does plan a delete of x; it must lose against the event's newer observation.
    expect(result.plan.changes.map((c) => `${c.op} ${c.key}`)).toEqual(['delete default/static-x']);
    await pipeline.drain();
    expect(names()).toEqual(['static-x', 'static-y']);
    expect(await pipeline.failedJobs()).toBe(0);

    // The next resync sees x running and leaves everything as it is.
    const writes = world.server.writes('workloadentries');
    await resyncScope(deps, SCOPE);
    await pipeline.drain();
    expect(names()).toEqual(['static-x', 'static-y']);
    expect(world.server.writes('workloadentries')).toBe(writes);
  });

  it('a resync that listed a VM as stopped does not delete its entry when an event since found it running and changed nothing', async () => {
    world.ws.writeConfig({ kubernetes: { kubeconfig: world.server.writeKubeconfig(world.ws.dir) } });
    world.ws.writeInventory([meshMachine('x', '10.0.0.1')]);
    const pipeline = await world.start();
    const deps = pipeline.deps;
    await resyncScope(deps, SCOPE);
    await pipeline.drain();
    expect(names()).toEqual(['static-x']);

    // x stops and starts again: the listing reads it stopped, then the start's event finds the
    // entry as it should be and writes nothing; only then does the listing plan.
    world.ws.writeInventory([{ ...meshMachine('x', '10.0.0.1'), state: 'stopped' }]);
    const result = await resyncScope(
      {
        ...deps,
        listOwned: async (keep) => {
          world.ws.writeInventory([meshMachine('x', '10.0.0.1')]);
          const refresh = await refreshInstances(deps, [{ provider: 'static', account: 'onprem', id: 'x' }]);
          expect(refresh.plan.changes).toEqual([]);
          return deps.listOwned(keep);
        },
      },
      SCOPE,
    );
    expect(result.plan.changes.map((c) => `${c.op} ${c.key}`)).toEqual(['delete default/static-x']);
    await pipeline.drain();
    expect(names()).toEqual(['static-x']);
  });

  it('a slow listing does not bring back an entry for a VM an event saw stopped since', async () => {
    world.ws.writeConfig({ kubernetes: { kubeconfig: world.server.writeKubeconfig(world.ws.dir) } });
    world.ws.writeInventory([meshMachine('x', '10.0.0.1')]);
    const pipeline = await world.start();
    const deps = pipeline.deps;
    // The listing reads x running; x stops before the listing plans, and the stop's event finds
    // no entry to remove.
    const result = await resyncScope(
      {
        ...deps,
        listOwned: async (keep) => {
          world.ws.writeInventory([{ ...meshMachine('x', '10.0.0.1'), state: 'stopped' }]);
          const refresh = await refreshInstances(deps, [{ provider: 'static', account: 'onprem', id: 'x' }]);
          expect(refresh.plan.changes).toEqual([]);
          return deps.listOwned(keep);
        },
      },
      SCOPE,
    );
    expect(result.plan.changes.map((c) => `${c.op} ${c.key}`)).toEqual(['upsert default/static-x']);
    await pipeline.drain();
    expect(names()).toEqual([]);
  });

  it.each(['fieldSelector', 'labelSelector'] as const)('a refresh behind an API server that ignores %s deletes only the entry of its own reference', async (ignored) => {
    if (ignored === 'fieldSelector') world.server.ignoreFieldSelector = true;
    else world.server.ignoreLabelSelector = true;
    world.ws.writeConfig({ kubernetes: { kubeconfig: world.server.writeKubeconfig(world.ws.dir) } });
    const fleet = Array.from({ length: 6 }, (_, i) => meshMachine(`vm-${i}`, `10.0.0.${i + 1}`));
    world.ws.writeInventory(fleet);
    const pipeline = await world.start();
    await resyncScope(pipeline.deps, SCOPE);
    await pipeline.drain();
    expect(names()).toHaveLength(6);

    // vm-0 is terminated (gone from the inventory), vm-1 stopped; an event names each.
    world.ws.writeInventory([{ ...fleet[1]!, state: 'stopped' }, ...fleet.slice(2)]);
    const refs = ['vm-0', 'vm-1'].map((id) => ({ provider: 'static' as const, account: 'onprem', id }));
    const result = await refreshInstances(pipeline.deps, refs);
    expect(result.plan.changes.map((c) => `${c.op} ${c.key}`)).toEqual(['delete default/static-vm-0', 'delete default/static-vm-1']);
    await pipeline.drain();
    expect(names()).toEqual(['static-vm-2', 'static-vm-3', 'static-vm-4', 'static-vm-5']);

    // An event for a running VM writes nothing and deletes nothing, whatever the list returned.
    const writes = world.server.writes('workloadentries');
    const running = await refreshInstances(pipeline.deps, [{ provider: 'static', account: 'onprem', id: 'vm-3' }]);
    expect(running.plan.changes).toEqual([]);
    await pipeline.drain();
    expect(world.server.writes('workloadentries')).toBe(writes);
    expect(names()).toHaveLength(4);
  });

  it('entries an earlier version wrote without the name label: not rewritten by a resync, found by a refresh to update or delete them', async () => {
    world.ws.writeConfig({ kubernetes: { kubeconfig: world.server.writeKubeconfig(world.ws.dir) } });
    const fleet = Array.from({ length: 4 }, (_, i) => meshMachine(`vm-${i}`, `10.0.0.${i + 1}`));
    world.ws.writeInventory(fleet);
    const pipeline = await world.start();
    await resyncScope(pipeline.deps, SCOPE);
    await pipeline.drain();
    // As an earlier version wrote them.
    for (const e of pipeline.entries()) {
      const { [NAME_LABEL]: label, ...labels } = e.metadata.labels;
      expect(label).toBe(e.metadata.name);
      world.server.put({ ...e, metadata: { ...e.metadata, labels } });
    }
    const unlabelled = (): string[] => pipeline!.entries().filter((e) => e.metadata.labels[NAME_LABEL] === undefined).map((e) => e.metadata.name).sort();
    expect(unlabelled()).toEqual(['static-vm-0', 'static-vm-1', 'static-vm-2', 'static-vm-3']);
    const writes = world.server.writes('workloadentries');
    await resyncScope(pipeline.deps, SCOPE);
    await pipeline.drain();
    expect(world.server.writes('workloadentries')).toBe(writes);

    // vm-0 gets a new address, vm-1 is terminated, vm-2 changes nothing: one event each.
    world.ws.writeInventory([meshMachine('vm-0', '10.0.9.1'), fleet[2]!, fleet[3]!]);
    const refs = ['vm-0', 'vm-1', 'vm-2'].map((id) => ({ provider: 'static' as const, account: 'onprem', id }));
    const result = await refreshInstances(pipeline.deps, refs);
    expect(result.plan.changes.map((c) => `${c.op} ${c.key}`).sort()).toEqual(['delete default/static-vm-1', 'upsert default/static-vm-0', 'upsert default/static-vm-2']);
    await pipeline.drain();
    expect(names()).toEqual(['static-vm-0', 'static-vm-2', 'static-vm-3']);
    expect(pipeline.entries().find((e) => e.metadata.name === 'static-vm-0')?.spec.address).toBe('10.0.9.1');
    // The entry that changed has its label now; the one that did not is left as it was.
    expect(unlabelled()).toEqual(['static-vm-2', 'static-vm-3']);
    expect(await pipeline.failedJobs()).toBe(0);
  });

  it('two scopes listing one name: one conflict, the first owner keeps the entry, 0 writes over 5 resyncs, no flapping', async () => {
    const writeOther = twoScopesListingWeb1();
    const pipeline = await world.start();
    const deps = pipeline.deps;

    await resyncScope(deps, 'static:onprem');
    await pipeline.drain();
    const first = pipeline.entries()[0] as WorkloadEntry;
    expect(first.spec.address).toBe('10.1.0.1');
    expect(first.metadata.annotations[SCOPE_ANNOTATION]).toBe('static:onprem');

    const writes = world.server.writes('workloadentries');
    for (let round = 0; round < 5; round++) {
      const second = await resyncScope(deps, 'static:second');
      expect(second.plan.changes).toEqual([]);
      expect(second.plan.conflicts.map((c) => `${c.kind} ${c.key} ${c.scopeKey}→${c.ownerScopeKey}`)).toEqual([
        'other-scope default/static-web-1 static:second→static:onprem',
      ]);
      const owner = await resyncScope(deps, 'static:onprem');
      expect(owner.plan.changes).toEqual([]);
      await pipeline.drain();
    }
    expect(world.server.writes('workloadentries')).toBe(writes);
    expect((pipeline.entries()[0] as WorkloadEntry).spec.address).toBe('10.1.0.1');

    // The second scope's VM stops: its scope must not delete the entry of the first.
    writeOther([{ ...meshMachine('web-1', '10.2.0.1'), state: 'stopped' }]);
    const stopped = await resyncScope(deps, 'static:second');
    expect(stopped.plan.changes).toEqual([]);
    await pipeline.drain();
    expect(names()).toEqual(['static-web-1']);
    expect(world.server.writes('workloadentries')).toBe(writes);
  });

  it('the writer refuses a change decided for another scope, even when the plan was made before the other scope took the name', async () => {
    twoScopesListingWeb1();
    const pipeline = await world.start();
    const replica = pipeline.replicas[0]!;
    // Both scopes plan against an empty cluster; each enqueues a create of the same name.
    let hold: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (hold = resolve));
    const second = resyncScope({ ...replica.deps, enqueue: async (changes) => { await held; return replica.deps.enqueue(changes); } }, 'static:second');
    await resyncScope(replica.deps, 'static:onprem');
    await pipeline.drain();
    hold!();
    await second;
    await pipeline.drain();
    const entries = pipeline.entries();
    expect(entries).toHaveLength(1);
    expect(entries[0]!.metadata.annotations[SCOPE_ANNOTATION]).toBe('static:onprem');
    expect(entries[0]!.spec.address).toBe('10.1.0.1');
    expect(await pipeline.failedJobs()).toBe(0);
  });

  it('a hand-edited, unreadable observed-at stamp counts as the oldest: the entry is brought back in line', async () => {
    world.ws.writeConfig({ kubernetes: { kubeconfig: world.server.writeKubeconfig(world.ws.dir) } });
    world.ws.writeInventory([meshMachine('x', '10.0.0.1')]);
    const pipeline = await world.start();
    await resyncScope(pipeline.deps, SCOPE);
    await pipeline.drain();
    const live = world.server.get('workloadentries', 'default', 'static-x') as unknown as WorkloadEntry;
    live.metadata.annotations['vm-mesh-sync.io/observed-at'] = 'manual';
    live.spec.address = '10.9.9.9';
    world.server.put(live as never);

    await resyncScope(pipeline.deps, SCOPE);
    await pipeline.drain();
    expect((world.server.get('workloadentries', 'default', 'static-x') as unknown as WorkloadEntry).spec.address).toBe('10.0.0.1');

    // And a delete gets through it too.
    const manual = world.server.get('workloadentries', 'default', 'static-x') as unknown as WorkloadEntry;
    manual.metadata.annotations['vm-mesh-sync.io/observed-at'] = 'manual';
    world.server.put(manual as never);
    world.ws.writeInventory([{ ...meshMachine('x', '10.0.0.1'), state: 'terminated' }]);
    await resyncScope(pipeline.deps, SCOPE);
    await pipeline.drain();
    expect(names()).toEqual([]);
  });
});
