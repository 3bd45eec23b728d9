// The Compute Engine client of a provider block and the calls it makes: one aggregatedList page and
// one instances.get, each bounded by a timeout and retried here, with exponential backoff and
// jitter, when Google answers 429, 5xx or not at all. The library's own retries are switched off:
// it retries UNAVAILABLE for up to ten minutes and never RESOURCE_EXHAUSTED, neither of which fits
// a resync that has a deadline of its own.
import type { protos } from '@google-cloud/compute';
// The v1 instances client alone (loadInstancesClient): the package's index also loads every other
// Compute client and the precompiled protos of v1 and v1beta, about 130 MiB more resident memory
// for nothing used here.
import type { InstancesClient } from '@google-cloud/compute/build/src/v1/instances_client.js';
import { readFileSync } from 'node:fs';
import { type AuthClient, JWT } from 'google-auth-library';
import { jitteredBackoff } from '../../services/backoff.ts';
import type { GcpProviderConfig } from './config.ts';
import { loadInstancesClient } from './protos.ts';

/** One aggregatedList request (v1), with the field the v1 request type of this library lacks. */
export type AggregatedListRequest = protos.google.cloud.compute.v1.IAggregatedListInstancesRequest & { returnPartialSuccess?: boolean };
/** One aggregatedList page exactly as Compute answered it, `unreachables` included. */
export type AggregatedListPage = protos.google.cloud.compute.v1.IInstanceAggregatedList;
/** One instance as instances.get answers it. */
export type ComputeInstance = protos.google.cloud.compute.v1.IInstance;

/** What a call needs besides the request. */
export interface CallPolicy {
  maxAttempts: number;
  /** The first retry delay in milliseconds; doubled per attempt up to 32 times. */
  retryDelay: number;
  /** Per-request timeout in milliseconds. */
  timeout: number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** A number in [0, 1): the jitter. */
  random: () => number;
}

/** A call that failed for good: the last error and how many attempts were made. */
export class ComputeCallError extends Error {
  readonly attempts: number;

  constructor(cause: unknown, attempts: number) {
    super(describeError(cause) + (attempts > 1 ? ` (after ${attempts} attempts)` : ''), { cause });
    this.name = 'ComputeCallError';
    this.attempts = attempts;
  }
}

// The field number of `return_partial_success` in Compute's AggregatedListInstancesRequest.
const PARTIAL_SUCCESS_FIELD_ID = 517198390;
const NO_RETRY = { retryCodes: [] as number[] };
// gRPC codes the REST transport reports when no HTTP answer arrived.
const DEADLINE_EXCEEDED = 4;
const UNAVAILABLE = 14;
const CANCELLED = 1;
const TRANSIENT_HTTP: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);
const TRANSIENT_NET = /^(ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EAI_AGAIN|ENOTFOUND|UND_ERR_\w+)$/;
/** How many times the retry delay is doubled at most (to 32 times the first delay). */
const MAX_DOUBLINGS = 5;

/** The OAuth scope a key file's credentials ask for: reading instances is all this provider does. */
export const COMPUTE_READ_SCOPE = 'https://www.googleapis.com/auth/compute.readonly';

/** What the client needs beyond the config block. */
export interface ComputeClientOptions {
  /** Credentials used as they are; absent: `keyFile` from config, else Application Default Credentials. */
  authClient?: AuthClient;
}

/**
 * The InstancesClient of one provider block, over REST (`fallback`), pointed at the configured
 * endpoint. A client whose start failed (credentials that could not be read, a metadata server
 * that was not up yet) keeps failing, as the library caches its failed start; it is dropped here
 * and the next call builds a new one.
 */
export class ComputeClient {
  readonly #config: GcpProviderConfig;
  readonly #options: ComputeClientOptions;
  #client: InstancesClient | undefined;

  constructor(config: GcpProviderConfig, options: ComputeClientOptions = {}) {
    this.#config = config;
    this.#options = options;
  }

  /** A started client; throws what prevented the start. */
  async ready(): Promise<InstancesClient> {
    const client = (this.#client ??= createInstancesClient(this.#config, this.#options));
    try {
      await client.initialize();
      return client;
    } catch (err) {
      if (this.#client === client) this.#client = undefined;
      throw err;
    }
  }

  /** Closes the connections of the current client. */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    // A client that never started has nothing open, and its close() repeats the start's failure.
    await client?.close().catch(() => undefined);
  }
}

/** Builds an InstancesClient; throws when the key file cannot be read. */
export function createInstancesClient(config: GcpProviderConfig, options: ComputeClientOptions = {}): InstancesClient {
  const Client = loadInstancesClient();
  const settings: ConstructorParameters<typeof InstancesClient>[0] = { fallback: true };
  if (config.endpoint !== undefined) {
    const url = new URL(config.endpoint);
    settings.apiEndpoint = url.hostname.replace(/^\[(.*)\]$/, '$1');
    settings.port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    settings.protocol = url.protocol.slice(0, -1);
  }
  if (options.authClient !== undefined) settings.authClient = options.authClient;
  else if (config.keyFile !== undefined) settings.authClient = keyFileCredentials(config.keyFile);
  const client = new Client(settings);
  enablePartialSuccess(client);
  return client;
}

/**
 * Service-account credentials from a key file. Requests carry a JWT signed with the key itself
 * (scoped to reading Compute), as Google's client libraries do, so no token exchange is needed.
 * Only `service_account` keys are accepted: other credential files can name programs to run.
 */
export function keyFileCredentials(path: string): JWT {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`key file ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  let key: unknown;
  try {
    key = JSON.parse(text);
  } catch {
    throw new Error(`key file ${path} is not JSON`);
  }
  const fields = (typeof key === 'object' && key !== null ? key : {}) as Record<string, unknown>;
  if (fields.type !== 'service_account' || typeof fields.client_email !== 'string' || typeof fields.private_key !== 'string') {
    throw new Error(`key file ${path} is not a service account key (type service_account with client_email and private_key)`);
  }
  const jwt = new JWT({ scopes: [COMPUTE_READ_SCOPE] });
  jwt.fromJSON(fields);
  jwt.useJWTAccessWithScope = true;
  return jwt;
}

interface ProtoField {
  constructor: { fromJSON(name: string, json: Record<string, unknown>): ProtoField };
}
interface ProtoType {
  fields: Record<string, ProtoField | undefined>;
  add(field: ProtoField): unknown;
}
interface ProtoRoot {
  lookupType(name: string): ProtoType;
}

/**
 * Teaches the client's v1 AggregatedListInstancesRequest the `returnPartialSuccess` field. The v1
 * protos of @google-cloud/compute 7.x lack it (v1beta has it), and the REST transport silently
 * drops fields its request type does not know. Compute v1 accepts the parameter; with it a zone
 * that cannot be read is named in `unreachables` instead of failing or hiding. The protos are
 * shared by every client of the process, so this runs once; a library that has the field is left
 * alone. Returns whether the field is now known.
 */
export function enablePartialSuccess(client: InstancesClient): boolean {
  try {
    const root = (client as unknown as { _protos?: ProtoRoot })._protos;
    const type = root?.lookupType('google.cloud.compute.v1.AggregatedListInstancesRequest');
    if (!type) return false;
    if (type.fields.returnPartialSuccess) return true;
    const sample = type.fields.filter ?? Object.values(type.fields).find((f) => f !== undefined);
    if (!sample) return false;
    type.add(sample.constructor.fromJSON('returnPartialSuccess', { type: 'bool', id: PARTIAL_SUCCESS_FIELD_ID, options: { proto3_optional: true } }));
    return type.fields.returnPartialSuccess !== undefined;
  } catch {
    return false;
  }
}

type PagedCall = (request: AggregatedListRequest, options: Record<string, unknown>) => Promise<[unknown, unknown, AggregatedListPage | undefined]>;

/**
 * One aggregatedList page with its raw answer. The library's async iterator yields only the
 * `items` map, drops `unreachables` and stops quietly after ten empty pages, so pages are read
 * one by one here through the client's own paged call.
 */
export async function aggregatedListPage(compute: ComputeClient, request: AggregatedListRequest, policy: CallPolicy, signal?: AbortSignal): Promise<AggregatedListPage> {
  return withRetries(policy, signal, async (attempt) => {
    const client = await compute.ready();
    const call = client.innerApiCalls.aggregatedList as PagedCall | undefined;
    if (call === undefined) throw new Error('this @google-cloud/compute has no aggregatedList call');
    const [, , raw] = await call(request, { ...callOptions(attempt), autoPaginate: false, otherArgs: routing(request.project ?? '') });
    if (typeof raw !== 'object' || raw === null) throw new Error('aggregatedList answered without a response body');
    return raw;
  });
}

/** instances.get by name or numeric id; null when Compute says 404 (no such instance in that zone). */
export async function getInstance(
  compute: ComputeClient,
  ref: { project: string; zone: string; instance: string },
  policy: CallPolicy,
  signal?: AbortSignal,
): Promise<ComputeInstance | null> {
  return withRetries(policy, signal, async (attempt) => {
    // Started first and apart: the generated get() would start the client in a promise nobody awaits.
    const client = await compute.ready();
    try {
      const [instance] = await client.get(ref, callOptions(attempt));
      return instance;
    } catch (err) {
      if (httpStatusOf(err) === 404) return null;
      throw err;
    }
  });
}

/**
 * The library's options for one attempt. Its own timeout is switched off (an infinite one sets no
 * deadline): the REST transport arms an `AbortSignal.timeout` per request whose listener keeps the
 * whole answer reachable until the timer fires, 30 s after the request even when it took 50 ms, so
 * a listing held every page it had read in the last 30 s (hundreds of MiB at 100,000 instances).
 * The attempt's signal (withRetries) bounds the request instead, and its listener is removed when
 * the call ends.
 */
function callOptions(attempt: AbortSignal) {
  return { retry: NO_RETRY, timeout: Number.POSITIVE_INFINITY, signal: attempt };
}

/** A request of ours that took longer than `timeout`: retried, as Compute's own deadline errors are. */
export class RequestTimeoutError extends Error {
  readonly code = DEADLINE_EXCEEDED;

  constructor(ms: number) {
    super(`the request got no answer within ${ms} milliseconds`);
    this.name = 'RequestTimeoutError';
  }
}

/**
 * Runs one attempt with a signal that aborts when `signal` does or after `ms`; the timer and the
 * listener are gone when it settles. An attempt that is abandoned or outlives its time rejects at
 * once (with `signal`'s reason or RequestTimeoutError), whether or not the library noticed the
 * abort: a client still starting (reading credentials) does not hold it up either.
 */
async function withTimeout<T>(ms: number, signal: AbortSignal | undefined, call: (attempt: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let onAbort = () => {};
  let timer: NodeJS.Timeout | undefined;
  const stopped = new Promise<never>((_, reject) => {
    const stop = (reason: unknown) => {
      controller.abort(reason);
      reject(reason);
    };
    onAbort = () => stop(signal?.reason);
    timer = setTimeout(() => stop(new RequestTimeoutError(ms)), ms);
  });
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await Promise.race([call(controller.signal), stopped]);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

// The header the generated methods add for routing; the paged call used here does not add it.
function routing(project: string) {
  return { headers: { 'x-goog-request-params': `project=${encodeURIComponent(project)}` } };
}

/** Runs `call` until it succeeds, fails for good, or runs out of attempts; throws ComputeCallError. */
export async function withRetries<T>(policy: CallPolicy, signal: AbortSignal | undefined, call: (attempt: AbortSignal) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await withTimeout(policy.timeout, signal, call);
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      if (attempt >= policy.maxAttempts || !isTransient(err)) throw new ComputeCallError(err, attempt);
      await policy.sleep(jitteredBackoff(policy.retryDelay, attempt, policy.random, MAX_DOUBLINGS), signal);
    }
  }
}


/** Whether another attempt may succeed: throttling, a server error, a timeout or a dropped connection. */
export function isTransient(err: unknown): boolean {
  const status = httpStatusOf(err);
  if (status !== undefined) return TRANSIENT_HTTP.has(status);
  const code = (err as { code?: unknown } | null)?.code;
  if (code === DEADLINE_EXCEEDED || code === UNAVAILABLE) return true;
  if (code === CANCELLED) return false;
  return typeof code === 'string' && TRANSIENT_NET.test(code);
}

/** The HTTP status of a Compute error, when an HTTP answer arrived. */
export function httpStatusOf(err: unknown): number | undefined {
  const status = (err as { httpStatusCode?: unknown } | null)?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** A Compute error as one line: HTTP status, Google's message. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const status = httpStatusOf(err);
  const message = err.message.split('\n', 1)[0] ?? '';
  return status === undefined ? message : `HTTP ${status}: ${message}`;
}

/** A sleep that ends early, rejecting, when the signal aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
