// `npm run bench`: runs the scenarios, each in a process of its own, against real Redis and the fake
// Kubernetes API server, then prints a Markdown table and writes bench-report.json. Every process a
// scenario starts is ended and every Redis key of the run removed, also when a scenario fails or
// the run is interrupted.
//
//   npm run bench                         every scenario, full sizes
//   npm run bench -- --quick              smaller sizes, to try it out
//   npm run bench -- --only cold-sync     one scenario (repeat or comma-separate for more)
//   npm run bench -- --latency 5 --out /tmp/report.json --timeout 600
//   npm run bench -- --only serve-memory --instances 20000   another size for the scenarios that take one
//   npm run bench -- --only serve-memory --variant gcp,mixed  some variants of a scenario that has several
//   npm run bench -- --only serve-memory --variant static --resyncs 12   a soak: more resyncs per variant
//
// Environment: BENCH_LATENCY_MS (default 3), BENCH_REPORT (default ./bench-report.json),
// REDIS_URL (default redis://127.0.0.1:6379), BENCH_SERVE_NODE_OPTIONS (added to the NODE_OPTIONS
// of every `serve` started, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile it), BENCH_CPU_PROF
// (a folder: each scenario process and fake host writes its CPU profile there).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cleanupPrefix } from '../helpers/serve.ts';
import type { ChildPidMessage } from './children.ts';
import { cpuProfileArgs, isRunning } from './children.ts';
import { machineInfo } from './machine.ts';
import { type BenchReport, renderMarkdown, type ScenarioReport } from './report.ts';
import type { ScenarioOutcome } from './scenario.ts';
import { type BenchOptions, runKeyPattern } from './scenario-types.ts';
import { SCENARIOS } from './scenarios/index.ts';

const SCENARIO_ENTRY = fileURLToPath(new URL('./scenario.ts', import.meta.url));

/** Processes started by scenarios, as they reported them; ended at the end whatever happened. */
const startedPids = new Set<number>();
let current: ChildProcess | undefined;
let interrupted = false;

function usage(): string {
  return `usage: npm run bench -- [--quick] [--only NAME[,NAME]] [--variant NAME[,NAME]] [--instances N] [--resyncs N] [--latency MS] [--out FILE] [--timeout SECONDS]\nscenarios: ${SCENARIOS.map((s) => s.name).join(', ')}\n`;
}

function parseOptions(): { quick: boolean; only: string[]; variants: string[]; instances?: number; resyncs?: number; latencyMs: number; out: string; timeoutMs?: number } {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string', multiple: true },
      variant: { type: 'string', multiple: true },
      latency: { type: 'string' },
      out: { type: 'string' },
      timeout: { type: 'string' },
      instances: { type: 'string' },
      resyncs: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(usage());
    process.exit(0);
  }
  const only = (values.only ?? []).flatMap((o) => o.split(',')).map((o) => o.trim()).filter(Boolean);
  const unknown = only.filter((o) => !SCENARIOS.some((s) => s.name === o));
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')}\n${usage()}`);
  const latencyMs = Number(values.latency ?? process.env.BENCH_LATENCY_MS ?? 3);
  if (!Number.isFinite(latencyMs) || latencyMs < 0) throw new Error(`--latency must be a number of milliseconds, not ${values.latency}`);
  const timeoutMs = values.timeout === undefined ? undefined : Number(values.timeout) * 1000;
  if (timeoutMs !== undefined && !(timeoutMs > 0)) throw new Error(`--timeout must be a number of seconds, not ${values.timeout}`);
  const variants = (values.variant ?? []).flatMap((o) => o.split(',')).map((o) => o.trim()).filter(Boolean);
  const instances = values.instances === undefined ? undefined : Number(values.instances);
  if (instances !== undefined && !(Number.isInteger(instances) && instances > 0)) throw new Error(`--instances must be a whole number above 0, not ${values.instances}`);
  const resyncs = values.resyncs === undefined ? undefined : Number(values.resyncs);
  if (resyncs !== undefined && !(Number.isInteger(resyncs) && resyncs > 0)) throw new Error(`--resyncs must be a whole number above 0, not ${values.resyncs}`);
  return {
    quick: values.quick ?? false,
    only,
    variants,
    ...(instances ? { instances } : {}),
    ...(resyncs ? { resyncs } : {}),
    latencyMs,
    out: path.resolve(values.out ?? process.env.BENCH_REPORT ?? 'bench-report.json'),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  };
}

/** Kills what scenarios started, if still running; only processes of this benchmark (checked on their command line). */
function killStartedProcesses(): void {
  for (const pid of startedPids) {
    if (!isRunning(pid)) continue;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (!/vm-mesh-sync|test\/bench/.test(cmdline)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  startedPids.clear();
}

/** Runs one scenario in a child process; resolves to its outcome, never rejects. */
function runScenario(name: string, options: BenchOptions, timeoutMs: number): Promise<ScenarioOutcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', ...cpuProfileArgs(), SCENARIO_ENTRY, name], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, BENCH_OPTIONS: JSON.stringify(options) },
    });
    current = child;
    let outcome: ScenarioOutcome | undefined;
    const timer = setTimeout(() => {
      outcome ??= { type: 'error', error: `timed out after ${timeoutMs / 1000} s` };
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    child.on('message', (message: ScenarioOutcome | ChildPidMessage) => {
      if (message.type === 'pid') startedPids.add(message.pid);
      else outcome ??= message;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      current = undefined;
      const why = interrupted ? 'interrupted' : `the scenario process ended (${signal ?? `exit code ${code}`}) without a result`;
      resolve(outcome ?? { type: 'error', error: why });
    });
  });
}

async function main(): Promise<number> {
  const opts = parseOptions();
  const runId = `${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'vms-bench-'));
  const options: BenchOptions = { quick: opts.quick, ...(opts.instances ? { instances: opts.instances } : {}), ...(opts.resyncs ? { resyncs: opts.resyncs } : {}), ...(opts.variants.length > 0 ? { variants: opts.variants } : {}), latencyMs: opts.latencyMs, runId, redisUrl, workDir };
  const selected = SCENARIOS.filter((s) => opts.only.length === 0 || opts.only.includes(s.name));
  const started = Date.now();
  const machine = await machineInfo(redisUrl);
  const args = process.argv.slice(2);
  const report: BenchReport = {
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    command: `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`,
    options: { quick: opts.quick, latencyMs: opts.latencyMs, only: opts.only, ...(opts.variants.length > 0 ? { variants: opts.variants } : {}), ...(opts.instances ? { instances: opts.instances } : {}), ...(opts.resyncs ? { resyncs: opts.resyncs } : {}) },
    machine,
    scenarios: [],
    goals: [],
  };

  const finish = async (): Promise<void> => {
    killStartedProcesses();
    await cleanupRedis(runId, redisUrl);
    rmSync(workDir, { recursive: true, force: true });
    report.durationMs = Date.now() - started;
    report.goals = report.scenarios.flatMap((s) => (s.result?.goals ?? []).map((g) => ({ scenario: s.name, ...g })));
    mkdirSync(path.dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`\n${renderMarkdown(report)}\nReport written to ${opts.out}\n`);
  };

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      process.stderr.write(`\n[bench] ${signal}: stopping, cleaning up\n`);
      const child = current;
      child?.kill('SIGTERM');
      setTimeout(() => child?.kill('SIGKILL'), 5000).unref();
    });
  }

  for (const scenario of selected) {
    if (interrupted) break;
    process.stderr.write(`[bench] ${scenario.name}: starting\n`);
    const t0 = Date.now();
    const outcome = await runScenario(scenario.name, options, opts.timeoutMs ?? scenario.timeoutMs ?? 600_000);
    killStartedProcesses();
    const entry: ScenarioReport = {
      name: scenario.name,
      title: scenario.title,
      ok: outcome.type === 'result',
      durationMs: Date.now() - t0,
      machine,
      loadAverageAtEnd: Math.round(os.loadavg()[0]! * 100) / 100,
      ...(outcome.type === 'result' ? { result: outcome.result } : { error: outcome.error }),
    };
    report.scenarios.push(entry);
    process.stderr.write(`[bench] ${scenario.name}: ${entry.ok ? 'done' : `FAILED: ${entry.error}`} in ${Math.round(entry.durationMs / 1000)} s\n`);
  }
  await finish();
  if (interrupted) return 130;
  return report.scenarios.every((s) => s.ok) ? 0 : 1;
}

/** Removes every Redis key of the run, whichever scenario left it. */
async function cleanupRedis(runId: string, redisUrl: string): Promise<void> {
  try {
    await cleanupPrefix(runKeyPattern(runId).slice(0, -1), redisUrl);
  } catch (err) {
    process.stderr.write(`[bench] could not remove the run's Redis keys (${runKeyPattern(runId)}): ${(err as Error).message}\n`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    killStartedProcesses();
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  },
);
