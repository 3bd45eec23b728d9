// Scenario 2: 10,000 tagged instances into an empty cluster through the real pipeline (resync of a
// static scope → plan → ChangeQueue → BullMQ → startApplyWorker → Writer → client-node), measured
// against what the fake API server takes from a plain loop of creates at the same concurrency
// through the same client.
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { createStaticProvider } from '../../../providers/static/static-provider.ts';
import { mapLimited } from '../../../services/concurrency.ts';
import type { WorkloadEntry } from '../../../services/model.ts';
import { startApplyWorker } from '../../../services/queue/apply-worker.ts';
import { ChangeQueue } from '../../../services/queue/change-queue.ts';
import { RedisDesiredStore } from '../../../services/queue/desired-store.ts';
import { createRedis } from '../../../services/queue/redis.ts';
import { localClock } from '../../../services/stamp.ts';
import { type ReconcileDeps, resyncScope } from '../../../services/sync/reconcile.ts';
import { listingOf, shareListings } from '../../../services/sync/shared-listing.ts';
import { createKubeApi, type KubeApi } from '../../../services/writer/kube-api.ts';
import { loadKubeConfig } from '../../../services/writer/kubeconfig.ts';
import { Writer } from '../../../services/writer/writer.ts';
import { cleanupPrefix } from '../../helpers/serve.ts';
import { BENCH_OWNER, benchConfig, benchEntriesOf, STATIC_NAME, STATIC_SCOPE, writeStaticInventory } from '../fixtures.ts';
import { coreShare, FakeHost, type VerbCounts } from '../host-protocol.ts';
import { atLeast, ownCpuSeconds, redisCpuSeconds, round, until } from '../measure.ts';
import { type BenchOptions, progress, type Scenario, type ScenarioResult, scenarioPrefix } from '../scenario-types.ts';

/** Creates every entry with `concurrency` requests in flight; resolves to the elapsed milliseconds. */
async function createLoop(api: KubeApi, entries: readonly WorkloadEntry[], concurrency: number): Promise<number> {
  const started = performance.now();
  await mapLimited(entries, concurrency, (entry) => api.createEntry(entry, { fieldManager: 'vm-mesh-sync' }));
  return performance.now() - started;
}

/** Requests per entry by verb, for the evidence of what a pipeline write costs. */
function perEntry(counts: VerbCounts, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [verb, count] of Object.entries(counts.all)) if (round(count / n, 2) > 0) out[verb] = round(count / n, 2);
  return out;
}

/** The cold sync scenario. */
export const coldSync: Scenario = {
  name: 'cold-sync',
  title: 'Cold sync through queue and workers',
  async run(options: BenchOptions): Promise<ScenarioResult> {
    const n = options.quick ? 1_000 : 10_000;
    const inventory = path.join(options.workDir, 'cold-inventory.json');
    const config = benchConfig({ providers: [{ type: 'static', name: STATIC_NAME, inventory }] });
    const concurrency = config.queue.concurrency;
    const prefix = scenarioPrefix(options, this.name);
    const host = new FakeHost();
    const redisConnections: Redis[] = [];
    const closers: Array<() => Promise<unknown>> = [];
    try {
      const { kubeconfig } = await host.startKube(options.latencyMs, path.join(options.workDir, 'cold-kube'));
      const api = createKubeApi(loadKubeConfig({ kubeconfig }));
      const entries = benchEntriesOf('static', n);
      const monitor = createRedis(options.redisUrl, { role: 'worker' });
      redisConnections.push(monitor);

      // Warm both processes' code paths, then start from an empty cluster.
      await createLoop(api, entries.slice(0, Math.min(500, n)), concurrency);
      await host.call({ op: 'clear' });
      await host.call({ op: 'reset' });

      progress(this.name, `raw: ${n} creates, ${concurrency} in flight`);
      let hostCpu = await host.cpu();
      let redisCpu = await redisCpuSeconds(monitor);
      let ownCpu = ownCpuSeconds();
      const rawMs = await createLoop(api, entries, concurrency);
      const rawHostShare = coreShare(hostCpu, await host.cpu());
      const rawOwnShare = (ownCpuSeconds() - ownCpu) / (rawMs / 1000);
      const rawCounts = await host.counts();
      const rawRate = n / (rawMs / 1000);

      await host.call({ op: 'clear' });
      await host.call({ op: 'reset' });
      writeStaticInventory(inventory, n);

      progress(this.name, `pipeline: resync of ${n} instances through the queue`);
      const producer = createRedis(options.redisUrl, { role: 'producer' });
      const workerConnection = createRedis(options.redisUrl, { role: 'worker' });
      redisConnections.push(producer, workerConnection);
      const queue = new ChangeQueue({
        connection: producer,
        prefix,
        store: new RedisDesiredStore(producer, prefix),
        attempts: config.queue.attempts,
        backoffMs: config.queue.backoff,
        keepFailed: config.queue.keepFailed,
      });
      closers.push(() => queue.close());
      const writer = new Writer({ api, ownerId: BENCH_OWNER, fieldManager: config.kubernetes.fieldManager, ensureServiceAccounts: true });
      let applied = 0;
      let failed = 0;
      let lastAppliedAt = 0;
      const worker = startApplyWorker({
        connection: options.redisUrl,
        prefix,
        store: new RedisDesiredStore(workerConnection, prefix),
        writer,
        concurrency,
        onResult: (_key, outcome, info) => {
          if (outcome instanceof Error) {
            if (info.final) failed++;
            return;
          }
          applied++;
          lastAppliedAt = performance.now();
        },
      });
      closers.push(() => worker.close());
      await worker.worker.waitUntilReady();

      let enqueueStarted = 0;
      let enqueueMs = 0;
      let listOwnedMs = 0;
      const deps: ReconcileDeps = {
        config,
        clock: localClock,
        providers: [createStaticProvider({ type: 'static', name: STATIC_NAME, inventory })],
        listOwned: shareListings(async (keep) => {
          const t = performance.now();
          const owned = await listingOf(writer)(keep);
          listOwnedMs = performance.now() - t;
          return owned;
        }),
        findByNames: (names) => writer.findByNames(names),
        findByName: (name) => writer.findByName(name),
        listForeign: () => writer.listForeign(),
        listMeshServiceObjects: () => writer.listMeshServiceObjects(config.services),
        enqueue: async (changes) => {
          enqueueStarted = performance.now();
          // Host and Redis readings start with the apply phase.
          hostCpu = await host.cpu();
          redisCpu = await redisCpuSeconds(monitor);
          ownCpu = ownCpuSeconds();
          const result = await queue.enqueue(changes);
          enqueueMs = performance.now() - enqueueStarted;
          return result;
        },
        confirm: (scopeKey, observedAt, phase, names) => queue.confirm(scopeKey, observedAt, phase, names),
      };
      const started = performance.now();
      const result = await resyncScope(deps, STATIC_SCOPE);
      if (result.plan.summary.create !== n) throw new Error(`expected ${n} creates, the plan has ${JSON.stringify(result.plan.summary)}`);
      await until(`${n} entries applied`, () => applied + failed >= n, 600_000, 5);
      const applyMs = lastAppliedAt - enqueueStarted;
      const pipeHostShare = coreShare(hostCpu, await host.cpu());
      const pipeRedisShare = (await redisCpuSeconds(monitor)) - redisCpu;
      const pipeOwnShare = (ownCpuSeconds() - ownCpu) / (applyMs / 1000);
      const pipeCounts = await host.counts();
      const size = await host.call<number>({ op: 'size' });
      if (failed > 0 || size !== n) throw new Error(`pipeline ended with ${size} entries and ${failed} failed jobs`);
      const pipeRate = n / (applyMs / 1000);
      const ratio = pipeRate / rawRate;
      const totalMs = lastAppliedAt - started;
      const listingMs = result.observation.durationMs;

      const figures = {
        instances: n,
        concurrency,
        raw: {
          ms: round(rawMs),
          createsPerSecond: round(rawRate),
          requests: rawCounts.all,
          fakeServerCoreShare: round(rawHostShare, 2),
          clientCoreShare: round(rawOwnShare, 2),
        },
        pipeline: {
          totalMs: round(totalMs),
          listingMs: round(listingMs),
          listOwnedMs: round(listOwnedMs),
          enqueueMs: round(enqueueMs),
          applyMs: round(applyMs),
          writesPerSecond: round(pipeRate),
          requests: pipeCounts.all,
          requestsPerEntry: perEntry(pipeCounts, n),
          fakeServerCoreShare: round(pipeHostShare, 2),
          redisCoreShare: round(pipeRedisShare / (applyMs / 1000), 2),
          workerProcessCoreShare: round(pipeOwnShare, 2),
        },
        ratio: round(ratio, 3),
      };
      const requestsPerEntry = Object.entries(figures.pipeline.requestsPerEntry)
        .map(([verb, k]) => `${k} ${verb}`)
        .join(' + ');
      return {
        name: this.name,
        title: this.title,
        figures,
        rows: [
          { figure: 'input', value: `${n.toLocaleString('en-US')} instances, empty cluster, ${concurrency} jobs / requests in flight` },
          { figure: 'raw API capacity (plain create loop)', value: `${Math.round(rawRate).toLocaleString('en-US')} creates/s (${round(rawMs / 1000, 2)} s)` },
          { figure: 'pipeline writes (enqueue → last write)', value: `${Math.round(pipeRate).toLocaleString('en-US')} entries/s (${round(applyMs / 1000, 2)} s)` },
          { figure: 'pipeline / raw', value: `${round(ratio * 100, 0)}%` },
          { figure: 'resync before the queue (list scope + map + list owned + plan)', value: `${round((enqueueStarted - started) / 1000, 2)} s (listing ${round(listingMs / 1000, 2)} s)` },
          { figure: 'end to end (resync start → last write)', value: `${round(totalMs / 1000, 2)} s` },
          { figure: 'API requests per entry (pipeline)', value: requestsPerEntry },
          {
            figure: 'CPU, share of one core (raw | pipeline)',
            value: `fake API ${round(rawHostShare, 2)} | ${round(pipeHostShare, 2)}; client/worker ${round(rawOwnShare, 2)} | ${round(pipeOwnShare, 2)}; Redis – | ${figures.pipeline.redisCoreShare}`,
          },
        ],
        goals: [atLeast('cold sync, pipeline / raw API capacity', round(ratio * 100, 0), 80, '%')],
        notes: [
          `the pipeline sent ${round(Object.values(figures.pipeline.requestsPerEntry).reduce((a, b) => a + b, 0), 2)} API request(s) per entry (${requestsPerEntry}); the raw loop sends 1.`,
        ],
      };
    } finally {
      for (const close of closers.reverse()) await close().catch(() => {});
      await Promise.allSettled(redisConnections.map((r) => r.quit()));
      await host.stop();
      await cleanupPrefix(prefix, options.redisUrl);
      rmSync(inventory, { force: true });
    }
  },
};
