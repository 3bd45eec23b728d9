// Label and field selectors in the API server's syntax: `a=b`, `a==b`, `a!=b`, `a`, `!a`,
// `a in (x,y)`, `a notin (x,y)`, `a>1`, `a<1`, joined by commas (all must hold).
import { labelValueErrors, qualifiedNameErrors } from './metadata.ts';
import { badRequest, type ApiError } from './status.ts';

/** One requirement of a label selector. */
export type Requirement =
  | { key: string; op: 'exists' | 'notexists' }
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'in' | 'notin'; values: Set<string> }
  | { key: string; op: 'gt' | 'lt'; value: number };

/** A parsed label selector; an empty one matches everything. */
export interface LabelSelector {
  requirements: Requirement[];
  matches(labels: Record<string, string> | undefined): boolean;
}

type Token = { t: 'id'; v: string } | { t: 'op'; v: string };

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (s.startsWith('==', i) || s.startsWith('!=', i)) {
      out.push({ t: 'op', v: s.slice(i, i + 2) });
      i += 2;
      continue;
    }
    if ('=!(),<>'.includes(c)) {
      out.push({ t: 'op', v: c });
      i++;
      continue;
    }
    let j = i;
    while (j < s.length && !' \t=!(),<>'.includes(s[j]!)) j++;
    out.push({ t: 'id', v: s.slice(i, j) });
    i = j;
  }
  return out;
}

function parseError(why: string): ApiError {
  return badRequest(`unable to parse requirement: ${why}`);
}

function checkKey(key: string): void {
  const errs = qualifiedNameErrors(key);
  if (errs.length) throw parseError(`<nil>: Invalid value: ${JSON.stringify(key)}: ${errs.join('; ')}`);
}

function checkValue(key: string, value: string): void {
  const errs = labelValueErrors(value);
  if (errs.length) throw parseError(`values[0][${key}]: Invalid value: ${JSON.stringify(value)}: ${errs.join('; ')}`);
}

/** Parses a label selector; throws a 400 ApiError on bad syntax, as the server answers. */
export function parseLabelSelector(selector: string | null | undefined): LabelSelector {
  const sel = selector ?? '';
  const toks = tokenize(sel);
  const reqs: Requirement[] = [];
  let i = 0;
  const peek = () => toks[i];
  const next = () => toks[i++];
  const expectId = (what: string): string => {
    const t = next();
    if (!t || t.t !== 'id') throw badRequest(`unable to parse requirement: found '${t?.v ?? ''}', expected: ${what}`);
    return t.v;
  };
  while (i < toks.length) {
    const t = peek()!;
    if (t.t === 'op' && t.v === '!') {
      next();
      const key = expectId('identifier after \'!\'');
      checkKey(key);
      reqs.push({ key, op: 'notexists' });
    } else {
      const key = expectId('identifier');
      checkKey(key);
      const op = peek();
      if (!op || (op.t === 'op' && op.v === ',')) {
        reqs.push({ key, op: 'exists' });
      } else if (op.t === 'op' && (op.v === '=' || op.v === '==' || op.v === '!=')) {
        next();
        const v = peek();
        let value = '';
        if (v && v.t === 'id') {
          value = v.v;
          next();
        }
        checkValue(key, value);
        reqs.push({ key, op: op.v === '!=' ? 'neq' : 'eq', value });
      } else if (op.t === 'op' && (op.v === '<' || op.v === '>')) {
        next();
        const raw = expectId('integer');
        const n = Number(raw);
        if (!/^-?\d+$/.test(raw)) throw badRequest(`unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer`);
        reqs.push({ key, op: op.v === '>' ? 'gt' : 'lt', value: n });
      } else if (op.t === 'id' && (op.v === 'in' || op.v === 'notin')) {
        next();
        const open = next();
        if (!open || open.v !== '(') throw badRequest(`unable to parse requirement: found '${open?.v ?? ''}', expected: '('`);
        const values = new Set<string>();
        for (;;) {
          const v = next();
          if (!v) throw badRequest(`unable to parse requirement: found '', expected: ')'`);
          if (v.t === 'op' && v.v === ')') break;
          if (v.t === 'op' && v.v === ',') continue;
          if (v.t !== 'id') throw badRequest(`unable to parse requirement: found '${v.v}', expected: ',', ')' or identifier`);
          checkValue(key, v.v);
          values.add(v.v);
        }
        if (values.size === 0 && op.v === 'in') {
          throw badRequest(`unable to parse requirement: values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty`);
        }
        reqs.push({ key, op: op.v, values });
      } else {
        throw badRequest(`unable to parse requirement: found '${op.v}', expected: in, notin, =, ==, !=, gt, lt`);
      }
    }
    const sep = next();
    if (sep && !(sep.t === 'op' && sep.v === ',')) throw badRequest(`found '${sep.v}', expected: ',' or 'end of string'`);
  }
  return {
    requirements: reqs,
    matches(labels) {
      for (const r of reqs) {
        const has = labels !== undefined && Object.hasOwn(labels, r.key);
        const v = has ? labels![r.key] : undefined;
        switch (r.op) {
          case 'exists':
            if (!has) return false;
            break;
          case 'notexists':
            if (has) return false;
            break;
          case 'eq':
            if (v !== r.value) return false;
            break;
          case 'neq':
            if (v === r.value) return false;
            break;
          case 'in':
            if (v === undefined || !r.values.has(v)) return false;
            break;
          case 'notin':
            if (v !== undefined && r.values.has(v)) return false;
            break;
          case 'gt':
          case 'lt': {
            if (v === undefined || !/^-?\d+$/.test(v)) return false;
            const n = Number(v);
            if (r.op === 'gt' ? !(n > r.value) : !(n < r.value)) return false;
            break;
          }
        }
      }
      return true;
    },
  };
}

/** One `field=value` or `field!=value` term of a field selector. */
export interface FieldRequirement {
  field: string;
  value: string;
  negate: boolean;
}

/** A parsed field selector: matches against a function that reads a supported field of an object. */
export interface FieldSelector {
  requirements: FieldRequirement[];
  matches(read: (field: string) => string): boolean;
}

/** Parses a field selector; fields outside `supported` are a 400, as on the real server. */
export function parseFieldSelector(selector: string | null | undefined, supported: ReadonlySet<string>): FieldSelector {
  const reqs: FieldRequirement[] = [];
  for (const part of (selector ?? '').split(',')) {
    const term = part.trim();
    if (!term) continue;
    const m = /^([^=!]+?)\s*(==|!=|=)\s*(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    const field = m[1]!.trim();
    if (!supported.has(field)) throw badRequest(`field label not supported: ${field}`);
    reqs.push({ field, value: m[3]!.trim(), negate: m[2] === '!=' });
  }
  return {
    requirements: reqs,
    matches(read) {
      for (const r of reqs) {
        const eq = read(r.field) === r.value;
        if (eq === r.negate) return false;
      }
      return true;
    },
  };
}
