// /readyz of `serve`: Redis answers, the Kubernetes API answers, every scope has resynced or said
// why not. The cluster is asked at most every KUBE_CHECK_TTL_MS, however often probes come.
import type { Redis } from 'ioredis';
import type { Config } from '../../config/schema.ts';
import { writerNamespaces } from '../mapping/index.ts';
import type { Readiness } from '../server/server.ts';
import type { KubeApi } from '../writer/kube-api.ts';
import type { StatusStore } from './status-store.ts';

const KUBE_CHECK_TTL_MS = 10_000;

/** What the checks read. */
export interface ReadinessOptions {
  config: Readonly<Config>;
  redis: Pick<Redis, 'ping'>;
  api: Pick<KubeApi, 'getEntry'>;
  status: Pick<StatusStore, 'scopes'>;
  /** The configured scopes' keys. */
  scopeKeys: () => string[];
}

/** The readiness checks of one process. */
export class ReadinessChecks {
  readonly #options: ReadinessOptions;
  #kubeCheck: { at: number; ok: boolean; detail: string } = { at: 0, ok: false, detail: 'not checked yet' };

  constructor(options: ReadinessOptions) {
    this.#options = options;
  }

  /** Every check, and whether all pass. */
  async readiness(): Promise<Readiness> {
    const checks: Readiness['checks'] = {};
    try {
      await this.#options.redis.ping();
      checks.redis = { ok: true };
    } catch (err) {
      checks.redis = { ok: false, detail: (err as Error).message };
    }
    checks.kubernetes = await this.#checkKube();
    if (checks.redis.ok) {
      const statuses = await this.#options.status.scopes();
      const pending = this.#options.scopeKeys().filter((k) => !statuses.has(k));
      checks.scopes = pending.length === 0 ? { ok: true } : { ok: false, detail: `no resync yet: ${pending.join(', ')}` };
    } else {
      checks.scopes = { ok: false, detail: 'unknown while Redis is unreachable' };
    }
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }

  async #checkKube(): Promise<{ ok: boolean; detail?: string }> {
    const now = Date.now();
    if (now - this.#kubeCheck.at > KUBE_CHECK_TTL_MS) {
      try {
        // A GET of an entry that need not exist: a 404 proves the API answers and we may read.
        // In a namespace we may read, so that a Role per allowed namespace suffices.
        const namespace = writerNamespaces(this.#options.config).namespaces.find((n) => !n.includes('*')) ?? 'default';
        await this.#options.api.getEntry(namespace, 'vm-mesh-sync-readiness-probe');
        this.#kubeCheck = { at: now, ok: true, detail: '' };
      } catch (err) {
        this.#kubeCheck = { at: now, ok: false, detail: (err as Error).message };
      }
    }
    return this.#kubeCheck.ok ? { ok: true } : { ok: false, detail: this.#kubeCheck.detail };
  }
}
