import { describe, expect, it } from 'vitest';
import { clip, constantTimeEqual, describeJson, parseBody, singleHeader } from './webhook-support.ts';

describe('webhook support', () => {
  it.each([
    ['equal', 's3cret', 's3cret', true],
    ['different, same length', 's3cret', 's3creT', false],
    ['shorter', 's3cre', 's3cret', false],
    ['longer', 's3crets', 's3cret', false],
    ['empty against a secret', '', 's3cret', false],
  ])('constantTimeEqual: %s', (_name, presented, expected, result) => {
    expect(constantTimeEqual(presented, expected)).toBe(result);
  });

  it('reads the parsed body, else the raw text, and names what was expected', () => {
    expect(parseBody({ method: 'POST', headers: {}, query: {}, body: { a: 1 }, rawBody: '' }, 'an event')).toEqual({ a: 1 });
    expect(parseBody({ method: 'POST', headers: {}, query: {}, body: undefined, rawBody: '[1]' }, 'an event')).toEqual([1]);
    expect(() => parseBody({ method: 'POST', headers: {}, query: {}, body: undefined, rawBody: ' ' }, 'an event')).toThrow(/empty; expected an event/);
    expect(() => parseBody({ method: 'POST', headers: {}, query: {}, body: undefined, rawBody: '{' }, 'an event')).toThrow(
      expect.objectContaining({ code: 'VMS_ERR_WEBHOOK_BODY' }),
    );
  });

  it('a repeated header counts as absent', () => {
    expect(singleHeader({ 'x-api-key': 'k' }, 'x-api-key')).toBe('k');
    expect(singleHeader({ 'x-api-key': ['k', 'k'] }, 'x-api-key')).toBeUndefined();
  });

  it('clips and escapes values for messages', () => {
    expect(clip('a\nb')).toBe('a\\u000ab');
    expect(clip('x'.repeat(200), 10)).toBe('xxxxxxx...');
    expect(describeJson(null)).toBe('null');
    expect(describeJson([])).toBe('an array');
  });
});
