// Redis connections for the queue, set up the way BullMQ needs them. URLs may carry a password;
// only maskUrl's form ever reaches a log or an error message.
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import type { BaseLogger } from 'pino';
import { maskUrl } from '../../config/mask.ts';
import { type Clock, stampFromMicros } from '../stamp.ts';

/**
 * `worker`: blocking commands that must wait out a Redis restart (BullMQ requires
 * maxRetriesPerRequest: null). `producer`: fails fast while Redis is down, so a webhook or a
 * resync reports the outage instead of piling up commands in memory.
 */
export type RedisRole = 'worker' | 'producer';

/** Options of createRedis. */
export interface CreateRedisOptions {
  role: RedisRole;
  /** Shown in CLIENT LIST, to tell replicas and roles apart. */
  connectionName?: string;
  /** Takes the connection's errors (and, for the producer, its coming up); without it they are dropped, never thrown. */
  errors?: RedisErrorLog;
}

/** An ioredis client for `url` with the options its role needs, and an error handler attached. */
export function createRedis(url: string, options: CreateRedisOptions): Redis {
  const roleOptions: RedisOptions =
    options.role === 'worker' ? { maxRetriesPerRequest: null } : { enableOfflineQueue: false };
  const redis = new Redis(url, {
    ...roleOptions,
    ...(options.connectionName ? { connectionName: options.connectionName } : {}),
  });
  const errors = options.errors;
  const source = `Redis ${options.connectionName ?? options.role} connection`;
  // An unhandled 'error' event would throw; without a log, errors are dropped.
  redis.on('error', (err: Error) => errors?.report(source, err));
  // The producer says when Redis is back: BullMQ's own connections have no say here, and one
  // connection of many coming up does not end an outage the others still see.
  if (errors && options.role === 'producer') redis.on('ready', () => errors.connected());
  return redis;
}

/**
 * Resolves when `redis` can take commands. A producer client (no offline queue) rejects commands
 * sent before its connection is up; this waits for that, bounded by `timeoutMs`.
 */
export async function redisReady(redis: Redis, timeoutMs = 10_000): Promise<void> {
  if (redis.status === 'ready') return;
  if (redis.status === 'wait') {
    await redis.connect();
    return;
  }
  if (redis.status === 'end') throw new Error('Redis connection is closed');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error('Redis connection closed before it was ready'));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('end', onEnd);
    };
    redis.on('ready', onReady);
    redis.on('end', onEnd);
  });
}

/**
 * The clock of `serve`: Redis's own `TIME`, shared by every replica, so that the order of
 * observations does not depend on the replicas' wall clocks agreeing.
 */
export function redisClock(redis: Redis): Clock {
  return async () => {
    // A producer connection has no offline queue: wait for it instead of failing while it connects.
    if (redis.status !== 'ready') await redisReady(redis);
    const [seconds, micros] = (await redis.time()).map(Number);
    if (!Number.isFinite(seconds) || !Number.isFinite(micros)) throw new Error('Redis TIME gave no time');
    return stampFromMicros(seconds! * 1_000_000 + micros!);
  };
}

/** Network failures of a connection, as opposed to errors of a command. */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

function isConnectionError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return (code !== undefined && CONNECTION_CODES.has(code)) || /Connection is closed|connect ETIMEDOUT|Stream isn't writeable/i.test(err.message);
}

/** The longest pause between two lines about the same Redis outage. */
const MAX_OUTAGE_LINE_INTERVAL_MS = 5 * 60_000;

/**
 * The errors of every Redis connection and BullMQ queue and worker of a process, in one place. A
 * Redis outage makes each of them fail on every reconnect attempt, which said as it comes is
 * hundreds of uncoded lines a minute: here it is one VMS_ERR_REDIS_UNREACHABLE line, then again
 * after 10 s, 20 s, 40 s and so on up to every 5 minutes, and one line when Redis answers again.
 * Any other error is logged as it comes.
 */
export class RedisErrorLog {
  readonly #logger: Pick<BaseLogger, 'warn' | 'error' | 'info'>;
  readonly #redis: string;
  readonly #now: () => number;
  #outageSince: number | undefined;
  #nextLineAt = 0;
  #interval = 10_000;
  #suppressed = 0;
  #dropping = false;

  constructor(logger: Pick<BaseLogger, 'warn' | 'error' | 'info'>, url: string, now: () => number = Date.now) {
    this.#logger = logger;
    this.#redis = maskUrl(url);
    this.#now = now;
  }

  /** An error event of `source` (a connection, a queue, a worker). */
  report(source: string, err: Error): void {
    if (!isConnectionError(err)) {
      this.#logger.error({ source, err: err.message }, `${source} error`);
      return;
    }
    if (this.#dropping) return;
    const now = this.#now();
    this.#outageSince ??= now;
    if (now < this.#nextLineAt) {
      this.#suppressed++;
      return;
    }
    this.#logger.warn(
      {
        code: 'VMS_ERR_REDIS_UNREACHABLE',
        redis: this.#redis,
        err: err.message,
        downForMs: now - this.#outageSince,
        sameErrorsSinceLastLine: this.#suppressed,
        nextLineInMs: this.#interval,
      },
      'Redis is unreachable; every connection keeps retrying',
    );
    this.#suppressed = 0;
    this.#nextLineAt = now + this.#interval;
    this.#interval = Math.min(MAX_OUTAGE_LINE_INTERVAL_MS, this.#interval * 2);
  }

  /** A connection is up: the end of an outage, when there was one. */
  connected(): void {
    if (this.#outageSince === undefined) return;
    this.#logger.info({ redis: this.#redis, downForMs: this.#now() - this.#outageSince }, 'Redis answers again');
    this.#outageSince = undefined;
    this.#nextLineAt = 0;
    this.#interval = 10_000;
    this.#suppressed = 0;
  }

  /**
   * The process drops its connections (a shutdown that timed out): the errors of the commands
   * still on them are not an outage, and are not reported as one.
   */
  dropping(): void {
    this.#dropping = true;
  }

  /** True while connections fail and none has come back. */
  get down(): boolean {
    return this.#outageSince !== undefined;
  }
}
