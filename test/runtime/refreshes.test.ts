// The refresh loop on the real pipeline (static provider, real Redis, apply workers, the fake API
// server): due instances refreshed in batches, a scope that fails retried with backoff and given
// up after REFRESH_ATTEMPTS tries, whatever value its failure rejects with.
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Provider } from '../../providers/provider.ts';
import { createLogger } from '../../services/logger.ts';
import { Metrics } from '../../services/metrics.ts';
import type { InstanceRef } from '../../services/model.ts';
import { createRedis } from '../../services/queue/redis.ts';
import { RefreshSet } from '../../services/queue/refresh-set.ts';
import { EventRecorder } from '../../services/runtime/event-recorder.ts';
import { REFRESH_ATTEMPTS, refreshId } from '../../services/runtime/jobs.ts';
import { Refreshes } from '../../services/runtime/refreshes.ts';
import { sampleValue } from '../../services/server/metrics-sample.test-helper.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { meshMachine, Workspace } from '../helpers/cli.ts';
import { Pipeline } from '../helpers/pipeline.ts';
import { waitFor } from '../helpers/serve.ts';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('the refresh loop', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;
  let pipeline: Pipeline;
  let connection: Redis;
  let refreshes: Refreshes | undefined;
  let lines: Array<Record<string, unknown>>;
  let metrics: Metrics;

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ws = new Workspace();
    ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) } });
    ws.writeInventory(Array.from({ length: 30 }, (_, i) => meshMachine(`vm-${i}`, `10.0.0.${i + 1}`)));
    pipeline = await Pipeline.start(ws.configFile, server);
    connection = createRedis(REDIS_URL, { role: 'worker' });
    lines = [];
    metrics = new Metrics();
  });
  afterEach(async () => {
    await refreshes?.close();
    refreshes = undefined;
    await connection.quit();
    await pipeline.close();
    await server.close();
    ws.remove();
  });

  /** A loop over the pipeline's first replica; `describe` replaces the provider's describe when given. */
  const start = (describe?: Provider['describe']): { set: RefreshSet; describes: InstanceRef[][] } => {
    const describes: InstanceRef[][] = [];
    const deps = pipeline.deps;
    const counted: Provider['describe'] = async (refs, signal) => {
      describes.push([...refs]);
      return describe ? describe(refs, signal) : deps.providers[0]!.describe(refs, signal);
    };
    // The provider itself for everything else (its methods read its private fields).
    const providers = deps.providers.map(
      (p) =>
        new Proxy(p, {
          get: (target, prop) => {
            if (prop === 'describe') return counted;
            const value = Reflect.get(target, prop, target) as unknown;
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
    );
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const set = new RefreshSet(connection, pipeline.prefix);
    refreshes = new Refreshes({
      deps: { ...deps, providers },
      set,
      metrics,
      logger: createLogger('warn', sink),
      events: new EventRecorder({ createEvent: async () => {} }),
      leaseMs: 60_000,
      backoffMs: 10,
    });
    refreshes.start();
    return { set, describes };
  };

  const ref = (i: number): InstanceRef => ({ provider: 'static', account: 'onprem', id: `vm-${i}` });
  const request = async (set: RefreshSet, refs: InstanceRef[]): Promise<void> => {
    await set.request(
      refs.map((r) => ({ id: refreshId(r), ref: r })),
      0,
    );
    refreshes!.wake();
  };

  it('refreshes what is due in batches, one describe per batch, and leaves nothing in the set', async () => {
    const { set, describes } = start();
    await request(
      set,
      Array.from({ length: 30 }, (_, i) => ref(i)),
    );
    await waitFor(() => pipeline.entries().length === 30, 20_000, () => JSON.stringify(lines));
    expect(describes.length).toBeLessThan(30);
    expect(new Set(describes.flat().map((r) => r.id)).size).toBe(30);
    await waitFor(async () => Object.values(await set.counts()).every((n) => n === 0), 10_000, () => 'the refresh set did not empty');
  });

  it.each([
    ['an error', () => new Error('the inventory cannot be read')],
    ['null', () => null],
    ['undefined', () => undefined],
  ])('a scope whose describe rejects with %s is tried up to the limit, each failure said and counted, then given up', async (_, reason) => {
    const { set, describes } = start(() => Promise.reject(reason()));
    await request(set, [ref(1)]);
    await waitFor(() => lines.some((l) => l.attempt === REFRESH_ATTEMPTS), 20_000, () => JSON.stringify(lines));
    await waitFor(async () => Object.values(await set.counts()).every((n) => n === 0), 10_000, () => 'the refresh set did not empty');
    expect(describes).toHaveLength(REFRESH_ATTEMPTS);
    const failures = lines.filter((l) => String(l.msg).startsWith('refresh of an instance failed'));
    expect(failures.map((l) => l.attempt)).toEqual(Array.from({ length: REFRESH_ATTEMPTS }, (_, i) => i + 1));
    expect(failures.at(-1)!.msg).toBe('refresh of an instance failed for good; the next resync covers it');
    expect(sampleValue(await metrics.registry.metrics(), 'vms_refresh_failures_total', { provider: 'static', code: 'VMS_ERR_INTERNAL' })).toBe(REFRESH_ATTEMPTS);
    expect(pipeline.entries()).toEqual([]);
  });
});
