// Spec labels of an entry: what the mesh selects workloads by (Service selectors, policies).
import type { MappingConfig } from '../../config/schema.ts';
import { isReservedLabelKey } from '../model.ts';
import { isLabelKey, MAX_LABEL_VALUE, MAX_LABELS } from './syntax.ts';
import { fail, ok, quote, readTag, type Step } from './step.ts';

const KEY_RULE =
  "use up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, optionally after a DNS prefix and '/'";
const VALUE_RULE = "use up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit";

/**
 * Makes a tag value a label value: trim; whitespace runs → `-`; every character outside
 * `[A-Za-z0-9._-]` → `-`; cut to 63; drop leading and trailing characters that are not letters or
 * digits. The result is always a valid label value; it is empty when nothing usable was left.
 */
export function normalizeLabelValue(raw: string): string {
  // One pass per rule, by code point (the `u` flag), as in the per-character rule above: this runs
  // for every label of every instance of every resync.
  const replaced = raw.trim().replace(/\s+/gu, '-').replace(/[^A-Za-z0-9._-]/gu, '-');
  return replaced
    .slice(0, MAX_LABEL_VALUE)
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/[^A-Za-z0-9]+$/, '');
}

// Per rules object: the set is the same for every instance of a listing.
const controlTagsCache = new WeakMap<MappingConfig, ReadonlySet<string>>();

/** Tags that configure the entry itself; a broad `tagPrefix` must not turn them into labels. */
function controlTags(rules: MappingConfig): ReadonlySet<string> {
  const cached = controlTagsCache.get(rules);
  if (cached) return cached;
  const tags = new Set([
    rules.selector.tag,
    rules.namespace.tag,
    rules.serviceAccount.tag,
    rules.ports.tag,
    rules.address.tag,
    rules.network.tag,
    rules.weight.tag,
    rules.service.tag,
    rules.health.tag,
  ]);
  controlTagsCache.set(rules, tags);
  return tags;
}

/**
 * The spec labels of an instance, from three sources; a later source overrides an earlier one for
 * the same label key: `labels.static` < tags with `labels.tagPrefix` < `labels.fromTags`. Among
 * `fromTags` entries naming the same label, the one listed first in the config wins. Values are
 * normalized by normalizeLabelValue; a blank value stays an empty label value, a non-blank value
 * with nothing usable left is a skip. Undefined when there are no labels.
 */
export function buildLabels(tags: Record<string, string>, rules: MappingConfig): Step<Record<string, string> | undefined> {
  // label key → [raw value, where it came from]
  const chosen = new Map<string, [string, string]>();
  for (const [key, value] of Object.entries(rules.labels.static)) chosen.set(key, [value, `mapping.labels.static.${key}`]);

  const prefix = rules.labels.tagPrefix;
  if (prefix !== '') {
    const control = controlTags(rules);
    for (const tagKey of Object.keys(tags)) {
      if (!tagKey.startsWith(prefix) || control.has(tagKey)) continue;
      const labelKey = tagKey.slice(prefix.length);
      if (!isLabelKey(labelKey)) {
        return fail(
          'VMS_SKIP_BAD_LABEL',
          `tag ${quote(tagKey)} would set the label ${quote(labelKey)}, which is not a valid label key (${KEY_RULE})`,
        );
      }
      chosen.set(labelKey, [readTag(tags, tagKey) ?? '', `tag ${tagKey}`]);
    }
  }

  const fromTags = new Set<string>();
  for (const [tagKey, labelKey] of Object.entries(rules.labels.fromTags)) {
    const value = readTag(tags, tagKey);
    if (value === undefined || fromTags.has(labelKey)) continue;
    fromTags.add(labelKey);
    chosen.set(labelKey, [value, `tag ${tagKey}`]);
  }

  if (chosen.size > MAX_LABELS) {
    return fail('VMS_SKIP_BAD_LABEL', `the tags and mapping.labels give ${chosen.size} labels; a WorkloadEntry takes at most ${MAX_LABELS}`);
  }
  if (chosen.size === 0) return ok(undefined);
  const labels: Record<string, string> = {};
  // Sorted: clouds return tags in no fixed order, and the same labels should print and serialize the same.
  for (const [key, [raw, where]] of [...chosen].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    // Config keys are checked when config loads; rules built in code are not, and `__proto__` must never be assigned.
    if (!isLabelKey(key)) {
      return fail('VMS_SKIP_BAD_LABEL', `${where} sets the label ${quote(key)}, which is not a valid label key (${KEY_RULE})`);
    }
    if (isReservedLabelKey(key)) {
      return fail(
        'VMS_SKIP_BAD_LABEL',
        `${where} sets the label ${quote(key)}, which vm-mesh-sync sets itself (ownership and mesh service selection); use the mesh-service tag, or another label key`,
      );
    }
    const value = normalizeLabelValue(raw);
    if (value === '' && raw.trim() !== '') {
      return fail(
        'VMS_SKIP_BAD_LABEL',
        `${where}: ${quote(raw)} cannot be a label value, nothing usable is left of it (${VALUE_RULE})`,
      );
    }
    labels[key] = value;
  }
  return ok(labels);
}
