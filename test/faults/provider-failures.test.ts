// A provider that fails, times out or returns a partial listing deletes nothing in its scope, while
// the scopes that can be read keep syncing. `serve` runs with one static inventory and one AWS block
// of four regions against the fake EC2: one region syncs, one always fails, one fails after its
// first page (a partial listing), one answers slower than resync.timeout; the inventory becomes
// unreadable. Everything disappears from every source at once, and only the healthy region deletes.
import { mkdirSync, rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WorkloadEntry } from '../../services/model.ts';
import type { ScopeStatus } from '../../services/runtime/status-store.ts';
import { DEFAULT_ACCOUNT, type FakeEc2, type FakeInstance, startFakeEc2 } from '../fakes/ec2/ec2-server.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { meshMachine, Workspace } from '../helpers/cli.ts';
import { cleanupPrefix, freePort, ServeProcess, uniquePrefix, waitFor } from '../helpers/serve.ts';

const WE = 'workloadentries';
const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', AWS_EC2_METADATA_DISABLED: 'true' };
const HEALTHY = 'us-east-1';
const FAILING = 'eu-west-1';
const PARTIAL = 'us-west-2';
const SLOW = 'ap-south-1';
const scopeOf = (region: string) => `aws:prod:${DEFAULT_ACCOUNT}:${region}`;
const STATIC_SCOPE = 'static:onprem';

/** Instances of one region: ids end in the region's digit, addresses sit in its own /16. */
function vms(region: string, digit: number, count: number): FakeInstance[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `i-0${String(digit).repeat(15)}${i}`,
    region,
    privateIp: `10.${digit}.0.${i + 1}`,
    tags: { mesh: 'true', 'mesh-ports': 'http:8080' },
  }));
}

describe('providers that fail, time out or list partially', () => {
  let server: FakeKubeApiServer;
  let ec2: FakeEc2;
  let ws: Workspace;
  let prefix: string;
  let proc: ServeProcess | undefined;

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ec2 = await startFakeEc2();
    ws = new Workspace();
    prefix = uniquePrefix('faults-provider');
  });
  afterEach(async () => {
    await proc?.stop('SIGKILL');
    proc = undefined;
    await server.close();
    await ec2.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  const entries = () => server.objects(WE, 'default') as unknown as WorkloadEntry[];
  const scopeEntries = (scopeKey: string) => entries().filter((e) => e.metadata.annotations['vm-mesh-sync.io/scope'] === scopeKey);
  const statuses = async (): Promise<Map<string, ScopeStatus>> => {
    const body = (await proc!.get('/status')).body as { scopes: ScopeStatus[] };
    return new Map(body.scopes.map((s) => [s.scopeKey, s]));
  };

  it('deletes nothing in a failing, partial, slow or unreadable scope while a healthy region syncs', async () => {
    const seeded = [...vms(HEALTHY, 1, 3), ...vms(FAILING, 2, 3), ...vms(PARTIAL, 3, 9), ...vms(SLOW, 4, 3)];
    for (const vm of seeded) ec2.put(vm);
    ws.writeInventory([meshMachine('pg-1', '10.9.0.1'), meshMachine('pg-2', '10.9.0.2')]);
    ws.writeConfig({
      providers: [
        { type: 'static', name: 'onprem', inventory: ws.inventoryFile },
        {
          type: 'aws',
          name: 'prod',
          regions: [HEALTHY, FAILING, PARTIAL, SLOW],
          accounts: [{ id: DEFAULT_ACCOUNT }],
          endpoint: { ec2: ec2.url },
          maxAttempts: 2,
          // Pages of five, so that PARTIAL's instances take two pages before and after the removals.
          pageSize: 5,
          timeout: '20s',
        },
      ],
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { prefix },
      // Everything vanishing at once must not be held back by the guard: only the faults may keep entries.
      deletionGuard: { maxDeleteFraction: 1 },
      resync: { interval: '1s', timeout: '1s' },
      queue: { backoff: '100ms', stalledAfter: '2s' },
      log: { level: 'silent' },
    });
    proc = new ServeProcess(ws.configFile, await freePort(), CREDENTIALS);
    await proc.started();
    await waitFor(() => entries().length === seeded.length + 2, 60_000, () => `${entries().length} entries of ${seeded.length + 2}`);
    const before = new Map([FAILING, PARTIAL, SLOW].map((r) => [scopeOf(r), JSON.stringify(scopeEntries(scopeOf(r)))]));
    before.set(STATIC_SCOPE, JSON.stringify(scopeEntries(STATIC_SCOPE)));
    const baseline = await statuses();

    // The faults, and every instance of every source gone, except six in PARTIAL (still two pages,
    // the second of which fails); HEALTHY also gains one.
    ec2.failAlways({ region: FAILING }, 'Unavailable');
    ec2.failAlways({ region: PARTIAL, laterPages: true }, 'InternalError');
    ec2.hang({ region: SLOW });
    rmSync(ws.inventoryFile);
    mkdirSync(ws.inventoryFile);
    for (const vm of seeded.filter((v) => v.region !== PARTIAL)) ec2.remove(vm.id);
    for (const vm of seeded.filter((v) => v.region === PARTIAL).slice(0, 3)) ec2.remove(vm.id);
    const added = vms(HEALTHY, 5, 1)[0]!;
    ec2.put(added);
    server.counts.reset();

    // The healthy region converges: its three entries go, the new one comes.
    await waitFor(
      () => scopeEntries(scopeOf(HEALTHY)).map((e) => e.metadata.name).join() === `aws-${added.id}`,
      60_000,
      () => `healthy region has ${scopeEntries(scopeOf(HEALTHY)).length} entries`,
    );
    // Each faulty scope has been resynced at least twice since, each time reporting why it is incomplete.
    const expected: Array<[string, string]> = [
      [scopeOf(FAILING), 'VMS_ERR_PROVIDER_FAILED'],
      [scopeOf(PARTIAL), 'VMS_ERR_PROVIDER_FAILED'],
      [scopeOf(SLOW), 'VMS_ERR_PROVIDER_FAILED'],
      [STATIC_SCOPE, 'VMS_ERR_INVENTORY_NOT_FOUND'],
    ];
    const seen = new Map<string, Set<string>>(expected.map(([key]) => [key, new Set<string>()]));
    await waitFor(
      async () => {
        const now = await statuses();
        for (const [key, code] of expected) {
          const s = now.get(key);
          if (s && !s.complete && s.problems.some((p) => p.code === code) && s.lastResyncAt !== baseline.get(key)?.lastResyncAt) {
            seen.get(key)!.add(s.lastResyncAt);
          }
        }
        return [...seen.values()].every((resyncs) => resyncs.size >= 2);
      },
      60_000,
      () => `incomplete resyncs seen: ${JSON.stringify(Object.fromEntries([...seen].map(([k, v]) => [k, v.size])))}`,
    );

    for (const [key, json] of before) expect(JSON.stringify(scopeEntries(key)), key).toBe(json);
    // The only deletes were the healthy region's three.
    expect(server.counts.of(WE).delete).toBe(3);
    // Each fault really was met: the failing region was asked and refused, the partial region
    // answered a first page and failed the second, the slow region was asked and never answered.
    const asked = (region: string, status?: number) => ec2.describeRequests.filter((r) => r.region === region && (status === undefined || r.status === status));
    expect(asked(FAILING, 503).length).toBeGreaterThan(0);
    expect(asked(PARTIAL).filter((r) => r.nextToken === undefined && r.status === 200).length).toBeGreaterThan(0);
    expect(asked(PARTIAL).filter((r) => r.nextToken !== undefined && r.status === 500).length).toBeGreaterThan(0);
    expect(asked(SLOW, 0).length).toBeGreaterThan(0);
  }, 120_000);
});
