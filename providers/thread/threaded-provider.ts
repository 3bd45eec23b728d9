// The main thread's side of the cloud providers that run in a worker thread (provider-thread.ts),
// one thread per provider kind: each block is the same Provider interface, with its webhook
// receiver here (it only checks credentials and reads event bodies, and never calls the cloud). A
// thread that dies (out of its memory, say) fails what it was doing, which the caller sees as an
// incomplete listing or a failed describe, and a new one is started for the next call.
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { MappingConfig, ProviderConfig } from '../../config/schema.ts';
import type { Described, Instance, InstanceRef, Listing, ProviderKind, Scope } from '../../services/model.ts';
import { wholeListing } from '../paging.ts';
import type { PagedListing, Provider, WebhookReceiver } from '../provider.ts';
import { unpackInstances } from './packed-instances.ts';
import { fromThreadError, type ThreadReply, type ThreadRequest } from './protocol.ts';

const ENTRY = new URL('./provider-thread.ts', import.meta.url);

/** How large a provider thread's heap may grow, in MiB; a listing past it fails (and deletes nothing). */
export interface ThreadLimits {
  maxOldGenerationSizeMb: number;
  maxYoungGenerationSizeMb: number;
}

/** Enough for the SDK and a 100,000-instance listing with its pages being parsed. */
export const DEFAULT_THREAD_LIMITS: ThreadLimits = { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 16 };

/**
 * Turns off V8's allocation-site pretenuring, for the whole process (V8's flags are not per
 * thread), before the first provider thread starts. When most of the objects made at one place
 * outlive a young collection, V8 makes that place's objects in the old generation from then on. In
 * one process in four to six, a place in a provider thread reading a 100,000-instance EC2 listing
 * was switched so early on and stayed so, though only 7-17% of its objects lived on after. Each
 * such object, dead in the old generation, kept the young objects it pointed to alive until the
 * next mark-compact: young collections kept half of what they scanned, a mark-compact ran every
 * 60-70 ms, and a listing took 11-17 s instead of 5, with V8's helper threads busy throughout.
 * Unlike turning off incremental marking, which also stops it, this leaves the main thread's
 * collections as short as they were (see README, Performance).
 */
function neverPretenure(): void {
  setFlagsFromString('--no-allocation-site-pretenuring');
}

interface Pending {
  /** The thread running the call. */
  worker: Worker;
  /** Takes a chunk of a listing; the next is asked for once it resolves. */
  onPage?: (instances: Instance[]) => Promise<void>;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** A block hosted by a provider thread. */
interface Block {
  config: ProviderConfig;
  mapping: MappingConfig;
  scopes: Scope[];
}

/** Options of a provider thread. */
export interface ProviderThreadOptions {
  env?: NodeJS.ProcessEnv;
  limits?: ThreadLimits;
}

/** A request before the thread gives it its call number. */
type Request = ThreadRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * The worker thread that hosts every block of one provider kind. A block is built in the thread
 * when added, and again in a new thread after the old one died (out of memory, say): a dead
 * thread fails the calls it was running, and the next call starts a new one.
 */
export class ProviderThread {
  readonly kind: ProviderKind;
  readonly #options: ProviderThreadOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #blocks = new Map<number, Block>();
  /** Per block, its `add` in the current thread. */
  readonly #ready = new Map<number, Promise<void>>();
  #worker: Worker | undefined;
  #next = 1;
  #nextBlock = 1;

  constructor(kind: ProviderKind, options: ProviderThreadOptions = {}) {
    this.kind = kind;
    this.#options = options;
  }

  /** Builds a block's provider in the thread; a bad block fails here, as it would in this thread. */
  async add(config: ProviderConfig, mapping: MappingConfig): Promise<{ block: number; scopes: Scope[] }> {
    const block = this.#nextBlock++;
    this.#blocks.set(block, { config, mapping, scopes: [] });
    try {
      await this.#readyFor(block);
    } catch (err) {
      this.#blocks.delete(block);
      if (this.#blocks.size === 0) await this.close();
      throw err;
    }
    return { block, scopes: this.#blocks.get(block)!.scopes };
  }

  /** Closes a block's provider; the thread ends with its last block. */
  async remove(block: number): Promise<void> {
    if (!this.#blocks.delete(block)) return;
    const ready = this.#ready.get(block);
    this.#ready.delete(block);
    const worker = this.#worker;
    if (this.#blocks.size === 0) return this.close();
    if (worker && ready) await ready.then(() => this.#send(worker, { op: 'remove', block })).catch(() => {});
  }

  /** Sends a call about one block; the answer (or the thread's failure) settles it. */
  async call(
    block: number,
    request: { op: 'list'; scope: Scope } | { op: 'describe'; refs: InstanceRef[] },
    signal?: AbortSignal,
    onPage?: (instances: Instance[]) => Promise<void>,
  ): Promise<unknown> {
    signal?.throwIfAborted();
    const worker = await this.#readyFor(block);
    signal?.throwIfAborted();
    return this.#send(worker, { ...request, block }, signal, onPage);
  }

  /** The running thread's id; undefined while none runs. */
  get threadId(): number | undefined {
    return this.#worker?.threadId;
  }

  /** Ends the thread at once: its calls in flight fail, and the next call starts a new thread with every block. */
  async terminate(): Promise<void> {
    await this.#worker?.terminate();
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    this.#ready.clear();
    if (!worker) return;
    const closed = new Promise<void>((resolve) => {
      worker.once('exit', () => resolve());
      worker.on('message', (reply: ThreadReply) => reply.type === 'closed' && resolve());
    });
    worker.ref();
    worker.postMessage({ op: 'close' } satisfies ThreadRequest);
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    await worker.terminate();
  }

  /** The thread, with the block built in it. */
  async #readyFor(block: number): Promise<Worker> {
    const known = this.#blocks.get(block);
    if (!known) throw new Error(`the ${this.kind} provider block was closed`);
    const worker = this.#ensureWorker();
    let ready = this.#ready.get(block);
    if (!ready) {
      ready = this.#send(worker, { op: 'add', block, config: known.config, mapping: known.mapping }).then((scopes) => {
        known.scopes = scopes as Scope[];
      });
      const mine = ready;
      // A block that could not be built is tried again by the next call.
      mine.catch(() => this.#ready.get(block) === mine && this.#ready.delete(block));
      this.#ready.set(block, mine);
    }
    await ready;
    return worker;
  }

  #names(): string {
    return [...this.#blocks.values()].map((b) => `"${b.config.name}"`).join(', ');
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const { env, limits } = this.#options;
    neverPretenure();
    const worker = new Worker(ENTRY, { env: { ...(env ?? process.env) }, resourceLimits: limits ?? DEFAULT_THREAD_LIMITS });
    worker.unref();
    worker.on('message', (reply: ThreadReply) => {
      if (reply.type !== 'closed') this.#answer(worker, reply);
    });
    const gone = (why: Error): void => {
      if (this.#worker === worker) {
        this.#worker = undefined;
        this.#ready.clear();
      }
      for (const [id, pending] of this.#pending) {
        if (pending.worker !== worker) continue;
        this.#pending.delete(id);
        pending.reject(why);
      }
    };
    worker.on('error', (err) => gone(new Error(`the ${this.kind} provider thread (blocks ${this.#names()}) failed: ${err.message}`)));
    worker.on('exit', (code) => gone(new Error(`the ${this.kind} provider thread (blocks ${this.#names()}) ended (exit code ${code})`)));
    this.#worker = worker;
    return worker;
  }

  #answer(worker: Worker, reply: Exclude<ThreadReply, { type: 'closed' }>): void {
    const pending = this.#pending.get(reply.id);
    if (!pending) return;
    if (reply.type === 'instances') {
      // The next chunk once this one is taken, and this thread has had its turn at other work.
      const next = (): void => void setImmediate(() => worker.postMessage({ op: 'next', id: reply.id } satisfies ThreadRequest));
      // Read in the chain, so that a chunk that does not read back fails the listing as onPage would.
      Promise.resolve()
        .then(() => pending.onPage?.(unpackInstances(reply.instances)))
        .then(next, (err: unknown) => {
          this.#settle(worker, reply.id);
          worker.postMessage({ op: 'abort', id: reply.id } satisfies ThreadRequest);
          pending.reject(err instanceof Error ? err : new Error(String(err)));
        });
      return;
    }
    this.#settle(worker, reply.id);
    if (reply.type === 'listed') pending.resolve(reply.listing);
    else if (reply.type === 'described') pending.resolve(reply.described);
    else if (reply.type === 'added') pending.resolve(reply.scopes);
    else if (reply.type === 'removed') pending.resolve(undefined);
    else pending.reject(fromThreadError(reply.error));
  }

  /** Forgets a call; with none left in flight, the thread no longer keeps the process alive. */
  #settle(worker: Worker, id: number): void {
    this.#pending.delete(id);
    if (this.#pending.size === 0) worker.unref();
  }

  #send(worker: Worker, request: Request, signal?: AbortSignal, onPage?: (instances: Instance[]) => Promise<void>): Promise<unknown> {
    const id = this.#next++;
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = (): void => {
        this.#settle(worker, id);
        worker.postMessage({ op: 'abort', id } satisfies ThreadRequest);
        reject(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
      };
      const done = <T>(settle: (value: T) => void) => (value: T): void => {
        signal?.removeEventListener('abort', onAbort);
        settle(value);
      };
      this.#pending.set(id, { worker, ...(onPage ? { onPage } : {}), resolve: done(resolve), reject: done(reject) });
      signal?.addEventListener('abort', onAbort, { once: true });
      worker.ref();
      worker.postMessage({ ...request, id } as ThreadRequest);
    });
  }
}

/** Options of a threaded provider. */
export interface ThreadedProviderOptions {
  block: ProviderConfig;
  mapping: MappingConfig;
  /** The receiver of the block's webhook events, built here from its config. */
  webhook: WebhookReceiver;
  /** The thread of the block's kind, shared with the other blocks of that kind; a thread of its own when absent. */
  thread?: ProviderThread;
  env?: NodeJS.ProcessEnv;
  limits?: ThreadLimits;
}

/** A provider block whose cloud calls run in the worker thread of its kind. */
export class ThreadedProvider implements Provider {
  readonly kind: ProviderKind;
  readonly name: string;
  readonly webhook: WebhookReceiver;
  readonly #thread: ProviderThread;
  readonly #block: number;
  readonly #scopes: Scope[];

  private constructor(options: ThreadedProviderOptions, thread: ProviderThread, block: number, scopes: Scope[]) {
    this.kind = options.block.type;
    this.name = options.block.name;
    this.webhook = options.webhook;
    this.#thread = thread;
    this.#block = block;
    this.#scopes = scopes;
  }

  /** Builds the block in its thread and waits until it is ready. */
  static async start(options: ThreadedProviderOptions): Promise<ThreadedProvider> {
    const thread =
      options.thread ??
      new ProviderThread(options.block.type, { ...(options.env ? { env: options.env } : {}), ...(options.limits ? { limits: options.limits } : {}) });
    const { block, scopes } = await thread.add(options.block, options.mapping);
    return new ThreadedProvider(options, thread, block, scopes);
  }

  /** The thread this block runs in, shared with the other blocks of its kind. */
  get thread(): ProviderThread {
    return this.#thread;
  }

  scopes(): Scope[] {
    return this.#scopes.map((s) => ({ ...s }));
  }

  async list(scope: Scope, signal?: AbortSignal): Promise<Listing> {
    return wholeListing((onPage) => this.listPages(scope, signal, onPage));
  }

  /** The listing a chunk at a time, each asked for once `onPage` has taken the one before. */
  async listPages(scope: Scope, signal: AbortSignal | undefined, onPage: (instances: Instance[]) => Promise<void>): Promise<PagedListing> {
    return (await this.#thread.call(this.#block, { op: 'list', scope }, signal, onPage)) as PagedListing;
  }

  async describe(refs: InstanceRef[], signal?: AbortSignal): Promise<Described[]> {
    return (await this.#thread.call(this.#block, { op: 'describe', refs }, signal)) as Described[];
  }

  /** Closes this block; its thread ends with the last block of its kind. */
  async close(): Promise<void> {
    await this.#thread.remove(this.#block);
  }
}
