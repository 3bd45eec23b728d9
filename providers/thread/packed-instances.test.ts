// A chunk packed in a provider thread reads back, on the main thread, as the instances the
// provider made: the same values as a structured clone of them gives, tags in their order.
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Instance } from '../../services/model.ts';
import { packInstances, type PackedInstances, PackedInstancesError, unpackInstances } from './packed-instances.ts';

/** The value as it arrives through a MessagePort, as the provider thread's messages do. */
function throughPort<T>(value: T): T {
  const { port1, port2 } = new MessageChannel();
  port1.postMessage(value);
  const received = receiveMessageOnPort(port2)!.message as T;
  port1.close();
  return received;
}

/** Own keys and values, in order, all the way down: what toStrictEqual does not check (key order). */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape);
  if (typeof value === 'object' && value !== null) return Object.getOwnPropertyNames(value).map((k) => [k, shape((value as Record<string, unknown>)[k])]);
  return value;
}

// A small alphabet, so that instances of a chunk share strings as a cloud's do; with keys that
// objects treat apart (`__proto__`, `constructor`), and any UTF-16 code units (NUL, controls, lone
// surrogates, halves of astral characters).
const anyUnits = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 6 });
const text = fc.oneof(fc.constantFrom('', 'a', 'us-east-1', '__proto__', 'constructor', 'toString', '\ud800', 'é', '\u0000'), fc.string({ maxLength: 6 }), anyUnits);
const list = fc.array(text, { maxLength: 3 });
const tags = fc.array(fc.tuple(text, text), { maxLength: 5 }).map((pairs) => {
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
});
const instance: fc.Arbitrary<Instance> = fc
  .record({
    provider: fc.constantFrom('aws', 'gcp', 'azure', 'static'),
    account: text,
    region: text,
    zone: text,
    id: text,
    name: text,
    state: fc.constantFrom('running', 'stopped', 'pending', 'terminated'),
    privateIPv4s: list,
    publicIPv4s: list,
    ipv6s: list,
    networkId: text,
    subnetId: text,
    tags,
    observedAt: text,
  }, { requiredKeys: ['provider', 'account', 'region', 'zone', 'id', 'name', 'state', 'privateIPv4s', 'publicIPv4s', 'ipv6s', 'tags', 'observedAt'] })
  .map((i) => i as Instance);

describe('packed instances', () => {
  it('read back as a structured clone of the instances reads', () => {
    fc.assert(
      fc.property(fc.array(instance, { maxLength: 20 }), (instances) => {
        const packed = throughPort(packInstances(instances));
        expect('strings' in packed).toBe(true);
        const read = unpackInstances(packed);
        const cloned = throughPort(instances);
        expect(read).toStrictEqual(cloned);
        // Tags in the order the cloud gave them.
        expect(read.map((i) => shape(i.tags))).toEqual(cloned.map((i) => shape(i.tags)));
      }),
      { numRuns: 300 },
    );
  });

  it('holds each distinct string once, however many instances repeat it', () => {
    const at = '2026-12-05T00:00:00.000Z';
    const instances: Instance[] = Array.from({ length: 100 }, (_, n) => ({
      provider: 'aws',
      account: '123456789012',
      region: 'us-east-1',
      zone: 'us-east-1a',
      id: `i-${n}`,
      name: `i-${n}`,
      state: 'running',
      privateIPv4s: [`10.0.0.${n}`],
      publicIPv4s: [],
      ipv6s: [],
      networkId: 'vpc-1',
      tags: { mesh: 'true', 'mesh-app': 'db' },
      observedAt: at,
    }));
    const packed = packInstances(instances) as Extract<PackedInstances, { strings: string[] }>;
    // 100 ids (each also the name) and 100 addresses, and the 11 strings the instances share.
    expect(packed.strings).toHaveLength(211);
    const read = unpackInstances(packed);
    expect(read).toStrictEqual(instances);
    expect(read.every((i) => i.subnetId === undefined && !Object.hasOwn(i, 'subnetId'))).toBe(true);
  });

  it('sends a chunk as it is when an instance has a field or a value an Instance has not', () => {
    const base: Instance = { provider: 'gcp', account: 'p', region: 'r', zone: 'z', id: '1', name: 'vm', state: 'running', privateIPv4s: [], publicIPv4s: [], ipv6s: [], tags: {}, observedAt: 't' };
    for (const odd of [
      { ...base, hostname: 'vm.internal' },
      { ...base, tags: { port: 8080 } },
      { ...base, networkId: null },
      { ...base, ipv6s: [1] },
      { ...base, tags: Object.create({ inherited: 'x' }) as Record<string, string> },
      { ...base, tags: Object.assign(Object.create(null) as Record<string, string>, { mesh: 'true' }) },
      { ...base, observedAt: new Date(0) },
      { ...base, networkId: undefined },
      { ...base, subnetId: undefined },
      // A hole, and a hole beside a property that is no index.
      { ...base, privateIPv4s: [, '10.0.0.1'] },
      { ...base, ipv6s: Object.assign([, '::1'], { extra: '::2' }) },
      Object.assign(Object.create({ networkId: 'vpc-1' }) as Instance, base),
      (({ zone: _zone, ...rest }) => rest)(base),
    ] as unknown as Instance[]) {
      const packed = throughPort(packInstances([base, odd]));
      expect('instances' in packed).toBe(true);
      expect(unpackInstances(packed)).toStrictEqual(throughPort([base, odd]));
    }
  });

  it('refuses a packed chunk that does not read back whole, rather than give fields undefined', () => {
    const base: Instance = { provider: 'aws', account: 'a', region: 'r', zone: 'z', id: 'i-1', name: 'vm', state: 'running', privateIPv4s: ['10.0.0.1'], publicIPv4s: [], ipv6s: [], tags: { mesh: 'true' }, observedAt: 't' };
    const packed = packInstances([base, { ...base, id: 'i-2' }]) as Extract<PackedInstances, { strings: string[] }>;
    expect(unpackInstances(packed)).toHaveLength(2);
    const cut = { ...packed, cells: packed.cells.subarray(0, packed.cells.length - 1) };
    const longer = { ...packed, cells: Uint32Array.from([...packed.cells, 0]) };
    const fewerStrings = { ...packed, strings: packed.strings.slice(0, -1) };
    const moreInstances = { ...packed, count: 3 };
    for (const broken of [cut, longer, fewerStrings, moreInstances]) expect(() => unpackInstances(broken)).toThrow(PackedInstancesError);
  });
});
