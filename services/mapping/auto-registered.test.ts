import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ForeignEntry } from '../model.ts';
import { canonicalAddress, findAutoRegistered, indexAutoRegistered, sameNetwork } from './index.ts';

const auto = (key: string, address: string, network?: string, group = 'reviews'): ForeignEntry => ({
  key,
  address,
  autoRegistrationGroup: group,
  ...(network === undefined ? {} : { network }),
});

describe('sameNetwork', () => {
  it.each<[string | undefined, string | undefined, boolean]>([
    [undefined, undefined, true],
    ['', undefined, true],
    ['  ', 'net-a', true],
    [undefined, 'net-a', true],
    ['net-a', undefined, true],
    ['net-a', 'net-a', true],
    [' net-a ', 'net-a', true],
    ['net-a', 'net-b', false],
    ['net-a', 'NET-A', false],
  ])('%j and %j → %s', (a, b, same) => {
    expect(sameNetwork(a, b)).toBe(same);
    expect(sameNetwork(b, a)).toBe(same);
  });
});

describe('canonicalAddress', () => {
  it.each([
    ['10.0.0.5', '10.0.0.5'],
    [' 10.0.0.5 ', '10.0.0.5'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:0db8:0000::0001', '2001:db8::1'],
    ['fe80::1%eth0', 'fe80::1%eth0'],
    ['not-an-ip', 'not-an-ip'],
  ])('%s → %s', (address, canonical) => {
    expect(canonicalAddress(address)).toBe(canonical);
  });
});

describe('findAutoRegistered', () => {
  const index = indexAutoRegistered([
    auto('vms/reviews-10.0.0.5', '10.0.0.5'),
    auto('vms/ratings-10.0.0.6-net-a', '10.0.0.6', 'net-a'),
    auto('vms/ratings-10.0.0.6-net-b', '10.0.0.6', 'net-b'),
    auto('vms/a-2001-db8--1', '2001:db8:0:0::1'),
    // Not auto-registered: hand-written, another tool's, or with an empty annotation.
    { key: 'vms/hand-made', address: '10.0.0.7' },
    { key: 'vms/empty-group', address: '10.0.0.8', autoRegistrationGroup: '' },
    { key: 'vms/no-address', autoRegistrationGroup: 'reviews' },
  ]);

  it.each<[string, string, string | undefined, string | undefined]>([
    ['same address, both without network', '10.0.0.5', undefined, 'vms/reviews-10.0.0.5'],
    ['same address, ours with a network, theirs without', '10.0.0.5', 'net-a', 'vms/reviews-10.0.0.5'],
    ['same address and network', '10.0.0.6', 'net-b', 'vms/ratings-10.0.0.6-net-b'],
    ['same address, ours without a network: the smallest key of those that match', '10.0.0.6', undefined, 'vms/ratings-10.0.0.6-net-a'],
    ['same address on another network', '10.0.0.6', 'net-c', undefined],
    ['another address', '10.0.0.9', undefined, undefined],
    ['the same IPv6 address spelled otherwise', '2001:DB8::1', undefined, 'vms/a-2001-db8--1'],
    ['the address of a hand-written entry', '10.0.0.7', undefined, undefined],
    ['the address of an entry with an empty group annotation', '10.0.0.8', undefined, undefined],
  ])('%s', (_, address, network, key) => {
    expect(findAutoRegistered(index, address, network)?.key).toBe(key);
  });

  it('finds nothing in an empty index', () => {
    expect(findAutoRegistered(indexAutoRegistered([]), '10.0.0.5', undefined)).toBeUndefined();
  });

  it('does not depend on the order of the foreign entries', () => {
    const entries = [auto('vms/b', '10.0.0.6', 'net-a'), auto('vms/a', '10.0.0.6'), auto('vms/c', '10.0.0.6', 'net-b')];
    fc.assert(
      fc.property(fc.shuffledSubarray(entries, { minLength: entries.length }), fc.constantFrom(undefined, 'net-a', 'net-b', 'net-c'), (shuffled, network) => {
        expect(findAutoRegistered(indexAutoRegistered(shuffled), '10.0.0.6', network)).toEqual(findAutoRegistered(indexAutoRegistered(entries), '10.0.0.6', network));
      }),
    );
  });
});
