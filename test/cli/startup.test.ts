// A command loads only what it uses: `--help` nothing but the argument parser, `plan` of a static
// inventory no cloud SDK, no queue and no HTTP server. Checked on the real entry point in a
// process of its own, by recording every module it resolves.
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { DEFAULT_PROJECT, startFakeCompute } from '../fakes/gcp/compute-server.ts';

const BIN = fileURLToPath(new URL('../../bin/vm-mesh-sync.js', import.meta.url));
const TRACE = fileURLToPath(new URL('../helpers/trace-loads.ts', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../config/examples/static.yaml', import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), 'vms-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The URLs of the modules that `vm-mesh-sync <args>` loads, in every thread. */
async function modulesLoaded(args: string[]): Promise<string[]> {
  const trace = path.join(dir, `${args.join('-').replace(/\W+/g, '_')}.txt`);
  writeFileSync(trace, '');
  await promisify(execFile)(process.execPath, ['--import', TRACE, BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: dir, VMS_TRACE_LOADS: trace, KUBECONFIG: path.join(dir, 'none') },
  });
  return readFileSync(trace, 'utf8').split('\n').filter(Boolean);
}

/** The packages (under node_modules) that `vm-mesh-sync <args>` loads. */
async function packagesLoaded(args: string[]): Promise<Set<string>> {
  const packages = new Set<string>();
  for (const url of await modulesLoaded(args)) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (m) packages.add(m[1]!);
  }
  return packages;
}

describe('start-up', () => {
  it('--help loads no package but the argument parser', async () => {
    expect([...(await packagesLoaded(['--help']))]).toEqual(['commander']);
  });

  it('plan of a static inventory loads no cloud SDK, no queue and no HTTP server', async () => {
    const loaded = await packagesLoaded(['plan', '--config', EXAMPLE, '--no-cluster']);
    const heavy = [...loaded].filter((p) => /^@aws-sdk|^@azure|^@google-cloud|^google-auth-library|^bullmq$|^ioredis$|^fastify$|^prom-client$/.test(p));
    expect(heavy).toEqual([]);
    // It did run: the parser and the mapping's libraries were loaded.
    expect(loaded.has('yaml')).toBe(true);
  });

  it('plan of a GCP block loads the v1 instances client of the Compute package, not its other clients and precompiled protos', async () => {
    const compute = await startFakeCompute({ instances: [{ id: '1', name: 'db-1', labels: { mesh: 'true' }, privateIp: '10.0.0.1' }] });
    try {
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const keyFile = path.join(dir, 'gcp-key.json');
      const key = { type: 'service_account', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }), client_email: 'sync@p.iam.gserviceaccount.com', token_uri: 'https://oauth2.googleapis.com/token' };
      writeFileSync(keyFile, JSON.stringify(key));
      const config = path.join(dir, 'gcp.yaml');
      writeFileSync(config, stringify({ providers: [{ type: 'gcp', name: 'shop', projects: [DEFAULT_PROJECT], endpoint: compute.url, keyFile }] }));
      const loaded = (await modulesLoaded(['plan', '--config', config, '--no-cluster'])).filter((url) => url.includes('/node_modules/@google-cloud/compute/'));
      // It did list: through the instances client.
      expect(compute.listRequests.length).toBeGreaterThan(0);
      expect(loaded.some((url) => url.endsWith('/build/src/v1/instances_client.js'))).toBe(true);
      expect(loaded.filter((url) => /\/build\/src\/index\.js$|\/build\/protos\/protos\.js$|\/build\/src\/v1beta\//.test(url))).toEqual([]);
    } finally {
      await compute.close();
    }
  });
});
