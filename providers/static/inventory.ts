// The inventory file of the static provider: machines written down by hand or by a script
// (on-prem and bare-metal servers, local runs, tests), with the same fields a cloud API gives.
//
// Format: YAML or JSON (told apart by content). JSON is read machine by machine with the JSON
// parser (use it for large inventories: YAML keeps a node per value while the file is read); the
// rules below are the same for both, except that a key written twice in one JSON object keeps its
// last value, as JSON parsers do.
//
//   machines:
//     - id: pg-1                    # required; unique in the file; text without spaces
//       name: postgres-1            # optional; defaults to the id
//       region: us-east-1           # optional; '' when left out
//       zone: us-east-1a            # optional; '' when left out
//       state: running              # optional; pending | running | stopping | stopped | terminated; default running
//       privateIPv4: 10.0.1.10      # optional; one address or a list: [10.0.1.10, 10.0.1.11]
//       publicIPv4: [203.0.113.10]  # optional; one address or a list
//       ipv6: [2001:db8::10]        # optional; one address or a list
//       network: vpc-onprem         # optional; the network id that mapping.network.byNetworkId matches
//       subnet: rack-12             # optional
//       tags:                       # optional; tag key -> value
//         mesh: "true"
//         mesh-app: postgres
//         mesh-ports: postgres:5432
//
// - The file may also be a bare list of machines (without `machines:`); positions are then `[3]`.
// - Every value is text. Numbers and booleans are kept exactly as written (`mesh-version: 1.10`
//   is the tag value "1.10", `mesh: true` is "true"), so quoting is never required.
// - An empty value (`zone:` or `null`) is the same as leaving the key out; an empty tag value is ''.
// - Addresses are checked: privateIPv4 and publicIPv4 take IPv4 only, ipv6 takes IPv6 only.
// - Keys are exact: an unknown key (`privateIPv4s`, `ip`, `labels`) makes the entry malformed.
// - `machines: []` means "no machines". An empty file, or `machines:` with nothing after it, is
//   treated as an unreadable inventory: a half-written file must not empty the mesh.
//
// What goes wrong is reported, never thrown:
// - missing or unreadable file   -> VMS_ERR_INVENTORY_NOT_FOUND, no machines, incomplete
// - YAML/JSON syntax or shape    -> VMS_ERR_INVENTORY_PARSE (line and column), no machines, incomplete
// - one malformed or duplicate entry -> VMS_ERR_INVENTORY_ENTRY at `machines[3] (id pg-9), line 42`;
//   that entry is skipped, the others are read, and the inventory is still incomplete, so that a
//   machine whose entry breaks keeps its WorkloadEntry until the file is fixed.
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, visit } from 'yaml';
import { z } from 'zod';
import { INSTANCE_STATES, type Instance, type InstanceState, type Problem } from '../../services/model.ts';
import { ShardedMap } from '../../services/shards.ts';
import { CHECKPOINT_EVERY, runSliced, runSync, type Sliced } from '../../services/slices.ts';
import { JsonListSplitter } from '../../services/json-list.ts';
import { type JsonInventoryShape, jsonInventoryShape, parseJsonAsText } from './json-items.ts';

/** One machine of an inventory: an Instance without the parts the provider adds (provider, account, observedAt). */
export type InventoryMachine = Omit<Instance, 'provider' | 'account' | 'observedAt'>;

/** What an inventory file yields. */
export interface ParsedInventory {
  /** The valid machines, in file order; duplicates and malformed entries left out. */
  machines: InventoryMachine[];
  /** Why the file could not be read, and each entry that was left out. */
  problems: Problem[];
  /** True only when every entry of a readable file was used; anything less must not lead to deletes. */
  complete: boolean;
}

/** The keys a machine entry may have, in the order the docs list them. */
export const MACHINE_KEYS = ['id', 'name', 'region', 'zone', 'state', 'privateIPv4', 'publicIPv4', 'ipv6', 'network', 'subnet', 'tags'] as const;

// Names people reach for (from cloud APIs or the Instance model) and the key this format uses.
const KEY_ALIASES: Record<string, (typeof MACHINE_KEYS)[number]> = {
  instanceid: 'id',
  hostname: 'name',
  status: 'state',
  ip: 'privateIPv4',
  ipv4: 'privateIPv4',
  address: 'privateIPv4',
  privateip: 'privateIPv4',
  privateaddress: 'privateIPv4',
  publicip: 'publicIPv4',
  publicaddress: 'publicIPv4',
  ipv6address: 'ipv6',
  networkid: 'network',
  vpc: 'network',
  vpcid: 'network',
  vnet: 'network',
  subnetid: 'subnet',
  labels: 'tags',
  availabilityzone: 'zone',
};

function describeValue(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return JSON.stringify(value);
}

const text = (what: string) => z.string({ error: (iss) => `must be ${what}, not ${describeValue(iss.input)}` });
const optionalText = text('text')
  .nullish()
  .transform((v) => v ?? '');

function addressList(family: 4 | 6) {
  const name = family === 4 ? 'IPv4' : 'IPv6';
  const key = family === 4 ? 'privateIPv4 or publicIPv4' : 'ipv6';
  return z
    .union([z.string(), z.array(z.unknown())], {
      error: (iss) => `must be an ${name} address or a list of them, not ${describeValue(iss.input)}`,
    })
    .nullish()
    .transform((v) => (v == null ? [] : typeof v === 'string' ? [v] : v))
    .pipe(
      z.array(
        text(`an ${name} address`).refine((ip) => isIP(ip) === family, {
          error: (iss) => {
            const ip = String(iss.input);
            const other = isIP(ip);
            if (other !== 0) return `"${ip}" is an IPv${other} address; ${other === 6 ? 'list it under ipv6' : 'list it under privateIPv4 or publicIPv4'}`;
            return `"${ip}" is not an ${name} address (write ${family === 4 ? 'four numbers 0-255 such as 10.0.1.10' : 'a form such as 2001:db8::10'}; only ${name} belongs under ${key})`;
          },
        }),
      ),
    )
    .transform((list) => [...new Set(list)]);
}

/** One machine entry as written in the file (after every scalar became text); strict: unknown keys are errors. */
export const machineSchema = z
  .strictObject(
    {
      id: z
        .string({
          error: (iss) =>
            iss.input === undefined || iss.input === null
              ? 'missing; every machine needs an id, unique in the file'
              : `must be text, not ${describeValue(iss.input)}`,
        })
        .min(1, 'must not be empty')
        .max(255, 'must be at most 255 characters')
        .regex(/^\S*$/, 'must not contain spaces'),
      name: optionalText,
      region: optionalText,
      zone: optionalText,
      state: z
        .enum(INSTANCE_STATES, {
          error: (iss) => `must be one of ${INSTANCE_STATES.join(', ')}, not ${describeValue(iss.input)}`,
        })
        .nullish()
        .transform((v): InstanceState => v ?? 'running'),
      privateIPv4: addressList(4),
      publicIPv4: addressList(4),
      ipv6: addressList(6),
      network: optionalText,
      subnet: optionalText,
      tags: z
        .record(
          z.string().min(1),
          text('text')
            .nullable()
            .transform((v) => v ?? ''),
          { error: (iss) => `must be a mapping of tag keys to values, not ${describeValue(iss.input)}` },
        )
        .nullish()
        .transform((v) => v ?? {}),
    },
    { error: (iss) => (iss.code === 'invalid_type' ? `must be a mapping with at least an id, not ${describeValue(iss.input)}` : undefined) },
  )
  .transform((m): InventoryMachine => {
    const machine: InventoryMachine = {
      id: m.id,
      name: m.name || m.id,
      region: m.region,
      zone: m.zone,
      state: m.state,
      privateIPv4s: m.privateIPv4,
      publicIPv4s: m.publicIPv4,
      ipv6s: m.ipv6,
      tags: m.tags,
    };
    if (m.network) machine.networkId = m.network;
    if (m.subnet) machine.subnetId = m.subnet;
    return machine;
  });

const MACHINE_KEY_SET: ReadonlySet<string> = new Set(MACHINE_KEYS);
const STATE_SET: ReadonlySet<string> = new Set(INSTANCE_STATES);
const NO_SPACE = /^\S*$/;

/**
 * machineSchema for an entry that is plainly valid, without zod's machinery (which costs most of
 * the time of reading a large inventory): the same machine, or undefined whenever the entry is
 * anything but the plain case (a wrong type, an unknown or `__proto__` key, a bad address), which
 * machineSchema then reads and explains. Only what machineSchema accepts is ever taken here.
 */
export function plainMachine(entry: unknown): InventoryMachine | undefined {
  if (!isPlainRecord(entry)) return undefined;
  for (const key in entry) if (!MACHINE_KEY_SET.has(key)) return undefined;
  const { id, state } = entry;
  if (typeof id !== 'string' || id.length === 0 || id.length > 255 || !NO_SPACE.test(id)) return undefined;
  if (state != null && (typeof state !== 'string' || !STATE_SET.has(state))) return undefined;
  const name = plainText(entry.name);
  const region = plainText(entry.region);
  const zone = plainText(entry.zone);
  const network = plainText(entry.network);
  const subnet = plainText(entry.subnet);
  const privateIPv4s = plainAddresses(entry.privateIPv4, 4);
  const publicIPv4s = plainAddresses(entry.publicIPv4, 4);
  const ipv6s = plainAddresses(entry.ipv6, 6);
  const tags = plainTags(entry.tags);
  if (name === undefined || region === undefined || zone === undefined || network === undefined || subnet === undefined) return undefined;
  if (privateIPv4s === undefined || publicIPv4s === undefined || ipv6s === undefined || tags === undefined) return undefined;
  const machine: InventoryMachine = { id, name: name || id, region, zone, state: (state ?? 'running') as InstanceState, privateIPv4s, publicIPv4s, ipv6s, tags };
  if (network) machine.networkId = network;
  if (subnet) machine.subnetId = subnet;
  return machine;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype && !Object.hasOwn(value, '__proto__');
}

/** optionalText: text, or '' for null and absent; undefined for anything else. */
function plainText(value: unknown): string | undefined {
  if (value == null) return '';
  return typeof value === 'string' ? value : undefined;
}

/** addressList: one address or a list of them, all of the family, without repeats; undefined for anything else. */
function plainAddresses(value: unknown, family: 4 | 6): string[] | undefined {
  if (value == null) return [];
  if (typeof value === 'string') return isIP(value) === family ? [value] : undefined;
  if (!Array.isArray(value)) return undefined;
  for (const ip of value) if (typeof ip !== 'string' || isIP(ip) !== family) return undefined;
  return [...new Set(value as string[])];
}

/** The tags: a mapping of non-empty keys to text (null is ''), as a new object; undefined for anything else. */
function plainTags(value: unknown): Record<string, string> | undefined {
  if (value == null) return {};
  if (!isPlainRecord(value)) return undefined;
  const out: Record<string, string> = {};
  for (const key in value) {
    const v = value[key];
    if (key === '' || (v !== null && typeof v !== 'string')) return undefined;
    out[key] = v ?? '';
  }
  return out;
}

/** Reads and parses an inventory file; a missing or unreadable file is a problem, not a throw (an abort still rejects). */
export async function readInventory(file: string, signal?: AbortSignal): Promise<ParsedInventory> {
  let content: string;
  try {
    content = await readFile(file, { encoding: 'utf8', signal });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a folder, not a file' : `cannot be read (${code})`;
    return unreadable({
      code: 'VMS_ERR_INVENTORY_NOT_FOUND',
      message: `inventory file ${file} ${why}; check the inventory path of the static provider block (a relative path is resolved against the config file's folder)`,
      at: file,
    });
  }
  return runSliced(inventorySlices(content, file));
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** How many machines a JSON inventory read as it streams passes on at a time. */
export const INVENTORY_PAGE = 500;

/** The end of an inventory read page by page: as ParsedInventory, its machines passed on; `failed`: drop them. */
export interface InventoryPages {
  problems: Problem[];
  complete: boolean;
  failed: boolean;
}

/**
 * Reads a JSON inventory as its bytes arrive and passes its machines on a page at a time, so that
 * neither the file's text (tens of megabytes for 100,000 machines, which V8 keeps in its
 * large-object space) nor all its machines are held at once. Gives the same machines and problems
 * as readInventory, with two differences in what it says: a duplicate id names the machine it
 * repeats without that machine's line, and a file that turns out not to be JSON after its first
 * page fails (see below).
 *
 * Undefined when nothing was passed on and the file must be read whole, where readInventory decides
 * and says what is wrong: a file that does not start as JSON (YAML), cannot be opened, or breaks
 * before its first page. A file that breaks later (a machine that is not JSON, a top-level key
 * twice) ends `failed`, so that the pages passed on are dropped, with readInventory's problems: a
 * syntax error's line and column, or, when the YAML reader reads what the JSON parser did not,
 * that the file mixes the two. A file that cannot be read to its end fails too
 * (VMS_ERR_INVENTORY_NOT_FOUND). An abort rejects with its reason, and so does whatever `onPage`
 * throws: neither is the file's.
 */
export async function readInventoryPages(
  file: string,
  signal: AbortSignal | undefined,
  onPage: (machines: InventoryMachine[]) => Promise<void>,
  { pageSize = INVENTORY_PAGE, chunkSize = 1 << 16 }: { pageSize?: number; chunkSize?: number } = {},
): Promise<InventoryPages | undefined> {
  const problems: Problem[] = [];
  let page: InventoryMachine[] = [];
  let passedOn = false;
  /** A page is being handed on: an error now is not the file's. */
  let handingOn = false;
  let splitter: JsonListSplitter | undefined;
  let base: 'machines' | '' = '';
  let broken: string | undefined;
  let index = 0;
  let itemLine = 0;
  /** Checks each machine as it comes; only the current machine's line is known (see machineChecker). */
  let check: ReturnType<typeof machineChecker> | undefined;
  const onItem = (text: string, line: number): void => {
    if (broken !== undefined) return;
    let entry: unknown;
    try {
      entry = parseJsonAsText(text);
    } catch (err) {
      broken = `machine ${base}[${index}] (line ${line}) is not JSON: ${(err as Error).message}`;
      return;
    }
    itemLine = line;
    check!.add(entry, index);
    index++;
  };
  /** The file's first bytes, kept until they say whether it is JSON (after a byte-order mark and whitespace). */
  let head: Buffer | undefined = Buffer.alloc(0);
  const begin = (bare: boolean): JsonListSplitter => {
    base = bare ? '' : 'machines';
    check = machineChecker(file, base, problems, (i) => (i === index ? itemLine : undefined), (machine) => page.push(machine));
    return new JsonListSplitter(onItem, bare ? { bareList: true } : { key: 'machines' });
  };
  try {
    for await (const read of createReadStream(file, { signal, highWaterMark: chunkSize })) {
      let chunk = read as Buffer;
      if (head !== undefined) {
        head = Buffer.concat([head, chunk]);
        const start = jsonStart(head, false);
        if (start === undefined) continue;
        if (start === null) return undefined;
        splitter = begin(start.bare);
        chunk = head.subarray(start.from);
        head = undefined;
      }
      splitter!.write(chunk);
      if (broken !== undefined) break;
      if (page.length >= pageSize) {
        const full = page;
        page = [];
        passedOn = true;
        handingOn = true;
        await onPage(full);
        handingOn = false;
      }
    }
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    // What the pages were handed to failed, not the file.
    if (handingOn) throw err;
    if (!passedOn) return undefined;
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return {
      problems: [{ code: 'VMS_ERR_INVENTORY_NOT_FOUND', message: `inventory file ${file} could not be read to its end (${why}); none of its machines are used until it can`, at: file }],
      complete: false,
      failed: true,
    };
  }
  if (head !== undefined && head.length > 0) {
    // A file shorter than a byte-order mark, or only whitespace so far.
    const start = jsonStart(head, true);
    if (!start) return undefined;
    splitter = begin(start.bare);
    splitter.write(head.subarray(start.from));
  }
  if (splitter === undefined) return undefined;
  if (broken === undefined) broken = restProblems(file, splitter, problems);
  if (broken !== undefined) {
    if (!passedOn) return undefined;
    // Not JSON after all: the whole-file reader says where, or reads it as YAML.
    const whole = await readInventory(file, signal);
    if (whole.machines.length === 0) return { problems: whole.problems, complete: false, failed: true };
    return {
      problems: [
        {
          code: 'VMS_ERR_INVENTORY_PARSE',
          message: `${file} starts as JSON but is not JSON further on (${broken}); it reads as YAML, but a file that starts as JSON is read as JSON: write it all as JSON or all as YAML (no machine of this inventory is read until then)`,
          at: file,
        },
      ],
      complete: false,
      failed: true,
    };
  }
  if (signal?.aborted) throw signal.reason;
  if (page.length > 0 || !passedOn) await onPage(page);
  return { problems, complete: problems.length === 0, failed: false };
}

/**
 * Where the JSON of a file's first bytes starts (after a byte-order mark) and whether it is a bare
 * list; undefined when more bytes are needed to tell (`whole`: there are no more), null when it is
 * not JSON.
 */
function jsonStart(bytes: Buffer, whole: boolean): { from: number; bare: boolean } | null | undefined {
  if (!whole && bytes.length < 3 && BOM.subarray(0, bytes.length).equals(bytes)) return undefined;
  const from = bytes.subarray(0, 3).equals(BOM) ? 3 : 0;
  let at = from;
  while (at < bytes.length && (bytes[at] === 0x20 || bytes[at] === 0x0a || bytes[at] === 0x0d || bytes[at] === 0x09)) at++;
  if (at === bytes.length) return whole ? null : undefined;
  if (bytes[at] === 0x7b) return { from, bare: false };
  return bytes[at] === 0x5b ? { from, bare: true } : null;
}

/**
 * Checks what is left of a streamed JSON inventory once its machines are taken out, as the
 * whole-file reader checks the file (jsonInventoryShape: the values of other top-level keys are
 * skipped, not parsed), with a problem for each unknown top-level key, put before the machines'
 * problems where that reader puts them. Why it is not an inventory, or undefined.
 */
function restProblems(file: string, splitter: JsonListSplitter, problems: Problem[]): string | undefined {
  let rest: string;
  try {
    rest = splitter.end();
  } catch (err) {
    return (err as Error).message;
  }
  if (runSync(jsonInventoryShape(rest)) === undefined) return 'the file around its machines is not an inventory in JSON';
  problems.unshift(
    ...splitter.keys
      .filter((k) => k.key !== 'machines')
      .map(({ key, line }) => ({
        code: 'VMS_ERR_INVENTORY_PARSE' as const,
        message: `${file}: unknown top-level key "${key}" (${suggest(key, ['machines']) || 'an inventory has only `machines:`'})`,
        at: `line ${line}`,
      })),
  );
  return undefined;
}

/** Parses inventory text (YAML or JSON); pure, so that every rule of the format is testable without files. */
export function parseInventory(content: string, file = 'inventory'): ParsedInventory {
  return runSync(inventorySlices(content, file));
}

/**
 * parseInventory as sliced work (services/slices.ts). A JSON inventory is read machine by machine
 * with the JSON parser; anything else, or JSON with a syntax error, is read as YAML, which says
 * where the file is wrong.
 */
export function* inventorySlices(content: string, file = 'inventory'): Sliced<ParsedInventory> {
  // A byte-order mark is dropped by its code, not a regular expression: on the text of a large file,
  // read as an external string, a replace copies the whole text first (tens of milliseconds).
  const text = content.charCodeAt(0) === 0xfeff ? content.slice(1) : content;
  const shape = yield* jsonInventoryShape(text);
  if (shape) {
    const read = yield* readJsonMachines(text, shape, file);
    if (read) return read;
  }
  return yield* readYamlMachines(text, file);
}

/** The machines of a JSON inventory; undefined when an item is not valid JSON (the YAML reader then tells where). */
function* readJsonMachines(text: string, shape: JsonInventoryShape, file: string): Sliced<ParsedInventory | undefined> {
  const lines = lineFinder(text);
  const problems: Problem[] = shape.otherKeys.map(({ key, offset }) => ({
    code: 'VMS_ERR_INVENTORY_PARSE',
    message: `${file}: unknown top-level key "${key}" (${suggest(key, ['machines']) || 'an inventory has only `machines:`'})`,
    at: `line ${lines(offset)}`,
  }));
  const checker = machineChecker(file, shape.base, problems, (i) => lines(shape.items[2 * i]!));
  for (let i = 0; 2 * i < shape.items.length; i++) {
    let entry: unknown;
    try {
      entry = parseJsonAsText(text.slice(shape.items[2 * i], shape.items[2 * i + 1]));
    } catch {
      return undefined;
    }
    checker.add(entry, i);
    if (i % CHECKPOINT_EVERY === 0) yield;
  }
  return checker.result();
}

/** The line of an offset of `text`; counts forward from the last offset asked, since asks come mostly in order. */
function lineFinder(text: string): (offset: number) => number {
  let at = 0;
  let line = 1;
  return (offset) => {
    if (offset < at) {
      at = 0;
      line = 1;
    }
    for (; at < offset; at++) if (text.charCodeAt(at) === 0x0a) line++;
    return line;
  };
}

/**
 * Checks machine entries one by one: malformed and duplicate entries become problems with their
 * position, which is worked out only for them (`lineOf`, from the entry's index), so a valid
 * machine keeps nothing of where it was.
 */
function machineChecker(
  file: string,
  base: string,
  problems: Problem[],
  lineOf: (i: number) => number | undefined,
  keep?: (machine: InventoryMachine) => void,
) {
  const machines: InventoryMachine[] = [];
  /** The index of the first machine with each id. */
  const seen = new ShardedMap<number>();
  const where = (i: number): string => {
    const line = lineOf(i);
    return `${base}[${i}]${line ? ` (line ${line})` : ''}`;
  };
  return {
    add(entry: unknown, i: number): void {
      const at = (): string => {
        const rawId = entry && typeof entry === 'object' && !Array.isArray(entry) ? (entry as Record<string, unknown>).id : undefined;
        const line = lineOf(i);
        return `${base}[${i}]${typeof rawId === 'string' && rawId !== '' ? ` (id ${rawId})` : ''}${line ? `, line ${line}` : ''}`;
      };
      const plain = plainMachine(entry);
      const parsed = plain ? ({ success: true, data: plain } as const) : machineSchema.safeParse(entry);
      if (!parsed.success) {
        const what = parsed.error.issues.map(formatIssue).join('; ');
        problems.push({ code: 'VMS_ERR_INVENTORY_ENTRY', message: `${file}: machine skipped: ${what}`, at: at() });
        return;
      }
      const withId = seen.mapFor(parsed.data.id);
      const first = withId.get(parsed.data.id);
      if (first !== undefined) {
        problems.push({
          code: 'VMS_ERR_INVENTORY_ENTRY',
          message: `${file}: machine skipped: id "${parsed.data.id}" is already used by ${where(first)}; ids must be unique, so rename or remove one of them`,
          at: at(),
        });
        return;
      }
      withId.set(parsed.data.id, i);
      if (keep) keep(parsed.data);
      else machines.push(parsed.data);
    },
    result(): ParsedInventory {
      return { machines, problems, complete: problems.length === 0 };
    },
  };
}

/** The machines of a YAML (or JSON the JSON reader gave up on) inventory. */
function* readYamlMachines(text: string, file: string): Sliced<ParsedInventory> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const pos = syntax.linePos?.[0];
    const what =
      syntax.code === 'MULTIPLE_DOCS'
        ? 'the file holds more than one YAML document (a second `---`); an inventory is one document'
        : syntax.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    return unreadable({
      code: 'VMS_ERR_INVENTORY_PARSE',
      message: `${file}${pos ? `:${pos.line}:${pos.col}` : ''}: ${what}; fix the syntax there (no machine of this inventory is read until then)`,
      ...(pos ? { at: `line ${pos.line}, column ${pos.col}` } : {}),
    });
  }

  // Every scalar becomes text as written, so `1.10` stays "1.10" and `0x1F` stays "0x1F".
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'number' || typeof node.value === 'boolean' || typeof node.value === 'bigint') {
        node.value = node.source ?? String(node.value);
      }
    },
  });
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    return unreadable({ code: 'VMS_ERR_INVENTORY_PARSE', message: `${file}: ${(err as Error).message}; fix the aliases (*name) of the inventory` });
  }

  const lineOf = (node: unknown): number | undefined => {
    const range = (node as Node | null | undefined)?.range;
    return range ? lines.linePos(range[0]).line : undefined;
  };

  const problems: Problem[] = [];
  let entries: unknown[];
  let items: unknown[];
  let base: string;
  if (value === null || value === undefined) {
    return unreadable({
      code: 'VMS_ERR_INVENTORY_PARSE',
      message: `${file} is empty; list the machines under \`machines:\`, or write \`machines: []\` for an inventory with no machines`,
    });
  } else if (Array.isArray(value) && isSeq(doc.contents)) {
    entries = value;
    items = doc.contents.items;
    base = '';
  } else if (typeof value === 'object' && !Array.isArray(value) && isMap(doc.contents)) {
    const top = value as Record<string, unknown>;
    for (const key of Object.keys(top)) {
      if (key === 'machines') continue;
      const pair = doc.contents.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
      const line = lineOf(pair?.key);
      problems.push({
        code: 'VMS_ERR_INVENTORY_PARSE',
        message: `${file}: unknown top-level key "${key}" (${suggest(key, ['machines']) || 'an inventory has only `machines:`'})`,
        ...(line ? { at: `line ${line}` } : {}),
      });
    }
    const list = top.machines;
    const node = doc.contents.get('machines', true);
    if (list === undefined || list === null) {
      return unreadable(...problems, {
        code: 'VMS_ERR_INVENTORY_PARSE',
        message: `${file} has no machines: list them under \`machines:\`, or write \`machines: []\` for an inventory with no machines`,
        ...(lineOf(node) ? { at: `line ${lineOf(node)}` } : {}),
      });
    }
    if (!Array.isArray(list) || !(isSeq(node) || isAlias(node))) {
      return unreadable(...problems, {
        code: 'VMS_ERR_INVENTORY_PARSE',
        message: `${file}: \`machines\` must be a list of machines (each item starting with \`- id: ...\`), not ${describeValue(list)}`,
        ...(lineOf(node) ? { at: `line ${lineOf(node)}` } : {}),
      });
    }
    entries = list;
    const resolved = isAlias(node) ? node.resolve(doc) : node;
    items = isSeq(resolved) ? resolved.items : [];
    base = 'machines';
  } else {
    return unreadable({
      code: 'VMS_ERR_INVENTORY_PARSE',
      message: `${file}: the top level must be \`machines:\` with a list of machines (or a bare list), not ${describeValue(value)}`,
    });
  }

  const checker = machineChecker(file, base, problems, (i) => lineOf(items[i]));
  for (const [i, entry] of entries.entries()) {
    checker.add(entry, i);
    if (i % CHECKPOINT_EVERY === 0) yield;
  }
  return checker.result();
}

function unreadable(...problems: Problem[]): ParsedInventory {
  return { machines: [], problems, complete: false };
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map((k) => `${where ? `${where}: ` : ''}unknown key "${k}" (${suggest(k, MACHINE_KEYS) || `known keys: ${MACHINE_KEYS.join(', ')}`})`)
      .join('; ');
  }
  if (issue.code === 'invalid_key') return `${where}: tag keys must not be empty`;
  return where ? `${where}: ${issue.message}` : issue.message;
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path
    .map((k, i) => {
      if (typeof k === 'number') return `[${k}]`;
      const key = String(k);
      if (!/^[A-Za-z0-9_-]+$/.test(key)) return `[${JSON.stringify(key)}]`;
      return i === 0 ? key : `.${key}`;
    })
    .join('');
}

// The key that was probably meant: same letters without case, punctuation or a plural `s`, or a known alias.
function suggest(key: string, known: readonly string[]): string {
  const flat = (k: string) => k.toLowerCase().replace(/[^a-z0-9]/g, '');
  const norm = (k: string) => flat(k).replace(/s$/, '');
  const forms = [flat(key), norm(key), flat(key).replace(/es$/, '')];
  const alias = known === MACHINE_KEYS ? forms.map((f) => KEY_ALIASES[f]).find((k) => k !== undefined) : undefined;
  const match = known.find((k) => norm(k) === norm(key)) ?? alias;
  return match && match !== key ? `did you mean "${match}"?` : '';
}
