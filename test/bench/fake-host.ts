// The outside world of a benchmark in a process of its own: the fake Kubernetes API server and the
// fake EC2, driven over IPC. Kept apart from the code under test so that the fakes' own work
// (schema checks, JSON, XML) never shares an event loop with what is measured, as a real API
// server and a real cloud would not.
import http from 'node:http';
import { mkdirSync } from 'node:fs';
import type { WorkloadEntry } from '../../services/model.ts';
import { startFakeEc2, type FakeEc2 } from '../fakes/ec2/ec2-server.ts';
import { FakeKubeApiServer, type KubeObject } from '../fakes/kube-api-server.ts';
import { benchEc2Instance, benchEntriesOf, type BenchFlavor } from './fixtures.ts';
import type { HostReply, HostRequest, TrackTarget, VerbCounts } from './host-protocol.ts';

const WE = 'workloadentries';

let kube: FakeKubeApiServer | undefined;
let ec2: FakeEc2 | undefined;
let watch: http.ClientRequest | undefined;

/** Tracked conditions: `namespace/name` → what the entry must look like, and when it first did. */
const tracked = new Map<string, { target: TrackTarget; seenAt?: number }>();
/** Watch events (changes actually stored) per tracked key while tracking. */
const changes = new Map<string, number>();

function requireKube(): FakeKubeApiServer {
  if (!kube) throw new Error('the fake API server is not started');
  return kube;
}

function requireEc2(): FakeEc2 {
  if (!ec2) throw new Error('the fake EC2 is not started');
  return ec2;
}

function verbCounts(): VerbCounts {
  const c = requireKube().counts;
  const we = c.of(WE);
  return {
    workloadentries: { ...we },
    all: { get: c.get, list: c.list, watch: c.watch, create: c.create, apply: c.apply, patch: c.patch, update: c.update, delete: c.delete, deletecollection: c.deletecollection },
    writes: c.writes(WE),
    allWrites: c.writes(),
    noops: c.noops,
    changes: c.changes,
  };
}

function matches(target: TrackTarget, obj: WorkloadEntry): boolean {
  if (target.label === undefined) return true;
  return obj.spec?.labels?.[target.label[0]] === target.label[1];
}

/** Follows every WorkloadEntry change through the server's own watch API, to time tracked entries. */
function startWatch(server: FakeKubeApiServer): void {
  const url = new URL(`/apis/networking.istio.io/v1/workloadentries?watch=true&resourceVersion=${server.resourceVersion}`, server.url);
  watch = http.get(url, (res) => {
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const now = Date.now();
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim() === '') continue;
        const event = JSON.parse(line) as { type: string; object: WorkloadEntry };
        const key = `${event.object.metadata.namespace}/${event.object.metadata.name}`;
        const item = tracked.get(key);
        if (!item) continue;
        changes.set(key, (changes.get(key) ?? 0) + 1);
        if (item.seenAt === undefined && event.type !== 'DELETED' && matches(item.target, event.object)) item.seenAt = now;
      }
    });
  });
  watch.on('error', () => {});
}

async function handle(req: HostRequest): Promise<unknown> {
  switch (req.op) {
    case 'startKube': {
      kube = new FakeKubeApiServer({ latencyMs: req.latencyMs });
      await kube.start();
      startWatch(kube);
      mkdirSync(req.dir, { recursive: true });
      return { url: kube.url, kubeconfig: kube.writeKubeconfig(req.dir) };
    }
    case 'startEc2': {
      ec2 = await startFakeEc2({ instances: [] });
      return { url: ec2.url };
    }
    case 'ec2Put': {
      const fake = requireEc2();
      for (let i = req.from; i < req.from + req.count; i++) fake.put(benchEc2Instance(i, req.tagged));
      return null;
    }
    case 'ec2SetTags': {
      const fake = requireEc2();
      for (const { i, tags } of req.items) fake.setTags(benchEc2Instance(i, true).id, tags);
      return null;
    }
    case 'seed': {
      const server = requireKube();
      const started = performance.now();
      const chunk = 5000;
      for (let from = req.from; from < req.from + req.count; from += chunk) {
        const n = Math.min(chunk, req.from + req.count - from);
        for (const entry of benchEntriesOf(req.flavor as BenchFlavor, n, from)) {
          server.put(entry as unknown as KubeObject, { validate: false, fieldManager: 'vm-mesh-sync' });
        }
      }
      return { ms: performance.now() - started };
    }
    case 'clear': {
      const server = requireKube();
      for (const obj of server.objects(WE)) server.remove(WE, obj.metadata.namespace, String(obj.metadata.name));
      return null;
    }
    case 'size':
      return requireKube().size(WE);
    case 'counts':
      return verbCounts();
    case 'reset':
      requireKube().counts.reset();
      return null;
    case 'cpu':
      return { cpu: process.cpuUsage(), at: performance.now() };
    case 'track': {
      tracked.clear();
      changes.clear();
      for (const t of req.targets) tracked.set(`${t.namespace}/${t.name}`, { target: t });
      // Entries already as wanted count as seen now; the caller tracks before it acts.
      const server = requireKube();
      for (const t of req.targets) {
        const live = server.get(WE, t.namespace, t.name) as unknown as WorkloadEntry | undefined;
        const item = tracked.get(`${t.namespace}/${t.name}`)!;
        if (live && matches(t, live)) item.seenAt = Date.now();
      }
      return null;
    }
    case 'tracked': {
      const seen: Record<string, number | null> = {};
      for (const [key, item] of tracked) seen[key] = item.seenAt ?? null;
      return { seen, changes: Object.fromEntries(changes) };
    }
    case 'stop': {
      watch?.destroy();
      await Promise.allSettled([kube?.close(), ec2?.close()]);
      setImmediate(() => process.exit(0));
      return null;
    }
  }
}

process.on('message', (message: HostRequest & { id: number }) => {
  void handle(message).then(
    (result) => process.send?.({ id: message.id, ok: true, result } satisfies HostReply),
    (err: unknown) => process.send?.({ id: message.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies HostReply),
  );
});
// The parent going away (even by SIGKILL) ends the host: nothing is left listening.
process.on('disconnect', () => process.exit(0));
