// AWS end to end through the real CLI and the real EC2 client: `plan` on a DescribeInstances answer
// written by hand in AWS's documented form, `serve` acting on EventBridge events posted to its
// webhook, and a region whose API keeps failing while another syncs.
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { checkEntry } from '../../services/mapping/index.ts';
import type { WorkloadEntry } from '../../services/model.ts';
import type { ScopeStatus } from '../../services/runtime/status-store.ts';
import { DEFAULT_ACCOUNT, type FakeEc2, type FakeInstance, startFakeEc2 } from '../fakes/ec2/ec2-server.ts';
import { listen, type QueryRequest, readQueryRequest } from '../fakes/ec2/query-protocol.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { runCli, Workspace } from '../helpers/cli.ts';
import { sampleValue } from '../../services/server/metrics-sample.test-helper.ts';
import { cleanupPrefix, freePort, ServeProcess, uniquePrefix, waitFor } from '../helpers/serve.ts';
import { Queue } from 'bullmq';
import { createRedis } from '../../services/queue/redis.ts';
import { REFRESH_QUEUE_NAME } from '../../services/runtime/jobs.ts';

const WE = 'workloadentries';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const DOC_RESPONSE = readFileSync(new URL('./fixtures/describe-instances-response.xml', import.meta.url), 'utf8');
const STATE_CHANGE = JSON.parse(readFileSync(new URL('../fixtures/aws/ec2-state-change-pending.json', import.meta.url), 'utf8')) as Record<string, any>;

/** An aws provider block as a user writes it. */
function awsBlock(endpoint: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'aws', name: 'prod', regions: ['us-east-1'], accounts: [{ id: DEFAULT_ACCOUNT }], endpoint: { ec2: endpoint }, maxAttempts: 2, ...extra };
}

/** AWS's published state-change event, for another instance and state. */
function stateChange(instanceId: string, state: string): Record<string, unknown> {
  return {
    ...STATE_CHANGE,
    id: `${instanceId}-${state}`,
    resources: [`arn:aws:ec2:us-east-1:${DEFAULT_ACCOUNT}:instance/${instanceId}`],
    detail: { 'instance-id': instanceId, state },
  };
}

const entries = (server: FakeKubeApiServer) => server.objects(WE, 'default') as unknown as WorkloadEntry[];
const names = (server: FakeKubeApiServer) => entries(server).map((e) => e.metadata.name).sort();

describe('plan against a DescribeInstances answer in the documented form', () => {
  let ws: Workspace;
  let close: () => Promise<void>;
  let received: QueryRequest[];
  let url: string;

  beforeEach(async () => {
    for (const [k, v] of Object.entries(CREDENTIALS)) vi.stubEnv(k, v);
    received = [];
    ({ url, close } = await listen((req: http.IncomingMessage, res: http.ServerResponse) => {
      void readQueryRequest(req).then((q) => {
        received.push(q);
        res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
        res.end(DOC_RESPONSE);
      });
    }));
    ws = new Workspace();
    ws.writeConfig({ providers: [awsBlock(url, { regions: ['eu-west-1'] })], log: { level: 'warn' } });
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    await close();
    ws.remove();
  });

  it('gives one valid WorkloadEntry per running, selected instance and a skip reason for every other one', async () => {
    const run = await runCli(['plan', '--config', ws.configFile, '--no-cluster'], { ...CREDENTIALS });
    expect(run.code, run.stderr).toBe(0);

    // One listing call, signed for the scope's region, filtered server-side by the selector.
    expect(received).toHaveLength(1);
    expect(received[0]!.params.Action).toBe('DescribeInstances');
    expect(received[0]!.region).toBe('eu-west-1');
    expect(received[0]!.accessKeyId).toBe(CREDENTIALS.AWS_ACCESS_KEY_ID);
    expect(Object.entries(received[0]!.params)).toContainEqual(['Filter.1.Name', 'tag-key']);

    const docs = parseAllDocuments(run.stdout)
      .map((d) => d.toJS() as WorkloadEntry | null)
      .filter((d) => d !== null);
    expect(docs.map((d) => d.metadata.name).sort()).toEqual(['aws-i-0598c7d356eba48d7', 'aws-i-1234567890abcdef0']);
    const kube = new FakeKubeApiServer();
    for (const entry of docs) {
      expect(checkEntry(entry)).toEqual([]);
      // Istio's own CRD schema and CEL rules accept it.
      expect(() => kube.put(entry as never, { validate: true })).not.toThrow();
    }
    const byName = new Map(docs.map((d) => [d.metadata.name, d]));
    expect(byName.get('aws-i-1234567890abcdef0')?.spec).toEqual({
      address: '192.168.1.88',
      ports: { postgres: 5432, metrics: 9187 },
      labels: { app: 'postgres', team: 'dba' },
      locality: 'eu-west-1/eu-west-1c',
    });
    expect(byName.get('aws-i-1234567890abcdef0')?.metadata.annotations['vm-mesh-sync.io/source']).toBe(`aws:${DEFAULT_ACCOUNT}:eu-west-1:i-1234567890abcdef0`);
    // The primary private address, not the secondary one on the same interface.
    expect(byName.get('aws-i-0598c7d356eba48d7')?.spec).toEqual({
      address: '10.0.1.17',
      ports: { http: 8080 },
      labels: { app: 'web', version: 'v2' },
      locality: 'eu-west-1/eu-west-1a',
    });

    expect(run.stdout).toMatch(/skipped aws:i-0abcdef1234567890 \(Server_2\) VMS_SKIP_NOT_RUNNING: the instance is stopped/);
    expect(run.stdout).toMatch(/skipped aws:i-0fedcba9876543210 \(bastion\) VMS_SKIP_NOT_SELECTED: not tagged mesh=true/);
    expect(run.stdout).toMatch(/skipped aws:i-0123456789abcdef1 \(reports-db\) VMS_SKIP_BAD_PORTS: tag mesh-ports: 'pg:99999' is not a port/);
    expect(run.stdout).toContain(`scope aws:prod:${DEFAULT_ACCOUNT}:eu-west-1: 5 instances, 2 entries, listing complete`);
  });
});

describe('serve with an aws provider and EventBridge events', () => {
  let server: FakeKubeApiServer;
  let ec2: FakeEc2;
  let ws: Workspace;
  let prefix: string;
  let proc: ServeProcess | undefined;
  const KEY = 'correct-horse-battery-staple';

  const tagged = (id: string, ip: string): FakeInstance => ({ id, name: id, privateIp: ip, tags: { mesh: 'true', 'mesh-app': 'web', 'mesh-ports': 'http:8080' } });
  const describedIds = () => ec2.describeRequests.flatMap((r) => r.instanceIds);

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ec2 = await startFakeEc2({ instances: [tagged('i-0aaaaaaaaaaaaaaa1', '10.0.0.1')] });
    ws = new Workspace();
    prefix = uniquePrefix('aws-serve');
    ws.writeConfig({
      providers: [awsBlock(ec2.url, { webhook: { apiKey: { value: { env: 'VMS_AWS_WEBHOOK_KEY' } } } })],
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { prefix },
      // Only the first resync (at start) and events can change anything during the test.
      resync: { interval: '1h' },
      queue: { backoff: '100ms' },
      log: { level: 'warn' },
    });
    proc = new ServeProcess(ws.configFile, await freePort(), {
      ...CREDENTIALS,
      AWS_EC2_METADATA_DISABLED: 'true',
      VMS_AWS_WEBHOOK_KEY: KEY,
      REDIS_URL,
    });
    await proc.started();
    // The first resync is done and applied before any event is sent.
    await waitFor(async () => ((await proc!.get('/status')).body as { scopes: ScopeStatus[] }).scopes[0]?.lastResyncAt !== '', 30_000, () => proc!.output);
    await waitFor(() => names(server).includes('aws-i-0aaaaaaaaaaaaaaa1'), 30_000, () => proc!.output);
  });
  afterEach(async () => {
    await proc?.stop('SIGKILL');
    await server.close();
    await ec2.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  it('a state-change event with the right key creates the entry of a VM that started, without waiting for a resync', async () => {
    ec2.put(tagged('i-0bbbbbbbbbbbbbbb2', '10.0.0.2'));
    const answer = await proc!.post('/webhooks/aws', stateChange('i-0bbbbbbbbbbbbbbb2', 'running'), { 'x-api-key': KEY });
    expect(answer).toEqual({ status: 202, body: { accepted: 1, ignored: 0 } });
    await waitFor(() => names(server).includes('aws-i-0bbbbbbbbbbbbbbb2'), 30_000, () => proc!.output);
    const entry = entries(server).find((e) => e.metadata.name === 'aws-i-0bbbbbbbbbbbbbbb2');
    expect(entry?.spec).toMatchObject({ address: '10.0.0.2', ports: { http: 8080 }, locality: 'us-east-1/us-east-1a' });
    // Described by id, not found by another listing.
    expect(describedIds()).toContain('i-0bbbbbbbbbbbbbbb2');
    expect(ec2.describeRequests.filter((r) => r.instanceIds.length === 0)).toHaveLength(1);
  });

  it('a refresh job an earlier version queued (one instance per job) is still refreshed', async () => {
    ec2.put(tagged('i-0fffffffffffffff6', '10.0.0.6'));
    const connection = createRedis(REDIS_URL, { role: 'worker' });
    const legacy = new Queue(REFRESH_QUEUE_NAME, { connection, prefix });
    try {
      // One that names no instance is dropped with a warn line, and does not stop the next.
      await legacy.add('refresh', { ref: null }, { removeOnComplete: true });
      await legacy.add('refresh', { ref: { provider: 'aws', account: DEFAULT_ACCOUNT, region: 'us-east-1', id: 'i-0fffffffffffffff6' } }, { removeOnComplete: true });
      await waitFor(() => names(server).includes('aws-i-0fffffffffffffff6'), 30_000, () => proc!.output);
      await waitFor(async () => Object.values(await legacy.getJobCounts('waiting', 'active', 'delayed', 'failed')).every((n) => n === 0), 30_000, () => proc!.output);
      expect(proc!.output).toContain('a refresh job of an earlier version was dropped: it names no instance');
    } finally {
      await legacy.close();
      await connection.quit();
    }
  });

  it('events for one instance in quick succession are one refresh, described once after the last', async () => {
    ec2.put(tagged('i-0abcabcabcabcabc7', '10.0.0.7'));
    const answers = await Promise.all(Array.from({ length: 5 }, () => proc!.post('/webhooks/aws', stateChange('i-0abcabcabcabcabc7', 'running'), { 'x-api-key': KEY })));
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);
    await waitFor(() => names(server).includes('aws-i-0abcabcabcabcabc7'), 30_000, () => proc!.output);
    await waitFor(
      async () => {
        const s = (await proc!.get('/status')).body as { refreshQueue: Record<string, number> };
        return (s.refreshQueue.waiting ?? 0) + (s.refreshQueue.active ?? 0) + (s.refreshQueue.delayed ?? 0) === 0;
      },
      30_000,
      () => proc!.output,
    );
    expect(describedIds().filter((id) => id === 'i-0abcabcabcabcabc7')).toHaveLength(1);
    const metrics = (await proc!.get('/metrics')).body as string;
    for (const state of ['waiting', 'delayed', 'active']) expect(sampleValue(metrics, 'vms_refresh_depth', { state })).toBe(0);
  });

  it('a terminated event deletes the entry, whether EC2 reports the VM terminated or no longer knows it', async () => {
    ec2.put(tagged('i-0bbbbbbbbbbbbbbb2', '10.0.0.2'));
    await proc!.post('/webhooks/aws', stateChange('i-0bbbbbbbbbbbbbbb2', 'running'), { 'x-api-key': KEY });
    await waitFor(() => names(server).length === 2, 30_000, () => proc!.output);

    ec2.setState('i-0aaaaaaaaaaaaaaa1', 'terminated');
    expect((await proc!.post('/webhooks/aws', stateChange('i-0aaaaaaaaaaaaaaa1', 'terminated'), { 'x-api-key': KEY })).status).toBe(202);
    await waitFor(() => !names(server).includes('aws-i-0aaaaaaaaaaaaaaa1'), 30_000, () => proc!.output);

    ec2.remove('i-0bbbbbbbbbbbbbbb2');
    expect((await proc!.post('/webhooks/aws', stateChange('i-0bbbbbbbbbbbbbbb2', 'terminated'), { 'x-api-key': KEY })).status).toBe(202);
    await waitFor(() => names(server).length === 0, 30_000, () => proc!.output);
    expect(ec2.describeRequests.filter((r) => r.instanceIds.length === 0)).toHaveLength(1);
  });

  it('a burst of events creates every entry, describing the instances in batches rather than one call each', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `i-0d${String(i).padStart(15, '0')}`);
    for (const [i, id] of ids.entries()) ec2.put(tagged(id, `10.0.1.${i + 1}`));
    const answers = await Promise.all(ids.map((id) => proc!.post('/webhooks/aws', stateChange(id, 'running'), { 'x-api-key': KEY })));
    expect(answers.map((a) => a.status)).toEqual(ids.map(() => 202));
    await waitFor(() => ids.every((id) => names(server).includes(`aws-${id}`)), 30_000, () => proc!.output);
    const burst = ec2.describeRequests.filter((r) => r.instanceIds.some((id) => ids.includes(id)));
    // Every instance described, none twice in one call, and far fewer calls than events.
    expect(new Set(burst.flatMap((r) => r.instanceIds))).toEqual(new Set(ids));
    for (const r of burst) expect(new Set(r.instanceIds).size).toBe(r.instanceIds.length);
    expect(burst.length).toBeLessThan(ids.length / 2);
  });

  it('a refresh that fails says so: one warn line with its code and reference, and one count, per failed attempt', async () => {
    ec2.failAlways({}, 'UnauthorizedOperation');
    const answer = await proc!.post('/webhooks/aws', stateChange('i-0eeeeeeeeeeeeeee5', 'running'), { 'x-api-key': KEY });
    expect(answer.status).toBe(202);
    const lines = () =>
      proc!.output
        .split('\n')
        .filter((l) => l.includes('refresh of an instance failed') && l.includes('i-0eeeeeeeeeeeeeee5'))
        .map((l) => JSON.parse(l) as { level: number | string; code: string; attempt: number; attempts: number });
    // Five attempts, the last one said to be final.
    await waitFor(() => lines().some((l) => l.attempt === l.attempts), 30_000, () => proc!.output);
    const failures = lines();
    expect(failures).toHaveLength(5);
    for (const l of failures) expect(l).toMatchObject({ level: 'warn', code: 'VMS_ERR_PROVIDER_FAILED' });
    const metrics = (await proc!.get('/metrics')).body as string;
    expect(sampleValue(metrics, 'vms_refresh_failures_total', { provider: 'aws', code: 'VMS_ERR_PROVIDER_FAILED' })).toBe(5);
    ec2.heal();
  });

  it('an event for an instance whose entry name another object holds sends no create: the refresh plans a conflict', async () => {
    server.put({
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: { name: 'aws-i-0bbbbbbbbbbbbbbb2', namespace: 'default', labels: { team: 'dba' } },
      spec: { address: '192.168.0.9' },
    } as never);
    ec2.put(tagged('i-0bbbbbbbbbbbbbbb2', '10.0.0.2'));
    ec2.put(tagged('i-0ccccccccccccccc3', '10.0.0.3'));
    server.counts.reset();
    await proc!.post('/webhooks/aws', stateChange('i-0bbbbbbbbbbbbbbb2', 'running'), { 'x-api-key': KEY });
    await proc!.post('/webhooks/aws', stateChange('i-0ccccccccccccccc3', 'running'), { 'x-api-key': KEY });
    await waitFor(() => names(server).includes('aws-i-0ccccccccccccccc3'), 30_000, () => proc!.output);
    // Every queue empty: both refreshes and whatever they enqueued are done.
    await waitFor(
      async () => {
        const s = (await proc!.get('/status')).body as { queue: Record<string, number>; refreshQueue: Record<string, number> };
        return [s.queue, s.refreshQueue].every((q) => (q.waiting ?? 0) + (q.active ?? 0) + (q.delayed ?? 0) + (q.prioritized ?? 0) === 0);
      },
      30_000,
      () => proc!.output,
    );
    expect(server.counts.of(WE).create).toBe(1);
    expect(server.get(WE, 'default', 'aws-i-0bbbbbbbbbbbbbbb2')).toMatchObject({ spec: { address: '192.168.0.9' } });
    expect(((await proc!.get('/status')).body as { writeErrorCount: number }).writeErrorCount).toBe(0);
  });

  it('the same event with a wrong or missing key is refused with 401 and changes nothing', async () => {
    ec2.put(tagged('i-0ccccccccccccccc3', '10.0.0.3'));
    const wrong = await proc!.post('/webhooks/aws', stateChange('i-0ccccccccccccccc3', 'running'), { 'x-api-key': 'not-the-key' });
    expect(wrong.status).toBe(401);
    expect((wrong.body as { code: string }).code).toBe('VMS_ERR_WEBHOOK_UNAUTHORIZED');
    expect((await proc!.post('/webhooks/aws', stateChange('i-0ccccccccccccccc3', 'running'))).status).toBe(401);

    // An accepted event sent afterwards is handled; by then the refused one would have been too.
    ec2.put(tagged('i-0bbbbbbbbbbbbbbb2', '10.0.0.2'));
    await proc!.post('/webhooks/aws', stateChange('i-0bbbbbbbbbbbbbbb2', 'running'), { 'x-api-key': KEY });
    await waitFor(() => names(server).includes('aws-i-0bbbbbbbbbbbbbbb2'), 30_000, () => proc!.output);
    expect(names(server)).toEqual(['aws-i-0aaaaaaaaaaaaaaa1', 'aws-i-0bbbbbbbbbbbbbbb2']);
    expect(describedIds()).not.toContain('i-0ccccccccccccccc3');
  });
});

describe('serve with events for two regions, one of which fails', () => {
  it('a batch with references of a failing scope fails only those: the other region’s entry is created', async () => {
    const server = new FakeKubeApiServer();
    await server.start();
    const ec2 = await startFakeEc2();
    const ws = new Workspace();
    const prefix = uniquePrefix('aws-batch');
    let proc: ServeProcess | undefined;
    try {
      ws.writeConfig({
        providers: [awsBlock(ec2.url, { regions: ['us-east-1', 'eu-west-1'], webhook: { apiKey: { value: 'k-0123456789' } } })],
        kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
        redis: { prefix },
        resync: { interval: '1h' },
        queue: { backoff: '100ms' },
        log: { level: 'warn' },
      });
      proc = new ServeProcess(ws.configFile, await freePort(), { ...CREDENTIALS, REDIS_URL });
      await proc.started();
      const p = proc;
      await waitFor(async () => ((await p.get('/status')).body as { scopes: ScopeStatus[] }).scopes.every((s) => s.lastResyncAt !== ''), 30_000, () => p.output);
      ec2.put({ id: 'i-0aaaaaaaaaaaaaaa1', region: 'us-east-1', privateIp: '10.0.0.1', tags: { mesh: 'true' } });
      ec2.put({ id: 'i-0bbbbbbbbbbbbbbb2', region: 'eu-west-1', privateIp: '10.0.0.2', tags: { mesh: 'true' } });
      ec2.failAlways({ region: 'eu-west-1' }, 'UnauthorizedOperation');
      const event = (id: string, region: string) => ({ ...stateChange(id, 'running'), region, resources: [`arn:aws:ec2:${region}:${DEFAULT_ACCOUNT}:instance/${id}`] });
      // Sent together, so that their refreshes fall due together and go in one batch.
      await Promise.all([
        p.post('/webhooks/aws', event('i-0aaaaaaaaaaaaaaa1', 'us-east-1'), { 'x-api-key': 'k-0123456789' }),
        p.post('/webhooks/aws', event('i-0bbbbbbbbbbbbbbb2', 'eu-west-1'), { 'x-api-key': 'k-0123456789' }),
      ]);
      await waitFor(() => names(server).includes('aws-i-0aaaaaaaaaaaaaaa1'), 30_000, () => p.output);
      // The failing region's refresh failed on its own, and said so.
      await waitFor(() => p.output.includes('i-0bbbbbbbbbbbbbbb2') && p.output.includes('refresh of an instance failed'), 30_000, () => p.output);
      expect(p.output).not.toMatch(/refresh of an instance failed[^\n]*i-0aaaaaaaaaaaaaaa1|i-0aaaaaaaaaaaaaaa1[^\n]*refresh of an instance failed/);
      expect(names(server)).toEqual(['aws-i-0aaaaaaaaaaaaaaa1']);
    } finally {
      await proc?.stop('SIGKILL');
      await server.close();
      await ec2.close();
      await cleanupPrefix(prefix);
      ws.remove();
    }
  }, 90_000);
});

describe('a region whose API keeps failing', () => {
  let server: FakeKubeApiServer;
  let ec2: FakeEc2;
  let ws: Workspace;

  beforeEach(async () => {
    for (const [k, v] of Object.entries(CREDENTIALS)) vi.stubEnv(k, v);
    vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
    server = new FakeKubeApiServer();
    await server.start();
    const vm = (id: string, region: string, ip: string): FakeInstance => ({ id, region, privateIp: ip, tags: { mesh: 'true', 'mesh-ports': 'http:8080' } });
    ec2 = await startFakeEc2({
      instances: [
        vm('i-0eeeeeeeeeeeeeee1', 'us-east-1', '10.1.0.1'),
        vm('i-0eeeeeeeeeeeeeee2', 'us-east-1', '10.1.0.2'),
        vm('i-0eeeeeeeeeeeeeee3', 'us-east-1', '10.1.0.3'),
        vm('i-0fffffffffffffff1', 'eu-west-1', '10.2.0.1'),
        vm('i-0fffffffffffffff2', 'eu-west-1', '10.2.0.2'),
      ],
    });
    ws = new Workspace();
    ws.writeConfig({
      providers: [awsBlock(ec2.url, { regions: ['us-east-1', 'eu-west-1'] })],
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      log: { level: 'warn' },
    });
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    await server.close();
    await ec2.close();
    ws.remove();
  });

  it('sync --once deletes nothing of that region while the other region syncs, and exits 1 naming the region', async () => {
    const sync = () => runCli(['sync', '--once', '--config', ws.configFile], { ...CREDENTIALS });
    expect((await sync()).code).toBe(0);
    expect(names(server)).toHaveLength(5);
    const euBefore = JSON.stringify(entries(server).filter((e) => e.metadata.name.startsWith('aws-i-0f')));

    // eu-west-1 fails on every call; meanwhile both regions change.
    ec2.failAlways({ region: 'eu-west-1' }, 'Unavailable');
    ec2.remove('i-0eeeeeeeeeeeeeee3');
    ec2.put({ id: 'i-0eeeeeeeeeeeeeee4', region: 'us-east-1', privateIp: '10.1.0.4', tags: { mesh: 'true' } });
    ec2.remove('i-0fffffffffffffff1');
    ec2.remove('i-0fffffffffffffff2');
    server.counts.reset();
    const run = await sync();

    expect(run.code).toBe(1);
    const summary = JSON.parse(run.stdout) as { incompleteScopes: string[] };
    expect(summary.incompleteScopes).toEqual([`aws:prod:${DEFAULT_ACCOUNT}:eu-west-1`]);
    // us-east-1 synced: one created, one deleted; eu-west-1's entries untouched though EC2 lists neither VM.
    expect(names(server)).toEqual(['aws-i-0eeeeeeeeeeeeeee1', 'aws-i-0eeeeeeeeeeeeeee2', 'aws-i-0eeeeeeeeeeeeeee4', 'aws-i-0fffffffffffffff1', 'aws-i-0fffffffffffffff2']);
    expect(server.counts.of(WE).delete).toBe(1);
    expect(JSON.stringify(entries(server).filter((e) => e.metadata.name.startsWith('aws-i-0f')))).toBe(euBefore);
    expect(ec2.describeRequests.filter((r) => r.region === 'eu-west-1' && r.status === 503).length).toBeGreaterThan(0);
  });

  it('credentials of another account than the configured one: the scope fails with VMS_ERR_ACCOUNT_MISMATCH, 0 writes, and explain and /status say why', async () => {
    // The keys belong to DEFAULT_ACCOUNT (the fake's answer names it as the reservations' owner).
    const prefix = uniquePrefix('aws-account');
    ws.writeConfig({
      providers: [awsBlock(ec2.url, { accounts: [{ id: '111111111111' }] })],
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { prefix },
      log: { level: 'warn' },
    });
    server.counts.reset();
    const run = await runCli(['sync', '--once', '--config', ws.configFile], { ...CREDENTIALS });
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ incompleteScopes: ['aws:prod:111111111111:us-east-1'] });
    expect(run.stderr + run.stdout).toContain('VMS_ERR_ACCOUNT_MISMATCH');
    expect(server.counts.writes(WE)).toBe(0);
    expect(names(server)).toEqual([]);

    const explained = await runCli(['explain', 'aws:i-0eeeeeeeeeeeeeee1', '--config', ws.configFile], { ...CREDENTIALS });
    expect(explained.stdout + explained.stderr).toContain('VMS_ERR_ACCOUNT_MISMATCH');
    expect(explained.stdout + explained.stderr).toMatch(/belong to account 123456789012, not 111111111111/);

    // serve: the scope's status carries the code and the reason, and nothing is written.
    const proc = new ServeProcess(ws.configFile, await freePort(), { ...CREDENTIALS, REDIS_URL });
    try {
      await proc.started();
      const scope = async () => ((await proc.get('/status')).body as { scopes: ScopeStatus[] }).scopes.find((s) => s.scopeKey === 'aws:prod:111111111111:us-east-1');
      await waitFor(async () => (await scope())?.lastResyncAt !== '', 30_000, () => proc.output);
      const status = await scope();
      expect(status).toMatchObject({ complete: false, lastSuccessAt: '' });
      expect(status!.problems).toEqual([expect.objectContaining({ code: 'VMS_ERR_ACCOUNT_MISMATCH', message: expect.stringMatching(/belong to account 123456789012, not 111111111111/) })]);
      expect(server.counts.writes(WE)).toBe(0);
    } finally {
      await proc.stop('SIGKILL');
      await cleanupPrefix(prefix);
    }
  }, 90_000);
});
