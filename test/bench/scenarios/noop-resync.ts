// Scenario 3: a resync of 100,000 instances that are all in the cluster already, exactly as mapping
// makes them: list scope + map + list owned + plan must end in no change and no write. Run once
// per provider, since listing the scope is the provider's own cost: the static inventory and EC2
// (the real SDK against the fake EC2).
import path from 'node:path';
import { rmSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { AwsProvider } from '../../../providers/aws/aws-provider.ts';
import { awsProviderSchema } from '../../../providers/aws/config.ts';
import type { Provider } from '../../../providers/provider.ts';
import { createStaticProvider } from '../../../providers/static/static-provider.ts';
import { ChangeQueue } from '../../../services/queue/change-queue.ts';
import { RedisDesiredStore } from '../../../services/queue/desired-store.ts';
import { createRedis } from '../../../services/queue/redis.ts';
import { localClock } from '../../../services/stamp.ts';
import { type ReconcileDeps, resyncScope } from '../../../services/sync/reconcile.ts';
import { shareListings } from '../../../services/sync/shared-listing.ts';
import { createKubeApi } from '../../../services/writer/kube-api.ts';
import { loadKubeConfig } from '../../../services/writer/kubeconfig.ts';
import { Writer } from '../../../services/writer/writer.ts';
import { cleanupPrefix } from '../../helpers/serve.ts';
import { AWS_ACCOUNT, AWS_NAME, AWS_REGION, AWS_SCOPE, BENCH_OWNER, benchConfig, STATIC_NAME, type SeedFlavor, STATIC_SCOPE, writeStaticInventory } from '../fixtures.ts';
import { FakeHost } from '../host-protocol.ts';
import { atMost, mib, round } from '../measure.ts';
import type { Row } from '../scenario-types.ts';
import { type BenchOptions, progress, type Scenario, type ScenarioResult, scenarioPrefix } from '../scenario-types.ts';

/** Credentials the fake EC2 accepts (it checks none). */
export const FAKE_AWS_CREDENTIALS = { accessKeyId: 'AKIABENCHEXAMPLE0000', secretAccessKey: 'bench/secret/example/key/0000000000000000' };

/** The flavors a full run resyncs, in order. */
export const NOOP_FLAVORS: readonly SeedFlavor[] = ['aws', 'static'];

interface FlavorResult {
  flavor: SeedFlavor;
  instances: number;
  seedMs: number;
  totalMs: number;
  listScopeMs: number;
  listOwnedMs: number;
  mapAndPlanMs: number;
  changes: number;
  writes: number;
  requests: Record<string, number>;
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
      provider = new AwsProvider(block, { selector: benchConfig().mapping.selector, credentials: FAKE_AWS_CREDENTIALS });
      scopeKey = AWS_SCOPE;
    } else {
      writeStaticInventory(inventory, n);
      provider = createStaticProvider({ type: 'static', name: STATIC_NAME, inventory });
      scopeKey = STATIC_SCOPE;
    }
    const config = benchConfig();
    const writer = new Writer({ api: createKubeApi(loadKubeConfig({ kubeconfig })), ownerId: BENCH_OWNER, fieldManager: config.kubernetes.fieldManager, ensureServiceAccounts: true });
    let listOwnedMs = 0;
    const deps: ReconcileDeps = {
      config,
      clock: localClock,
      providers: [provider],
      listOwned: shareListings(async (keep) => {
        const t = performance.now();
        const owned = await writer.listOwned(keep);
        listOwnedMs = performance.now() - t;
        return owned;
      }),
      findByName: (name) => writer.findByName(name),
      listForeign: () => writer.listForeign(),
      listMeshServiceObjects: () => writer.listMeshServiceObjects(config.services),
      enqueue: (changes) => queue.enqueue(changes),
      confirm: (scopeKey, observedAt, phase, names) => queue.confirm(scopeKey, observedAt, phase, names),
    };
    await host.call({ op: 'reset' });
    progress('noop-resync', `${flavor}: resync of ${n} instances`);
    const started = performance.now();
    const result = await resyncScope(deps, scopeKey);
    const totalMs = performance.now() - started;
    const counts = await host.counts();
    if (!result.observation.listing.complete || result.observation.entries.length !== n || result.owned !== n) {
      throw new Error(`${flavor}: the resync saw ${result.observation.entries.length} desired and ${result.owned} owned entries, complete ${result.observation.listing.complete}`);
    }
    const listScopeMs = result.observation.durationMs;
    const requests: Record<string, number> = {};
    for (const [verb, count] of Object.entries(counts.all)) if (count > 0) requests[verb] = count;
    const memory = process.memoryUsage();
    return {
      flavor,
      instances: n,
      seedMs: round(seeded.ms),
      totalMs: round(totalMs),
      listScopeMs: round(listScopeMs),
      listOwnedMs: round(listOwnedMs),
      mapAndPlanMs: round(totalMs - listScopeMs - listOwnedMs),
      changes: result.plan.changes.length,
      writes: counts.allWrites,
      requests,
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

/** The no-op resync scenario. */
export const noopResync: Scenario = {
  name: 'noop-resync',
  title: 'No-op resync',
  async run(options: BenchOptions): Promise<ScenarioResult> {
    const n = options.quick ? 10_000 : 100_000;
    const prefix = scenarioPrefix(options, this.name);
    const redis = createRedis(options.redisUrl, { role: 'producer' });
    const results: FlavorResult[] = [];
    try {
      for (const flavor of NOOP_FLAVORS) results.push(await resyncFlavor(flavor, n, options, prefix, redis));
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
        { figure: `${r.flavor}: time (list and map the scope, page by page + list owned + plan)`, value: `${round(r.totalMs / 1000, 2)} s (${round(r.listScopeMs / 1000, 2)} + ${round(r.listOwnedMs / 1000, 2)} + ${round(r.mapAndPlanMs / 1000, 2)})` },
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
        atMost(`no-op resync ${n.toLocaleString('en-US')}, ${r.flavor} provider: time`, round(r.totalMs / 1000, 2), r.flavor === 'aws' ? 10 : 5, 's'),
        atMost(`no-op resync ${n.toLocaleString('en-US')}, ${r.flavor} provider: writes`, r.writes, 0, ''),
      ]),
      notes: results.map((r) => `${r.flavor}: listing the scope took ${round((r.listScopeMs / r.totalMs) * 100, 0)}% of the resync; without it, ${round((r.totalMs - r.listScopeMs) / 1000, 2)} s.`),
    };
  },
};
