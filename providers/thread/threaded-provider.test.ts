// A cloud provider in its worker thread answers as the same provider in this thread does: the
// same listing (in chunks), the same describe, the same problems and error codes, and the event
// loop here stays free while the thread parses the cloud's answers.
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mappingSchema } from '../../config/schema.ts';
import { DEFAULT_ACCOUNT, type FakeEc2, startFakeEc2 } from '../../test/fakes/ec2/ec2-server.ts';
import { observeScope } from '../../services/sync/observe.ts';
import { localClock } from '../../services/stamp.ts';
import type { Scope } from '../../services/model.ts';
import { awsBlock, BASE_CREDENTIALS } from '../aws/test-support.ts';
import { EventBridgeReceiver } from '../aws/eventbridge.ts';
import { buildProvider, createProviders } from '../index.ts';
import type { Provider } from '../provider.ts';
import { packInstances } from './packed-instances.ts';
import { INSTANCES_PER_MESSAGE, THREAD_NICENESS } from './protocol.ts';
import { ThreadedProvider } from './threaded-provider.ts';

const MAPPING = mappingSchema.parse({});
const ENV = { AWS_ACCESS_KEY_ID: BASE_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: BASE_CREDENTIALS.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' };
const N = 2 * INSTANCES_PER_MESSAGE + 7;

let ec2: FakeEc2;
const open: Provider[] = [];

beforeEach(async () => {
  // The provider built in this thread takes its credentials from this process's environment.
  for (const [name, value] of Object.entries(ENV)) vi.stubEnv(name, value);
  ec2 = await startFakeEc2();
  for (let n = 0; n < N; n++) {
    ec2.put({ id: `i-${(0x10000000 + n).toString(16)}`, tags: { mesh: 'true', 'mesh-app': `app-${n % 7}` }, privateIp: `10.1.${n >> 8}.${n & 255}` });
  }
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((p) => p.close?.()));
  await ec2.close();
  vi.unstubAllEnvs();
});

async function both(): Promise<{ threaded: ThreadedProvider; direct: Provider }> {
  const block = awsBlock(ec2.url, { pageSize: 500 });
  const [threaded] = await createProviders([block], { mapping: MAPPING, env: ENV });
  const direct = await buildProvider(block, { mapping: MAPPING, env: ENV });
  open.push(threaded!, direct);
  expect(threaded).toBeInstanceOf(ThreadedProvider);
  return { threaded: threaded as ThreadedProvider, direct };
}

/** A listing without the providers' own read times, which differ between two listings. */
function comparable(listing: Awaited<ReturnType<Provider['list']>>) {
  return { ...listing, instances: listing.instances.map(({ observedAt: _at, ...rest }) => rest) };
}

describe('a cloud provider in a worker thread', () => {
  it('lists, in chunks, what the provider lists in this thread, and keeps the webhook receiver here', async () => {
    const { threaded, direct } = await both();
    expect(threaded.scopes()).toEqual(direct.scopes());
    expect(threaded.webhook).toBeInstanceOf(EventBridgeReceiver);
    const scope = threaded.scopes()[0]!;
    // While the thread lists, this event loop keeps turning.
    let turns = 0;
    const ticker = setInterval(() => turns++, 1);
    const listing = await threaded.list(scope);
    clearInterval(ticker);
    expect(listing.instances).toHaveLength(N);
    expect(comparable(listing)).toEqual(comparable(await direct.list(scope)));
    expect(turns).toBeGreaterThan(0);
    // The provider's own instances are of the shape that goes packed (not as they are).
    expect('strings' in packInstances((await direct.list(scope)).instances)).toBe(true);
  });

  it('reads the next page while this thread reads a chunk, and never more than that one ahead', async () => {
    const { threaded, direct } = await both();
    const scope = threaded.scopes()[0]!;
    const asked = () => ec2.describeRequests.length;
    const askedWhileHeld: number[] = [];
    const chunksWhileHeld: number[] = [];
    const pages: number[] = [];
    const listing = await threaded.listPages(scope, undefined, async (instances) => {
      pages.push(instances.length);
      if (pages.length > 1) return;
      // The first page is held here. The thread asked for the second before passing it on; reading
      // the second, it asks for the third (EC2's pages are asked for one ahead), and then waits.
      for (let tries = 0; tries < 300 && asked() < 3; tries++) await sleep(10);
      // Past the third, a thread that read on would ask for more, and send the second chunk here.
      for (let tries = 0; tries < 100 && asked() <= 3 && pages.length === 1; tries++) await sleep(10);
      askedWhileHeld.push(asked());
      chunksWhileHeld.push(pages.length);
    });
    expect(askedWhileHeld).toEqual([3]);
    expect(chunksWhileHeld).toEqual([1]);
    expect(listing).toMatchObject({ complete: true, failed: false });
    // Pages of 500 (the block's page size), each a chunk.
    expect(pages).toEqual([500, 500, 500, 500, 7]);
    expect(pages.reduce((a, b) => a + b)).toBe((await direct.list(scope)).instances.length);
  });

  it('ends a listing only once its last chunk has been read here', async () => {
    const { threaded } = await both();
    let read = 0;
    const listing = await threaded.listPages(threaded.scopes()[0]!, undefined, async (instances) => {
      // Each chunk takes a while to read: the thread has long read the next page meanwhile, and
      // the last one has nothing after it.
      await sleep(50);
      read += instances.length;
    });
    expect(listing).toMatchObject({ complete: true, failed: false });
    expect(read).toBe(N);
  });

  it.runIf(process.platform === 'linux')('runs its thread below the main thread', async () => {
    const niceness = (task: string): number => Number(readFileSync(`/proc/self/task/${task}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
    const tasks = (): Map<string, number> => new Map(readdirSync('/proc/self/task').map((t) => [t, niceness(t)]));
    const before = tasks();
    const main = niceness(String(process.pid));
    const { threaded } = await both();
    await threaded.list(threaded.scopes()[0]!);
    const lowered = [...tasks()].filter(([t, n]) => !before.has(t) && n === Math.min(19, main + THREAD_NICENESS));
    expect(lowered.length).toBeGreaterThanOrEqual(1);
    expect(niceness(String(process.pid))).toBe(main);
  });

  it('describes as the provider does, and brings back problems with their codes', async () => {
    const { threaded, direct } = await both();
    const refs = [
      { provider: 'aws' as const, account: DEFAULT_ACCOUNT, region: 'us-east-1', id: 'i-10000003' },
      { provider: 'aws' as const, account: DEFAULT_ACCOUNT, region: 'us-east-1', id: 'i-0fffffffffffffff0' },
    ];
    const strip = (d: Awaited<ReturnType<Provider['describe']>>) => d.map((x) => ({ ref: x.ref, id: x.instance?.id ?? null }));
    expect(strip(await threaded.describe(refs))).toEqual(strip(await direct.describe(refs)));

    const foreign: Scope = { key: 'aws:other:123456789012:us-east-1', provider: 'aws', source: 'other', account: '123456789012', region: 'us-east-1' };
    expect(await threaded.list(foreign)).toMatchObject({ complete: false, instances: [], problems: [{ code: 'VMS_ERR_PROVIDER_FAILED' }] });
  });

  it('drops the pages already passed on when the listing breaks off later, as the provider does', async () => {
    const { threaded, direct } = await both();
    const scope = threaded.scopes()[0]!;
    for (const p of [threaded, direct]) {
      // The first two pages are read; the third fails on every try.
      ec2.failAfter(2, 'InternalError');
      const listing = await p.list(scope);
      ec2.heal();
      expect(listing).toMatchObject({ complete: false, instances: [], problems: [{ code: 'VMS_ERR_PROVIDER_FAILED' }] });
    }
  });

  it('turns a failing cloud into an incomplete listing, and an abandoned listing frees the thread for the next', async () => {
    const { threaded } = await both();
    const scope = threaded.scopes()[0]!;
    ec2.failAlways({}, 'AuthFailure');
    const failed = await observeScope(threaded, scope, { config: { ownerId: 'o', mapping: MAPPING, providers: [] }, clock: localClock, timeoutMs: 30_000 });
    expect(failed.listing.complete).toBe(false);
    expect(failed.listing.problems[0]?.message).toMatch(/AuthFailure|credentials/);
    ec2.heal();

    const abandoned = new AbortController();
    const first = threaded.list(scope, abandoned.signal);
    abandoned.abort(new Error('took too long'));
    await expect(first).rejects.toThrow('took too long');
    expect((await threaded.list(scope)).instances).toHaveLength(N);
  });
});

describe('one thread per provider kind', () => {
  it('hosts every block of a kind in one thread, and each block lists its own scopes', async () => {
    const blocks = [awsBlock(ec2.url, { name: 'first', pageSize: 500 }), awsBlock(ec2.url, { name: 'second', regions: ['us-east-1', 'eu-west-1'] })];
    const providers = (await createProviders(blocks, { mapping: MAPPING, env: ENV })) as ThreadedProvider[];
    open.push(...providers);
    const [first, second] = providers;
    expect(first!.thread).toBe(second!.thread);
    expect(first!.scopes().map((s) => s.key)).toEqual(['aws:first:123456789012:us-east-1']);
    expect(second!.scopes().map((s) => s.key)).toEqual(['aws:second:123456789012:us-east-1', 'aws:second:123456789012:eu-west-1']);
    const [a, b] = await Promise.all([first!.list(first!.scopes()[0]!), second!.list(second!.scopes()[0]!)]);
    expect(a.instances).toHaveLength(N);
    expect(b.instances).toHaveLength(N);
    // Each request reaches its own block: only the second knows eu-west-1.
    const europe = second!.scopes()[1]!;
    expect(await second!.list(europe)).toMatchObject({ complete: true, problems: [] });
    expect(await first!.list(europe)).toMatchObject({ complete: false, problems: [{ code: 'VMS_ERR_PROVIDER_FAILED' }] });
    expect(first!.thread.threadId).toBeGreaterThan(0);
  });

  it('a thread that dies fails its calls, and the next call starts a new thread with every block of the kind', async () => {
    const blocks = [awsBlock(ec2.url, { name: 'first' }), awsBlock(ec2.url, { name: 'second' })];
    const [first, second] = (await createProviders(blocks, { mapping: MAPPING, env: ENV })) as ThreadedProvider[];
    open.push(first!, second!);
    const before = first!.thread.threadId;
    // The fake answers nothing until healed, so the listing is in flight when the thread ends.
    ec2.hang({});
    const listing = first!.list(first!.scopes()[0]!);
    await vi.waitFor(() => expect(ec2.describeRequests.length).toBeGreaterThan(0));
    await first!.thread.terminate();
    await expect(listing).rejects.toThrow(/aws provider thread \(blocks "first", "second"\) ended/);
    ec2.heal();
    expect((await second!.list(second!.scopes()[0]!)).instances).toHaveLength(N);
    expect((await first!.list(first!.scopes()[0]!)).instances).toHaveLength(N);
    expect(first!.thread.threadId).not.toBe(before);
  });

  it('closing one block keeps the thread for the others; closing the last ends it', async () => {
    const blocks = [awsBlock(ec2.url, { name: 'first' }), awsBlock(ec2.url, { name: 'second' })];
    const [first, second] = (await createProviders(blocks, { mapping: MAPPING, env: ENV })) as ThreadedProvider[];
    open.push(second!);
    await first!.close();
    await expect(first!.list(first!.scopes()[0]!)).rejects.toThrow(/closed/);
    expect((await second!.list(second!.scopes()[0]!)).instances).toHaveLength(N);
    await second!.close();
    expect(second!.thread.threadId).toBeUndefined();
  });
});
