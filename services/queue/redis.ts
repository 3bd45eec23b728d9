// Redis connections for the queue, set up the way BullMQ needs them. URLs may carry a password;
// only maskRedisUrl's form ever reaches a log or an error message.
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import type { BaseLogger } from 'pino';
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
  /** Receives connection errors (with the URL masked); without it they are dropped, never thrown. */
  logger?: Pick<BaseLogger, 'warn'>;
}

/** The URL with its password replaced by `***`. */
export function maskRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^@/]*)@/, '//***@');
  }
}

/** An ioredis client for `url` with the options its role needs, and an error handler attached. */
export function createRedis(url: string, options: CreateRedisOptions): Redis {
  const roleOptions: RedisOptions =
    options.role === 'worker' ? { maxRetriesPerRequest: null } : { enableOfflineQueue: false };
  const redis = new Redis(url, {
    ...roleOptions,
    ...(options.connectionName ? { connectionName: options.connectionName } : {}),
  });
  const masked = maskRedisUrl(url);
  let lastReport = 0;
  redis.on('error', (err: Error) => {
    // A Redis outage produces an error per reconnect attempt; one line every 10 s says enough.
    const now = Date.now();
    if (now - lastReport < 10_000) return;
    lastReport = now;
    options.logger?.warn({ redis: masked, role: options.role, err: err.message }, 'Redis connection error');
  });
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
