// Generated damage to a valid document: a few of its values replaced, removed or wrapped, keys
// added. Starting from a document the code accepts reaches deep paths that random text never does.
import fc from 'fast-check';

/** A JSON-like value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One change to one place of a document. */
export type Mutation =
  | { kind: 'replace'; at: number; value: unknown }
  | { kind: 'remove'; at: number }
  | { kind: 'wrap'; at: number }
  | { kind: 'add'; at: number; key: string; value: unknown };

/** Values that break parsers and checks: empty, huge, negative, wrong type, prototype names. */
export const NASTY_VALUES: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  2 ** 31,
  2 ** 53 + 1,
  1e308,
  -0,
  '',
  ' ',
  '0',
  'true',
  'null',
  '\u0000',
  '\uFEFF',
  '\ud800',
  'x'.repeat(4096),
  '__proto__',
  'constructor',
  'toString',
  '../../etc/passwd',
  '${HOME}',
  '600h',
  '99999999999999999999h',
  '1.5s',
  '-1s',
  '0ms',
  'http://127.0.0.1:1/',
  'redis://:p@127.0.0.1:1',
  '10.0.0.1',
  '::1',
  'i-0123456789abcdef0',
  'arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0',
  '/subscriptions/1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm',
  [],
  [null],
  {},
  JSON.parse('{"__proto__":{"polluted":true}}'),
  { constructor: { prototype: { polluted: true } } },
];

/** A value to put somewhere: a nasty one, or any JSON value. */
export const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.constantFrom(...NASTY_VALUES), weight: 3 },
  { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 1 },
);

/** Up to `max` mutations; `at` picks a place in the document (modulo the number of places). */
export function mutations(max = 4): fc.Arbitrary<Mutation[]> {
  const at = fc.nat();
  return fc.array(
    fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('replace' as const), at, value: anyValue }), weight: 4 },
      { arbitrary: fc.record({ kind: fc.constant('remove' as const), at }), weight: 2 },
      { arbitrary: fc.record({ kind: fc.constant('wrap' as const), at }), weight: 1 },
      {
        arbitrary: fc.record({
          kind: fc.constant('add' as const),
          at,
          key: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'extra', ''), fc.string({ maxLength: 12 })),
          value: anyValue,
        }),
        weight: 1,
      },
    ),
    { minLength: 1, maxLength: max },
  );
}

/** Every path to a value inside `doc` (the root included, as []). */
export function paths(doc: unknown, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [prefix];
  if (Array.isArray(doc)) doc.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (doc !== null && typeof doc === 'object') for (const [k, v] of Object.entries(doc)) out.push(...paths(v, [...prefix, k]));
  return out;
}

/** A copy of `doc` with the mutations applied, in order. */
export function applyMutations(doc: unknown, list: readonly Mutation[]): unknown {
  let root: unknown = structuredClone(doc);
  for (const m of list) {
    const all = paths(root);
    const path = all[m.at % all.length]!;
    const parent = path.length === 0 ? undefined : (get(root, path.slice(0, -1)) as Record<string | number, unknown>);
    const last = path.at(-1);
    const current = get(root, path);
    let next: unknown;
    switch (m.kind) {
      case 'replace':
        next = structuredClone(m.value);
        break;
      case 'wrap':
        next = [current];
        break;
      case 'add':
        if (current !== null && typeof current === 'object' && !Array.isArray(current)) {
          // defineProperty, so that a `__proto__` key is an own key as JSON.parse would make it.
          Object.defineProperty(current, m.key, { value: structuredClone(m.value), enumerable: true, writable: true, configurable: true });
        }
        continue;
      case 'remove':
        if (parent === undefined || last === undefined) {
          root = undefined;
        } else if (Array.isArray(parent)) {
          parent.splice(last as number, 1);
        } else {
          delete parent[last];
        }
        continue;
    }
    if (parent === undefined || last === undefined) root = next;
    else Object.defineProperty(parent, last, { value: next, enumerable: true, writable: true, configurable: true });
  }
  return root;
}

function get(doc: unknown, path: ReadonlyArray<string | number>): unknown {
  let node: unknown = doc;
  for (const key of path) node = (node as Record<string | number, unknown>)[key];
  return node;
}
