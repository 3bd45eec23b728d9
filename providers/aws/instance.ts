// EC2's view of an instance → the provider-neutral Instance. Pure: the caller says which account
// and region it asked and when the answer arrived; nothing here calls AWS.
import type { Instance as Ec2Instance, InstanceNetworkInterface } from '@aws-sdk/client-ec2';
import type { Instance, InstanceState, Problem } from '../../services/model.ts';

/** Where and when an EC2 answer was received: what the instance itself does not say. */
export interface Ec2Context {
  account: string;
  region: string;
  /** When the page carrying the instance arrived (RFC 3339). */
  observedAt: string;
}

/** The result of mapping one EC2 instance: the Instance, or the problem that prevents it. */
export type Ec2MapResult = { ok: true; instance: Instance } | { ok: false; problem: Problem };

// shutting-down only ever leads to terminated; as "stopping" it is not running, so it gets no entry.
const STATES: Readonly<Record<string, InstanceState>> = {
  pending: 'pending',
  running: 'running',
  stopping: 'stopping',
  stopped: 'stopped',
  'shutting-down': 'stopping',
  terminated: 'terminated',
};

/** EC2's instance state name normalized; undefined for a state this version does not know. */
export function normalizeEc2State(name: string | undefined): InstanceState | undefined {
  return name !== undefined && Object.hasOwn(STATES, name) ? STATES[name] : undefined;
}

/**
 * Maps one EC2 instance. An instance without any address still maps (mapping decides what to do
 * with it); one without an id or with an unknown state does not, and the problem says why.
 */
export function toInstance(ec2: Ec2Instance, ctx: Ec2Context): Ec2MapResult {
  const id = ec2.InstanceId?.trim();
  if (!id) {
    return { ok: false, problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message: `an instance in ${ctx.region} (account ${ctx.account}) has no instance id`, at: ctx.region } };
  }
  const state = normalizeEc2State(ec2.State?.Name);
  if (state === undefined) {
    return {
      ok: false,
      problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message: `instance ${id} in ${ctx.region} has an unknown state '${ec2.State?.Name ?? ''}'`, at: id },
    };
  }
  // fromEntries defines own properties, so a tag named `__proto__` stays a tag.
  const tags: Record<string, string> = Object.fromEntries(
    (ec2.Tags ?? []).flatMap((tag) => (tag.Key === undefined ? [] : [[tag.Key, tag.Value ?? '']])),
  );
  const nameTag = Object.hasOwn(tags, 'Name') ? tags.Name : undefined;
  const name = nameTag !== undefined && nameTag.trim() !== '' ? nameTag : id;
  const interfaces = interfacesInDeviceOrder(ec2.NetworkInterfaces ?? []);

  const instance: Instance = {
    provider: 'aws',
    account: ctx.account,
    region: ctx.region,
    zone: ec2.Placement?.AvailabilityZone ?? '',
    id,
    name,
    state,
    privateIPv4s: unique([ec2.PrivateIpAddress, ...interfaces.flatMap(privateIPv4sOf)]),
    publicIPv4s: unique([ec2.PublicIpAddress, ...interfaces.flatMap(publicIPv4sOf)]),
    ipv6s: unique([ec2.Ipv6Address, ...interfaces.flatMap((ni) => (ni.Ipv6Addresses ?? []).map((a) => a.Ipv6Address))]),
    tags,
    observedAt: ctx.observedAt,
  };
  if (ec2.VpcId) instance.networkId = ec2.VpcId;
  if (ec2.SubnetId) instance.subnetId = ec2.SubnetId;
  return { ok: true, instance };
}

// eth0 first: its primary address is the one the instance is known by. Card index breaks ties on
// instances with several network cards (device index 0 exists once per card).
function interfacesInDeviceOrder(interfaces: InstanceNetworkInterface[]): InstanceNetworkInterface[] {
  const position = (ni: InstanceNetworkInterface) => [ni.Attachment?.DeviceIndex ?? Number.MAX_SAFE_INTEGER, ni.Attachment?.NetworkCardIndex ?? 0] as const;
  return interfaces
    .map((ni, i) => ({ ni, i, at: position(ni) }))
    .sort((a, b) => a.at[0] - b.at[0] || a.at[1] - b.at[1] || a.i - b.i)
    .map((x) => x.ni);
}

function privateIPv4sOf(ni: InstanceNetworkInterface): Array<string | undefined> {
  const addresses = ni.PrivateIpAddresses ?? [];
  const primary = addresses.filter((a) => a.Primary).map((a) => a.PrivateIpAddress);
  const secondary = addresses.filter((a) => !a.Primary).map((a) => a.PrivateIpAddress);
  return [ni.PrivateIpAddress, ...primary, ...secondary];
}

// Elastic IPs can sit on secondary private addresses too, not only on the interface's primary one.
function publicIPv4sOf(ni: InstanceNetworkInterface): Array<string | undefined> {
  return [ni.Association?.PublicIp, ...(ni.PrivateIpAddresses ?? []).map((a) => a.Association?.PublicIp)];
}

function unique(values: ReadonlyArray<string | undefined>): string[] {
  const seen = new Set<string>();
  for (const value of values) {
    const v = value?.trim();
    if (v) seen.add(v);
  }
  return [...seen];
}
