// The outside world of a benchmark in a process of its own: the fake Kubernetes API server and the
// fake EC2, driven over IPC. Kept apart from the code under test so that the fakes' own work
// (schema checks, JSON, XML) never shares an event loop with what is measured, as a real API
// server and a real cloud would not.
import http from 'node:http';
import { mkdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { configSchema } from '../../config/schema.ts';
import { buildProvider } from '../../providers/index.ts';
import { mapInstances, plainEntry } from '../../services/mapping/index.ts';
import type { WorkloadEntry } from '../../services/model.ts';
import { type FakeArm, startFakeArm } from '../fakes/azure/arm-server.ts';
import { startFakeEc2, type FakeEc2 } from '../fakes/ec2/ec2-server.ts';
import { type FakeCompute, startFakeCompute } from '../fakes/gcp/compute-server.ts';
import { FakeKubeApiServer, type KubeObject } from '../fakes/kube-api-server.ts';
import { BENCH_OWNER, benchAzureVm, benchEc2Instance, benchEntriesOf, benchGceInstance, SEED_OBSERVED_AT } from './fixtures.ts';
import type { HostReply, HostRequest, TrackTarget, VerbCounts } from './host-protocol.ts';

const WE = 'workloadentries';

let kube: FakeKubeApiServer | undefined;
let ec2: FakeEc2 | undefined;
let gce: FakeCompute | undefined;
let arm: FakeArm | undefined;
/** Managed-identity tokens for Azure (App Service's protocol), as DefaultAzureCredential asks for them. */
let identity: http.Server | undefined;
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

function required<T>(fake: T | undefined, what: string): T {
  if (!fake) throw new Error(`the fake ${what} is not started`);
  return fake;
}

/** The header value the identity endpoint asks for, as App Service sets IDENTITY_HEADER. */
export const IDENTITY_HEADER = 'bench-identity-header';

/** Answers managed-identity token requests with a token valid for an hour. */
async function startIdentity(): Promise<string> {
  identity = http.createServer((req, res) => {
    if (req.headers['x-identity-header'] !== IDENTITY_HEADER) {
      res.writeHead(401).end();
      return;
    }
    const resource = new URL(req.url ?? '/', 'http://x').searchParams.get('resource') ?? '';
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ access_token: 'bench-token', expires_on: String(Math.floor(Date.now() / 1000) + 3600), resource, token_type: 'Bearer' }));
  });
  await new Promise<void>((resolve) => identity!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(identity.address() as AddressInfo).port}/msi/token`;
}

/**
 * Seeds the cluster with what the config's blocks list, mapped as `serve` maps them: each block's
 * real provider (in this process) lists each of its scopes from the fakes. So a resync of the same
 * scopes is a true no-op however the provider builds its instances.
 */
/** An entry made out of date: another address than its instance's, which the next resync corrects. */
function outOfDate<T extends { spec: { address?: string } }>(entry: T, k: number): T {
  entry.spec.address = `192.0.2.${k % 250}`;
  return entry;
}

async function seedListed(raw: Record<string, unknown>, stale = false): Promise<{ ms: number; entries: number }> {
  const server = requireKube();
  const started = performance.now();
  const config = configSchema.parse(raw);
  let entries = 0;
  for (const block of config.providers) {
    const provider = await buildProvider(block, { mapping: config.mapping });
    try {
      for (const scope of provider.scopes()) {
        const listing = await provider.list(scope);
        if (!listing.complete) throw new Error(`listing ${scope.key} to seed the cluster was incomplete: ${JSON.stringify(listing.problems?.slice(0, 3))}`);
        const mapped = mapInstances(listing.instances, config.mapping, { ownerId: BENCH_OWNER, scopeKey: scope.key, observedAt: SEED_OBSERVED_AT });
        for (const [k, desired] of mapped.entries.entries()) {
          const entry = plainEntry(desired);
          server.put((stale ? outOfDate(entry, k) : entry) as unknown as KubeObject, { validate: false, fieldManager: 'vm-mesh-sync' });
        }
        entries += mapped.entries.length;
      }
    } finally {
      await provider.close?.();
    }
  }
  return { ms: performance.now() - started, entries };
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
      for (let i = req.from; i < req.from + req.count; i++) fake.put(benchEc2Instance(i, req.tagged, req.region));
      return null;
    }
    case 'startGce': {
      gce = await startFakeCompute();
      return { url: gce.url };
    }
    case 'gcePut': {
      const fake = required(gce, 'Compute');
      for (let i = req.from; i < req.from + req.count; i++) fake.put(benchGceInstance(i, req.project));
      return null;
    }
    case 'startArm': {
      arm = await startFakeArm({ tls: { cert: readFileSync(req.certFile, 'utf8'), key: readFileSync(req.keyFile, 'utf8') }, subscriptions: [] });
      const identityEndpoint = await startIdentity();
      // DefaultAzureCredential reads these when it is made: the seeding below uses them too.
      process.env.IDENTITY_ENDPOINT = identityEndpoint;
      process.env.IDENTITY_HEADER = IDENTITY_HEADER;
      return { url: arm.url, identityEndpoint, identityHeader: IDENTITY_HEADER };
    }
    case 'armPut': {
      const fake = required(arm, 'ARM');
      for (let i = req.from; i < req.from + req.count; i++) fake.putVm(benchAzureVm(i, req.subscription));
      return null;
    }
    case 'seedListed':
      return seedListed(req.config, req.stale);
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
        for (const [k, entry] of benchEntriesOf(req.flavor, n, from).entries()) {
          server.put((req.stale ? outOfDate(entry, k) : entry) as unknown as KubeObject, { validate: false, fieldManager: 'vm-mesh-sync' });
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
      identity?.closeAllConnections();
      await Promise.allSettled([kube?.close(), ec2?.close(), gce?.close(), arm?.close(), new Promise((resolve) => (identity ? identity.close(resolve) : resolve(undefined)))]);
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
