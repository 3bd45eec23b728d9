// Server-side apply as structured-merge-diff does it, reduced to what JSON objects with a CRD schema
// need: field sets per manager (kept in metadata.managedFields, FieldsV1), conflicts with other
// managers, and removal of fields a manager stops applying when nobody else owns them.
import { isRecord } from './metadata.ts';
import { deepEqualJson, type SchemaNode } from './schema.ts';

/** A set of field paths; a path is its segments joined by NUL. */
export type FieldSet = Set<string>;

const SEP = '\u0000';
/** Marks a path segment that is not a plain field name (`k:`, `v:`, `i:` keys read from FieldsV1). */
const RAW = '\u0001';

/** One entry of metadata.managedFields, with its field set decoded. */
export interface ManagedEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  set: FieldSet;
  subresource?: string;
}

/** A field another manager owns with a different value than the applied configuration. */
export interface FieldConflict {
  manager: string;
  /** `.spec.address`, as the real server prints it. */
  field: string;
}

type Obj = Record<string, unknown>;

/** Which keys of an object are struct fields (not members of the set) and which are map elements. */
function childOf(node: SchemaNode | undefined, key: string): { node: SchemaNode | undefined; element: boolean } {
  if (!node) return { node: undefined, element: false };
  const p = node.properties?.get(key);
  if (p) return { node: p, element: false };
  if (typeof node.additional === 'object') return { node: node.additional, element: true };
  // Unknown fields kept by x-kubernetes-preserve-unknown-fields are deduced as a granular map.
  return { node: undefined, element: node.preserveUnknown || node.additional === true };
}

function walk(v: unknown, path: string[], node: SchemaNode | undefined, element: boolean, out: FieldSet): void {
  if (element) out.add(path.join(SEP));
  if (v === null || v === undefined) {
    out.add(path.join(SEP));
    return;
  }
  if (isRecord(v)) {
    const keys = Object.keys(v);
    if (keys.length === 0) {
      out.add(path.join(SEP));
      return;
    }
    for (const k of keys) {
      const c = childOf(node, k);
      walk(v[k], [...path, k], c.node, c.element, out);
    }
    return;
  }
  out.add(path.join(SEP));
}

/**
 * The fields an object sets. Struct fields are not members themselves (only their leaves are), map
 * elements are; lists are atomic. apiVersion, kind and system metadata are not tracked, nor status
 * when the resource has a status subresource.
 */
export function fieldSetOf(obj: Obj, root: SchemaNode | undefined, skipStatus: boolean): FieldSet {
  const out: FieldSet = new Set();
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'apiVersion' || k === 'kind') continue;
    if (k === 'status' && skipStatus) continue;
    if (k === 'metadata') {
      if (!isRecord(v)) continue;
      for (const m of ['labels', 'annotations'] as const) {
        const map = v[m];
        // An empty map is omitted from ObjectMeta, so it owns nothing.
        if (!isRecord(map)) continue;
        for (const key of Object.keys(map)) out.add(['metadata', m, key].join(SEP));
      }
      for (const m of ['finalizers', 'ownerReferences'] as const) {
        if (Array.isArray(v[m])) out.add(['metadata', m].join(SEP));
      }
      continue;
    }
    const c = childOf(root, k);
    walk(v, [k], c.node, c.element, out);
  }
  return out;
}

function segments(path: string): string[] {
  return path.split(SEP);
}

/** The value at a path, or undefined. */
export function getAt(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const s of segments(path)) {
    if (!isRecord(cur)) return undefined;
    cur = cur[s];
  }
  return cur;
}

/** Deletes the value at a path; parents left empty go too, as structured-merge-diff leaves them null and the server prunes nulls. */
export function deleteAt(obj: Obj, path: string): void {
  const segs = segments(path);
  const chain: Obj[] = [obj];
  let cur: Obj = obj;
  for (let i = 0; i < segs.length - 1; i++) {
    const next = cur[segs[i]!];
    if (!isRecord(next)) return;
    chain.push(next);
    cur = next;
  }
  delete cur[segs[segs.length - 1]!];
  for (let i = chain.length - 1; i > 0; i--) {
    const o = chain[i]!;
    // metadata itself always stays.
    if (Object.keys(o).length > 0 || (i === 1 && segs[0] === 'metadata')) break;
    delete chain[i - 1]![segs[i - 1]!];
  }
}

/** Merges an applied configuration into an object: maps merge key by key, everything else is replaced. */
export function mergeInto(target: Obj, config: Obj): void {
  for (const [k, v] of Object.entries(config)) {
    if (v === null) {
      delete target[k];
    } else if (isRecord(v) && isRecord(target[k])) {
      mergeInto(target[k] as Obj, v);
    } else {
      target[k] = structuredClone(v);
    }
  }
}

/** `.spec.ports.http`, the way the real server names a conflicting field. */
export function pathString(path: string): string {
  return segments(path)
    .map((s) => (s.startsWith(RAW) ? s.slice(1) : `.${s}`))
    .join('');
}

interface Trie {
  member: boolean;
  children: Map<string, Trie>;
}

/** FieldsV1 JSON for a field set: `{"f:spec":{"f:address":{}}}`, with `.` where a member has children. */
export function encodeFieldsV1(set: FieldSet): Obj {
  const root: Trie = { member: false, children: new Map() };
  for (const p of set) {
    let t = root;
    for (const s of segments(p)) {
      let c = t.children.get(s);
      if (!c) {
        c = { member: false, children: new Map() };
        t.children.set(s, c);
      }
      t = c;
    }
    t.member = true;
  }
  const render = (t: Trie): Obj => {
    const o: Obj = {};
    if (t.member && t.children.size > 0) o['.'] = {};
    for (const s of [...t.children.keys()].sort()) {
      o[s.startsWith(RAW) ? s.slice(1) : `f:${s}`] = render(t.children.get(s)!);
    }
    return o;
  };
  return render(root);
}

/** The field set of a FieldsV1 object. */
export function decodeFieldsV1(fields: unknown): FieldSet {
  const out: FieldSet = new Set();
  const visit = (o: unknown, path: string[]) => {
    if (!isRecord(o)) return;
    const keys = Object.keys(o);
    if (keys.length === 0 && path.length > 0) out.add(path.join(SEP));
    for (const k of keys) {
      if (k === '.') {
        if (path.length > 0) out.add(path.join(SEP));
        continue;
      }
      const seg = k.startsWith('f:') ? k.slice(2) : RAW + k;
      visit(o[k], [...path, seg]);
    }
  };
  visit(fields, []);
  return out;
}

/** Decodes metadata.managedFields; malformed entries are dropped. */
export function decodeManaged(managedFields: unknown): ManagedEntry[] {
  if (!Array.isArray(managedFields)) return [];
  const out: ManagedEntry[] = [];
  for (const m of managedFields) {
    if (!isRecord(m) || typeof m.manager !== 'string') continue;
    const e: ManagedEntry = {
      manager: m.manager,
      operation: m.operation === 'Apply' ? 'Apply' : 'Update',
      apiVersion: typeof m.apiVersion === 'string' ? m.apiVersion : '',
      time: typeof m.time === 'string' ? m.time : '',
      set: decodeFieldsV1(m.fieldsV1),
    };
    if (typeof m.subresource === 'string') e.subresource = m.subresource;
    out.push(e);
  }
  return out;
}

/** metadata.managedFields in the API's form. */
export function encodeManaged(entries: ManagedEntry[]): Obj[] {
  return entries.map((e) => {
    const o: Obj = {
      apiVersion: e.apiVersion,
      fieldsType: 'FieldsV1',
      fieldsV1: encodeFieldsV1(e.set),
      manager: e.manager,
      operation: e.operation,
    };
    if (e.subresource) o.subresource = e.subresource;
    o.time = e.time;
    return o;
  });
}

function minus(a: FieldSet, b: Iterable<string>): FieldSet {
  const out = new Set(a);
  for (const p of b) out.delete(p);
  return out;
}

function sameSet(a: FieldSet, b: FieldSet): boolean {
  if (a.size !== b.size) return false;
  for (const p of a) if (!b.has(p)) return false;
  return true;
}

/** What an apply produced: the merged object and new managed entries, or the conflicts that stopped it. */
export type ApplyOutcome = { ok: true; obj: Obj; entries: ManagedEntry[] } | { ok: false; conflicts: FieldConflict[] };

/**
 * Applies `config` for `manager` onto `live`. Without `force`, fields another manager owns with a
 * different value are conflicts; with it they change hands. Fields this manager applied before and
 * omits now are removed unless another manager owns them.
 */
export function serverSideApply(args: {
  live: Obj;
  liveEntries: ManagedEntry[];
  config: Obj;
  manager: string;
  force: boolean;
  apiVersion: string;
  schema: SchemaNode | undefined;
  skipStatus: boolean;
  now: string;
}): ApplyOutcome {
  const { live, config, manager, force, apiVersion, schema, skipStatus, now } = args;
  let entries: ManagedEntry[] = args.liveEntries.map((e) => ({ ...e, set: new Set(e.set) }));
  if (entries.length === 0) {
    // An object nobody applied yet: what is there belongs to "before-first-apply".
    const existing = fieldSetOf(live, schema, skipStatus);
    if (existing.size > 0) entries.push({ manager: 'before-first-apply', operation: 'Update', apiVersion, time: now, set: existing });
  }
  const cfgSet = fieldSetOf(config, schema, skipStatus);
  const conflicts: FieldConflict[] = [];
  const conflicting = new Set<string>();
  for (const e of entries) {
    if (e.manager === manager) continue;
    for (const p of cfgSet) {
      if (e.set.has(p) && !deepEqualJson(getAt(live, p), getAt(config, p))) {
        conflicts.push({ manager: e.manager, field: pathString(p) });
        conflicting.add(p);
      }
    }
  }
  if (conflicts.length > 0 && !force) return { ok: false, conflicts };
  if (conflicting.size > 0) {
    for (const e of entries) if (e.manager !== manager) e.set = minus(e.set, conflicting);
  }
  const mine = entries.find((e) => e.manager === manager && e.operation === 'Apply');
  const ownedByOthers = new Set<string>();
  for (const e of entries) if (e !== mine) for (const p of e.set) ownedByOthers.add(p);
  const removed: string[] = [];
  for (const p of mine?.set ?? []) if (!cfgSet.has(p) && !ownedByOthers.has(p)) removed.push(p);

  const obj = structuredClone(live);
  for (const p of removed) deleteAt(obj, p);
  mergeInto(obj, config);

  if (mine) {
    if (!sameSet(mine.set, cfgSet)) {
      mine.set = cfgSet;
      mine.time = now;
    }
    mine.apiVersion = apiVersion;
  } else {
    entries.push({ manager, operation: 'Apply', apiVersion, time: now, set: cfgSet });
  }
  entries = entries.filter((e) => e.set.size > 0);
  return { ok: true, obj, entries };
}

/**
 * Ownership after a non-apply write (create, update, patch) by `manager`: it takes every field it
 * changed or added, other managers lose those, and fields the write removed leave every set.
 */
export function trackUpdate(args: {
  live: Obj | undefined;
  liveEntries: ManagedEntry[];
  next: Obj;
  manager: string;
  apiVersion: string;
  schema: SchemaNode | undefined;
  skipStatus: boolean;
  now: string;
}): ManagedEntry[] {
  const { live, next, manager, apiVersion, schema, skipStatus, now } = args;
  const newSet = fieldSetOf(next, schema, skipStatus);
  const oldSet = live ? fieldSetOf(live, schema, skipStatus) : new Set<string>();
  const changed: string[] = [];
  for (const p of newSet) if (!oldSet.has(p) || !deepEqualJson(getAt(live, p), getAt(next, p))) changed.push(p);
  const removed: string[] = [];
  for (const p of oldSet) if (!newSet.has(p)) removed.push(p);
  if (changed.length === 0 && removed.length === 0) return args.liveEntries;
  let entries = args.liveEntries.map((e) => {
    const isMine = e.manager === manager && e.operation === 'Update';
    const set = minus(e.set, isMine ? removed : [...removed, ...changed]);
    return sameSet(set, e.set) ? e : { ...e, set };
  });
  if (changed.length > 0) {
    const mine = entries.find((e) => e.manager === manager && e.operation === 'Update');
    if (mine) {
      const set = new Set(mine.set);
      for (const p of changed) set.add(p);
      entries = entries.map((e) => (e === mine ? { ...e, set, time: now, apiVersion } : e));
    } else {
      entries.push({ manager, operation: 'Update', apiVersion, time: now, set: new Set(changed) });
    }
  }
  return entries.filter((e) => e.set.size > 0);
}
