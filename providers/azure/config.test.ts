// The `type: azure` block: defaults, and errors that name the key.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load.ts';
import { isVmsError } from '../../services/errors.ts';
import { azureProviderSchema } from './config.ts';

const SUB = '1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b';
const MINIMAL = { type: 'azure', name: 'prod', subscriptions: [SUB] };

function issues(block: Record<string, unknown>): Array<{ path: string; message: string }> {
  const result = azureProviderSchema.safeParse(block);
  if (result.success) return [];
  return result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

describe('azure provider config', () => {
  it('fills in the defaults', () => {
    expect(azureProviderSchema.parse(MINIMAL)).toEqual({
      ...MINIMAL,
      discovery: 'resource-graph',
      endpoint: 'https://management.azure.com',
      pageSize: 1000,
      maxRetries: 4,
      retryDelay: 1000,
      maxRetryDelay: 30_000,
      timeout: 30_000,
    });
  });

  it('takes a full block; subscription and tenant ids are kept lowercased', () => {
    const block = azureProviderSchema.parse({
      ...MINIMAL,
      subscriptions: [SUB.toUpperCase(), '9b8a7c6d-0000-4e5f-8a9b-0c1d2e3f4a5b'],
      discovery: 'arm',
      endpoint: 'https://management.usgovcloudapi.net',
      tokenScope: 'https://management.core.usgovcloudapi.net/.default',
      pageSize: 200,
      maxRetries: 6,
      retryDelay: '500ms',
      maxRetryDelay: '1m',
      timeout: '10s',
      webhook: {
        querySecret: { value: { file: '/etc/vms/azure-webhook' } },
        entra: { tenantId: '72F988BF-0000-4000-8000-000000000047', audience: 'api://vm-mesh-sync', clientIds: ['4962773b-9cdb-44cf-a8bf-237846a00ab7'] },
        allowedRate: 100,
      },
    });
    expect(block.subscriptions).toEqual([SUB, '9b8a7c6d-0000-4e5f-8a9b-0c1d2e3f4a5b']);
    expect([block.retryDelay, block.maxRetryDelay, block.timeout]).toEqual([500, 60_000, 10_000]);
    expect(block.webhook).toEqual({
      querySecret: { param: 'code', value: { file: '/etc/vms/azure-webhook' } },
      entra: { tenantId: '72f988bf-0000-4000-8000-000000000047', audience: 'api://vm-mesh-sync', clientIds: ['4962773b-9cdb-44cf-a8bf-237846a00ab7'] },
      allowedRate: 100,
    });
  });

  it.each<[string, Record<string, unknown>, { path: string; message: string }]>([
    ['no subscriptions', { subscriptions: [] }, { path: 'subscriptions', message: 'must list at least one subscription' }],
    ['a subscription name instead of its id', { subscriptions: ['Production'] }, { path: 'subscriptions.0', message: 'must be a subscription id (a GUID)' }],
    ['a subscription twice, in two cases', { subscriptions: [SUB, SUB.toUpperCase()] }, { path: 'subscriptions', message: 'must not list a subscription twice' }],
    ['an unknown discovery', { discovery: 'graph' }, { path: 'discovery', message: expect.stringContaining('resource-graph') as unknown as string }],
    ['an endpoint over plain HTTP', { endpoint: 'http://management.azure.com' }, { path: 'endpoint', message: 'must be an https URL' }],
    ['a page size Resource Graph refuses', { pageSize: 5000 }, { path: 'pageSize', message: 'Too big: expected number to be <=1000' }],
    ['too many retries', { maxRetries: 11 }, { path: 'maxRetries', message: 'Too big: expected number to be <=10' }],
    ['a zero timeout', { timeout: 0 }, { path: 'timeout', message: 'must be more than 0' }],
    ['a webhook block with no method', { webhook: {} }, { path: 'webhook', message: 'must configure querySecret or entra (or both)' }],
    ['a query parameter name that needs escaping', { webhook: { querySecret: { param: 'a b', value: 'x' } } }, { path: 'webhook.querySecret.param', message: 'must be a query parameter name (letters, digits, - _ . ~)' }],
    ['a tenant that is not a GUID', { webhook: { entra: { tenantId: 'contoso.onmicrosoft.com', audience: 'api://x' } } }, { path: 'webhook.entra.tenantId', message: 'must be a Microsoft Entra tenant id (a GUID)' }],
    ['a key set over plain HTTP to another host', { webhook: { entra: { tenantId: SUB, audience: 'api://x', jwksUri: 'http://login.example.com/keys' } } }, { path: 'webhook.entra.jwksUri', message: 'must be an https URL' }],
    ['an unknown key', { subscription: SUB }, { path: '', message: 'Unrecognized key: "subscription"' }],
  ])('refuses %s', (_, change, expected) => {
    expect(issues({ ...MINIMAL, ...change })).toContainEqual(expected);
  });

  it('is a provider type of the config file, with errors naming the key path', () => {
    const config = parseConfig({ providers: [MINIMAL] });
    expect(config.providers[0]).toMatchObject({ type: 'azure', name: 'prod', discovery: 'resource-graph' });

    let err: unknown;
    try {
      parseConfig({ providers: [{ ...MINIMAL, subscriptions: ['prod'] }] }, 'vms.yaml');
    } catch (e) {
      err = e;
    }
    expect(isVmsError(err, 'VMS_ERR_CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toContain('providers[0].subscriptions[0]: must be a subscription id (a GUID)');
  });
});
