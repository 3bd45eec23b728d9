// The `type: aws` block: defaults, and errors that name the key.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load.ts';
import { isVmsError } from '../../services/errors.ts';
import { awsProviderSchema } from './config.ts';

const MINIMAL = { type: 'aws', name: 'prod', regions: ['us-east-1'], accounts: [{ id: '123456789012' }] };

function issues(block: Record<string, unknown>): Array<{ path: string; message: string }> {
  const result = awsProviderSchema.safeParse(block);
  if (result.success) return [];
  return result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

describe('aws provider config', () => {
  it('fills in the defaults', () => {
    expect(awsProviderSchema.parse(MINIMAL)).toEqual({
      ...MINIMAL,
      filters: [],
      endpoint: {},
      retryMode: 'standard',
      maxAttempts: 5,
      pageSize: 1000,
      timeout: 30_000,
    });
  });

  it('takes a full block', () => {
    const block = awsProviderSchema.parse({
      ...MINIMAL,
      regions: ['us-east-1', 'eu-central-2', 'us-gov-west-1', 'cn-north-1', 'us-isob-east-1'],
      accounts: [
        { id: '123456789012' },
        { id: '000000000042', roleArn: 'arn:aws:iam::000000000042:role/path/vm-mesh-sync', externalId: { env: 'EXT' }, sessionName: 'vm-mesh-sync' },
      ],
      filters: [{ name: 'tag:team', values: ['platform', 'data-*'] }],
      endpoint: { ec2: 'https://vpce-1.ec2.{region}.vpce.amazonaws.com', sts: 'https://sts.{region}.amazonaws.com' },
      retryMode: 'adaptive',
      maxAttempts: 8,
      pageSize: 200,
      timeout: '10s',
      webhook: { apiKey: { value: { file: '/etc/vms/key' } } },
    });
    expect(block.timeout).toBe(10_000);
    expect(block.webhook).toEqual({ apiKey: { header: 'x-api-key', value: { file: '/etc/vms/key' } } });
  });

  it.each<[string, Record<string, unknown>, { path: string; message: string }]>([
    ['no regions', { regions: [] }, { path: 'regions', message: 'must list at least one region' }],
    ['a region in the wrong form', { regions: ['US-East-1'] }, { path: 'regions.0', message: 'must be an AWS region name such as us-east-1' }],
    ['a zone instead of a region', { regions: ['us-east-1a'] }, { path: 'regions.0', message: 'must be an AWS region name such as us-east-1' }],
    ['a region twice', { regions: ['us-east-1', 'us-east-1'] }, { path: 'regions', message: 'must not list a region twice' }],
    ['no accounts', { accounts: [] }, { path: 'accounts', message: 'must list at least one account (for the default credentials: just its id)' }],
    ['an account id that lost its leading zeros', { accounts: [{ id: '42' }] }, { path: 'accounts.0.id', message: 'must be a 12-digit AWS account id (quote it in YAML to keep leading zeros)' }],
    ['an account twice', { accounts: [{ id: '123456789012' }, { id: '123456789012' }] }, { path: 'accounts', message: 'must not list an account twice' }],
    ['a role ARN that is not one', { accounts: [{ id: '123456789012', roleArn: 'vm-mesh-sync' }] }, { path: 'accounts.0.roleArn', message: 'must be an IAM role ARN, arn:aws:iam::<account id>:role/<name>' }],
    [
      "a role in another account than the entry's",
      { accounts: [{ id: '123456789012', roleArn: 'arn:aws:iam::210987654321:role/x' }] },
      { path: 'accounts.0.roleArn', message: 'names account 210987654321, not 123456789012' },
    ],
    ['an externalId without a role', { accounts: [{ id: '123456789012', externalId: 'x' }] }, { path: 'accounts.0.externalId', message: 'is only used with roleArn' }],
    ['an unknown key in an account', { accounts: [{ id: '123456789012', role: 'x' }] }, { path: 'accounts.0', message: 'Unrecognized key: "role"' }],
    ['a filter without values', { filters: [{ name: 'vpc-id', values: [] }] }, { path: 'filters.0.values', message: 'must list at least one value' }],
    ['an endpoint that is not a URL', { endpoint: { ec2: 'ec2.internal' } }, { path: 'endpoint.ec2', message: 'must be an http(s) URL; {region} in it is replaced by the region' }],
    ['an unknown retry mode', { retryMode: 'legacy' }, { path: 'retryMode', message: expect.stringContaining('standard') as unknown as string }],
    ['a page size EC2 refuses', { pageSize: 2000 }, { path: 'pageSize', message: 'Too big: expected number to be <=1000' }],
    ['a zero timeout', { timeout: 0 }, { path: 'timeout', message: 'must be more than 0' }],
    ['a timeout without unit', { timeout: '30' }, { path: 'timeout', message: expect.stringContaining('duration') as unknown as string }],
    ['a webhook block with no method', { webhook: {} }, { path: 'webhook', message: 'must configure apiKey or basic (or both)' }],
    ['a webhook API key header that is not a header name', { webhook: { apiKey: { header: 'x api key', value: 'k' } } }, { path: 'webhook.apiKey.header', message: 'must be an HTTP header name' }],
    ['a basic username with a colon', { webhook: { basic: { username: 'a:b', password: 'p' } } }, { path: 'webhook.basic.username', message: 'must not contain ":"' }],
    ['an unknown key', { region: 'us-east-1' }, { path: '', message: 'Unrecognized key: "region"' }],
  ])('refuses %s', (_, change, expected) => {
    expect(issues({ ...MINIMAL, ...change })).toContainEqual(expected);
  });

  it('is a provider type of the config file, with errors naming the key path', () => {
    const config = parseConfig({ providers: [MINIMAL] });
    expect(config.providers[0]).toMatchObject({ type: 'aws', name: 'prod', pageSize: 1000 });

    let err: unknown;
    try {
      parseConfig({ providers: [{ ...MINIMAL, regions: ['Frankfurt'] }] }, 'vms.yaml');
    } catch (e) {
      err = e;
    }
    expect(isVmsError(err, 'VMS_ERR_CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toContain('providers[0].regions[0]: must be an AWS region name such as us-east-1');
  });
});
