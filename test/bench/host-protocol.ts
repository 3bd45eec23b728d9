// The messages between a benchmark scenario and its fake host (fake-host.ts), and the client side.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { SeedFlavor } from './fixtures.ts';
import { cpuProfileArgs, trackChild } from './children.ts';

/** An entry to time: when it first exists (and, with `label`, carries that spec label value). */
export interface TrackTarget {
  namespace: string;
  name: string;
  label?: [string, string];
}

/** Requests by verb, as the fake API server counted them. */
export interface VerbCounts {
  workloadentries: Record<string, number>;
  all: Record<string, number>;
  /** Mutating requests on WorkloadEntries, no-ops included. */
  writes: number;
  /** Mutating requests on any resource. */
  allWrites: number;
  /** Write requests that changed nothing. */
  noops: number;
  /** Stored changes made by requests. */
  changes: number;
}

/** What a scenario can ask of its host. */
export type HostRequest =
  | { op: 'startKube'; latencyMs: number; dir: string }
  | { op: 'startEc2' }
  | { op: 'ec2Put'; from: number; count: number; tagged: boolean; region?: string }
  | { op: 'startGce' }
  | { op: 'gcePut'; from: number; count: number; project: string }
  | { op: 'startArm'; certFile: string; keyFile: string }
  | { op: 'armPut'; from: number; count: number; subscription: string }
  | { op: 'seedListed'; config: Record<string, unknown>; stale?: boolean }
  | { op: 'ec2SetTags'; items: Array<{ i: number; tags: Record<string, string> }> }
  | { op: 'seed'; flavor: SeedFlavor; from: number; count: number; stale?: boolean }
  | { op: 'clear' }
  | { op: 'size' }
  | { op: 'counts' }
  | { op: 'reset' }
  | { op: 'cpu' }
  | { op: 'track'; targets: TrackTarget[] }
  | { op: 'tracked' }
  | { op: 'stop' };

/** The host's answer to one request. */
export type HostReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

const HOST = fileURLToPath(new URL('./fake-host.ts', import.meta.url));

/** A CPU reading of the host, to tell how busy the fakes were during a phase. */
export interface CpuReading {
  cpu: NodeJS.CpuUsage;
  at: number;
}

/** The scenario's side of a fake host process. */
export class FakeHost {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #next = 1;

  /** `env` is added to the host's environment (NODE_EXTRA_CA_CERTS, read only when a process starts). */
  constructor(env: NodeJS.ProcessEnv = {}) {
    this.#child = spawn(process.execPath, [...cpuProfileArgs(), HOST], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env } });
    trackChild(this.#child);
    this.#child.on('message', (reply: HostReply) => {
      const waiting = this.#pending.get(reply.id);
      if (!waiting) return;
      this.#pending.delete(reply.id);
      if (reply.ok) waiting.resolve(reply.result);
      else waiting.reject(new Error(`fake host: ${reply.error}`));
    });
    this.#child.on('exit', (code, signal) => {
      for (const w of this.#pending.values()) w.reject(new Error(`fake host exited (${code ?? signal})`));
      this.#pending.clear();
    });
  }

  /** The host's process id. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Sends one request and waits for its answer. */
  call<T>(request: HostRequest): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#child.send({ ...request, id }, (err) => {
        if (err) {
          this.#pending.delete(id);
          reject(err);
        }
      });
    });
  }

  /** Starts the fake API server; resolves to its URL and a kubeconfig file for it. */
  startKube(latencyMs: number, dir: string): Promise<{ url: string; kubeconfig: string }> {
    return this.call({ op: 'startKube', latencyMs, dir });
  }

  /** Requests by verb since the last reset. */
  counts(): Promise<VerbCounts> {
    return this.call({ op: 'counts' });
  }

  /** The host's CPU time so far. */
  cpu(): Promise<CpuReading> {
    return this.call({ op: 'cpu' });
  }

  /** Stops the fakes and the process. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    await this.call({ op: 'stop' }).catch(() => {});
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** Share of one core a process used between two readings (1 = one core fully busy). */
export function coreShare(before: CpuReading, after: CpuReading): number {
  const used = after.cpu.user - before.cpu.user + (after.cpu.system - before.cpu.system);
  return used / 1000 / Math.max(1, after.at - before.at);
}
