// A GCP project or Azure subscription answered for by another one, through the real CLI, the real
// SDK clients and the fakes: the scope fails with VMS_ERR_ACCOUNT_MISMATCH, nothing is written or
// deleted, and `explain` says why. (AWS's account check has its own in test/aws.)
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SUBSCRIPTION, type FakeArm, startFakeArm } from '../fakes/azure/arm-server.ts';
import { createTestCertificate } from '../fakes/azure/tls.ts';
import { DEFAULT_PROJECT, type FakeCompute, startFakeCompute } from '../fakes/gcp/compute-server.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { type CliRun, runCli, Workspace } from '../helpers/cli.ts';
import { cleanupPrefix, uniquePrefix } from '../helpers/serve.ts';

const WE = 'workloadentries';
const BIN = fileURLToPath(new URL('../../bin/vm-mesh-sync.js', import.meta.url));
const OTHER_SUBSCRIPTION = '9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4';

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

/** Runs the CLI in its own process: NODE_EXTRA_CA_CERTS, which trusts the fake ARM's certificate, is read only when a process starts. */
function runCliProcess(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, HOME: '/nonexistent', ...env } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('Azure', () => {
  let arm: FakeArm;
  let identity: http.Server;
  let env: NodeJS.ProcessEnv;
  beforeEach(async () => {
    const tls = await createTestCertificate();
    arm = await startFakeArm({ tls });
    const certFile = path.join(ws.dir, 'arm-cert.pem');
    writeFileSync(certFile, tls.cert);
    // DefaultAzureCredential finds App Service's managed identity (IDENTITY_ENDPOINT, IDENTITY_HEADER) and asks it for a token.
    identity = http.createServer((req, res) => {
      if (req.headers['x-identity-header'] !== 'test-identity-header') return void res.writeHead(401).end();
      const resource = new URL(req.url ?? '/', 'http://x').searchParams.get('resource') ?? '';
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: 'test-token', expires_on: String(Math.floor(Date.now() / 1000) + 3600), resource, token_type: 'Bearer' }));
    });
    await new Promise<void>((resolve) => identity.listen(0, '127.0.0.1', resolve));
    env = {
      NODE_EXTRA_CA_CERTS: certFile,
      IDENTITY_ENDPOINT: `http://127.0.0.1:${(identity.address() as AddressInfo).port}/msi/token`,
      IDENTITY_HEADER: 'test-identity-header',
    };
  });
  afterEach(async () => {
    await arm.close();
    await new Promise((resolve) => identity.close(resolve));
  });

  it.each(['resource-graph', 'arm'])(
    'an endpoint that answers with VMs of another subscription (discovery %s): the scope fails with VMS_ERR_ACCOUNT_MISMATCH, 0 writes, and explain says why',
    async (discovery) => {
      arm.putVm({ name: 'db-1', subscription: OTHER_SUBSCRIPTION, tags: { mesh: 'true' }, privateIp: '10.0.0.4' });
      arm.answerAs(DEFAULT_SUBSCRIPTION, OTHER_SUBSCRIPTION);
      writeConfig({ type: 'azure', name: 'subs', subscriptions: [DEFAULT_SUBSCRIPTION], endpoint: arm.url, discovery, maxRetries: 0 });

      const run = await runCliProcess(['sync', '--once', '--config', ws.configFile], env);
      expect(run.code, run.stderr).toBe(1);
      expect(JSON.parse(run.stdout)).toMatchObject({ incompleteScopes: [`azure:subs:${DEFAULT_SUBSCRIPTION}`] });
      expect(run.stderr + run.stdout).toContain('VMS_ERR_ACCOUNT_MISMATCH');
      expect(arm.requestsOf(discovery === 'arm' ? 'list-vms' : 'graph').map((r) => r.status)).toEqual([200]);
      expect(server.counts.writes(WE)).toBe(0);
      expect(server.objects(WE, 'default')).toEqual([]);

      const vm = `/subscriptions/${DEFAULT_SUBSCRIPTION}/resourceGroups/rg-mesh/providers/Microsoft.Compute/virtualMachines/db-1`;
      const explained = await runCliProcess(['explain', `azure:${vm}`, '--config', ws.configFile], env);
      expect(explained.stdout + explained.stderr).toContain('VMS_ERR_ACCOUNT_MISMATCH');
      expect(explained.stdout + explained.stderr).toContain(`of subscription ${OTHER_SUBSCRIPTION}: the endpoint ${arm.url} does not serve subscription ${DEFAULT_SUBSCRIPTION} as asked`);
    },
  );
});
