// The shared status in the real Redis: write errors are bounded in number, but a full store still
// keeps the errors it holds up to date.
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_WRITE_ERRORS, StatusStore, type WriteError } from '../../services/runtime/status-store.ts';
import { cleanupPrefix, uniquePrefix } from '../helpers/serve.ts';

describe('StatusStore write errors', () => {
  let redis: Redis;
  let prefix: string;
  let store: StatusStore;

  beforeEach(() => {
    redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    prefix = uniquePrefix('status-store');
    store = new StatusStore(redis, prefix);
  });
  afterEach(async () => {
    redis.disconnect();
    await cleanupPrefix(prefix);
  });

  const error = (key: string, message: string): WriteError => ({ key, code: 'VMS_ERR_KUBE_REJECTED', message, at: '2025-01-01T00:00:00.000Z' });

  it('when full, refuses errors of new entries but replaces those of entries it holds; clearing makes room', async () => {
    for (let i = 0; i < MAX_WRITE_ERRORS; i += 1000) {
      await Promise.all(Array.from({ length: 1000 }, (_, j) => store.putWriteError(error(`ns/vm-${i + j}`, 'first failure'))));
    }
    expect((await store.writeErrors()).length).toBe(MAX_WRITE_ERRORS);

    await store.putWriteError(error('ns/newcomer', 'failure'));
    expect(await store.writeError('ns/newcomer')).toBeNull();

    await store.putWriteError(error('ns/vm-5', 'second failure'));
    expect((await store.writeError('ns/vm-5'))?.message).toBe('second failure');
    expect((await store.writeErrors()).length).toBe(MAX_WRITE_ERRORS);

    await store.clearWriteError('ns/vm-6');
    await store.putWriteError(error('ns/newcomer', 'failure'));
    expect((await store.writeError('ns/newcomer'))?.message).toBe('failure');
  });

  it('forgets the errors of many successful writes, over many turns of the event loop, with one command (at once when flushed), and keeps an error newer than a success not yet forgotten', async () => {
    for (let i = 0; i < 50; i++) await store.putWriteError(error(`ns/vm-${i}`, 'failure'));
    const sent: string[] = [];
    const monitor = await redis.duplicate().monitor();
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args[1]?.startsWith(prefix)) sent.push(args[0]!.toLowerCase());
    });
    // Successes over many turns of the event loop, as writes end during a storm, within a window
    // that no machine takes 40 turns to fill.
    const windowed = new StatusStore(redis, prefix, { clearWindowMs: 60_000 });
    const cleared: Array<Promise<void>> = [];
    for (let i = 0; i < 40; i++) {
      cleared.push(windowed.clearWriteError(`ns/vm-${i}`));
      await new Promise((resolve) => setImmediate(resolve));
    }
    // vm-0 fails again before its success is forgotten: the newer error stays.
    await windowed.putWriteError(error('ns/vm-0', 'failed again'));
    expect(sent.filter((c) => c === 'hdel')).toHaveLength(0);
    // A process that stops does not wait out the window.
    await windowed.flushClears();
    await Promise.all(cleared);
    await new Promise((resolve) => setTimeout(resolve, 50));
    monitor.disconnect();
    expect(sent.filter((c) => c === 'hdel')).toHaveLength(1);
    expect((await store.writeErrors()).map((e) => `${e.key} ${e.message}`).sort()).toEqual(
      ['ns/vm-0 failed again', ...Array.from({ length: 10 }, (_, i) => `ns/vm-${40 + i} failure`)].sort(),
    );
  });
});
