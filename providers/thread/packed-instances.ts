// A chunk of a listing as it crosses from a provider thread to the main thread: each distinct
// string once, in a table, and every instance as indexes into it, in one Uint32Array. A thousand
// EC2 instances repeat their account, region, zones, state, network, tag keys and most tag values
// in every instance; cloned as objects, each copy is a string of its own that the main thread
// makes while its event loop waits (about 4 ms a chunk of 1000 here, against 0.5-0.9 ms packed),
// and the instances made here share their strings. What mapping reads comes back as a structured
// clone gives it: every field's value, the tags in their order; the fields' own order is fixed.
import type { Instance, InstanceState, ProviderKind } from '../../services/model.ts';

/** A chunk of instances, packed (see above), or as they are when one has a shape packing does not know. */
export type PackedInstances = { count: number; strings: string[]; cells: Uint32Array } | { instances: Instance[] };

/** The string fields of an instance, in the order they are packed; the last two may be absent. */
const STRINGS = ['provider', 'account', 'region', 'zone', 'id', 'name', 'state', 'observedAt', 'networkId', 'subnetId'] as const;
const LISTS = ['privateIPv4s', 'publicIPv4s', 'ipv6s'] as const;
const KNOWN = new Set<string>([...STRINGS, ...LISTS, 'tags']);
/** The cell of an optional field that is absent. */
const ABSENT = 0xffffffff;

/**
 * Whether packing keeps everything of the instance: its own keys are an Instance's, each an own
 * property of its type (networkId and subnetId absent or a string), its lists without holes.
 */
function packable(instance: Instance): boolean {
  for (const key of Object.keys(instance)) if (!KNOWN.has(key)) return false;
  for (const field of STRINGS) {
    const own = Object.hasOwn(instance, field);
    if (own ? typeof instance[field] !== 'string' : field !== 'networkId' && field !== 'subnetId') return false;
    if (!own && field in instance) return false;
  }
  for (const field of LISTS) {
    const list: unknown = Object.hasOwn(instance, field) ? instance[field] : undefined;
    if (!Array.isArray(list) || Object.keys(list).length !== list.length) return false;
    for (let k = 0; k < list.length; k++) if (!Object.hasOwn(list, k) || typeof list[k] !== 'string') return false;
  }
  if (!Object.hasOwn(instance, 'tags')) return false;
  const tags: unknown = instance.tags;
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags) || Object.getPrototypeOf(tags) !== Object.prototype) return false;
  for (const value of Object.values(tags)) if (typeof value !== 'string') return false;
  return true;
}

/** Packs a chunk of a listing; a chunk with an instance packing would change goes as it is. */
export function packInstances(instances: readonly Instance[]): PackedInstances {
  if (!instances.every(packable)) return { instances: [...instances] };
  const strings: string[] = [];
  const index = new Map<string, number>();
  const at = (s: string): number => {
    let i = index.get(s);
    if (i === undefined) {
      i = strings.length;
      strings.push(s);
      index.set(s, i);
    }
    return i;
  };
  const cells: number[] = [];
  for (const instance of instances) {
    for (const field of STRINGS) {
      const value = instance[field];
      cells.push(value === undefined ? ABSENT : at(value));
    }
    for (const field of LISTS) {
      const list = instance[field];
      cells.push(list.length);
      for (const s of list) cells.push(at(s));
    }
    const keys = Object.keys(instance.tags);
    cells.push(keys.length);
    for (const key of keys) cells.push(at(key), at(instance.tags[key]!));
  }
  return { count: instances.length, strings, cells: Uint32Array.from(cells) };
}

/** A chunk that does not read back whole: packInstances did not make it. */
export class PackedInstancesError extends Error {
  override name = 'PackedInstancesError';
}

/** The instances of a chunk packed by packInstances; throws PackedInstancesError for one it did not make. */
export function unpackInstances(packed: PackedInstances): Instance[] {
  if ('instances' in packed) return packed.instances;
  const { count, strings, cells } = packed;
  const out: Instance[] = [];
  let p = 0;
  const broken = (): never => {
    throw new PackedInstancesError(`a packed chunk of ${count} instances does not read back: cell ${p} of ${cells.length}, ${strings.length} strings`);
  };
  // Each cell read is checked: a chunk cut short or an index past the table would make fields undefined.
  const cell = (): number => (p < cells.length ? cells[p++]! : broken());
  const string = (): string => {
    const i = cell();
    return i < strings.length ? strings[i]! : broken();
  };
  const optional = (): string | undefined => {
    const i = cell();
    return i === ABSENT ? undefined : i < strings.length ? strings[i]! : broken();
  };
  const list = (): string[] => {
    const length = cell();
    const items: string[] = [];
    for (let k = 0; k < length; k++) items.push(string());
    return items;
  };
  for (let n = 0; n < count; n++) {
    const provider = string() as ProviderKind;
    const account = string();
    const region = string();
    const zone = string();
    const id = string();
    const name = string();
    const state = string() as InstanceState;
    const observedAt = string();
    const networkId = optional();
    const subnetId = optional();
    const privateIPv4s = list();
    const publicIPv4s = list();
    const ipv6s = list();
    const tags: Record<string, string> = {};
    const tagCount = cell();
    for (let k = 0; k < tagCount; k++) {
      const key = string();
      const value = string();
      // A key `__proto__` is the tag's own, as it was in the instance packed.
      if (key === '__proto__') Object.defineProperty(tags, key, { value, enumerable: true, writable: true, configurable: true });
      else tags[key] = value;
    }
    const instance: Instance = { provider, account, region, zone, id, name, state, privateIPv4s, publicIPv4s, ipv6s, tags, observedAt };
    if (networkId !== undefined) instance.networkId = networkId;
    if (subnetId !== undefined) instance.subnetId = subnetId;
    out.push(instance);
  }
  if (p !== cells.length) broken();
  return out;
}
