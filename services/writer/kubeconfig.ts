// Where cluster access comes from: the kubeconfig search of vm-mesh-sync, with errors that say
// what to change rather than the client's own.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { VmsError } from '../errors.ts';

/** Where to read cluster access from; empty strings mean "not given", as in the config file. */
export interface LoadKubeConfigOptions {
  /** An explicit kubeconfig path; wins over everything. */
  kubeconfig?: string;
  /** A context of that kubeconfig; empty: its current context. */
  context?: string;
  /** For tests: the environment and home directory to look in. */
  env?: NodeJS.ProcessEnv;
  homeDir?: string;
}

const IN_CLUSTER_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Cluster access in the order the config documents: an explicit path, $KUBECONFIG, the in-cluster
 * service account, ~/.kube/config. Unlike the client's own default it never falls back to
 * http://localhost:8080, which would turn a missing kubeconfig into confusing connection errors.
 */
export function loadKubeConfig(options: LoadKubeConfigOptions = {}): KubeConfig {
  const env = options.env ?? process.env;
  const kc = new KubeConfig();
  const explicit = options.kubeconfig ?? '';
  const envPaths = (env.KUBECONFIG ?? '').split(path.delimiter).filter((p) => p !== '');
  const home = options.homeDir ?? os.homedir();
  const homeConfig = path.join(home, '.kube', 'config');
  try {
    if (explicit !== '') {
      kc.loadFromFile(explicit);
    } else if (envPaths.length > 0) {
      const [first, ...rest] = envPaths as [string, ...string[]];
      kc.loadFromFile(first);
      for (const file of rest) {
        const more = new KubeConfig();
        more.loadFromFile(file);
        kc.mergeConfig(more);
      }
    } else if (env.KUBERNETES_SERVICE_HOST && fs.existsSync(IN_CLUSTER_TOKEN)) {
      kc.loadFromCluster();
    } else if (fs.existsSync(homeConfig)) {
      kc.loadFromFile(homeConfig);
    } else {
      throw new Error('no kubeconfig given, $KUBECONFIG unset, not in a cluster, and no ~/.kube/config');
    }
  } catch (err) {
    throw new VmsError('VMS_ERR_KUBE_UNREACHABLE', `cannot load cluster access: ${(err as Error).message}`, undefined, { cause: err });
  }
  const context = options.context ?? '';
  if (context !== '') {
    if (!kc.getContexts().some((c) => c.name === context)) {
      const known = kc.getContexts().map((c) => c.name).join(', ') || 'none';
      throw new VmsError('VMS_ERR_KUBE_UNREACHABLE', `kubeconfig has no context "${context}" (contexts: ${known})`);
    }
    kc.setCurrentContext(context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new VmsError('VMS_ERR_KUBE_UNREACHABLE', 'the kubeconfig names no cluster for its current context');
  }
  // The client refuses plain HTTP unless TLS checks are off, and says so only when the first
  // request is made, as a bare Error: say it now, with what to change.
  if (cluster.server.startsWith('http:') && !cluster.skipTLSVerify) {
    throw new VmsError(
      'VMS_ERR_KUBE_UNREACHABLE',
      `the kubeconfig's cluster "${cluster.name}" has an http:// server (${cluster.server}), which the Kubernetes client refuses unless the cluster sets insecure-skip-tls-verify: true; use the https:// address of the API server, or set insecure-skip-tls-verify for a local test cluster`,
    );
  }
  return kc;
}
