// Scenario 5: resident memory and event-loop delay of a `serve` process holding a 100,000-instance
// scope, read from /proc/<pid>/status and serve's own /metrics after each of several full resyncs
// (the cluster is seeded with the scope's entries, so every resync is a no-op) and sampled every
// 100 ms. `serve` runs with the NODE_OPTIONS of deploy/base/deployment.yaml. Per provider, since
// the listing's memory is the provider's: EC2 through the real SDK (in its provider thread), a
// static inventory, and an idle `serve` with an empty inventory. While it resyncs, /healthz is
// asked every 100 ms: its slowest answer is what a liveness probe would see.
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

/** What a run measures, in order; `idle` runs with an empty inventory. */
const VARIANTS: ReadonlyArray<{ flavor: BenchFlavor; label: string; idle?: boolean }> = [
  { flavor: 'aws', label: 'aws' },
  { flavor: 'static', label: 'static' },
  { flavor: 'static', label: 'static, idle (no machines)', idle: true },
];

/** The goals of issue "Hold 100,000 VMs inside the shipped limits". */
const GOALS = { peakRssMiB: 450, idleRssMiB: 200, perInstanceKiB: 1, loopP99Ms: 50, loopMaxMs: 250, healthzMs: 100 };

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
  label: string;
  instances: number;
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

async function measureFlavor(flavor: BenchFlavor, label: string, n: number, rounds: number, options: BenchOptions, prefix: string, nodeOptions: string): Promise<FlavorMemory> {
  const host = new FakeHost();
  let proc: ServeProcess | undefined;
  let sampler: NodeJS.Timeout | undefined;
  let probing = true;
  const result: FlavorMemory = { flavor, label, instances: n, nodeOptions, startedMiB: 0, rounds: [], sampledPeakMiB: 0, slowestHealthzMs: 0, slowestUnanswered: false, lockErrors: 0 };
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
    progress('serve-memory', `${label}: serve started${nodeOptions ? ` with NODE_OPTIONS=${nodeOptions}` : ''}, ${rounds} resyncs of ${n} instances`);
    let last: ScopeStatusView | undefined;
    for (let r = 0; r < rounds; r++) {
      let done: ScopeStatusView | undefined;
      await until(
        `${flavor}: resync ${r + 1}`,
        async () => {
          alive();
          const s = await scopeStatus(serve, scopeKey).catch(() => undefined);
          if (s && s.lastResyncAt !== last?.lastResyncAt) done = s;
          return done !== undefined;
        },
        300_000,
        200,
      );
      last = done!;
      const after: AfterResync = { ...procMemory(pid), resyncMs: round(last.durationMs), changes: last.changes };
      const delay = await loopDelay(serve).catch(() => undefined);
      if (delay) after.loopDelay = delay;
      result.rounds.push(after);
      if (last.error || !last.complete || last.owned !== n || last.changes !== 0) result.failure = `unexpected resync status ${JSON.stringify(last)}`;
      result.lockErrors = serve.output.split('\n').filter((line) => /could not renew lock|missing lock/i.test(line)).length;
      progress('serve-memory', `${label}: resync ${r + 1} done in ${round(last.durationMs / 1000, 1)} s, RSS ${after.rssMiB} MiB`);
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
    const rounds = options.quick ? 2 : 4;
    const nodeOptions = deployedNodeOptions();
    const results: FlavorMemory[] = [];
    for (const [i, v] of VARIANTS.entries()) {
      const prefix = `${scenarioPrefix(options, this.name).slice(0, -1)}-${i}}`;
      results.push(await measureFlavor(v.flavor, v.label, v.idle ? 0 : n, v.idle ? 1 : rounds, options, prefix, nodeOptions));
    }
    const rows: Row[] = [
      {
        figure: 'input',
        value:
          `one scope of ${n.toLocaleString('en-US')} instances, all in the cluster already, ${rounds} full resyncs; serve with ` +
          (nodeOptions ? `NODE_OPTIONS=${nodeOptions} as deploy/base/deployment.yaml sets it` : "Node's default heap limit (the Deployment sets no NODE_OPTIONS)"),
      },
    ];
    const peakOf = (r: FlavorMemory): number => Math.max(r.sampledPeakMiB, ...r.rounds.map((x) => x.peakRssMiB));
    /** What the scope's instances add to the process: its peak over its own RSS before the first resync, per instance. */
    const perInstanceKiB = (r: FlavorMemory): number => round(((peakOf(r) - r.startedMiB) * 1024) / r.instances, 2);
    for (const r of results) {
      rows.push({ figure: `${r.label}: RSS at start / after each full resync`, value: `${r.startedMiB || '–'} / ${r.rounds.map((x) => x.rssMiB).join(' / ') || '–'} MiB` });
      rows.push({ figure: `${r.label}: peak RSS`, value: `${peakOf(r)} MiB` });
      if (r.instances === 0) {
        if (r.failure) rows.push({ figure: `${r.label}: **did not get through**`, value: r.failure });
        continue;
      }
      rows.push({ figure: `${r.label}: what each instance adds (peak RSS − RSS at start) / instances`, value: `${perInstanceKiB(r)} KiB` });
      if (r.rounds.length > 2) {
        rows.push({ figure: `${r.label}: RSS growth from the 2nd to the last resync`, value: `${round(r.rounds.at(-1)!.rssMiB - r.rounds[1]!.rssMiB, 1)} MiB` });
      }
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
      if (r.failure || r.rounds.length === 0) return [failed(`serve peak RSS at ${size} instances, ${r.label}`, `≤ ${GOALS.peakRssMiB} MiB`)];
      const delays = r.rounds.map((x) => x.loopDelay).filter((d): d is LoopDelay => d !== undefined);
      return [
        atMost(`serve peak RSS at ${size} instances, ${r.label}`, peakOf(r), GOALS.peakRssMiB, 'MiB'),
        atMost(`what an instance adds to serve's RSS, ${r.label}`, perInstanceKiB(r), GOALS.perInstanceKiB, 'KiB'),
        atMost(`event-loop delay p99 while resyncing ${size}, ${r.label}`, Math.max(...delays.map((d) => d.p99Ms)), GOALS.loopP99Ms, 'ms'),
        atMost(`event-loop delay max while resyncing ${size}, ${r.label}`, Math.max(...delays.map((d) => d.maxMs)), GOALS.loopMaxMs, 'ms'),
        atMost(`slowest /healthz while resyncing ${size}, ${r.label}`, r.slowestHealthzMs, GOALS.healthzMs, 'ms'),
        atMost(`BullMQ lock errors while resyncing ${size}, ${r.label}`, r.lockErrors, 0, ''),
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
