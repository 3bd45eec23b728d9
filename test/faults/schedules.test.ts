// A model-based property over schedules: VMs start, stop and lose or regain their tag; listings
// read their pages at different moments while other things happen; events are delivered late,
// twice and out of order, through either of two replicas; resyncs die while they enqueue. Everything
// runs through the real resync and refresh paths, the real queue and writers on real Redis, and
// the fake API server. fast-check prints the seed and path of a failing schedule.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Provider } from '../../providers/provider.ts';
import { type Described, type Instance, type InstanceRef, type Listing, SCOPE_ANNOTATION, type Scope, type WorkloadEntry } from '../../services/model.ts';
import { refreshInstances, resyncScope } from '../../services/sync/reconcile.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { Workspace } from '../helpers/cli.ts';
import { Pipeline } from '../helpers/pipeline.ts';

const VMS = 4;
/** vm-3 is listed by both scopes: the one that writes it first keeps it. */
const SHARED = VMS - 1;

interface Vm {
  running: boolean;
  tagged: boolean;
}

/** The cloud: what each VM is now, and a count of changes so a listing can tell what happened during it. */
class Cloud {
  vms: Vm[] = Array.from({ length: VMS }, () => ({ running: true, tagged: true }));
  /** Per VM, the step numbers at which it changed. */
  changedAt: number[][] = Array.from({ length: VMS }, () => []);
  step = 0;
  /** Called between two pages of a listing: the schedule runs other steps there. */
  betweenPages: () => Promise<void> = async () => {};

  instance(i: number, account: string): Instance {
    const vm = this.vms[i]!;
    return {
      provider: 'static',
      account,
      region: 'dc',
      zone: 'dc-a',
      id: `vm-${i}`,
      name: `vm-${i}`,
      state: vm.running ? 'running' : 'stopped',
      privateIPv4s: [`10.0.${account === 'mem' ? 1 : 2}.${i + 1}`],
      publicIPv4s: [],
      ipv6s: [],
      tags: vm.tagged ? { mesh: 'true', 'mesh-ports': 'http:8080' } : {},
      observedAt: new Date().toISOString(),
    };
  }
}

/** An in-memory provider over the model: two pages, read at the moments the schedule chooses. */
function memoryProvider(cloud: Cloud, name: string, ids: number[]): Provider {
  const scope: Scope = { key: `static:${name}`, provider: 'static', source: name, account: name };
  return {
    kind: 'static',
    name,
    scopes: () => [scope],
    async list(): Promise<Listing> {
      const half = Math.ceil(ids.length / 2);
      const first = ids.slice(0, half).map((i) => cloud.instance(i, name));
      await cloud.betweenPages();
      const second = ids.slice(half).map((i) => cloud.instance(i, name));
      return { scope, instances: [...first, ...second], complete: true, problems: [] };
    },
    async describe(refs: InstanceRef[]): Promise<Described[]> {
      return refs.map((ref) => {
        const i = Number(ref.id.replace('vm-', ''));
        return { ref, instance: ids.includes(i) ? cloud.instance(i, name) : null };
      });
    },
  };
}

type Step =
  | { kind: 'flip'; vm: number; what: 'running' | 'tagged' }
  | { kind: 'event'; pick: number; replica: number }
  | { kind: 'resync'; scope: 'mem' | 'mem2'; replica: number; between: number; dies: boolean };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), vm: fc.integer({ min: 0, max: VMS - 1 }), what: fc.constantFrom('running' as const, 'tagged' as const) }),
  fc.record({ kind: fc.constant('event' as const), pick: fc.nat(), replica: fc.integer({ min: 0, max: 1 }) }),
  fc.record({
    kind: fc.constant('resync' as const),
    scope: fc.constantFrom('mem' as const, 'mem' as const, 'mem2' as const),
    replica: fc.integer({ min: 0, max: 1 }),
    between: fc.integer({ min: 0, max: 3 }),
    dies: fc.boolean(),
  }),
);

describe('schedules of changes, listings and events', () => {
  let server: FakeKubeApiServer;

  beforeAll(async () => {
    server = new FakeKubeApiServer();
    await server.start();
  });
  afterAll(async () => {
    await server.close();
  });

  it('converge to the inventory, never delete a VM that ran through a listing, and never let two scopes write one entry', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 3, maxLength: 14 }), async (steps) => {
        const ws = new Workspace();
        const ns = `sched-${run++}`;
        server.createNamespace(ns);
        const cloud = new Cloud();
        ws.writeConfig({
          kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
          ownerId: ns,
          mapping: { namespace: { default: ns } },
          deletionGuard: { maxDeleteFraction: 1, allowDeletesUpTo: 0 },
          providers: [
            { type: 'static', name: 'mem', inventory: ws.inventoryFile },
            { type: 'static', name: 'mem2', inventory: ws.inventoryFile },
          ],
        });
        const pipeline = await Pipeline.start(ws.configFile, server, {
          replicas: 2,
          providers: () => [memoryProvider(cloud, 'mem', [0, 1, 2, 3]), memoryProvider(cloud, 'mem2', [SHARED])],
        });
        const entries = () => (server.objects('workloadentries', ns) as unknown as WorkloadEntry[]);
        /** The scope that first wrote each entry name; it must never change while the entry exists. */
        const writer = new Map<string, string>();
        const checkOwners = () => {
          const live = new Map(entries().map((e) => [e.metadata.name, e.metadata.annotations[SCOPE_ANNOTATION]!]));
          for (const [name, scope] of live) {
            const first = writer.get(name);
            if (first === undefined) writer.set(name, scope);
            else expect(scope, `${name} was written by ${first}, now by ${scope}`).toBe(first);
          }
          for (const name of writer.keys()) if (!live.has(name)) writer.delete(name);
        };
        const pending: number[] = [];
        /** Per VM, the step at which the newest completed observation of it started (a refresh, or a listing of static:mem). */
        const observedAt: number[] = Array.from({ length: VMS }, () => -1);
        /** The latest start (step) of a resync that died. */
        let lastDeath = -1;
        // Once an observation that started after a VM's last change has completed, the cluster
        // shows that VM as it is, whatever older observations are still on their way. A running
        // VM keeps its entry even when resyncs die; a stopped one may keep its entry until the
        // next complete listing when a resync died since its change (the dead listing voids the
        // older deletes it would have made again itself).
        const checkObserved = () => {
          const live = new Set(entries().map((e) => e.metadata.name));
          for (let vm = 0; vm < SHARED; vm++) {
            const lastChange = cloud.changedAt[vm]!.at(-1) ?? -1;
            if (observedAt[vm]! <= lastChange) continue;
            const want = cloud.vms[vm]!.running && cloud.vms[vm]!.tagged;
            if (!want && lastDeath > lastChange) continue;
            expect(live.has(`static-vm-${vm}`), `vm-${vm} (${want ? 'running' : 'not running'}) was observed at step ${observedAt[vm]} after its change at ${lastChange}`).toBe(want);
          }
        };
        const queue = [...steps];
        const runStep = async (s: Step): Promise<void> => {
          cloud.step++;
          if (s.kind === 'flip') {
            cloud.vms[s.vm]![s.what] = !cloud.vms[s.vm]![s.what];
            cloud.changedAt[s.vm]!.push(cloud.step);
            pending.push(s.vm);
          } else if (s.kind === 'event') {
            if (pending.length === 0) return;
            // Late, out of order, and sometimes again: any pending event, kept for another delivery half the time.
            const index = s.pick % pending.length;
            const vm = pending[index]!;
            if (s.pick % 2 === 0) pending.splice(index, 1);
            const startedAt = cloud.step;
            await refreshInstances(pipeline.replicas[s.replica]!.deps, [{ provider: 'static', account: 'mem', id: `vm-${vm}` }]);
            observedAt[vm] = Math.max(observedAt[vm]!, startedAt);
          } else {
            const deps = pipeline.replicas[s.replica]!.deps;
            const startedAt = cloud.step;
            // Between the pages, the next few steps of the schedule happen.
            cloud.betweenPages = async () => {
              cloud.betweenPages = async () => {};
              for (let k = 0; k < s.between && queue.length > 0; k++) await runStep(queue.shift()!);
            };
            // A resync that dies does so while it enqueues: what it had not recorded is lost, and nothing after it runs.
            const died = new Error('the resync died');
            const result = await resyncScope(s.dies ? { ...deps, enqueue: async () => Promise.reject(died) } : deps, `static:${s.scope}`).catch((err: unknown) => {
              if (err !== died) throw err;
              lastDeath = Math.max(lastDeath, startedAt);
              return undefined;
            });
            const endedAt = cloud.step;
            cloud.betweenPages = async () => {};
            if (s.scope === 'mem' && !s.dies) for (let vm = 0; vm < VMS; vm++) observedAt[vm] = Math.max(observedAt[vm]!, startedAt);
            // A VM running and tagged for the whole listing is never deleted by it.
            for (const change of result?.plan.changes ?? []) {
              if (change.op !== 'delete') continue;
              const vm = Number(change.name.replace('static-vm-', ''));
              const steady = !cloud.changedAt[vm]!.some((at) => at >= startedAt && at <= endedAt) && cloud.vms[vm]!.running && cloud.vms[vm]!.tagged;
              expect(steady, `the listing of ${s.scope} deleted ${change.name}, running and tagged all along`).toBe(false);
            }
          }
          await pipeline.drain();
          checkOwners();
          checkObserved();
        };
        try {
          while (queue.length > 0) await runStep(queue.shift()!);
          // Events stop; one full resync of every scope, then the cluster is the inventory.
          for (const scope of ['static:mem', 'static:mem2']) await resyncScope(pipeline.deps, scope);
          await pipeline.drain();
          checkOwners();
          const want = cloud.vms.flatMap((vm, i) => (vm.running && vm.tagged ? [`static-vm-${i}`] : [])).sort();
          expect(entries().map((e) => e.metadata.name).sort()).toEqual(want);
          for (const e of entries()) {
            const i = Number(e.metadata.name.replace('static-vm-', ''));
            expect(e.spec.address).toBe(`10.0.${writer.get(e.metadata.name) === 'static:mem2' ? 2 : 1}.${i + 1}`);
          }
          expect(await pipeline.failedJobs()).toBe(0);
        } finally {
          await pipeline.close();
          ws.remove();
        }
      }),
      { numRuns: 60 },
    );
  }, 240_000);
});
