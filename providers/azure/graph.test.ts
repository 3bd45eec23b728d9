// The Resource Graph query text and the rows it answers with, grouped back into VMs.
import { describe, expect, it } from 'vitest';
import { checkDiscoveryQuery } from '../../test/fakes/azure/arm-server.ts';
import { discoveryQuery, kqlString, vmsFromRows } from './graph.ts';

const SUB = '1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b';
const VM = `/subscriptions/${SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-1`;
const NIC = `/subscriptions/${SUB}/resourcegroups/rg/providers/microsoft.network/networkinterfaces/vm-1-nic`;
const T0 = '2025-01-01T00:00:00.000Z';
const T1 = '2025-01-01T00:00:01.000Z';

function row(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: VM,
    name: 'vm-1',
    location: 'westeurope',
    zones: null,
    tags: { mesh: 'true' },
    powerState: 'PowerState/running',
    nicKey: NIC,
    nicRefPrimary: null,
    nicId: NIC,
    nicPrimary: true,
    ipName: 'ipconfig1',
    ipPrimary: true,
    privateIp: '10.0.0.4',
    privatePrefixLength: null,
    subnetId: '',
    publicIp: '',
    ...overrides,
  };
}

describe('discoveryQuery', () => {
  it('filters on the tag key as a verbatim literal, whatever the key holds', () => {
    expect(kqlString('mesh')).toBe('@"mesh"');
    expect(kqlString('a "b" \\c')).toBe('@"a ""b"" \\c"');
    expect(discoveryQuery('mesh "x"')).toContain('| where isnotnull(tags[@"mesh ""x"""])');
  });

  it('is the query the ARM fake answers: VMs by tag, joined with interfaces and public IPs by lowercased id', () => {
    expect(checkDiscoveryQuery(discoveryQuery('mesh'))).toBe('mesh');
    expect(discoveryQuery('mesh').match(/\bjoin kind=leftouter\b/g)).toHaveLength(2);
  });
});

describe('vmsFromRows', () => {
  it('groups rows into VMs and interfaces, keeping the time of the page with the first row', () => {
    const rows = [
      { row: row(), observedAt: T0 },
      { row: row({ ipName: 'ipconfig2', ipPrimary: 'False', privateIp: '10.0.0.5', publicIp: '20.0.0.5' }), observedAt: T1 },
      { row: row({ nicKey: `${NIC}2`, nicId: `${NIC}2`, nicRefPrimary: 'true', nicPrimary: false, privateIp: '10.0.9.9' }), observedAt: T1 },
    ];

    const { vms, problems } = vmsFromRows(rows);

    expect(problems).toEqual([]);
    expect(vms).toEqual([
      {
        observedAt: T0,
        vm: {
          id: VM,
          name: 'vm-1',
          location: 'westeurope',
          zones: [],
          tags: { mesh: 'true' },
          powerState: 'PowerState/running',
          nics: [
            {
              id: NIC,
              primary: undefined,
              nic: {
                primary: true,
                ipConfigurations: [
                  { name: 'ipconfig1', primary: true, privateIPAddress: '10.0.0.4', privateIPAddressPrefixLength: undefined, subnetId: undefined, publicIPAddress: undefined },
                  { name: 'ipconfig2', primary: false, privateIPAddress: '10.0.0.5', privateIPAddressPrefixLength: undefined, subnetId: undefined, publicIPAddress: '20.0.0.5' },
                ],
              },
            },
            {
              id: `${NIC}2`,
              primary: true,
              nic: { primary: false, ipConfigurations: [{ name: 'ipconfig1', primary: true, privateIPAddress: '10.0.9.9', privateIPAddressPrefixLength: undefined, subnetId: undefined, publicIPAddress: undefined }] },
            },
          ],
        },
      },
    ]);
  });

  it('an interface the join found nothing for is missing; a VM row without interface has none', () => {
    const { vms } = vmsFromRows([
      { row: row({ nicId: null, ipName: '', privateIp: '' }), observedAt: T0 },
      { row: row({ id: `${VM}b`, nicKey: '', nicId: null }), observedAt: T0 },
    ]);
    expect(vms.map((v) => v.vm.nics)).toEqual([[{ id: NIC, primary: undefined, nic: undefined }], []]);
  });

  it('ids are grouped without regard to case; zones, tags and the prefix length are read when present', () => {
    const { vms } = vmsFromRows([
      { row: row({ zones: ['3'], tags: { mesh: 'true', n: 5 }, privatePrefixLength: 28 }), observedAt: T0 },
      { row: row({ id: VM.toLowerCase(), ipName: 'ipconfig2', privateIp: '10.0.0.6' }), observedAt: T0 },
    ]);
    expect(vms).toHaveLength(1);
    expect(vms[0]!.vm).toMatchObject({ zones: ['3'], tags: { mesh: 'true', n: '5' } });
    expect(vms[0]!.vm.nics[0]!.nic!.ipConfigurations.map((c) => [c.privateIPAddress, c.privateIPAddressPrefixLength])).toEqual([
      ['10.0.0.4', 28],
      ['10.0.0.6', undefined],
    ]);
  });

  it('a row without an id is a problem', () => {
    const { vms, problems } = vmsFromRows([{ row: 'x', observedAt: T0 }, { row: row({ id: '' }), observedAt: T0 }]);
    expect(vms).toEqual([]);
    expect(problems).toEqual([
      { code: 'VMS_ERR_PROVIDER_ANSWER', message: 'Resource Graph row 0 has no resource id', at: 'row 0' },
      { code: 'VMS_ERR_PROVIDER_ANSWER', message: 'Resource Graph row 1 has no resource id', at: 'row 1' },
    ]);
  });
});
