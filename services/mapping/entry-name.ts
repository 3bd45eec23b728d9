// The WorkloadEntry name of an instance. It must be a DNS-1123 subdomain, stable across polls, and
// different for different instances, even when their ids are long or full of characters
// Kubernetes does not allow (Azure resource ids, free-form static inventory ids).
import { createHash } from 'node:crypto';
import type { Instance } from '../model.ts';

/** Longest Kubernetes object name. */
const MAX_NAME = 253;
/** Hex digits of the hash suffix: 40 bits, enough that two ids of one cluster never share one. */
const HASH_LENGTH = 10;
/** A name that rules 1 to 3 leave as it is: lowercase letters and digits, single inner `-`. */
const CLEAN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/**
 * `<provider>-<instance id>` as a DNS-1123 subdomain, by these rules:
 * 1. ASCII letters lowercased (ids are treated as case-insensitive, as Azure resource ids and DNS are);
 * 2. every character other than `a-z`, `0-9` and `-` (dots and slashes included) becomes `-`;
 * 3. runs of `-` collapse to one, and leading or trailing `-` are dropped;
 * 4. when step 2 or 3 changed anything, or the name is longer than 253 characters, the name is cut
 *    to leave room and `-` plus the first 10 hex digits of the SHA-256 of the step-1 (UTF-16LE)
 *    `<provider>-<id>` is appended, so ids that differ only in punctuation do not collide.
 * AWS ids (`i-0abc…`), GCP numeric ids and Azure vmId GUIDs never get a hash; Azure resource ids
 * (`/subscriptions/…`) always do.
 */
export function entryName(instance: Pick<Instance, 'provider' | 'id'>): string {
  // Joined, not concatenated: one flat string (see instanceSource), which the name lookups of
  // mapping and planning hash and compare faster than a rope of two pieces.
  const plain = [instance.provider, instance.id].join('-');
  // Most ids (AWS, GCP, Azure vmIds) are a name already: no rule below would change them.
  if (plain.length <= MAX_NAME && CLEAN.test(plain)) return plain;
  // ASCII only: Unicode case mapping turns some non-ASCII letters (the Kelvin sign) into ASCII ones.
  const raw = plain.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const clean = raw
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (clean === raw && clean.length <= MAX_NAME) return clean;
  const hash = createHash('sha256').update(raw, 'utf16le').digest('hex').slice(0, HASH_LENGTH);
  const head = clean.slice(0, MAX_NAME - HASH_LENGTH - 1).replace(/-+$/, '');
  // Joined: a template string is a rope of three pieces (this is every Azure resource id's name).
  return [head, hash].join('-');
}

/** Longest label value. */
const MAX_LABEL_VALUE = 63;

/**
 * The value of NAME_LABEL for an entry name: the name itself when it fits in a label value (a
 * DNS-1123 name of at most 63 characters is a valid one), else its first characters, `-` and the
 * first 10 hex digits of the SHA-256 of the whole name. Two names may share a value; whoever finds
 * entries by it compares their names.
 */
export function nameLabelValue(name: string): string {
  if (name.length <= MAX_LABEL_VALUE) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, HASH_LENGTH);
  const head = name.slice(0, MAX_LABEL_VALUE - HASH_LENGTH - 1).replace(/[-.]+$/, '');
  // Joined: one flat string, rather than a rope that holds a slice of the name and the hash.
  return [head, hash].join('-');
}
