// Small measuring tools shared by the scenarios: percentiles, process memory from /proc, CPU time
// of Redis, and goal verdicts that say by how much a goal was missed.
import { readdirSync, readFileSync } from 'node:fs';
import { Redis } from 'ioredis';

/** Latency figures of a sample, in milliseconds. */
export interface LatencyStats {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** The value at quantile q (0..1) of sorted values, nearest-rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** p50, p90, p99, max and mean of a sample. */
export function latencyStats(values: readonly number[]): LatencyStats {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    p50: round(quantile(sorted, 0.5)),
    p90: round(quantile(sorted, 0.9)),
    p99: round(quantile(sorted, 0.99)),
    max: round(sorted.at(-1) ?? Number.NaN),
    mean: round(sorted.length ? sum / sorted.length : Number.NaN),
  };
}

/** The median of a sample. */
export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

/** Rounds to `digits` decimals, for reports that read well. */
export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Bytes in MiB. */
export function mib(bytes: number): number {
  return round(bytes / 1024 / 1024);
}

/** Resident and peak resident memory of a process, from /proc/<pid>/status, in MiB. */
export function procMemory(pid: number): { rssMiB: number; peakRssMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssMiB: round(kb('VmRSS') / 1024), peakRssMiB: round(kb('VmHWM') / 1024) };
}

/** CPU seconds another process has used so far (all its threads), from /proc/<pid>/stat; Linux counts in 1/100 s. */
export function procCpuSeconds(pid: number): number {
  return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** User + system CPU seconds of a /proc stat line (a process's or a thread's). */
function statCpuSeconds(stat: string): number {
  // The fields after the command name, which is in parentheses and may hold spaces: state is the first.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU seconds this process's threads have used so far, by thread name (/proc/self/task/<tid>/comm:
 * `MainThread`, `WorkerThread` for a worker thread such as a provider thread, `V8Worker` for V8's
 * helpers, which run its concurrent and parallel garbage collection). Empty where /proc has no
 * threads to read.
 */
export function threadCpuSecondsByName(): Map<string, number> {
  const byName = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return byName;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      byName.set(name, (byName.get(name) ?? 0) + statCpuSeconds(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')));
    } catch {
      // The thread ended between the listing and the reading.
    }
  }
  return byName;
}

/** CPU seconds Redis has used so far (user + system), for how busy it was during a phase. */
export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/** CPU time of this process, in seconds. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `everyMs` until true; throws with `what` after `timeoutMs`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Whether a goal was reached, and by how much it was missed or met. */
export interface GoalVerdict {
  goal: string;
  target: string;
  measured: string;
  met: boolean;
  /** "met, 23% under the limit" or "missed by 0.4 s (40% over)". */
  margin: string;
}

/** A goal of the form measured <= limit. */
export function atMost(goal: string, measured: number, limit: number, unit: string): GoalVerdict {
  const met = measured <= limit;
  const diff = Math.abs(measured - limit);
  const share = limit === 0 ? '' : ` (${round((diff / limit) * 100, 0)}% ${met ? 'under' : 'over'})`;
  return {
    goal,
    target: `≤ ${fmt(limit)} ${unit}`.trim(),
    measured: `${fmt(measured)} ${unit}`.trim(),
    met,
    margin: met ? `met${share}` : `missed by ${fmt(diff)} ${unit}${share}`.replace(/\s+\(/, ' ('),
  };
}

/** A goal of the form measured >= limit. */
export function atLeast(goal: string, measured: number, limit: number, unit: string): GoalVerdict {
  const met = measured >= limit;
  const diff = Math.abs(measured - limit);
  const share = limit === 0 ? '' : ` (${round((diff / limit) * 100, 0)}% ${met ? 'above' : 'below'})`;
  return {
    goal,
    target: `≥ ${fmt(limit)} ${unit}`.trim(),
    measured: `${fmt(measured)} ${unit}`.trim(),
    met,
    margin: met ? `met${share}` : `missed by ${fmt(diff)} ${unit}${share}`.replace(/\s+\(/, ' ('),
  };
}

/** A number as a report shows it: thousands separated, at most two decimals. */
export function fmt(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return value.toLocaleString('en-US', { maximumFractionDigits: digits });
}
