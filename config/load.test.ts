import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, maskConfig, maskUrl } from './load.ts';

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

  it.each([
    ['redis://:pw@host:6379', 'redis://:***@host:6379'],
    ['redis://user:pw@host', 'redis://user:***@host'],
    ['redis://host:6379', 'redis://host:6379'],
  ])('maskUrl(%s)', (url, expected) => {
    expect(maskUrl(url)).toBe(expected);
  });
});

describe('loadConfig', () => {
  it('applies environment overrides and freezes the result', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vms-config-'));
    try {
      const file = path.join(dir, 'config.yaml');
      writeFileSync(file, 'providers:\n  - {type: static, name: a, inventory: inv.yaml}\n');
      const config = loadConfig(file, { REDIS_URL: 'redis://r:1', VMS_OWNER_ID: 'blue', VMS_PORT: '9090', VMS_ADMIN_PORT: '9091' });
      expect(config.redis.url).toBe('redis://r:1');
      expect(config.ownerId).toBe('blue');
      expect(config.server.port).toBe(9090);
      expect(config.server.adminPort).toBe(9091);
      expect(config.providers[0]).toMatchObject({ inventory: path.join(dir, 'inv.yaml') });
      expect(Object.isFrozen(config.mapping)).toBe(true);
      expect(() => loadConfig(file, { VMS_PORT: 'eighty' })).toThrow(expect.objectContaining({ code: 'VMS_ERR_CONFIG_ENV' }));
      expect(config.server).toMatchObject({ tokenClockSkew: 60_000, rateLimit: { max: 3000, window: 10_000 }, trustProxy: false });
      writeFileSync(file, 'providers:\n  - {type: static, name: a, inventory: inv.yaml}\nserver: {tokenClockSkew: 6m}\n');
      expect(() => loadConfig(file, {})).toThrow(/server\.tokenClockSkew.*at most 5m/s);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
