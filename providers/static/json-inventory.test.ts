// A JSON inventory is read machine by machine (json-items.ts) rather than as one YAML document;
// whatever it holds, the result must be the one the YAML reader gives for the same data.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runSliced, runSync } from '../../services/slices.ts';
import { type InventoryMachine, inventorySlices, parseInventory, readInventory, readInventoryPages } from './inventory.ts';
import { jsonInventoryShape } from './json-items.ts';
import { countLoopTurns } from '../../test/helpers/loop-turns.ts';

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
    const loop = countLoopTurns();
    // A slice of 0 ms hands the loop back at every checkpoint, whatever the machine's speed.
    const parsed = await runSliced(inventorySlices(text), 0);
    loop.stop();
    expect(parsed.machines).toHaveLength(n);
    expect(parsed.machines[n - 1]!.tags).toEqual({ mesh: 'true' });
    expect(loop.turns).toBeGreaterThanOrEqual(n / 256);
  });
});

describe('JSON inventories read as they stream', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vms-inventory-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let files = 0;
  const write = (text: string): string => {
    const file = join(dir, `inv-${files++}.json`);
    writeFileSync(file, text);
    return file;
  };
  const stream = async (file: string, options: { pageSize?: number; chunkSize?: number } = {}) => {
    const pages: InventoryMachine[][] = [];
    const read = await readInventoryPages(file, undefined, async (page) => void pages.push(page), options);
    return { read, pages };
  };
  /** A duplicate id names the machine it repeats by its index alone when the file is streamed. */
  const withoutFirstLine = (message: string): string => message.replace(/(already used by \S+) \(line \d+\)/, '$1');

  it('pass on, page by page, the machines and problems of reading the whole file, wherever its chunks end', async () => {
    await fc.assert(
      fc.asyncProperty(inventory, fc.boolean(), fc.boolean(), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 4 }), async (data, pretty, bom, chunkSize, pageSize) => {
        const text = `${bom ? '\uFEFF' : ''}${pretty ? JSON.stringify(data, null, 2) : JSON.stringify(data)}`;
        const file = write(text);
        const whole = parseInventory(text, file);
        const { read, pages } = await stream(file, { chunkSize, pageSize });
        expect(read).toEqual({ complete: whole.complete, failed: false, problems: whole.problems.map((p) => ({ ...p, message: withoutFirstLine(p.message) })) });
        expect(pages.flat()).toEqual(whole.machines);
        for (const page of pages.slice(0, -1)) expect(page.length).toBeGreaterThanOrEqual(pageSize);
      }),
      { numRuns: 300 },
    );
  });

  const machines = (n: number, at = 0): string[] => Array.from({ length: n }, (_, i) => JSON.stringify({ id: `vm-${at + i}`, privateIPv4: `10.0.${((at + i) >> 8) & 255}.${(at + i) & 255}` }));

  it('passes a large file on in pages, each about a page long', async () => {
    const file = write(`{"machines": [\n${machines(2_000).join(',\n')}\n]}\n`);
    // A chunk of 4 KiB holds at most about 100 of these machines.
    const { read, pages } = await stream(file, { pageSize: 100, chunkSize: 4096 });
    expect(read).toEqual({ complete: true, failed: false, problems: [] });
    expect(pages.flat().map((m) => m.id)).toEqual(Array.from({ length: 2_000 }, (_, i) => `vm-${i}`));
    expect(pages.length).toBeGreaterThanOrEqual(10);
    for (const page of pages) expect(page.length).toBeLessThan(100 + 110);
  });

  it.each([
    ['YAML', 'machines:\n  - id: a\n'],
    ['YAML in flow style', '[{id: a}]'],
    ['JSON broken in its first page', '{"machines": [{"id": "a"}, {"id": "b" "x": 1}]}'],
    ['machines twice', '{"machines": [], "machines": [{"id": "a"}]}'],
    ['machines that are not a list', '{"machines": {"id": "a"}}'],
    ['an empty file', ''],
  ])('%s: nothing is passed on, and the file is left to the whole-file reader', async (_name, text) => {
    const { read, pages } = await stream(write(text), { pageSize: 5 });
    expect(read).toBeUndefined();
    expect(pages).toEqual([]);
  });

  it('a missing file is left to the whole-file reader, which says so', async () => {
    const { read, pages } = await stream(join(dir, 'missing.json'));
    expect(read).toBeUndefined();
    expect(pages).toEqual([]);
  });

  it('a syntax error after the first page fails the listing with the line and column the whole-file reader gives', async () => {
    const text = `{"machines": [\n${[...machines(20), '{"id": "b" "x": 1}', ...machines(5, 20)].join(',\n')}\n]}\n`;
    const file = write(text);
    const { read, pages } = await stream(file, { pageSize: 5, chunkSize: 64 });
    expect(pages.length).toBeGreaterThan(0);
    const whole = await readInventory(file);
    expect(whole.machines).toEqual([]);
    expect(whole.problems[0]!.message).toMatch(/:22:\d+: /);
    expect(read).toEqual({ complete: false, failed: true, problems: whole.problems });
  });

  it('a file that starts as JSON and goes on as YAML after the first page fails the listing and says so', async () => {
    const text = `[\n${[...machines(20), '{id: vm-x}'].join(',\n')}\n]\n`;
    const file = write(text);
    expect((await readInventory(file)).machines).toHaveLength(21);
    const { read, pages } = await stream(file, { pageSize: 5, chunkSize: 64 });
    expect(pages.length).toBeGreaterThan(0);
    expect(read?.failed).toBe(true);
    expect(read?.complete).toBe(false);
    expect(read?.problems).toHaveLength(1);
    expect(read?.problems[0]!.code).toBe('VMS_ERR_INVENTORY_PARSE');
    expect(read?.problems[0]!.message).toMatch(/starts as JSON but is not JSON further on \(machine \[20\] \(line 22\) is not JSON: .*write it all as JSON or all as YAML/);
  });

  it('skips the value of an unknown top-level key as the whole-file reader does, even one that is not JSON', async () => {
    const text = `{"machines": [\n${machines(20).join(',\n')}\n],\n"note": tru}\n`;
    const file = write(text);
    const whole = await readInventory(file);
    expect(whole.machines).toHaveLength(20);
    const { read, pages } = await stream(file, { pageSize: 5, chunkSize: 64 });
    expect(read).toEqual({ complete: false, failed: false, problems: whole.problems });
    expect(read?.problems.map((p) => p.at)).toEqual(['line 23']);
    expect(pages.flat()).toEqual(whole.machines);
  });

  it('rejects with what the pages were handed to threw, and with the reason of an abort', async () => {
    const file = write(`[\n${machines(20).join(',\n')}\n]\n`);
    let calls = 0;
    await expect(
      readInventoryPages(file, undefined, async () => {
        if (++calls === 2) throw new Error('mapping failed');
      }, { pageSize: 5, chunkSize: 64 }),
    ).rejects.toThrow('mapping failed');
    const controller = new AbortController();
    await expect(
      readInventoryPages(file, controller.signal, async () => controller.abort(new Error('resync timeout')), { pageSize: 5 }),
    ).rejects.toThrow('resync timeout');
  });
});
