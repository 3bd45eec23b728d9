// The two patch formats every resource accepts besides apply: JSON merge patch (RFC 7386) and
// JSON patch (RFC 6902).
import { isRecord } from './metadata.ts';
import { deepEqualJson } from './schema.ts';

/** RFC 7386: objects merge, `null` deletes, anything else replaces. Returns a new value. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** A JSON patch that cannot be applied; the server answers it with 422. */
export class PatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatchError';
  }
}

function parsePointer(ptr: string): string[] {
  if (ptr === '') return [];
  if (!ptr.startsWith('/')) throw new PatchError(`invalid JSON pointer ${JSON.stringify(ptr)}`);
  return ptr
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: unknown, segs: string[], op: string, ptr: string): { parent: Record<string, unknown> | unknown[]; key: string } {
  let cur: unknown = doc;
  for (const s of segs.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(s)];
    else if (isRecord(cur)) cur = cur[s];
    else cur = undefined;
    if (cur === undefined) throw new PatchError(`${op} operation does not apply: doc is missing path: ${ptr}: missing value`);
  }
  if (!Array.isArray(cur) && !isRecord(cur)) throw new PatchError(`${op} operation does not apply: doc is missing path: ${ptr}: missing value`);
  return { parent: cur, key: segs[segs.length - 1]! };
}

function getPtr(doc: unknown, ptr: string, op: string): unknown {
  let cur: unknown = doc;
  for (const s of parsePointer(ptr)) {
    if (Array.isArray(cur)) cur = cur[Number(s)];
    else if (isRecord(cur)) cur = Object.hasOwn(cur, s) ? cur[s] : undefined;
    else cur = undefined;
    if (cur === undefined) throw new PatchError(`${op} operation does not apply: doc is missing path: ${ptr}: missing value`);
  }
  return cur;
}

function arrayIndex(arr: unknown[], key: string, forAdd: boolean, op: string, ptr: string): number {
  if (forAdd && key === '-') return arr.length;
  const i = Number(key);
  if (!/^\d+$/.test(key) || i > arr.length || (!forAdd && i >= arr.length)) {
    throw new PatchError(`${op} operation does not apply: doc is missing path: ${ptr}: index out of range`);
  }
  return i;
}

function addAt(doc: unknown, ptr: string, value: unknown, op: string): unknown {
  const segs = parsePointer(ptr);
  if (segs.length === 0) return value;
  const { parent, key } = parentOf(doc, segs, op, ptr);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true, op, ptr), 0, value);
  else parent[key] = value;
  return doc;
}

function removeAt(doc: unknown, ptr: string, op: string): unknown {
  const segs = parsePointer(ptr);
  if (segs.length === 0) throw new PatchError(`${op} operation does not apply: cannot remove the whole document`);
  const { parent, key } = parentOf(doc, segs, op, ptr);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, false, op, ptr);
    const [v] = parent.splice(i, 1);
    return v;
  }
  if (!Object.hasOwn(parent, key)) throw new PatchError(`${op} operation does not apply: doc is missing path: ${ptr}: missing value`);
  const v = parent[key];
  delete parent[key];
  return v;
}

/** RFC 6902 on a copy of `doc`. Throws PatchError when an operation does not apply or a test fails. */
export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new PatchError('json patch must be an array of operations');
  let out = structuredClone(doc);
  for (const raw of ops) {
    if (!isRecord(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw new PatchError(`invalid json patch operation: ${JSON.stringify(raw)}`);
    }
    const { op, path } = raw;
    switch (op) {
      case 'add':
        out = addAt(out, path, structuredClone(raw.value), op);
        break;
      case 'remove':
        removeAt(out, path, op);
        break;
      case 'replace': {
        if (parsePointer(path).length === 0) {
          out = structuredClone(raw.value);
          break;
        }
        getPtr(out, path, op);
        removeAt(out, path, op);
        out = addAt(out, path, structuredClone(raw.value), op);
        break;
      }
      case 'move': {
        if (typeof raw.from !== 'string') throw new PatchError('move operation needs "from"');
        const v = removeAt(out, raw.from, op);
        out = addAt(out, path, v, op);
        break;
      }
      case 'copy': {
        if (typeof raw.from !== 'string') throw new PatchError('copy operation needs "from"');
        out = addAt(out, path, structuredClone(getPtr(out, raw.from, op)), op);
        break;
      }
      case 'test': {
        const v = getPtr(out, path, op);
        if (!deepEqualJson(v, raw.value)) throw new PatchError(`testing value ${path} failed: test failed`);
        break;
      }
      default:
        throw new PatchError(`Unexpected kind: ${op}`);
    }
  }
  return out;
}
