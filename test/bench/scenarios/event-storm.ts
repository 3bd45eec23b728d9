// Scenario 4: EventBridge events posted to a running `serve` (AWS provider, API-key webhook) while
// the fake EC2 changes underneath. (a) 1,000 instances get the selector tag within one second, one
// event each: how long from the webhook's answer until each entry is in the cluster. (b) 10
// instances get 100 tag changes each within one second: how long until each entry shows the last
// one, and how many writes that took (the queue should coalesce the rest).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { stringify } from 'yaml';
import { APPLY_QUEUE_NAME } from '../../../services/queue/change-queue.ts';
import { createRedis } from '../../../services/queue/redis.ts';
import { RefreshSet } from '../../../services/queue/refresh-set.ts';
import { REFRESH_QUEUE_NAME, RESYNC_QUEUE_NAME } from '../../../services/runtime/jobs.ts';
import { cleanupPrefix, freePort, ServeProcess } from '../../helpers/serve.ts';
import { trackChild } from '../children.ts';
import { AWS_ACCOUNT, AWS_NAME, AWS_REGION, awsId, benchTags } from '../fixtures.ts';
import { coreShare, FakeHost, type TrackTarget } from '../host-protocol.ts';
import { atMost, latencyStats, type LatencyStats, procCpuSeconds, redisCpuSeconds, round, sleep, until } from '../measure.ts';
import { type BenchOptions, progress, type Scenario, type ScenarioResult, scenarioPrefix, serveNodeOptions } from '../scenario-types.ts';
import { FAKE_AWS_ENV } from './noop-resync.ts';

/** The webhook key of `serve` in the scenarios that post events. */
export const API_KEY = 'bench-webhook-key-0123456789';
const NAMESPACE = 'default';
/** Instances of case (b) are 0..9; those of case (a) start here. */
const FIRST_NEW = 1000;

/** A "Tag Change on Resource" event for one instance, as an EventBridge API destination posts it. */
function tagChangeEvent(i: number, tags: Record<string, string>): unknown {
  return {
    version: '0',
    id: `bench-${i}-${Math.random().toString(36).slice(2, 10)}`,
    'detail-type': 'Tag Change on Resource',
    source: 'aws.tag',
    account: AWS_ACCOUNT,
    time: new Date().toISOString(),
    region: AWS_REGION,
    resources: [`arn:aws:ec2:${AWS_REGION}:${AWS_ACCOUNT}:instance/${awsId(i)}`],
    detail: { 'changed-tag-keys': Object.keys(tags), service: 'ec2', 'resource-type': 'instance', version: 1, tags },
  };
}

interface Delivery {
  i: number;
  sentAt: number;
  answeredAt: number;
  status: number;
}

async function post(port: number, i: number, tags: Record<string, string>): Promise<Delivery> {
  const sentAt = Date.now();
  const res = await fetch(`http://127.0.0.1:${port}/webhooks/aws`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': API_KEY },
    body: JSON.stringify(tagChangeEvent(i, tags)),
  });
  await res.arrayBuffer();
  return { i, sentAt, answeredAt: Date.now(), status: res.status };
}

/**
 * Sends `rounds` ticks of events spread evenly over `spreadMs`; each tick first changes the fake
 * EC2 (as the cloud does before it emits the event) and then posts one event per instance.
 */
async function storm(host: FakeHost, port: number, rounds: Array<Array<{ i: number; tags: Record<string, string> }>>, spreadMs: number): Promise<Delivery[]> {
  const started = Date.now();
  const pending: Array<Promise<Delivery>> = [];
  for (let r = 0; r < rounds.length; r++) {
    const due = started + (r * spreadMs) / rounds.length;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    const tick = rounds[r]!;
    await host.call({ op: 'ec2SetTags', items: tick });
    for (const { i, tags } of tick) pending.push(post(port, i, tags));
  }
  return Promise.all(pending);
}

async function waitSeen(host: FakeHost, count: number, timeoutMs: number): Promise<Record<string, number | null>> {
  let seen: Record<string, number | null> = {};
  await until(
    `${count} tracked entries`,
    async () => {
      seen = (await host.call<{ seen: Record<string, number | null> }>({ op: 'tracked' })).seen;
      return Object.values(seen).filter((v) => v !== null).length >= count;
    },
    timeoutMs,
    100,
  ).catch(() => {});
  return seen;
}

/**
 * True when no queue of `serve` has work left: resyncs, refreshes (from events) and applies.
 * Delayed jobs count except on the resync queue, where the one delayed job is the next periodic
 * resync, an hour away.
 */
async function queuesDrained(resync: Queue, others: readonly Queue[], refreshes: RefreshSet): Promise<boolean> {
  const counts: Array<Record<string, number>> = [await resync.getJobCounts('waiting', 'active', 'prioritized')];
  for (const q of others) counts.push(await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized'));
  counts.push({ ...(await refreshes.counts()) });
  return counts.every((c) => Object.values(c).every((n) => n === 0));
}

function entryName(i: number): string {
  return `aws-${awsId(i)}`;
}

/**
 * `serve` with one AWS block whose webhook takes API_KEY in `x-api-key`, against the fake EC2 at
 * `ec2`, resyncing once an hour; `server` is its server section. Resolves once it is started.
 */
export async function startWebhookServe(at: { options: BenchOptions; dir: string; prefix: string; ec2: string; kubeconfig: string; server?: Record<string, unknown> }): Promise<ServeProcess> {
  const configFile = path.join(at.dir, 'config.yaml');
  writeFileSync(
    configFile,
    stringify({
      ownerId: 'bench',
      providers: [
        {
          type: 'aws',
          name: AWS_NAME,
          regions: [AWS_REGION],
          accounts: [{ id: AWS_ACCOUNT }],
          endpoint: { ec2: at.ec2 },
          webhook: { apiKey: { header: 'x-api-key', value: { env: 'BENCH_WEBHOOK_KEY' } } },
        },
      ],
      kubernetes: { kubeconfig: at.kubeconfig },
      redis: { url: at.options.redisUrl, prefix: at.prefix },
      resync: { interval: '1h' },
      ...(at.server ? { server: at.server } : {}),
      log: { level: 'warn' },
    }),
  );
  const proc = new ServeProcess(configFile, await freePort(), {
    ...FAKE_AWS_ENV,
    BENCH_WEBHOOK_KEY: API_KEY,
    ...(serveNodeOptions() ? { NODE_OPTIONS: serveNodeOptions() } : {}),
  });
  trackChild(proc.child);
  await proc.started(60_000);
  return proc;
}

/** The event storm scenario. */
export const eventStorm: Scenario = {
  name: 'event-storm',
  title: 'Event storm through the webhook',
  async run(options: BenchOptions): Promise<ScenarioResult> {
    const many = options.quick ? 100 : 1_000;
    const few = 10;
    const perInstance = options.quick ? 20 : 100;
    const prefix = scenarioPrefix(options, this.name);
    const host = new FakeHost();
    let proc: ServeProcess | undefined;
    const redis = createRedis(options.redisUrl, { role: 'worker' });
    const resyncQueue = new Queue(RESYNC_QUEUE_NAME, { connection: redis, prefix });
    const others = [REFRESH_QUEUE_NAME, APPLY_QUEUE_NAME].map((name) => new Queue(name, { connection: redis, prefix }));
    const queues = [resyncQueue, ...others];
    const refreshSet = new RefreshSet(redis, prefix);
    for (const q of queues) q.on('error', () => {});
    try {
      const dir = path.join(options.workDir, 'storm');
      const { kubeconfig } = await host.startKube(options.latencyMs, dir);
      const { url } = await host.call<{ url: string }>({ op: 'startEc2' });
      await host.call({ op: 'ec2Put', from: 0, count: few, tagged: true });
      await host.call({ op: 'ec2Put', from: FIRST_NEW, count: many, tagged: false });
      // Only the first resync: everything after it comes from events.
      proc = await startWebhookServe({ options, dir, prefix, ec2: url, kubeconfig });
      const serve = proc;
      await until('serve ready', async () => (await serve.get('/readyz')).status === 200, 60_000, 200);
      await until(`${few} entries of the first resync`, async () => (await host.call<number>({ op: 'size' })) >= few, 60_000, 100);
      await until('queues drained', () => queuesDrained(resyncQueue, others, refreshSet), 60_000, 200);

      // (a) many instances, one event each.
      progress(this.name, `(a) ${many} instances tagged, one event each, within 1 s`);
      await host.call({ op: 'track', targets: Array.from({ length: many }, (_, k): TrackTarget => ({ namespace: NAMESPACE, name: entryName(FIRST_NEW + k) })) });
      const ticks = 100;
      const roundsA = Array.from({ length: ticks }, (_, t) =>
        Array.from({ length: Math.ceil(many / ticks) }, (_, k) => FIRST_NEW + t * Math.ceil(many / ticks) + k)
          .filter((i) => i < FIRST_NEW + many)
          .map((i) => ({ i, tags: benchTags(i) })),
      );
      const servePid = serve.child.pid!;
      const cpuBefore = { serve: procCpuSeconds(servePid), host: await host.cpu(), redis: await redisCpuSeconds(redis) };
      const stormStarted = Date.now();
      const deliveriesA = await storm(host, serve.port, roundsA, 1000);
      const sentWithinMs = Math.max(...deliveriesA.map((d) => d.sentAt)) - stormStarted;
      const seenA = await waitSeen(host, many, 120_000);
      const latA: number[] = [];
      let missingA = 0;
      for (const d of deliveriesA) {
        const at = seenA[`${NAMESPACE}/${entryName(d.i)}`];
        // An entry that never arrived counts as infinitely late, so that it cannot hide in a percentile.
        if (at === null || at === undefined) {
          missingA++;
          latA.push(Number.POSITIVE_INFINITY);
        } else latA.push(Math.max(0, at - d.answeredAt));
      }
      const answerA = latencyStats(deliveriesA.map((d) => d.answeredAt - d.sentAt));
      const rejectedA = deliveriesA.filter((d) => d.status !== 202).length;
      const statsA = latencyStats(latA);
      const lastSeenA = Math.max(...Object.values(seenA).map((v) => v ?? 0));
      await until('queues drained', () => queuesDrained(resyncQueue, others, refreshSet), 120_000, 200);
      const drainedA = Date.now();
      // How busy each process was from the first event until the last job ended.
      const busySeconds = (drainedA - stormStarted) / 1000;
      const cpuA = {
        serve: round((procCpuSeconds(servePid) - cpuBefore.serve) / busySeconds, 2),
        fakes: round(coreShare(cpuBefore.host, await host.cpu()), 2),
        redis: round(((await redisCpuSeconds(redis)) - cpuBefore.redis) / busySeconds, 2),
      };

      // (b) few instances, many events each; the last tag value must win.
      await sleep(500);
      await host.call({ op: 'reset' });
      progress(this.name, `(b) ${few} instances, ${perInstance} tag changes each, within 1 s`);
      const finalVersion = `r${perInstance}`;
      await host.call({
        op: 'track',
        targets: Array.from({ length: few }, (_, i): TrackTarget => ({ namespace: NAMESPACE, name: entryName(i), label: ['version', finalVersion] })),
      });
      const roundsB = Array.from({ length: perInstance }, (_, r) =>
        Array.from({ length: few }, (_, i) => ({ i, tags: { ...benchTags(i), 'mesh-version': `r${r + 1}` } })),
      );
      const deliveriesB = await storm(host, serve.port, roundsB, 1000);
      const seenB = await waitSeen(host, few, 120_000);
      await until('queues drained', () => queuesDrained(resyncQueue, others, refreshSet), 120_000, 200);
      await sleep(1000);
      const countsB = await host.counts();
      const changesB = (await host.call<{ changes: Record<string, number> }>({ op: 'tracked' })).changes;
      const latB: number[] = [];
      let missingB = 0;
      for (let i = 0; i < few; i++) {
        const last = deliveriesB.filter((d) => d.i === i).reduce((a, b) => (b.answeredAt > a.answeredAt ? b : a));
        const at = seenB[`${NAMESPACE}/${entryName(i)}`];
        if (at === null || at === undefined) {
          missingB++;
          latB.push(Number.POSITIVE_INFINITY);
        } else latB.push(Math.max(0, at - last.answeredAt));
      }
      const statsB = latencyStats(latB);
      const storedChanges = Object.values(changesB).reduce((a, b) => a + b, 0);
      const writesPerInstance = countsB.writes / few;

      await proc.stop('SIGTERM');
      const figures = {
        a: {
          instances: many,
          events: deliveriesA.length,
          sentWithinMs,
          rejected: rejectedA,
          webhookAnswerMs: answerA,
          answerToEntryMs: statsA,
          missing: missingA,
          allInClusterAfterMs: lastSeenA - stormStarted,
          queuesDrainedAfterMs: drainedA - stormStarted,
          coreShareUntilDrained: cpuA,
        },
        b: {
          instances: few,
          eventsPerInstance: perInstance,
          events: deliveriesB.length,
          rejected: deliveriesB.filter((d) => d.status !== 202).length,
          lastAnswerToFinalEntryMs: statsB,
          missing: missingB,
          writeRequests: countsB.writes,
          writeRequestsPerInstance: round(writesPerInstance, 1),
          storedChanges,
          requests: countsB.all,
        },
      };
      const show = (s: LatencyStats): string => `p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms`;
      return {
        name: this.name,
        title: this.title,
        figures,
        rows: [
          { figure: `(a) ${many} instances, 1 event each, sent within`, value: `${sentWithinMs} ms; answers ${show(answerA)}; ${rejectedA} refused` },
          { figure: '(a) webhook answer → entry in cluster', value: `${show(statsA)}${missingA ? `; ${missingA} never arrived` : ''}` },
          {
            figure: '(a) all entries in cluster / all queues empty, after storm start',
            value: `${round((lastSeenA - stormStarted) / 1000, 2)} s / ${round((drainedA - stormStarted) / 1000, 2)} s (${Math.round(many / ((drainedA - stormStarted) / 1000))} events handled per second)`,
          },
          { figure: '(a) CPU until the queues were empty, share of one core', value: `serve ${cpuA.serve}; fake EC2 + API server ${cpuA.fakes}; Redis ${cpuA.redis}` },
          { figure: `(b) ${few} instances × ${perInstance} events: last answer → final entry`, value: `${show(statsB)}${missingB ? `; ${missingB} never arrived` : ''}` },
          { figure: '(b) write requests (per instance) / stored changes', value: `${countsB.writes} (${round(writesPerInstance, 1)}) / ${storedChanges}` },
        ],
        goals: [
          atMost(`event → entry p99, ${many} instances`, statsA.p99, 1000, 'ms'),
          atMost(`event → entry p99, ${few} instances × ${perInstance} events`, statsB.p99, 1000, 'ms'),
          atMost(`writes per instance, ${few} instances × ${perInstance} events`, round(writesPerInstance, 1), 3, ''),
        ],
        notes: [],
      };
    } finally {
      if (proc) await Promise.race([proc.stop('SIGKILL'), sleep(5000)]);
      await Promise.allSettled(queues.map((q) => q.close()));
      await redis.quit().catch(() => {});
      await host.stop();
      await cleanupPrefix(prefix, options.redisUrl);
    }
  },
};
