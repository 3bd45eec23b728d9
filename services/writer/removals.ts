// Server-side apply removes a field only when no other manager owns it. An entry we created with
// POST is also owned by our own "Update" manager entry, and someone may have added spec fields
// with kubectl edit; in both cases dropping a field from the applied object leaves it in place, and
// the entry would differ from the desired one forever. The fields to remove are found here, by the
// rules of entriesEqual (the spec is ours as a whole; labels and annotations in our own domain, and
// the health annotation, are ours: isManagedMetadataKey), and removed with a merge patch instead.
import type { OwnedObject, WorkloadEntry } from '../model.ts';
import { isManagedMetadataKey, OBSERVED_AT_ANNOTATION } from '../model.ts';

/** Merge-patch nulls for what `live` has and `desired` no longer sets; null when there is nothing to remove. */
export function removalPatch(desired: OwnedObject, live: OwnedObject): Record<string, unknown> | null {
  const spec = specRemovals(asRecord(desired.spec), asRecord(live.spec));
  const labels = metadataRemovals(desired.metadata.labels, live.metadata.labels);
  const annotations = metadataRemovals(desired.metadata.annotations, live.metadata.annotations);
  if (!spec && !labels && !annotations) return null;
  const metadata: Record<string, unknown> = {};
  if (labels) metadata.labels = labels;
  if (annotations) metadata.annotations = annotations;
  return { ...(labels || annotations ? { metadata } : {}), ...(spec ? { spec } : {}) };
}

function specRemovals(desired: Record<string, unknown>, live: Record<string, unknown>): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(live)) {
    const l = live[key];
    const d = desired[key];
    if (isAbsent(l)) continue;
    if (isRecord(l) && isRecord(d)) {
      // At any depth: a WorkloadGroup's template.ports is a map inside a map. A map we set empty
      // is emptied, not removed: a WorkloadGroup must have a template, even an empty one.
      const nested = nestedRemovals(d, l);
      if (nested) out[key] = nested;
    } else if (isAbsent(d)) {
      out[key] = null;
    }
  }
  return Object.keys(out).length > 0 ? out : null;
}

/** Nulls for the keys of map `live` that map `desired` does not set, at any depth (values inside maps are compared as they are). */
function nestedRemovals(desired: Record<string, unknown>, live: Record<string, unknown>): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(live)) {
    const d = desired[k];
    const l = live[k];
    if (d === undefined || d === null) out[k] = null;
    else if (isRecord(d) && isRecord(l)) {
      const nested = nestedRemovals(d, l);
      if (nested) out[k] = nested;
    }
  }
  return Object.keys(out).length > 0 ? out : null;
}

function metadataRemovals(desired: Record<string, string> | undefined, live: Record<string, string> | undefined): Record<string, null> | null {
  const out: Record<string, null> = {};
  for (const key of Object.keys(live ?? {})) {
    if (key === OBSERVED_AT_ANNOTATION || !isManagedMetadataKey(key)) continue;
    if (desired === undefined || !Object.hasOwn(desired, key)) out[key] = null;
  }
  return Object.keys(out).length > 0 ? out : null;
}

/** Absent as entriesEqual sees it: unset, null, a proto3 zero value, or an empty map or list. */
function isAbsent(value: unknown): boolean {
  if (value === undefined || value === null || value === '' || value === 0 || value === false) return true;
  if (Array.isArray(value)) return value.length === 0;
  if (isRecord(value)) return Object.keys(value).length === 0;
  return false;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asRecord(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}
