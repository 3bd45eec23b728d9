// A command loads only what it uses: `--help` nothing but the argument parser, `plan` of a static
// inventory no cloud SDK, no queue and no HTTP server. Checked on the real entry point in a
// process of its own, by recording every module it resolves.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/vm-mesh-sync.js', import.meta.url));
const TRACE = fileURLToPath(new URL('../helpers/trace-loads.ts', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../config/examples/static.yaml', import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), 'vms-startup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The packages (under node_modules) that `vm-mesh-sync <args>` loads. */
async function packagesLoaded(args: string[]): Promise<Set<string>> {
  const trace = path.join(dir, `${args.join('-').replace(/\W+/g, '_')}.txt`);
  writeFileSync(trace, '');
  await promisify(execFile)(process.execPath, ['--import', TRACE, BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: dir, VMS_TRACE_LOADS: trace, KUBECONFIG: path.join(dir, 'none') },
  });
  const packages = new Set<string>();
  for (const url of readFileSync(trace, 'utf8').split('\n')) {
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
});
