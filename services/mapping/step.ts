// Each mapping rule either yields a value or says, in a sentence, why the instance is skipped.
// Rules return this instead of throwing, so mapInstance has one path for every bad value.
import type { SkipCode } from './skip-codes.ts';

/** A value a rule could use, or the skip code and the sentence saying why it could not. */
export type Step<T> = { ok: true; value: T } | { ok: false; code: SkipCode; reason: string };

/** The step of a rule that yields nothing (no ports tag, no network, no weight): one object serves them all. */
const NOTHING: Step<undefined> = Object.freeze({ ok: true, value: undefined });

/** A usable value. */
export function ok<T>(value: T): Step<T> {
  return value === undefined ? (NOTHING as Step<T>) : { ok: true, value };
}

/** A value that cannot be used; `reason` names the tag, the value and what to write instead. */
export function fail(code: SkipCode, reason: string): { ok: false; code: SkipCode; reason: string } {
  return { ok: false, code, reason };
}

/** A tag value as shown in a reason: quoted, control characters escaped, long values cut, so logs stay one line. */
export function quote(value: string): string {
  const chars = Array.from(value);
  const shown = chars.length > 80 ? `${chars.slice(0, 77).join('')}...` : value;
  const escaped = shown.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `'${escaped}'`;
}

/** A tag's value, or undefined when the instance does not carry it; inherited keys (`constructor`) never count. */
export function readTag(tags: Record<string, string>, key: string): string | undefined {
  if (!Object.hasOwn(tags, key)) return undefined;
  const value: unknown = tags[key];
  // Inventories parsed from YAML can carry numbers or booleans where the type promises strings.
  return typeof value === 'string' ? value : String(value);
}
