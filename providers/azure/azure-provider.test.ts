// Listing through the real Azure SDK clients (Resource Graph, Compute, Network) over HTTPS against the
// fake ARM endpoint on 127.0.0.1, whose self-signed certificate the clients are told to trust.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Instance, Scope } from '../../services/model.ts';
import { ResourceGraphClient } from '@azure/arm-resourcegraph';
import { DEFAULT_SUBSCRIPTION, type FakeArm, startFakeArm } from '../../test/fakes/azure/arm-server.ts';
import { createTestCertificate, type TestCertificate } from '../../test/fakes/azure/tls.ts';
import { type AzureProvider, createAzureProvider, PassedVms } from './azure-provider.ts';
import { azureBlock, RecordingCredential, SELECTOR, steppingClock } from './test-support.ts';

const SUB = DEFAULT_SUBSCRIPTION;
const OTHER_SUB = '9b8a7c6d-0000-4e5f-8a9b-0c1d2e3f4a5b';
const VM_PREFIX = `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.compute/virtualmachines`;

let tls: TestCertificate;
let arm: FakeArm;
let credential: RecordingCredential;
const providers: AzureProvider[] = [];

function provider(overrides: Record<string, unknown> = {}, options: { now?: () => Date; ca?: string } = {}): AzureProvider {
  const p = createAzureProvider(azureBlock(arm.url, overrides), { selector: SELECTOR, credential, ca: options.ca ?? tls.cert, ...(options.now ? { now: options.now } : {}) });
  providers.push(p);
  return p;
}

function scopeOf(p: AzureProvider, subscription = SUB): Scope {
  const scope = p.scopes().find((s) => s.account === subscription);
  if (!scope) throw new Error(`no scope ${subscription}`);
  return scope;
}

function ids(instances: Instance[]): string[] {
  return instances.map((i) => i.id).sort();
}

beforeAll(async () => {
  tls = await createTestCertificate();
});

beforeEach(async () => {
  arm = await startFakeArm({ tls, subscriptions: [SUB, OTHER_SUB] });
  credential = new RecordingCredential();
});

afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  await arm.close();
});

describe('scopes', () => {
  it('are one per subscription, keyed azure:<name>:<subscription>, lowercased', () => {
    const p = provider({ subscriptions: [SUB, OTHER_SUB.toUpperCase()] });
    expect(p.scopes()).toEqual([
      { key: `azure:test:${SUB}`, provider: 'azure', source: 'test', account: SUB },
      { key: `azure:test:${OTHER_SUB}`, provider: 'azure', source: 'test', account: OTHER_SUB },
    ]);
  });

  it('a scope of another block is refused as an incomplete listing, without a call', async () => {
    const p = provider();
    const listing = await p.list({ key: `azure:other:${SUB}`, provider: 'azure', source: 'other', account: SUB });
    expect(listing).toMatchObject({ complete: false, instances: [], problems: [{ code: 'VMS_ERR_PROVIDER_FAILED' }] });
    expect(arm.requests).toHaveLength(0);
  });
});

describe.each(['resource-graph', 'arm'] as const)('list with discovery: %s', (discovery) => {
  it('maps a VM: primary interface chosen, its primary configuration first, public IP, VNet, zone, tags', async () => {
    arm.putVm({
      name: 'db-1',
      zones: ['2'],
      tags: { mesh: 'true', 'mesh-app': 'postgres' },
      nics: [
        { name: 'db-1-backup', primary: false, ipConfigs: [{ privateIp: '10.9.0.4', subnet: 'vnet-backup/default' }] },
        {
          name: 'db-1-main',
          primary: true,
          ipConfigs: [
            { name: 'secondary', primary: false, privateIp: '10.0.1.11' },
            { name: 'ipv6', primary: false, privateIp: 'fd00:db8::11' },
            { name: 'main', primary: true, privateIp: '10.0.1.10', subnet: 'vnet-mesh/data', publicIp: { address: '20.1.2.3' } },
          ],
        },
      ],
    });
    const p = provider({ discovery }, { now: () => new Date('2025-02-03T04:05:06.789Z') });

    const listing = await p.list(scopeOf(p));

    expect(listing.problems).toEqual([]);
    expect(listing.complete).toBe(true);
    expect(listing.instances).toEqual<Instance[]>([
      {
        provider: 'azure',
        account: SUB,
        region: 'westeurope',
        zone: 'westeurope-2',
        id: `${VM_PREFIX}/db-1`,
        name: 'db-1',
        state: 'running',
        privateIPv4s: ['10.0.1.10', '10.0.1.11'],
        publicIPv4s: ['20.1.2.3'],
        ipv6s: ['fd00:db8::11'],
        networkId: `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.network/virtualnetworks/vnet-mesh`,
        subnetId: `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.network/virtualnetworks/vnet-mesh/subnets/data`,
        tags: { mesh: 'true', 'mesh-app': 'postgres' },
        observedAt: '2025-02-03T04:05:06.789Z',
      },
    ]);
  });

  it('maps power states: deallocated and stopped are stopped, starting is pending, deallocating is stopping', async () => {
    const states = { a: 'PowerState/running', b: 'PowerState/deallocated', c: 'PowerState/stopped', d: 'PowerState/starting', e: 'PowerState/deallocating', f: 'PowerState/stopping' };
    for (const [name, powerState] of Object.entries(states)) arm.putVm({ name, tags: { mesh: 'true' }, powerState, privateIp: '10.0.0.4' });
    const p = provider({ discovery });

    const listing = await p.list(scopeOf(p));

    expect(Object.fromEntries(listing.instances.map((i) => [i.name, i.state]))).toEqual({ a: 'running', b: 'stopped', c: 'stopped', d: 'pending', e: 'stopping', f: 'stopping' });
  });

  it('a VM without a zone has zone ""; a prefix on an interface is not an address; the interface flag picks the primary one', async () => {
    arm.putVm({
      name: 'app-1',
      tags: { mesh: 'true' },
      nics: [
        { name: 'app-1-pods', nicPrimary: false, ipConfigs: [{ privateIp: '10.0.5.4' }] },
        { name: 'app-1-eth0', nicPrimary: true, ipConfigs: [{ privateIp: '10.0.0.16', prefixLength: 28 }, { privateIp: '10.0.0.5', primary: false }] },
      ],
    });
    const p = provider({ discovery });

    const [instance] = (await p.list(scopeOf(p))).instances;

    expect(instance).toMatchObject({ zone: '', region: 'westeurope', privateIPv4s: ['10.0.0.5'], publicIPv4s: [], ipv6s: [] });
  });

  it('lists only VMs with the selector tag key; the value is left to mapping', async () => {
    arm.putVm({ name: 'tagged', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    arm.putVm({ name: 'tagged-false', tags: { mesh: 'false' }, privateIp: '10.0.0.5' });
    arm.putVm({ name: 'untagged', tags: { team: 'x' }, privateIp: '10.0.0.6' });
    arm.putVm({ name: 'elsewhere', subscription: OTHER_SUB, tags: { mesh: 'true' }, privateIp: '10.1.0.4' });
    const p = provider({ discovery, subscriptions: [SUB, OTHER_SUB] });

    const [own, other] = await Promise.all([p.list(scopeOf(p)), p.list(scopeOf(p, OTHER_SUB))]);

    expect(ids(own.instances)).toEqual([`${VM_PREFIX}/tagged`, `${VM_PREFIX}/tagged-false`]);
    expect(other.instances.map((i) => [i.name, i.account])).toEqual([['elsewhere', OTHER_SUB]]);
  });

  it('sees power and tag changes between listings; a VM that lost the selector tag is no longer listed', async () => {
    const id = arm.putVm({ name: 'vm-1', tags: { mesh: 'true', 'mesh-app': 'web' }, privateIp: '10.0.0.4' });
    const p = provider({ discovery });
    expect((await p.list(scopeOf(p))).instances.map((i) => [i.state, i.tags])).toEqual([['running', { mesh: 'true', 'mesh-app': 'web' }]]);

    arm.setPowerState(id, 'PowerState/deallocated');
    arm.setTags(id, { mesh: 'true', 'mesh-app': 'api' });
    expect((await p.list(scopeOf(p))).instances.map((i) => [i.state, i.tags])).toEqual([['stopped', { mesh: 'true', 'mesh-app': 'api' }]]);

    arm.setTags(id, { 'mesh-app': 'api' });
    expect(await p.list(scopeOf(p))).toMatchObject({ complete: true, instances: [] });
  });

  it('a VM whose primary interface cannot be found makes the listing incomplete and keeps the others', async () => {
    arm.putVm({ name: 'ok', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    const broken = arm.putVm({ name: 'broken', tags: { mesh: 'true' }, privateIp: '10.0.0.5' });
    arm.removeNic(arm.nicIdsOf(broken)[0]!);
    const p = provider({ discovery });

    const listing = await p.list(scopeOf(p));

    expect(listing.instances.map((i) => i.name)).toEqual(['ok']);
    expect(listing.complete).toBe(false);
    expect(listing.problems).toEqual([
      {
        code: 'VMS_ERR_PROVIDER_ANSWER',
        message: `VM ${VM_PREFIX}/broken: its primary network interface /subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.network/networkinterfaces/broken-nic0 was not found`,
        at: `${VM_PREFIX}/broken`,
      },
    ]);
  });

  it('a VM without a power state makes the listing incomplete and keeps the others', async () => {
    arm.putVm({ name: 'ok', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    arm.putVm({ name: 'new', tags: { mesh: 'true' }, powerState: null, privateIp: '10.0.0.5' });
    const p = provider({ discovery });

    const listing = await p.list(scopeOf(p));

    expect(listing.instances.map((i) => i.name)).toEqual(['ok']);
    expect(listing).toMatchObject({ complete: false, problems: [{ code: 'VMS_ERR_PROVIDER_ANSWER', message: `VM ${VM_PREFIX}/new has an unknown power state ''` }] });
  });

  it('rides out throttling: 429 with Retry-After is retried by the SDK and the listing is complete', async () => {
    arm.putVm({ name: 'vm-1', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    const kind = discovery === 'arm' ? 'list-vms' : 'graph';
    arm.failNext(2, { status: 429, retryAfter: '0' }, { kind });
    const p = provider({ discovery });

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: true, problems: [] });
    expect(listing.instances.map((i) => i.name)).toEqual(['vm-1']);
    expect(arm.requestsOf(kind).map((r) => r.status)).toEqual([429, 429, 200]);
  });

  it('a subscription that keeps failing gives an incomplete listing with the reason; another still lists', async () => {
    arm.putVm({ name: 'vm-1', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    arm.putVm({ name: 'vm-2', subscription: OTHER_SUB, tags: { mesh: 'true' }, privateIp: '10.1.0.4' });
    const kind = discovery === 'arm' ? 'list-vms' : 'graph';
    arm.failAlways({ kind, subscription: OTHER_SUB }, { status: 500 });
    const p = provider({ discovery, subscriptions: [SUB, OTHER_SUB], maxRetries: 2 });

    const [own, other] = await Promise.all([p.list(scopeOf(p)), p.list(scopeOf(p, OTHER_SUB))]);

    expect(own).toMatchObject({ complete: true, problems: [] });
    expect(own.instances.map((i) => i.name)).toEqual(['vm-1']);
    const what = discovery === 'arm' ? 'listing virtual machines' : 'the Resource Graph query';
    expect(other).toEqual({
      scope: scopeOf(p, OTHER_SUB),
      instances: [],
      complete: false,
      problems: [
        {
          code: 'VMS_ERR_PROVIDER_FAILED',
          message: `${what} in subscription ${OTHER_SUB} failed: HTTP 500 InternalServerError: Encountered internal server error. (after 3 attempts)`,
          at: discovery === 'arm' ? 'virtual machines page 1' : 'page 1',
        },
      ],
    });
    expect(arm.requestsOf(kind).filter((r) => r.subscription === OTHER_SUB).map((r) => r.status)).toEqual([500, 500, 500]);
  });

  it("an answer with a VM of another subscription fails the listing with VMS_ERR_ACCOUNT_MISMATCH and gives nothing", async () => {
    arm.putVm({ name: 'vm-1', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    arm.putVm({ name: 'vm-2', subscription: OTHER_SUB.toUpperCase(), tags: { mesh: 'true' }, privateIp: '10.1.0.4' });
    arm.answerAs(SUB, OTHER_SUB);
    const p = provider({ discovery });

    const listing = await p.list(scopeOf(p));

    const what = discovery === 'arm' ? 'listing virtual machines' : 'the Resource Graph query';
    expect(listing).toEqual({
      scope: scopeOf(p),
      instances: [],
      complete: false,
      problems: [
        {
          code: 'VMS_ERR_ACCOUNT_MISMATCH',
          message: `${what} in subscription ${SUB} answered with VM /subscriptions/${OTHER_SUB}/resourcegroups/rg-mesh/providers/microsoft.compute/virtualmachines/vm-2 of subscription ${OTHER_SUB}: the endpoint ${arm.url} does not serve subscription ${SUB} as asked; check subscriptions[] and endpoint (nothing in this scope is changed until they match)`,
          at: discovery === 'arm' ? 'virtual machines page 1' : 'page 1',
        },
      ],
    });
  });

  it('a refusal (403) is not retried', async () => {
    const kind = discovery === 'arm' ? 'list-vms' : 'graph';
    arm.failAlways({ kind }, { status: 403, code: 'AuthorizationFailed', message: 'The client does not have authorization to perform action.' });
    const p = provider({ discovery });

    const listing = await p.list(scopeOf(p));

    expect(listing.complete).toBe(false);
    expect(listing.problems[0]!.message).toMatch(/failed: HTTP 403 AuthorizationFailed: The client does not have authorization to perform action\.$/);
    expect(arm.requestsOf(kind)).toHaveLength(1);
  });

  it('an aborted signal abandons the listing as incomplete, also while a request is in flight', async () => {
    arm.putVm({ name: 'vm-1', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    const p = provider({ discovery });
    const before = new AbortController();
    before.abort(new Error('resync timeout'));
    const early = await p.list(scopeOf(p), before.signal);
    expect(early).toMatchObject({ complete: false, instances: [], problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: expect.stringContaining('abandoned after 0 page(s): resync timeout') }] });
    expect(arm.requests).toHaveLength(0);

    arm.hang({});
    const during = new AbortController();
    const pending = p.list(scopeOf(p), during.signal);
    await vi.waitFor(() => expect(arm.requests).toHaveLength(1));
    during.abort(new Error('shutting down'));
    const listing = await pending;
    expect(listing).toMatchObject({ complete: false, instances: [], problems: [{ message: expect.stringContaining('abandoned after 0 page(s): shutting down') }] });
  });

  it('a request that exceeds the timeout is abandoned and the subscription counts as failed', async () => {
    arm.hang({});
    const p = provider({ discovery, timeout: '200ms' });

    const listing = await p.list(scopeOf(p));

    expect(listing.complete).toBe(false);
    expect(listing.problems[0]!.message).toMatch(/failed: a request took longer than 200 ms and was abandoned$/);
  });

  it('sends the bearer token of the credential, asked for the endpoint scope', async () => {
    arm.putVm({ name: 'vm-1', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    const p = provider({ discovery });

    await p.list(scopeOf(p));

    expect(new Set(arm.requests.map((r) => r.authorization))).toEqual(new Set(['Bearer test-token']));
    expect(new Set(credential.scopes.map((s) => s.join(' ')))).toEqual(new Set([`${arm.url}/.default`]));
  });

  it('refuses an endpoint whose certificate is not trusted', async () => {
    const untrusted = await createTestCertificate();
    const p = provider({ discovery, maxRetries: 0 }, { ca: untrusted.cert });

    const listing = await p.list(scopeOf(p));

    expect(listing.complete).toBe(false);
    expect(listing.problems[0]!.message).toMatch(/self[- ]signed|certificate/i);
    expect(arm.requests).toHaveLength(0);
  });
});

describe('list with Resource Graph', () => {
  it('sends one joined query per subscription, filtered on the tag key, as objectArray at the page size', async () => {
    arm.putVm({ name: 'vm-1', tags: { 'mesh "x"': 'true' }, privateIp: '10.0.0.4' });
    const p = createAzureProvider(azureBlock(arm.url, { pageSize: 500 }), { selector: { tag: 'mesh "x"', value: '*' }, credential, ca: tls.cert });
    providers.push(p);

    const listing = await p.list(scopeOf(p));

    expect(listing.instances.map((i) => i.name)).toEqual(['vm-1']);
    const [request] = arm.requestsOf('graph');
    expect(request).toMatchObject({ method: 'POST', path: '/providers/Microsoft.ResourceGraph/resources', query: { 'api-version': '2024-04-01' } });
    const body = request!.body as { subscriptions: string[]; query: string; options: Record<string, unknown> };
    expect(body.subscriptions).toEqual([SUB]);
    expect(body.options).toEqual({ $top: 500, resultFormat: 'objectArray' });
    expect(body.query).toContain('| where isnotnull(tags[@"mesh ""x"""])');
    expect(arm.requests).toHaveLength(1);
  });

  it('follows the skip token page by page, stamping each VM with the time of its page', async () => {
    for (let n = 0; n < 5; n++) arm.putVm({ name: `vm-${n}`, tags: { mesh: 'true' }, privateIp: `10.0.0.${n + 4}` });
    // vm-1 has two configurations, so its two rows may fall on two pages.
    arm.putVm({ name: 'vm-1', tags: { mesh: 'true' }, nics: [{ ipConfigs: [{ privateIp: '10.0.1.1' }, { privateIp: '10.0.1.2', primary: false }] }] });
    const clock = steppingClock();
    const p = provider({ pageSize: 2 }, { now: clock.now });

    const listing = await p.list(scopeOf(p));

    expect(listing.complete).toBe(true);
    expect(listing.instances.map((i) => [i.name, i.privateIPv4s, i.observedAt])).toEqual([
      ['vm-0', ['10.0.0.4'], '2025-01-01T00:00:00.000Z'],
      ['vm-1', ['10.0.1.1', '10.0.1.2'], '2025-01-01T00:00:00.000Z'],
      ['vm-2', ['10.0.0.6'], '2025-01-01T00:00:01.000Z'],
      ['vm-3', ['10.0.0.7'], '2025-01-01T00:00:02.000Z'],
      ['vm-4', ['10.0.0.8'], '2025-01-01T00:00:02.000Z'],
    ]);
    const tokens = arm.requestsOf('graph').map((r) => (r.body as { options: { $skipToken?: string } }).options.$skipToken);
    expect(tokens).toHaveLength(3);
    expect(tokens[0]).toBeUndefined();
    expect(tokens[1]).toBeDefined();
    expect(tokens[2]).not.toBe(tokens[1]);
  });

  it('hands each page on as it arrives, holding back only the last VM of a page, whose rows may go on in the next, and asks for the next page meanwhile', async () => {
    for (let n = 0; n < 5; n++) arm.putVm({ name: `vm-${n}`, tags: { mesh: 'true' }, privateIp: `10.0.0.${n + 4}` });
    const p = provider({ pageSize: 2 });
    const pages: Array<{ names: string[]; graphRequests: number }> = [];

    // Each page is taken in only once Resource Graph has been asked for the one after it (or after
    // a few seconds: then the next page was not asked for, and the listing fails the check below).
    const listing = await p.listPages(scopeOf(p), undefined, async (instances) => {
      const wanted = Math.min(pages.length + 2, 3);
      for (let waited = 0; arm.requestsOf('graph').length < wanted && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
      pages.push({ names: instances.map((i) => i.name), graphRequests: arm.requestsOf('graph').length });
    });

    expect(listing).toMatchObject({ complete: true, problems: [] });
    expect(pages).toEqual([
      { names: ['vm-0'], graphRequests: 2 },
      { names: ['vm-1', 'vm-2'], graphRequests: 3 },
      { names: ['vm-3', 'vm-4'], graphRequests: 3 },
    ]);
  });

  it('a VM whose interfaces fall on two pages is handed on whole, with its primary interface from the later page', async () => {
    arm.putVm({
      name: 'db-1',
      tags: { mesh: 'true' },
      nics: [
        { name: 'db-1-backup', primary: false, ipConfigs: [{ privateIp: '10.9.9.9' }] },
        { name: 'db-1-main', primary: true, ipConfigs: [{ privateIp: '10.0.0.1' }] },
      ],
    });
    arm.putVm({ name: 'db-2', tags: { mesh: 'true' }, privateIp: '10.0.0.2' });
    const p = provider({ pageSize: 1 });
    const pages: string[][] = [];

    const listing = await p.listPages(scopeOf(p), undefined, async (instances) => void pages.push(instances.map((i) => `${i.name}=${i.privateIPv4s.join(',')}`)));

    expect(listing).toMatchObject({ complete: true, problems: [] });
    // One row per page: db-1 waited for its second row, and db-2, the last VM read, for the end.
    expect(pages).toEqual([['db-1=10.0.0.1', 'db-2=10.0.0.2']]);
    expect(arm.requestsOf('graph')).toHaveLength(3);
  });

  describe('answers the fake never gives', () => {
    const vmId = (n: string) => `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/${n}`;
    const nicId = (n: string) => `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/${n}`;
    const row = (vm: string, nic: string, primary: boolean, ip: string) => ({
      ...{ id: vmId(vm), name: vm, location: 'westeurope', zones: null, tags: { mesh: 'true' }, powerState: 'PowerState/running' },
      ...{ nicKey: nicId(nic).toLowerCase(), nicRefPrimary: primary, nicId: nicId(nic), nicPrimary: primary },
      ...{ ipName: 'ipconfig1', ipPrimary: true, privateIp: ip, privatePrefixLength: null, subnetId: null, publicIp: null },
    });
    async function listAnswers(pages: Array<{ data: unknown[]; skipToken?: string }>) {
      let next = 0;
      vi.spyOn(ResourceGraphClient.prototype, 'resources').mockImplementation(async () => ({ ...pages[next++]!, resultTruncated: 'false' }) as never);
      const p = provider();
      const handed: string[] = [];
      const listing = await p.listPages(scopeOf(p), undefined, async (instances) => void handed.push(...instances.map((i) => `${i.name}=${i.privateIPv4s.join(',')}`)));
      return { listing, handed };
    }
    afterEach(() => vi.restoreAllMocks());

    it('a row without an id at the end of a page does not cut the VM before it short', async () => {
      const { listing, handed } = await listAnswers([
        { data: [row('a', 'a-secondary', false, '10.9.9.9'), { junk: true }], skipToken: 't1' },
        { data: [row('a', 'a-primary', true, '10.0.0.1'), row('b', 'b', true, '10.0.0.2')] },
      ]);
      expect(handed).toEqual(['a=10.0.0.1', 'b=10.0.0.2']);
      expect(listing).toMatchObject({ complete: false, problems: [{ code: 'VMS_ERR_PROVIDER_ANSWER', message: 'Resource Graph row 1 has no resource id' }] });
    });

    it('rows of one VM that come apart fail the listing: the VM was handed on without some of its interfaces', async () => {
      const { listing } = await listAnswers([
        { data: [row('a', 'a-secondary', false, '10.9.9.9'), row('b', 'b', true, '10.0.0.2')], skipToken: 't1' },
        { data: [row('b', 'b2', false, '10.0.0.3'), row('a', 'a-primary', true, '10.0.0.1'), row('c', 'c', true, '10.0.0.4')] },
      ]);
      expect(listing).toMatchObject({ complete: false, failed: true, problems: [{ code: 'VMS_ERR_PROVIDER_ANSWER', message: expect.stringContaining('came apart') }] });
    });
  });

  it('a 429 without Retry-After is retried after the quota reset Resource Graph names, or the retry delay', async () => {
    arm.putVm({ name: 'vm-1', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    arm.failNext(1, { status: 429, code: 'RateLimiting', retryAfter: null, headers: { 'x-ms-user-quota-remaining': '0', 'x-ms-user-quota-resets-after': '00:00:00' } }, { kind: 'graph' });
    arm.failNext(1, { status: 429, code: 'RateLimiting', retryAfter: null }, { kind: 'graph' });
    const p = provider();

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: true, problems: [] });
    expect(arm.requestsOf('graph').map((r) => r.status)).toEqual([429, 429, 200]);
  });

  it('a truncated answer is an incomplete listing that keeps what it read', async () => {
    for (let n = 0; n < 4; n++) arm.putVm({ name: `vm-${n}`, tags: { mesh: 'true' }, privateIp: `10.0.0.${n + 4}` });
    arm.truncateAfter = 3;
    const p = provider();

    const listing = await p.list(scopeOf(p));

    expect(listing.instances.map((i) => i.name)).toEqual(['vm-0', 'vm-1', 'vm-2']);
    expect(listing.complete).toBe(false);
    expect(listing.problems).toEqual([
      {
        code: 'VMS_ERR_PROVIDER_FAILED',
        message: `Resource Graph truncated its answer for subscription ${SUB} (3 row(s) read); VMs it left out keep their entries until a complete listing`,
        at: 'page 1',
      },
    ]);
  });

  it('a failure on a later page discards the pages already read', async () => {
    for (let n = 0; n < 3; n++) arm.putVm({ name: `vm-${n}`, tags: { mesh: 'true' }, privateIp: `10.0.0.${n + 4}` });
    arm.failAlways({ kind: 'graph', laterPages: true }, { status: 400, code: 'BadRequest', message: 'The skip token has expired.' });
    const p = provider({ pageSize: 2 });

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: false, instances: [] });
    expect(listing.problems).toEqual([
      { code: 'VMS_ERR_PROVIDER_FAILED', message: `the Resource Graph query in subscription ${SUB} failed: HTTP 400 BadRequest: The skip token has expired.`, at: 'page 2' },
    ]);
  });
});

describe('PassedVms', () => {
  const vm = (group: string, name: string) => `/subscriptions/${DEFAULT_SUBSCRIPTION}/resourceGroups/${group}/providers/Microsoft.Compute/virtualMachines/${name}`;
  it.each([
    ['the same id', vm('rg', 'web-1'), vm('rg', 'web-1'), false],
    ['another case and a trailing slash', vm('rg', 'web-1'), ` ${vm('RG', 'WEB-1')}/ `, false],
    ['another VM of the group', vm('rg', 'web-1'), vm('rg', 'web-2'), true],
    ['the same name in another group', vm('rg', 'web-1'), vm('rg2', 'web-1'), true],
    ['ids without a slash', 'web-1', 'WEB-1', false],
    ['an id without a slash and one with', 'web-1', vm('rg', 'web-1'), true],
    ['an id with a slash only in front and one without', '/web-1', 'web-1', true],
  ])('%s: the second is new: %s', (_, first, second, isNew) => {
    const passed = new PassedVms();
    expect(passed.add(first)).toBe(true);
    expect(passed.add(second)).toBe(isNew);
    // Whatever the second was, the first is still known.
    expect(passed.add(first)).toBe(false);
  });
});

describe('SDK packages', () => {
  const TRACE = fileURLToPath(new URL('../../test/helpers/trace-loads.ts', import.meta.url));
  const CHILD = fileURLToPath(new URL('../../test/helpers/azure-list-child.ts', import.meta.url));

  async function run(env: Record<string, string>): Promise<{ found: unknown; packages: string[] }> {
    const dir = mkdtempSync(path.join(tmpdir(), 'vms-azure-loads-'));
    try {
      const trace = path.join(dir, 'trace.txt');
      writeFileSync(trace, '');
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', TRACE, CHILD], {
        env: { PATH: process.env.PATH, VMS_TRACE_LOADS: trace, ARM_URL: arm.url, ARM_CA: tls.cert, ...env },
      });
      const packages = new Set(readFileSync(trace, 'utf8').split('\n').flatMap((url) => /\/node_modules\/(@azure\/[^/]+)\//.exec(url)?.[1] ?? []));
      return { found: JSON.parse(stdout), packages: [...packages] };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('a Resource Graph listing loads neither the Compute nor the Network package; describing a VM does', async () => {
    const id = arm.putVm({ name: 'db-1', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });

    const listed = await run({});
    expect(listed.found).toEqual({ complete: true, instances: 1, described: [] });
    expect(listed.packages).toContain('@azure/arm-resourcegraph');
    expect(listed.packages).not.toContain('@azure/arm-compute');
    expect(listed.packages).not.toContain('@azure/arm-network');

    const described = await run({ DESCRIBE: id });
    expect(described.found).toEqual({ complete: true, instances: 1, described: ['db-1'] });
    expect(described.packages).toEqual(expect.arrayContaining(['@azure/arm-compute', '@azure/arm-network']));
  });
});

describe('list with discovery: arm', () => {
  it('lists VMs with statusOnly, follows nextLink verbatim, and reads interfaces and public IPs once per resource group', async () => {
    arm = await restartWith({ armPageSize: 2 });
    for (let n = 0; n < 5; n++) {
      arm.putVm({ name: `vm-${n}`, resourceGroup: n % 2 === 0 ? 'rg-even' : 'rg-odd', tags: { mesh: 'true' }, privateIp: `10.0.0.${n + 4}`, publicIp: `20.0.0.${n + 4}` });
    }
    arm.putVm({ name: 'untagged', resourceGroup: 'rg-other', tags: {}, privateIp: '10.0.9.9' });
    const p = provider({ discovery: 'arm' });

    const listing = await p.list(scopeOf(p));

    expect(listing.complete).toBe(true);
    expect(listing.instances.map((i) => [i.name, i.privateIPv4s, i.publicIPv4s])).toEqual(
      [0, 1, 2, 3, 4].map((n) => [`vm-${n}`, [`10.0.0.${n + 4}`], [`20.0.0.${n + 4}`]]),
    );
    const vmPages = arm.requestsOf('list-vms');
    expect(vmPages).toHaveLength(3);
    for (const r of vmPages) expect(r.query).toMatchObject({ statusOnly: 'true', 'api-version': expect.any(String) });
    expect(vmPages[0]!.query.$skiptoken).toBeUndefined();
    expect(vmPages[1]!.query.$skiptoken).toBeDefined();
    // rg-even holds three interfaces and three public IPs: two pages each.
    const pagesOf = (kind: 'list-nics' | 'list-public-ips') => arm.requestsOf(kind).map((r) => [r.resourceGroup, r.query.$skiptoken === undefined ? 'first' : 'next']);
    expect(pagesOf('list-nics').sort()).toEqual([['rg-even', 'first'], ['rg-even', 'next'], ['rg-odd', 'first']]);
    expect(pagesOf('list-public-ips').sort()).toEqual([['rg-even', 'first'], ['rg-even', 'next'], ['rg-odd', 'first']]);
    expect(arm.requests.filter((r) => r.kind.startsWith('get-'))).toEqual([]);
  });

  it('an interface listing that fails makes the subscription incomplete, naming the resource group', async () => {
    arm.putVm({ name: 'vm-1', resourceGroup: 'rg-a', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    arm.failAlways({ kind: 'list-nics', resourceGroup: 'rg-a' }, { status: 500 });
    const p = provider({ discovery: 'arm', maxRetries: 1 });

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: false, instances: [] });
    expect(listing.problems).toEqual([
      {
        code: 'VMS_ERR_PROVIDER_FAILED',
        message: `listing network interfaces of resource group rg-a in subscription ${SUB} failed: HTTP 500 InternalServerError: Encountered internal server error. (after 2 attempts)`,
        at: 'resource group rg-a',
      },
    ]);
  });

  it('gives the same instances as Resource Graph for the same VMs', async () => {
    arm.putVm({ name: 'a', zones: ['1'], tags: { mesh: 'true', x: 'y' }, nics: [{ primary: true, ipConfigs: [{ privateIp: '10.0.0.4', publicIp: { address: '20.0.0.4' } }, { privateIp: 'fd00::4', primary: false }] }] });
    arm.putVm({ name: 'b', resourceGroup: 'rg-b', tags: { mesh: 'true' }, powerState: 'PowerState/deallocated', privateIp: '10.0.0.5' });
    const now = () => new Date('2025-01-01T00:00:00.000Z');
    const graph = await provider({ discovery: 'resource-graph' }, { now }).list(scopeOf(provider()));
    const listed = await provider({ discovery: 'arm' }, { now }).list(scopeOf(provider()));

    const byId = (a: Instance, b: Instance) => (a.id < b.id ? -1 : 1);
    expect(listed.instances.sort(byId)).toEqual(graph.instances.sort(byId));
    expect(listed.complete && graph.complete).toBe(true);
    expect(graph.instances.map((i) => i.name).sort()).toEqual(['a', 'b']);
  });
});

async function restartWith(options: { armPageSize: number }): Promise<FakeArm> {
  await arm.close();
  return startFakeArm({ tls, subscriptions: [SUB, OTHER_SUB], ...options });
}
