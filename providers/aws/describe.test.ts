// describe(): instances by id, through the real EC2Client against the fake EC2 endpoint.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isVmsError } from '../../services/errors.ts';
import type { InstanceRef } from '../../services/model.ts';
import { DEFAULT_ACCOUNT, type FakeEc2, startFakeEc2 } from '../../test/fakes/ec2/ec2-server.ts';
import { type AwsProvider, createAwsProvider } from './aws-provider.ts';
import { awsBlock, BASE_CREDENTIALS, SELECTOR } from './test-support.ts';

let ec2: FakeEc2;
let p: AwsProvider;

/** A reference; `null` region: one without a region. */
function ref(id: string, region: string | null = 'us-east-1', account = DEFAULT_ACCOUNT): InstanceRef {
  return region === null ? { provider: 'aws', account, id } : { provider: 'aws', account, region, id };
}

beforeEach(async () => {
  ec2 = await startFakeEc2();
  p = createAwsProvider(awsBlock(ec2.url, { regions: ['us-east-1', 'us-west-2'], maxAttempts: 1 }), { selector: SELECTOR, credentials: BASE_CREDENTIALS });
});

afterEach(async () => {
  await p.close();
  await ec2.close();
});

describe('describe', () => {
  it('returns the referenced instances, by id and without listing filters (a lost selector tag must be seen)', async () => {
    ec2.put({ id: 'i-00000001', tags: { mesh: 'true' }, privateIp: '10.0.0.1' });
    ec2.put({ id: 'i-00000002', tags: {}, state: 'stopped', privateIp: '10.0.0.2' });

    const described = await p.describe([ref('i-00000001'), ref('i-00000002')]);

    expect(described.map((d) => [d.ref.id, d.instance?.id, d.instance?.state, d.instance?.tags])).toEqual([
      ['i-00000001', 'i-00000001', 'running', { mesh: 'true' }],
      ['i-00000002', 'i-00000002', 'stopped', {}],
    ]);
    expect(ec2.describeRequests).toHaveLength(1);
    expect(ec2.describeRequests[0]).toMatchObject({ instanceIds: ['i-00000001', 'i-00000002'], filters: [], maxResults: undefined, region: 'us-east-1' });
  });

  it('an id EC2 reports as not found is null (gone); the call is repeated without it for the others', async () => {
    ec2.put({ id: 'i-00000001', tags: { mesh: 'true' } });

    const described = await p.describe([ref('i-00000001'), ref('i-0000000f'), ref('i-0000000e')]);

    expect(described.map((d) => [d.ref.id, d.instance?.id ?? null])).toEqual([
      ['i-00000001', 'i-00000001'],
      ['i-0000000f', null],
      ['i-0000000e', null],
    ]);
    expect(ec2.describeRequests.map((r) => [r.instanceIds, r.status])).toEqual([
      [['i-00000001', 'i-0000000f', 'i-0000000e'], 400],
      [['i-00000001'], 200],
    ]);
  });

  it('every id gone: all null', async () => {
    const described = await p.describe([ref('i-0000000f')]);
    expect(described).toEqual([{ ref: ref('i-0000000f'), instance: null }]);
  });

  it('a not-found error that names none of the ids is resolved by asking one id at a time', async () => {
    ec2.put({ id: 'i-00000001' });
    ec2.failNext(1, 'InvalidInstanceID.NotFound', { message: 'The instance IDs do not exist' });

    const described = await p.describe([ref('i-00000001'), ref('i-0000000f')]);

    expect(described.map((d) => d.instance?.id ?? null)).toEqual(['i-00000001', null]);
    expect(ec2.describeRequests.map((r) => r.instanceIds)).toEqual([['i-00000001', 'i-0000000f'], ['i-00000001'], ['i-0000000f']]);
  });

  it('a terminated instance is returned as terminated (mapping removes its entry)', async () => {
    ec2.put({ id: 'i-00000001', tags: { mesh: 'true' }, state: 'terminated' });
    const [d] = await p.describe([ref('i-00000001')]);
    expect(d!.instance).toMatchObject({ id: 'i-00000001', state: 'terminated' });
  });

  it('asks at most 1000 ids per call, one group per account and region', async () => {
    const ids = Array.from({ length: 1500 }, (_, n) => `i-${(0x30000000 + n).toString(16)}`);
    for (const id of ids) ec2.put({ id });
    ec2.put({ id: 'i-0000000000000000a', region: 'us-west-2' });

    const described = await p.describe([...ids.map((id) => ref(id)), ref('i-0000000000000000a', 'us-west-2')]);

    expect(described.every((d) => d.instance?.id === d.ref.id)).toBe(true);
    expect(described.at(-1)!.instance).toMatchObject({ region: 'us-west-2' });
    const byRegion = ec2.describeRequests.map((r) => [r.region, r.instanceIds.length]);
    expect(byRegion.sort()).toEqual([
      ['us-east-1', 1000],
      ['us-east-1', 500],
      ['us-west-2', 1],
    ].sort());
  });

  it('a reference without a region is looked up in every region of the block', async () => {
    ec2.put({ id: 'i-00000001', region: 'us-west-2' });

    const [found, gone] = await p.describe([ref('i-00000001', null), ref('i-0000000f', null)]);

    expect(found!.instance).toMatchObject({ id: 'i-00000001', region: 'us-west-2' });
    expect(gone!.instance).toBeNull();
    expect(new Set(ec2.describeRequests.map((r) => r.region))).toEqual(new Set(['us-east-1', 'us-west-2']));
  });

  it('a malformed id is null without a call; duplicates are asked once', async () => {
    ec2.put({ id: 'i-00000001' });
    const described = await p.describe([ref('not-an-id'), ref('i-00000001'), ref('i-00000001')]);
    expect(described.map((d) => d.instance?.id ?? null)).toEqual([null, 'i-00000001', 'i-00000001']);
    expect(ec2.describeRequests.map((r) => r.instanceIds)).toEqual([['i-00000001']]);
  });

  it('other failures throw VMS_ERR_PROVIDER_FAILED, so the caller retries instead of deleting', async () => {
    ec2.put({ id: 'i-00000001' });
    ec2.failAlways({ region: 'us-east-1' }, 'UnauthorizedOperation');

    const err = await p.describe([ref('i-00000001')]).catch((e: unknown) => e);

    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect((err as Error).message).toBe(
      `DescribeInstances of 1 instance(s) in us-east-1 (account ${DEFAULT_ACCOUNT}) failed: UnauthorizedOperation: You are not authorized to perform this operation.`,
    );
  });

  it('a reference outside the block (another account, region or provider) throws instead of saying gone', async () => {
    for (const outside of [ref('i-00000001', 'us-east-1', '999999999999'), ref('i-00000001', 'eu-west-1'), { ...ref('i-00000001'), provider: 'gcp' as const }]) {
      const err = await p.describe([outside]).catch((e: unknown) => e);
      expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    }
    expect(ec2.requests).toHaveLength(0);
  });

  it('an aborted signal throws', async () => {
    ec2.put({ id: 'i-00000001' });
    const controller = new AbortController();
    controller.abort(new Error('request cancelled'));
    const err = await p.describe([ref('i-00000001')], controller.signal).catch((e: unknown) => e);
    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect((err as Error).message).toContain('abandoned: request cancelled');
  });
});
