// A sustained webhook load on loopback against a real `serve` (a few hundred requests a second for
// about fifteen seconds, bounded by count and by a deadline): every request is answered with the
// status its kind calls for, the server counts each one, and the process's memory is flat after.
// `serve` runs with the Deployment's NODE_OPTIONS (its V8 heap cap): without a cap V8 grows the heap
// lazily by hundreds of megabytes before collecting, which says nothing about leaks; with it, a leak
// shows as growth or as the process dying of an exhausted heap.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mapLimited } from '../../services/concurrency.ts';
import { sampleValue } from '../../services/server/metrics-sample.test-helper.ts';
import { DEFAULT_ACCOUNT, type FakeEc2, startFakeEc2 } from '../fakes/ec2/ec2-server.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { Workspace } from '../helpers/cli.ts';
import { residentBytes } from '../helpers/process-memory.ts';
import { cleanupPrefix, freePort, ServeProcess, uniquePrefix, waitFor } from '../helpers/serve.ts';

const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', AWS_EC2_METADATA_DISABLED: 'true' };
const API_KEY = 'load-test-key-0123456789';
const STATE_CHANGE = JSON.parse(readFileSync(new URL('../fixtures/aws/ec2-state-change-pending.json', import.meta.url), 'utf8')) as Record<string, unknown>;
const DEPLOYMENT = new URL('../../deploy/base/deployment.yaml', import.meta.url);
const IDS = Array.from({ length: 8 }, (_, i) => `i-0abcdef0123456${String(i).padStart(3, '0')}`);

/** The load: requests per second, how many in all, and how many may be in flight. */
const RATE = 300;
const TOTAL = RATE * 15;
const WARMUP = RATE * 3;
const IN_FLIGHT = 16;
/** Generous: a leak of a few kilobytes per request would exceed it, ordinary heap growth does not. */
const MAX_RSS_GROWTH = 50 * 1024 * 1024;

/** NODE_OPTIONS of the serve container in deploy/base, so that the heap is capped as in a cluster. */
function deployedNodeOptions(): string | undefined {
  for (const doc of parseAllDocuments(readFileSync(DEPLOYMENT, 'utf8'))) {
    const containers = (doc.toJS() as { spec?: { template?: { spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> } } } } | null)?.spec?.template?.spec?.containers;
    const value = containers?.flatMap((c) => c.env ?? []).find((e) => e.name === 'NODE_OPTIONS')?.value;
    if (value !== undefined) return value;
  }
  return undefined;
}

type Kind = 'refresh' | 'ignored' | 'unauthorized' | 'malformed' | 'health';
const EXPECTED_STATUS: Record<Kind, number> = { refresh: 202, ignored: 200, unauthorized: 401, malformed: 400, health: 200 };
// The mix, in tenths.
const MIX: Kind[] = ['refresh', 'refresh', 'refresh', 'refresh', 'ignored', 'ignored', 'unauthorized', 'unauthorized', 'malformed', 'health'];

describe('sustained webhook load', () => {
  let kube: FakeKubeApiServer;
  let ec2: FakeEc2;
  let ws: Workspace;
  let prefix: string;
  let proc: ServeProcess | undefined;

  beforeEach(async () => {
    kube = new FakeKubeApiServer();
    await kube.start();
    ec2 = await startFakeEc2({ instances: IDS.map((id, i) => ({ id, privateIp: `10.3.0.${i + 1}`, tags: { mesh: 'true', 'mesh-ports': 'http:8080' } })) });
    ws = new Workspace();
    prefix = uniquePrefix('faults-load');
    ws.writeConfig({
      providers: [
        { type: 'aws', name: 'prod', regions: ['us-east-1'], accounts: [{ id: DEFAULT_ACCOUNT }], endpoint: { ec2: ec2.url }, maxAttempts: 2, webhook: { apiKey: { value: API_KEY } } },
      ],
      kubernetes: { kubeconfig: kube.writeKubeconfig(ws.dir) },
      redis: { prefix },
      resync: { interval: '10m' },
      log: { level: 'silent' },
    });
  });
  afterEach(async () => {
    await proc?.stop('SIGKILL');
    proc = undefined;
    await kube.close();
    await ec2.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  function requestOf(kind: Kind, n: number): { url: string; init: RequestInit } {
    const url = `http://127.0.0.1:${proc!.port}`;
    if (kind === 'health') return { url: proc!.url('/healthz'), init: {} };
    const id = IDS[n % IDS.length]!;
    const event =
      kind === 'ignored'
        ? { ...STATE_CHANGE, source: 'aws.ec2', 'detail-type': 'EC2 Spot Instance Interruption Warning' }
        : { ...STATE_CHANGE, id: `load-${n}`, resources: [`arn:aws:ec2:us-east-1:${DEFAULT_ACCOUNT}:instance/${id}`], detail: { 'instance-id': id, state: 'running' } };
    const body = kind === 'malformed' ? `{"detail-type": ${n}` : JSON.stringify(event);
    const key = kind === 'unauthorized' ? `${API_KEY}-${n}` : API_KEY;
    return { url: `${url}/webhooks/aws`, init: { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body } };
  }

  /** Sends `count` requests at about RATE per second, IN_FLIGHT at most at once; returns what came back per kind. */
  async function load(count: number, offset: number): Promise<{ statuses: Map<Kind, Map<number, number>>; errors: string[]; sent: Record<Kind, number> }> {
    const statuses = new Map<Kind, Map<number, number>>();
    const errors: string[] = [];
    const sent: Record<Kind, number> = { refresh: 0, ignored: 0, unauthorized: 0, malformed: 0, health: 0 };
    const started = performance.now();
    const numbers = Array.from({ length: count }, (_, n) => n);
    await mapLimited(numbers, IN_FLIGHT, async (n) => {
      // Paced: request n leaves no earlier than n / RATE seconds after the start.
      const wait = started + (n * 1000) / RATE - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const kind = MIX[(n + offset) % MIX.length]!;
      sent[kind]++;
      const { url, init } = requestOf(kind, n + offset);
      try {
        const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
        await res.arrayBuffer();
        const byStatus = statuses.get(kind) ?? new Map<number, number>();
        byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
        statuses.set(kind, byStatus);
      } catch (err) {
        errors.push(`${kind} #${n}: ${(err as Error).message}`);
      }
    });
    return { statuses, errors, sent };
  }

  /** True once no refresh job waits or runs: the work the load caused is done. */
  const settled = async (): Promise<boolean> => {
    const status = (await proc!.get('/status')).body as { queue?: Record<string, number>; refreshQueue?: Record<string, number> };
    const pending = (q: Record<string, number> = {}) => (q.waiting ?? 0) + (q.active ?? 0) + (q.delayed ?? 0);
    return pending(status.refreshQueue) === 0 && pending(status.queue) === 0;
  };

  it('answers every request, counts each, and keeps its memory flat', async () => {
    const nodeOptions = deployedNodeOptions();
    expect(nodeOptions, 'deploy/base/deployment.yaml sets NODE_OPTIONS for serve').toMatch(/--max-old-space-size=\d+/);
    proc = new ServeProcess(ws.configFile, await freePort(), { ...CREDENTIALS, NODE_OPTIONS: nodeOptions });
    await proc.started();
    const pid = proc.child.pid!;
    expect(residentBytes(pid), 'needs /proc to read the memory of the serve process').toBeDefined();

    // Warm up (code paths compiled, pools and buffers grown), let the queue empty, then measure.
    const warm = await load(WARMUP, 0);
    expect(warm.errors).toEqual([]);
    await waitFor(settled, 60_000, () => 'the warm-up work did not finish');
    const before = residentBytes(pid)!;
    const metricsBefore = (await proc.get('/metrics')).body as string;
    const describesBefore = ec2.describeRequests.length;

    const run = await load(TOTAL, WARMUP);
    // Every request got an answer, and each the one its kind calls for.
    expect(run.errors).toEqual([]);
    for (const kind of Object.keys(EXPECTED_STATUS) as Kind[]) {
      expect(Object.fromEntries(run.statuses.get(kind) ?? []), kind).toEqual({ [EXPECTED_STATUS[kind]]: run.sent[kind] });
    }
    // The server counted each webhook it took or refused.
    const metricsAfter = (await proc.get('/metrics')).body as string;
    const delta = (name: string, labels: Record<string, string>) => (sampleValue(metricsAfter, name, labels) ?? 0) - (sampleValue(metricsBefore, name, labels) ?? 0);
    expect(delta('vms_webhook_events_total', { provider: 'aws', outcome: 'refresh' })).toBe(run.sent.refresh);
    expect(delta('vms_webhook_events_total', { provider: 'aws', outcome: 'ignored' })).toBe(run.sent.ignored);
    expect(delta('vms_webhook_rejected_total', { provider: 'aws', code: 'VMS_ERR_WEBHOOK_UNAUTHORIZED' })).toBe(run.sent.unauthorized);
    expect(delta('vms_webhook_rejected_total', { provider: 'aws', code: 'VMS_ERR_WEBHOOK_BODY' })).toBe(run.sent.malformed);

    await waitFor(settled, 90_000, () => 'the refreshes of the load did not finish');
    // The refreshes reached EC2.
    expect(ec2.describeRequests.length).toBeGreaterThan(describesBefore);
    const afterFirst = residentBytes(pid)!;

    // The same load once more: a process that keeps something per request grows again by as much,
    // while a heap that was still finding its size during the first round stays where it is.
    const again = await load(TOTAL, WARMUP + TOTAL);
    expect(again.errors).toEqual([]);
    await waitFor(settled, 90_000, () => 'the refreshes of the second load did not finish');
    const afterSecond = residentBytes(pid)!;
    const mb = (n: number) => Math.round(n / 2 ** 20);
    expect(afterSecond - afterFirst, `RSS ${mb(before)} MB before, ${mb(afterFirst)} MB after one load, ${mb(afterSecond)} MB after two`).toBeLessThan(
      MAX_RSS_GROWTH,
    );
    expect(proc.child.exitCode).toBeNull();
  }, 240_000);
});
