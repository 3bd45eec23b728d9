// `vm-mesh-sync serve`: the HTTP server (webhooks, health, metrics, status) and the runtime
// (queue workers, periodic resync). SIGTERM stops taking webhooks, lets jobs in flight finish
// within a bound, closes Redis and exits 0.
import os from 'node:os';
import { maskConfig, maskUrl } from '../../config/mask.ts';
import { Metrics } from '../metrics.ts';
import { webhookReceivers } from '../runtime/receivers.ts';
import { Runtime } from '../runtime/runtime.ts';
import type { FastifyInstance } from 'fastify';
import { VmsError } from '../errors.ts';
import { buildServers } from '../server/server.ts';
import { openCluster } from './cluster.ts';
import { withContext } from './context.ts';
import { EXIT, type CliIO } from './io.ts';

/** Options of `serve`. */
export interface ServeCommandOptions {
  config?: string;
}

/** Runs `serve` until SIGTERM or SIGINT and resolves to the exit code. */
export async function runServe(opts: ServeCommandOptions, io: CliIO, signals: NodeJS.EventEmitter = process): Promise<number> {
  return withContext(opts.config, io, {}, async (ctx) => {
    const { config, providers, logger } = ctx;
    const cluster = openCluster(config, { optional: false, logger, env: io.env });
    if (!cluster.ok) throw new Error(cluster.reason);
    const metrics = new Metrics();
    const instanceName = io.env.POD_NAME ?? os.hostname();
    // The admin port answers from the start, so that probes and operators see why a replica is
    // not ready (Redis down, say) instead of a connection refused; webhooks wait for the queue.
    let runtime: Runtime | undefined;
    const starting = { ready: false, checks: { redis: { ok: false, detail: `starting: waiting for Redis at ${maskUrl(config.redis.url)} (see the VMS_ERR_REDIS_UNREACHABLE log lines)` } } };
    const receivers = webhookReceivers(providers);
    const servers = buildServers({
      logger,
      metrics,
      bodyLimit: config.server.bodyLimit,
      rateLimit: { max: config.server.rateLimit.max, windowMs: config.server.rateLimit.window },
      trustProxy: config.server.trustProxy,
      receivers,
      refresh: async (provider, refs) => {
        if (!runtime) throw new Error('the queue is not started yet');
        await runtime.refresh(provider, refs);
      },
      readiness: async () => (runtime ? runtime.readiness() : starting),
      status: async () => (runtime ? runtime.status() : { starting: starting.checks.redis.detail, scopes: [], writeErrors: [], writeErrorCount: 0 }),
    });
    const admin = await listen(servers.admin, config.server.host, config.server.adminPort, 'server.adminPort');
    let address: string;
    try {
      runtime = await Runtime.start({ config, providers, api: cluster.api, writer: cluster.writer, metrics, logger, instanceName });
      address = await listen(servers.webhooks, config.server.host, config.server.port, 'server.port');
    } catch (err) {
      // What was opened would keep the process alive after the error is reported.
      await runtime?.close(5000).catch(() => {});
      await servers.close().catch(() => {});
      throw err;
    }
    const running = runtime;
    logger.info({ address, admin, replica: instanceName, config: maskConfig(config) }, 'serving');

    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        logger.info({ signal }, 'shutting down: no new webhooks, finishing jobs in flight');
        resolve();
      };
      signals.once('SIGTERM', () => stop('SIGTERM'));
      signals.once('SIGINT', () => stop('SIGINT'));
    });

    servers.setShuttingDown();
    await running.close(config.server.shutdownTimeout);
    await servers.close();
    logger.info('stopped');
    return EXIT.ok;
  });
}

/** Listens on `port`; a port another process holds is a coded error naming the setting. */
async function listen(server: FastifyInstance, host: string, port: number, setting: string): Promise<string> {
  try {
    return await server.listen({ host, port });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    await server.close().catch(() => {});
    throw new VmsError('VMS_ERR_PORT_IN_USE', `${host}:${port} (${setting}) is in use by another process`);
  }
}
