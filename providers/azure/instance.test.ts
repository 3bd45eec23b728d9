// Azure VM → Instance, as tables: each row one shape Azure answers with.
import type { VirtualMachine } from '@azure/arm-compute';
import type { NetworkInterface, PublicIPAddress } from '@azure/arm-network';
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../services/model.ts';
import { packInstances } from '../thread/packed-instances.ts';
import { type AzureIpConfiguration, type AzureNicSlot, type AzureVm, fromArmVm, normalizePowerState, primarySlot, toInstance } from './instance.ts';

const SUB = '1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b';
const CTX = { subscriptionId: SUB, observedAt: '2025-01-01T00:00:00.000Z' };
const VM_ID = `/subscriptions/${SUB}/resourceGroups/RG-Mesh/providers/Microsoft.Compute/virtualMachines/Web-1`;
const SUBNET = `/subscriptions/${SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/Hub/subnets/Apps`;

function config(overrides: Partial<AzureIpConfiguration> = {}): AzureIpConfiguration {
  return { name: 'ipconfig1', primary: true, privateIPAddress: '10.0.0.4', privateIPAddressPrefixLength: undefined, subnetId: SUBNET, publicIPAddress: undefined, ...overrides };
}

function slot(configurations: AzureIpConfiguration[], overrides: Partial<AzureNicSlot> = {}): AzureNicSlot {
  return { id: `/subscriptions/${SUB}/resourceGroups/rg-mesh/providers/Microsoft.Network/networkInterfaces/web-1-nic`, primary: undefined, nic: { primary: undefined, ipConfigurations: configurations }, ...overrides };
}

const VM: AzureVm = { id: VM_ID, name: 'Web-1', location: 'westeurope', zones: [], tags: {}, powerState: 'PowerState/running', nics: [] };

const BASE: Instance = {
  provider: 'azure',
  account: SUB,
  region: 'westeurope',
  zone: '',
  id: `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.compute/virtualmachines/web-1`,
  name: 'Web-1',
  state: 'running',
  privateIPv4s: [],
  publicIPv4s: [],
  ipv6s: [],
  tags: {},
  observedAt: '2025-01-01T00:00:00.000Z',
};

const NETWORK = {
  networkId: `/subscriptions/${SUB}/resourcegroups/rg-net/providers/microsoft.network/virtualnetworks/hub`,
  subnetId: `/subscriptions/${SUB}/resourcegroups/rg-net/providers/microsoft.network/virtualnetworks/hub/subnets/apps`,
};

describe('toInstance', () => {
  it.each<[string, Partial<AzureVm>, Partial<Instance>]>([
    ['a VM without interfaces: the id lowercased, nothing else', {}, {}],
    ['the first zone, in the form Kubernetes labels nodes with; tags kept as Azure spells them', { zones: ['2'], tags: { Mesh: 'true', 'mesh-app': 'web' } }, { zone: 'westeurope-2', tags: { Mesh: 'true', 'mesh-app': 'web' } }],
    ['a display-name location is made the location name', { location: 'West Europe' }, { region: 'westeurope' }],
    ['a tag named __proto__ stays a tag', { tags: Object.fromEntries([['__proto__', 'x']]) }, { tags: Object.fromEntries([['__proto__', 'x']]) }],
    ['one interface, one address: the subnet and its VNet, lowercased', { nics: [slot([config()])] }, { privateIPv4s: ['10.0.0.4'], ...NETWORK }],
    [
      'the primary configuration first, then the others in order, without duplicates',
      { nics: [slot([config({ name: 'b', primary: false, privateIPAddress: '10.0.0.6' }), config({ name: 'a', primary: true, privateIPAddress: '10.0.0.5' }), config({ name: 'c', primary: false, privateIPAddress: '10.0.0.5' })])] },
      { privateIPv4s: ['10.0.0.5', '10.0.0.6'], ...NETWORK },
    ],
    [
      'public addresses of the primary interface, IPv4 and IPv6; private IPv6 before public',
      { nics: [slot([config({ publicIPAddress: '20.0.0.1' }), config({ primary: false, privateIPAddress: 'fd00::5', publicIPAddress: '2603:1020::5' })])] },
      { privateIPv4s: ['10.0.0.4'], publicIPv4s: ['20.0.0.1'], ipv6s: ['fd00::5', '2603:1020::5'], ...NETWORK },
    ],
    [
      'a prefix (by length, or written with a slash) is not an address; a /32 is one',
      { nics: [slot([config({ privateIPAddress: '10.0.0.16', privateIPAddressPrefixLength: 28 }), config({ primary: false, privateIPAddress: '10.0.1.0/24' }), config({ primary: false, privateIPAddress: '10.0.2.9', privateIPAddressPrefixLength: 32 })])] },
      { privateIPv4s: ['10.0.2.9'], ...NETWORK },
    ],
    ['an IPv6-only VM', { nics: [slot([config({ privateIPAddress: 'fd00::9' })])] }, { ipv6s: ['fd00::9'], ...NETWORK }],
    ['an interface without addresses', { nics: [slot([config({ privateIPAddress: undefined, subnetId: undefined })])] }, {}],
    [
      'the interface the VM marks primary wins over the one Azure marks, and over order',
      { nics: [slot([config({ privateIPAddress: '10.9.0.1' })], { id: 'a', nic: { primary: true, ipConfigurations: [config({ privateIPAddress: '10.9.0.1' })] } }), slot([config({ privateIPAddress: '10.0.0.7' })], { id: 'b', primary: true })] },
      { privateIPv4s: ['10.0.0.7'], ...NETWORK },
    ],
    [
      'without VM flags, the interface Azure marks primary',
      { nics: [slot([config({ privateIPAddress: '10.9.0.1' })], { id: 'a' }), slot([config({ privateIPAddress: '10.0.0.8' })], { id: 'b', nic: { primary: true, ipConfigurations: [config({ privateIPAddress: '10.0.0.8' })] } })] },
      { privateIPv4s: ['10.0.0.8'], ...NETWORK },
    ],
    [
      'without any flag, the first interface; a missing secondary one does not matter',
      { nics: [slot([config({ privateIPAddress: '10.0.0.9' })], { id: 'a' }), slot([], { id: 'b', nic: undefined })] },
      { privateIPv4s: ['10.0.0.9'], ...NETWORK },
    ],
    ['a blank name falls back to the name in the id', { name: '  ' }, { name: 'web-1' }],
  ])('%s', (_, vm, expected) => {
    const made = toInstance({ ...VM, ...vm }, CTX);
    expect(made).toEqual({ ok: true, instance: { ...BASE, ...expected } });
    // Of the shape that crosses from the provider thread packed.
    if (made.ok) expect('strings' in packInstances([made.instance])).toBe(true);
  });

  it.each<[string | undefined, Instance['state'] | undefined]>([
    ['PowerState/running', 'running'],
    ['PowerState/starting', 'pending'],
    ['PowerState/stopping', 'stopping'],
    ['PowerState/deallocating', 'stopping'],
    ['PowerState/stopped', 'stopped'],
    ['PowerState/deallocated', 'stopped'],
    ['powerstate/Running', 'running'],
    ['PowerState/unknown', undefined],
    ['PowerState/constructor', undefined],
    ['ProvisioningState/succeeded', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('power state %s → %s', (code, state) => {
    expect(normalizePowerState(code)).toBe(state);
  });

  it('a VM with an unknown power state, an id that is not a VM, or a missing primary interface is a problem', () => {
    expect(toInstance({ ...VM, powerState: 'PowerState/unknown' }, CTX)).toEqual({
      ok: false,
      problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message: `VM ${BASE.id} has an unknown power state 'PowerState/unknown'`, at: BASE.id },
    });
    expect(toInstance({ ...VM, id: `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/x` }, CTX)).toMatchObject({
      ok: false,
      problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message: expect.stringContaining('is not a virtual machine resource id'), at: SUB },
    });
    expect(toInstance({ ...VM, nics: [slot([], { id: 'NIC-ID', primary: true, nic: undefined })] }, CTX)).toEqual({
      ok: false,
      problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message: `VM ${BASE.id}: its primary network interface nic-id was not found`, at: BASE.id },
    });
  });
});

describe('primarySlot', () => {
  it('is undefined without interfaces', () => {
    expect(primarySlot([])).toBeUndefined();
  });
});

describe('fromArmVm', () => {
  it('reads the Compute and Network answers: power state from the instance view, interfaces and public IPs by lowercased id', () => {
    const nicId = `/subscriptions/${SUB}/resourceGroups/rg-mesh/providers/Microsoft.Network/networkInterfaces/web-1-nic`;
    const ipId = `/subscriptions/${SUB}/resourceGroups/rg-mesh/providers/Microsoft.Network/publicIPAddresses/web-1-ip`;
    const vm: VirtualMachine = {
      id: VM_ID,
      name: 'Web-1',
      location: 'westeurope',
      zones: ['1'],
      tags: { mesh: 'true' },
      networkProfile: { networkInterfaces: [{ id: nicId.replace('rg-mesh', 'RG-MESH'), primary: true }, { id: `${nicId}-missing` }] },
      instanceView: { statuses: [{ code: 'ProvisioningState/succeeded' }, { code: 'PowerState/deallocated' }] },
    };
    const nic: NetworkInterface = {
      id: nicId,
      primary: true,
      ipConfigurations: [{ name: 'ipconfig1', primary: true, privateIPAddress: '10.0.0.4', subnet: { id: SUBNET }, publicIPAddress: { id: ipId.toUpperCase() } }],
    };
    const ip: PublicIPAddress = { id: ipId, ipAddress: '20.0.0.4' };

    const azureVm = fromArmVm(vm, new Map([[nicId.toLowerCase(), nic]]), new Map([[ipId.toLowerCase(), ip]]));

    expect(azureVm).toEqual({
      id: VM_ID,
      name: 'Web-1',
      location: 'westeurope',
      zones: ['1'],
      tags: { mesh: 'true' },
      powerState: 'PowerState/deallocated',
      nics: [
        {
          id: nicId.replace('rg-mesh', 'RG-MESH'),
          primary: true,
          nic: { primary: true, ipConfigurations: [{ name: 'ipconfig1', primary: true, privateIPAddress: '10.0.0.4', privateIPAddressPrefixLength: undefined, subnetId: SUBNET, publicIPAddress: '20.0.0.4' }] },
        },
        { id: `${nicId}-missing`, primary: undefined, nic: undefined },
      ],
    });
    expect(toInstance(azureVm, CTX)).toMatchObject({ ok: true, instance: { state: 'stopped', zone: 'westeurope-1', privateIPv4s: ['10.0.0.4'], publicIPv4s: ['20.0.0.4'] } });
  });

  it('a VM listed without an instance view has no power state', () => {
    expect(fromArmVm({ id: VM_ID, name: 'x', location: 'westeurope' }, new Map(), new Map())).toMatchObject({ powerState: undefined, zones: [], tags: {}, nics: [] });
  });
});
