// planMeshServices over several scopes, as `serve` runs it: each resync observes one scope and
// plans every mesh service from that scope's desired entries and every other scope's entries as
// the cluster holds them. Whatever the order of resyncs and changes, a Service's ports are the
// union of the ports of every entry naming it, and it goes only when no entry names it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../config/schema.ts';
import { DesiredEntry, HeldEntry, namespacePolicy } from '../mapping/index.ts';
import {
  AUTO_REGISTRATION_GROUP_ANNOTATION,
  type EntryKey,
  entryKey,
  INSTALLATION_LABEL,
  type KubeService,
  type MeshServiceObject,
  HEALTH_CHECK_ANNOTATION,
  NAME_LABEL,
  OBSERVED_AT_ANNOTATION,
  OWNER_LABEL,
  SCOPE_ANNOTATION,
  SERVICE_LABEL,
  SOURCE_ANNOTATION,
  type WorkloadEntry,
  type WorkloadGroup,
} from '../model.ts';
import { entry, OWNER, scope } from '../planning/fixtures.ts';
import { entriesEqual, isOwned, type Plan } from '../planning/index.ts';
import { runSync } from '../slices.ts';
import { CHANGED_MARK, entriesAfter, type ObservedScope, planMeshServices, planScopes, sameAsDesired } from './plan-scopes.ts';

const SCOPES = ['aws:a', 'aws:b'] as const;
type ScopeKey = (typeof SCOPES)[number];

/** Port names always carry the same number here, so that no VM is left out for a disagreement. */
const PORT_NUMBERS: Record<string, number> = { postgres: 5432, metrics: 9187, http: 8080 };

/** A VM of a scope: where its entry goes, the service it names (if any) and its port names. */
interface Vm {
  namespace: 'n1' | 'n2';
  service: 's1' | 's2' | undefined;
  ports: string[];
}

type Config4 = Pick<Config, 'ownerId' | 'policy' | 'deletionGuard' | 'services'>;

function config(policy: Config['policy'] = 'sync'): Config4 {
  return {
    ownerId: OWNER,
    policy,
    // Never holds a delete back: the guard has its own tests, this one is about what is planned.
    deletionGuard: { maxDeleteFraction: 1, allowDeletesUpTo: 1000 },
    services: { kind: 'service', workloadGroups: true, clusterDomain: 'cluster.local' },
  };
}

/** The entry of VM `i` of scope `scopeKey`, as mapping writes it. */
function vmEntry(scopeKey: ScopeKey, i: number, vm: Vm, observedAt: string): WorkloadEntry {
  const name = `${scopeKey.slice(4)}-vm-${i}`;
  return entry(name, {
    namespace: vm.namespace,
    scope: scopeKey,
    observedAt,
    labels: { [NAME_LABEL]: name },
    spec: {
      address: `10.0.${scopeKey === 'aws:a' ? 1 : 2}.${i + 1}`,
      ports: Object.fromEntries(vm.ports.map((p) => [p, PORT_NUMBERS[p]!])),
      labels: vm.service === undefined ? { app: name } : { app: name, [SERVICE_LABEL]: vm.service, [INSTALLATION_LABEL]: OWNER },
    },
  });
}

/** A stamp for step `n`: later steps are later observations. */
function stamp(n: number): string {
  return new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString();
}

/** The cluster as the writer leaves it after applying a plan: entries and the objects of mesh services. */
class Cluster {
  readonly entries = new Map<EntryKey, WorkloadEntry>();
  readonly objects = new Map<EntryKey, MeshServiceObject>();
  /** Deletes of mesh service objects planned while an entry in the cluster still called for them. */
  readonly badDeletes: string[] = [];

  applyEntries(plan: Plan): void {
    for (const c of plan.changes) {
      if (c.op === 'delete') this.entries.delete(c.key);
      else this.entries.set(c.key, c.entry as WorkloadEntry);
    }
  }

  applyObjects(plan: Plan): void {
    for (const c of plan.changes) {
      if (c.op === 'upsert') {
        this.objects.set(c.key, c.entry as MeshServiceObject);
        continue;
      }
      // A Service needs a port: it may go while entries without ports name it, a WorkloadGroup may not.
      const ports = this.named().get(entryKey(c.namespace, c.name));
      if (ports && (c.kind === 'WorkloadGroup' || ports.size > 0)) this.badDeletes.push(c.key);
      this.objects.delete(c.key);
    }
  }

  /** namespace/service → the port names of the entries naming it. */
  named(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const e of this.entries.values()) {
      const service = e.spec.labels?.[SERVICE_LABEL];
      if (service === undefined) continue;
      const key = entryKey(e.metadata.namespace, service);
      const ports = out.get(key) ?? new Set<string>();
      for (const p of Object.keys(e.spec.ports ?? {})) ports.add(p);
      out.set(key, ports);
    }
    return out;
  }

  /** namespace/name → the Service's `name:port`s, sorted. */
  servicePorts(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const o of this.objects.values()) {
      if (o.kind !== 'Service') continue;
      out.set(entryKey(o.metadata.namespace, o.metadata.name), (o as KubeService).spec.ports.map((p) => `${p.name}:${p.port}`).sort());
    }
    return out;
  }

  groups(): string[] {
    return [...this.objects.values()].filter((o): o is WorkloadGroup => o.kind === 'WorkloadGroup').map((o) => entryKey(o.metadata.namespace, o.metadata.name)).sort();
  }
}

/**
 * sameAsDesired's stand-ins, given no configured scopes: it then leaves out nothing, and this
 * says so if it does.
 */
function standIns(observed: Parameters<typeof sameAsDesired>[0]): (live: WorkloadEntry) => WorkloadEntry {
  const keep = runSync(sameAsDesired(observed));
  return (live) => {
    const held = keep(live);
    if (held === undefined) throw new Error(`sameAsDesired left out ${live.metadata.name} with no configured scopes`);
    return held;
  };
}

/** The observation of `scopeKey` with these VMs. */
function observe(scopeKey: ScopeKey, vms: readonly Vm[], observedAt: string): ObservedScope {
  return {
    scope: scope(scopeKey),
    listing: { scope: scope(scopeKey), complete: true, problems: [] },
    listed: vms.length,
    entries: vms.map((vm, i) => vmEntry(scopeKey, i, vm, observedAt)),
    skips: [],
    observedAt,
    namespaces: namespacePolicy({ default: 'n1', allowed: ['n1', 'n2'] }),
  };
}

/** Owned entries sameAsDesired left out of the listings of planResync so far. */
let leftOutByResyncs = 0;

/**
 * The plans of one resync of the scope `observation` observed, as resyncScope makes them. The
 * listing of owned entries holds each entry as sameAsDesired does for the observations of every
 * resync that shares it (shareListings): this one and `sharedWith`, with every scope configured.
 */
function planResync(cluster: Cluster, cfg: Config4, observation: ObservedScope, sharedWith: readonly ObservedScope[] = []): { entryPlan: Plan; services: Plan } {
  const keep = runSync(sameAsDesired([observation, ...sharedWith], SCOPES));
  const owned = [...cluster.entries.values()].map(keep).filter((e) => e !== undefined);
  leftOutByResyncs += cluster.entries.size - owned.length;
  const entryPlan = planScopes(cfg, [observation], owned, { configuredScopes: SCOPES });
  const objects = { owned: [...cluster.objects.values()], foreign: [] };
  return { entryPlan, services: planMeshServices(cfg, [observation], entriesAfter(owned, entryPlan), objects).plan };
}

/** The observation with its entries in compact form, as mapping gives them (each checked to read back as the entry). */
function compactObservation(o: ObservedScope): ObservedScope {
  return { ...o, entries: o.entries.map(compactOf) };
}

function compactOf(e: WorkloadEntry): WorkloadEntry {
  const { address, ...spec } = e.spec;
  const { annotations, labels } = e.metadata;
  const compact = new DesiredEntry(e.metadata.name, address!, annotations[SOURCE_ANNOTATION]!, {
    namespace: e.metadata.namespace,
    ownerId: labels[OWNER_LABEL]!,
    scopeKey: annotations[SCOPE_ANNOTATION]!,
    observedAt: annotations[OBSERVED_AT_ANNOTATION]!,
    spec,
    health: annotations[HEALTH_CHECK_ANNOTATION],
  });
  expect(JSON.parse(JSON.stringify(compact))).toStrictEqual(JSON.parse(JSON.stringify(e)));
  return compact;
}

/** planResync against the cluster's entries as read, without stand-ins. */
function planAsRead(cluster: Cluster, cfg: Config4, observation: ObservedScope): { entryPlan: Plan; services: Plan } {
  const owned = [...cluster.entries.values()];
  const entryPlan = planScopes(cfg, [observation], owned, { configuredScopes: SCOPES });
  const objects = { owned: [...cluster.objects.values()], foreign: [] };
  return { entryPlan, services: planMeshServices(cfg, [observation], entriesAfter(owned, entryPlan), objects).plan };
}

/** The cluster after these steps: the cloud's VMs change, and scopes are resynced alone. */
function clusterAfter(steps: readonly Step[], cfg: Config4): Cluster {
  const cluster = new Cluster();
  const cloud: Record<ScopeKey, Vm[]> = { 'aws:a': [], 'aws:b': [] };
  steps.forEach((step, n) => {
    if ('change' in step) cloud[step.change] = step.vms;
    else resync(cluster, cfg, step.resync, cloud[step.resync], stamp(n + 1));
  });
  return cluster;
}

/** One resync of `scopeKey` alone, as resyncScope plans it, applied to the cluster. */
function resync(cluster: Cluster, cfg: Config4, scopeKey: ScopeKey, vms: readonly Vm[], observedAt: string): void {
  const { entryPlan, services } = planResync(cluster, cfg, observe(scopeKey, vms, observedAt));
  cluster.applyEntries(entryPlan);
  cluster.applyObjects(services);
}

/** What the Services should be: one per (namespace, service) with a port, with the union of their entries' ports. */
function expectedPorts(named: Map<string, Set<string>>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [key, ports] of named) if (ports.size > 0) out.set(key, [...ports].map((p) => `${p}:${PORT_NUMBERS[p]}`).sort());
  return out;
}

const vmArb: fc.Arbitrary<Vm> = fc.record({
  namespace: fc.constantFrom('n1' as const, 'n2' as const),
  service: fc.constantFrom('s1' as const, 's2' as const, undefined),
  ports: fc.subarray(Object.keys(PORT_NUMBERS)),
});

/** A step: the VMs of a scope change in the cloud, or a scope is resynced alone. */
type Step = { change: ScopeKey; vms: Vm[] } | { resync: ScopeKey };
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ change: fc.constantFrom(...SCOPES), vms: fc.array(vmArb, { maxLength: 3 }) }),
  fc.record({ resync: fc.constantFrom(...SCOPES) }),
);

describe('planMeshServices over two scopes resynced one at a time', () => {
  it('a Service always has the union of the ports of every entry naming it, and goes only when none does', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), (steps) => {
        const cfg = config();
        const cluster = new Cluster();
        const cloud: Record<ScopeKey, Vm[]> = { 'aws:a': [], 'aws:b': [] };
        const fresh: Record<ScopeKey, boolean> = { 'aws:a': true, 'aws:b': true };
        steps.forEach((step, n) => {
          if ('change' in step) {
            cloud[step.change] = step.vms;
            fresh[step.change] = false;
            return;
          }
          resync(cluster, cfg, step.resync, cloud[step.resync], stamp(n + 1));
          fresh[step.resync] = true;
          const named = cluster.named();
          expect(cluster.badDeletes).toEqual([]);
          // The cluster's entries are this scope's VMs now and the other scope's as last resynced.
          expect(cluster.servicePorts()).toEqual(expectedPorts(named));
          expect(cluster.groups()).toEqual([...named.keys()].sort());
          if (fresh['aws:a'] && fresh['aws:b']) {
            // Every scope resynced since its last change: the Services are those of all the VMs in the cloud.
            const all = new Map<string, Set<string>>();
            for (const vm of [...cloud['aws:a'], ...cloud['aws:b']]) {
              if (vm.service === undefined) continue;
              const key = entryKey(vm.namespace, vm.service);
              all.set(key, new Set([...(all.get(key) ?? []), ...vm.ports]));
            }
            expect(cluster.servicePorts()).toEqual(expectedPorts(all));
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  it('a resync plans the same against a listing it shares with the other scope\'s resync as against one of its own', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 8 }), fc.array(vmArb, { maxLength: 3 }), fc.array(vmArb, { maxLength: 3 }), (steps, vmsA, vmsB) => {
        const cfg = config();
        const cluster = clusterAfter(steps, cfg);
        const a = observe('aws:a', vmsA, stamp(100));
        const b = observe('aws:b', vmsB, stamp(101));
        expect(planResync(cluster, cfg, a, [b])).toEqual(planResync(cluster, cfg, a));
        expect(planResync(cluster, cfg, b, [a])).toEqual(planResync(cluster, cfg, b));
      }),
      { numRuns: 300 },
    );
  });

  // Changed entries of the resynced scope are held slim; where the policy drops their updates,
  // the mesh services are derived from the stand-ins.
  it.each(['sync', 'upsert-only', 'create-only'] as const)('a resync with policy %s plans entries and mesh services the same against stand-ins as against the entries as read', (policy) => {
    let changed = 0;
    const leftOutBefore = leftOutByResyncs;
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 8 }), fc.array(vmArb, { maxLength: 3 }), (steps, vms) => {
        const cfg = config(policy);
        const cluster = clusterAfter(steps, cfg);
        const a = observe('aws:a', vms, stamp(100));
        const asRead = planAsRead(cluster, cfg, a);
        changed += asRead.entryPlan.summary.update + asRead.entryPlan.summary.dropped;
        expect(planResync(cluster, cfg, a)).toEqual(asRead);
      }),
      { numRuns: 200 },
    );
    expect(changed).toBeGreaterThan(0);
    // The other scope's entries that name no mesh service were left out of some of those listings.
    expect(leftOutByResyncs).toBeGreaterThan(leftOutBefore);
  });

  // What `serve` plans: desired entries in compact form, and stand-ins made from them.
  it.each(['sync', 'upsert-only', 'create-only'] as const)('a resync with policy %s plans the same with its desired entries in compact form as with plain ones', (policy) => {
    let changes = 0;
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 8 }), fc.array(vmArb, { maxLength: 3 }), fc.array(vmArb, { maxLength: 3 }), (steps, vmsA, vmsB) => {
        const cfg = config(policy);
        const cluster = clusterAfter(steps, cfg);
        const a = observe('aws:a', vmsA, stamp(100));
        const b = observe('aws:b', vmsB, stamp(101));
        const asRead = planAsRead(cluster, cfg, a);
        changes += asRead.entryPlan.changes.length;
        const compact = planResync(cluster, cfg, compactObservation(a), [compactObservation(b)]);
        expect(compact).toEqual(asRead);
        // As queued: the same JSON.
        expect(JSON.parse(JSON.stringify(compact.entryPlan.changes))).toStrictEqual(JSON.parse(JSON.stringify(asRead.entryPlan.changes)));
      }),
      { numRuns: 200 },
    );
    expect(changes).toBeGreaterThan(0);
  });

  it("leaves out another configured scope's entries the plan passes over, and holds those it reads", () => {
    const named = vmEntry('aws:b', 1, { namespace: 'n1', service: 's1', ports: [] }, stamp(1));
    const plain = vmEntry('aws:b', 2, { namespace: 'n1', service: undefined, ports: [] }, stamp(1));
    const wanted = vmEntry('aws:b', 3, { namespace: 'n1', service: undefined, ports: [] }, stamp(1));
    const a = observe('aws:a', [], stamp(2));
    const wants = { ...a, entries: [entry(wanted.metadata.name, { namespace: 'n1', scope: 'aws:a', observedAt: stamp(2) })] };
    const keep = runSync(sameAsDesired([wants], ['aws:a', 'aws:b']));
    expect(keep(plain)).toBeUndefined();
    // It names a mesh service; a desired entry wants its name (a conflict).
    expect(keep(named)).toBeDefined();
    expect(keep(wanted)).toBeDefined();
    // Orphans: a scope no longer configured, and no scope at all.
    const gone = entry('gone-vm', { namespace: 'n1', scope: 'aws:gone' });
    const unscoped = entry('bare-vm', { namespace: 'n1' });
    delete unscoped.metadata.annotations[SCOPE_ANNOTATION];
    expect(keep(gone)).toBeDefined();
    expect(keep(unscoped)).toBe(unscoped);
  });

  it("holds another scope's entries with their ownership labels in one map, not a map of each entry's own", () => {
    const b = observe('aws:b', [{ namespace: 'n1', service: 's1', ports: ['http'] }], stamp(1));
    const keep = standIns([observe('aws:a', [], stamp(2))]);
    const live = [...b.entries, vmEntry('aws:b', 1, { namespace: 'n2', service: 's2', ports: [] }, stamp(1))];
    const [x, y] = live.map(keep);
    expect(x!.metadata.labels).toBe(y!.metadata.labels);
    expect(x!.metadata.labels[NAME_LABEL]).toBeUndefined();
    expect([x, y].every((e) => isOwned(e!, OWNER))).toBe(true);
    const theirs = keep(entry('c-vm', { scope: 'aws:b', owner: 'someone-else', labels: { [NAME_LABEL]: 'c-vm' } }));
    expect(isOwned(theirs, OWNER)).toBe(false);
  });

  it('holds the stand-ins that differ only in name as an object each, with one shape for the rest, frozen', () => {
    const keep = standIns([observe('aws:a', [], stamp(2))]);
    const vm = (name: string, address: string): WorkloadEntry =>
      entry(name, {
        namespace: 'n1',
        scope: 'aws:b',
        labels: { [NAME_LABEL]: name },
        spec: { address, ports: { http: 8080 }, labels: { app: 'web', [SERVICE_LABEL]: 's1', [INSTALLATION_LABEL]: OWNER } },
      });
    // Each as the API server sends it: maps of its own.
    const [x, y] = [vm('b-vm-1', '10.0.2.1'), vm('b-vm-2', '10.0.2.2')].map((e) => keep(structuredClone(e)));
    expect(x).toBeInstanceOf(HeldEntry);
    expect(y).toBeInstanceOf(HeldEntry);
    expect((x as HeldEntry).shape).toBe((y as HeldEntry).shape);
    expect([x!.metadata.name, y!.metadata.name]).toEqual(['b-vm-1', 'b-vm-2']);
    expect(() => {
      (x!.metadata.labels as Record<string, string>).extra = 'x';
    }).toThrow(TypeError);
    expect(() => {
      (x!.spec.labels as Record<string, string>).extra = 'x';
    }).toThrow(TypeError);
  });

  it('holds changed entries of the observed scope slim: key, ownership labels and scope in shared maps, marked changed', () => {
    const vms: Vm[] = [
      { namespace: 'n1', service: 's1', ports: ['http'] },
      { namespace: 'n1', service: 's1', ports: ['postgres'] },
    ];
    const a = observe('aws:a', vms, stamp(2));
    const keep = standIns([a]);
    // As the API server sends them: copies of their own, other addresses, older stamps, resourceVersions.
    const live = vms.map((vm, i) => {
      const e = structuredClone(vmEntry('aws:a', i, vm, stamp(1)));
      e.spec.address = `192.0.2.${i + 1}`;
      e.metadata.resourceVersion = `4${i}`;
      return e;
    });
    const held = live.map(keep);
    held.forEach((h, i) => {
      const want = a.entries[i]!;
      expect(h.metadata.name).toBe(want.metadata.name);
      expect(h.metadata.namespace).toBe(live[i]!.metadata.namespace);
      expect(h.metadata.labels[NAME_LABEL]).toBeUndefined();
      expect(h.metadata.annotations).toEqual({ [SCOPE_ANNOTATION]: 'aws:a', [CHANGED_MARK]: 'true' });
      expect(isOwned(h, OWNER)).toBe(true);
      // They name a mesh service: what its Service and WorkloadGroup are derived from stays.
      expect(h.spec.labels).toEqual(live[i]!.spec.labels);
      expect(h.spec.ports).toEqual(live[i]!.spec.ports);
      expect(h.spec.address).toBe('');
      expect(entriesEqual(want, h)).toBe(false);
    });
    expect(held[0]!.metadata.labels).toBe(held[1]!.metadata.labels);
    expect(held[0]!.metadata.annotations).toBe(held[1]!.metadata.annotations);
  });

  it('holds a changed entry that names no mesh service without its spec', () => {
    const a = observe('aws:a', [{ namespace: 'n1', service: 's1', ports: ['http'] }], stamp(2));
    const want = a.entries[0]!;
    const live = structuredClone(want);
    live.spec.address = '192.0.2.1';
    delete live.spec.labels![SERVICE_LABEL];
    const held = standIns([a])(live);
    expect(held.spec).toEqual({ address: '' });
    expect(entriesEqual(want, held)).toBe(false);
  });

  it('marks a changed entry so that it never equals its desired entry, even where the slim parts would', () => {
    // A desired entry made by hand with nothing but what a slim stand-in keeps.
    const want = entry('bare', { scope: 'aws:a', spec: { address: '' } });
    delete (want.metadata.annotations as Record<string, string>)[SOURCE_ANNOTATION];
    const live = structuredClone(want);
    live.metadata.annotations['example.com/note'] = 'x';
    live.spec.weight = 2;
    const observed = { scope: scope('aws:a'), entries: [want], skips: [] };
    const held = standIns([observed])(live);
    expect(held).not.toBe(live);
    expect(entriesEqual(want, live)).toBe(false);
    expect(entriesEqual(want, held)).toBe(false);
  });

  // Entries held as read, whether a desired entry has their name or not: planning reads more of them.
  it.each([
    {
      name: 'a changed entry whose source a skipped instance keeps its entry by',
      skip: true,
      edit: (_e: WorkloadEntry) => {},
    },
    {
      name: 'a changed entry istiod auto-registered',
      skip: false,
      edit: (e: WorkloadEntry) => (e.metadata.annotations[AUTO_REGISTRATION_GROUP_ANNOTATION] = 's1'),
    },
    {
      // entriesEqual passes over the annotation, which is not ours; isOwned does not.
      name: 'an entry istiod auto-registered, equal to the desired one but for that',
      skip: false,
      same: true,
      edit: (e: WorkloadEntry) => (e.metadata.annotations[AUTO_REGISTRATION_GROUP_ANNOTATION] = 's1'),
    },
  ])('table: $name is held as read', ({ skip, edit, same }) => {
    const a = observe('aws:a', [{ namespace: 'n1', service: 's1', ports: ['http'] }], stamp(2));
    const live = structuredClone(a.entries[0]!);
    if (!same) live.spec.address = '192.0.2.1';
    edit(live);
    const source = live.metadata.annotations[SOURCE_ANNOTATION]!;
    const observed = skip ? { ...a, skips: [{ source, keepsEntry: true } as ObservedScope['skips'][number]] } : a;
    expect(standIns([observed])(live)).toBe(live);
  });

  it('holds an entry whose name two observed scopes want as read, even when it equals the desired entry found last', () => {
    const vm: Vm = { namespace: 'n1', service: 's1', ports: ['http'] };
    const a = observe('aws:a', [vm], stamp(2));
    // Scope b wants the same name, with another address.
    const b = { ...observe('aws:b', [], stamp(2)), entries: [{ ...structuredClone(a.entries[0]!), spec: { ...a.entries[0]!.spec, address: '10.9.9.9' } }] };
    const live = structuredClone(b.entries[0]!);
    expect(standIns([a, b])(live)).toBe(live);
    expect(standIns([b, a])(live)).toBe(live);
  });

  it("holds an auto-registered entry of another scope as read: its annotation makes it not ours", () => {
    const keep = standIns([observe('aws:a', [], stamp(2))]);
    const live = vmEntry('aws:b', 0, { namespace: 'n1', service: 's1', ports: [] }, stamp(1));
    live.metadata.annotations[AUTO_REGISTRATION_GROUP_ANNOTATION] = 's1';
    expect(keep(live)).toBe(live);
    expect(isOwned(keep(live), OWNER)).toBe(false);
  });

  // What the API server may send for an entry whose name a desired entry has: a part missing, or
  // a key no assignment copies. It is held as read, and planned as such.
  it.each([
    { name: 'no annotations', edit: (e: Record<string, any>) => delete e.metadata.annotations },
    { name: 'no labels', edit: (e: Record<string, any>) => delete e.metadata.labels },
    { name: 'no spec', edit: (e: Record<string, any>) => delete e.spec },
    { name: 'a __proto__ key in its spec', edit: (e: Record<string, any>) => Object.defineProperty(e.spec, '__proto__', { value: { x: 1 }, enumerable: true }) },
  ])('table: a changed entry with $name is held as read', ({ edit }) => {
    const a = observe('aws:a', [{ namespace: 'n1', service: 's1', ports: ['http'] }], stamp(2));
    const live = structuredClone(a.entries[0]!);
    live.spec.address = '192.0.2.1';
    edit(live as unknown as Record<string, any>);
    expect(standIns([a])(live)).toBe(live);
  });

  // Resyncs in either order, each alone, after the VMs of one service moved between scopes and port sets.
  it.each([
    { name: 'A then B', order: ['aws:a', 'aws:b'] as ScopeKey[] },
    { name: 'B then A', order: ['aws:b', 'aws:a'] as ScopeKey[] },
  ])('table: a service spanning two scopes, resynced $name', ({ order }) => {
    const cfg = config();
    const cluster = new Cluster();
    const pg = (ports: string[]): Vm => ({ namespace: 'n1', service: 's1', ports });
    let n = 0;
    const both = (a: Vm[], b: Vm[]) => {
      for (const key of order) resync(cluster, cfg, key, key === 'aws:a' ? a : b, stamp(++n));
    };
    both([pg(['postgres'])], [pg(['postgres', 'metrics'])]);
    expect(cluster.servicePorts()).toEqual(new Map([['n1/s1', ['metrics:9187', 'postgres:5432']]]));
    // A loses its VM: B's keeps the Service and its ports, whichever scope is resynced first.
    resync(cluster, cfg, order[0]!, order[0] === 'aws:a' ? [] : [pg(['postgres', 'metrics'])], stamp(++n));
    expect(cluster.servicePorts()).toEqual(new Map([['n1/s1', ['metrics:9187', 'postgres:5432']]]));
    both([], [pg(['postgres'])]);
    expect(cluster.servicePorts()).toEqual(new Map([['n1/s1', ['postgres:5432']]]));
    both([], []);
    expect(cluster.servicePorts()).toEqual(new Map());
    expect(cluster.groups()).toEqual([]);
    expect(cluster.badDeletes).toEqual([]);
  });

  it('with policy upsert-only, a service that loses its VMs keeps its Service and WorkloadGroup', () => {
    const policy = 'upsert-only';
    const cluster = new Cluster();
    const s1: Vm = { namespace: 'n1', service: 's1', ports: ['postgres'] };
    resync(cluster, config(policy), 'aws:a', [s1], stamp(1));
    // The VM moves to another service (an update, not a delete of its entry), then goes.
    resync(cluster, config(policy), 'aws:a', [{ ...s1, service: 's2' }], stamp(2));
    resync(cluster, config(policy), 'aws:a', [], stamp(3));
    expect([...cluster.objects.keys()]).toEqual(expect.arrayContaining(['Service/n1/s1', 'WorkloadGroup/n1/s1']));
  });
});
