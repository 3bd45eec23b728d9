// docker-compose.yml, read rather than run: Redis 7 plus `serve` built from the Dockerfile, the
// kubeconfig and the example config mounted, and a config that the service accepts as mounted.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.ts';
import { readInventory } from '../../providers/static/inventory.ts';
import { readYaml, ROOT } from './deploy-files.ts';

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

const compose = readYaml(path.join(ROOT, 'docker-compose.yml')) as { services: Record<string, any> };
const app = compose.services['vm-mesh-sync'];

/** Short (`src:dst:ro`) and long volume syntax. */
function mounts(service: any): Mount[] {
  return ((service.volumes ?? []) as Array<string | { source: string; target: string; read_only?: boolean }>).map((v) => {
    if (typeof v !== 'string') return { source: v.source, target: v.target, readOnly: v.read_only === true };
    // The source may hold `${VAR:-default}`, whose default has no colon here.
    const m = /^(\$\{[^}]*\}|[^:]+):([^:]+)(?::(\w+))?$/.exec(v);
    if (!m) throw new Error(`cannot read volume ${v}`);
    return { source: m[1]!, target: m[2]!, readOnly: (m[3] ?? '').split(',').includes('ro') };
  });
}

/** Environment as a map, from either of compose's forms. */
function environment(service: any): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  return Object.fromEntries((env as string[]).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** The host path behind a container path, through a bind mount of a repository folder or file. */
function hostPath(containerPath: string): string | undefined {
  for (const m of mounts(app)) {
    if (!m.source.startsWith('.')) continue;
    if (containerPath === m.target || containerPath.startsWith(`${m.target}/`)) {
      return path.join(ROOT, m.source, path.posix.relative(m.target, containerPath));
    }
  }
  return undefined;
}

describe('docker-compose.yml', () => {
  it('runs Redis 7 and vm-mesh-sync built from the Dockerfile', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['redis', 'vm-mesh-sync']);
    expect(compose.services.redis.image).toMatch(/^redis:7(\.|-|$)/);
    expect(compose.services.redis.command.join(' ')).toContain('--maxmemory-policy noeviction');
    expect(path.resolve(ROOT, app.build.context)).toBe(ROOT);
    expect(existsSync(path.join(ROOT, app.build.context, app.build.dockerfile ?? 'Dockerfile'))).toBe(true);
    expect(app.command[0]).toBe('serve');
    expect(app.depends_on.redis.condition).toBe('service_healthy');
    expect(compose.services.redis.healthcheck).toBeDefined();
  });

  it('points REDIS_URL at the compose Redis', () => {
    const url = new URL(environment(app).REDIS_URL!);
    expect(url.protocol).toBe('redis:');
    expect(url.hostname).toBe('redis');
    expect(Number(url.port || 6379)).toBe(6379);
  });

  it('mounts the kubeconfig read-only where KUBECONFIG points', () => {
    const kube = mounts(app).find((m) => m.target === environment(app).KUBECONFIG);
    expect(kube, 'a volume at $KUBECONFIG').toBeDefined();
    expect(kube!.source).toBe('${KUBECONFIG:-~/.kube/config}');
    expect(kube!.readOnly).toBe(true);
  });

  it('mounts every repository path that exists, read-only', () => {
    for (const m of mounts(app).filter((m) => m.source.startsWith('.'))) {
      expect(existsSync(path.join(ROOT, m.source)), m.source).toBe(true);
      expect(m.readOnly, m.source).toBe(true);
    }
  });

  it('serves the example config as mounted: loadConfig accepts it and its inventory is inside the mount', async () => {
    const args = app.command as string[];
    const containerConfig = args[args.indexOf('--config') + 1]!;
    const file = hostPath(containerConfig);
    expect(file, `${containerConfig} is not on a mounted repository path`).toBe(path.join(ROOT, 'config', 'examples', 'static.yaml'));
    const config = loadConfig(file!, environment(app));
    expect(config.redis.url).toBe(environment(app).REDIS_URL);
    const mountDir = path.dirname(file!);
    for (const p of config.providers) {
      if (p.type !== 'static') continue;
      expect(p.inventory.startsWith(`${mountDir}${path.sep}`), `${p.inventory} is outside the mounted folder`).toBe(true);
      const inv = await readInventory(p.inventory);
      expect(inv.complete).toBe(true);
    }
    // Published on all interfaces at the ports the config serves: webhooks and admin.
    expect(config.server.host).toBe('0.0.0.0');
    expect(app.ports).toEqual([`${config.server.port}:${config.server.port}`, `${config.server.adminPort}:${config.server.adminPort}`]);
  });

  it('runs as in the cluster: read-only root filesystem with /tmp writable, no capabilities', () => {
    expect(app.read_only).toBe(true);
    expect(app.tmpfs).toEqual(['/tmp']);
    expect(app.cap_drop).toEqual(['ALL']);
    expect(String(app.user)).not.toMatch(/^(0|root)(:|$)/);
  });
});
