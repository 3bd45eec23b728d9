import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { idOfSource, instanceSource } from './model.ts';

describe('instanceSource and idOfSource', () => {
  it('give back the id of any instance, whatever its parts hold (colons included)', () => {
    fc.assert(
      fc.property(fc.constantFrom('aws', 'gcp', 'azure', 'static'), fc.string(), fc.string(), fc.string(), (provider, account, region, id) => {
        const of = { provider: provider as 'aws', account, region, id };
        expect(idOfSource(instanceSource(of), of)).toBe(id);
      }),
    );
  });
});
