// The main thread's side of a cloud provider that runs in a worker thread (provider-thread.ts):
// the same Provider interface, with the webhook receiver here (it only checks credentials and
// reads event bodies, and never calls the cloud). A thread that dies (out of its memory, say)
// fails what it was doing, which the caller sees as an incomplete listing or a failed describe,
// and a new one is started for the next call.
import { Worker } from 'node:worker_threads';
import type { MappingConfig, ProviderConfig } from '../../config/schema.ts';
import type { Described, Instance, InstanceRef, Listing, ProviderKind, Scope } from '../../services/model.ts';
import { wholeListing } from '../paging.ts';
import type { PagedListing, Provider, WebhookReceiver } from '../provider.ts';
import { fromThreadError, type ThreadData, type ThreadReply, type ThreadRequest } from './protocol.ts';

const ENTRY = new URL('./provider-thread.ts', import.meta.url);

/** How large a provider thread's heap may grow, in MiB; a listing past it fails (and deletes nothing). */
export interface ThreadLimits {
  maxOldGenerationSizeMb: number;
  maxYoungGenerationSizeMb: number;
}

/** Enough for the SDK and a 100,000-instance listing with its pages being parsed. */
export const DEFAULT_THREAD_LIMITS: ThreadLimits = { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 16 };

interface Pending {
  /** Takes a chunk of a listing; the next is asked for once it resolves. */
  onPage?: (instances: Instance[]) => Promise<void>;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

interface Thread {
  worker: Worker;
  ready: Promise<Scope[]>;
}

/** Options of a threaded provider. */
export interface ThreadedProviderOptions {
  block: ProviderConfig;
  mapping: MappingConfig;
  /** The receiver of the block's webhook events, built here from its config. */
  webhook: WebhookReceiver;
  env?: NodeJS.ProcessEnv;
  limits?: ThreadLimits;
}

/** A provider whose cloud calls run in a worker thread. */
export class ThreadedProvider implements Provider {
  readonly kind: ProviderKind;
  readonly name: string;
  readonly webhook: WebhookReceiver;
  readonly #options: ThreadedProviderOptions;
  readonly #pending = new Map<number, Pending>();
  #scopes: Scope[] = [];
  #thread: Thread | undefined;
  #next = 1;

  private constructor(options: ThreadedProviderOptions) {
    this.kind = options.block.type;
    this.name = options.block.name;
    this.webhook = options.webhook;
    this.#options = options;
  }

  /** Starts the thread and waits until its provider is built (a bad block fails here, as it would in this thread). */
  static async start(options: ThreadedProviderOptions): Promise<ThreadedProvider> {
    const provider = new ThreadedProvider(options);
    provider.#scopes = await provider.#ensureThread().ready;
    return provider;
  }

  scopes(): Scope[] {
    return this.#scopes.map((s) => ({ ...s }));
  }

  async list(scope: Scope, signal?: AbortSignal): Promise<Listing> {
    return wholeListing((onPage) => this.listPages(scope, signal, onPage));
  }

  /** The listing a chunk at a time, each asked for once `onPage` has taken the one before. */
  async listPages(scope: Scope, signal: AbortSignal | undefined, onPage: (instances: Instance[]) => Promise<void>): Promise<PagedListing> {
    return (await this.#call({ op: 'list', scope }, signal, onPage)) as PagedListing;
  }

  async describe(refs: InstanceRef[], signal?: AbortSignal): Promise<Described[]> {
    return (await this.#call({ op: 'describe', refs }, signal)) as Described[];
  }

  async close(): Promise<void> {
    const thread = this.#thread;
    this.#thread = undefined;
    if (!thread) return;
    const closed = new Promise<void>((resolve) => {
      thread.worker.once('exit', () => resolve());
      thread.worker.on('message', (reply: ThreadReply) => reply.type === 'closed' && resolve());
    });
    thread.worker.ref();
    thread.worker.postMessage({ op: 'close' } satisfies ThreadRequest);
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    await thread.worker.terminate();
  }

  #ensureThread(): Thread {
    if (this.#thread) return this.#thread;
    const { block, mapping, env, limits } = this.#options;
    const worker = new Worker(ENTRY, {
      workerData: { block, mapping } satisfies ThreadData,
      env: { ...(env ?? process.env) },
      resourceLimits: limits ?? DEFAULT_THREAD_LIMITS,
    });
    let ready!: (scopes: Scope[]) => void;
    let failed!: (err: Error) => void;
    const thread: Thread = {
      worker,
      ready: new Promise<Scope[]>((resolve, reject) => {
        ready = resolve;
        failed = reject;
      }),
    };
    // Callers see a thread that failed to start through their call; nobody may be waiting yet.
    thread.ready.catch(() => {});
    worker.on('message', (reply: ThreadReply) => {
      if (reply.type === 'ready') {
        ready(reply.scopes);
        // From now on only calls in flight keep the process alive.
        if (this.#pending.size === 0) worker.unref();
      } else if (reply.type === 'failed') failed(fromThreadError(reply.error));
      else if (reply.type !== 'closed') this.#answer(reply);
    });
    const gone = (why: Error): void => {
      if (this.#thread === thread) this.#thread = undefined;
      failed(why);
      for (const [id, pending] of this.#pending) {
        this.#pending.delete(id);
        pending.reject(why);
      }
    };
    worker.on('error', (err) => gone(new Error(`the ${block.type} provider thread of "${block.name}" failed: ${err.message}`)));
    worker.on('exit', (code) => gone(new Error(`the ${block.type} provider thread of "${block.name}" ended (exit code ${code})`)));
    this.#thread = thread;
    return thread;
  }

  #answer(reply: Exclude<ThreadReply, { type: 'ready' | 'failed' | 'closed' }>): void {
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    if (reply.type === 'instances') {
      // The next chunk once this one is taken, and this thread has had its turn at other work.
      const next = (): void => void setImmediate(() => this.#thread?.worker.postMessage({ op: 'next', id: reply.id } satisfies ThreadRequest));
      (pending.onPage?.(reply.instances) ?? Promise.resolve()).then(next, (err: unknown) => {
        this.#settle(reply.id);
        this.#thread?.worker.postMessage({ op: 'abort', id: reply.id } satisfies ThreadRequest);
        pending.reject(err instanceof Error ? err : new Error(String(err)));
      });
      return;
    }
    this.#settle(reply.id);
    if (reply.type === 'listed') pending.resolve(reply.listing);
    else if (reply.type === 'described') pending.resolve(reply.described);
    else pending.reject(fromThreadError(reply.error));
  }

  /** Forgets a call; with none left in flight, the thread no longer keeps the process alive. */
  #settle(id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#thread?.worker.unref();
  }

  async #call(
    request: { op: 'list'; scope: Scope } | { op: 'describe'; refs: InstanceRef[] },
    signal?: AbortSignal,
    onPage?: (instances: Instance[]) => Promise<void>,
  ): Promise<unknown> {
    signal?.throwIfAborted();
    const thread = this.#ensureThread();
    await thread.ready;
    signal?.throwIfAborted();
    const id = this.#next++;
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = (): void => {
        this.#settle(id);
        thread.worker.postMessage({ op: 'abort', id } satisfies ThreadRequest);
        reject(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
      };
      const done = <T>(settle: (value: T) => void) => (value: T): void => {
        signal?.removeEventListener('abort', onAbort);
        settle(value);
      };
      this.#pending.set(id, { ...(onPage ? { onPage } : {}), resolve: done(resolve), reject: done(reject) });
      signal?.addEventListener('abort', onAbort, { once: true });
      thread.worker.ref();
      thread.worker.postMessage({ ...request, id } as ThreadRequest);
    });
  }
}
