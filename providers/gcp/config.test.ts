// The `type: gcp` block: defaults, and errors that name the key.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load.ts';
import { isVmsError } from '../../services/errors.ts';
import { buildProvider, createProviders } from '../index.ts';
import { ThreadedProvider } from '../thread/threaded-provider.ts';
import { gcpProviderSchema } from './config.ts';
import { GcpProvider } from './gcp-provider.ts';
import { PubSubPushReceiver } from './pubsub.ts';

const MINIMAL = { type: 'gcp', name: 'prod', projects: ['my-project-123'] };

function issues(block: Record<string, unknown>): Array<{ path: string; message: string }> {
  const result = gcpProviderSchema.safeParse(block);
  if (result.success) return [];
  return result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
}

describe('gcp provider config', () => {
  it('fills in the defaults', () => {
    expect(gcpProviderSchema.parse(MINIMAL)).toEqual({
      ...MINIMAL,
      networkTagsAsTags: false,
      maxAttempts: 5,
      retryDelay: 500,
      pageSize: 500,
      timeout: 30_000,
    });
  });

  it('takes a full block', () => {
    const block = gcpProviderSchema.parse({
      ...MINIMAL,
      projects: ['my-project-123', 'example.com:legacy-project'],
      keyFile: '/var/run/secrets/vm-mesh-sync/gcp/key.json',
      endpoint: 'https://compute-vms.p.googleapis.com',
      networkTagsAsTags: true,
      maxAttempts: 8,
      retryDelay: '1s',
      pageSize: 100,
      timeout: '10s',
      webhook: { audience: 'https://vms.example.com/webhooks/gcp', serviceAccountEmail: 'PubSub-Push@my-project-123.iam.gserviceaccount.com' },
    });
    expect(block).toMatchObject({ retryDelay: 1000, timeout: 10_000 });
    expect(block.webhook).toEqual({
      audience: 'https://vms.example.com/webhooks/gcp',
      serviceAccountEmail: 'pubsub-push@my-project-123.iam.gserviceaccount.com',
      certsUrl: 'https://www.googleapis.com/oauth2/v1/certs',
    });
  });

  it.each<[string, Record<string, unknown>, { path: string; message: string }]>([
    ['no projects', { projects: [] }, { path: 'projects', message: 'must list at least one project' }],
    [
      'a project number instead of the id',
      { projects: ['123456789012'] },
      { path: 'projects.0', message: 'must be a GCP project id such as my-project-123 (the id, not the number or the display name)' },
    ],
    ['a project id with capitals', { projects: ['My-Project'] }, { path: 'projects.0', message: expect.stringContaining('must be a GCP project id') as unknown as string }],
    ['a project twice', { projects: ['my-project-123', 'my-project-123'] }, { path: 'projects', message: 'must not list a project twice' }],
    ['an endpoint with a path', { endpoint: 'https://compute.googleapis.com/compute/v1' }, { path: 'endpoint', message: 'must be an origin only (scheme, host and port), without path, query or credentials' }],
    ['an endpoint that is not a URL', { endpoint: 'compute.internal' }, { path: 'endpoint', message: 'must be an http(s) URL such as https://compute.googleapis.com' }],
    [
      'plain http to another host',
      { endpoint: 'http://compute.internal:8080' },
      { path: 'endpoint', message: 'may use http only for 127.0.0.1, localhost or [::1]; use https for any other host' },
    ],
    ['a page size Compute refuses', { pageSize: 501 }, { path: 'pageSize', message: 'Too big: expected number to be <=500' }],
    ['a zero timeout', { timeout: 0 }, { path: 'timeout', message: 'must be more than 0' }],
    ['zero attempts', { maxAttempts: 0 }, { path: 'maxAttempts', message: 'Too small: expected number to be >=1' }],
    ['a webhook without audience', { webhook: { serviceAccountEmail: 'a@b.iam.gserviceaccount.com' } }, { path: 'webhook.audience', message: expect.any(String) as unknown as string }],
    [
      'a webhook email that is not one',
      { webhook: { audience: 'x', serviceAccountEmail: 'pubsub-push' } },
      { path: 'webhook.serviceAccountEmail', message: 'must be a service account email such as pubsub-push@my-project.iam.gserviceaccount.com' },
    ],
    [
      'a certificate URL over plain http to another host',
      { webhook: { audience: 'x', serviceAccountEmail: 'a@b.iam.gserviceaccount.com', certsUrl: 'http://certs.example.com/' } },
      { path: 'webhook.certsUrl', message: 'must be an https URL (http only for 127.0.0.1, localhost or [::1])' },
    ],
    ['an unknown key', { project: 'my-project-123' }, { path: '', message: 'Unrecognized key: "project"' }],
  ])('refuses %s', (_, change, expected) => {
    expect(issues({ ...MINIMAL, ...change })).toContainEqual(expected);
  });

  it('accepts plain http to the loopback address (a local fake)', () => {
    expect(issues({ ...MINIMAL, endpoint: 'http://127.0.0.1:8085' })).toEqual([]);
  });

  it('is a provider type of the config file, built by the registry', async () => {
    const config = parseConfig({ providers: [MINIMAL] });
    expect(config.providers[0]).toMatchObject({ type: 'gcp', name: 'prod', pageSize: 500 });
    // In this thread, and as the registry builds it: in a provider thread, with its receiver here.
    const direct = await buildProvider(config.providers[0]!, { mapping: config.mapping });
    const [provider] = await createProviders(config.providers, { mapping: config.mapping });
    try {
      expect(direct).toBeInstanceOf(GcpProvider);
      expect(provider).toBeInstanceOf(ThreadedProvider);
      expect(provider!.kind).toBe('gcp');
      expect((provider as ThreadedProvider).webhook).toBeInstanceOf(PubSubPushReceiver);
      expect(provider!.scopes()).toEqual(direct.scopes());
      expect(provider!.scopes().map((s) => s.key)).toEqual(['gcp:prod:my-project-123']);
    } finally {
      await provider?.close?.();
      await direct.close?.();
    }

    let err: unknown;
    try {
      parseConfig({ providers: [{ ...MINIMAL, projects: ['Prod Project'] }] }, 'vms.yaml');
    } catch (e) {
      err = e;
    }
    expect(isVmsError(err, 'VMS_ERR_CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toContain('providers[0].projects[0]: must be a GCP project id');
  });
});
