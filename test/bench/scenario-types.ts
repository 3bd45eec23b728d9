// What a benchmark scenario gets from the runner and gives back.
import type { GoalVerdict } from './measure.ts';

/** Settings of one benchmark run, passed from the runner to each scenario process. */
export interface BenchOptions {
  /** Smaller sizes, for trying the benchmark out. */
  quick: boolean;
  /** Another size for the scenarios that take one (`--instances`). */
  instances?: number;
  /** How many full resyncs the serve scenarios run per variant (`--resyncs`), for a soak. */
  resyncs?: number;
  /** Only these variants of the scenarios that have several (`--variant`); all when absent. */
  variants?: string[];
  /** Delay the fake API server adds to every request. */
  latencyMs: number;
  /** Unique per run; every Redis key of the run starts with `{vms-bench-<runId>`. */
  runId: string;
  redisUrl: string;
  /** A folder of this run for configs, inventories and kubeconfigs. */
  workDir: string;
}

/** One line of a scenario's part of the printed table. */
export interface Row {
  figure: string;
  value: string;
}

/** What a scenario measured. */
export interface ScenarioResult {
  name: string;
  title: string;
  /** Every figure, machine-readable, for the JSON report. */
  figures: Record<string, unknown>;
  /** The figures a person reads, in order. */
  rows: Row[];
  goals: GoalVerdict[];
  /** What limited a figure, with the evidence; empty when nothing needs saying. */
  notes: string[];
}

/** A scenario: a name for `--only`, a title, and the measurement. */
export interface Scenario {
  name: string;
  title: string;
  /** How long the scenario may take at full size when `--timeout` is not given; default 10 minutes. */
  timeoutMs?: number;
  run(options: BenchOptions): Promise<ScenarioResult>;
}

/** The Redis key prefix of one scenario of a run; the hash tag keeps a Redis Cluster happy. */
export function scenarioPrefix(options: BenchOptions, scenario: string): string {
  return `{vms-bench-${options.runId}-${scenario}}`;
}

/** The pattern every Redis key of a run matches. */
export function runKeyPattern(runId: string): string {
  return `{vms-bench-${runId}-*`;
}

/** A progress line on stderr, so that stdout stays the report. */
export function progress(scenario: string, message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${scenario}: ${message}\n`);
}

/** NODE_OPTIONS for the `serve` processes a scenario starts: `base` plus BENCH_SERVE_NODE_OPTIONS (e.g. `--cpu-prof`). */
export function serveNodeOptions(base = ''): string {
  return [base, process.env.BENCH_SERVE_NODE_OPTIONS ?? ''].filter((o) => o.trim() !== '').join(' ');
}
