// The Kubernetes API fails a fifth of all requests at random: 429 with Retry-After, 500, 409 and
// dropped connections, in equal shares. `serve` and `sync --once` still end with the cluster equal
// to the inventory, with no entry left over and none missing.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WorkloadEntry } from '../../services/model.ts';
import { type Fault, FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { type Machine, meshMachine, runCli, Workspace, matchesInventory } from '../helpers/cli.ts';
import { cleanupPrefix, freePort, ServeProcess, uniquePrefix, waitFor } from '../helpers/serve.ts';

const WE = 'workloadentries';
/** Share of all requests that fail. */
const FAILURE_RATE = 0.2;

/**
 * Four faults in equal shares that together hit FAILURE_RATE of requests. The server tries them in
 * order, each with its own draw, so the k-th is conditioned on the earlier ones not firing.
 */
function randomFaults(): Fault[] {
  const kinds: Array<Omit<Fault, 'probability'>> = [{ status: 429, retryAfterSeconds: 1 }, { status: 500 }, { status: 409 }, { drop: true }];
  const share = FAILURE_RATE / kinds.length;
  return kinds.map((kind, k) => ({ ...kind, probability: share / (1 - share * k) }));
}

function machines(n: number, third: number): Machine[] {
  return Array.from({ length: n }, (_, i) => meshMachine(`vm-${i}`, `10.${third}.${Math.floor(i / 250)}.${(i % 250) + 1}`));
}

describe('a Kubernetes API that fails a fifth of requests', () => {
  let server: FakeKubeApiServer;
  let ws: Workspace;

  beforeEach(async () => {
    server = new FakeKubeApiServer({ seed: 7 });
    await server.start();
    ws = new Workspace();
  });
  afterEach(async () => {
    await server.close();
    ws.remove();
  });

  const entries = () => server.objects(WE, 'default') as unknown as WorkloadEntry[];
  const converged = (inventory: Machine[]) => matchesInventory(entries(), inventory);
  /** Every kind of fault fired at least once, so the run really went through all of them. */
  const expectEveryFaultFired = (faults: Fault[]) => {
    expect(faults.map((f) => (f.fired ?? 0) > 0)).toEqual(faults.map(() => true));
  };

  describe('serve', () => {
    let prefix: string;
    let proc: ServeProcess | undefined;
    afterEach(async () => {
      await proc?.stop('SIGKILL');
      proc = undefined;
      await cleanupPrefix(prefix);
    });

    it('converges: creates, then updates and deletes, all through the faults', async () => {
      prefix = uniquePrefix('faults-kube');
      ws.writeConfig({
        kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
        redis: { prefix },
        resync: { interval: '1s' },
        deletionGuard: { maxDeleteFraction: 1 },
        queue: { concurrency: 8, backoff: '100ms', stalledAfter: '2s' },
        log: { level: 'silent' },
      });
      const faults = randomFaults();
      server.faults.push(...faults);
      const first = machines(60, 1);
      ws.writeInventory(first);
      proc = new ServeProcess(ws.configFile, await freePort());
      await proc.started();
      await waitFor(() => converged(first), 90_000, () => `${entries().length} entries of ${first.length}`);

      // Every address changes and a quarter of the machines go away.
      const second = machines(45, 2);
      ws.writeInventory(second);
      await waitFor(() => converged(second), 90_000, () => `${entries().length} entries of ${second.length}`);
      expect(server.counts.of(WE).delete).toBeGreaterThanOrEqual(15);
      expectEveryFaultFired(faults);
      expect(proc.child.exitCode).toBeNull();
    }, 150_000);
  });

  it('sync --once converges in one run each time: creates, then updates and deletes, exit 0, through the faults', async () => {
    ws.writeConfig({
      kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) },
      deletionGuard: { maxDeleteFraction: 1 },
      queue: { backoff: '50ms' },
      log: { level: 'silent' },
    });
    const faults = randomFaults();
    server.faults.push(...faults);
    for (const inventory of [machines(80, 3), machines(60, 4)]) {
      ws.writeInventory(inventory);
      const run = await runCli(['sync', '--once', '--config', ws.configFile]);
      expect(run.code, run.stderr).toBe(0);
      expect((JSON.parse(run.stdout) as { failed: unknown[] }).failed).toEqual([]);
      expect(converged(inventory)).toBe(true);
    }
    expect(server.counts.of(WE).delete).toBeGreaterThanOrEqual(20);
    expectEveryFaultFired(faults);
  }, 120_000);
});
