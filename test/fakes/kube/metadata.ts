// Object metadata checks with the API server's own rules and sentences (apimachinery's
// validation package), so a name or label the real server refuses is refused here too.
import { formatValue, type FieldError } from './status.ts';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Annotations may add up to 256 KiB (keys plus values), as in the real server. */
export const TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024;

function maxLenError(n: number): string {
  return `must be no more than ${n} characters`;
}

function regexError(msg: string, fmt: string, ...examples: string[]): string {
  const e = examples.length ? ` (e.g. ${examples.map((x) => `'${x}'`).join(',  or ')}, regex used for validation is '${fmt}')` : ` (regex used for validation is '${fmt}')`;
  return msg + e;
}

/** Messages for a value that is not a DNS-1123 label (namespace names). */
export function dns1123LabelErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push(maxLenError(63));
  if (!DNS1123_LABEL.test(value)) {
    errs.push(
      regexError(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
        '[a-z0-9]([-a-z0-9]*[a-z0-9])?',
        'my-name',
        '123-abc',
      ),
    );
  }
  return errs;
}

/** Messages for a value that is not a DNS-1123 subdomain (most object names). */
export function dns1123SubdomainErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 253) errs.push(maxLenError(253));
  if (!DNS1123_SUBDOMAIN.test(value)) {
    errs.push(
      regexError(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*',
        'example.com',
      ),
    );
  }
  return errs;
}

const QUALIFIED_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_FMT = '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]';

/** Messages for a label or annotation key that is not a qualified name (`[prefix/]name`). */
export function qualifiedNameErrors(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split('/');
  let name: string;
  if (parts.length === 1) {
    name = parts[0]!;
  } else if (parts.length === 2) {
    const prefix = parts[0]!;
    name = parts[1]!;
    if (prefix.length === 0) errs.push('prefix part must be non-empty');
    else for (const m of dns1123SubdomainErrors(prefix)) errs.push(`prefix part ${m}`);
  } else {
    return [
      `a qualified name ${regexError(QUALIFIED_MSG, QUALIFIED_FMT, 'MyName', 'my.name', '123-abc')} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`,
    ];
  }
  if (name.length === 0) errs.push('name part must be non-empty');
  else if (name.length > 63) errs.push(`name part ${maxLenError(63)}`);
  if (!QUALIFIED_NAME.test(name)) errs.push(`name part ${regexError(QUALIFIED_MSG, QUALIFIED_FMT, 'MyName', 'my.name', '123-abc')}`);
  return errs;
}

/** Messages for a label value that is not valid (≤63, alphanumeric ends, `-_.` inside, or empty). */
export function labelValueErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push(maxLenError(63));
  if (!LABEL_VALUE.test(value)) {
    errs.push(
      regexError(
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        `(${QUALIFIED_FMT})?`,
        'MyValue',
        'my_value',
        '12345',
      ),
    );
  }
  return errs;
}

function invalidAt(field: string, value: unknown, msg: string): FieldError {
  return { reason: 'FieldValueInvalid', field, body: `Invalid value: ${formatValue(value)}: ${msg}` };
}

/** Field errors for `metadata.labels`. */
export function validateLabels(labels: Record<string, unknown>, field = 'metadata.labels'): FieldError[] {
  const out: FieldError[] = [];
  for (const [k, v] of Object.entries(labels)) {
    for (const m of qualifiedNameErrors(k)) out.push(invalidAt(field, k, m));
    for (const m of labelValueErrors(String(v))) out.push(invalidAt(field, v, m));
  }
  return out;
}

/** Field errors for `metadata.annotations`: qualified keys, and 256 KiB in total. */
export function validateAnnotations(annotations: Record<string, unknown>, field = 'metadata.annotations'): FieldError[] {
  const out: FieldError[] = [];
  let total = 0;
  for (const [k, v] of Object.entries(annotations)) {
    for (const m of qualifiedNameErrors(k.toLowerCase())) out.push(invalidAt(field, k, m));
    total += Buffer.byteLength(k) + Buffer.byteLength(String(v));
  }
  if (total > TOTAL_ANNOTATION_SIZE_LIMIT) {
    out.push({ reason: 'FieldValueTooLong', field, body: `Too long: may not be more than ${TOTAL_ANNOTATION_SIZE_LIMIT} bytes` });
  }
  return out;
}

/** How an object's name is checked: most kinds use a DNS subdomain, namespaces a DNS label. */
export type NameRule = 'subdomain' | 'label';

/** Field errors for the metadata the server validates on every write. */
export function validateObjectMeta(
  meta: Record<string, unknown>,
  opts: { nameRule: NameRule; namespaced: boolean },
): FieldError[] {
  const out: FieldError[] = [];
  const name = typeof meta.name === 'string' ? meta.name : '';
  const check = opts.nameRule === 'label' ? dns1123LabelErrors : dns1123SubdomainErrors;
  if (!name) {
    out.push({ reason: 'FieldValueRequired', field: 'metadata.name', body: 'Required value: name or generateName is required' });
  } else {
    for (const m of check(name)) out.push(invalidAt('metadata.name', name, m));
  }
  if (opts.namespaced) {
    const ns = typeof meta.namespace === 'string' ? meta.namespace : '';
    if (!ns) out.push({ reason: 'FieldValueRequired', field: 'metadata.namespace', body: 'Required value' });
    else for (const m of dns1123LabelErrors(ns)) out.push(invalidAt('metadata.namespace', ns, m));
  }
  if (isRecord(meta.labels)) out.push(...validateLabels(meta.labels));
  if (isRecord(meta.annotations)) out.push(...validateAnnotations(meta.annotations));
  if (meta.finalizers !== undefined) {
    if (!Array.isArray(meta.finalizers)) {
      out.push(invalidAt('metadata.finalizers', meta.finalizers, 'must be a list of strings'));
    } else {
      meta.finalizers.forEach((f, i) => {
        for (const m of qualifiedNameErrors(String(f))) out.push(invalidAt(`metadata.finalizers[${i}]`, f, m));
      });
    }
  }
  return out;
}

/** A plain JSON object (not an array, not null). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
