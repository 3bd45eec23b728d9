// Finds the machines of a JSON inventory without parsing the file as a whole: the top level is
// walked here, each machine's text is then parsed on its own with the JSON parser. A large
// inventory is so read machine by machine (a hundred thousand machines in a few hundred
// milliseconds of slices, with only the machines kept), where a YAML document of the same file
// would hold a node with its position for every value. Anything this walk does not recognise as
// plain JSON is left to the YAML reader, which says where the file is wrong.

import { CHECKPOINT_EVERY, type Sliced } from '../../services/slices.ts';

/** Where the machines are: the texts' offsets, in file order, and the top-level keys beside them. */
export interface JsonInventoryShape {
  /** `machines` for `{"machines": [...]}`, '' for a bare list. */
  base: 'machines' | '';
  /** Top-level keys other than `machines`, with their offsets. */
  otherKeys: Array<{ key: string; offset: number }>;
  /** Start and end offsets of each machine's text, one after the other: start of the first, its end, start of the second, … */
  items: number[];
}


/**
 * The shape of a JSON inventory (an object with a `machines` list, or a bare list); undefined
 * when the text is not that (YAML, a syntax error, `machines` not a list, a key twice at the top).
 * Only the structure is checked here; each item is checked by the JSON parser when it is read.
 * Sliced: it yields every few hundred machines.
 */
export function* jsonInventoryShape(text: string): Sliced<JsonInventoryShape | undefined> {
  let i = skipWs(text, 0);
  const first = text.charCodeAt(i);
  const otherKeys: JsonInventoryShape['otherKeys'] = [];
  const items: JsonInventoryShape['items'] = [];
  if (first === 0x5b /* [ */) {
    const end = yield* scanList(text, i, items);
    return end >= 0 && skipWs(text, end) === text.length ? { base: '', otherKeys, items } : undefined;
  }
  if (first !== 0x7b /* { */) return undefined;
  const seen = new Set<string>();
  i = skipWs(text, i + 1);
  for (;;) {
    if (text.charCodeAt(i) !== 0x22 /* " */) return undefined;
    const keyEnd = skipString(text, i);
    if (keyEnd < 0) return undefined;
    let key: string;
    try {
      key = JSON.parse(text.slice(i, keyEnd)) as string;
    } catch {
      return undefined;
    }
    if (seen.has(key)) return undefined;
    seen.add(key);
    const keyAt = i;
    i = skipWs(text, keyEnd);
    if (text.charCodeAt(i) !== 0x3a /* : */) return undefined;
    i = skipWs(text, i + 1);
    if (key === 'machines') {
      if (text.charCodeAt(i) !== 0x5b) return undefined;
      i = yield* scanList(text, i, items);
    } else {
      otherKeys.push({ key, offset: keyAt });
      i = skipValue(text, i);
    }
    if (i < 0) return undefined;
    i = skipWs(text, i);
    const c = text.charCodeAt(i);
    if (c === 0x2c /* , */) {
      i = skipWs(text, i + 1);
      continue;
    }
    if (c !== 0x7d /* } */ || !seen.has('machines') || skipWs(text, i + 1) !== text.length) return undefined;
    return { base: 'machines', otherKeys, items };
  }
}

/** Records the items of the list starting at `i` (a `[`); the offset after it, or -1 when it is not a list. */
function* scanList(text: string, i: number, items: number[]): Sliced<number> {
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) === 0x5d /* ] */) return i + 1;
  for (;;) {
    const itemEnd = skipValue(text, i);
    if (itemEnd < 0) return -1;
    items.push(i, itemEnd);
    if (items.length % (2 * CHECKPOINT_EVERY) === 0) yield;
    i = skipWs(text, itemEnd);
    const c = text.charCodeAt(i);
    if (c === 0x5d) return i + 1;
    if (c !== 0x2c) return -1;
    i = skipWs(text, i + 1);
  }
}

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipWs(text: string, i: number): number {
  while (i < text.length && isWs(text.charCodeAt(i))) i++;
  return i;
}

/** The offset after the string starting at `i` (a `"`), or -1 when it does not end. */
function skipString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5c /* \ */) j++;
    else if (c === 0x22) return j + 1;
  }
  return -1;
}

/** The offset after the value starting at `i`, or -1 when it is cut off. */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22) return skipString(text, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text.charCodeAt(j);
      if (d === 0x22) {
        j = skipString(text, j);
        if (j < 0) return -1;
        j--;
      } else if (d === 0x7b || d === 0x5b) {
        depth++;
      } else if (d === 0x7d || d === 0x5d) {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  }
  let j = i;
  while (j < text.length) {
    const d = text.charCodeAt(j);
    if (d === 0x2c || d === 0x5d || d === 0x7d || isWs(d)) break;
    j++;
  }
  return j === i ? -1 : j;
}

/** True when a parsed JSON value holds a number or a boolean: it must be read again with its source text. */
export function holdsNonText(value: unknown): boolean {
  if (typeof value === 'number' || typeof value === 'boolean') return true;
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some(holdsNonText);
  for (const key in value) if (holdsNonText((value as Record<string, unknown>)[key])) return true;
  return false;
}

/** Parses JSON text keeping every number and boolean as written (`1.10` stays "1.10"), as the YAML reader does. */
export function parseJsonAsText(text: string): unknown {
  const plain: unknown = JSON.parse(text);
  if (!holdsNonText(plain)) return plain;
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) =>
    (typeof value === 'number' || typeof value === 'boolean') && context?.source !== undefined ? context.source : value,
  );
}
