import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ByteArena, JsonListSplitter, readJsonList } from './json-list.ts';

/** The answer's bytes cut at the given fractions of its length, as a socket may hand them over. */
async function* chunked(bytes: Buffer, cuts: readonly number[]): AsyncGenerator<Buffer> {
  const at = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...at, bytes.length]) {
    if (to > from) yield bytes.subarray(from, to);
    from = to;
  }
}

async function read(text: string, cuts: readonly number[] = []): Promise<{ items: unknown[]; rest: unknown }> {
  const answer = await readJsonList(chunked(Buffer.from(text, 'utf8'), cuts));
  return { items: answer.items.map((bytes) => JSON.parse(bytes.toString('utf8')) as unknown), rest: answer.rest };
}

const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constantFrom('"', '\\', '}', ']', ',"items":[', '{"items":[1]}', 'é€😀'));
const value = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, text, fc.integer(), fc.boolean(), fc.constant(null), tie('list'), tie('object')),
  list: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(text, tie('value'), { maxKeys: 4 }),
})).value;

describe('readJsonList', () => {
  it('hands on every item in order and keeps the rest, wherever the chunks are cut and whatever the keys\' order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(value, { maxLength: 6 }),
        fc.dictionary(fc.string().filter((k) => k !== 'items'), value, { maxKeys: 3 }),
        fc.nat({ max: 3 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }),
        fc.boolean(),
        async (items, others, itemsAt, cuts, pretty) => {
          const entries = Object.entries(others);
          entries.splice(Math.min(itemsAt, entries.length), 0, ['items', items]);
          const list = Object.fromEntries(entries);
          const json = pretty ? JSON.stringify(list, null, 2) : JSON.stringify(list);
          const got = await read(json, cuts);
          const expected = JSON.parse(json) as { items: unknown[] };
          expect(got.items).toEqual(expected.items);
          expect(got.rest).toEqual({ ...expected, items: [] });
        },
      ),
      { numRuns: 400 },
    );
  });

  it('reads a WorkloadEntry list page as the API server sends it', async () => {
    const page = {
      kind: 'WorkloadEntryList',
      apiVersion: 'networking.istio.io/v1',
      metadata: { resourceVersion: '812', continue: 'eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6ODEyfQ' },
      items: [
        { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'a', namespace: 'vms', labels: { x: '}' } }, spec: { address: '10.0.0.1' } },
        { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name: 'b', namespace: 'vms', annotations: { note: 'a "quoted" [list], {x}' } }, spec: { address: '10.0.0.2' } },
      ],
    };
    const got = await read(JSON.stringify(page), [0.1, 0.35, 0.36, 0.8]);
    expect(got.items).toEqual(page.items);
    expect(got.rest).toEqual({ ...page, items: [] });
  });

  it.each([
    ['no items key', '{"kind":"WorkloadEntryList","metadata":{}}', { kind: 'WorkloadEntryList', metadata: {} }],
    ['items that are not a list', '{"items":null,"metadata":{"continue":""}}', { items: null, metadata: { continue: '' } }],
    ['an empty list', '{"items":[ ],"metadata":{}}', { items: [], metadata: {} }],
    ['a key spelt with an escape', '{"it\\u0065ms":[{"a":1}]}', { items: [] }],
  ])('%s: nothing is lost', async (_name, json, rest) => {
    const got = await read(json, [0.5]);
    expect(got.rest).toEqual(rest);
    expect(got.items).toEqual(json.includes('"a":1') ? [{ a: 1 }] : []);
  });

  it.each([
    ['cut off inside an item', '{"items":[{"a":1},{"b":'],
    ['cut off after the items', '{"items":[{"a":1}]'],
    ['an item that is not JSON', '{"items":[{"a":tru}]}'],
    ['a stray comma', '{"items":[,{"a":1}]}'],
    ['two commas between items', '{"items":[{"a":1},,{"a":2}]}'],
    ['a comma after the last item', '{"items":[{"a":1},]}'],
  ])('%s: rejects, as parsing the whole answer would', async (_name, json) => {
    expect(() => JSON.parse(json)).toThrow(SyntaxError);
    await expect(read(json, [0.3])).rejects.toThrow(SyntaxError);
  });

  it('splits the list of another key, or a bare list, and says on which line each item and top-level key starts', () => {
    const space = fc.constantFrom('', ' ', '\n', '\r\n', '\n\n', '\t');
    fc.assert(
      fc.property(fc.array(fc.tuple(value, space, space), { maxLength: 6 }), fc.boolean(), space, fc.boolean(), (items, bare, lead, pretty) => {
        // The text built piece by piece, with the line each item starts on.
        let text = bare ? `${lead}[` : `${lead}{"other": 1,\n"machines": [`;
        const lines: number[] = [];
        const lineAt = (): number => text.split('\n').length;
        items.forEach(([item, before, after], i) => {
          text += `${i > 0 ? ',' : ''}${before}`;
          lines.push(lineAt());
          // Pretty-printed, an item spans lines: those after it start further down.
          text += `${pretty ? JSON.stringify(item, null, 2) : JSON.stringify(item)}${after}`;
        });
        text += bare ? ']' : '],\n"last": [2]}';
        const got: Array<{ item: unknown; line: number }> = [];
        const splitter = new JsonListSplitter((t, line) => got.push({ item: JSON.parse(t), line }), bare ? { bareList: true } : { key: 'machines' });
        const bytes = Buffer.from(text, 'utf8');
        for (let at = 0; at < bytes.length; at += 7) splitter.write(bytes.subarray(at, at + 7));
        // What JSON.parse makes of each item's text (a generated value need not survive JSON as it is).
        expect(got).toEqual(items.map(([item], i) => ({ item: JSON.parse(JSON.stringify(item)) as unknown, line: lines[i] })));
        expect(JSON.parse(splitter.end())).toEqual(bare ? [] : { other: 1, machines: [], last: [2] });
        const top = lead.split('\n').length;
        expect(splitter.keys).toEqual(bare ? [] : [{ key: 'other', line: top }, { key: 'machines', line: top + 1 }, { key: 'last', line: text.split('\n').length }]);
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ['as views of the chunks', undefined],
    ['copied into an arena that grows', 16],
  ])('leaves out an item\'s metadata.managedFields where it can, and nothing else, wherever the chunks are cut (items %s)', async (_how, arenaSize) => {
    // With keys one byte off the two it looks for, at either end.
    const member = fc.oneof(fc.constantFrom('managedFields', 'metadata', 'name', 'labels', 'managedFieldz', 'xanagedFields', 'metadatx', 'xetadata'), fc.string({ maxLength: 4 }));
    // Objects that may hold members named managedFields or metadata at any depth.
    const object = fc.dictionary(member, fc.oneof(value, fc.dictionary(member, fc.oneof(value, fc.array(value, { maxLength: 2 })), { maxKeys: 3 })), { maxKeys: 4 });
    const managed = fc.oneof(fc.array(value, { maxLength: 3 }), value);
    const item = fc.record({
      before: object,
      metadata: fc.option(fc.record({ before: object, managed: fc.option(managed, { nil: undefined }), after: object }), { nil: undefined }),
      after: object,
    });
    await fc.assert(
      fc.asyncProperty(fc.array(item, { maxLength: 5 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }), fc.boolean(), async (made, cuts, pretty) => {
        const items = made.map(({ before, metadata, after }) => {
          const { metadata: _m, ...rest } = before;
          if (metadata === undefined) return { ...rest, ...after };
          const meta: Record<string, unknown> = { ...metadata.before };
          delete meta.managedFields;
          if (metadata.managed !== undefined) meta.managedFields = metadata.managed;
          Object.assign(meta, Object.fromEntries(Object.entries(metadata.after).filter(([k]) => k !== 'managedFields')));
          return { ...rest, metadata: meta, ...Object.fromEntries(Object.entries(after).filter(([k]) => k !== 'metadata')) };
        });
        const json = pretty ? JSON.stringify({ items }, null, 2) : JSON.stringify({ items });
        const bytes = Buffer.from(json, 'utf8');
        const arena = arenaSize === undefined ? undefined : new ByteArena(arenaSize);
        const answer = await readJsonList(chunked(bytes, cuts), { leaveOut: ['metadata', 'managedFields'] }, arena);
        const got = answer.items.map((b) => JSON.parse(b.toString('utf8')) as Record<string, unknown>);
        const expected = JSON.parse(json) as { items: Array<Record<string, unknown>> };
        expect(got).toHaveLength(expected.items.length);
        got.forEach((g, i) => {
          const whole = expected.items[i]!;
          const meta = whole.metadata as Record<string, unknown> | undefined;
          const { managedFields: _f, ...lessMeta } = (meta ?? {}) as Record<string, unknown>;
          const without = { ...whole, metadata: lessMeta };
          // Left out only when it is a list; whole in one chunk and compact, always.
          const canGo = typeof meta === 'object' && meta !== null && !Array.isArray(meta) && Array.isArray(meta.managedFields);
          if (!canGo) expect(g).toEqual(whole);
          else if (!pretty && cuts.length === 0) expect(g).toEqual(without);
          else expect([JSON.stringify(whole), JSON.stringify(without)]).toContain(JSON.stringify(g));
        });
      }),
      { numRuns: 400 },
    );
  });

  it('reads items into an arena as copies, answer after answer, whatever the arena\'s size and the chunks\' cuts', async () => {
    const answers = fc.array(fc.array(value, { maxLength: 6 }), { minLength: 1, maxLength: 4 });
    await fc.assert(
      fc.asyncProperty(answers, fc.integer({ min: 1, max: 64 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }), async (lists, size, cuts) => {
        const arena = new ByteArena(size);
        for (const items of lists) {
          const bytes = Buffer.from(JSON.stringify({ items, metadata: { continue: 'x' } }), 'utf8');
          const chunks: Buffer[] = [];
          const answer = await readJsonList(
            (async function* () {
              for await (const chunk of chunked(bytes, cuts)) {
                chunks.push(chunk);
                yield chunk;
              }
            })(),
            {},
            arena,
          );
          expect(answer.items.map((b) => JSON.parse(b.toString('utf8')) as unknown)).toEqual(JSON.parse(JSON.stringify(items)));
          expect(answer.rest).toEqual({ items: [], metadata: { continue: 'x' } });
          // No item is a view of the memory a chunk came in, which it would keep alive.
          for (const item of answer.items) expect(chunks.some((c) => c.buffer === item.buffer)).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });

  it.each([
    ['a comma after the last item', '[{"a":1},]'],
    ['two commas', '[{"a":1},,{"a":2}]'],
    ['a leading comma', '[,{"a":1}]'],
  ])('a bare list with %s: rejects, as JSON.parse would', (_name, json) => {
    expect(() => JSON.parse(json)).toThrow(SyntaxError);
    const splitter = new JsonListSplitter(() => undefined, { bareList: true });
    splitter.write(Buffer.from(json));
    expect(() => JSON.parse(splitter.end())).toThrow(SyntaxError);
  });
});
