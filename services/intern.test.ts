import { describe, expect, it } from 'vitest';
import { Interner, MEMO_LIMIT } from './intern.ts';

describe('Interner.memo', () => {
  it('computes a key once per table, and keys of other tables apart', () => {
    const shared = new Interner();
    let calls = 0;
    const twice = (key: string) => shared.memo('a', key, () => (calls++, `${key}!`));
    expect([twice('x'), twice('x'), twice('y'), shared.memo('b', 'x', () => 'other')]).toEqual(['x!', 'x!', 'y!', 'other']);
    expect(calls).toBe(2);
  });

  it(`keeps at most ${MEMO_LIMIT} results a table, and still answers every key right past that`, () => {
    const shared = new Interner();
    let calls = 0;
    const square = (n: number) => shared.memo('squares', String(n), () => (calls++, n * n));
    for (let n = 0; n < MEMO_LIMIT + 10; n++) expect(square(n)).toBe(n * n);
    calls = 0;
    expect(square(MEMO_LIMIT + 5)).toBe((MEMO_LIMIT + 5) ** 2);
    expect(square(0)).toBe(0);
    // The one past the limit was computed again; the first one was kept.
    expect(calls).toBe(1);
  });
});

describe('Interner.memoPath', () => {
  it.each<[string, string[], string[]]>([
    ['two strings and their join', ['ab'], ['a', 'b']],
    ['no strings and one empty one', [], ['']],
    ['a path and its prefix', ['a', 'b'], ['a']],
    ['the same strings in another order', ['a', 'b'], ['b', 'a']],
    ['a value that spells the next key', ['k', 'v:k2'], ['k', 'v', 'k2']],
  ])('tells apart %s', (_, a, b) => {
    const shared = new Interner();
    expect(shared.memoPath('t', a, () => 'a')).toBe('a');
    expect(shared.memoPath('t', b, () => 'b')).toBe('b');
    expect(shared.memoPath('t', a, () => 'again')).toBe('a');
    expect(shared.memoPath('t', b, () => 'again')).toBe('b');
  });

  it('computes a path once per table, and paths of other tables apart', () => {
    const shared = new Interner();
    let calls = 0;
    const once = (path: string[]) => shared.memoPath('a', path, () => (calls++, path.join('+')));
    expect([once(['x', 'y']), once(['x', 'y']), once(['x']), shared.memoPath('b', ['x', 'y'], () => 'other')]).toEqual(['x+y', 'x+y', 'x', 'other']);
    expect(calls).toBe(2);
  });

  it(`keeps at most ${MEMO_LIMIT} results a table, and still answers every path right past that`, () => {
    const shared = new Interner();
    let calls = 0;
    const square = (n: number) => shared.memoPath('squares', ['n', String(n)], () => (calls++, n * n));
    for (let n = 0; n < MEMO_LIMIT + 10; n++) expect(square(n)).toBe(n * n);
    calls = 0;
    expect(square(MEMO_LIMIT + 5)).toBe((MEMO_LIMIT + 5) ** 2);
    expect(square(0)).toBe(0);
    // A prefix of kept paths, with no result of its own: computed, and not kept either.
    expect(shared.memoPath('squares', ['n'], () => (calls++, -1))).toBe(-1);
    expect(shared.memoPath('squares', ['n'], () => (calls++, -2))).toBe(-2);
    expect(calls).toBe(3);
  });
});
