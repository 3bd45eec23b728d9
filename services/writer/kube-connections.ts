// The connection reuse the Kubernetes client lacks; see reuseConnections.
import { createHash } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';

type CreateDispatcher = (cluster: unknown, agentOptions: Record<string, unknown>) => unknown;

const reusing = new WeakSet<KubeConfig>();

/**
 * Makes the client reuse its connections. @kubernetes/client-node 2.0 builds a new undici Agent for
 * every request whenever TLS options are set (always in a cluster), so every request pays a new
 * connection and TLS handshake. Dispatchers are kept per set of options instead: a rotated client
 * certificate gives new options and so a new dispatcher. Without the hook (another client
 * version), nothing changes.
 */
export function reuseConnections(kc: KubeConfig, keep = 4): void {
  const target = kc as unknown as { createDispatcher?: CreateDispatcher };
  const original = target.createDispatcher;
  if (typeof original !== 'function' || reusing.has(kc)) return;
  reusing.add(kc);
  const cache = new Map<string, unknown>();
  target.createDispatcher = (cluster, agentOptions) => {
    const c = (cluster ?? {}) as { server?: string; proxyUrl?: string };
    const key = createHash('sha256')
      .update(JSON.stringify([c.server, c.proxyUrl, agentOptions.rejectUnauthorized, agentOptions.servername]))
      .update(String(agentOptions.ca ?? ''))
      .update(String(agentOptions.cert ?? ''))
      .update(String(agentOptions.key ?? ''))
      .update(String(agentOptions.pfx ?? ''))
      .digest('hex');
    let dispatcher = cache.get(key);
    if (dispatcher === undefined) {
      dispatcher = original.call(kc, cluster, agentOptions);
      if (cache.size >= keep) {
        const [oldest, old] = cache.entries().next().value as [string, { close?: () => Promise<void> } | undefined];
        cache.delete(oldest);
        void old?.close?.().catch(() => {});
      }
      cache.set(key, dispatcher);
    }
    return dispatcher;
  };
}
