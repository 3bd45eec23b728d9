import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { maskConfig, maskUrl } from './mask.ts';

describe('maskConfig', () => {
  it('hides secret values wherever they are, and keeps where a secret comes from', () => {
    const masked = maskConfig({
      redis: { url: 'redis://:hunter2@redis:6379' },
      providers: [
        {
          type: 'aws',
          accounts: [{ id: '123456789012', externalId: 'ext-inline-secret' }],
          webhook: { apiKey: { header: 'x-api-key', value: 'inline-api-key' }, basic: { username: 'eb', password: { env: 'EB_PASSWORD' } } },
        },
        { type: 'azure', webhook: { querySecret: { param: 'code', value: { file: '/secrets/code' } } } },
      ],
    });
    const text = JSON.stringify(masked);
    for (const secret of ['hunter2', 'ext-inline-secret', 'inline-api-key']) expect(text).not.toContain(secret);
    expect(masked.redis.url).toBe('redis://:***@redis:6379');
    expect(masked.providers[0]!.webhook!.apiKey!.header).toBe('x-api-key');
    expect(masked.providers[0]!.webhook!.basic!).toEqual({ username: 'eb', password: { env: 'EB_PASSWORD' } });
    expect(masked.providers[1]!.webhook!.querySecret).toEqual({ param: 'code', value: { file: '/secrets/code' } });
  });
});

describe('maskUrl', () => {
  it.each([
    ['redis://:pw@host:6379', 'redis://:***@host:6379'],
    ['redis://user:pw@host', 'redis://user:***@host'],
    ['redis://host:6379', 'redis://host:6379'],
    ['redis://user:s3cret@redis:6379/0', 'redis://user:***@redis:6379/0'],
    ['rediss://default:p@ss:w0rd@redis.example:6380/1', 'rediss://default:***@redis.example:6380/1'],
    ['https://ghp_token@example.com/repo', 'https://***@example.com/repo'],
    ['redis://host:6379/0?password=pw&db=2', 'redis://host:6379/0?password=***&db=2'],
    ['redis://host?db=2&Password=pw#top', 'redis://host?db=2&Password=***#top'],
    ['https://www.googleapis.com/robot/v1/metadata/x509/sa@project.iam.gserviceaccount.com', 'https://www.googleapis.com/robot/v1/metadata/x509/sa@project.iam.gserviceaccount.com'],
    ['https://compute.example/v1', 'https://compute.example/v1'],
    ['not a url: a:b@c', 'not a url: a:b@c'],
    ['', ''],
  ])('maskUrl(%s) is %s', (url, expected) => {
    expect(maskUrl(url)).toBe(expected);
  });

  it('never shows the password of a connection string, in the user part or the query', () => {
    // Upper case and punctuation only, so the password cannot turn up in the lower-case rest by chance.
    const password = fc.stringMatching(/^[A-Z@:!$%*]{3,24}$/).filter((p) => /[A-Z]{2}/.test(p) && !p.includes('***'));
    fc.assert(
      fc.property(password, fc.constantFrom('redis', 'rediss', 'https'), fc.constantFrom('', 'user'), (pw, scheme, user) => {
        expect(maskUrl(`${scheme}://${user}:${pw}@cache.example:6379/0`)).not.toContain(pw);
        expect(maskUrl(`${scheme}://cache.example:6379/0?db=1&password=${encodeURIComponent(pw)}`)).not.toContain(encodeURIComponent(pw));
      }),
    );
  });
});
