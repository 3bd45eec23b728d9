// A cloud provider in a worker thread: its SDK, its requests and the parsing of its answers (EC2's
// XML, the JSON of Compute and Resource Graph pages) never hold the main thread's event loop, which
// keeps answering probes and running the queue meanwhile. A listing goes back in chunks of
// INSTANCES_PER_MESSAGE, so the main thread reads it in short steps too.
import { parentPort, workerData } from 'node:worker_threads';
import type { Instance } from '../../services/model.ts';
import type { PagedListing, Provider } from '../provider.ts';
import { buildProvider } from '../index.ts';
import { INSTANCES_PER_MESSAGE, type ThreadData, type ThreadReply, type ThreadRequest, toThreadError } from './protocol.ts';

const port = parentPort!;
const { block, mapping } = workerData as ThreadData;
const send = (reply: ThreadReply): void => port.postMessage(reply);
const running = new Map<number, AbortController>();
/** Listings waiting for the main thread to take their next chunk. */
const waiting = new Map<number, () => void>();

let provider: Provider;
try {
  provider = await buildProvider(block, { mapping, env: process.env });
  send({ type: 'ready', scopes: provider.scopes() });
} catch (err) {
  send({ type: 'failed', error: toThreadError(err) });
  port.close();
  throw err;
}

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
    void Promise.resolve(provider.close?.()).finally(() => {
      send({ type: 'closed' });
      port.close();
    });
    return;
  }
  void serve(request);
});

async function serve(request: Extract<ThreadRequest, { op: 'list' | 'describe' }>): Promise<void> {
  const controller = new AbortController();
  running.set(request.id, controller);
  try {
    if (request.op === 'list') {
      const id = request.id;
      // One chunk at a time, each sent once the main thread has read the one before: the main
      // thread reads each in a task of its own, and a provider reading page by page holds no
      // more than a page here.
      const pass = async (instances: Instance[]): Promise<void> => {
        for (let i = 0; i < instances.length && !controller.signal.aborted; i += INSTANCES_PER_MESSAGE) {
          const taken = new Promise<void>((resolve) => waiting.set(id, resolve));
          send({ type: 'instances', id, instances: instances.slice(i, i + INSTANCES_PER_MESSAGE) });
          await taken;
        }
      };
      let listing: PagedListing;
      if (provider.listPages) {
        listing = await provider.listPages(request.scope, controller.signal, pass);
      } else {
        const { instances, ...rest } = await provider.list(request.scope, controller.signal);
        await pass(instances);
        listing = { ...rest, failed: false };
      }
      waiting.delete(id);
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
