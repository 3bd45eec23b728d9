// Cluster access for the commands: the narrow API and a writer bound to our owner id.
import type { Config } from '../../config/schema.ts';
import { writerNamespaces } from '../mapping/index.ts';
import { isVmsError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createKubeApi, type KubeApi } from '../writer/kube-api.ts';
import { loadKubeConfig } from '../writer/kubeconfig.ts';
import { Writer } from '../writer/writer.ts';

/** A cluster we can talk to, or why not. */
export type ClusterAccess =
  | { ok: true; api: KubeApi; writer: Writer; server: string }
  | { ok: false; reason: string };

/**
 * Loads cluster access from config and the environment. With `optional`, a missing kubeconfig is
 * an answer (`ok: false` with the reason) rather than an error.
 */
export function openCluster(
  config: Pick<Config, 'kubernetes' | 'ownerId' | 'mapping' | 'queue'>,
  options: { optional: boolean; logger?: Logger; env?: NodeJS.ProcessEnv },
): ClusterAccess {
  try {
    const kc = loadKubeConfig({
      kubeconfig: config.kubernetes.kubeconfig,
      context: config.kubernetes.context,
      ...(options.env ? { env: options.env, ...(options.env.HOME ? { homeDir: options.env.HOME } : {}) } : {}),
    });
    const api = createKubeApi(kc);
    const writer = new Writer({
      api,
      ownerId: config.ownerId,
      fieldManager: config.kubernetes.fieldManager,
      ensureServiceAccounts: config.mapping.serviceAccount.ensure,
      pageSize: config.kubernetes.pageSize,
      listRetry: { maxAttempts: config.queue.attempts, baseDelayMs: config.queue.backoff },
      ...writerNamespaces(config),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    return { ok: true, api, writer, server: kc.getCurrentCluster()?.server ?? 'unknown server' };
  } catch (err) {
    if (options.optional && isVmsError(err, 'VMS_ERR_KUBE_UNREACHABLE')) return { ok: false, reason: err.message };
    throw err;
  }
}
