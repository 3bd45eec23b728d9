import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseWebhookBody } from './webhook-body.ts';

/** Every character of the text's keys and strings written as \uXXXX, as a sender may. */
function escapeAll(text: string): string {
  return text.replace(/"((?:[^"\\]|\\.)*)"/g, (_m, inner: string) => `"${[...(JSON.parse(`"${inner}"`) as string)].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`);
}

const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__proto__', 'constructor', 'prototype', 'detail', 'type'));
const body = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.string({ maxLength: 6 }), fc.integer(), fc.boolean(), fc.constant(null), tie('object'), fc.array(tie('value'), { maxLength: 3 })),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
})).object;

/** What parsing with the check on every value gives: the value, or the error's message. */
function strict(raw: string): unknown {
  try {
    return JSON.parse(raw, (k, v: unknown) => {
      if (k === '__proto__') throw new Error('refused');
      if (k === 'constructor' && typeof v === 'object' && v !== null && Object.hasOwn(v, 'prototype')) throw new Error('refused');
      return v;
    });
  } catch {
    return 'refused';
  }
}

function parsed(raw: string): unknown {
  try {
    return parseWebhookBody(raw);
  } catch {
    return 'refused';
  }
}

describe('parseWebhookBody', () => {
  it.each([
    ['a plain event', '{"type":"ping","detail":{"a":1}}', { type: 'ping', detail: { a: 1 } }],
    ['a __proto__ key', '{"type":"ping","__proto__":{"polluted":true}}', 'refused'],
    ['a __proto__ key written with escapes', '{"\\u005f_proto__":{"polluted":true}}', 'refused'],
    ['constructor.prototype', '{"constructor":{"prototype":{"x":1}}}', 'refused'],
    ['constructor.prototype written with escapes', '{"\\u0063onstructor":{"prototype":{"x":1}}}', 'refused'],
    ['a constructor that is a string', '{"constructor":"x"}', { constructor: 'x' }],
    ['an escaped character elsewhere', '{"a":"\\u00e9"}', { a: 'é' }],
    ['blank', '  ', undefined],
  ])('%s', (_name, raw, expected) => {
    expect(parsed(raw)).toEqual(expected);
  });

  it('refuses exactly what a check of every value refuses, whether the keys are written plainly or escaped', () => {
    fc.assert(
      fc.property(body, fc.boolean(), (value, escaped) => {
        const raw = escaped ? escapeAll(JSON.stringify(value)) : JSON.stringify(value);
        expect(parsed(raw)).toEqual(strict(raw));
      }),
      { numRuns: 500 },
    );
  });
});
