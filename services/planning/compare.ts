// What "the cluster already has this entry" means. Only what vm-mesh-sync writes is compared, so
// that fields others add (labels, annotations) never cause a write, and the observation time,
// which changes on every resync, never does either.
import type { OwnedObject, WorkloadEntry } from '../model.ts';
import { isManagedMetadataKey, OBSERVED_AT_ANNOTATION } from '../model.ts';

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

/** Called for each difference; returning false stops the walk (entriesEqual needs only the first). */
type Emit = (path: string, desired: unknown, live: unknown) => boolean;

/**
 * How to walk: a diff visits keys in sorted order and names each path; a yes/no answer needs
 * neither, and planning asks it for every desired entry of every resync, so it skips both.
 */
interface Walk {
  emit: Emit;
  detailed: boolean;
}

/**
 * True when writing `desired` would not change what we own in `live`. The rules:
 * - spec: compared deeply, key order ignored. Absent, undefined, null, an empty map and an empty
 *   list are the same. For the spec's own fields the proto3 zero values ('' , 0, false) are absent
 *   too, because Istio reads them that way (`ports: {}` equals no ports, `weight: 0` equals no
 *   weight). Values inside maps are compared as they are: a spec label `tier: ''` is a real label.
 *   Spec fields only the live object has are a difference: the spec is ours as a whole.
 * - metadata.labels and metadata.annotations: every key the desired entry sets must have the same
 *   value live; keys only the live object has are ignored (others may add them) unless they are in
 *   our `vm-mesh-sync.io/` domain. `vm-mesh-sync.io/observed-at` is never compared.
 */
export function entriesEqual(desired: OwnedObject, live: OwnedObject): boolean {
  // The stand-in of an owned entry that is as desired is the desired entry itself (sameAsDesired).
  if (desired === live) return true;
  return walkEntries(desired, live, { emit: () => false, detailed: false });
}

/** The paths where `live` differs from `desired`, by the rules of entriesEqual, in a stable order. */
export function diffEntries(desired: OwnedObject, live: OwnedObject): EntryDifference[] {
  const out: EntryDifference[] = [];
  walkEntries(desired, live, {
    emit: (path, d, l) => {
      out.push({ path, desired: d, live: l });
      return true;
    },
    detailed: true,
  });
  return out;
}

function walkEntries(desired: OwnedObject, live: OwnedObject, walk: Walk): boolean {
  return (
    walkMetadataMap('metadata.labels', desired.metadata.labels, live.metadata?.labels, walk) &&
    walkMetadataMap('metadata.annotations', desired.metadata.annotations, live.metadata?.annotations, walk) &&
    walkSpec(asRecord(desired.spec), asRecord(live.spec), walk)
  );
}

function walkMetadataMap(
  path: string,
  desired: Record<string, string> | undefined,
  live: Record<string, string> | undefined,
  walk: Walk,
): boolean {
  const d = desired ?? {};
  const l = live ?? {};
  for (const key of keysOf(d, walk)) {
    if (key === OBSERVED_AT_ANNOTATION) continue;
    if (d[key] !== l[key] && !walk.emit(`${path}[${key}]`, d[key], l[key])) return false;
  }
  for (const key of keysOf(l, walk)) {
    if (key === OBSERVED_AT_ANNOTATION || !isManagedMetadataKey(key) || Object.hasOwn(d, key)) continue;
    if (!walk.emit(`${path}[${key}]`, undefined, l[key])) return false;
  }
  return true;
}

function walkSpec(desired: Record<string, unknown>, live: Record<string, unknown>, walk: Walk): boolean {
  for (const key of unionKeys(desired, live, walk)) {
    if (!walkValue(walk.detailed ? `spec.${key}` : '', specField(desired[key]), specField(live[key]), walk)) return false;
  }
  return true;
}

function walkValue(path: string, desired: unknown, live: unknown, walk: Walk): boolean {
  const dAbsent = isAbsent(desired);
  const lAbsent = isAbsent(live);
  if (dAbsent && lAbsent) return true;
  // Descend into maps even when one side is absent, so the diff names `spec.ports[http]`
  // rather than the whole map.
  if ((isRecord(desired) || dAbsent) && (isRecord(live) || lAbsent)) {
    const d = dAbsent ? {} : (desired as Record<string, unknown>);
    const l = lAbsent ? {} : (live as Record<string, unknown>);
    for (const key of unionKeys(d, l, walk)) {
      if (!walkValue(walk.detailed ? `${path}[${key}]` : '', d[key], l[key], walk)) return false;
    }
    return true;
  }
  if ((Array.isArray(desired) || dAbsent) && (Array.isArray(live) || lAbsent)) {
    const d = dAbsent ? [] : (desired as unknown[]);
    const l = lAbsent ? [] : (live as unknown[]);
    for (let i = 0; i < Math.max(d.length, l.length); i++) {
      if (!walkValue(walk.detailed ? `${path}[${i}]` : '', d[i], l[i], walk)) return false;
    }
    return true;
  }
  if (Object.is(desired, live) || desired === live) return true;
  return walk.emit(path, dAbsent ? undefined : desired, lAbsent ? undefined : live);
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

function keysOf(value: Record<string, unknown>, walk: Walk): string[] {
  const keys = Object.keys(value);
  return walk.detailed ? keys.sort() : keys;
}

function unionKeys(a: Record<string, unknown>, b: Record<string, unknown>, walk: Walk): string[] {
  const keys = Object.keys(a);
  for (const key of Object.keys(b)) if (!Object.hasOwn(a, key)) keys.push(key);
  return walk.detailed ? keys.sort() : keys;
}
