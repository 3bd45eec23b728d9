// describe(): VMs by resource id, through the real Compute and Network clients against the fake ARM
// endpoint; and the round trip from an Event Grid event to the entry the listing made.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isVmsError } from '../../services/errors.ts';
import { mappingSchema } from '../../config/schema.ts';
import { entryName, mapInstance } from '../../services/mapping/index.ts';
import type { InstanceRef } from '../../services/model.ts';
import { DEFAULT_SUBSCRIPTION, type FakeArm, startFakeArm } from '../../test/fakes/azure/arm-server.ts';
import { createTestCertificate, type TestCertificate } from '../../test/fakes/azure/tls.ts';
import { type AzureProvider, createAzureProvider } from './azure-provider.ts';
import { azureBlock, RecordingCredential, SELECTOR } from './test-support.ts';

const SUB = DEFAULT_SUBSCRIPTION;
const PREFIX = `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.compute/virtualmachines`;

let tls: TestCertificate;
let arm: FakeArm;
let p: AzureProvider;

function ref(name: string, account = SUB): InstanceRef {
  return { provider: 'azure', account, id: `${PREFIX}/${name}` };
}

beforeAll(async () => {
  tls = await createTestCertificate();
});

beforeEach(async () => {
  arm = await startFakeArm({ tls });
  p = createAzureProvider(azureBlock(arm.url, { maxRetries: 1, webhook: { querySecret: { value: 's3cret' } } }), {
    selector: SELECTOR,
    credential: new RecordingCredential(),
    ca: tls.cert,
    now: () => new Date('2025-01-15T10:00:00.000Z'),
  });
});

afterEach(async () => {
  await p.close();
  await arm.close();
});

describe('describe', () => {
  it('reads the VM with its instance view, its interfaces and public IPs, whatever its tags', async () => {
    arm.putVm({
      name: 'db-1',
      zones: ['3'],
      tags: { team: 'data' },
      powerState: 'PowerState/deallocated',
      nics: [
        { name: 'db-1-b', ipConfigs: [{ privateIp: '10.0.2.4' }] },
        { name: 'db-1-a', primary: true, ipConfigs: [{ privateIp: '10.0.1.4', publicIp: { address: '20.0.0.9' } }] },
      ],
    });

    const [described] = await p.describe([ref('db-1')]);

    expect(described!.instance).toEqual({
      provider: 'azure',
      account: SUB,
      region: 'westeurope',
      zone: 'westeurope-3',
      id: `${PREFIX}/db-1`,
      name: 'db-1',
      state: 'stopped',
      privateIPv4s: ['10.0.1.4'],
      publicIPv4s: ['20.0.0.9'],
      ipv6s: [],
      networkId: `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.network/virtualnetworks/vnet-mesh`,
      subnetId: `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.network/virtualnetworks/vnet-mesh/subnets/default`,
      tags: { team: 'data' },
      observedAt: '2025-01-15T10:00:00.000Z',
    });
    expect(arm.requests.map((r) => [r.kind, r.path.split('/').at(-1), r.query.$expand])).toEqual([
      ['get-vm', 'db-1', 'instanceView'],
      ['get-nic', 'db-1-b', undefined],
      ['get-nic', 'db-1-a', undefined],
      ['get-public-ip', 'db-1-ip10', undefined],
    ]);
  });

  it('describes a VM as the listing lists it', async () => {
    arm.putVm({ name: 'app-1', tags: { mesh: 'true' }, zones: ['1'], nics: [{ ipConfigs: [{ privateIp: '10.0.0.4', publicIp: { address: '20.0.0.4' } }, { privateIp: 'fd00::4', primary: false }] }] });

    const [listed] = (await p.list(p.scopes()[0]!)).instances;
    const [described] = await p.describe([ref('app-1')]);

    expect(described!.instance).toEqual(listed);
  });

  it('a VM that is not found is null (gone); so is one whose resource group is gone', async () => {
    arm.putVm({ name: 'other', privateIp: '10.0.0.4' });
    const described = await p.describe([ref('gone'), { provider: 'azure', account: SUB, id: `/subscriptions/${SUB}/resourcegroups/rg-deleted/providers/microsoft.compute/virtualmachines/x` }]);
    expect(described.map((d) => d.instance)).toEqual([null, null]);
    expect(arm.requests.map((r) => r.status)).toEqual([404, 404]);
  });

  it('an id that is not a VM id is null without a call; duplicates are asked once', async () => {
    arm.putVm({ name: 'db-1', privateIp: '10.0.0.4' });
    const nic = { provider: 'azure' as const, account: SUB, id: `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.network/networkinterfaces/db-1-nic0` };
    const upper = { ...ref('db-1'), id: ref('db-1').id.toUpperCase().replace(SUB.toUpperCase(), SUB) };

    const described = await p.describe([nic, ref('db-1'), upper]);

    expect(described.map((d) => d.instance?.name ?? null)).toEqual([null, 'db-1', 'db-1']);
    expect(arm.requestsOf('get-vm')).toHaveLength(1);
  });

  it('a reference outside the block (another subscription or provider) throws instead of saying gone', async () => {
    const other = '9b8a7c6d-0000-4e5f-8a9b-0c1d2e3f4a5b';
    for (const outside of [ref('db-1', other), { ...ref('db-1'), provider: 'aws' as const }]) {
      const err = await p.describe([outside]).catch((e: unknown) => e);
      expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    }
    expect(arm.requests).toHaveLength(0);
  });

  it('asked in one subscription for a VM id of another (as explain asks every scope), says not here without a call', async () => {
    const other = '9b8a7c6d-0000-4e5f-8a9b-0c1d2e3f4a5b';
    const q = createAzureProvider(azureBlock(arm.url, { subscriptions: [SUB, other] }), { selector: SELECTOR, credential: new RecordingCredential(), ca: tls.cert });
    arm.putVm({ name: 'db-1', privateIp: '10.0.0.4' });

    const described = await Promise.all(q.scopes().map((scope) => q.describe([{ provider: 'azure', account: scope.account, id: ref('db-1').id }])));
    await q.close();

    expect(described.map(([d]) => [d!.ref.account, d!.instance?.name ?? null])).toEqual([
      [SUB, 'db-1'],
      [other, null],
    ]);
    expect(arm.requestsOf('get-vm')).toHaveLength(1);
  });

  it('other failures throw VMS_ERR_PROVIDER_FAILED, so the caller retries instead of deleting', async () => {
    arm.putVm({ name: 'db-1', privateIp: '10.0.0.4' });
    arm.failAlways({ kind: 'get-nic' }, { status: 500 });

    const err = await p.describe([ref('db-1')]).catch((e: unknown) => e);

    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect((err as Error).message).toBe(`describing VM ${PREFIX}/db-1 failed: HTTP 500 InternalServerError: Encountered internal server error. (after 2 attempts)`);
  });

  it('a subscription ARM does not know is a failure, not a VM that is gone', async () => {
    const other = '9b8a7c6d-0000-4e5f-8a9b-0c1d2e3f4a5b';
    const q = createAzureProvider(azureBlock(arm.url, { subscriptions: [other] }), { selector: SELECTOR, credential: new RecordingCredential(), ca: tls.cert });
    const err = await q.describe([{ provider: 'azure', account: other, id: ref('db-1').id.replace(SUB, other) }]).catch((e: unknown) => e);
    await q.close();
    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect((err as Error).message).toContain('HTTP 404 SubscriptionNotFound');
  });

  it('an answer with a VM of another subscription throws VMS_ERR_ACCOUNT_MISMATCH, before its interfaces are read', async () => {
    const other = '9b8a7c6d-0000-4e5f-8a9b-0c1d2e3f4a5b';
    arm.putVm({ name: 'db-1', subscription: other, privateIp: '10.0.0.4' });
    arm.answerAs(SUB, other);

    const err = await p.describe([ref('db-1')]).catch((e: unknown) => e);

    expect(isVmsError(err, 'VMS_ERR_ACCOUNT_MISMATCH'), String(err)).toBe(true);
    expect((err as Error).message).toBe(
      `getting VM ${PREFIX}/db-1 in subscription ${SUB} answered with VM ${PREFIX.replace(SUB, other)}/db-1 of subscription ${other}: the endpoint ${arm.url} does not serve subscription ${SUB} as asked; check subscriptions[] and endpoint (nothing in this scope is changed until they match)`,
    );
    expect(arm.requests.map((r) => r.kind)).toEqual(['get-vm']);
  });

  it('a VM whose primary interface is gone is an answer problem, not gone', async () => {
    const id = arm.putVm({ name: 'db-1', privateIp: '10.0.0.4' });
    arm.removeNic(arm.nicIdsOf(id)[0]!);
    const err = await p.describe([ref('db-1')]).catch((e: unknown) => e);
    expect(isVmsError(err, 'VMS_ERR_PROVIDER_ANSWER')).toBe(true);
  });

  it('an aborted signal throws', async () => {
    arm.putVm({ name: 'db-1', privateIp: '10.0.0.4' });
    const controller = new AbortController();
    controller.abort(new Error('request cancelled'));
    const err = await p.describe([ref('db-1')], controller.signal).catch((e: unknown) => e);
    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect((err as Error).message).toBe(`describing VM ${PREFIX}/db-1 abandoned: request cancelled`);
  });
});

describe('from an event to the entry', () => {
  const fixtures = path.join(import.meta.dirname, '../../test/fixtures/azure');

  it('a delete event names the entry the listing made, and describe says the VM is gone', async () => {
    arm.putVm({ name: 'db-1', tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
    const [listed] = (await p.list(p.scopes()[0]!)).instances;
    arm.removeVm(`${PREFIX}/db-1`);

    const body = JSON.parse(readFileSync(path.join(fixtures, 'eventgrid-vm-delete.json'), 'utf8')) as unknown;
    const outcome = p.webhook.handle({ method: 'POST', headers: {}, query: { code: 's3cret' }, body, rawBody: '' });
    if (outcome.kind !== 'refresh') throw new Error(`expected a refresh, got ${outcome.kind}`);
    const [eventRef] = outcome.refs;

    expect(entryName({ provider: eventRef!.provider, id: eventRef!.id })).toBe(entryName(listed!));
    expect(entryName(listed!)).toMatch(/^azure-subscriptions-1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b-resourcegroups-rg-mesh-providers-microsoft-compute-virtualmachines-db-1-[0-9a-f]{10}$/);
    expect(await p.describe([eventRef!])).toEqual([{ ref: eventRef, instance: null }]);
  });

  it('a listed VM maps to a WorkloadEntry: locality from location and zone, mesh network by VNet id', async () => {
    arm.putVm({ name: 'db-1', zones: ['2'], tags: { mesh: 'true', 'mesh-app': 'postgres', 'mesh-ports': 'postgres:5432' }, privateIp: '10.0.0.4' });
    const [instance] = (await p.list(p.scopes()[0]!)).instances;
    const vnet = `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.network/virtualnetworks/vnet-mesh`;
    const rules = mappingSchema.parse({ network: { byNetworkId: { [vnet]: 'azure-westeurope' } } });

    const result = mapInstance(instance!, rules, { ownerId: 'default', scopeKey: p.scopes()[0]!.key, observedAt: instance!.observedAt });

    if (result.kind !== 'entry') throw new Error(`expected an entry, got ${result.skip.reason}`);
    expect(result.entry.metadata.name).toBe(entryName(instance!));
    expect(result.entry.spec).toMatchObject({ address: '10.0.0.4', ports: { postgres: 5432 }, labels: { app: 'postgres' }, network: 'azure-westeurope', locality: 'westeurope/westeurope-2' });
  });

  it('a deallocate event leads to the VM described as stopped', async () => {
    arm.putVm({ name: 'db-1', tags: { mesh: 'true' }, privateIp: '10.0.0.4', powerState: 'PowerState/deallocated' });
    const body = JSON.parse(readFileSync(path.join(fixtures, 'eventgrid-vm-deallocate.json'), 'utf8')) as unknown;
    const outcome = p.webhook.handle({ method: 'POST', headers: {}, query: {}, body, rawBody: '' });
    if (outcome.kind !== 'refresh') throw new Error(`expected a refresh, got ${outcome.kind}`);

    const [described] = await p.describe(outcome.refs);

    expect(described!.instance).toMatchObject({ name: 'db-1', state: 'stopped' });
  });
});
