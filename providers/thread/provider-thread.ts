// The cloud providers of one kind in a worker thread: their SDK, its requests and the parsing of its
// answers (EC2's XML, the JSON of Compute and Resource Graph pages) never hold the main thread's
// event loop, which keeps answering probes and running the queue meanwhile. Every block of the kind
// lives here, so the SDK is loaded once however many blocks there are. A listing goes back in
// chunks of INSTANCES_PER_MESSAGE, so the main thread reads it in short steps too.
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import type { Instance } from '../../services/model.ts';
import type { PagedListing, Provider } from '../provider.ts';
import { buildProvider } from '../index.ts';
import { listingPages } from '../paging.ts';
import { packInstances } from './packed-instances.ts';
import { INSTANCES_PER_MESSAGE, THREAD_NICENESS, type ThreadReply, type ThreadRequest, toThreadError } from './protocol.ts';

/**
 * Runs this thread below the main thread (Linux: niceness is per thread, set through the thread's
 * id): on a pod of one or two cores, a cloud's listing parsed here must not take the CPU from the
 * main thread's probes, webhooks and queue locks, which then waited for a core for up to 90 ms
 * with three provider threads busy. Where threads have no id of their own to set, or lowering is
 * refused, the thread runs as the process does.
 */
function runBelowMainThread(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0 || tid === process.pid) return;
    setPriority(tid, Math.min(19, getPriority(tid) + THREAD_NICENESS));
  } catch {
    // Not Linux, or not allowed: nothing to lower.
  }
}
runBelowMainThread();

const port = parentPort!;
const send = (reply: ThreadReply): void => port.postMessage(reply);
const providers = new Map<number, Provider>();
const running = new Map<number, AbortController>();
/** Listings waiting for the main thread to take their next chunk. */
const waiting = new Map<number, () => void>();

port.on('message', (request: ThreadRequest) => {
  if (request.op === 'abort') {
    running.get(request.id)?.abort(new Error('abandoned by the caller'));
    waiting.get(request.id)?.();
    return;
  }
  if (request.op === 'next') {
    waiting.get(request.id)?.();
    return;
  }
  if (request.op === 'close') {
    void Promise.allSettled([...providers.values()].map((p) => p.close?.())).finally(() => {
      send({ type: 'closed' });
      port.close();
    });
    return;
  }
  void serve(request);
});

async function serve(request: Exclude<ThreadRequest, { op: 'abort' | 'next' | 'close' }>): Promise<void> {
  const controller = new AbortController();
  running.set(request.id, controller);
  try {
    if (request.op === 'add') {
      const provider = await buildProvider(request.config, { mapping: request.mapping, env: process.env });
      providers.set(request.block, provider);
      send({ type: 'added', id: request.id, scopes: provider.scopes() });
      return;
    }
    const provider = providers.get(request.block);
    if (!provider) throw new Error(`no provider block ${request.block} in this thread`);
    if (request.op === 'remove') {
      providers.delete(request.block);
      await provider.close?.();
      send({ type: 'removed', id: request.id });
    } else if (request.op === 'list') {
      const id = request.id;
      // One chunk at a time, each sent once the main thread has read the one before: the main
      // thread reads each in a task of its own. The provider goes on with its next page while the
      // main thread reads the last chunk sent, so a provider reading page by page holds no more
      // than two pages here. Providers hand their pages on one at a time (each onPage awaited).
      let taken: Promise<void> = Promise.resolve();
      const pass = async (instances: Instance[]): Promise<void> => {
        for (let i = 0; i < instances.length; i += INSTANCES_PER_MESSAGE) {
          await taken;
          // An abandoned listing fails here, rather than pass on fewer chunks as if whole.
          controller.signal.throwIfAborted();
          // Waited for once sent: a chunk that cannot be sent throws here, and nothing waits for it.
          send({ type: 'instances', id, instances: packInstances(instances.slice(i, i + INSTANCES_PER_MESSAGE)) });
          taken = new Promise<void>((resolve) => waiting.set(id, resolve));
        }
      };
      let listing: PagedListing;
      try {
        listing = await listingPages(provider, request.scope, controller.signal, pass);
      } finally {
        // The listing ends, or fails, once its last chunk has been read ('next') or the main
        // thread has given it up ('abort'): never while a chunk of it is still being read there.
        await taken;
        waiting.delete(id);
      }
      send({ type: 'listed', id, listing });
    } else {
      send({ type: 'described', id: request.id, described: await provider.describe(request.refs, controller.signal) });
    }
  } catch (err) {
    send({ type: 'error', id: request.id, error: toThreadError(err) });
  } finally {
    running.delete(request.id);
  }
}
