// plainMachine reads the plainly valid machine entries without zod: whatever it takes, it must
// read exactly as machineSchema does, and it must take the usual entries.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MACHINE_KEYS, machineSchema, plainMachine } from './inventory.ts';

const text = fc.constantFrom('10.0.0.1', '10.0.0.2', '2001:db8::1', '::1', 'x', '', ' ', 'running', 'stopped', 'a b', 'é"\\\n', '__proto__', 'constructor');
const scalar = fc.oneof(text, fc.integer({ min: -5, max: 5 }), fc.boolean(), fc.constant(null), fc.constant(undefined));
const value = fc.oneof(
  scalar,
  fc.array(fc.oneof(text, scalar), { maxLength: 3 }),
  fc.dictionary(fc.constantFrom('mesh', 'mesh-app', 'k', '', '1', '__proto__'), fc.oneof(text, scalar), { maxKeys: 3 }),
);
const id = fc.oneof(fc.constantFrom('a', 'vm-1', '1', ' bad', '', 'x'.repeat(255), 'x'.repeat(256), 'tab\there'), scalar);
const state = fc.oneof(fc.constantFrom('pending', 'running', 'stopping', 'stopped', 'terminated', 'Running'), value);
const entry = fc.oneof(
  // Every key of the format, and one that is not.
  fc.record(Object.fromEntries([...MACHINE_KEYS, 'ip'].map((key) => [key, key === 'id' ? id : key === 'state' ? state : value])), { requiredKeys: [] }),
  // As JSON.parse gives them, `__proto__` keys included.
  fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)) as unknown),
  fc.constantFrom('{"id":"a","__proto__":{"x":"y"}}', '{"id":"a","tags":{"__proto__":"x","k":"v"}}', '{"id":"a","tags":{"2":"b","1":"a","z":null}}').map((t) => JSON.parse(t) as unknown),
  scalar,
);

describe('plainMachine', () => {
  it('takes only what machineSchema accepts, and reads it as machineSchema does (key order included)', () => {
    fc.assert(
      fc.property(entry, (e) => {
        const plain = plainMachine(e);
        if (plain === undefined) return;
        const parsed = machineSchema.safeParse(e);
        expect(parsed.success).toBe(true);
        expect(plain).toStrictEqual(parsed.data);
        expect(JSON.stringify(plain)).toBe(JSON.stringify(parsed.data));
      }),
      { numRuns: 3000 },
    );
  });

  it('takes the usual entries: addresses as text or lists, tags, absent and null fields', () => {
    const usual = [
      { id: 'vm-1', region: 'us-east-1', zone: 'us-east-1a', privateIPv4: '10.0.0.1', tags: { mesh: 'true', 'mesh-app': 'web' } },
      { id: 'vm-2', name: 'two', state: 'stopped', privateIPv4: ['10.0.0.2', '10.0.0.2'], publicIPv4: ['203.0.113.1'], ipv6: '2001:db8::2', network: 'vpc-1', subnet: 'rack-1', tags: { k: null } },
      { id: 'vm-3', name: null, region: null, zone: null, state: null, privateIPv4: null, publicIPv4: [], ipv6: null, network: '', subnet: null, tags: null },
    ];
    for (const e of usual) {
      const parsed = machineSchema.safeParse(e);
      expect(parsed.success).toBe(true);
      expect(plainMachine(e)).toStrictEqual(parsed.data);
    }
  });

  it('leaves every other entry to machineSchema', () => {
    const others: unknown[] = [
      'vm-1',
      ['vm-1'],
      { name: 'no-id' },
      { id: 1 },
      { id: 'a b' },
      { id: 'vm-1', ip: '10.0.0.1' },
      { id: 'vm-1', state: 'Running' },
      { id: 'vm-1', region: 1 },
      { id: 'vm-1', privateIPv4: '2001:db8::1' },
      { id: 'vm-1', ipv6: ['10.0.0.1'] },
      { id: 'vm-1', publicIPv4: [null] },
      { id: 'vm-1', tags: { '': 'x' } },
      { id: 'vm-1', tags: { k: 1 } },
      { id: 'vm-1', tags: ['x'] },
      JSON.parse('{"id":"vm-1","tags":{"__proto__":"x"}}') as unknown,
      JSON.parse('{"id":"vm-1","__proto__":{}}') as unknown,
      Object.assign(Object.create(null) as object, { id: 'vm-1' }),
    ];
    for (const e of others) expect(plainMachine(e), JSON.stringify(e)).toBeUndefined();
  });
});
