// Scenario 6: what an unauthenticated webhook request costs a running `serve` (AWS provider, API-key
// webhook). A tiny request without the key, a 1 MB wide JSON body without the key, and the same
// body with the key (which `serve` reads and parses), sent one at a time over fresh connections:
// how long until the status line comes back. A body refused before it is read costs about what a
// tiny request costs; one that is parsed first costs its parsing on top.
import net from 'node:net';
import path from 'node:path';
import { cleanupPrefix, type ServeProcess } from '../../helpers/serve.ts';
import { FakeHost } from '../host-protocol.ts';
import { atMost, latencyStats, type LatencyStats, round, sleep } from '../measure.ts';
import { type BenchOptions, progress, type Scenario, type ScenarioResult, scenarioPrefix } from '../scenario-types.ts';
import { API_KEY, startWebhookServe } from './event-storm.ts';

/** The body of the large requests: a wide JSON object of 1 MB, under server.bodyLimit (1 MiB). */
const WIDE_BODY = wideJson(1_000_000);

function wideJson(bytes: number): string {
  const fields: string[] = [];
  let size = 2;
  for (let i = 0; size < bytes; i++) {
    const field = `"k${i}":${i}`;
    fields.push(field);
    size += field.length + 1;
  }
  return `{${fields.join(',')}}`;
}

type Kind = 'tiny, no key' | '1 MB, no key' | '1 MB, with the key';

/** One request on a connection of its own; resolves with its status and the ms from the first byte sent to the status line. */
function timedRequest(port: number, body: string, key: string | undefined): Promise<{ status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let started = 0;
    let text = '';
    socket.setTimeout(60_000, () => {
      socket.destroy();
      reject(new Error('no answer within 60 s'));
    });
    socket.on('connect', () => {
      started = performance.now();
      socket.write(
        `POST /webhooks/aws HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${key === undefined ? '' : `x-api-key: ${key}\r\n`}\r\n`,
      );
      // The server may answer and close before all of it is written: that is the point, not an error.
      socket.write(body, () => {});
    });
    socket.on('data', (chunk) => {
      if (text.includes('\r\n')) return;
      text += chunk.toString('latin1');
      const line = /^HTTP\/1\.1 (\d{3}) /.exec(text);
      if (line) {
        const ms = performance.now() - started;
        socket.destroy();
        resolve({ status: Number(line[1]), ms });
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (text.includes('\r\n')) return;
      // The server closed the connection on the rest of the body before its answer was read here.
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') resolve({ status: 0, ms: performance.now() - started });
      else reject(err);
    });
  });
}

/** The unauthenticated-request scenario. */
export const webhookAuth: Scenario = {
  name: 'webhook-auth',
  title: 'Unauthenticated webhook requests',
  timeoutMs: 5 * 60_000,
  async run(options: BenchOptions): Promise<ScenarioResult> {
    const rounds = options.quick ? 20 : 200;
    const prefix = scenarioPrefix(options, this.name);
    const host = new FakeHost();
    let proc: ServeProcess | undefined;
    try {
      const dir = path.join(options.workDir, 'webhook-auth');
      const { kubeconfig } = await host.startKube(options.latencyMs, dir);
      const { url } = await host.call<{ url: string }>({ op: 'startEc2' });
      // Every request of the scenario comes from one client: no limit, so that none is a 429.
      proc = await startWebhookServe({ options, dir, prefix, ec2: url, kubeconfig, server: { rateLimit: { max: 0 } } });
      const port = proc.port;

      progress(this.name, `${rounds} rounds of a tiny and a 1 MB request without the key, and a 1 MB request with it`);
      const kinds: Array<{ kind: Kind; body: string; key: string | undefined }> = [
        { kind: 'tiny, no key', body: '{}', key: undefined },
        { kind: '1 MB, no key', body: WIDE_BODY, key: undefined },
        { kind: '1 MB, with the key', body: WIDE_BODY, key: API_KEY },
      ];
      const times = new Map<Kind, number[]>(kinds.map((k) => [k.kind, []]));
      const statuses = new Map<Kind, Map<number, number>>(kinds.map((k) => [k.kind, new Map()]));
      // A few rounds first, so that each path runs compiled.
      for (let r = -5; r < rounds; r++) {
        for (const { kind, body, key } of kinds) {
          const { status, ms } = await timedRequest(port, body, key);
          if (r < 0) continue;
          times.get(kind)!.push(ms);
          const byStatus = statuses.get(kind)!;
          byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
        }
        await sleep(5);
      }
      await proc.stop('SIGTERM');

      const stats = new Map<Kind, LatencyStats>(kinds.map((k) => [k.kind, latencyStats(times.get(k.kind)!)]));
      const tiny = stats.get('tiny, no key')!;
      const large = stats.get('1 MB, no key')!;
      const parsed = stats.get('1 MB, with the key')!;
      const answers = (kind: Kind) => [...statuses.get(kind)!].map(([status, n]) => `${n} × ${status}`).join(', ');
      const show = (s: LatencyStats): string => `p50 ${s.p50} ms, p99 ${s.p99} ms, max ${s.max} ms`;
      return {
        name: this.name,
        title: this.title,
        figures: {
          rounds,
          bodyBytes: WIDE_BODY.length,
          answerMs: Object.fromEntries(stats),
          statuses: Object.fromEntries(kinds.map((k) => [k.kind, Object.fromEntries(statuses.get(k.kind)!)])),
        },
        rows: kinds.map(({ kind }) => ({ figure: `${kind}: first byte sent → status line`, value: `${show(stats.get(kind)!)} (${answers(kind)})` })),
        goals: [
          // Refused after its headers: the megabyte adds no parsing, only what the socket takes in.
          atMost('1 MB without the key, p50, as a share of a tiny request’s', round(large.p50 / tiny.p50, 2), 2, '×'),
        ],
        notes: [`for comparison, the same 1 MB read and parsed (with the key): ${show(parsed)}`],
      };
    } finally {
      if (proc) await Promise.race([proc.stop('SIGKILL'), sleep(5000)]);
      await host.stop();
      await cleanupPrefix(prefix, options.redisUrl);
    }
  },
};
