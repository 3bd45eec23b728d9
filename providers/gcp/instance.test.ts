// Compute instance → Instance, as a table: each row one shape Compute answers with.
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../services/model.ts';
import { packInstances } from '../thread/packed-instances.ts';
import { foreignProject, type GceContext, type GceInstance, lastSegment, networkIdOf, normalizeGceStatus, regionOfZone, subnetIdOf, toInstance } from './instance.ts';

const API = 'https://www.googleapis.com/compute/v1';
const CTX: GceContext = { project: 'my-project', observedAt: '2025-01-01T00:00:00.000Z', networkTagsAsTags: false };

const BASE: Instance = {
  provider: 'gcp',
  account: 'my-project',
  region: 'us-central1',
  zone: 'us-central1-a',
  id: '1234567890123456789',
  name: 'vm-1',
  state: 'running',
  privateIPv4s: [],
  publicIPv4s: [],
  ipv6s: [],
  tags: {},
  observedAt: '2025-01-01T00:00:00.000Z',
};

const running: GceInstance = { id: '1234567890123456789', name: 'vm-1', status: 'RUNNING', zone: `${API}/projects/my-project/zones/us-central1-a` };

describe('toInstance', () => {
  it.each<[string, GceInstance, Partial<GceContext>, Partial<Instance>]>([
    ['the bare minimum', running, {}, {}],
    ['labels are the tags', { ...running, labels: { mesh: 'true', 'mesh-app': 'web', empty: '' } }, {}, { tags: { mesh: 'true', 'mesh-app': 'web', empty: '' } }],
    ['network tags are not tags by default', { ...running, tags: { items: ['mesh', 'http-server'] } }, {}, {}],
    [
      'with networkTagsAsTags, each network tag is <tag>=true',
      { ...running, tags: { items: ['mesh', 'http-server'] } },
      { networkTagsAsTags: true },
      { tags: { mesh: 'true', 'http-server': 'true' } },
    ],
    [
      'a label wins over a network tag of the same key',
      { ...running, labels: { mesh: 'false' }, tags: { items: ['mesh'] } },
      { networkTagsAsTags: true },
      { tags: { mesh: 'false' } },
    ],
    ['a label named __proto__ stays a label', { ...running, labels: JSON.parse('{"__proto__":"x"}') as Record<string, string> }, {}, { tags: Object.fromEntries([['__proto__', 'x']]) }],
    ['the zone URL gives zone and region', { ...running, zone: `${API}/projects/my-project/zones/europe-west4-c` }, {}, { zone: 'europe-west4-c', region: 'europe-west4' }],
    ['without a zone URL, the zone the answer filed it under', { ...running, zone: null }, { zone: 'asia-east1-b' }, { zone: 'asia-east1-b', region: 'asia-east1' }],
    ['a name missing: the id is the name', { ...running, name: undefined }, {}, { name: '1234567890123456789' }],
    [
      'every interface in order: internal IPv4, external IPv4 of each access config',
      {
        ...running,
        networkInterfaces: [
          { name: 'nic0', networkIP: '10.128.0.2', accessConfigs: [{ natIP: '34.1.2.3' }, { name: 'no address yet' }] },
          { name: 'nic1', networkIP: '10.10.0.2', accessConfigs: [{ natIP: '35.1.1.1' }] },
          { name: 'nic2', networkIP: '10.128.0.2' },
        ],
      },
      {},
      { privateIPv4s: ['10.128.0.2', '10.10.0.2'], publicIPv4s: ['34.1.2.3', '35.1.1.1'] },
    ],
    [
      'IPv6: internal (ipv6Address) before external (ipv6AccessConfigs)',
      { ...running, networkInterfaces: [{ networkIP: '10.0.0.2', ipv6Address: 'fd20:a::2', ipv6AccessConfigs: [{ externalIpv6: '2600:1900:4000::2', externalIpv6PrefixLength: 96 }] }] },
      {},
      { privateIPv4s: ['10.0.0.2'], ipv6s: ['fd20:a::2', '2600:1900:4000::2'] },
    ],
    ['IPv6-only: no IPv4 at all still maps', { ...running, networkInterfaces: [{ stackType: 'IPV6_ONLY', ipv6Address: 'fd20:a::9' }] }, {}, { ipv6s: ['fd20:a::9'] }],
    [
      'network and subnetwork of nic0, as project paths',
      {
        ...running,
        networkInterfaces: [
          { network: `${API}/projects/host/global/networks/prod`, subnetwork: `${API}/projects/host/regions/us-central1/subnetworks/apps` },
          { network: `${API}/projects/my-project/global/networks/other` },
        ],
      },
      {},
      { networkId: 'projects/host/global/networks/prod', subnetId: 'projects/host/regions/us-central1/subnetworks/apps' },
    ],
    ['a network in an unexpected form is kept whole', { ...running, networkInterfaces: [{ network: 'global/networks/odd' }] }, {}, { networkId: 'global/networks/odd' }],
    ['a numeric id sent as a number', { ...running, id: 42 as unknown as string }, {}, { id: '42' }],
  ])('%s', (_, gce, ctx, expected) => {
    const made = toInstance(gce, { ...CTX, ...ctx });
    expect(made).toEqual({ ok: true, instance: { ...BASE, ...expected } });
    // Of the shape that crosses from the provider thread packed.
    if (made.ok) expect('strings' in packInstances([made.instance])).toBe(true);
  });

  it.each<[string | undefined, Instance['state'] | undefined]>([
    ['PROVISIONING', 'pending'],
    ['STAGING', 'pending'],
    ['PENDING', 'pending'],
    ['REPAIRING', 'pending'],
    ['RUNNING', 'running'],
    ['PENDING_STOP', 'stopping'],
    ['STOPPING', 'stopping'],
    ['SUSPENDING', 'stopping'],
    ['DEPROVISIONING', 'stopping'],
    ['STOPPED', 'stopped'],
    ['SUSPENDED', 'stopped'],
    // TERMINATED is a stopped VM that can be started again, not a deleted one.
    ['TERMINATED', 'stopped'],
    ['HIBERNATING', undefined],
    ['running', undefined],
    ['constructor', undefined],
    [undefined, undefined],
  ])('status %s → %s', (status, state) => {
    expect(normalizeGceStatus(status)).toBe(state);
  });

  it.each<[string, GceInstance, string]>([
    ['no id', { ...running, id: undefined }, 'instance vm-1 in us-central1-a (project my-project) has no id'],
    ['an id that is not a number', { ...running, id: 'vm-1' }, "instance vm-1 in us-central1-a (project my-project) has an id that is not a number: 'vm-1'"],
    ['no zone', { ...running, zone: undefined }, "instance 1234567890123456789 in project my-project has no zone one can read ('')"],
    ['an unknown status', { ...running, status: 'HIBERNATING' }, "instance 1234567890123456789 (vm-1) in us-central1-a has an unknown status 'HIBERNATING'"],
  ])('%s is a problem, not an instance', (_, gce, message) => {
    expect(toInstance(gce, CTX)).toEqual({ ok: false, problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message, at: expect.any(String) } });
  });
});

describe('names from URLs', () => {
  it.each<[string, string | undefined]>([
    ['us-central1-a', 'us-central1'],
    ['europe-west4-c', 'europe-west4'],
    ['northamerica-northeast1-b', 'northamerica-northeast1'],
    ['me-central2-a', 'me-central2'],
    ['us-central1', undefined],
    ['', undefined],
    ['zones/us-central1-a', undefined],
  ])('the region of zone %j is %j', (zone, region) => {
    expect(regionOfZone(zone)).toBe(region);
  });

  it('reads the last segment of a URL, and project paths of networks and subnetworks', () => {
    expect(lastSegment(`${API}/projects/p/zones/us-central1-a`)).toBe('us-central1-a');
    expect(lastSegment('us-central1-a')).toBe('us-central1-a');
    expect(lastSegment(undefined)).toBe('');
    expect(networkIdOf(`${API}/projects/p/global/networks/default`)).toBe('projects/p/global/networks/default');
    expect(networkIdOf('projects/p/global/networks/default')).toBe('projects/p/global/networks/default');
    expect(networkIdOf('')).toBeUndefined();
    expect(subnetIdOf(`${API}/projects/p/regions/r1/subnetworks/s`)).toBe('projects/p/regions/r1/subnetworks/s');
  });
});

describe('foreignProject', () => {
  const at = (selfLink: string | undefined): GceInstance => ({ ...running, selfLink });
  it.each<[string, string | undefined, string | undefined]>([
    ['the project asked', `${API}/projects/my-project/zones/us-central1-a/instances/vm-1`, undefined],
    ['another project', `${API}/projects/other-project/zones/us-central1-a/instances/vm-1`, 'other-project'],
    ['another project, through another host and API version', 'https://compute.googleapis.com/compute/beta/projects/other-project/zones/us-central1-a/instances/vm-1', 'other-project'],
    ['a domain-scoped project, percent-encoded', `${API}/projects/example.com%3Aother/zones/us-central1-a/instances/vm-1`, 'example.com:other'],
    ['no selfLink', undefined, undefined],
    ['a selfLink in another form', 'vm-1', undefined],
    ['a project number (not comparable with an id)', `${API}/projects/123456789012/zones/us-central1-a/instances/vm-1`, undefined],
  ])('an instance whose selfLink names %s: %j', (_, selfLink, foreign) => {
    expect(foreignProject(at(selfLink), 'my-project')).toBe(foreign);
  });

  it('a domain-scoped project asked is itself', () => {
    expect(foreignProject(at(`${API}/projects/example.com:proj/zones/us-central1-a/instances/vm-1`), 'example.com:proj')).toBeUndefined();
  });
});
