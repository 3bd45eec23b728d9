// Scenario 5: resident memory and event-loop delay of a `serve` process holding a 100,000-instance
// scope, read from /proc/<pid>/status and serve's own /metrics after each of several full resyncs
// (the cluster is seeded with the scope's entries, so every resync is a no-op) and sampled every
// 100 ms. `serve` runs with the NODE_OPTIONS of deploy/base/deployment.yaml. Per provider, since
// the listing's memory is the provider's: EC2, Compute Engine and Azure through their real SDKs
// (in their provider threads) against the fakes, a static inventory, the same number of
// instances spread over 20 scopes of all four kinds, and an idle `serve` with an empty inventory.
// While it resyncs, /healthz is asked every 100 ms: its slowest answer is what a liveness probe
// would see. Each variant runs again at a fifth of the instances: what an instance adds is the
// difference between the two runs' growth, per instance between them, and what is left is what a
// resync costs whatever its size.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import type { ScopeStatus } from '../../../services/runtime/status-store.ts';
import { cleanupPrefix, freePort, ServeProcess } from '../../helpers/serve.ts';
import { trackChild } from '../children.ts';
import {
  AWS_ACCOUNT,
  AWS_NAME,
  AWS_REGION,
  AZURE_NAME,
  AZURE_SUBSCRIPTION,
  BENCH_OWNER,
  BENCH_REGIONS,
  type BenchFlavor,
  benchSubscription,
  GCP_NAME,
  GCP_PROJECT,
  type SeedFlavor,
  STATIC_NAME,
  STATIC_SCOPE,
  writeStaticInventory,
} from '../fixtures.ts';
import { FakeHost } from '../host-protocol.ts';
import { atMost, procMemory, round, sleep, until } from '../measure.ts';
import type { Row } from '../scenario-types.ts';
import { type BenchOptions, progress, type Scenario, type ScenarioResult, scenarioPrefix, serveNodeOptions } from '../scenario-types.ts';
import { FAKE_AWS_ENV } from './noop-resync.ts';

/** One scope of a fleet: instances from..from+count of a kind, in the scope numbered `index` of that kind. */
interface ScopeSpec {
  kind: BenchFlavor;
  index: number;
  from: number;
  count: number;
}

/** What a run measures, in order: `scopes(n)` is the fleet of n instances (none: idle). */
interface Variant {
  name: string;
  label: string;
  scopes(n: number): ScopeSpec[];
  /** The cluster starts empty: the first resync creates every entry (a first deployment). */
  cold?: boolean;
  /** Every entry in the cluster differs from what mapping makes (another address): the first resync updates them all. */
  stale?: boolean;
}

const one = (kind: BenchFlavor) => (n: number): ScopeSpec[] => [{ kind, index: 0, from: 0, count: n }];

/** 20 scopes, five of each kind, sharing n instances; instance numbers never repeat across scopes. */
function mixedFleet(n: number): ScopeSpec[] {
  const kinds: BenchFlavor[] = ['static', 'aws', 'gcp', 'azure'];
  const per = Math.floor(n / 20);
  return Array.from({ length: 20 }, (_, k) => ({ kind: kinds[Math.floor(k / 5)]!, index: k % 5, from: k * per, count: k === 19 ? n - 19 * per : per }));
}

const VARIANTS: readonly Variant[] = [
  { name: 'aws', label: 'aws', scopes: one('aws') },
  { name: 'gcp', label: 'gcp', scopes: one('gcp') },
  { name: 'azure', label: 'azure', scopes: one('azure') },
  { name: 'static', label: 'static', scopes: one('static') },
  { name: 'mixed', label: '20 scopes of all four kinds', scopes: mixedFleet },
  { name: 'cold', label: 'static, empty cluster (the first resync creates every entry)', scopes: one('static'), cold: true },
  { name: 'changed', label: 'static, every entry out of date (the first resync updates every entry)', scopes: one('static'), stale: true },
  { name: 'changed-gcp', label: 'gcp, every entry out of date (the first resync updates every entry)', scopes: one('gcp'), stale: true },
  { name: 'idle', label: 'static, idle (no machines)', scopes: () => [] },
];

/** The goals of issue "Hold 100,000 VMs inside the shipped limits". */
const GOALS = { soakGrowthMiB: 10, peakRssMiB: 450, mixedPeakRssMiB: 600, idleRssMiB: 200, perInstanceKiB: 1, loopP99Ms: 50, loopMaxMs: 250, healthzMs: 100 };

const DEPLOYMENT = fileURLToPath(new URL('../../../deploy/base/deployment.yaml', import.meta.url));

/** The variables of the Deployment's container with plain values, in its order; none without the file. */
function deployedVariables(): Array<{ name: string; value: string }> {
  try {
    for (const doc of parseAllDocuments(readFileSync(DEPLOYMENT, 'utf8'))) {
      const js = doc.toJS() as { spec?: { template?: { spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> } } } };
      for (const c of js?.spec?.template?.spec?.containers ?? []) {
        const plain = (c.env ?? []).flatMap((e) => (e.value === undefined ? [] : [{ name: e.name, value: e.value }]));
        if (plain.length > 0) return plain;
      }
    }
  } catch {
    // No deployment file: serve runs with Node's and glibc's defaults, and the report says so.
  }
  return [];
}

/** A variable of the Deployment's container as it sets it (a plain value); empty when it sets none. */
function deployedEnv(name: string): string {
  return deployedVariables().find((v) => v.name === name)?.value ?? '';
}

/** The allocator's settings the Deployment makes (glibc's MALLOC_* variables), for serve's environment. */
function allocatorEnv(): Record<string, string> {
  return Object.fromEntries(deployedVariables().flatMap((v) => (v.name.startsWith('MALLOC_') ? [[v.name, v.value]] : [])));
}

/** NODE_OPTIONS as the Deployment sets it; empty when it sets none. */
export function deployedNodeOptions(): string {
  return deployedEnv('NODE_OPTIONS');
}

/** What serve's /status says of a scope (the fields read here). */
type ScopeStatusView = Pick<ScopeStatus, 'scopeKey' | 'lastResyncAt' | 'durationMs' | 'complete' | 'instances' | 'entries' | 'owned' | 'changes' | 'error'>;

interface AfterResync {
  rssMiB: number;
  peakRssMiB: number;
  resyncMs: number;
  changes: number;
  /** serve's own event-loop delay since the previous read (prom-client's monitorEventLoopDelay, reset at each scrape). */
  loopDelay?: LoopDelay;
  /** The main thread's used heap after the resync. */
  heapUsedMiB?: number;
}

/** Event-loop delay over a window, in milliseconds. */
interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

/** What serve's /metrics says after a resync. */
interface Scrape {
  loopDelay?: LoopDelay;
  /** The main thread's used JS heap (prom-client's nodejs_heap_size_used_bytes), to tell a heap that grows from RSS that does. */
  heapUsedMiB?: number;
}

/** Reads serve's event-loop delay since the last scrape (which starts a new window) and its used heap from /metrics. */
async function scrape(proc: ServeProcess): Promise<Scrape> {
  const { body } = await proc.get('/metrics');
  if (typeof body !== 'string') return {};
  const read = (name: string): number | undefined => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(body);
    return m ? Number(m[1]) : undefined;
  };
  const p99 = read('nodejs_eventloop_lag_p99_seconds');
  const max = read('nodejs_eventloop_lag_max_seconds');
  const heap = read('nodejs_heap_size_used_bytes');
  return {
    ...(p99 === undefined || max === undefined ? {} : { loopDelay: { p99Ms: round(p99 * 1000, 1), maxMs: round(max * 1000, 1) } }),
    ...(heap === undefined ? {} : { heapUsedMiB: round(heap / 2 ** 20, 1) }),
  };
}

interface FlavorMemory {
  variant: string;
  label: string;
  instances: number;
  scopes: number;
  nodeOptions: string;
  /** RSS when /healthz first answered. */
  startedMiB: number;
  /** After each full resync, in order. */
  rounds: AfterResync[];
  /** Largest RSS seen by sampling every 100 ms. */
  sampledPeakMiB: number;
  /** Slowest /healthz answer while resyncing: the longest the event loop was blocked. */
  slowestHealthzMs: number;
  /** True when the slowest probe got no answer at all (serve died while it waited). */
  slowestUnanswered: boolean;
  /** Lines of serve's log in which BullMQ lost a job's lock (a blocked event loop's symptom). */
  lockErrors: number;
  /** Set when serve did not get through: how it ended and its last output. */
  failure?: string;
  /** The same variant at a fifth of the instances (SMALLER). */
  smaller?: FlavorMemory;
}

/** The smaller size each variant runs at too is the full size over this. */
const SMALLER = 5;

/** A run that got through every resync, for figures taken from it. */
function usable(r: FlavorMemory | undefined): FlavorMemory | undefined {
  return r !== undefined && r.failure === undefined && r.rounds.length > 0 && r.startedMiB > 0 ? r : undefined;
}

async function scopeStatuses(proc: ServeProcess): Promise<Map<string, ScopeStatusView>> {
  const body = (await proc.get('/status')).body as { scopes?: ScopeStatusView[] };
  return new Map((body.scopes ?? []).filter((s) => s.lastResyncAt !== '').map((s) => [s.scopeKey, s]));
}

/** A fleet set up in the fakes: the config's provider blocks, the scopes with their sizes, and what serve needs to reach the fakes. */
interface Fleet {
  providers: Array<Record<string, unknown>>;
  scopes: Map<string, number>;
  env: NodeJS.ProcessEnv;
}

/** A certificate for the fake ARM, when a fleet has Azure scopes: the fake host and serve trust it from the start. */
async function armCertificate(dir: string): Promise<{ certFile: string; keyFile: string }> {
  const { createTestCertificate } = await import('../../fakes/azure/tls.ts');
  const tls = await createTestCertificate();
  const certFile = path.join(dir, 'arm-cert.pem');
  const keyFile = path.join(dir, 'arm-key.pem');
  writeFileSync(certFile, tls.cert);
  writeFileSync(keyFile, tls.key, { mode: 0o600 });
  return { certFile, keyFile };
}

/** A service-account key file for the GCP block: the client signs its own tokens with it, so no token server is asked. */
function gcpKeyFile(dir: string): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const file = path.join(dir, 'gcp-key.json');
  const key = {
    type: 'service_account',
    project_id: GCP_PROJECT,
    private_key_id: 'bench',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: `vm-mesh-sync@${GCP_PROJECT}.iam.gserviceaccount.com`,
    client_id: '1',
    token_uri: 'https://oauth2.googleapis.com/token',
  };
  writeFileSync(file, JSON.stringify(key), { mode: 0o600 });
  return file;
}

/**
 * Puts a fleet's instances into the fakes and its entries into the cluster. One scope of the
 * static or AWS kind is seeded from the entries mapping makes of it (fixtures.ts); every other
 * fleet is seeded from what its real providers list.
 */
async function prepareFleet(host: FakeHost, dir: string, specs: ScopeSpec[], cert: { certFile: string; keyFile: string } | undefined, seeding: Pick<Variant, 'cold' | 'stale'> = {}): Promise<Fleet> {
  const fleet: Fleet = { providers: [], scopes: new Map(), env: {} };
  const of = (kind: BenchFlavor) => specs.filter((x) => x.kind === kind);
  if (specs.length === 0) {
    const inventory = path.join(dir, 'inventory.json');
    writeStaticInventory(inventory, 0);
    fleet.providers.push({ type: 'static', name: STATIC_NAME, inventory });
    fleet.scopes.set(STATIC_SCOPE, 0);
    return fleet;
  }
  for (const spec of of('static')) {
    const name = specs.length === 1 ? STATIC_NAME : `${STATIC_NAME}-${spec.index}`;
    const inventory = path.join(dir, `inventory-${spec.index}.json`);
    writeStaticInventory(inventory, spec.count, spec.from);
    fleet.providers.push({ type: 'static', name, inventory });
    fleet.scopes.set(`static:${name}`, spec.count);
  }
  if (of('aws').length > 0) {
    const { url } = await host.call<{ url: string }>({ op: 'startEc2' });
    const regions = of('aws').map((spec) => (specs.length === 1 ? AWS_REGION : BENCH_REGIONS[spec.index]!));
    for (const [k, spec] of of('aws').entries()) {
      await host.call({ op: 'ec2Put', from: spec.from, count: spec.count, tagged: true, region: regions[k]! });
      fleet.scopes.set(`aws:${AWS_NAME}:${AWS_ACCOUNT}:${regions[k]}`, spec.count);
    }
    fleet.providers.push({ type: 'aws', name: AWS_NAME, regions, accounts: [{ id: AWS_ACCOUNT }], endpoint: { ec2: url } });
    Object.assign(fleet.env, FAKE_AWS_ENV);
  }
  if (of('gcp').length > 0) {
    const { url } = await host.call<{ url: string }>({ op: 'startGce' });
    const projects = of('gcp').map((spec) => (specs.length === 1 ? GCP_PROJECT : `${GCP_PROJECT}-${spec.index}`));
    for (const [k, spec] of of('gcp').entries()) {
      await host.call({ op: 'gcePut', from: spec.from, count: spec.count, project: projects[k]! });
      fleet.scopes.set(`gcp:${GCP_NAME}:${projects[k]}`, spec.count);
    }
    fleet.providers.push({ type: 'gcp', name: GCP_NAME, projects, endpoint: url, keyFile: gcpKeyFile(dir) });
  }
  if (of('azure').length > 0) {
    if (!cert) throw new Error('an Azure fleet needs the fake ARM certificate');
    const { url, identityEndpoint, identityHeader } = await host.call<{ url: string; identityEndpoint: string; identityHeader: string }>({ op: 'startArm', ...cert });
    const subscriptions = of('azure').map((spec) => (specs.length === 1 ? AZURE_SUBSCRIPTION : benchSubscription(spec.index)));
    for (const [k, spec] of of('azure').entries()) {
      await host.call({ op: 'armPut', from: spec.from, count: spec.count, subscription: subscriptions[k]! });
      fleet.scopes.set(`azure:${AZURE_NAME}:${subscriptions[k]}`, spec.count);
    }
    fleet.providers.push({ type: 'azure', name: AZURE_NAME, subscriptions, endpoint: url });
    // DefaultAzureCredential finds App Service's managed identity; NODE_EXTRA_CA_CERTS is read when the process starts.
    Object.assign(fleet.env, { IDENTITY_ENDPOINT: identityEndpoint, IDENTITY_HEADER: identityHeader, NODE_EXTRA_CA_CERTS: cert.certFile });
  }
  const single = specs.length === 1 && (specs[0]!.kind === 'static' || specs[0]!.kind === 'aws') ? specs[0]! : undefined;
  if (seeding.cold) {
    // Nothing in the cluster.
  } else if (single) {
    await host.call({ op: 'seed', flavor: single.kind as SeedFlavor, from: single.from, count: single.count, ...(seeding.stale ? { stale: true } : {}) });
  } else {
    await host.call({ op: 'seedListed', config: { ownerId: BENCH_OWNER, providers: fleet.providers }, ...(seeding.stale ? { stale: true } : {}) });
  }
  return fleet;
}

/** Why serve ended, from its output: V8's out-of-memory line when there is one. */
function endReason(text: string): string {
  const lines = text.trim().split('\n');
  const fatal = lines.find((l) => l.includes('FATAL ERROR'));
  if (fatal) return fatal.trim();
  return lines.slice(-4).join(' | ').slice(0, 600);
}

/** `intervalMs`: the resync interval, long enough for a resync of `n` to end before the next one starts. */
async function measureVariant(variant: Variant, n: number, rounds: number, options: BenchOptions, prefix: string, nodeOptions: string, intervalMs: number): Promise<FlavorMemory> {
  const specs = variant.scopes(n);
  const dir = path.join(options.workDir, `memory-${prefix.replace(/\W+/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  const cert = specs.some((x) => x.kind === 'azure') ? await armCertificate(dir) : undefined;
  // The host lists the fleet through the real providers to seed the cluster, with serve's credentials.
  const host = new FakeHost({
    ...FAKE_AWS_ENV,
    ...(cert ? { NODE_EXTRA_CA_CERTS: cert.certFile } : {}),
  });
  let proc: ServeProcess | undefined;
  let sampler: NodeJS.Timeout | undefined;
  let probing = true;
  const result: FlavorMemory = { variant: variant.name, label: variant.label, instances: n, scopes: specs.length, nodeOptions, startedMiB: 0, rounds: [], sampledPeakMiB: 0, slowestHealthzMs: 0, slowestUnanswered: false, lockErrors: 0 };
  try {
    const { kubeconfig } = await host.startKube(options.latencyMs, dir);
    progress('serve-memory', `${variant.label}: ${n} instances in ${specs.length} scopes into the fakes and the cluster`);
    const fleet = await prepareFleet(host, dir, specs, cert, variant);
    const configFile = path.join(dir, 'config.yaml');
    writeFileSync(
      configFile,
      stringify({
        ownerId: BENCH_OWNER,
        providers: fleet.providers,
        kubernetes: { kubeconfig },
        redis: { url: options.redisUrl, prefix },
        resync: { interval: `${intervalMs}ms`, timeout: '5m' },
        log: { level: 'warn' },
      }),
    );
    // The allocator as the Deployment sets it (glibc makes up to 8 arenas per core otherwise).
    proc = new ServeProcess(configFile, await freePort(), {
      ...fleet.env,
      ...(serveNodeOptions(nodeOptions) ? { NODE_OPTIONS: serveNodeOptions(nodeOptions) } : {}),
      ...allocatorEnv(),
    });
    trackChild(proc.child);
    const serve = proc;
    const pid = proc.child.pid!;
    const spawnedAt = performance.now();
    sampler = setInterval(() => {
      try {
        const { rssMiB } = procMemory(pid);
        // A process that is exiting has no VmRSS line any more.
        if (Number.isFinite(rssMiB)) result.sampledPeakMiB = Math.max(result.sampledPeakMiB, rssMiB);
      } catch {
        // The process is gone; the waits below notice.
      }
    }, 100);
    const alive = (): void => {
      if (serve.child.exitCode !== null || serve.child.signalCode !== null) {
        const after = round((performance.now() - spawnedAt) / 1000, 1);
        throw new Error(`serve ended (${serve.child.signalCode ?? `exit code ${serve.child.exitCode}`}) ${after} s after it was started: ${endReason(serve.output)}`);
      }
    };
    await proc.started(120_000).catch((err: Error) => {
      alive();
      throw err;
    });
    result.startedMiB = procMemory(pid).rssMiB;
    // Starts serve's event-loop delay window.
    await scrape(serve).catch(() => undefined);
    void (async () => {
      while (probing && serve.child.exitCode === null) {
        const t = performance.now();
        let answered = true;
        try {
          await fetch(serve.url('/healthz'), { signal: AbortSignal.timeout(60_000) });
        } catch {
          // Blocked until serve died (or a minute passed): as long as it waited, and unanswered.
          answered = false;
        }
        const waited = round(performance.now() - t);
        if (waited > result.slowestHealthzMs) {
          result.slowestHealthzMs = waited;
          result.slowestUnanswered = !answered;
        }
        await sleep(100);
      }
    })();
    progress('serve-memory', `${variant.label}: serve started${nodeOptions ? ` with NODE_OPTIONS=${nodeOptions}` : ''}, ${rounds} resyncs of ${n} instances`);
    // A round ends when every scope has resynced once more since the previous round ended.
    let last = new Map<string, ScopeStatusView>();
    for (let r = 0; r < rounds; r++) {
      let done: Map<string, ScopeStatusView> | undefined;
      await until(
        `${variant.name}: resync ${r + 1}`,
        async () => {
          alive();
          const now = await scopeStatuses(serve).catch(() => undefined);
          if (!now) return false;
          const fresh = [...fleet.scopes.keys()].every((key) => now.has(key) && now.get(key)!.lastResyncAt !== last.get(key)?.lastResyncAt);
          if (fresh) done = now;
          return fresh;
        },
        600_000,
        200,
      );
      last = done!;
      const views = [...fleet.scopes.keys()].map((key) => last.get(key)!);
      const after: AfterResync = { ...procMemory(pid), resyncMs: round(Math.max(...views.map((v) => v.durationMs))), changes: views.reduce((sum, v) => sum + v.changes, 0) };
      const scraped = await scrape(serve).catch((): Scrape => ({}));
      if (scraped.loopDelay) after.loopDelay = scraped.loopDelay;
      if (scraped.heapUsedMiB !== undefined) after.heapUsedMiB = scraped.heapUsedMiB;
      result.rounds.push(after);
      // `owned` counts every entry of the installation, `entries` those the scope maps to.
      const total = [...fleet.scopes.values()].reduce((a, b) => a + b, 0);
      // A cold start creates every entry in its first resyncs; by the last, nothing is left to do.
      // Updates are applied more slowly than creates (each is a server-side apply): an out-of-date
      // cluster may still have some left at the last resync, which its own row shows.
      const settling = (variant.cold && r < rounds - 1) || variant.stale === true;
      const wrong = views.find((v) => v.error || !v.complete || v.entries !== fleet.scopes.get(v.scopeKey) || (!settling && (v.owned !== total || v.changes !== 0)));
      if (wrong) result.failure = `unexpected resync status ${JSON.stringify(wrong)}`;
      result.lockErrors = serve.output.split('\n').filter((line) => /could not renew lock|missing lock/i.test(line)).length;
      progress('serve-memory', `${variant.label}: resync ${r + 1} done in ${round(after.resyncMs / 1000, 1)} s, RSS ${after.rssMiB} MiB`);
    }
  } catch (err) {
    result.failure = (err as Error).message;
  } finally {
    probing = false;
    if (sampler) clearInterval(sampler);
    if (proc) {
      await Promise.race([proc.stop('SIGTERM'), sleep(10_000)]);
      await Promise.race([proc.stop('SIGKILL'), sleep(5_000)]);
    }
    await host.stop();
    await cleanupPrefix(prefix, options.redisUrl);
  }
  return result;
}

/** Where a soak's second half starts: the resync after which RSS should have levelled off. */
function soakStart(r: FlavorMemory): number {
  return Math.floor(r.rounds.length / 2) - 1;
}

/** RSS growth over a soak's second half: the highest RSS after a resync there, over the RSS where it starts. */
function soakGrowth(r: FlavorMemory): number {
  const from = r.rounds[soakStart(r)]!.rssMiB;
  return round(Math.max(...r.rounds.slice(soakStart(r) + 1).map((x) => x.rssMiB)) - from, 1);
}

/** The serve memory scenario. */
export const serveMemory: Scenario = {
  name: 'serve-memory',
  title: 'Memory of serve holding a large scope',
  // Six variants of several full resyncs each, at 100,000 instances.
  timeoutMs: 60 * 60_000,
  async run(options: BenchOptions): Promise<ScenarioResult> {
    const n = options.instances ?? (options.quick ? 10_000 : 100_000);
    const rounds = options.resyncs ?? (options.quick ? 2 : 4);
    const nodeOptions = deployedNodeOptions();
    const results: FlavorMemory[] = [];
    const unknown = (options.variants ?? []).filter((name) => !VARIANTS.some((v) => v.name === name));
    if (unknown.length > 0) throw new Error(`serve-memory has no variant ${unknown.join(', ')} (it has ${VARIANTS.map((v) => v.name).join(', ')})`);
    // Each variant runs at a fifth of the size too: what an instance adds is the difference between
    // the two, where a first resync's own cost (the code it compiles, a client's first requests,
    // the allocator's arenas) is the same at both sizes and would count as the instances' at one.
    const m = Math.round(n / SMALLER);
    const interval = options.quick ? 10_000 : 30_000;
    for (const [i, v] of VARIANTS.entries()) {
      if (options.variants && !options.variants.includes(v.name)) continue;
      const prefix = `${scenarioPrefix(options, this.name).slice(0, -1)}-${i}}`;
      const idle = v.scopes(n).length === 0;
      const result = await measureVariant(v, idle ? 0 : n, idle ? 1 : rounds, options, prefix, nodeOptions, interval);
      // A fifth of the instances resync in a fifth of the time: the resyncs come sooner.
      if (!idle && m > 0) result.smaller = await measureVariant(v, m, rounds, options, `${prefix.slice(0, -1)}s}`, nodeOptions, 10_000);
      results.push(result);
    }
    const rows: Row[] = [
      {
        figure: 'input',
        value:
          `${n.toLocaleString('en-US')} instances in one scope (in 20 for the mixed variant), all in the cluster already (none for the cold variant; out of date for the changed one), ${rounds} full resyncs; serve with ` +
          (nodeOptions ? `NODE_OPTIONS=${nodeOptions} as deploy/base/deployment.yaml sets it` : "Node's default heap limit (the Deployment sets no NODE_OPTIONS)") +
          Object.entries(allocatorEnv())
            .map(([name, value]) => ` and ${name}=${value}`)
            .join(''),
      },
    ];
    const peakOf = (r: FlavorMemory): number => Math.max(r.sampledPeakMiB, ...r.rounds.map((x) => x.peakRssMiB));
    /** A run's peak over its own RSS before the first resync: a first resync's own cost and its instances'. */
    const growthOf = (r: FlavorMemory): number => peakOf(r) - r.startedMiB;
    /** That growth per instance. */
    const perInstanceKiB = (r: FlavorMemory): number => round((growthOf(r) * 1024) / r.instances, 2);
    /**
     * What each instance adds: the growth at the full size over the growth at the smaller one, per
     * instance between them. Without a run at the smaller size, the growth per instance.
     */
    const marginalKiB = (r: FlavorMemory): number => {
      const s = usable(r.smaller);
      return s ? round(((growthOf(r) - growthOf(s)) * 1024) / (r.instances - s.instances), 2) : perInstanceKiB(r);
    };
    /** What a resync costs whatever its size: the growth less what its instances add. */
    const fixedMiB = (r: FlavorMemory): number => round(growthOf(r) - (marginalKiB(r) * r.instances) / 1024, 1);
    for (const r of results) {
      rows.push({ figure: `${r.label}: RSS at start / after each full resync`, value: `${r.startedMiB || '–'} / ${r.rounds.map((x) => x.rssMiB).join(' / ') || '–'} MiB` });
      rows.push({ figure: `${r.label}: peak RSS`, value: `${peakOf(r)} MiB` });
      if (r.rounds.some((x) => x.heapUsedMiB !== undefined)) {
        rows.push({ figure: `${r.label}: main thread's used heap after each full resync`, value: `${r.rounds.map((x) => x.heapUsedMiB ?? '–').join(' / ')} MiB` });
      }
      if (r.instances === 0) {
        if (r.failure) rows.push({ figure: `${r.label}: **did not get through**`, value: r.failure });
        continue;
      }
      rows.push({ figure: `${r.label}: RSS growth per instance (peak RSS − RSS at start) / instances`, value: `${perInstanceKiB(r)} KiB` });
      const s = usable(r.smaller);
      if (s) {
        rows.push({ figure: `${r.label}: at ${s.instances.toLocaleString('en-US')} instances, RSS at start / peak RSS`, value: `${s.startedMiB} / ${peakOf(s)} MiB` });
        rows.push({
          figure: `${r.label}: what each instance adds, between ${s.instances.toLocaleString('en-US')} and ${r.instances.toLocaleString('en-US')} instances (the difference of their growths per instance)`,
          value: `${marginalKiB(r)} KiB`,
        });
        rows.push({ figure: `${r.label}: what a resync costs whatever its size (the growth less what the instances add)`, value: `${fixedMiB(r)} MiB` });
      } else if (r.smaller?.failure) {
        rows.push({ figure: `${r.label}: at ${r.smaller.instances.toLocaleString('en-US')} instances, **did not get through**`, value: r.smaller.failure });
      }
      if (r.rounds.length > 2) {
        rows.push({ figure: `${r.label}: RSS growth from the 2nd to the last resync`, value: `${round(r.rounds.at(-1)!.rssMiB - r.rounds[1]!.rssMiB, 1)} MiB` });
      }
      if (r.rounds.length >= 6) {
        rows.push({ figure: `${r.label}: RSS growth over the last ${r.rounds.length - soakStart(r) - 1} resyncs (soak)`, value: `${soakGrowth(r)} MiB` });
      }
      if (r.rounds.some((x) => x.changes > 0)) rows.push({ figure: `${r.label}: changes each resync planned`, value: r.rounds.map((x) => x.changes).join(' / ') });
      rows.push({ figure: `${r.label}: resync time in serve, each`, value: `${r.rounds.map((x) => round(x.resyncMs / 1000, 1)).join(' / ')} s` });
      let probe = `${r.slowestHealthzMs} ms`;
      if (r.slowestUnanswered) probe = `none: no answer for ${r.slowestHealthzMs} ms, until serve died`;
      if (r.startedMiB === 0) probe = 'none: serve died before /healthz first answered';
      rows.push({ figure: `${r.label}: slowest /healthz answer while resyncing`, value: probe });
      rows.push({ figure: `${r.label}: BullMQ lock errors in serve's log`, value: String(r.lockErrors) });
      const delays = r.rounds.map((x) => x.loopDelay).filter((d): d is LoopDelay => d !== undefined);
      if (delays.length > 0) {
        rows.push({ figure: `${r.label}: event-loop delay in serve, p99 / max, each resync`, value: delays.map((d) => `${d.p99Ms} / ${d.maxMs}`).join('; ') + ' ms' });
      }
      if (r.failure) rows.push({ figure: `${r.label}: **did not get through**`, value: r.failure });
    }
    const size = n.toLocaleString('en-US');
    const goals = results.flatMap((r) => {
      const failed = (goal: string, target: string) => ({ goal, target, measured: 'crashed or failed', met: false, margin: `missed: ${r.failure?.slice(0, 160) ?? 'no resync'}` });
      if (r.instances === 0) {
        return [r.failure ? failed(`serve RSS idle with only the static provider`, `≤ ${GOALS.idleRssMiB} MiB`) : atMost('serve RSS idle with only the static provider', r.rounds[0]?.rssMiB ?? r.startedMiB, GOALS.idleRssMiB, 'MiB')];
      }
      const peakGoal = r.scopes > 1 ? GOALS.mixedPeakRssMiB : GOALS.peakRssMiB;
      if (r.failure || r.rounds.length === 0) return [failed(`serve peak RSS at ${size} instances, ${r.label}`, `≤ ${peakGoal} MiB`)];
      const delays = r.rounds.map((x) => x.loopDelay).filter((d): d is LoopDelay => d !== undefined);
      return [
        atMost(`serve peak RSS at ${size} instances, ${r.label}`, peakOf(r), peakGoal, 'MiB'),
        atMost(`what an instance adds to serve's RSS, ${r.label}${usable(r.smaller) ? '' : ' (growth per instance: no run at a fifth of the size got through)'}`, marginalKiB(r), GOALS.perInstanceKiB, 'KiB'),
        atMost(`event-loop delay p99 while resyncing ${size}, ${r.label}`, Math.max(...delays.map((d) => d.p99Ms)), GOALS.loopP99Ms, 'ms'),
        atMost(`event-loop delay max while resyncing ${size}, ${r.label}`, Math.max(...delays.map((d) => d.maxMs)), GOALS.loopMaxMs, 'ms'),
        atMost(`slowest /healthz while resyncing ${size}, ${r.label}`, r.slowestHealthzMs, GOALS.healthzMs, 'ms'),
        atMost(`BullMQ lock errors while resyncing ${size}, ${r.label}`, r.lockErrors, 0, ''),
        // A soak (--resyncs 6 or more): RSS levels off rather than growing with the resyncs.
        ...(r.rounds.length >= 6 ? [atMost(`RSS growth over the last ${r.rounds.length - soakStart(r) - 1} of ${r.rounds.length} resyncs, ${r.label}`, soakGrowth(r), GOALS.soakGrowthMiB, 'MiB')] : []),
      ];
    });
    return {
      name: this.name,
      title: this.title,
      figures: { instances: n, rounds, nodeOptions, byProvider: results },
      rows,
      goals,
      notes: [],
    };
  },
};
