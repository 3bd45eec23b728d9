// The serve pipeline in one test process, with every real part but the HTTP server and the job
// schedulers: config and providers as `serve` builds them, resync and refresh through the one
// planner, real Redis (the desired store, the queue, the clock), apply workers with real writers,
// and the fake API server. Tests drive resyncs and refreshes in the order they want.
import type { Redis } from 'ioredis';
import { loadConfig } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { writerNamespaces } from '../../services/mapping/index.ts';
import { createProviders } from '../../providers/index.ts';
import type { Provider } from '../../providers/provider.ts';
import type { Change, WorkloadEntry } from '../../services/model.ts';
import { type ApplyWorker, startApplyWorker } from '../../services/queue/apply-worker.ts';
import { ChangeQueue } from '../../services/queue/change-queue.ts';
import { RedisDesiredStore } from '../../services/queue/desired-store.ts';
import { createRedis, redisClock } from '../../services/queue/redis.ts';
import type { Clock } from '../../services/stamp.ts';
import { configuredScopes, type ReconcileDeps } from '../../services/sync/reconcile.ts';
import { listingOf, shareListings } from '../../services/sync/shared-listing.ts';
import { createKubeApi } from '../../services/writer/kube-api.ts';
import { Writer } from '../../services/writer/writer.ts';
import { afterEach, beforeEach } from 'vitest';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { Workspace } from './cli.ts';
import { cleanupPrefix, uniquePrefix, waitFor } from './serve.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** One replica: its providers, writer, queue producer and apply worker. */
export interface Replica {
  deps: ReconcileDeps;
  writer: Writer;
  queue: ChangeQueue;
  /** Every change this replica enqueued, in order. */
  enqueued: Change[];
}

/** The pipeline of one or more replicas sharing Redis and the API server. */
export class Pipeline {
  readonly config: Readonly<Config>;
  readonly prefix: string;
  readonly replicas: Replica[] = [];
  readonly #server: FakeKubeApiServer;
  readonly #connections: Redis[] = [];
  readonly #workers: ApplyWorker[] = [];
  readonly #providers: Provider[] = [];

  private constructor(config: Readonly<Config>, server: FakeKubeApiServer) {
    this.config = config;
    this.#server = server;
    this.prefix = uniquePrefix('pipeline');
  }

  /**
   * Starts `replicas` replicas on the config file. `clock(i)` overrides replica i's clock (the
   * default is Redis TIME, as in serve); a test can hand one replica a skewed clock of its own.
   */
  static async start(
    configFile: string,
    server: FakeKubeApiServer,
    options: { replicas?: number; clock?: (replica: number, redis: Redis) => Clock; providers?: () => Provider[] } = {},
  ): Promise<Pipeline> {
    const config = loadConfig(configFile, {});
    const pipeline = new Pipeline(config, server);
    for (let i = 0; i < (options.replicas ?? 1); i++) await pipeline.#addReplica(i, options.clock, options.providers);
    return pipeline;
  }

  async #addReplica(index: number, clockOf: ((replica: number, redis: Redis) => Clock) | undefined, providersOf: (() => Provider[]) | undefined): Promise<void> {
    const { config, prefix } = this;
    const producer = this.#connect('producer');
    const providers = providersOf ? providersOf() : await createProviders(config.providers, { mapping: config.mapping, env: {} });
    this.#providers.push(...providers);
    const writer = new Writer({
      api: createKubeApi(this.#server.kubeConfig()),
      ownerId: config.ownerId,
      fieldManager: config.kubernetes.fieldManager,
      ensureServiceAccounts: config.mapping.serviceAccount.ensure,
      ...writerNamespaces(config),
    });
    const queue = new ChangeQueue({ connection: producer, prefix, store: new RedisDesiredStore(producer, prefix), attempts: 10, backoffMs: 20, keepFailed: 100 });
    const enqueued: Change[] = [];
    const deps: ReconcileDeps = {
      config,
      providers,
      // As serve lists: another configured scope's entries the plan passes over are not held.
      listOwned: shareListings(listingOf(writer), configuredScopes(providers)),
      findByNames: (names) => writer.findByNames(names),
      findByName: (name) => writer.findByName(name),
      listForeign: () => writer.listForeign(),
      listMeshServiceObjects: () => writer.listMeshServiceObjects(config.services),
      enqueue: async (changes) => {
        enqueued.push(...changes);
        return queue.enqueue(changes);
      },
      confirm: (scopeKey, observedAt, phase, names) => queue.confirm(scopeKey, observedAt, phase, names),
      clock: clockOf ? clockOf(index, producer) : redisClock(producer),
    };
    this.#workers.push(
      startApplyWorker({ connection: REDIS_URL, prefix, store: new RedisDesiredStore(this.#connect('worker'), prefix), writer, concurrency: 4 }),
    );
    this.replicas.push({ deps, writer, queue, enqueued });
  }

  #connect(role: 'producer' | 'worker'): Redis {
    const redis = createRedis(REDIS_URL, { role });
    this.#connections.push(redis);
    return redis;
  }

  /** The first replica's reconcile deps. */
  get deps(): ReconcileDeps {
    return this.replicas[0]!.deps;
  }

  /** Waits until no apply job is waiting, delayed or running. */
  async drain(timeoutMs = 20_000): Promise<void> {
    const queue = this.replicas[0]!.queue;
    await waitFor(
      async () => {
        const c = await queue.counts();
        return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) === 0;
      },
      timeoutMs,
      () => 'the apply queue did not drain',
    );
  }

  /** Jobs that failed for good. */
  async failedJobs(): Promise<number> {
    return (await this.replicas[0]!.queue.counts()).failed ?? 0;
  }

  /** Every WorkloadEntry in the fake cluster. */
  entries(): WorkloadEntry[] {
    return this.#server.objects('workloadentries') as unknown as WorkloadEntry[];
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.close()));
    await Promise.all(this.replicas.map((r) => r.queue.close()));
    await Promise.allSettled(this.#providers.map((p) => p.close?.()));
    await Promise.all(this.#connections.map((c) => c.quit().catch(() => c.disconnect())));
    await cleanupPrefix(this.prefix);
  }
}

/** What each test of a suite that drives the pipeline has (pipelineWorld). */
export interface PipelineWorld {
  /** The fake API server, started before each test. */
  readonly server: FakeKubeApiServer;
  /** A workspace of the test's own. */
  readonly ws: Workspace;
  /** The pipeline the test started; an error before `start`. */
  readonly pipeline: Pipeline;
  /** Starts the pipeline on the workspace's config file and the server. */
  start(options?: Parameters<typeof Pipeline.start>[2]): Promise<Pipeline>;
}

/**
 * Registers, for the suite it is called in, a fake API server and a workspace made before each
 * test, and the test's pipeline, the server and the workspace closed after it.
 */
export function pipelineWorld(): PipelineWorld {
  let server: FakeKubeApiServer | undefined;
  let ws: Workspace | undefined;
  let pipeline: Pipeline | undefined;
  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ws = new Workspace();
  });
  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
    await server?.close();
    ws?.remove();
  });
  const world: PipelineWorld = {
    get server() {
      if (!server) throw new Error('the fake API server is made before each test');
      return server;
    },
    get ws() {
      if (!ws) throw new Error('the workspace is made before each test');
      return ws;
    },
    get pipeline() {
      if (!pipeline) throw new Error('the test has not started its pipeline');
      return pipeline;
    },
    async start(options) {
      pipeline = await Pipeline.start(world.ws.configFile, world.server, options);
      return pipeline;
    },
  };
  return world;
}
