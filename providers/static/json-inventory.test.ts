// A JSON inventory is read machine by machine (json-items.ts) rather than as one YAML document;
// whatever it holds, the result must be the one the YAML reader gives for the same data.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runSliced, runSync } from '../../services/slices.ts';
import { inventorySlices, parseInventory } from './inventory.ts';
import { jsonInventoryShape } from './json-items.ts';

const scalar = fc.oneof(
  fc.constantFrom('10.0.0.1', '10.0.0.2', '2001:db8::1', 'x', '', 'running', 'stopped', 'a b', 'é"\\\n'),
  fc.integer({ min: -5, max: 70000 }),
  // Numbers that JSON and YAML write alike (JSON writes -0 as 0, YAML as -0).
  fc.constantFrom(1.5, 0.25, -3.75, 1e-7),
  fc.boolean(),
  fc.constant(null),
);
const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.constantFrom('mesh', 'mesh-app', 'k', ''), scalar, { maxKeys: 3 }));
const machine = fc.oneof(
  fc.record(
    {
      id: fc.oneof(fc.constantFrom('a', 'b', 'c', '1', ' bad', ''), fc.integer({ min: 0, max: 3 })),
      name: value,
      region: value,
      zone: value,
      state: fc.oneof(fc.constantFrom('running', 'stopped'), value),
      privateIPv4: value,
      publicIPv4: value,
      ipv6: value,
      network: value,
      subnet: value,
      tags: value,
      ip: value,
    },
    { requiredKeys: [] },
  ),
  scalar,
);
const inventory = fc.oneof(
  fc.record({ machines: fc.array(machine, { maxLength: 8 }) }),
  fc.record({ machines: fc.array(machine, { maxLength: 8 }), version: scalar }),
  fc.array(machine, { maxLength: 8 }),
);

/** Problems without the line numbers, which differ between a JSON and a YAML rendering. */
function withoutLines(parsed: ReturnType<typeof parseInventory>) {
  return { ...parsed, problems: parsed.problems.map((p) => ({ ...p, ...(p.at ? { at: p.at.replace(/,? ?\(?line \d+\)?/g, '') } : {}) })) };
}

describe('JSON inventories', () => {
  it('read machine by machine, give what the YAML reader gives for the same data', () => {
    fc.assert(
      fc.property(inventory, fc.boolean(), (data, pretty) => {
        const json = pretty ? JSON.stringify(data, null, 2) : JSON.stringify(data);
        expect(runSync(jsonInventoryShape(json)), 'the JSON reader takes it').toBeDefined();
        const yaml = stringify(data);
        if (!/^[[{]/.test(yaml)) expect(runSync(jsonInventoryShape(yaml)), 'YAML goes to the YAML reader').toBeUndefined();
        expect(withoutLines(parseInventory(json, 'inv'))).toEqual(withoutLines(parseInventory(yaml, 'inv')));
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ['JSON', '{"machines": [{"id": "a", "privateIPv4": "10.0.0.1"}]}'],
    ['YAML', 'machines:\n  - id: a\n    privateIPv4: 10.0.0.1\n'],
  ])('reads %s that starts with a byte-order mark as it reads it without', (_format, text) => {
    const parsed = parseInventory(`\uFEFF${text}`, 'inv');
    expect(parsed).toEqual(parseInventory(text, 'inv'));
    expect(parsed.machines.map((m) => m.id)).toEqual(['a']);
    expect(parsed.problems).toEqual([]);
  });

  it('names the line of a bad machine and of the first holder of a duplicate id', () => {
    const text = '{"machines": [\n  {"id": "a"},\n  {"id": "b", "ip": "10.0.0.1"},\n  {"id": "a"}\n],\n"version": 2}\n';
    const parsed = parseInventory(text, 'inv.json');
    expect(parsed.machines.map((m) => m.id)).toEqual(['a']);
    expect(parsed.complete).toBe(false);
    expect(parsed.problems).toEqual([
      { code: 'VMS_ERR_INVENTORY_PARSE', message: 'inv.json: unknown top-level key "version" (an inventory has only `machines:`)', at: 'line 6' },
      { code: 'VMS_ERR_INVENTORY_ENTRY', message: 'inv.json: machine skipped: unknown key "ip" (did you mean "privateIPv4"?)', at: 'machines[1] (id b), line 3' },
      {
        code: 'VMS_ERR_INVENTORY_ENTRY',
        message: 'inv.json: machine skipped: id "a" is already used by machines[0] (line 2); ids must be unique, so rename or remove one of them',
        at: 'machines[2] (id a), line 4',
      },
    ]);
  });

  it.each([
    ['a syntax error in a machine', '{"machines": [\n  {"id": "a"},\n  {"id": "b" "x": 1}\n]}\n', /^inv\.json:3:/],
    ['a list cut off', '{"machines": [\n  {"id": "a"},\n', /^inv\.json:\d+:\d+: /],
    ['machines twice', '{"machines": [], "machines": [{"id": "a"}]}', /^inv\.json:1:\d+: Map keys must be unique/],
  ])('%s goes to the YAML reader, which says where', (_name, text, message) => {
    const parsed = parseInventory(text, 'inv.json');
    expect(parsed.complete).toBe(false);
    expect(parsed.machines).toEqual([]);
    expect(parsed.problems[0]!.code).toBe('VMS_ERR_INVENTORY_PARSE');
    expect(parsed.problems[0]!.message).toMatch(message);
  });

  it('gives the event loop turns while it reads a large inventory', async () => {
    const n = 20_000;
    const machines = Array.from({ length: n }, (_, i) => ({ id: `vm-${i}`, privateIPv4: `10.0.${(i >> 8) & 255}.${i & 255}`, tags: { mesh: true } }));
    const text = JSON.stringify({ machines });
    let turns = 0;
    let reading = true;
    const count = (): void => {
      turns++;
      if (reading) setImmediate(count);
    };
    setImmediate(count);
    // A slice of 0 ms hands the loop back at every checkpoint, whatever the machine's speed.
    const parsed = await runSliced(inventorySlices(text), 0);
    reading = false;
    expect(parsed.machines).toHaveLength(n);
    expect(parsed.machines[n - 1]!.tags).toEqual({ mesh: 'true' });
    expect(turns).toBeGreaterThanOrEqual(n / 256);
  });
});
