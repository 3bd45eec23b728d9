// Memory does not grow with the number of resyncs: a settled scope resynced again and again
// through the real pipeline (inventory, mapping, the cluster listing, planning, Redis) keeps what
// the heap holds flat, and makes no writes. A CI-sized version of the bench's soak round.
import { writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { resyncScope } from '../../services/sync/reconcile.ts';
import { FakeKubeApiServer } from '../fakes/kube-api-server.ts';
import { meshMachine, Workspace } from '../helpers/cli.ts';
import { Pipeline } from '../helpers/pipeline.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MACHINES = 4000;
const ROUNDS = 8;

describe('memory over resyncs', () => {
  it(`${ROUNDS} no-op resyncs of ${MACHINES} instances: no writes, and the heap does not grow from round to round`, async () => {
    const server = new FakeKubeApiServer();
    await server.start();
    const ws = new Workspace();
    let pipeline: Pipeline | undefined;
    try {
      ws.writeConfig({ kubernetes: { kubeconfig: server.writeKubeconfig(ws.dir) } });
      const machines = Array.from({ length: MACHINES }, (_, i) => meshMachine(`vm-${i}`, `10.9.${i >> 8}.${i & 255}`));
      writeFileSync(ws.inventoryFile, JSON.stringify({ machines }));
      pipeline = await Pipeline.start(ws.configFile, server);
      await resyncScope(pipeline.deps, 'static:onprem');
      await pipeline.drain(120_000);
      expect(pipeline.entries()).toHaveLength(MACHINES);

      const heap: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        server.reset();
        const result = await resyncScope(pipeline.deps, 'static:onprem');
        expect(result.plan.changes).toEqual([]);
        expect(server.writes()).toBe(0);
        gc();
        heap.push(process.memoryUsage().heapUsed);
      }
      // After the first rounds have warmed up (compiled code, caches of fixed size), what the heap
      // holds stays put: an instance kept per round would add over 2 MiB a round here.
      const growth = Math.max(...heap.slice(3)) - heap[2]!;
      expect(growth, `heap after each round: ${heap.map((h) => (h / 2 ** 20).toFixed(1)).join(', ')} MiB`).toBeLessThan(1.5 * 2 ** 20);
    } finally {
      await pipeline?.close();
      await server.close();
      ws.remove();
    }
  }, 180_000);
});
