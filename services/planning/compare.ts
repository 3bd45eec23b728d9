// What "the cluster already has this entry" means. Only what vm-mesh-sync writes is compared, so
// that fields others add (labels, annotations) never cause a write, and the observation time,
// which changes on every resync, never does either.
import type { OwnedObject, WorkloadEntry } from '../model.ts';
import { isManagedMetadataKey, NAME_LABEL, OBSERVED_AT_ANNOTATION } from '../model.ts';

/** One difference between a desired and a live entry, readable in `plan --output diff`. */
export interface EntryDifference {
  /** `spec.address`, `spec.ports[http]`, `metadata.labels[app.kubernetes.io/managed-by]`. */
  path: string;
  /** The desired value; undefined when the desired entry does not set it. */
  desired: unknown;
  /** The live value; undefined when the live entry does not have it. */
  live: unknown;
}

// Keys in our own domain (and the health annotation, see isManagedMetadataKey) are ours even when
// the desired entry no longer sets them, so a label or annotation that mapping stopped writing is
// noticed and removed by the next apply.

/**
 * True when writing `desired` would not change what we own in `live`. The rules:
 * - spec: compared deeply, key order ignored. Absent, undefined, null, an empty map and an empty
 *   list are the same. For the spec's own fields the proto3 zero values ('' , 0, false) are absent
 *   too, because Istio reads them that way (`ports: {}` equals no ports, `weight: 0` equals no
 *   weight). Values inside maps are compared as they are: a spec label `tier: ''` is a real label.
 *   Spec fields only the live object has are a difference: the spec is ours as a whole.
 * - metadata.labels and metadata.annotations: every key the desired entry sets must have the same
 *   value live; keys only the live object has are ignored (others may add them) unless they are in
 *   our `vm-mesh-sync.io/` domain. `vm-mesh-sync.io/observed-at` is never compared, and the name
 *   label (NAME_LABEL) only when the live object has one: an entry an earlier version wrote
 *   without it is not rewritten for it alone (every entry at once, on upgrade), and gets it with
 *   its next change.
 *
 * Planning asks this for every desired entry of every resync, so it walks the objects' own keys
 * in place (for…in) and builds nothing: no key lists, no paths. diffEntries walks the same rules
 * in sorted order and names each difference; the tests hold the two to the same answer.
 */
export function entriesEqual(desired: OwnedObject, live: OwnedObject): boolean {
  // An object never differs from itself (a stand-in for a live entry is the desired entry).
  if (desired === live) return true;
  // The spec first: a changed entry most often differs there (an address, a port), and the walk
  // then stops before the annotations, which every entry has its own of.
  if (!sameMap(asRecord(desired.spec), asRecord(live.spec), specField)) return false;
  // Read once: an entry in compact form builds its metadata on each read.
  const metadata = desired.metadata;
  const liveMetadata = live.metadata;
  return sameMetadataMap(metadata.labels, liveMetadata?.labels) && sameMetadataMap(metadata.annotations, liveMetadata?.annotations);
}

/** The paths where `live` differs from `desired`, by the rules of entriesEqual, in a stable order. */
export function diffEntries(desired: OwnedObject, live: OwnedObject): EntryDifference[] {
  const out: EntryDifference[] = [];
  if (desired === live) return out;
  diffMetadataMap(out, 'metadata.labels', desired.metadata.labels, live.metadata?.labels);
  diffMetadataMap(out, 'metadata.annotations', desired.metadata.annotations, live.metadata?.annotations);
  const d = asRecord(desired.spec);
  const l = asRecord(live.spec);
  for (const key of unionKeys(d, l)) diffValue(out, `spec.${key}`, specField(d[key]), specField(l[key]));
  return out;
}

const EMPTY_MAP: Readonly<Record<string, never>> = Object.freeze({});
const EMPTY_LIST: readonly never[] = Object.freeze([]);

function sameMetadataMap(desired: Record<string, string> | undefined, live: Record<string, string> | undefined): boolean {
  // Equal maps are often one shared map (Interner).
  if (desired === live) return true;
  const d = desired ?? EMPTY_MAP;
  const l = live ?? EMPTY_MAP;
  for (const key in d) {
    if (Object.hasOwn(d, key) && key !== OBSERVED_AT_ANNOTATION && d[key] !== l[key] && !unlabelled(key, l)) return false;
  }
  for (const key in l) {
    // Most live keys are the desired ones: that test comes first.
    if (Object.hasOwn(l, key) && !Object.hasOwn(d, key) && key !== OBSERVED_AT_ANNOTATION && isManagedMetadataKey(key)) return false;
  }
  return true;
}

/** True for the name label absent live: an entry written before the label was, which it does not make different. */
function unlabelled(key: string, live: Record<string, string>): boolean {
  return key === NAME_LABEL && !Object.hasOwn(live, NAME_LABEL);
}

function diffMetadataMap(out: EntryDifference[], path: string, desired: Record<string, string> | undefined, live: Record<string, string> | undefined): void {
  if (desired === live) return;
  const d = desired ?? EMPTY_MAP;
  const l = live ?? EMPTY_MAP;
  for (const key of Object.keys(d).sort()) {
    if (key !== OBSERVED_AT_ANNOTATION && d[key] !== l[key] && !unlabelled(key, l)) out.push({ path: `${path}[${key}]`, desired: d[key], live: l[key] });
  }
  for (const key of Object.keys(l).sort()) {
    if (key === OBSERVED_AT_ANNOTATION || !isManagedMetadataKey(key) || Object.hasOwn(d, key)) continue;
    out.push({ path: `${path}[${key}]`, desired: undefined, live: l[key] });
  }
}

/**
 * How two values compare: alike outright (the same value, or both absent), as two maps or two
 * lists (an absent side counts as an empty one, so a diff names `spec.ports[http]` rather than the
 * whole map), or as two different values.
 */
function pairOf(desired: unknown, live: unknown): 'alike' | 'maps' | 'lists' | 'different' {
  // The same value or object holds no difference, whatever is inside.
  if (desired === live) return 'alike';
  const dAbsent = isAbsent(desired);
  const lAbsent = isAbsent(live);
  if (dAbsent && lAbsent) return 'alike';
  if ((isRecord(desired) || dAbsent) && (isRecord(live) || lAbsent)) return 'maps';
  if ((Array.isArray(desired) || dAbsent) && (Array.isArray(live) || lAbsent)) return 'lists';
  return Object.is(desired, live) ? 'alike' : 'different';
}

/** A side of a pair of maps (pairOf): the map, or an empty one for an absent side. */
function mapSide(value: unknown): Record<string, unknown> {
  return isAbsent(value) ? EMPTY_MAP : (value as Record<string, unknown>);
}

/** A side of a pair of lists (pairOf): the list, or an empty one for an absent side. */
function listSide(value: unknown): readonly unknown[] {
  return isAbsent(value) ? EMPTY_LIST : (value as unknown[]);
}

function sameValue(desired: unknown, live: unknown): boolean {
  switch (pairOf(desired, live)) {
    case 'alike':
      return true;
    case 'maps':
      return sameMap(mapSide(desired), mapSide(live), asIs);
    case 'lists': {
      const d = listSide(desired);
      const l = listSide(live);
      for (let i = 0; i < Math.max(d.length, l.length); i++) if (!sameValue(d[i], l[i])) return false;
      return true;
    }
    case 'different':
      return false;
  }
}

/** True when every key of either map has the same value (after `field`) in both; the keys only `live` has, too. */
function sameMap(desired: Record<string, unknown>, live: Record<string, unknown>, field: (value: unknown) => unknown): boolean {
  for (const key in desired) {
    if (Object.hasOwn(desired, key) && !sameValue(field(desired[key]), field(live[key]))) return false;
  }
  for (const key in live) {
    if (Object.hasOwn(live, key) && !Object.hasOwn(desired, key) && !sameValue(field(desired[key]), field(live[key]))) return false;
  }
  return true;
}

function diffValue(out: EntryDifference[], path: string, desired: unknown, live: unknown): void {
  switch (pairOf(desired, live)) {
    case 'alike':
      return;
    case 'maps': {
      const d = mapSide(desired);
      const l = mapSide(live);
      for (const key of unionKeys(d, l)) diffValue(out, `${path}[${key}]`, d[key], l[key]);
      return;
    }
    case 'lists': {
      const d = listSide(desired);
      const l = listSide(live);
      for (let i = 0; i < Math.max(d.length, l.length); i++) diffValue(out, `${path}[${i}]`, d[i], l[i]);
      return;
    }
    case 'different':
      out.push({ path, desired: isAbsent(desired) ? undefined : desired, live: isAbsent(live) ? undefined : live });
  }
}

/** A value inside a map, compared as it is. */
function asIs(value: unknown): unknown {
  return value;
}

/** proto3: a message's scalar fields at their zero value are the same as unset. */
function specField(value: unknown): unknown {
  return value === '' || value === 0 || value === false ? undefined : value;
}

function isAbsent(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (isRecord(value)) {
    for (const key in value) {
      if (Object.hasOwn(value, key) && !isAbsent(value[key])) return false;
    }
    return true;
  }
  return false;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asRecord(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

/** The keys of either map, sorted: a diff lists its paths in a stable order. */
function unionKeys(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const keys = Object.keys(a);
  for (const key of Object.keys(b)) if (!Object.hasOwn(a, key)) keys.push(key);
  return keys.sort();
}
