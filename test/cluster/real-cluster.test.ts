// Against a real cluster, only when KUBECONFIG points at one with Istio's CRDs installed: the same
// `sync --once` a CronJob would run, in a namespace of its own that is removed afterwards.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeApi } from '../../services/writer/kube-api.ts';
import { meshMachine, runCli, Workspace } from '../helpers/cli.ts';

const KUBECONFIG = process.env.KUBECONFIG;
const reason = KUBECONFIG ? '' : ' (skipped: KUBECONFIG is not set; point it at a cluster with Istio installed to run this)';
if (!KUBECONFIG) console.info(`test/cluster${reason}`);

describe.skipIf(!KUBECONFIG)(`a real cluster${reason}`, () => {
  const namespace = `vms-e2e-${Date.now().toString(36)}`;
  const ownerId = `e2e-${Math.random().toString(36).slice(2, 8)}`;
  let ws: Workspace;
  let core: CoreV1Api;

  beforeAll(async () => {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    ws = new Workspace();
    ws.writeConfig({ ownerId, mapping: { namespace: { default: namespace } }, kubernetes: { kubeconfig: KUBECONFIG!.split(':')[0] } });
  });

  afterAll(async () => {
    await core?.deleteNamespace({ name: namespace }).catch(() => {});
    ws?.remove();
  });

  it('creates, leaves alone when nothing changed, updates and deletes entries', async () => {
    const kc = new KubeConfig();
    kc.loadFromDefault();
    const api = createKubeApi(kc);
    const env = { KUBECONFIG: KUBECONFIG! };

    ws.writeInventory([meshMachine('e2e-1', '10.99.0.1'), meshMachine('e2e-2', '10.99.0.2')]);
    expect((await runCli(['sync', '--once', '--config', ws.configFile], env)).code).toBe(0);
    const first = await api.getEntry(namespace, 'static-e2e-1');
    expect(first?.spec.address).toBe('10.99.0.1');

    expect((await runCli(['sync', '--once', '--config', ws.configFile], env)).code).toBe(0);
    expect((await api.getEntry(namespace, 'static-e2e-1'))?.metadata.resourceVersion).toBe(first?.metadata.resourceVersion);

    ws.writeInventory([meshMachine('e2e-1', '10.99.0.9')]);
    expect((await runCli(['sync', '--once', '--config', ws.configFile], env)).code).toBe(0);
    expect((await api.getEntry(namespace, 'static-e2e-1'))?.spec.address).toBe('10.99.0.9');
    expect(await api.getEntry(namespace, 'static-e2e-2')).toBeNull();
  });
});
