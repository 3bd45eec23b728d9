// What an operator sees of a scope, from two `serve` replicas scraped as Prometheus would: the
// README's alert expressions evaluated on the scraped text, conflicts in /status, the metrics and
// the Events, and an incomplete listing counted as a failure on whichever replica ran it.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ScopeStatus } from '../../services/runtime/status-store.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { meshMachine, Workspace } from '../helpers/cli.ts';
import { evaluateAlert, parseScrape } from '../helpers/promql.ts';
import { cleanupPrefix, freePort, ServeProcess, uniquePrefix, waitFor } from '../helpers/serve.ts';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));

/** The README's alert expressions, by alert name. */
function readmeAlerts(): Map<string, string> {
  const text = readFileSync(README, 'utf8');
  const alerts = new Map<string, string>();
  for (const m of text.matchAll(/- alert: (\w+)[^\n]*\n\s+expr: ([^\n]+)/g)) alerts.set(m[1]!, m[2]!.trim());
  return alerts;
}

describe('scope health across replicas', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;
  let prefix: string;
  const procs: ServeProcess[] = [];

  beforeEach(async () => {
    server = new FakeKubeApiServer();
    await server.start();
    ws = new Workspace();
    prefix = uniquePrefix('scope-health');
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    await server.close();
    await cleanupPrefix(prefix);
    ws.remove();
  });

  it('conflicts and incomplete listings are reported the same by every replica, and the README alerts fire', async () => {
    const other = path.join(ws.dir, 'other.yaml');
    ws.writeConfig({
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      redis: { prefix },
      resync: { interval: '1s' },
      queue: { concurrency: 4, backoff: '100ms' },
      log: { level: 'warn' },
      providers: [
        { type: 'static', name: 'onprem', account: 'dc', inventory: ws.inventoryFile },
        { type: 'static', name: 'second', account: 'dc', inventory: other },
      ],
    });
    ws.writeInventory([meshMachine('web-1', '10.1.0.1'), meshMachine('db-1', '10.1.0.2')]);
    writeFileSync(other, stringify({ machines: [meshMachine('web-1', '10.2.0.1')] }));
    for (let i = 0; i < 2; i++) {
      const proc = new ServeProcess(ws.configFile, await freePort(), { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' });
      procs.push(proc);
      await proc.started();
    }
    const statusOf = async (i: number) => ((await procs[i]!.get('/status')).body as { scopes: ScopeStatus[] }).scopes;
    const scrape = async () => Promise.all(procs.map(async (p, i) => parseScrape((await p.get('/metrics')).body as string, `replica-${i}`)));
    await waitFor(async () => (await statusOf(1)).every((s) => s.lastComplete !== undefined) && server.size('workloadentries') === 2, 30_000);
    const alerts = readmeAlerts();

    // One owner for web-1: the scope that wrote it first; the other reports a conflict everywhere.
    const owner = (server.objects('workloadentries', 'default') as unknown as Array<{ metadata: { name: string; annotations: Record<string, string> } }>).find(
      (e) => e.metadata.name === 'static-web-1',
    )!.metadata.annotations['vm-mesh-sync.io/scope']!;
    const loser = owner === 'static:onprem' ? 'static:second' : 'static:onprem';
    await waitFor(async () => (await statusOf(0)).find((s) => s.scopeKey === loser)?.conflictCount === 1, 10_000);
    for (const i of [0, 1]) {
      const conflict = (await statusOf(i)).find((s) => s.scopeKey === loser)!;
      expect(conflict.conflicts![0]).toMatchObject({ key: 'default/static-web-1', kind: 'other-scope', ownerScopeKey: owner });
    }
    const conflictAlert = alerts.get('VmMeshSyncConflicts');
    expect(conflictAlert).toBeDefined();
    expect(evaluateAlert(conflictAlert!, Date.now() / 1000, await scrape()).map((e) => e.labels.scope)).toEqual([loser]);
    await waitFor(
      () => (server.objects('events', 'default') as unknown as Array<{ reason: string; involvedObject: { name: string } }>).some((e) => e.reason === 'EntryConflict' && e.involvedObject.name === 'static-web-1'),
      10_000,
    );

    // Zero writes while the conflict lasts, over at least five resyncs of each scope.
    const writes = server.writes('workloadentries');
    const resyncs = async () => (await statusOf(0)).map((s) => s.lastResyncAt);
    for (let seen = 0, last = await resyncs(); seen < 5; ) {
      await new Promise((r) => setTimeout(r, 300));
      const now = await resyncs();
      if (now.every((t, i) => t !== last[i])) {
        seen++;
        last = now;
      }
    }
    expect(server.writes('workloadentries')).toBe(writes);

    // Now the onprem inventory cannot be read: its listings are incomplete.
    const stale = alerts.get('VmMeshSyncStale');
    const failing = alerts.get('VmMeshSyncResyncFailing');
    expect(stale && failing).toBeTruthy();
    const before = await scrape();
    const lastSuccess = (await statusOf(0)).find((s) => s.scopeKey === 'static:onprem')!.lastSuccessAt;
    writeFileSync(ws.inventoryFile, 'machines: [ {id: unclosed');
    await waitFor(async () => ((await statusOf(1)).find((s) => s.scopeKey === 'static:onprem')?.complete === false), 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    const after = await scrape();

    for (const i of [0, 1]) expect((await statusOf(i)).find((s) => s.scopeKey === 'static:onprem')!.lastSuccessAt).toBe(lastSuccess);
    // The last-success gauge has not moved, and both replicas show the same value.
    const gauge = after.map((s) => s.find((x) => x.name === 'vms_resync_last_success_timestamp_seconds' && x.labels.scope === 'static:onprem')!.value);
    expect(gauge[0]).toBe(Math.floor(Date.parse(lastSuccess) / 1000));
    expect(gauge[1]).toBe(gauge[0]);
    // The failure counter rose (summed over the replicas, whichever ran the listings).
    expect(evaluateAlert(failing!, Date.now() / 1000, after, before).map((e) => e.labels.scope)).toEqual(['static:onprem']);
    // The staleness alert fires once the last success is older than its threshold, for that scope only.
    expect(evaluateAlert(stale!, Date.now() / 1000, after)).toEqual([]);
    expect(evaluateAlert(stale!, Date.parse(lastSuccess) / 1000 + 3600, after).map((e) => e.labels.scope)).toContain('static:onprem');
    // Nothing was deleted because of the incomplete listing.
    expect(server.size('workloadentries')).toBe(2);
  }, 90_000);
});
