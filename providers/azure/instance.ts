// An Azure VM → the provider-neutral Instance. Pure: both discovery paths (Resource Graph rows and
// the Compute/Network list answers) and describe first build an AzureVm, and one function maps it,
// so that a VM looks the same whichever way it was read. Nothing here calls Azure.
//
// Identity: Instance.id is the VM's ARM resource id, lowercased. The VM's `vmId` GUID would be
// shorter, but Event Grid events carry only the resource id, and the entry to delete for a VM that
// is gone is found by computing its name from the event's id: both must be the same string.
import type { VirtualMachine } from '@azure/arm-compute';
import type { NetworkInterface, PublicIPAddress } from '@azure/arm-network';
import type { Instance, InstanceState, Problem } from '../../services/model.ts';
import { normalizeResourceId, parseVmResourceId, vnetOfSubnet } from './resource-id.ts';

/** A VM as the discovery paths read it, before mapping. */
export interface AzureVm {
  /** The ARM resource id, in any casing. */
  id: string;
  name: string;
  location: string;
  zones: string[];
  tags: Record<string, string>;
  /** The `PowerState/…` status code; undefined when Azure reported none. */
  powerState: string | undefined;
  /** The VM's network interfaces, in the order the VM lists them. */
  nics: AzureNicSlot[];
}

/** One network interface the VM refers to, and what was found under that id. */
export interface AzureNicSlot {
  id: string;
  /** The VM's own `primary` flag for this interface. */
  primary: boolean | undefined;
  /** Undefined when the interface could not be found. */
  nic: AzureNic | undefined;
}

/** The parts of a network interface that addresses come from. */
export interface AzureNic {
  /** The interface's own `primary` flag (set by Azure on the VM's primary interface). */
  primary: boolean | undefined;
  ipConfigurations: AzureIpConfiguration[];
}

/** One IP configuration of a network interface, with its public address resolved. */
export interface AzureIpConfiguration {
  name: string;
  primary: boolean | undefined;
  privateIPAddress: string | undefined;
  /** Set when the configuration holds a prefix (`10.0.0.16/28`) rather than one address. */
  privateIPAddressPrefixLength: number | undefined;
  subnetId: string | undefined;
  /** The address of the associated public IP resource, when it has one. */
  publicIPAddress: string | undefined;
}

/** Where and when a VM was read: what the VM itself does not say. */
export interface AzureContext {
  /** The subscription that was asked. */
  subscriptionId: string;
  /** When the answer carrying the VM arrived (RFC 3339). */
  observedAt: string;
}

/** The result of mapping one VM: the Instance, or the problem that prevents it. */
export type AzureMapResult = { ok: true; instance: Instance } | { ok: false; problem: Problem };

// Deallocated and stopped VMs both count as stopped: neither serves traffic, whoever pays for it.
const POWER_STATES: Readonly<Record<string, InstanceState>> = {
  running: 'running',
  starting: 'pending',
  stopping: 'stopping',
  deallocating: 'stopping',
  stopped: 'stopped',
  deallocated: 'stopped',
};

/** A `PowerState/<state>` code normalized; undefined for a missing or unknown one (`PowerState/unknown`). */
export function normalizePowerState(code: string | undefined): InstanceState | undefined {
  const match = code === undefined ? null : /^PowerState\/(.+)$/i.exec(code.trim());
  const state = match?.[1]?.toLowerCase();
  return state !== undefined && Object.hasOwn(POWER_STATES, state) ? POWER_STATES[state] : undefined;
}

/**
 * Maps one VM. Addresses come from the primary network interface only, its primary IP configuration
 * first. A VM without an address still maps (mapping decides); one with an id that is not a VM's, an
 * unknown power state or a primary interface that cannot be found does not, and the problem says why.
 */
export function toInstance(vm: AzureVm, ctx: AzureContext): AzureMapResult {
  const parsed = parseVmResourceId(vm.id);
  if (!parsed) {
    return problem(`a VM in subscription ${ctx.subscriptionId} has an id that is not a virtual machine resource id: '${vm.id}'`, ctx.subscriptionId);
  }
  const state = normalizePowerState(vm.powerState);
  if (state === undefined) {
    return problem(`VM ${parsed.id} has an unknown power state '${vm.powerState ?? ''}'`, parsed.id);
  }
  const slot = primarySlot(vm.nics);
  if (slot && !slot.nic) {
    return problem(`VM ${parsed.id}: its primary network interface ${normalizeResourceId(slot.id)} was not found`, parsed.id);
  }

  const configurations = slot?.nic ? primaryFirst(slot.nic.ipConfigurations) : [];
  const privateIPv4s: string[] = [];
  const publicIPv4s: string[] = [];
  const ipv6s: string[] = [];
  for (const c of configurations) {
    const address = singleAddress(c.privateIPAddress, c.privateIPAddressPrefixLength);
    if (address !== undefined) (address.includes(':') ? ipv6s : privateIPv4s).push(address);
  }
  const publicIPv6s: string[] = [];
  for (const c of configurations) {
    const address = singleAddress(c.publicIPAddress, undefined);
    if (address !== undefined) (address.includes(':') ? publicIPv6s : publicIPv4s).push(address);
  }

  const region = vm.location.replace(/\s+/g, '').toLowerCase();
  const zoneNumber = vm.zones.map((z) => z.trim()).find((z) => z !== '');
  const instance: Instance = {
    provider: 'azure',
    account: parsed.subscriptionId,
    region,
    // Azure numbers zones per region ("2"); Kubernetes labels AKS nodes `westeurope-2`. The zone
    // takes the node form so that the entry's locality matches the pods' for locality routing.
    zone: zoneNumber ? `${region}-${zoneNumber}` : '',
    id: parsed.id,
    name: vm.name.trim() || parsed.name,
    state,
    privateIPv4s: unique(privateIPv4s),
    publicIPv4s: unique(publicIPv4s),
    // Private IPv6 first: it is the one reachable inside the VNet.
    ipv6s: unique([...ipv6s, ...publicIPv6s]),
    // fromEntries defines own properties, so a tag named `__proto__` stays a tag.
    tags: Object.fromEntries(Object.entries(vm.tags).map(([k, v]) => [k, typeof v === 'string' ? v : String(v ?? '')])),
    observedAt: ctx.observedAt,
  };
  const subnet = configurations.map((c) => c.subnetId?.trim()).find((s) => s);
  if (subnet) {
    instance.subnetId = normalizeResourceId(subnet);
    const vnet = vnetOfSubnet(subnet);
    if (vnet) instance.networkId = vnet;
  }
  return { ok: true, instance };
}

/**
 * The VM's primary interface: the one the VM marks primary, else the one Azure marks primary, else
 * the only or first one. Azure demands a primary flag on VMs with several, so the fallbacks only
 * matter for answers that left the flags out.
 */
export function primarySlot(slots: readonly AzureNicSlot[]): AzureNicSlot | undefined {
  return slots.find((s) => s.primary === true) ?? slots.find((s) => s.nic?.primary === true) ?? slots[0];
}

/**
 * Builds the AzureVm of a Compute API answer (list with `statusOnly`, or get with `instanceView`)
 * from the interfaces and public IPs read separately, keyed by lowercased id.
 */
export function fromArmVm(vm: VirtualMachine, nics: ReadonlyMap<string, NetworkInterface>, publicIps: ReadonlyMap<string, PublicIPAddress>): AzureVm {
  const powerState = (vm.instanceView?.statuses ?? []).map((s) => s.code).find((code) => code !== undefined && /^PowerState\//i.test(code));
  return {
    id: vm.id ?? '',
    name: vm.name ?? '',
    location: vm.location ?? '',
    zones: vm.zones ?? [],
    tags: { ...vm.tags },
    powerState,
    nics: (vm.networkProfile?.networkInterfaces ?? []).flatMap((ref): AzureNicSlot[] => {
      if (!ref.id) return [];
      const nic = nics.get(normalizeResourceId(ref.id));
      return [{ id: ref.id, primary: ref.primary, nic: nic === undefined ? undefined : fromArmNic(nic, publicIps) }];
    }),
  };
}

/** The public IP resource ids a network interface refers to, lowercased. */
export function publicIpIdsOf(nic: NetworkInterface): string[] {
  return (nic.ipConfigurations ?? []).flatMap((c) => (c.publicIPAddress?.id ? [normalizeResourceId(c.publicIPAddress.id)] : []));
}

function fromArmNic(nic: NetworkInterface, publicIps: ReadonlyMap<string, PublicIPAddress>): AzureNic {
  return {
    primary: nic.primary,
    ipConfigurations: (nic.ipConfigurations ?? []).map((c) => ({
      name: c.name ?? '',
      primary: c.primary,
      privateIPAddress: c.privateIPAddress,
      privateIPAddressPrefixLength: c.privateIPAddressPrefixLength,
      subnetId: c.subnet?.id,
      publicIPAddress: c.publicIPAddress?.id ? publicIps.get(normalizeResourceId(c.publicIPAddress.id))?.ipAddress : undefined,
    })),
  };
}

function primaryFirst(configurations: readonly AzureIpConfiguration[]): AzureIpConfiguration[] {
  return [...configurations.filter((c) => c.primary === true), ...configurations.filter((c) => c.primary !== true)];
}

// A prefix handed to the VM (for pods or containers on it) is a range, not the VM's address.
function singleAddress(value: string | undefined, prefixLength: number | undefined): string | undefined {
  const address = value?.trim();
  if (!address || address.includes('/')) return undefined;
  if (prefixLength !== undefined && prefixLength !== null && prefixLength !== (address.includes(':') ? 128 : 32)) return undefined;
  return address;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function problem(message: string, at: string): AzureMapResult {
  return { ok: false, problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message, at } };
}
