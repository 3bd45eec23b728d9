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
