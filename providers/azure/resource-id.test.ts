// ARM resource ids: one lowercased spelling, and the parts the APIs ask for.
import { describe, expect, it } from 'vitest';
import { foreignSubscription, normalizeResourceId, parseResourceId, parseVmResourceId, resourceGroupAndName, vnetOfSubnet } from './resource-id.ts';

const SUB = '1F7A6C2E-5D3B-4E8A-9C01-2B3D4E5F6A7B';
const sub = SUB.toLowerCase();

describe('parseVmResourceId', () => {
  it.each<[string, string | undefined]>([
    [`/subscriptions/${SUB}/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/Web-1`, `/subscriptions/${sub}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/web-1`],
    [` /subscriptions/${sub}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/web-1/ `, `/subscriptions/${sub}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/web-1`],
    [`/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1/extensions/agent`, undefined],
    [`/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0`, undefined],
    [`/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/web-1`, undefined],
    [`/subscriptions/${sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1/providers/Microsoft.Resources/tags/default`, undefined],
    [`/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1`, undefined],
    [`/subscriptions/${sub}/resourceGroups/rg`, undefined],
    ['web-1', undefined],
  ])('%s → %s', (id, expected) => {
    expect(parseVmResourceId(id)?.id).toBe(expected);
  });

  it('splits a VM id and, when asked, reads a tags extension as its VM', () => {
    const tags = `/subscriptions/${SUB}/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/Web-1/providers/Microsoft.Resources/tags/default`;
    expect(parseVmResourceId(tags, { allowTagsExtension: true })).toEqual({
      id: `/subscriptions/${sub}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/web-1`,
      subscriptionId: sub,
      resourceGroup: 'rg',
      name: 'web-1',
    });
  });
});

describe('other ids', () => {
  it('the VNet of a subnet, and the resource group and name of a top-level resource', () => {
    const subnet = `/subscriptions/${SUB}/resourceGroups/Net/providers/Microsoft.Network/virtualNetworks/Hub/subnets/Apps`;
    expect(vnetOfSubnet(subnet)).toBe(`/subscriptions/${sub}/resourcegroups/net/providers/microsoft.network/virtualnetworks/hub`);
    expect(vnetOfSubnet(`/subscriptions/${sub}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/hub`)).toBeUndefined();
    expect(resourceGroupAndName(`/subscriptions/${SUB}/resourceGroups/RG/providers/Microsoft.Network/publicIPAddresses/IP-1`)).toEqual({ subscriptionId: sub, resourceGroup: 'rg', name: 'ip-1' });
    expect(resourceGroupAndName(subnet)).toBeUndefined();
    expect(parseResourceId(subnet)).toMatchObject({ namespace: 'microsoft.network', types: ['virtualnetworks', 'subnets'], names: ['hub', 'apps'] });
    expect(normalizeResourceId(' /A/B// ')).toBe('/a/b');
  });
});

describe('foreignSubscription', () => {
  const other = '9b8a7c6d-0000-4e5f-8a9b-0c1d2e3f4a5b';
  it.each<[string, string, string | undefined]>([
    ['the subscription asked, in capitals', `/subscriptions/${SUB}/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/web-1`, undefined],
    ['the subscription asked', `/subscriptions/${sub}/resourcegroups/rg/providers/microsoft.compute/virtualmachines/web-1`, undefined],
    ['another subscription, in capitals', `/subscriptions/${other.toUpperCase()}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1`, other],
    ['no subscription segment', 'web-1', undefined],
  ])('an id naming %s', (_, id, foreign) => {
    expect(foreignSubscription(id, sub)).toBe(foreign);
    expect(foreignSubscription(id, SUB)).toBe(foreign);
  });
});
