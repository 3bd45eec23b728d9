import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../config/load.ts';
import { VmsError } from '../../services/errors.ts';
import type { Instance, InstanceRef, Scope } from '../../services/model.ts';
import { wholeListing } from '../paging.ts';
import { INVENTORY_PAGE, type InventoryMachine, parseInventory } from './inventory.ts';
import { createStaticProvider, StaticProvider } from './static-provider.ts';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/inventories/', import.meta.url));
const EXAMPLES = fileURLToPath(new URL('../../config/examples/', import.meta.url));
const NOW = new Date('2025-03-01T12:00:00.000Z');
const now = () => NOW;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'vms-static-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function provider(inventory: string, account?: string): StaticProvider {
  return new StaticProvider({ type: 'static', name: 'onprem', inventory, ...(account ? { account } : {}) }, { now });
}

async function listOf(p: StaticProvider) {
  return p.list(p.scopes()[0]!);
}

/** The one machine of a one-entry inventory, or the test fails with the problems. */
function only(entryYaml: string): InventoryMachine {
  const parsed = parseInventory(`machines:\n  - ${entryYaml.trim().split('\n').join('\n    ')}\n`);
  expect(parsed.problems).toEqual([]);
  expect(parsed.machines).toHaveLength(1);
  return parsed.machines[0]!;
}

const BARE: InventoryMachine = {
  id: 'm-1',
  name: 'm-1',
  region: '',
  zone: '',
  state: 'running',
  privateIPv4s: [],
  publicIPv4s: [],
  ipv6s: [],
  tags: {},
};

describe('parseInventory: field forms', () => {
  it.each<[string, string, Partial<InventoryMachine>]>([
    ['only an id', 'id: m-1', {}],
    ['a numeric id is text', 'id: 1001', { id: '1001', name: '1001' }],
    ['name given', 'id: m-1\nname: machine-one', { name: 'machine-one' }],
    ['empty name falls back to the id', 'id: m-1\nname: ""', {}],
    ['region and zone', 'id: m-1\nregion: us-east-1\nzone: us-east-1a', { region: 'us-east-1', zone: 'us-east-1a' }],
    ['empty region and zone', 'id: m-1\nregion: ""\nzone:', {}],
    ['state stopped', 'id: m-1\nstate: stopped', { state: 'stopped' }],
    ['state pending', 'id: m-1\nstate: pending', { state: 'pending' }],
    ['state empty means running', 'id: m-1\nstate:', {}],
    ['one private address as text', 'id: m-1\nprivateIPv4: 10.0.1.10', { privateIPv4s: ['10.0.1.10'] }],
    ['private addresses as a list', 'id: m-1\nprivateIPv4: [10.0.1.10, 10.0.1.11]', { privateIPv4s: ['10.0.1.10', '10.0.1.11'] }],
    ['a repeated address is kept once', 'id: m-1\nprivateIPv4: [10.0.1.10, 10.0.1.10]', { privateIPv4s: ['10.0.1.10'] }],
    ['public address', 'id: m-1\npublicIPv4: 203.0.113.1', { publicIPv4s: ['203.0.113.1'] }],
    ['ipv6 as text', 'id: m-1\nipv6: 2001:db8::10', { ipv6s: ['2001:db8::10'] }],
    ['ipv6 as a list', 'id: m-1\nipv6: ["2001:db8::10", "fd00::1"]', { ipv6s: ['2001:db8::10', 'fd00::1'] }],
    ['empty address lists', 'id: m-1\nprivateIPv4: []\npublicIPv4:\nipv6: []', {}],
    ['network and subnet', 'id: m-1\nnetwork: vpc-1\nsubnet: subnet-1', { networkId: 'vpc-1', subnetId: 'subnet-1' }],
    ['empty network is no network', 'id: m-1\nnetwork: ""\nsubnet:', {}],
    ['text tags', 'id: m-1\ntags: { mesh: "true", mesh-app: postgres }', { tags: { mesh: 'true', 'mesh-app': 'postgres' } }],
    [
      'numbers and booleans kept as written',
      'id: m-1\ntags: { mesh: true, mesh-version: 1.10, mesh-weight: 20, hex: 0x1F, off: false }',
      { tags: { mesh: 'true', 'mesh-version': '1.10', 'mesh-weight': '20', hex: '0x1F', off: 'false' } },
    ],
    ['an empty tag value is empty text', 'id: m-1\ntags: { team: }', { tags: { team: '' } }],
    ['empty tags', 'id: m-1\ntags:', {}],
    ['tag keys with slashes and dots', 'id: m-1\ntags: { "example.com/owner": a }', { tags: { 'example.com/owner': 'a' } }],
  ])('%s', (_name, entry, expected) => {
    expect(only(entry)).toEqual({ ...BARE, ...expected });
  });

  it('reads a bare top-level list like `machines:`', () => {
    const parsed = parseInventory('- id: a\n  privateIPv4: 10.0.0.1\n- id: b\n');
    expect(parsed).toEqual({
      machines: [
        { ...BARE, id: 'a', name: 'a', privateIPv4s: ['10.0.0.1'] },
        { ...BARE, id: 'b', name: 'b' },
      ],
      problems: [],
      complete: true,
    });
  });

  it('reads JSON text', () => {
    const parsed = parseInventory('{"machines": [{"id": "j-1", "privateIPv4": ["10.1.1.1"], "tags": {"mesh": true, "w": 1.50}}]}');
    expect(parsed.machines).toEqual([{ ...BARE, id: 'j-1', name: 'j-1', privateIPv4s: ['10.1.1.1'], tags: { mesh: 'true', w: '1.50' } }]);
    expect(parsed.complete).toBe(true);
  });

  it('reads `machines: []` as a complete inventory with no machines', () => {
    expect(parseInventory('machines: []\n')).toEqual({ machines: [], problems: [], complete: true });
  });

  it('resolves YAML anchors and aliases', () => {
    const parsed = parseInventory('machines:\n  - id: a\n    tags: &t { mesh: "true" }\n  - id: b\n    tags: *t\n');
    expect(parsed.machines.map((m) => m.tags)).toEqual([{ mesh: 'true' }, { mesh: 'true' }]);
  });
});

describe('parseInventory: malformed entries are reported with their position and skipped', () => {
  it.each<[string, string, RegExp, string]>([
    ['missing id', 'name: x', /id: missing; every machine needs an id/, 'machines[1], line 4'],
    ['empty id', 'id: ""', /id: must not be empty$/, 'machines[1], line 4'],
    ['id with a space', 'id: pg 9', /id: must not contain spaces/, 'machines[1] (id pg 9), line 4'],
    ['id is a list', 'id: [a]', /id: must be text, not a list/, 'machines[1], line 4'],
    ['unknown key with a suggestion', 'id: pg-9\nprivateIPv4s: [10.0.0.1]', /unknown key "privateIPv4s" \(did you mean "privateIPv4"\?\)/, 'machines[1] (id pg-9), line 4'],
    ['alias of a known key', 'id: pg-9\nlabels: {}', /unknown key "labels" \(did you mean "tags"\?\)/, 'machines[1] (id pg-9), line 4'],
    ['unknown key without a suggestion', 'id: pg-9\ncolour: red', /unknown key "colour" \(known keys: id, name, region/, 'machines[1] (id pg-9), line 4'],
    ['bad state', 'id: pg-9\nstate: up', /state: must be one of pending, running, stopping, stopped, terminated, not "up"/, 'machines[1] (id pg-9), line 4'],
    ['state in capitals', 'id: pg-9\nstate: Running', /state: must be one of/, 'machines[1] (id pg-9), line 4'],
    ['bad IPv4', 'id: pg-9\nprivateIPv4: 10.0.1.300', /privateIPv4\[0\]: "10\.0\.1\.300" is not an IPv4 address/, 'machines[1] (id pg-9), line 4'],
    ['second address bad', 'id: pg-9\npublicIPv4: [1.2.3.4, 1.2.3]', /publicIPv4\[1\]: "1\.2\.3" is not an IPv4 address/, 'machines[1] (id pg-9), line 4'],
    ['IPv6 under privateIPv4', 'id: pg-9\nprivateIPv4: "2001:db8::1"', /privateIPv4\[0\]: "2001:db8::1" is an IPv6 address; list it under ipv6/, 'machines[1] (id pg-9), line 4'],
    ['IPv4 under ipv6', 'id: pg-9\nipv6: 10.0.0.1', /ipv6\[0\]: "10\.0\.0\.1" is an IPv4 address; list it under privateIPv4/, 'machines[1] (id pg-9), line 4'],
    ['a number is no address', 'id: pg-9\nprivateIPv4: 42', /privateIPv4\[0\]: "42" is not an IPv4 address/, 'machines[1] (id pg-9), line 4'],
    ['addresses as a mapping', 'id: pg-9\nprivateIPv4: { a: 1 }', /privateIPv4: must be an IPv4 address or a list of them, not a mapping/, 'machines[1] (id pg-9), line 4'],
    ['an empty item in an address list', 'id: pg-9\nprivateIPv4: [10.0.0.1, ~]', /privateIPv4\[1\]: must be an IPv4 address, not empty/, 'machines[1] (id pg-9), line 4'],
    ['tag value is a list', 'id: pg-9\ntags: { mesh: [a] }', /tags\.mesh: must be text, not a list/, 'machines[1] (id pg-9), line 4'],
    ['tags is a list', 'id: pg-9\ntags: [mesh]', /tags: must be a mapping of tag keys to values, not a list/, 'machines[1] (id pg-9), line 4'],
    ['name is a mapping', 'id: pg-9\nname: { a: b }', /name: must be text, not a mapping/, 'machines[1] (id pg-9), line 4'],
  ])('%s', (_name, entry, message, at) => {
    const text = `machines:\n  - id: good-1\n    privateIPv4: 10.0.0.9\n  - ${entry.split('\n').join('\n    ')}\n  - id: good-2\n`;
    const parsed = parseInventory(text, 'inv.yaml');
    expect(parsed.machines.map((m) => m.id)).toEqual(['good-1', 'good-2']);
    expect(parsed.complete).toBe(false);
    expect(parsed.problems).toHaveLength(1);
    expect(parsed.problems[0]).toMatchObject({ code: 'VMS_ERR_INVENTORY_ENTRY', at });
    expect(parsed.problems[0]!.message).toMatch(/^inv\.yaml: machine skipped: /);
    expect(parsed.problems[0]!.message).toMatch(message);
  });

  it('reports every problem of one entry in one message', () => {
    const parsed = parseInventory('machines:\n  - id: x\n    state: up\n    privateIPv4: nope\n    extra: 1\n');
    expect(parsed.problems).toHaveLength(1);
    const message = parsed.problems[0]!.message;
    expect(message).toContain('state: must be one of');
    expect(message).toContain('privateIPv4[0]: "nope" is not an IPv4 address');
    expect(message).toContain('unknown key "extra"');
  });

  it('reports a second entry with the same id and keeps the first', () => {
    const parsed = parseInventory('machines:\n  - id: pg-1\n    privateIPv4: 10.0.0.1\n  - id: pg-1\n    privateIPv4: 10.0.0.2\n', 'inv.yaml');
    expect(parsed.machines).toEqual([{ ...BARE, id: 'pg-1', name: 'pg-1', privateIPv4s: ['10.0.0.1'] }]);
    expect(parsed.complete).toBe(false);
    expect(parsed.problems).toEqual([
      {
        code: 'VMS_ERR_INVENTORY_ENTRY',
        message: 'inv.yaml: machine skipped: id "pg-1" is already used by machines[0] (line 2); ids must be unique, so rename or remove one of them',
        at: 'machines[1] (id pg-1), line 4',
      },
    ]);
  });

  it('treats a numeric id and the same id quoted as duplicates', () => {
    const parsed = parseInventory('- id: 7\n- id: "7"\n');
    expect(parsed.machines.map((m) => m.id)).toEqual(['7']);
    expect(parsed.problems[0]?.at).toBe('[1] (id 7), line 2');
  });

  it('reads the malformed fixture: good machines listed, each bad one reported in order', () => {
    const parsed = parseInventory(
      `machines:
  - id: ok-1
  - name: nameless
  - id: typo-1
    privateIPv4s: [10.0.0.3]
  - id: ok-1
  - just-a-string
  - id: ok-2
`,
    );
    expect(parsed.machines.map((m) => m.id)).toEqual(['ok-1', 'ok-2']);
    expect(parsed.problems.map((p) => p.at)).toEqual(['machines[1], line 3', 'machines[2] (id typo-1), line 4', 'machines[3] (id ok-1), line 6', 'machines[4], line 7']);
  });
});

describe('parseInventory: a file that cannot be used as a whole', () => {
  it.each<[string, string, string, RegExp, string | undefined]>([
    ['syntax error', 'machines:\n  - id: a\n    privateIPv4: [10.0.0.1\n  - id: b\n', 'VMS_ERR_INVENTORY_PARSE', /^inv\.yaml:4:3: .*; fix the syntax there/, 'line 4, column 3'],
    ['duplicate key', 'machines:\n  - id: a\n    id: b\n', 'VMS_ERR_INVENTORY_PARSE', /^inv\.yaml:3:5: Map keys must be unique/, 'line 3, column 5'],
    ['two documents', 'machines: []\n---\nmachines: []\n', 'VMS_ERR_INVENTORY_PARSE', /^inv\.yaml:2:1: the file holds more than one YAML document/, 'line 2, column 1'],
    ['empty file', '', 'VMS_ERR_INVENTORY_PARSE', /inv\.yaml is empty; .*`machines: \[\]`/, undefined],
    ['only comments', '# nothing yet\n', 'VMS_ERR_INVENTORY_PARSE', /inv\.yaml is empty/, undefined],
    ['machines with nothing after it', 'machines:\n', 'VMS_ERR_INVENTORY_PARSE', /has no machines: .*`machines: \[\]`/, 'line 1'],
    ['machines is a mapping', 'machines:\n  id: a\n', 'VMS_ERR_INVENTORY_PARSE', /`machines` must be a list of machines .*not a mapping/, 'line 2'],
    ['top level is text', 'hello\n', 'VMS_ERR_INVENTORY_PARSE', /the top level must be `machines:`/, undefined],
    ['excessive aliases', 'a: &a [x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\nmachines: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n', 'VMS_ERR_INVENTORY_PARSE', /aliases/, undefined],
  ])('%s: incomplete, no machines', (_name, text, code, message, at) => {
    const parsed = parseInventory(text, 'inv.yaml');
    expect(parsed.machines).toEqual([]);
    expect(parsed.complete).toBe(false);
    expect(parsed.problems).toHaveLength(1);
    expect(parsed.problems[0]!.code).toBe(code);
    expect(parsed.problems[0]!.message).toMatch(message);
    expect(parsed.problems[0]!.at).toBe(at);
  });

  it('names a misspelt `machines` key', () => {
    const parsed = parseInventory('machine:\n  - id: a\n', 'inv.yaml');
    expect(parsed.complete).toBe(false);
    expect(parsed.machines).toEqual([]);
    expect(parsed.problems.map((p) => p.message)).toEqual([
      'inv.yaml: unknown top-level key "machine" (did you mean "machines"?)',
      'inv.yaml has no machines: list them under `machines:`, or write `machines: []` for an inventory with no machines',
    ]);
  });

  it('lists the machines next to an unknown top-level key, but as incomplete', () => {
    const parsed = parseInventory('version: 1\nmachines:\n  - id: a\n', 'inv.yaml');
    expect(parsed.machines.map((m) => m.id)).toEqual(['a']);
    expect(parsed.complete).toBe(false);
    expect(parsed.problems).toEqual([
      { code: 'VMS_ERR_INVENTORY_PARSE', message: 'inv.yaml: unknown top-level key "version" (an inventory has only `machines:`)', at: 'line 1' },
    ]);
  });
});

describe('StaticProvider', () => {
  it('has one scope per block; the account defaults to the name', () => {
    const scopes: Array<[StaticProvider, Scope]> = [
      [provider('x.yaml'), { key: 'static:onprem', provider: 'static', source: 'onprem', account: 'onprem' }],
      [provider('x.yaml', 'dc-1'), { key: 'static:onprem', provider: 'static', source: 'onprem', account: 'dc-1' }],
    ];
    for (const [p, scope] of scopes) {
      expect(p.kind).toBe('static');
      expect(p.name).toBe('onprem');
      expect(p.scopes()).toEqual([scope]);
    }
  });

  it('lists the valid fixture as instances of its scope', async () => {
    const listing = await listOf(provider(path.join(FIXTURES, 'valid.yaml'), 'dc-1'));
    expect(listing.complete).toBe(true);
    expect(listing.problems).toEqual([]);
    expect(listing.scope.key).toBe('static:onprem');
    expect(listing.instances).toEqual<Instance[]>([
      {
        provider: 'static',
        account: 'dc-1',
        id: 'web-1',
        name: 'web-server-1',
        region: 'eu-west-1',
        zone: 'eu-west-1a',
        state: 'running',
        privateIPv4s: ['10.20.0.5', '10.20.0.6'],
        publicIPv4s: ['198.51.100.5'],
        ipv6s: ['2001:db8::5'],
        networkId: 'vpc-eu',
        subnetId: 'subnet-web',
        tags: { mesh: 'true', 'mesh-app': 'web', 'mesh-ports': 'http:8080' },
        observedAt: '2025-03-01T12:00:00.000Z',
      },
      { ...BARE, provider: 'static', account: 'dc-1', id: 'bare-1', name: 'bare-1', observedAt: '2025-03-01T12:00:00.000Z' },
      {
        ...BARE,
        provider: 'static',
        account: 'dc-1',
        id: '1001',
        name: '1001',
        state: 'stopped',
        privateIPv4s: ['10.20.0.7'],
        publicIPv4s: ['198.51.100.7'],
        ipv6s: ['2001:db8::7'],
        tags: { mesh: 'true', 'mesh-version': '1.10', 'mesh-weight': '20', empty: '' },
        observedAt: '2025-03-01T12:00:00.000Z',
      },
    ]);
  });

  it('lists the JSON fixture', async () => {
    const listing = await listOf(provider(path.join(FIXTURES, 'valid.json')));
    expect(listing.complete).toBe(true);
    expect(listing.instances.map((i) => [i.id, i.state, i.privateIPv4s, i.ipv6s, i.tags['mesh-weight'], i.account])).toEqual([
      ['db-1', 'running', ['172.16.0.10'], ['fd00::10'], '5', 'onprem'],
      ['db-2', 'pending', ['172.16.0.11'], [], undefined, 'onprem'],
    ]);
    expect(listing.instances[1]!.tags).toEqual({ mesh: 'true' });
  });

  it('lists the malformed fixture as incomplete, with the good machines and a problem per bad entry', async () => {
    const listing = await listOf(provider(path.join(FIXTURES, 'malformed.yaml')));
    expect(listing.complete).toBe(false);
    expect(listing.instances.map((i) => i.id)).toEqual(['ok-1', 'ok-2']);
    expect(listing.problems.map((p) => [p.code, p.at])).toEqual([
      ['VMS_ERR_INVENTORY_ENTRY', 'machines[1], line 9'],
      ['VMS_ERR_INVENTORY_ENTRY', 'machines[2] (id typo-1), line 13'],
      ['VMS_ERR_INVENTORY_ENTRY', 'machines[3] (id bad-ip-1), line 18'],
      ['VMS_ERR_INVENTORY_ENTRY', 'machines[4] (id ok-1), line 23'],
      ['VMS_ERR_INVENTORY_ENTRY', 'machines[5], line 27'],
      ['VMS_ERR_INVENTORY_ENTRY', 'machines[6] (id bad-tags-1), line 30'],
    ]);
    expect(listing.problems[2]!.message).toContain('"10.0.0.300" is not an IPv4 address');
  });

  it.each<[string, string, string, RegExp, string]>([
    ['missing file', 'does-not-exist.yaml', 'VMS_ERR_INVENTORY_NOT_FOUND', /does-not-exist\.yaml does not exist; check the inventory path/, path.join(FIXTURES, 'does-not-exist.yaml')],
    ['a folder', '', 'VMS_ERR_INVENTORY_NOT_FOUND', /is a folder, not a file/, FIXTURES],
    ['syntax error', 'syntax-error.yaml', 'VMS_ERR_INVENTORY_PARSE', /syntax-error\.yaml:4:3: /, 'line 4, column 3'],
  ])('%s: an incomplete listing with no instances, never a throw', async (_name, file, code, message, at) => {
    const listing = await listOf(provider(path.join(FIXTURES, file)));
    expect(listing.complete).toBe(false);
    expect(listing.instances).toEqual([]);
    expect(listing.problems).toHaveLength(1);
    expect(listing.problems[0]).toMatchObject({ code, at });
    expect(listing.problems[0]!.message).toMatch(message);
  });

  it('reads the file afresh on every listing, stamping each listing with the clock', async () => {
    const file = path.join(dir, 'fresh.yaml');
    let tick = 0;
    const p = new StaticProvider({ type: 'static', name: 'lab', inventory: file }, { now: () => new Date(Date.UTC(2025, 0, 1, 0, 0, tick++)) });
    await writeFile(file, 'machines:\n  - id: a\n');
    const first = await p.list(p.scopes()[0]!);
    await writeFile(file, 'machines:\n  - id: a\n    state: stopped\n  - id: b\n');
    const second = await p.list(p.scopes()[0]!);
    expect(first.instances.map((i) => [i.id, i.state, i.observedAt])).toEqual([['a', 'running', '2025-01-01T00:00:00.000Z']]);
    expect(second.instances.map((i) => [i.id, i.state, i.observedAt])).toEqual([
      ['a', 'stopped', '2025-01-01T00:00:01.000Z'],
      ['b', 'running', '2025-01-01T00:00:01.000Z'],
    ]);
  });

  it('does not list a scope that is not its own', async () => {
    const p = provider(path.join(FIXTURES, 'valid.yaml'));
    const listing = await p.list({ key: 'static:other', provider: 'static', source: 'other', account: 'other' });
    expect(listing.complete).toBe(false);
    expect(listing.instances).toEqual([]);
    expect(listing.problems[0]?.code).toBe('VMS_ERR_PROVIDER_FAILED');
  });

  it('returns an incomplete listing when the listing is aborted', async () => {
    const p = provider(path.join(FIXTURES, 'valid.yaml'));
    const listing = await p.list(p.scopes()[0]!, AbortSignal.abort(new Error('resync timeout')));
    expect(listing.complete).toBe(false);
    expect(listing.instances).toEqual([]);
    expect(listing.problems[0]?.code).toBe('VMS_ERR_PROVIDER_FAILED');
    expect(listing.problems[0]?.message).toContain('resync timeout');
  });

  it('is what the factory builds', () => {
    const p = createStaticProvider({ type: 'static', name: 'lab', inventory: 'x.yaml' });
    expect(p).toBeInstanceOf(StaticProvider);
    expect(p.scopes()[0]?.key).toBe('static:lab');
  });
});

describe('StaticProvider.listPages', () => {
  /** A JSON inventory of a few pages, with a bad machine and an unknown top-level key. */
  const large = (): string =>
    JSON.stringify({
      machines: Array.from({ length: 3 * INVENTORY_PAGE + 7 }, (_, i) => (i === 1000 ? { id: `vm-${i}`, ip: '10.0.0.1' } : { id: `vm-${i}`, privateIPv4: `10.1.${i >> 8}.${i & 255}`, tags: { mesh: true } })),
      version: 2,
    }, null, 1);

  it.each<[string, () => Promise<string>, AbortSignal?]>([
    ['the JSON fixture', async () => path.join(FIXTURES, 'valid.json')],
    ['the YAML fixture', async () => path.join(FIXTURES, 'valid.yaml')],
    ['the malformed fixture', async () => path.join(FIXTURES, 'malformed.yaml')],
    ['a syntax error', async () => path.join(FIXTURES, 'syntax-error.yaml')],
    ['a missing file', async () => path.join(FIXTURES, 'does-not-exist.json')],
    ['a folder', async () => FIXTURES],
    ['a JSON inventory of several pages, one machine malformed', async () => {
      const file = path.join(dir, 'large.json');
      await writeFile(file, large());
      return file;
    }],
    ['an aborted listing', async () => path.join(FIXTURES, 'valid.json'), AbortSignal.abort(new Error('resync timeout'))],
  ])('%s: the listing list() gives, page by page', async (_name, file, signal) => {
    const p = provider(await file());
    const scope = p.scopes()[0]!;
    let pages = 0;
    const paged = await wholeListing(async (onPage) => p.listPages(scope, signal, async (page) => {
      pages++;
      await onPage(page);
    }));
    expect(paged).toEqual(await p.list(scope, signal));
    if (_name.includes('several pages')) {
      expect(pages).toBeGreaterThanOrEqual(3);
      expect(paged.instances).toHaveLength(3 * INVENTORY_PAGE + 6);
      expect(paged.problems.map((x) => x.at)).toEqual(['line 10550', 'machines[1000] (id vm-1000), line 7003']);
    }
  });

  it('lets what the pages are handed to throw, rather than calling it the file\'s problem', async () => {
    const p = provider(path.join(FIXTURES, 'valid.json'));
    await expect(p.listPages(p.scopes()[0]!, undefined, async () => {
      throw new Error('mapping failed');
    })).rejects.toThrow('mapping failed');
  });

  it('does not list a scope that is not its own', async () => {
    const p = provider(path.join(FIXTURES, 'valid.json'));
    const other: Scope = { key: 'static:other', provider: 'static', source: 'other', account: 'other' };
    const paged = await wholeListing(async (onPage) => p.listPages(other, undefined, onPage));
    expect(paged).toEqual(await p.list(other));
    expect(paged.problems[0]?.code).toBe('VMS_ERR_PROVIDER_FAILED');
  });
});

describe('StaticProvider.describe', () => {
  const ref = (id: string, account = 'onprem'): InstanceRef => ({ provider: 'static', account, id });

  it('returns the machine of each ref that is in the file and null for one that is not', async () => {
    const p = provider(path.join(FIXTURES, 'valid.yaml'));
    const described = await p.describe([ref('web-1'), ref('gone-1'), ref('1001')]);
    expect(described.map((d) => [d.ref.id, d.instance?.id ?? null, d.instance?.state ?? null])).toEqual([
      ['web-1', 'web-1', 'running'],
      ['gone-1', null, null],
      ['1001', '1001', 'stopped'],
    ]);
    expect(described[0]!.instance).toMatchObject({ provider: 'static', account: 'onprem', observedAt: '2025-03-01T12:00:00.000Z' });
  });

  it('throws rather than calling everything gone when the file cannot be read', async () => {
    const p = provider(path.join(FIXTURES, 'does-not-exist.yaml'));
    const err = await p.describe([ref('web-1')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmsError);
    expect((err as VmsError).code).toBe('VMS_ERR_INVENTORY_NOT_FOUND');
  });

  it('throws for a ref that is not found while some entry is malformed, since that entry may be it', async () => {
    const p = provider(path.join(FIXTURES, 'malformed.yaml'));
    const err = await p.describe([ref('ok-1'), ref('typo-1')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmsError);
    expect((err as VmsError).code).toBe('VMS_ERR_INVENTORY_ENTRY');
    expect((err as VmsError).message).toContain('cannot tell whether typo-1 still exist');
  });

  it('still describes refs that are found while some entry is malformed', async () => {
    const p = provider(path.join(FIXTURES, 'malformed.yaml'));
    const described = await p.describe([ref('ok-1'), ref('ok-2')]);
    expect(described.map((d) => d.instance?.privateIPv4s)).toEqual([['10.0.0.1'], ['10.0.0.6']]);
  });

  it.each<[string, InstanceRef]>([
    ['another account', ref('web-1', 'dc-2')],
    ['another provider', { provider: 'aws', account: 'onprem', id: 'web-1' }],
  ])('refuses a ref of %s rather than saying it is gone', async (_name, r) => {
    const p = provider(path.join(FIXTURES, 'valid.yaml'));
    await expect(p.describe([r])).rejects.toThrow(/does not belong to static provider "onprem"/);
  });
});

describe('the shipped example', () => {
  it('loads with loadConfig and lists the expected machines, complete and without problems', async () => {
    const config = loadConfig(path.join(EXAMPLES, 'static.yaml'), {});
    expect(config.providers).toHaveLength(1);
    const block = config.providers[0]!;
    expect(block).toEqual({ type: 'static', name: 'onprem', inventory: path.join(EXAMPLES, 'inventory.yaml') });
    if (block.type !== 'static') throw new Error(`the example's provider is ${block.type}, not static`);
    expect(config.mapping.labels.fromTags).toEqual({ app: 'app', 'mesh-app': 'app', 'mesh-version': 'version' });

    const p = createStaticProvider(block, { now });
    const listing = await p.list(p.scopes()[0]!);
    expect(listing.problems).toEqual([]);
    expect(listing.complete).toBe(true);
    expect(listing.instances.map((i) => [i.id, i.state, i.zone, i.privateIPv4s, i.ipv6s])).toEqual([
      ['pg-1', 'running', 'us-east-1a', ['10.0.1.10'], []],
      ['pg-2', 'running', 'us-east-1b', ['10.0.1.11'], []],
      ['pg-3', 'stopped', 'us-east-1a', ['10.0.1.12'], []],
      ['build-1', 'running', 'us-east-1a', ['10.0.2.20'], []],
      ['cache-1', 'running', 'us-east-1a', ['10.0.1.30'], []],
      ['api-v6', 'running', 'us-east-1b', [], ['2001:db8:0:1::40']],
      ['billing-1', 'running', 'us-east-1a', ['10.0.1.50'], []],
    ]);
    expect(listing.instances[0]).toEqual<Instance>({
      provider: 'static',
      account: 'onprem',
      region: 'us-east-1',
      zone: 'us-east-1a',
      id: 'pg-1',
      name: 'postgres-1',
      state: 'running',
      privateIPv4s: ['10.0.1.10'],
      publicIPv4s: [],
      ipv6s: [],
      networkId: 'vpc-onprem',
      subnetId: 'rack-1',
      tags: { mesh: 'true', app: 'postgres', 'mesh-ports': 'postgres:5432', 'mesh-service': 'postgres', 'mesh-service-account': 'postgres-vm' },
      observedAt: '2025-03-01T12:00:00.000Z',
    });
    const byId = new Map(listing.instances.map((i) => [i.id, i]));
    expect(byId.get('build-1')?.tags.mesh).toBeUndefined();
    expect(byId.get('cache-1')?.tags['mesh-ports']).toBe('pg:99999');
    expect(byId.get('billing-1')?.tags['mesh-label-team']).toBe('Payments Team');
  });

  it('shows the default of every mapping rule except the labels read from tags', () => {
    const config = loadConfig(path.join(EXAMPLES, 'static.yaml'), {});
    const defaults = parseConfig({ providers: [{ type: 'static', name: 'x', inventory: 'x' }] });
    expect({ ...config.mapping, labels: { ...config.mapping.labels, fromTags: defaults.mapping.labels.fromTags } }).toEqual(defaults.mapping);
    expect([config.ownerId, config.policy, config.deletionGuard, config.resync]).toEqual([defaults.ownerId, defaults.policy, defaults.deletionGuard, defaults.resync]);
  });
});
