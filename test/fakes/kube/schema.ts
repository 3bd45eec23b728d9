// A CustomResourceDefinition's structural schema as the API server applies it: unknown fields
// pruned, types and bounds checked with the server's messages, and every x-kubernetes-validations
// CEL rule evaluated. A rule this evaluator cannot type-check stops the schema from loading, so a
// new rule in the CRD is never skipped without notice.
import { Environment } from '@marcbachmann/cel-js';
import { formatValue, type FieldError } from './status.ts';
import { isRecord } from './metadata.ts';

/** The part of OpenAPI v3 (as CRDs restrict it) this server understands. */
export interface SchemaProps {
  type?: string;
  description?: string;
  properties?: Record<string, SchemaProps>;
  additionalProperties?: boolean | SchemaProps;
  items?: SchemaProps;
  required?: string[];
  maxLength?: number;
  minLength?: number;
  pattern?: string;
  format?: string;
  maxProperties?: number;
  minProperties?: number;
  maxItems?: number;
  minItems?: number;
  uniqueItems?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  enum?: unknown[];
  nullable?: boolean;
  default?: unknown;
  anyOf?: SchemaProps[];
  allOf?: SchemaProps[];
  oneOf?: SchemaProps[];
  not?: SchemaProps;
  'x-kubernetes-validations'?: ValidationRule[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: string;
}

/** One entry of `x-kubernetes-validations`. */
export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

/** A CEL rule of the schema, compiled once. */
export interface CompiledRule {
  /** Where the rule sits: `spec`, `spec.ports`, `spec.ports.*` (`*` = any map value, `[*]` = any list item). */
  schemaPath: string;
  rule: string;
  message: string | undefined;
  /** True when the rule reads `oldSelf` and so runs only on updates. */
  transition: boolean;
  /** The rule's verdict for a value (and the old value, for transition rules); throws when evaluation fails. */
  evaluate(self: unknown, oldSelf?: unknown): boolean;
  /** The message reported when the rule is false. */
  messageFor(self: unknown, oldSelf?: unknown): string;
  reason: string | undefined;
  fieldPath: string | undefined;
}

/** A schema node with its children resolved and its rules compiled. */
export interface SchemaNode {
  props: SchemaProps;
  properties: Map<string, SchemaNode> | undefined;
  /** Schema of map values (additionalProperties), `true` for any value, undefined when unknown keys are not allowed. */
  additional: SchemaNode | true | undefined;
  items: SchemaNode | undefined;
  rules: CompiledRule[];
  preserveUnknown: boolean;
  intOrString: boolean;
  /** True when a rule sits here or below: values are converted for CEL only where needed. */
  hasRulesBelow: boolean;
}

const CEL_ENV = new Environment({ enableOptionalTypes: true, homogeneousAggregateLiterals: false })
  .registerVariable('self', 'dyn')
  .registerVariable('oldSelf', 'dyn');

/** Thrown at load time when a CRD carries a rule this evaluator cannot run. */
export class UnsupportedRuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedRuleError';
  }
}

function compileRule(r: ValidationRule, schemaPath: string): CompiledRule {
  const where = `x-kubernetes-validations rule ${JSON.stringify(r.rule)} at ${schemaPath || '<root>'}`;
  const checked = CEL_ENV.check(r.rule);
  if (!checked.valid) throw new UnsupportedRuleError(`${where} cannot be evaluated by the fake API server: ${checked.error?.message.split('\n')[0]}`);
  if (checked.type !== 'bool' && checked.type !== 'dyn') {
    throw new UnsupportedRuleError(`${where} has type ${checked.type}, a rule must be a bool`);
  }
  const fn = CEL_ENV.parse(r.rule);
  let msgFn: ((ctx: object) => unknown) | undefined;
  if (r.messageExpression) {
    const mc = CEL_ENV.check(r.messageExpression);
    if (!mc.valid) throw new UnsupportedRuleError(`messageExpression of ${where} cannot be evaluated: ${mc.error?.message.split('\n')[0]}`);
    msgFn = CEL_ENV.parse(r.messageExpression);
  }
  const transition = /\boldSelf\b/.test(r.rule);
  const ctx = (self: unknown, oldSelf: unknown) => (oldSelf === undefined ? { self } : { self, oldSelf });
  return {
    schemaPath,
    rule: r.rule,
    message: r.message,
    transition,
    reason: r.reason,
    fieldPath: r.fieldPath,
    evaluate(self, oldSelf) {
      const out = fn(ctx(self, oldSelf));
      if (typeof out !== 'boolean') throw new Error(`rule did not evaluate to a bool: ${String(out)}`);
      return out;
    },
    messageFor(self, oldSelf) {
      if (msgFn) {
        try {
          const m = msgFn(ctx(self, oldSelf));
          if (typeof m === 'string' && m.trim() !== '') return m;
        } catch {
          // The real server falls back to the static message when messageExpression fails.
        }
      }
      return r.message ?? `failed rule: ${r.rule}`;
    },
  };
}

function buildNode(props: SchemaProps, schemaPath: string, all: CompiledRule[]): SchemaNode {
  const node: SchemaNode = {
    props,
    properties: undefined,
    additional: undefined,
    items: undefined,
    rules: [],
    preserveUnknown: props['x-kubernetes-preserve-unknown-fields'] === true,
    intOrString: props['x-kubernetes-int-or-string'] === true,
    hasRulesBelow: false,
  };
  for (const r of props['x-kubernetes-validations'] ?? []) {
    const c = compileRule(r, schemaPath);
    node.rules.push(c);
    all.push(c);
  }
  if (props.properties) {
    node.properties = new Map();
    for (const [k, v] of Object.entries(props.properties)) {
      node.properties.set(k, buildNode(v, schemaPath ? `${schemaPath}.${k}` : k, all));
    }
  }
  if (props.additionalProperties === true) node.additional = true;
  else if (isRecord(props.additionalProperties)) {
    node.additional = buildNode(props.additionalProperties as SchemaProps, `${schemaPath}.*`, all);
  }
  if (props.items) node.items = buildNode(props.items, `${schemaPath}[*]`, all);
  node.hasRulesBelow =
    node.rules.length > 0 ||
    [...(node.properties?.values() ?? [])].some((c) => c.hasRulesBelow) ||
    (typeof node.additional === 'object' && node.additional.hasRulesBelow) ||
    (node.items?.hasRulesBelow ?? false);
  return node;
}

/** Field paths in two spellings: OpenAPI errors write `spec.ports.http`, CEL errors `spec.ports[http]`. */
interface Where {
  openapi: string;
  field: string;
}

function child(w: Where, key: string, mapKey: boolean): Where {
  const openapi = w.openapi ? `${w.openapi}.${key}` : key;
  const field = mapKey ? `${w.field}[${key}]` : w.field ? `${w.field}.${key}` : key;
  return { openapi, field };
}

function index(w: Where, i: number): Where {
  return { openapi: `${w.openapi}[${i}]`, field: `${w.field}[${i}]` };
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function typeMatches(node: SchemaNode, v: unknown): boolean {
  if (node.intOrString) return typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v));
  switch (node.props.type) {
    case 'object':
      return isRecord(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    default:
      return true;
  }
}

/** Converts a JSON value to what CEL sees: integers become int (bigint), per the schema. */
function toCel(v: unknown, node: SchemaNode | undefined): unknown {
  if (typeof v === 'number') {
    if (node?.props.type === 'number') return v;
    return Number.isInteger(v) ? BigInt(v) : v;
  }
  if (Array.isArray(v)) return v.map((x) => toCel(x, node?.items));
  if (isRecord(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const c = node?.properties?.get(k) ?? (typeof node?.additional === 'object' ? node.additional : undefined);
      out[k] = toCel(x, c);
    }
    return out;
  }
  return v;
}

function celTypeName(node: SchemaNode): string {
  if (node.intOrString) return 'integer-or-string';
  return node.props.type ?? 'object';
}

function appendFieldPath(field: string, fieldPath: string | undefined): string {
  if (!fieldPath) return field;
  // fieldPath is a relative JSONPath such as `.spec.x` or `['a.b']`: append it as written.
  const rel = fieldPath.replace(/\['([^']*)'\]/g, '[$1]');
  return rel.startsWith('[') ? `${field}${rel}` : `${field}${rel.startsWith('.') ? '' : '.'}${rel}`;
}

/** The outcome of preparing an incoming object: what was pruned, and what is invalid. */
export interface SchemaResult {
  /** Paths of unknown fields that were dropped (`spec.foo`), for warnings or strict field validation. */
  pruned: string[];
  errors: FieldError[];
}

/** A CRD version's openAPIV3Schema, ready to prune and validate objects. */
export class StructuralSchema {
  readonly root: SchemaNode;
  readonly rules: CompiledRule[] = [];

  /** Throws UnsupportedRuleError when a rule cannot be type-checked by the CEL evaluator. */
  constructor(openAPIV3Schema: SchemaProps) {
    this.root = buildNode(openAPIV3Schema, '', this.rules);
  }

  /**
   * Prunes `obj` in place (unknown fields, nulls in non-nullable fields, defaults) and validates what
   * is left. apiVersion, kind and metadata are the caller's: they are neither pruned nor checked here.
   */
  process(obj: Record<string, unknown>, old: Record<string, unknown> | undefined): SchemaResult {
    const pruned = this.prune(obj);
    const errors: FieldError[] = [];
    const root = this.root;
    for (const req of root.props.required ?? []) {
      if (obj[req] === undefined) errors.push({ reason: 'FieldValueRequired', field: req, body: 'Required value' });
    }
    for (const [key, c] of root.properties ?? []) {
      if (obj[key] === undefined) continue;
      const w = { openapi: key, field: key };
      this.validate(obj[key], old?.[key], c, w, errors);
    }
    if (root.rules.length) {
      const view: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(obj)) if (k !== 'metadata') view[k] = v;
      this.runRules(root, view, old, { openapi: '', field: '' }, errors);
    }
    return { pruned, errors };
  }

  /**
   * Drops unknown fields and nulls of non-nullable fields in place and fills defaults, as the server
   * does to every incoming object (apply configurations included); returns the dropped paths.
   */
  prune(obj: Record<string, unknown>): string[] {
    const pruned: string[] = [];
    const root = this.root;
    for (const key of Object.keys(obj)) {
      if (key === 'apiVersion' || key === 'kind' || key === 'metadata') continue;
      const c = root.properties?.get(key);
      if (!c) {
        if (!root.preserveUnknown) {
          delete obj[key];
          pruned.push(key);
        }
        continue;
      }
      if (obj[key] === null && !c.props.nullable) delete obj[key];
      else obj[key] = this.pruneValue(obj[key], c, key, pruned);
    }
    this.applyDefaults(obj, root);
    return pruned;
  }

  private pruneValue(v: unknown, node: SchemaNode, path: string, pruned: string[]): unknown {
    if (Array.isArray(v)) {
      if (!node.items) return v;
      return v.filter((x) => !(x === null && !node.items!.props.nullable)).map((x, i) => this.pruneValue(x, node.items!, `${path}[${i}]`, pruned));
    }
    if (!isRecord(v)) return v;
    if (node.props['x-kubernetes-embedded-resource']) return v;
    for (const key of Object.keys(v)) {
      const c = node.properties?.get(key) ?? (typeof node.additional === 'object' ? node.additional : undefined);
      if (!c) {
        if (node.additional === true || node.preserveUnknown) continue;
        delete v[key];
        pruned.push(`${path}.${key}`);
        continue;
      }
      if (v[key] === null && !c.props.nullable) {
        delete v[key];
        continue;
      }
      v[key] = this.pruneValue(v[key], c, `${path}.${key}`, pruned);
    }
    this.applyDefaults(v, node);
    return v;
  }

  private applyDefaults(v: Record<string, unknown>, node: SchemaNode): void {
    for (const [k, c] of node.properties ?? []) {
      if (v[k] === undefined && c.props.default !== undefined) v[k] = structuredClone(c.props.default);
    }
  }

  /** Validates one value; returns false when its type is wrong (its rules are then not run). */
  private validate(v: unknown, old: unknown, node: SchemaNode, w: Where, errors: FieldError[]): boolean {
    if (v === null && node.props.nullable) return true;
    if (!typeMatches(node, v)) {
      const t = jsonType(v);
      errors.push({
        reason: 'FieldValueTypeInvalid',
        field: w.openapi,
        body: `Invalid value: "${t}": ${w.openapi} in body must be of type ${node.props.type}: "${t}"`,
      });
      return false;
    }
    const p = node.props;
    const inBody = `${w.openapi} in body`;
    if (p.enum && !p.enum.some((e) => deepEqualJson(e, v))) {
      errors.push({
        reason: 'FieldValueNotSupported',
        field: w.openapi,
        body: `Unsupported value: ${formatValue(v)}: supported values: ${p.enum.map(formatValue).join(', ')}`,
      });
    }
    if (typeof v === 'string') {
      const len = [...v].length;
      if (p.maxLength !== undefined && len > p.maxLength) {
        errors.push({ reason: 'FieldValueTooLong', field: w.openapi, body: `Too long: may not be more than ${p.maxLength} bytes` });
      }
      if (p.minLength !== undefined && len < p.minLength) {
        errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${formatValue(v)}: ${inBody} should be at least ${p.minLength} chars long` });
      }
      if (p.pattern !== undefined && !new RegExp(p.pattern, 'u').test(v)) {
        errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${formatValue(v)}: ${inBody} should match '${p.pattern}'` });
      }
      if (p.format === 'date-time' && !DATE_TIME.test(v)) {
        errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${formatValue(v)}: ${inBody} must be of type date-time: ${formatValue(v)}` });
      }
    }
    if (typeof v === 'number') {
      if (p.minimum !== undefined && (p.exclusiveMinimum ? v <= p.minimum : v < p.minimum)) {
        const rel = p.exclusiveMinimum ? 'greater than' : 'greater than or equal to';
        errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${v}: ${inBody} should be ${rel} ${p.minimum}` });
      }
      if (p.maximum !== undefined && (p.exclusiveMaximum ? v >= p.maximum : v > p.maximum)) {
        const rel = p.exclusiveMaximum ? 'less than' : 'less than or equal to';
        errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${v}: ${inBody} should be ${rel} ${p.maximum}` });
      }
      if (p.multipleOf !== undefined && v % p.multipleOf !== 0) {
        errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${v}: ${inBody} should be a multiple of ${p.multipleOf}` });
      }
    }
    if (isRecord(v)) {
      const n = Object.keys(v).length;
      if (p.maxProperties !== undefined && n > p.maxProperties) {
        errors.push({ reason: 'FieldValueTooMany', field: w.openapi, body: `Too many: ${n}: must have at most ${p.maxProperties} items` });
      }
      if (p.minProperties !== undefined && n < p.minProperties) {
        errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${n}: ${inBody} should have at least ${p.minProperties} properties` });
      }
      for (const req of p.required ?? []) {
        if (v[req] === undefined) errors.push({ reason: 'FieldValueRequired', field: `${w.openapi}.${req}`, body: 'Required value' });
      }
      const oldRec = isRecord(old) ? old : undefined;
      for (const [k, x] of Object.entries(v)) {
        const prop = node.properties?.get(k);
        if (prop) this.validate(x, oldRec?.[k], prop, child(w, k, false), errors);
        else if (typeof node.additional === 'object') this.validate(x, oldRec?.[k], node.additional, child(w, k, true), errors);
      }
    }
    if (Array.isArray(v)) {
      if (p.maxItems !== undefined && v.length > p.maxItems) {
        errors.push({ reason: 'FieldValueTooMany', field: w.openapi, body: `Too many: ${v.length}: must have at most ${p.maxItems} items` });
      }
      if (p.minItems !== undefined && v.length < p.minItems) {
        errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${v.length}: ${inBody} should have at least ${p.minItems} items` });
      }
      const listType = p['x-kubernetes-list-type'];
      if (p.uniqueItems || listType === 'set') {
        v.forEach((x, i) => {
          if (v.findIndex((y) => deepEqualJson(x, y)) !== i) {
            errors.push({ reason: 'FieldValueDuplicate', field: `${w.field}[${i}]`, body: `Duplicate value: ${formatValue(x)}` });
          }
        });
      }
      if (listType === 'map') {
        const keys = p['x-kubernetes-list-map-keys'] ?? [];
        const seen = new Set<string>();
        v.forEach((x, i) => {
          const id = JSON.stringify(keys.map((k) => (isRecord(x) ? x[k] : undefined)));
          if (seen.has(id)) errors.push({ reason: 'FieldValueDuplicate', field: `${w.field}[${i}]`, body: `Duplicate value: ${formatValue(x)}` });
          seen.add(id);
        });
      }
      if (node.items) v.forEach((x, i) => this.validate(x, undefined, node.items!, index(w, i), errors));
    }
    for (const sub of p.allOf ?? []) this.validateValueOnly(v, sub, w, errors);
    if (p.anyOf && !node.intOrString && !p.anyOf.some((s) => this.passes(v, s))) {
      errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${formatValue(v)}: ${w.openapi} in body must validate at least one schema (anyOf)` });
    }
    if (p.oneOf && p.oneOf.filter((s) => this.passes(v, s)).length !== 1) {
      errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${formatValue(v)}: ${w.openapi} in body must validate one and only one schema (oneOf)` });
    }
    if (p.not && this.passes(v, p.not)) {
      errors.push({ reason: 'FieldValueInvalid', field: w.openapi, body: `Invalid value: ${formatValue(v)}: ${w.openapi} in body should not be valid against schema (not)` });
    }
    if (node.rules.length) this.runRules(node, v, old, w, errors);
    return true;
  }

  private passes(v: unknown, props: SchemaProps): boolean {
    const errs: FieldError[] = [];
    this.validateValueOnly(v, props, { openapi: '', field: '' }, errs);
    return errs.length === 0;
  }

  private validateValueOnly(v: unknown, props: SchemaProps, w: Where, errors: FieldError[]): void {
    // Value validations in allOf/anyOf/oneOf/not carry no types of their own in a structural schema.
    this.validate(v, undefined, buildNode(props, '', []), w, errors);
  }

  private runRules(node: SchemaNode, v: unknown, old: unknown, w: Where, errors: FieldError[]): void {
    const self = toCel(v, node);
    const oldSelf = old === undefined ? undefined : toCel(old, node);
    for (const r of node.rules) {
      if (r.transition && oldSelf === undefined) continue;
      const field = appendFieldPath(w.field, r.fieldPath);
      let ok: boolean;
      try {
        ok = r.evaluate(self, oldSelf);
      } catch (e) {
        const why = (e as Error).message.split('\n')[0];
        errors.push({
          reason: 'FieldValueInvalid',
          field,
          body: `Invalid value: "${celTypeName(node)}": ${r.message ?? `failed rule: ${r.rule}`} (evaluation error: ${why})`,
        });
        continue;
      }
      if (ok) continue;
      const msg = r.messageFor(self, oldSelf);
      switch (r.reason) {
        case 'FieldValueForbidden':
          errors.push({ reason: r.reason, field, body: `Forbidden: ${msg}` });
          break;
        case 'FieldValueRequired':
          errors.push({ reason: r.reason, field, body: `Required value: ${msg}` });
          break;
        case 'FieldValueDuplicate':
          errors.push({ reason: r.reason, field, body: `Duplicate value: ${msg}` });
          break;
        default:
          errors.push({ reason: 'FieldValueInvalid', field, body: `Invalid value: "${celTypeName(node)}": ${msg}` });
      }
    }
  }
}

/** Structural equality of JSON values (key order ignored). */
export function deepEqualJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqualJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ak = Object.keys(a as object);
  const bo = b as Record<string, unknown>;
  if (ak.length !== Object.keys(bo).length) return false;
  for (const k of ak) {
    if (!Object.hasOwn(bo, k) || !deepEqualJson((a as Record<string, unknown>)[k], bo[k])) return false;
  }
  return true;
}
