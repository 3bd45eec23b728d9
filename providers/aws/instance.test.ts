// EC2 instance → Instance, as a table: each row one shape EC2 answers with.
import type { Instance as Ec2Instance } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../services/model.ts';
import { packInstances } from '../thread/packed-instances.ts';
import { normalizeEc2State, toInstance } from './instance.ts';

const CTX = { account: '123456789012', region: 'eu-west-1', observedAt: '2025-01-01T00:00:00.000Z' };

const BASE: Instance = {
  provider: 'aws',
  account: '123456789012',
  region: 'eu-west-1',
  zone: '',
  id: 'i-0123456789abcdef0',
  name: 'i-0123456789abcdef0',
  state: 'running',
  privateIPv4s: [],
  publicIPv4s: [],
  ipv6s: [],
  tags: {},
  observedAt: '2025-01-01T00:00:00.000Z',
};

const running = { InstanceId: 'i-0123456789abcdef0', State: { Name: 'running' as const, Code: 16 } };

describe('toInstance', () => {
  it.each<[string, Ec2Instance, Partial<Instance>]>([
    ['the bare minimum', running, {}],
    [
      'the Name tag becomes the name; every tag is kept',
      { ...running, Tags: [{ Key: 'Name', Value: 'web-1' }, { Key: 'mesh', Value: 'true' }, { Key: 'empty' }] },
      { name: 'web-1', tags: { Name: 'web-1', mesh: 'true', empty: '' } },
    ],
    ['a blank Name tag leaves the id as the name', { ...running, Tags: [{ Key: 'Name', Value: '  ' }] }, { name: 'i-0123456789abcdef0', tags: { Name: '  ' } }],
    ['a tag named __proto__ stays a tag', { ...running, Tags: [{ Key: '__proto__', Value: 'x' }] }, { tags: Object.fromEntries([['__proto__', 'x']]) }],
    [
      'placement, VPC and subnet',
      { ...running, Placement: { AvailabilityZone: 'eu-west-1b' }, VpcId: 'vpc-1', SubnetId: 'subnet-1' },
      { zone: 'eu-west-1b', networkId: 'vpc-1', subnetId: 'subnet-1' },
    ],
    [
      'the instance address first, then each interface in device order, primary first, without duplicates',
      {
        ...running,
        PrivateIpAddress: '10.0.0.5',
        NetworkInterfaces: [
          { Attachment: { DeviceIndex: 1 }, PrivateIpAddress: '10.0.1.5', PrivateIpAddresses: [{ PrivateIpAddress: '10.0.1.6' }, { PrivateIpAddress: '10.0.1.5', Primary: true }] },
          { Attachment: { DeviceIndex: 0 }, PrivateIpAddress: '10.0.0.5', PrivateIpAddresses: [{ PrivateIpAddress: '10.0.0.5', Primary: true }, { PrivateIpAddress: '10.0.0.7' }] },
        ],
      },
      { privateIPv4s: ['10.0.0.5', '10.0.0.7', '10.0.1.5', '10.0.1.6'] },
    ],
    [
      'device 0 of a second network card comes after device 0 of the first',
      {
        ...running,
        NetworkInterfaces: [
          { Attachment: { DeviceIndex: 0, NetworkCardIndex: 1 }, PrivateIpAddress: '10.0.9.9' },
          { Attachment: { DeviceIndex: 0, NetworkCardIndex: 0 }, PrivateIpAddress: '10.0.0.1' },
        ],
      },
      { privateIPv4s: ['10.0.0.1', '10.0.9.9'] },
    ],
    [
      'public addresses: the instance one, interface associations and Elastic IPs on secondary addresses',
      {
        ...running,
        PublicIpAddress: '54.0.0.1',
        NetworkInterfaces: [
          {
            Attachment: { DeviceIndex: 0 },
            Association: { PublicIp: '54.0.0.1' },
            PrivateIpAddresses: [{ PrivateIpAddress: '10.0.0.1', Primary: true, Association: { PublicIp: '54.0.0.1' } }, { PrivateIpAddress: '10.0.0.2', Association: { PublicIp: '3.0.0.2' } }],
          },
        ],
      },
      { privateIPv4s: ['10.0.0.1', '10.0.0.2'], publicIPv4s: ['54.0.0.1', '3.0.0.2'] },
    ],
    [
      'IPv6: the primary IPv6, then every interface address',
      {
        ...running,
        Ipv6Address: '2001:db8::1',
        NetworkInterfaces: [{ Attachment: { DeviceIndex: 0 }, Ipv6Addresses: [{ Ipv6Address: '2001:db8::1' }, { Ipv6Address: '2001:db8::2' }] }],
      },
      { ipv6s: ['2001:db8::1', '2001:db8::2'] },
    ],
    [
      'IPv6-only: no IPv4 at all still maps',
      { ...running, NetworkInterfaces: [{ Attachment: { DeviceIndex: 0 }, Ipv6Addresses: [{ Ipv6Address: '2001:db8::9' }], PrivateIpAddresses: [] }] },
      { privateIPv4s: [], ipv6s: ['2001:db8::9'] },
    ],
    ['an interface without attachment sorts last', { ...running, NetworkInterfaces: [{ PrivateIpAddress: '10.9.9.9' }, { Attachment: { DeviceIndex: 2 }, PrivateIpAddress: '10.0.0.2' }] }, { privateIPv4s: ['10.0.0.2', '10.9.9.9'] }],
    ['an id with stray whitespace is trimmed', { ...running, InstanceId: ' i-0123456789abcdef0 ' }, {}],
  ])('%s', (_, ec2, expected) => {
    const made = toInstance(ec2, CTX);
    expect(made).toEqual({ ok: true, instance: { ...BASE, ...expected } });
    // Of the shape that crosses from the provider thread packed.
    if (made.ok) expect('strings' in packInstances([made.instance])).toBe(true);
  });

  it.each<[string | undefined, Instance['state'] | undefined]>([
    ['pending', 'pending'],
    ['running', 'running'],
    ['stopping', 'stopping'],
    ['stopped', 'stopped'],
    ['shutting-down', 'stopping'],
    ['terminated', 'terminated'],
    ['hibernating', undefined],
    ['constructor', undefined],
    [undefined, undefined],
  ])('state %s → %s', (name, state) => {
    expect(normalizeEc2State(name)).toBe(state);
  });

  it('an instance without an id or with an unknown state is a problem, not an instance', () => {
    expect(toInstance({ State: { Name: 'running' } }, CTX)).toEqual({
      ok: false,
      problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message: 'an instance in eu-west-1 (account 123456789012) has no instance id', at: 'eu-west-1' },
    });
    expect(toInstance({ InstanceId: 'i-0123456789abcdef0', State: { Name: 'hibernating' as 'running' } }, CTX)).toEqual({
      ok: false,
      problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message: "instance i-0123456789abcdef0 in eu-west-1 has an unknown state 'hibernating'", at: 'i-0123456789abcdef0' },
    });
  });
});
