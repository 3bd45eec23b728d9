// Every process a benchmark starts is known by its id, so none outlives the run: a scenario kills
// its own on exit, and tells the runner about each one in case the scenario itself is killed.
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let hooked = false;

/** Node's arguments that profile a scenario or fake-host process into BENCH_CPU_PROF, when it is set. */
export function cpuProfileArgs(): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : [];
}

/** A message a scenario process sends its runner about a process it started. */
export interface ChildPidMessage {
  type: 'pid';
  pid: number;
}

/** Remembers a started process; it is killed when this process exits. */
export function trackChild(child: ChildProcess): void {
  if (child.pid === undefined) return;
  live.add(child);
  child.once('exit', () => live.delete(child));
  process.send?.({ type: 'pid', pid: child.pid } satisfies ChildPidMessage);
  if (!hooked) {
    hooked = true;
    process.on('exit', killTrackedChildren);
  }
}

/** SIGKILLs every tracked process still running (exit handlers cannot wait for a graceful stop). */
export function killTrackedChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
}

/** True when a process with this id still runs. */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
