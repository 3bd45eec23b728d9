// A GCP project answered for by another one, through the real CLI, the real
// SDK clients and the fakes: the scope fails with VMS_ERR_ACCOUNT_MISMATCH, nothing is written or
// deleted, and `explain` says why. (AWS's account check has its own in test/aws.)
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_PROJECT, type FakeCompute, startFakeCompute } from '../fakes/gcp/compute-server.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { runCli, Workspace } from '../helpers/cli.ts';
import { cleanupPrefix, uniquePrefix } from '../helpers/serve.ts';

const WE = 'workloadentries';

let server: FakeKubeApiServer;
let ws: Workspace;
let prefix: string;

beforeEach(async () => {
  server = new FakeKubeApiServer();
  await server.start();
  ws = new Workspace();
  prefix = uniquePrefix('mismatch');
});
afterEach(async () => {
  await server.close();
  await cleanupPrefix(prefix);
  ws.remove();
});

/** The config of one provider block, writing to the fake cluster. */
function writeConfig(block: Record<string, unknown>): void {
  ws.writeConfig({ providers: [block], kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) }, redis: { prefix }, log: { level: 'warn' } });
}

describe('GCP', () => {
  let compute: FakeCompute;
  beforeEach(async () => {
    compute = await startFakeCompute();
  });
  afterEach(async () => {
    await compute.close();
  });

  it('an endpoint that answers with instances of another project: the scope fails with VMS_ERR_ACCOUNT_MISMATCH, 0 writes, and explain says why', async () => {
    compute.put({ id: '1001', name: 'db-1', project: 'other-project', labels: { mesh: 'true' }, privateIp: '10.0.0.1' });
    compute.answerAs(DEFAULT_PROJECT, 'other-project');
    // The client signs its own tokens with a service-account key, so no token server is asked.
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyFile = path.join(ws.dir, 'gcp-key.json');
    writeFileSync(keyFile, JSON.stringify({ type: 'service_account', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }), client_email: 'sync@p.iam.gserviceaccount.com', token_uri: 'https://oauth2.googleapis.com/token' }));
    writeConfig({ type: 'gcp', name: 'shop', projects: [DEFAULT_PROJECT], endpoint: compute.url, keyFile, maxAttempts: 1 });

    const run = await runCli(['sync', '--once', '--config', ws.configFile]);
    expect(run.code, run.stderr).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ incompleteScopes: [`gcp:shop:${DEFAULT_PROJECT}`] });
    expect(run.stderr + run.stdout).toContain('VMS_ERR_ACCOUNT_MISMATCH');
    expect(compute.listRequests.length).toBeGreaterThan(0);
    expect(server.counts.writes(WE)).toBe(0);
    expect(server.objects(WE, 'default')).toEqual([]);

    const explained = await runCli(['explain', 'gcp:1001', '--config', ws.configFile]);
    expect(explained.stdout + explained.stderr).toContain('VMS_ERR_ACCOUNT_MISMATCH');
    expect(explained.stdout + explained.stderr).toMatch(/instance db-1 of project other-project .* does not serve project test-project as asked/);
  });
});
