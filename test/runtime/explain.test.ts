// `explain` end to end: the real CLI on a static inventory, the real Kubernetes client against the
// fake API server, and the service's shared status in the real Redis (seeded under the config's prefix).
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Explanation } from '../../services/cli/explain-command.ts';
import type { WorkloadEntry } from '../../services/model.ts';
import { emptyStatus } from '../../services/runtime/resync-status.ts';
import { type ScopeStatus, StatusStore } from '../../services/runtime/status-store.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { meshMachine, runCli, Workspace } from '../helpers/cli.ts';
import { cleanupPrefix, uniquePrefix } from '../helpers/serve.ts';

const WE = 'workloadentries';
const SCOPE = 'static:onprem';

describe('explain', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;
  let prefix: string;
  let redis: Redis;
  let status: StatusStore;

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ws = new Workspace();
    prefix = uniquePrefix('explain');
    ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) }, redis: { prefix }, log: { level: 'warn' } });
    redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    // The same prefix as the config: what a `serve` of this config would have recorded.
    status = new StatusStore(redis, prefix);
  });
  afterEach(async () => {
    redis.disconnect();
    await server.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  const explain = async (instance: string): Promise<Explanation> => {
    const run = await runCli(['explain', instance, '--config', ws.configFile, '--output', 'json']);
    expect(run.code, run.stderr).toBe(0);
    return JSON.parse(run.stdout) as Explanation;
  };
  const sync = async (...extra: string[]) => {
    const run = await runCli(['sync', '--once', '--config', ws.configFile, ...extra]);
    // 3: done, with deletes held back by the guard.
    expect([0, 3], run.stderr).toContain(run.code);
  };
  const entryNames = () => (server.objects(WE, 'default') as unknown as WorkloadEntry[]).map((e) => e.metadata.name).sort();

  it('an untagged VM is not-tagged, with the selector it lacks', async () => {
    ws.writeInventory([{ id: 'untagged', privateIPv4: '10.0.9.9', tags: { 'mesh-app': 'postgres' } }]);
    const e = await explain('static:untagged');
    expect(e.verdict).toBe('not-tagged');
    expect(e.code).toBe('VMS_SKIP_NOT_SELECTED');
    expect(e.scope).toBe(SCOPE);
    expect(e.reasons.join('\n')).toContain('not tagged mesh=true');
  });

  it('shows the Service and hostname a VM is reachable by, or why none', async () => {
    ws.writeInventory([
      { id: 'pg-a', privateIPv4: '10.0.9.1', tags: { mesh: 'true', 'mesh-service': 'postgres', 'mesh-ports': 'postgres:5432' } },
      { id: 'plain', privateIPv4: '10.0.9.2', tags: { mesh: 'true', 'mesh-ports': 'http:8080' } },
      { id: 'portless', privateIPv4: '10.0.9.3', tags: { mesh: 'true', 'mesh-service': 'batch' } },
    ]);
    const tagged = await explain('static:pg-a');
    expect(tagged.service).toEqual({ namespace: 'default', name: 'postgres', host: 'postgres.default.svc.cluster.local', kind: 'Service' });
    expect(tagged.reasons.at(-1)).toContain('reachable as postgres.default.svc.cluster.local through Service default/postgres');
    const plain = await explain('static:plain');
    expect(plain.service).toBeUndefined();
    expect(plain.reasons.at(-1)).toBe('reachable by no mesh hostname: it has no mesh-service tag; tag it mesh-service=<name> to be reached as <name>.default.svc.cluster.local');
    const portless = await explain('static:portless');
    expect(portless.reasons.at(-1)).toContain('serves mesh service batch, but has no ports (tag mesh-ports)');

    ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) }, redis: { prefix }, services: { kind: 'service-entry', clusterDomain: 'mesh.example' } });
    const entry = await explain('static:pg-a');
    expect(entry.service).toEqual({ namespace: 'default', name: 'postgres', host: 'postgres.default.svc.mesh.example', kind: 'ServiceEntry' });
    ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) }, redis: { prefix }, services: { kind: 'off' } });
    const off = await explain('static:pg-a');
    expect(off.service?.kind).toBe('none');
    expect(off.reasons.at(-1)).toContain('services.kind is off, so vm-mesh-sync writes no Service for it');
  });

  it('a Service of the same name that is not ours: explain says so, and whether it serves the VM', async () => {
    ws.writeInventory([{ id: 'pg-a', privateIPv4: '10.0.9.1', tags: { mesh: 'true', 'mesh-app': 'postgres', 'mesh-service': 'postgres', 'mesh-ports': 'postgres:5432' } }]);
    await sync();
    expect((await explain('static:pg-a')).reasons.at(-1)).toContain('through Service default/postgres (selecting vm-mesh-sync.io/installation=default,vm-mesh-sync.io/service=postgres); it exists');
    server.remove('services', 'default', 'postgres');
    server.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'postgres', namespace: 'default' }, spec: { selector: { app: 'other' }, ports: [{ port: 5432 }] } });
    const blocked = await explain('static:pg-a');
    expect(blocked.reasons.at(-1)).toContain('not reachable as postgres.default.svc.cluster.local: Service default/postgres exists and is not vm-mesh-sync\'s');
    server.put({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'postgres', namespace: 'default' }, spec: { selector: { app: 'postgres' }, ports: [{ port: 5432 }] } });
    expect((await explain('static:pg-a')).reasons.at(-1)).toContain('served by your Service default/postgres');
  });

  it('an instance whose entry another scope holds is a conflict, naming that scope', async () => {
    const other = `${ws.dir}/second.yaml`;
    // The second block comes first, so explain finds the instance there; the entry is onprem's.
    ws.writeConfig({
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { prefix },
      log: { level: 'warn' },
      providers: [
        { type: 'static', name: 'second', account: 'dc', inventory: other },
        { type: 'static', name: 'onprem', account: 'dc', inventory: ws.inventoryFile },
      ],
    });
    ws.writeInventory([meshMachine('web-1', '10.1.0.1')]);
    writeFileSync(other, stringify({ machines: [meshMachine('web-1', '10.2.0.1')] }));
    await sync();
    const e = await explain('static:web-1');
    expect(e.verdict).toBe('conflict');
    expect(e.scope).toBe('static:second');
    expect(e.code).toBe('VMS_ERR_ENTRY_CONFLICT');
    expect(e.reasons.join('\n')).toContain('belongs to scope static:onprem');
  });

  it('a stopped VM is not-running', async () => {
    ws.writeInventory([{ ...meshMachine('pg-stopped', '10.0.1.20'), state: 'stopped' }]);
    const e = await explain('static:pg-stopped');
    expect(e.verdict).toBe('not-running');
    expect(e.code).toBe('VMS_SKIP_NOT_RUNNING');
    expect(e.reasons.join('\n')).toContain('stopped, not running');
  });

  it('an invalid port tag is invalid-tag, and the reason says how to write it', async () => {
    ws.writeInventory([meshMachine('pg-bad', '10.0.1.30', { 'mesh-ports': 'pg:99999' })]);
    const e = await explain('static:pg-bad');
    expect(e.verdict).toBe('invalid-tag');
    expect(e.code).toBe('VMS_SKIP_BAD_PORTS');
    const text = e.reasons.join('\n');
    expect(text).toContain("tag mesh-ports: 'pg:99999' is not a port");
    expect(text).toContain('use name:port with a port from 1 to 65535');
    expect(text).toContain('kept unchanged until the value is fixed');
  });

  it('a VM applied by sync --once is in-mesh; before that it is pending', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10')]);
    const before = await explain('static:pg-1');
    expect(before.verdict).toBe('pending');
    expect(before.entry).toEqual({ key: 'default/static-pg-1', live: false, upToDate: false });

    await sync();
    const after = await explain('static:pg-1');
    expect(after.verdict).toBe('in-mesh');
    expect(after.entry).toEqual({ key: 'default/static-pg-1', live: true, upToDate: true });
    expect(after.reasons.join('\n')).toContain('address 10.0.1.10');
  });

  it('an instance no scope knows is not-found', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10')]);
    const e = await explain('static:nowhere');
    expect(e.verdict).toBe('not-found');
    expect(e.entry).toBeUndefined();
  });

  it('a VM that lost its tag while its entry is still there is awaiting-delete, and the next resync removes it', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11'), meshMachine('pg-3', '10.0.1.12')]);
    await sync();
    ws.writeInventory([{ ...meshMachine('pg-1', '10.0.1.10'), tags: { 'mesh-app': 'postgres' } }, meshMachine('pg-2', '10.0.1.11'), meshMachine('pg-3', '10.0.1.12')]);

    const e = await explain('static:pg-1');
    expect(e.verdict).toBe('awaiting-delete');
    expect(e.code).toBe('VMS_SKIP_NOT_SELECTED');
    expect(e.entry).toEqual({ key: 'default/static-pg-1', live: true, upToDate: false });
    const text = e.reasons.join('\n');
    expect(text).toContain('default/static-pg-1 is still there');
    expect(text).toContain('deleted on the next resync unless the deletion guard holds it back');
    // No resync has held anything back: no talk of forcing.
    expect(e.heldDeletes).toBeUndefined();
    expect(text).not.toContain('--force');

    await sync();
    expect(entryNames()).toEqual(['static-pg-2', 'static-pg-3']);
    expect((await explain('static:pg-1')).verdict).toBe('not-tagged');
  });

  it('a VM gone from the inventory while its entry is still there is awaiting-delete, not not-found', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10'), meshMachine('pg-2', '10.0.1.11'), meshMachine('pg-3', '10.0.1.12')]);
    await sync();
    ws.writeInventory([meshMachine('pg-2', '10.0.1.11'), meshMachine('pg-3', '10.0.1.12')]);
    const e = await explain('static:pg-1');
    expect(e.verdict).toBe('awaiting-delete');
    expect(e.scope).toBe(SCOPE);
    expect(e.entry?.key).toBe('default/static-pg-1');
  });

  it('when the service recorded held deletes for the scope, says the guard holds the entry back and how to release it', async () => {
    const machines = Array.from({ length: 10 }, (_, i) => meshMachine(`vm-${i}`, `10.0.2.${i + 1}`));
    ws.writeInventory(machines);
    await sync();
    // Nine of ten lose their tag: more than half of the scope, so the guard holds the deletes back.
    ws.writeInventory(machines.map((m, i) => (i === 0 ? m : { ...m, tags: { 'mesh-app': 'postgres' } })));
    await sync();
    expect(entryNames()).toHaveLength(10);
    const reason = 'the plan would delete 9 of 10 entries in scope static:onprem (90%), more than 50% and more than 2; they are held back until the plan is forced';
    await status.putScope(scopeStatus({ held: [{ deletes: 9, reason }] }));

    const e = await explain('static:vm-3');
    expect(e.verdict).toBe('awaiting-delete');
    expect(e.heldDeletes).toEqual([{ deletes: 9, reason }]);
    const text = e.reasons.join('\n');
    expect(text).toContain('held back by the deletion guard');
    expect(text).toContain(reason);
    expect(text).toContain('`vm-mesh-sync sync --once --force`');

    // The advice works.
    await sync('--force');
    expect(entryNames()).toEqual(['static-vm-0']);
    expect((await explain('static:vm-3')).verdict).toBe('not-tagged');
  });

  it('under upsert-only, an entry awaiting delete is said to stay, since that policy never deletes', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10')]);
    await sync();
    ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) }, redis: { prefix }, policy: 'upsert-only', log: { level: 'warn' } });
    ws.writeInventory([{ ...meshMachine('pg-1', '10.0.1.10'), tags: {} }]);
    const e = await explain('static:pg-1');
    expect(e.verdict).toBe('awaiting-delete');
    expect(e.reasons.join('\n')).toContain('policy upsert-only never deletes entries');
    await sync();
    expect(entryNames()).toEqual(['static-pg-1']);
  });

  it('held deletes recorded for another scope do not count', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10')]);
    await sync();
    ws.writeInventory([{ ...meshMachine('pg-1', '10.0.1.10'), state: 'stopped' }]);
    await status.putScope(scopeStatus({ scopeKey: 'static:elsewhere', held: [{ deletes: 5, reason: 'elsewhere' }] }));
    const e = await explain('static:pg-1');
    expect(e.verdict).toBe('awaiting-delete');
    expect(e.code).toBe('VMS_SKIP_NOT_RUNNING');
    expect(e.heldDeletes).toBeUndefined();
  });

  it('an entry that could not be written is write-failed, with the last write error from Redis', async () => {
    ws.writeInventory([meshMachine('pg-1', '10.0.1.10')]);
    const error = {
      key: 'default/static-pg-1',
      code: 'VMS_ERR_KUBE_REJECTED',
      message: 'create WorkloadEntry default/static-pg-1: admission webhook "validation.istio.io" denied the request',
      at: '2025-01-01T00:00:00.000Z',
    };
    await status.putWriteError(error);
    const e = await explain('static:pg-1');
    expect(e.verdict).toBe('write-failed');
    expect(e.code).toBe('VMS_ERR_KUBE_REJECTED');
    expect(e.lastWriteError).toEqual(error);
    expect(e.reasons.join('\n')).toContain('admission webhook "validation.istio.io" denied the request');

    // Once the entry is written and up to date, an old error no longer decides the verdict.
    await sync();
    expect((await explain('static:pg-1')).verdict).toBe('in-mesh');
  });
});

function scopeStatus(over: Partial<ScopeStatus>): ScopeStatus {
  return {
    ...emptyStatus(SCOPE),
    lastResyncAt: '2025-01-01T00:00:00.000Z',
    lastSuccessAt: '2025-01-01T00:00:00.000Z',
    durationMs: 5,
    complete: true,
    instances: 10,
    entries: 1,
    owned: 10,
    ...over,
  };
}
