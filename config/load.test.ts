import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ENV_OVERRIDES, loadConfig, parseConfig } from './load.ts';

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

describe('labels vm-mesh-sync sets itself', () => {
  it.each([
    ['mapping.labels.static', { static: { 'vm-mesh-sync.io/service': 'pg' } }],
    ['mapping.labels.static', { static: { 'app.kubernetes.io/managed-by': 'me' } }],
    ['mapping.labels.fromTags', { fromTags: { team: 'vm-mesh-sync.io/installation' } }],
  ])('may not be set by %s', (path, labels) => {
    expect(() => parseConfig({ providers: [{ type: 'static', name: 'a', inventory: 'x' }], mapping: { labels } })).toThrow(
      expect.objectContaining({ code: 'VMS_ERR_CONFIG_INVALID', message: expect.stringMatching(new RegExp(`${path.replaceAll('.', '\\.')}[\\s\\S]*a label vm-mesh-sync sets itself`)) }),
    );
  });
});

describe("the README's list of environment overrides", () => {
  it('names every variable the loader reads, and no other', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const sentence = /^Environment overrides: ([\s\S]*?) for the file\./m.exec(readme)?.[1];
    expect(sentence).toBeDefined();
    const named = [...sentence!.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]).sort();
    expect(named).toEqual([...ENV_OVERRIDES.map((o) => o.env), 'VMS_CONFIG'].sort());
  });
});
