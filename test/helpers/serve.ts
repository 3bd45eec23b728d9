// Runs `vm-mesh-sync serve` as a real child process, as a Deployment would, and talks to it over HTTP.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/vm-mesh-sync.js', import.meta.url));

function listenOn(port: number): Promise<net.Server | undefined> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

/**
 * The ports the kernel hands out for `listen(0)` and outgoing connections: a port chosen from this
 * range can be taken by any fake server or client socket of a test file running beside us between
 * the check and the bind (CI once lost a `serve` start that way), so ports are chosen below it.
 */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && Number.isInteger(low) && Number.isInteger(high)) return [low, high];
  } catch {
    // Not Linux: the IANA dynamic range.
  }
  return [49152, 65535];
}

/**
 * A free TCP port on 127.0.0.1 whose next port is free too (`serve` takes the webhook port and the
 * admin port after it, ServeProcess), chosen at random outside the kernel's ephemeral range so that
 * no socket of another test takes it before the process that asked for it binds it.
 */
export async function freePort(): Promise<number> {
  const [low, high] = ephemeralRange();
  const [from, to] = low > 12_000 ? [10_000, low - 2] : [high + 1, 65_534];
  for (let tries = 0; tries < 1000; tries++) {
    // No room outside the ephemeral range (it spans almost every port): a port the kernel picks, as before.
    const port = from < to ? from + Math.floor(Math.random() * (to - from)) : await kernelPort();
    if (port >= 65_535) continue;
    const first = await listenOn(port);
    if (!first) continue;
    const second = await listenOn(port + 1);
    await new Promise((resolve) => first.close(resolve));
    if (second) {
      await new Promise((resolve) => second.close(resolve));
      return port;
    }
  }
  throw new Error(`no two free ports next to each other on 127.0.0.1 between ${from} and ${to}`);
}

/** A port the kernel chooses for `listen(0)`, closed again. */
async function kernelPort(): Promise<number> {
  const server = await listenOn(0);
  if (!server) throw new Error('no free port on 127.0.0.1');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** True when something listens on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** A `serve` process. */
export class ServeProcess {
  readonly child: ChildProcess;
  /** The webhooks' port (server.port). */
  readonly port: number;
  /** Health, readiness, metrics and status (server.adminPort): the port after `port`. */
  readonly adminPort: number;
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(configFile: string, port: number, env: NodeJS.ProcessEnv = {}) {
    this.port = port;
    this.adminPort = port + 1;
    this.child = spawn(process.execPath, [BIN, 'serve', '--config', configFile], {
      cwd: path.dirname(path.dirname(BIN)),
      env: { PATH: process.env.PATH, HOME: '/nonexistent', VMS_PORT: String(port), VMS_ADMIN_PORT: String(this.adminPort), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** GET a path; resolves to status and parsed body (text for non-JSON). */
  async get(pathname: string): Promise<{ status: number; body: unknown }> {
    const res = await fetch(this.url(pathname));
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Prometheus text stays text.
    }
    return { status: res.status, body };
  }

  /** POST a JSON body with headers. */
  async post(pathname: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
    const res = await fetch(this.url(pathname), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  /** The URL of a path: webhooks on the webhook port, everything else on the admin port. */
  url(pathname: string): string {
    return `http://127.0.0.1:${pathname.startsWith('/webhooks/') ? this.port : this.adminPort}${pathname}`;
  }

  /** Resolves once /healthz answers and the webhook port, which opens once the queue runs, takes connections. */
  async started(timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => {
      if (this.child.exitCode !== null) throw new Error(`serve exited early:\n${this.output}`);
      try {
        return (await this.get('/healthz')).status === 200 && (await accepts(this.port));
      } catch {
        return false;
      }
    }, timeoutMs, () => `serve did not start:\n${this.output}`);
  }

  /** Sends a signal and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Polls `check` until it is true; throws with `describe()` after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 30_000, describe: () => string = () => 'condition not met'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${describe()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A Redis key prefix of its own for one test (with a hash tag, as for Redis Cluster). */
export function uniquePrefix(name: string): string {
  return `{vms-test-${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}}`;
}

/** Removes every Redis key of a test's prefix. */
export async function cleanupPrefix(prefix: string, url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'): Promise<void> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
