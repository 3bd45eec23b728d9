// Scenario 3: a resync of 100,000 instances that are all in the cluster already, exactly as mapping
// makes them: list scope + map + list owned + plan must end in no change and no write. Run once
// per provider, since listing the scope is the provider's own cost: the static inventory and EC2
// (the real SDK against the fake EC2). EC2's provider is built as serve and sync build it
// (createProviders): its SDK, its requests and the reading of its XML run in the provider thread;
// the mapping of its pages, the cluster listing and the planning run in this one, as does the
// static provider's reading of its file. Each provider's scope is resynced twice in one process:
// the second resync is the one `serve` repeats every interval, and the goals judge it; the first,
// reported beside it, also pays for what a process does once (compiling the code the resync runs,
// growing the heap and faulting in its pages).
import path from 'node:path';
import { rmSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { awsProviderSchema } from '../../../providers/aws/config.ts';
import { createProviders } from '../../../providers/index.ts';
import { listingPages } from '../../../providers/paging.ts';
import type { Provider } from '../../../providers/provider.ts';
import { createStaticProvider } from '../../../providers/static/static-provider.ts';
import type { Instance } from '../../../services/model.ts';
import { ChangeQueue } from '../../../services/queue/change-queue.ts';
import { RedisDesiredStore } from '../../../services/queue/desired-store.ts';
import { createRedis } from '../../../services/queue/redis.ts';
import { localClock } from '../../../services/stamp.ts';
import { type ReconcileDeps, resyncScope } from '../../../services/sync/reconcile.ts';
import { listingOf, shareListings } from '../../../services/sync/shared-listing.ts';
import { createKubeApi } from '../../../services/writer/kube-api.ts';
import { loadKubeConfig } from '../../../services/writer/kubeconfig.ts';
import { Writer } from '../../../services/writer/writer.ts';
import { cleanupPrefix } from '../../helpers/serve.ts';
import { AWS_ACCOUNT, AWS_NAME, AWS_REGION, AWS_SCOPE, BENCH_OWNER, benchConfig, STATIC_NAME, type SeedFlavor, STATIC_SCOPE, writeStaticInventory } from '../fixtures.ts';
import { FakeHost } from '../host-protocol.ts';
import { atMost, mib, round, threadCpuSecondsByName } from '../measure.ts';
import type { Row } from '../scenario-types.ts';
import { type BenchOptions, progress, type Scenario, type ScenarioResult, scenarioPrefix } from '../scenario-types.ts';

/**
 * Credentials the fake EC2 accepts (it checks none), as the SDK's default chain reads them from the
 * environment, and no instance metadata to ask.
 */
export const FAKE_AWS_ENV = { AWS_ACCESS_KEY_ID: 'AKIABENCHEXAMPLE0000', AWS_SECRET_ACCESS_KEY: 'bench/secret/example/key/0000000000000000', AWS_EC2_METADATA_DISABLED: 'true' };

/** The flavors a full run resyncs, in order. */
export const NOOP_FLAVORS: readonly SeedFlavor[] = ['aws', 'static'];

/** What one resync took. */
interface ResyncFigures {
  totalMs: number;
  listScopeMs: number;
  /** Of listScopeMs, the time spent mapping the pages (ours; the rest is the provider's listing). */
  mapMs: number;
  /** Of mapMs, the main thread's CPU: the rest it waited for a core, or for the event loop to come back to it. */
  mapCpuMs: number;
  listOwnedMs: number;
  /** CPU time of this process while the owned entries were listed. */
  listOwnedCpuMs: number;
  /** CPU time of the fake host (the fake API server and EC2) during the whole resync. */
  fakeCpuMs: number;
  /** CPU time of this process's main thread during the whole resync (a provider thread's is not counted). */
  mainCpuMs: number;
  /** CPU time of this process's worker threads (the provider thread) during the whole resync; undefined where /proc has no threads. */
  workerCpuMs?: number;
  /** CPU time of V8's helper threads (concurrent and parallel garbage collection, of every thread's heap) during the whole resync. */
  v8HelperCpuMs?: number;
  mapAndPlanMs: number;
  changes: number;
  writes: number;
  requests: Record<string, number>;
}

/**
 * A flavor's figures: those of the resync `serve` repeats every interval (the second in the
 * process, which the goals judge) and of the first, which also pays, once per process, for
 * compiling the code it runs and growing the heap it runs in.
 */
interface FlavorResult extends ResyncFigures {
  flavor: SeedFlavor;
  instances: number;
  seedMs: number;
  first: ResyncFigures;
  rssAfterMiB: number;
  peakRssMiB: number;
}

async function resyncFlavor(flavor: SeedFlavor, n: number, options: BenchOptions, prefix: string, redis: Redis): Promise<FlavorResult> {
  const host = new FakeHost();
  const inventory = path.join(options.workDir, `noop-${flavor}.json`);
  let provider: Provider | undefined;
  const queue = new ChangeQueue({ connection: redis, prefix, store: new RedisDesiredStore(redis, prefix), attempts: 1, backoffMs: 1000, keepFailed: 10 });
  try {
    const { kubeconfig } = await host.startKube(options.latencyMs, path.join(options.workDir, `noop-kube-${flavor}`));
    progress('noop-resync', `${flavor}: seeding ${n} entries`);
    const seeded = await host.call<{ ms: number }>({ op: 'seed', flavor, from: 0, count: n });
    let scopeKey: string;
    if (flavor === 'aws') {
      const { url } = await host.call<{ url: string }>({ op: 'startEc2' });
      await host.call({ op: 'ec2Put', from: 0, count: n, tagged: true });
      const block = awsProviderSchema.parse({ type: 'aws', name: AWS_NAME, regions: [AWS_REGION], accounts: [{ id: AWS_ACCOUNT }], endpoint: { ec2: url } });
      const [built] = await createProviders([block], { mapping: benchConfig().mapping, env: { ...process.env, ...FAKE_AWS_ENV } });
      if (built === undefined) throw new Error('createProviders built no provider for the aws block');
      provider = built;
      scopeKey = AWS_SCOPE;
    } else {
      writeStaticInventory(inventory, n);
      provider = createStaticProvider({ type: 'static', name: STATIC_NAME, inventory });
      scopeKey = STATIC_SCOPE;
    }
    const timed = timeMapping(provider);
    const config = benchConfig();
    const writer = new Writer({ api: createKubeApi(loadKubeConfig({ kubeconfig })), ownerId: BENCH_OWNER, fieldManager: config.kubernetes.fieldManager, ensureServiceAccounts: true });
    let listOwnedMs = 0;
    let listOwnedCpuMs = 0;
    const deps: ReconcileDeps = {
      config,
      clock: localClock,
      providers: [timed.provider],
      listOwned: shareListings(async (keep) => {
        const cpu = process.cpuUsage();
        const t = performance.now();
        const owned = await listingOf(writer)(keep);
        listOwnedMs = performance.now() - t;
        listOwnedCpuMs = cpuMs(process.cpuUsage(cpu));
        return owned;
      }),
      findByNames: (names) => writer.findByNames(names),
      findByName: (name) => writer.findByName(name),
      listForeign: () => writer.listForeign(),
      listMeshServiceObjects: () => writer.listMeshServiceObjects(config.services),
      enqueue: (changes) => queue.enqueue(changes),
      confirm: (scopeKey, observedAt, phase, names) => queue.confirm(scopeKey, observedAt, phase, names),
    };
    /** One resync of the scope, with the fakes' request counts and CPU for it alone. */
    const measured = async (which: string): Promise<ResyncFigures> => {
      await host.call({ op: 'reset' });
      progress('noop-resync', `${flavor}: ${which} resync of ${n} instances`);
      const fakeBefore = await host.cpu();
      const mainBefore = process.threadCpuUsage();
      const threadsBefore = threadCpuSecondsByName();
      const mapBefore = { ms: timed.mapMs(), cpu: timed.mapCpuMs() };
      const started = performance.now();
      const result = await resyncScope(deps, scopeKey);
      const totalMs = performance.now() - started;
      const mainCpuMs = cpuMs(process.threadCpuUsage(mainBefore));
      const threadsAfter = threadCpuSecondsByName();
      const threadMs = (name: string): number | undefined => (threadsAfter.has(name) ? round((threadsAfter.get(name)! - (threadsBefore.get(name) ?? 0)) * 1000) : undefined);
      const fakeAfter = await host.cpu();
      const counts = await host.counts();
      if (!result.observation.listing.complete || result.observation.entries.length !== n || result.owned !== n) {
        throw new Error(`${flavor}: the ${which} resync saw ${result.observation.entries.length} desired and ${result.owned} owned entries, complete ${result.observation.listing.complete}`);
      }
      const listScopeMs = result.observation.durationMs;
      const requests: Record<string, number> = {};
      for (const [verb, count] of Object.entries(counts.all)) if (count > 0) requests[verb] = count;
      return {
        totalMs: round(totalMs),
        listScopeMs: round(listScopeMs),
        mapMs: round(timed.mapMs() - mapBefore.ms),
        mapCpuMs: round(timed.mapCpuMs() - mapBefore.cpu),
        listOwnedMs: round(listOwnedMs),
        listOwnedCpuMs: round(listOwnedCpuMs),
        mainCpuMs: round(mainCpuMs),
        ...optional('workerCpuMs', threadMs('WorkerThread')),
        ...optional('v8HelperCpuMs', threadMs('V8Worker')),
        fakeCpuMs: round(cpuMs({ user: fakeAfter.cpu.user - fakeBefore.cpu.user, system: fakeAfter.cpu.system - fakeBefore.cpu.system })),
        mapAndPlanMs: round(totalMs - listScopeMs - listOwnedMs),
        changes: result.plan.changes.length,
        writes: counts.allWrites,
        requests,
      };
    };
    const first = await measured('first');
    const repeated = await measured('repeated');
    const memory = process.memoryUsage();
    return {
      flavor,
      instances: n,
      seedMs: round(seeded.ms),
      ...repeated,
      first,
      rssAfterMiB: mib(memory.rss),
      peakRssMiB: mib(process.resourceUsage().maxRSS * 1024),
    };
  } finally {
    await queue.close().catch(() => {});
    await provider?.close?.();
    await host.stop();
    rmSync(inventory, { force: true });
  }
}

/** The resync less the provider's own listing (for the static provider, reading the file is the provider's). */
function ourMs(r: ResyncFigures): number {
  return r.totalMs - (r.listScopeMs - r.mapMs);
}

/** `{ [key]: value }`, or nothing when the value is undefined. */
function optional<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}

/** CPU time of a process.cpuUsage() difference, in milliseconds. */
function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

/** The provider with the time spent mapping its pages (the listing's `onPage`) counted apart from its own listing. */
function timeMapping(provider: Provider): { provider: Provider; mapMs: () => number; mapCpuMs: () => number } {
  let mapMs = 0;
  let mapCpuMs = 0;
  const timedPage =
    (onPage: (instances: Instance[]) => Promise<void>) =>
    async (instances: Instance[]): Promise<void> => {
      const t = performance.now();
      const c = process.threadCpuUsage();
      try {
        await onPage(instances);
      } finally {
        mapMs += performance.now() - t;
        const d = process.threadCpuUsage(c);
        mapCpuMs += (d.user + d.system) / 1000;
      }
    };
  const wrapped: Provider = {
    kind: provider.kind,
    name: provider.name,
    scopes: () => provider.scopes(),
    list: (scope, signal) => provider.list(scope, signal),
    listPages: (scope, signal, onPage) => listingPages(provider, scope, signal, timedPage(onPage)),
    describe: (refs, signal) => provider.describe(refs, signal),
  };
  return { provider: wrapped, mapMs: () => mapMs, mapCpuMs: () => mapCpuMs };
}

/** The variants (flavors) of the scenario, as `--variant` names them. */
function selectedFlavors(options: BenchOptions): SeedFlavor[] {
  const unknown = (options.variants ?? []).filter((name) => !NOOP_FLAVORS.includes(name as SeedFlavor));
  if (unknown.length > 0) throw new Error(`noop-resync has no variant ${unknown.join(', ')} (it has ${NOOP_FLAVORS.join(', ')})`);
  return NOOP_FLAVORS.filter((f) => !options.variants || options.variants.includes(f));
}

/** The no-op resync scenario. */
export const noopResync: Scenario = {
  name: 'noop-resync',
  title: 'No-op resync',
  async run(options: BenchOptions): Promise<ScenarioResult> {
    const n = options.instances ?? (options.quick ? 10_000 : 100_000);
    const flavors = selectedFlavors(options);
    const prefix = scenarioPrefix(options, this.name);
    const redis = createRedis(options.redisUrl, { role: 'producer' });
    const results: FlavorResult[] = [];
    try {
      for (const flavor of flavors) results.push(await resyncFlavor(flavor, n, options, prefix, redis));
    } finally {
      await redis.quit().catch(() => {});
      await cleanupPrefix(prefix, options.redisUrl);
    }
    const rows: Row[] = [{ figure: 'input', value: `${n.toLocaleString('en-US')} instances, all already in the cluster as mapping makes them` }];
    for (const r of results) {
      const verbs = Object.entries(r.requests)
        .map(([verb, count]) => `${count} ${verb}`)
        .join(', ');
      rows.push(
        {
          figure: `${r.flavor}: the first resync in a fresh process: time / ours / the main thread's CPU / changes planned, write requests`,
          value: `${round(r.first.totalMs / 1000, 2)} s / ${round(ourMs(r.first) / 1000, 2)} s / ${round(r.first.mainCpuMs / 1000, 2)} s / ${r.first.changes}, ${r.first.writes}`,
        },
        { figure: `${r.flavor}: time of the repeated resync (list and map the scope, page by page + list owned + plan)`, value: `${round(r.totalMs / 1000, 2)} s (${round(r.listScopeMs / 1000, 2)} + ${round(r.listOwnedMs / 1000, 2)} + ${round(r.mapAndPlanMs / 1000, 2)})` },
        {
          figure: `${r.flavor}: of which ours (mapping the pages, listing owned entries, planning)`,
          value: `${round(ourMs(r) / 1000, 2)} s (${round(r.mapMs / 1000, 2)} + ${round(r.listOwnedMs / 1000, 2)} + ${round(r.mapAndPlanMs / 1000, 2)})`,
        },
        {
          figure: `${r.flavor}: CPU of the main thread during the resync${r.flavor === 'aws' ? ' (the EC2 provider thread not counted)' : ' (reading the inventory included)'}`,
          value: `${round(r.mainCpuMs / 1000, 2)} s`,
        },
        ...(r.v8HelperCpuMs === undefined
          ? []
          : [
              {
                figure: `${r.flavor}: CPU of ${r.flavor === 'aws' ? 'the provider thread / ' : ''}V8's helper threads (the garbage collection of every thread's heap) during the repeated resync`,
                value: `${r.flavor === 'aws' ? `${round((r.workerCpuMs ?? 0) / 1000, 2)} s / ` : ''}${round(r.v8HelperCpuMs / 1000, 2)} s`,
              },
            ]),
        { figure: `${r.flavor}: mapping the pages: time / the main thread's CPU in it`, value: `${round(r.mapMs / 1000, 2)} s / ${round(r.mapCpuMs / 1000, 2)} s` },
        { figure: `${r.flavor}: CPU while listing owned entries: ours / the fakes' during the whole resync`, value: `${round(r.listOwnedCpuMs / 1000, 2)} s / ${round(r.fakeCpuMs / 1000, 2)} s` },
        { figure: `${r.flavor}: changes planned / write requests`, value: `${r.changes} / ${r.writes}` },
        { figure: `${r.flavor}: API requests by verb`, value: verbs },
        { figure: `${r.flavor}: peak RSS of the resyncing process`, value: `${r.peakRssMiB} MiB` },
      );
    }
    return {
      name: this.name,
      title: this.title,
      figures: { instances: n, byProvider: results },
      rows,
      goals: results.flatMap((r) => [
        // The AWS SDK parses EC2's XML: its goal allows for that.
        atMost(`no-op resync ${n.toLocaleString('en-US')} (repeated), ${r.flavor} provider: time`, round(r.totalMs / 1000, 2), r.flavor === 'aws' ? 10 : 5, 's'),
        // The EC2 listing is the SDK's; what is left of the resync is ours.
        ...(r.flavor === 'aws' ? [atMost(`no-op resync ${n.toLocaleString('en-US')} (repeated), aws provider: ours (mapping, cluster listing, planning)`, round(ourMs(r) / 1000, 2), 2, 's')] : []),
        // Neither resync may write: the first is as much a no-op as the repeated one.
        atMost(`no-op resync ${n.toLocaleString('en-US')} (first and repeated), ${r.flavor} provider: writes`, r.first.writes + r.writes, 0, ''),
      ]),
      notes: results.map(
        (r) =>
          `${r.flavor}: listing the scope took ${round((r.listScopeMs / r.totalMs) * 100, 0)}% of the repeated resync; without it, ${round((r.totalMs - r.listScopeMs) / 1000, 2)} s. The goals judge the resync serve repeats every interval; the first in a process also compiles the code it runs and grows the heap (first: ${round(r.first.totalMs / 1000, 2)} s, ours ${round(ourMs(r.first) / 1000, 2)} s).`,
      ),
    };
  },
};
