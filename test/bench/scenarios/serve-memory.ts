// Scenario 5: resident memory of a `serve` process holding a 100,000-instance scope, read from
// /proc/<pid>/status after its first full resync (the cluster is seeded with the scope's entries,
// so that resync converges at once) and again after a second one. `serve` runs with the
// NODE_OPTIONS of deploy/base/deployment.yaml (the heap limit it is deployed with). Per provider,
// since the listing's memory is the provider's: EC2 through the real SDK, and a static inventory.
// While it resyncs, /healthz is asked every 100 ms: its slowest answer is how long the event loop
// was blocked, which is what a liveness probe would see.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import { cleanupPrefix, freePort, ServeProcess } from '../../helpers/serve.ts';
import { trackChild } from '../children.ts';
import { AWS_ACCOUNT, AWS_NAME, AWS_REGION, AWS_SCOPE, type BenchFlavor, STATIC_NAME, STATIC_SCOPE, writeStaticInventory } from '../fixtures.ts';
import { FakeHost } from '../host-protocol.ts';
import { atMost, procMemory, round, sleep, until } from '../measure.ts';
import type { Row } from '../scenario-types.ts';
import { type BenchOptions, progress, type Scenario, type ScenarioResult, scenarioPrefix, serveNodeOptions } from '../scenario-types.ts';
import { FAKE_AWS_CREDENTIALS } from './noop-resync.ts';

/**
 * What a full run measures, in order: each provider with the deployed heap limit, then EC2 with
 * Node's default limit, which shows how much memory the scope takes when nothing stops it.
 */
const VARIANTS: ReadonlyArray<{ flavor: BenchFlavor; deployed: boolean }> = [
  { flavor: 'aws', deployed: true },
  { flavor: 'static', deployed: true },
  { flavor: 'aws', deployed: false },
];

const DEPLOYMENT = fileURLToPath(new URL('../../../deploy/base/deployment.yaml', import.meta.url));

/** NODE_OPTIONS as the Deployment sets it; empty when it sets none. */
export function deployedNodeOptions(): string {
  try {
    for (const doc of parseAllDocuments(readFileSync(DEPLOYMENT, 'utf8'))) {
      const js = doc.toJS() as { spec?: { template?: { spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> } } } };
      for (const c of js?.spec?.template?.spec?.containers ?? []) {
        const value = c.env?.find((e) => e.name === 'NODE_OPTIONS')?.value;
        if (value !== undefined) return value;
      }
    }
  } catch {
    // No deployment file: serve runs with Node's defaults, and the report says so.
  }
  return '';
}

interface ScopeStatusView {
  scopeKey: string;
  lastResyncAt: string;
  durationMs: number;
  complete: boolean;
  instances: number;
  owned: number;
  changes: number;
  error: string;
}

interface AfterResync {
  rssMiB: number;
  peakRssMiB: number;
  resyncMs: number;
  changes: number;
  /** serve's own event-loop delay since the previous read (prom-client's monitorEventLoopDelay, reset at each scrape). */
  loopDelay?: LoopDelay;
}

/** Event-loop delay over a window, in milliseconds. */
interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

/** Reads serve's event-loop delay since the last scrape from /metrics (which starts a new window). */
async function loopDelay(proc: ServeProcess): Promise<LoopDelay | undefined> {
  const { body } = await proc.get('/metrics');
  if (typeof body !== 'string') return undefined;
  const read = (name: string): number | undefined => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(body);
    return m ? Number(m[1]) * 1000 : undefined;
  };
  const p99 = read('nodejs_eventloop_lag_p99_seconds');
  const max = read('nodejs_eventloop_lag_max_seconds');
  return p99 === undefined || max === undefined ? undefined : { p99Ms: round(p99, 1), maxMs: round(max, 1) };
}

interface FlavorMemory {
  flavor: BenchFlavor;
  /** `aws`, `static`, or `aws, no heap limit`. */
  label: string;
  instances: number;
  nodeOptions: string;
  /** RSS when /healthz first answered. */
  startedMiB: number;
  afterFirstResync?: AfterResync;
  afterSecondResync?: AfterResync;
  /** Largest RSS seen by sampling every 100 ms. */
  sampledPeakMiB: number;
  /** Slowest /healthz answer while resyncing: the longest the event loop was blocked. */
  slowestHealthzMs: number;
  /** True when the slowest probe got no answer at all (serve died while it waited). */
  slowestUnanswered: boolean;
  /** Set when serve did not get through: how it ended and its last output. */
  failure?: string;
}

async function scopeStatus(proc: ServeProcess, scopeKey: string): Promise<ScopeStatusView | undefined> {
  const body = (await proc.get('/status')).body as { scopes?: ScopeStatusView[] };
  return body.scopes?.find((s) => s.scopeKey === scopeKey && s.lastResyncAt !== '');
}

/** Why serve ended, from its output: V8's out-of-memory line when there is one. */
function endReason(text: string): string {
  const lines = text.trim().split('\n');
  const fatal = lines.find((l) => l.includes('FATAL ERROR'));
  if (fatal) return fatal.trim();
  return lines.slice(-4).join(' | ').slice(0, 600);
}

async function measureFlavor(flavor: BenchFlavor, label: string, n: number, options: BenchOptions, prefix: string, nodeOptions: string): Promise<FlavorMemory> {
  const host = new FakeHost();
  let proc: ServeProcess | undefined;
  let sampler: NodeJS.Timeout | undefined;
  let probing = true;
  const result: FlavorMemory = { flavor, label, instances: n, nodeOptions, startedMiB: 0, sampledPeakMiB: 0, slowestHealthzMs: 0, slowestUnanswered: false };
  try {
    const dir = path.join(options.workDir, `memory-${prefix.replace(/\W+/g, '-')}`);
    const { kubeconfig } = await host.startKube(options.latencyMs, dir);
    progress('serve-memory', `${label}: seeding ${n} entries`);
    await host.call({ op: 'seed', flavor, from: 0, count: n });
    let provider: Record<string, unknown>;
    let scopeKey: string;
    if (flavor === 'aws') {
      const { url } = await host.call<{ url: string }>({ op: 'startEc2' });
      await host.call({ op: 'ec2Put', from: 0, count: n, tagged: true });
      provider = { type: 'aws', name: AWS_NAME, regions: [AWS_REGION], accounts: [{ id: AWS_ACCOUNT }], endpoint: { ec2: url } };
      scopeKey = AWS_SCOPE;
    } else {
      const inventory = path.join(dir, 'inventory.json');
      writeStaticInventory(inventory, n);
      provider = { type: 'static', name: STATIC_NAME, inventory };
      scopeKey = STATIC_SCOPE;
    }
    const configFile = path.join(dir, 'config.yaml');
    // The second resync comes one interval after the first started: long enough for the first to end.
    const interval = options.quick ? 10_000 : 30_000;
    writeFileSync(
      configFile,
      stringify({
        ownerId: 'bench',
        providers: [provider],
        kubernetes: { kubeconfig },
        redis: { url: options.redisUrl, prefix },
        resync: { interval: `${interval}ms`, timeout: '5m' },
        log: { level: 'warn' },
      }),
    );
    proc = new ServeProcess(configFile, await freePort(), {
      AWS_ACCESS_KEY_ID: FAKE_AWS_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: FAKE_AWS_CREDENTIALS.secretAccessKey,
      AWS_EC2_METADATA_DISABLED: 'true',
      ...(serveNodeOptions(nodeOptions) ? { NODE_OPTIONS: serveNodeOptions(nodeOptions) } : {}),
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
    await loopDelay(serve).catch(() => undefined);
    void (async () => {
      while (probing && serve.child.exitCode === null) {
        const t = performance.now();
        let answered = true;
        try {
          await fetch(`http://127.0.0.1:${serve.port}/healthz`, { signal: AbortSignal.timeout(60_000) });
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
    progress('serve-memory', `${label}: serve started${nodeOptions ? ` with NODE_OPTIONS=${nodeOptions}` : ''}, waiting for the first resync of ${n} instances`);
    let first: ScopeStatusView | undefined;
    await until(
      `${flavor}: first resync`,
      async () => {
        alive();
        return (first = await scopeStatus(serve, scopeKey).catch(() => undefined)) !== undefined;
      },
      300_000,
      200,
    );
    result.afterFirstResync = { ...procMemory(pid), resyncMs: round(first!.durationMs), changes: first!.changes };
    const firstDelay = await loopDelay(serve).catch(() => undefined);
    if (firstDelay) result.afterFirstResync.loopDelay = firstDelay;
    progress('serve-memory', `${label}: waiting for the second resync`);
    let second: ScopeStatusView | undefined;
    await until(
      `${flavor}: second resync`,
      async () => {
        alive();
        const s = await scopeStatus(serve, scopeKey).catch(() => undefined);
        if (s && s.lastResyncAt !== first!.lastResyncAt) second = s;
        return second !== undefined;
      },
      300_000,
      200,
    );
    result.afterSecondResync = { ...procMemory(pid), resyncMs: round(second!.durationMs), changes: second!.changes };
    const secondDelay = await loopDelay(serve).catch(() => undefined);
    if (secondDelay) result.afterSecondResync.loopDelay = secondDelay;
    for (const s of [first!, second!]) {
      if (s.error || !s.complete || s.owned !== n || s.changes !== 0) result.failure = `unexpected resync status ${JSON.stringify(s)}`;
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

/** The serve memory scenario. */
export const serveMemory: Scenario = {
  name: 'serve-memory',
  title: 'Memory of serve holding a large scope',
  async run(options: BenchOptions): Promise<ScenarioResult> {
    const n = options.instances ?? (options.quick ? 10_000 : 100_000);
    const nodeOptions = deployedNodeOptions();
    const results: FlavorMemory[] = [];
    for (const [i, v] of VARIANTS.entries()) {
      const label = v.deployed ? v.flavor : `${v.flavor}, no heap limit`;
      const prefix = `${scenarioPrefix(options, this.name).slice(0, -1)}-${i}}`;
      results.push(await measureFlavor(v.flavor, label, n, options, prefix, v.deployed ? nodeOptions : ''));
    }
    const rows: Row[] = [
      {
        figure: 'input',
        value:
          `one scope of ${n.toLocaleString('en-US')} instances, all in the cluster already; serve with ` +
          (nodeOptions ? `NODE_OPTIONS=${nodeOptions} as deploy/base/deployment.yaml sets it, except where "no heap limit"` : "Node's default heap limit (the Deployment sets no NODE_OPTIONS)"),
      },
    ];
    for (const r of results) {
      const first = r.afterFirstResync;
      const second = r.afterSecondResync;
      rows.push({
        figure: `${r.label}: RSS at start / after 1st / after 2nd full resync`,
        value: `${r.startedMiB || '–'} / ${first?.rssMiB ?? '–'} / ${second?.rssMiB ?? '–'} MiB`,
      });
      rows.push({ figure: `${r.label}: peak RSS`, value: `${Math.max(r.sampledPeakMiB, second?.peakRssMiB ?? 0)} MiB` });
      if (first) rows.push({ figure: `${r.label}: resync time in serve, 1st / 2nd`, value: `${round(first.resyncMs / 1000, 1)} / ${second ? round(second.resyncMs / 1000, 1) : '–'} s` });
      let probe = `${r.slowestHealthzMs} ms`;
      if (r.slowestUnanswered) probe = `none: no answer for ${r.slowestHealthzMs} ms, until serve died`;
      if (r.startedMiB === 0) probe = 'none: serve died before /healthz first answered';
      rows.push({ figure: `${r.label}: slowest /healthz answer while resyncing`, value: probe });
      const delays = [first?.loopDelay, second?.loopDelay].filter((d): d is LoopDelay => d !== undefined);
      if (delays.length > 0) {
        rows.push({
          figure: `${r.label}: event-loop delay in serve, p99 / max (start + 1st resync; 2nd resync)`,
          value: delays.map((d) => `${d.p99Ms} / ${d.maxMs} ms`).join('; '),
        });
      }
      if (r.failure) rows.push({ figure: `${r.label}: **did not get through**`, value: r.failure });
    }
    return {
      name: this.name,
      title: this.title,
      figures: { instances: n, nodeOptions, byProvider: results },
      rows,
      goals: results.map((r) => {
        const label = `serve RSS at ${n.toLocaleString('en-US')} instances, ${r.label} (after 2nd resync)`;
        if (r.failure || !r.afterSecondResync) {
          return { goal: label, target: '≤ 512 MiB', measured: 'crashed or failed', met: false, margin: `missed: ${r.failure?.slice(0, 160) ?? 'no second resync'}` };
        }
        return atMost(label, r.afterSecondResync.rssMiB, 512, 'MiB');
      }),
      notes: [],
    };
  },
};
