// Listing through the real EC2Client against the fake EC2 (and STS) endpoint on 127.0.0.1.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_ACCOUNT, type FakeEc2, startFakeEc2 } from '../../test/fakes/ec2/ec2-server.ts';
import { type FakeSts, startFakeSts } from '../../test/fakes/ec2/sts-server.ts';
import { AwsProvider, createAwsProvider } from './aws-provider.ts';
import { Ec2ClientPool } from './clients.ts';
import { awsBlock, BASE_CREDENTIALS, SELECTOR, steppingClock } from './test-support.ts';

let ec2: FakeEc2;
const providers: AwsProvider[] = [];

function provider(overrides: Record<string, unknown> = {}, options: Partial<ConstructorParameters<typeof AwsProvider>[1]> = {}): AwsProvider {
  const p = createAwsProvider(awsBlock(ec2.url, overrides), { selector: SELECTOR, credentials: BASE_CREDENTIALS, ...options });
  providers.push(p);
  return p;
}

function scopeOf(p: AwsProvider, region = 'us-east-1', account = DEFAULT_ACCOUNT) {
  const scope = p.scopes().find((s) => s.region === region && s.account === account);
  if (!scope) throw new Error(`no scope ${account}/${region}`);
  return scope;
}

beforeEach(async () => {
  ec2 = await startFakeEc2();
});

afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  await ec2.close();
});

describe('scopes', () => {
  it('are every account × region, keyed aws:<name>:<account>:<region>', () => {
    const p = provider({ regions: ['us-east-1', 'eu-west-1'], accounts: [{ id: '123456789012' }, { id: '000000000042' }] });
    expect(p.scopes().map((s) => s.key)).toEqual([
      'aws:test:123456789012:us-east-1',
      'aws:test:123456789012:eu-west-1',
      'aws:test:000000000042:us-east-1',
      'aws:test:000000000042:eu-west-1',
    ]);
    expect(p.scopes()[3]).toEqual({ key: 'aws:test:000000000042:eu-west-1', provider: 'aws', source: 'test', account: '000000000042', region: 'eu-west-1' });
  });

  it('a scope of another block is refused as an incomplete listing, without a call', async () => {
    const p = provider();
    const listing = await p.list({ key: 'aws:other:123456789012:us-east-1', provider: 'aws', source: 'other', account: '123456789012', region: 'us-east-1' });
    expect(listing).toMatchObject({ complete: false, instances: [], problems: [{ code: 'VMS_ERR_PROVIDER_FAILED' }] });
    expect(ec2.requests).toHaveLength(0);
  });
});

describe('list', () => {
  it('reads every page at the configured page size, stamping each page with its own time', async () => {
    for (let n = 0; n < 12; n++) ec2.put({ id: `i-${(0x10000000 + n).toString(16)}`, tags: { mesh: 'true' }, privateIp: `10.0.0.${n + 1}` });
    const clock = steppingClock();
    const p = provider({ pageSize: 5 }, { now: clock.now });

    const listing = await p.list(scopeOf(p));

    expect(listing.complete).toBe(true);
    expect(listing.problems).toEqual([]);
    expect(listing.instances.map((i) => i.id)).toHaveLength(12);
    const requests = ec2.describeRequests;
    expect(requests.map((r) => r.maxResults)).toEqual([5, 5, 5]);
    expect(requests[0]!.nextToken).toBeUndefined();
    expect(requests[1]!.nextToken).toBeDefined();
    expect(requests[2]!.nextToken).not.toBe(requests[1]!.nextToken);
    const observed = [...new Set(listing.instances.map((i) => i.observedAt))];
    expect(observed).toEqual(['2025-01-01T00:00:00.000Z', '2025-01-01T00:00:01.000Z', '2025-01-01T00:00:02.000Z']);
  });

  it('asks for the next page while a page is still being taken in, and hands the pages on in order', async () => {
    for (let n = 0; n < 12; n++) ec2.put({ id: `i-${(0x10000000 + n).toString(16)}`, tags: { mesh: 'true' }, privateIp: `10.0.0.${n + 1}` });
    const p = provider({ pageSize: 5 });
    // Each page is taken in only once EC2 has been asked for the one after it (or after a few
    // seconds: then the next page was not asked for, and the listing fails the check below).
    const askedWhileTaking: number[] = [];
    const pages: string[][] = [];
    const listing = await p.listPages(scopeOf(p), undefined, async (instances) => {
      pages.push(instances.map((i) => i.id));
      const wanted = Math.min(pages.length + 1, 3);
      for (let waited = 0; ec2.describeRequests.length < wanted && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
      askedWhileTaking.push(ec2.describeRequests.length);
    });
    expect(listing.complete).toBe(true);
    expect(askedWhileTaking).toEqual([2, 3, 3]);
    expect(pages.flat()).toEqual(Array.from({ length: 12 }, (_, n) => `i-${(0x10000000 + n).toString(16)}`));
    expect(ec2.describeRequests).toHaveLength(3);
  });

  it('sends the selector, state and configured filters to EC2, which filters server-side', async () => {
    ec2.put({ id: 'i-00000001', tags: { mesh: 'true' }, vpcId: 'vpc-1', privateIp: '10.0.0.1' });
    ec2.put({ id: 'i-00000002', tags: { mesh: 'TRUE ' }, vpcId: 'vpc-1', state: 'stopped' });
    ec2.put({ id: 'i-00000003', tags: { team: 'x' }, vpcId: 'vpc-1' });
    ec2.put({ id: 'i-00000004', tags: { mesh: 'true' }, vpcId: 'vpc-2' });
    ec2.put({ id: 'i-00000005', tags: { mesh: 'true' }, vpcId: 'vpc-1', state: 'terminated' });
    ec2.put({ id: 'i-00000006', tags: { mesh: 'true' }, vpcId: 'vpc-1', state: 'shutting-down' });
    const p = provider({ filters: [{ name: 'vpc-id', values: ['vpc-1'] }] });

    const listing = await p.list(scopeOf(p));

    const [request] = ec2.describeRequests;
    expect(request).toMatchObject({ action: 'DescribeInstances', version: '2016-11-15', maxResults: 1000, region: 'us-east-1' });
    expect(request!.filters).toEqual([
      { name: 'tag-key', values: ['mesh'] },
      { name: 'instance-state-name', values: ['pending', 'running', 'stopping', 'stopped'] },
      { name: 'vpc-id', values: ['vpc-1'] },
    ]);
    // The value is left to mapping, which accepts 'TRUE ' as well.
    expect(listing.instances.map((i) => i.id).sort()).toEqual(['i-00000001', 'i-00000002']);
  });

  it('maps what EC2 answers: addresses of every interface in device order, tags, placement, network', async () => {
    ec2.put({
      id: 'i-0abc12345678def01',
      name: 'db-1',
      tags: { mesh: 'true', 'mesh-app': 'postgres' },
      zone: 'us-east-1c',
      vpcId: 'vpc-0a1b2c3d',
      subnetId: 'subnet-0a1b2c3d',
      privateIp: '10.0.1.10',
      publicIp: '54.1.2.3',
      primaryIpv6: '2600:1f18::10',
      interfaces: [
        { deviceIndex: 1, privateIps: ['10.0.2.20', '10.0.2.21'], secondaryPublicIps: { '10.0.2.21': '3.3.3.3' }, ipv6s: ['2600:1f18::20'] },
        { deviceIndex: 0, privateIps: ['10.0.1.10', '10.0.1.11'], publicIp: '54.1.2.3', ipv6s: ['2600:1f18::10', '2600:1f18::11'] },
      ],
    });
    const p = provider({}, { now: () => new Date('2025-02-03T04:05:06.789Z') });

    const listing = await p.list(scopeOf(p));

    expect(listing.instances).toEqual([
      {
        provider: 'aws',
        account: DEFAULT_ACCOUNT,
        region: 'us-east-1',
        zone: 'us-east-1c',
        id: 'i-0abc12345678def01',
        name: 'db-1',
        state: 'running',
        privateIPv4s: ['10.0.1.10', '10.0.1.11', '10.0.2.20', '10.0.2.21'],
        publicIPv4s: ['54.1.2.3', '3.3.3.3'],
        ipv6s: ['2600:1f18::10', '2600:1f18::11', '2600:1f18::20'],
        networkId: 'vpc-0a1b2c3d',
        subnetId: 'subnet-0a1b2c3d',
        tags: { Name: 'db-1', mesh: 'true', 'mesh-app': 'postgres' },
        observedAt: '2025-02-03T04:05:06.789Z',
      },
    ]);
  });

  it('maps an IPv6-only instance and one without any address; mapping decides about them', async () => {
    ec2.put({ id: 'i-0000000000000000a', tags: { mesh: 'true' }, primaryIpv6: '2600:1f18::a', interfaces: [{ deviceIndex: 0, ipv6s: ['2600:1f18::a'] }] });
    ec2.put({ id: 'i-0000000000000000b', tags: { mesh: 'true' } });
    const p = provider();

    const byId = new Map((await p.list(scopeOf(p))).instances.map((i) => [i.id, i]));

    expect(byId.get('i-0000000000000000a')).toMatchObject({ privateIPv4s: [], publicIPv4s: [], ipv6s: ['2600:1f18::a'], name: 'i-0000000000000000a' });
    expect(byId.get('i-0000000000000000b')).toMatchObject({ privateIPv4s: [], publicIPv4s: [], ipv6s: [] });
  });

  it('lists stopped and stopping instances with their state, so skip reasons can name it', async () => {
    ec2.put({ id: 'i-00000001', tags: { mesh: 'true' }, state: 'stopped', privateIp: '10.0.0.1' });
    ec2.put({ id: 'i-00000002', tags: { mesh: 'true' }, state: 'stopping', privateIp: '10.0.0.2' });
    ec2.put({ id: 'i-00000003', tags: { mesh: 'true' }, state: 'pending', privateIp: '10.0.0.3' });
    const p = provider();

    const states = Object.fromEntries((await p.list(scopeOf(p))).instances.map((i) => [i.id, i.state]));

    expect(states).toEqual({ 'i-00000001': 'stopped', 'i-00000002': 'stopping', 'i-00000003': 'pending' });
  });

  it('sees tag changes between listings, and an instance that lost the selector tag is no longer listed', async () => {
    ec2.put({ id: 'i-00000001', tags: { mesh: 'true', 'mesh-app': 'web' }, privateIp: '10.0.0.1' });
    const p = provider();
    expect((await p.list(scopeOf(p))).instances[0]!.tags).toEqual({ mesh: 'true', 'mesh-app': 'web' });

    ec2.setTags('i-00000001', { mesh: 'true', 'mesh-app': 'api', 'mesh-ports': 'http:8080' });
    expect((await p.list(scopeOf(p))).instances[0]!.tags).toEqual({ mesh: 'true', 'mesh-app': 'api', 'mesh-ports': 'http:8080' });

    ec2.setTags('i-00000001', { 'mesh-app': 'api' });
    const third = await p.list(scopeOf(p));
    expect(third).toMatchObject({ complete: true, instances: [] });
  });

  it('rides out throttling: the SDK retries RequestLimitExceeded and the listing is complete', async () => {
    ec2.put({ id: 'i-00000001', tags: { mesh: 'true' }, privateIp: '10.0.0.1' });
    ec2.failNext(2, 'RequestLimitExceeded');
    const p = provider({ maxAttempts: 3 });

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: true, problems: [] });
    expect(listing.instances.map((i) => i.id)).toEqual(['i-00000001']);
    expect(ec2.describeRequests.map((r) => r.status)).toEqual([503, 503, 200]);
  });

  it('a region that keeps failing gives an incomplete listing with the reason; another region still lists', async () => {
    ec2.put({ id: 'i-00000001', region: 'us-east-1', tags: { mesh: 'true' }, privateIp: '10.0.0.1' });
    ec2.put({ id: 'i-00000002', region: 'us-west-2', tags: { mesh: 'true' }, privateIp: '10.1.0.1' });
    ec2.failAlways({ region: 'us-west-2' }, 'RequestLimitExceeded');
    const p = provider({ regions: ['us-east-1', 'us-west-2'], maxAttempts: 2 });

    const [east, west] = await Promise.all([p.list(scopeOf(p, 'us-east-1')), p.list(scopeOf(p, 'us-west-2'))]);

    expect(east).toMatchObject({ complete: true, problems: [] });
    expect(east.instances.map((i) => i.id)).toEqual(['i-00000001']);
    expect(west).toEqual({
      scope: scopeOf(p, 'us-west-2'),
      instances: [],
      complete: false,
      problems: [
        {
          code: 'VMS_ERR_PROVIDER_FAILED',
          message: `DescribeInstances in us-west-2 (account ${DEFAULT_ACCOUNT}) failed: RequestLimitExceeded: Request limit exceeded. (after 2 attempts)`,
          at: 'page 1',
        },
      ],
    });
    expect(ec2.describeRequests.filter((r) => r.region === 'us-west-2')).toHaveLength(2);
  });

  it('a failure on a later page discards the pages already read: no partial listing passes as complete', async () => {
    for (let n = 0; n < 7; n++) ec2.put({ id: `i-${(0x20000000 + n).toString(16)}`, tags: { mesh: 'true' } });
    ec2.failAlways({ laterPages: true }, 'UnauthorizedOperation');
    const p = provider({ pageSize: 5 });

    const listing = await p.list(scopeOf(p));

    expect(listing.complete).toBe(false);
    expect(listing.instances).toEqual([]);
    expect(listing.problems).toEqual([
      expect.objectContaining({ code: 'VMS_ERR_PROVIDER_FAILED', at: 'page 2', message: expect.stringContaining('UnauthorizedOperation: You are not authorized') }),
    ]);
    // UnauthorizedOperation is not retried.
    expect(ec2.describeRequests).toHaveLength(2);
  });

  it('a page with a reservation of another account fails the scope with VMS_ERR_ACCOUNT_MISMATCH and passes nothing of it on', async () => {
    for (let n = 0; n < 7; n++) ec2.put({ id: `i-${(0x30000000 + n).toString(16)}`, tags: { mesh: 'true' }, ...(n === 6 ? { reservationOwner: '210987654321' } : {}) });
    const p = provider({ pageSize: 5 });
    const pages: string[][] = [];

    const listing = await p.listPages!(scopeOf(p), undefined, async (page) => {
      pages.push(page.map((i) => i.id));
    });

    expect(listing).toMatchObject({ complete: false, failed: true, problems: [{ code: 'VMS_ERR_ACCOUNT_MISMATCH', at: 'page 2' }] });
    expect(listing.problems[0]!.message).toMatch(/answered with instances of account 210987654321/);
    // The first page went on; nothing of the second, whose last reservation is another account's.
    expect(pages).toEqual([['i-30000000', 'i-30000001', 'i-30000002', 'i-30000003', 'i-30000004']]);
  });

  it('an instance EC2 describes in an unknown state makes the listing incomplete but keeps the others', async () => {
    ec2.put({ id: 'i-00000001', tags: { mesh: 'true' } });
    ec2.put({ id: 'i-00000002', tags: { mesh: 'true' }, reportedState: 'hibernating' });
    const p = provider();

    const listing = await p.list(scopeOf(p));

    expect(listing.instances.map((i) => i.id)).toEqual(['i-00000001']);
    expect(listing.complete).toBe(false);
    expect(listing.problems).toEqual([{ code: 'VMS_ERR_PROVIDER_ANSWER', message: "instance i-00000002 in us-east-1 has an unknown state 'hibernating'", at: 'i-00000002' }]);
  });

  it('an aborted signal abandons the listing as incomplete, also while a request is in flight', async () => {
    ec2.put({ id: 'i-00000001', tags: { mesh: 'true' } });
    const p = provider();
    const before = new AbortController();
    before.abort(new Error('resync timeout'));
    const early = await p.list(scopeOf(p), before.signal);
    expect(early).toMatchObject({ complete: false, instances: [], problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: expect.stringContaining('abandoned after 0 page(s): resync timeout') }] });
    expect(ec2.requests).toHaveLength(0);

    ec2.hang({ region: 'us-east-1' });
    const during = new AbortController();
    const pending = p.list(scopeOf(p), during.signal);
    await vi.waitFor(() => expect(ec2.requests).toHaveLength(1));
    during.abort(new Error('shutting down'));
    const listing = await pending;
    expect(listing).toMatchObject({ complete: false, instances: [], problems: [{ message: expect.stringContaining('abandoned after 0 page(s): shutting down') }] });
  });

  it('a request that exceeds the timeout is abandoned, retried, and the scope counts as failed', async () => {
    ec2.hang({ region: 'us-east-1' });
    const p = provider({ timeout: '300ms', maxAttempts: 2 });

    const listing = await p.list(scopeOf(p));

    expect(listing.complete).toBe(false);
    expect(listing.problems[0]!.message).toMatch(/^DescribeInstances in us-east-1 \(account 123456789012\) failed: TimeoutError: .*\(after 2 attempts\)$/);
    expect(ec2.describeRequests).toHaveLength(2);
  });
});

describe('credentials', () => {
  let sts: FakeSts;
  const ROLE = 'arn:aws:iam::222222222222:role/vm-mesh-sync-reader';

  beforeEach(async () => {
    await ec2.close();
    sts = await startFakeSts({ roles: { [ROLE]: { externalId: 'ext-7f3a' } }, accountOf: (key) => (key === BASE_CREDENTIALS.accessKeyId ? '111111111111' : undefined) });
    ec2 = await startFakeEc2({ accountOf: (key) => (key === BASE_CREDENTIALS.accessKeyId ? '111111111111' : sts.accountOf(key)) });
  });

  afterEach(async () => {
    await sts.close();
  });

  it('assumes the account role through STS (RoleArn, ExternalId, session name) and lists with the temporary key', async () => {
    ec2.put({ id: 'i-00000001', account: '111111111111', tags: { mesh: 'true' } });
    ec2.put({ id: 'i-00000002', account: '222222222222', tags: { mesh: 'true' } });
    const block = awsBlock(
      ec2.url,
      {
        accounts: [{ id: '111111111111' }, { id: '222222222222', roleArn: ROLE, externalId: { env: 'VMS_TEST_EXTERNAL_ID' }, sessionName: 'mesh-sync' }],
      },
      sts.url,
    );
    const p = createAwsProvider(block, { selector: SELECTOR, credentials: BASE_CREDENTIALS, env: { VMS_TEST_EXTERNAL_ID: 'ext-7f3a' } });
    providers.push(p);

    const own = await p.list(scopeOf(p, 'us-east-1', '111111111111'));
    const assumed = await p.list(scopeOf(p, 'us-east-1', '222222222222'));
    await p.list(scopeOf(p, 'us-east-1', '222222222222'));

    expect(own.instances.map((i) => i.id)).toEqual(['i-00000001']);
    expect(assumed.instances.map((i) => [i.id, i.account])).toEqual([['i-00000002', '222222222222']]);
    // One AssumeRole: the client caches the temporary credentials until they near expiry.
    expect(sts.requests.filter((r) => r.action === 'AssumeRole')).toEqual([
      { action: 'AssumeRole', roleArn: ROLE, roleSessionName: 'mesh-sync', externalId: 'ext-7f3a', callerAccessKeyId: BASE_CREDENTIALS.accessKeyId, region: 'us-east-1', status: 200 },
    ]);
    const [issuedKey, issued] = [...sts.issued.entries()][0]!;
    // Each account's credentials were asked who they are once, with the key each lists with.
    expect(sts.requests.filter((r) => r.action === 'GetCallerIdentity').map((r) => r.callerAccessKeyId)).toEqual([BASE_CREDENTIALS.accessKeyId, issuedKey]);
    const roleRequests = ec2.describeRequests.filter((r) => r.account === '222222222222');
    expect(roleRequests).toHaveLength(2);
    for (const r of roleRequests) {
      expect(r.accessKeyId).toBe(issuedKey);
      expect(r.securityToken).toBe(issued.sessionToken);
    }
    expect(ec2.describeRequests.find((r) => r.account === '111111111111')).toMatchObject({ accessKeyId: BASE_CREDENTIALS.accessKeyId, securityToken: undefined });
  });

  it('a refused AssumeRole makes that account incomplete, naming the role', async () => {
    const block = awsBlock(ec2.url, { accounts: [{ id: '222222222222', roleArn: ROLE, externalId: 'wrong' }] }, sts.url);
    const p = createAwsProvider(block, { selector: SELECTOR, credentials: BASE_CREDENTIALS });
    providers.push(p);

    const listing = await p.list(scopeOf(p, 'us-east-1', '222222222222'));

    expect(listing.complete).toBe(false);
    expect(listing.problems[0]!.message).toBe(
      `GetCallerIdentity for account 222222222222 in us-east-1 failed, so its credentials cannot be checked: assuming role ${ROLE} failed: AccessDenied: User: arn:aws:iam::000000000000:user/caller is not authorized to perform: sts:AssumeRole on resource: ${ROLE}`,
    );
    expect(sts.requests[0]).toMatchObject({ externalId: 'wrong', status: 403 });
    expect(ec2.requests).toHaveLength(0);
  });

  it('credentials of another account fail the scope with VMS_ERR_ACCOUNT_MISMATCH even when it has no instances, and STS is asked once', async () => {
    // The base key belongs to 111111111111; the block says 333333333333.
    const block = awsBlock(ec2.url, { accounts: [{ id: '333333333333' }] }, sts.url);
    const p = createAwsProvider(block, { selector: SELECTOR, credentials: BASE_CREDENTIALS });
    providers.push(p);
    for (let round = 0; round < 2; round++) {
      const listing = await p.list(scopeOf(p, 'us-east-1', '333333333333'));
      expect(listing).toMatchObject({ complete: false, instances: [], problems: [{ code: 'VMS_ERR_ACCOUNT_MISMATCH' }] });
      expect(listing.problems[0]!.message).toMatch(/its credentials belong to account 111111111111, not 333333333333/);
    }
    await expect(p.describe([{ provider: 'aws', account: '333333333333', region: 'us-east-1', id: 'i-00000001' }])).rejects.toMatchObject({ code: 'VMS_ERR_ACCOUNT_MISMATCH' });
    expect(ec2.requests).toHaveLength(0);
    expect(sts.requests.filter((r) => r.action === 'GetCallerIdentity')).toHaveLength(1);
  });

  it('an externalId that cannot be read makes the listing incomplete, without calling STS', async () => {
    const block = awsBlock(ec2.url, { accounts: [{ id: '222222222222', roleArn: ROLE, externalId: { env: 'VMS_TEST_UNSET' } }] }, sts.url);
    const p = createAwsProvider(block, { selector: SELECTOR, credentials: BASE_CREDENTIALS, env: {} });
    providers.push(p);

    const listing = await p.list(scopeOf(p, 'us-east-1', '222222222222'));

    expect(listing).toMatchObject({ complete: false, problems: [{ message: expect.stringContaining('environment variable VMS_TEST_UNSET is not set') }] });
    expect(sts.requests).toHaveLength(0);
  });

  it('without explicit credentials the SDK default chain is used (here: the environment)', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', BASE_CREDENTIALS.accessKeyId);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', BASE_CREDENTIALS.secretAccessKey);
    vi.stubEnv('AWS_SESSION_TOKEN', 'default-chain-token');
    try {
      ec2.put({ id: 'i-00000001', account: '111111111111', tags: { mesh: 'true' } });
      const p = createAwsProvider(awsBlock(ec2.url, { accounts: [{ id: '111111111111' }] }), { selector: SELECTOR });
      providers.push(p);

      const listing = await p.list(scopeOf(p, 'us-east-1', '111111111111'));

      expect(listing.instances.map((i) => i.id)).toEqual(['i-00000001']);
      expect(ec2.describeRequests[0]).toMatchObject({ accessKeyId: BASE_CREDENTIALS.accessKeyId, securityToken: 'default-chain-token' });
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('endpoints', () => {
  it('puts each region into an endpoint override that names {region}', async () => {
    const pool = new Ec2ClientPool(awsBlock('https://vpce-0123.ec2.{region}.vpce.amazonaws.com', { regions: ['eu-west-1', 'us-east-1'] }), {
      credentials: BASE_CREDENTIALS,
    });
    try {
      const endpoint = await pool.get({ id: '123456789012' }, 'eu-west-1').config.endpoint!();
      expect(endpoint.hostname).toBe('vpce-0123.ec2.eu-west-1.vpce.amazonaws.com');
      expect(pool.get({ id: '123456789012' }, 'eu-west-1')).toBe(pool.get({ id: '123456789012' }, 'eu-west-1'));
    } finally {
      pool.destroy();
    }
  });
});
