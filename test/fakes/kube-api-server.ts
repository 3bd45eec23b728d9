// A Kubernetes API server for tests and benchmarks: real HTTP on 127.0.0.1, so the real
// @kubernetes/client-node client and the real kubectl talk to it, with the semantics client code
// depends on: one global resourceVersion that moves only on real changes, generation, 404/409/422
// bodies as the real server words them, label selectors, consistent paging, server-side apply with
// field managers, merge/JSON patch, preconditions, finalizers, watch, and Istio's own
// WorkloadEntry CRD schema with its CEL rules. Faults (429/5xx/409, dropped connections, latency)
// are injected per request, and every request is counted by verb and resource.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { decodeManaged, encodeManaged, fieldSetOf, serverSideApply, trackUpdate, type ManagedEntry } from './kube/fields.ts';
import { isRecord, validateObjectMeta } from './kube/metadata.ts';
import { jsonPatch, mergePatch, PatchError } from './kube/patch.ts';
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  coreResources,
  groupVersion,
  loadCrdFile,
  preferredVersion,
  readSelectableField,
  serviceEntries,
  table,
  type ResourceDef,
} from './kube/resources.ts';
import { deepEqualJson } from './kube/schema.ts';
import { parseFieldSelector, parseLabelSelector } from './kube/selectors.ts';
import {
  ApiError,
  alreadyExists,
  badRequest,
  conflict,
  failure,
  internalError,
  invalid,
  methodNotAllowed,
  notFound,
  pathNotFound,
  serviceUnavailable,
  timeout,
  tooLarge,
  tooManyRequests,
  unauthorized,
  unsupportedMediaType,
  type FieldError,
  type StatusBody,
} from './kube/status.ts';
import { ResourceStore, storedJson, type KubeObject, type Stored } from './kube/store.ts';

/** A Kubernetes object as JSON (re-exported for tests that seed or read objects). */
export type { KubeObject } from './kube/store.ts';

/** The verbs requests are counted under. `apply` is a PATCH with `application/apply-patch+yaml`. */
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'apply' | 'patch' | 'update' | 'delete' | 'deletecollection';

/** Verbs that ask for a change (whether or not one happens). */
export const WRITE_VERBS: readonly Verb[] = ['create', 'apply', 'patch', 'update', 'delete', 'deletecollection'];

const ALL_VERBS: readonly Verb[] = ['get', 'list', 'watch', 'create', 'apply', 'patch', 'update', 'delete', 'deletecollection'];

/** Istio's WorkloadEntry CRD, as vendored in test/fixtures/istio-crds. */
export const WORKLOADENTRY_CRD = fileURLToPath(new URL('../fixtures/istio-crds/workloadentry-crd.yaml', import.meta.url));
/** Istio's WorkloadGroup CRD, as vendored. */
export const WORKLOADGROUP_CRD = fileURLToPath(new URL('../fixtures/istio-crds/workloadgroup-crd.yaml', import.meta.url));

/** Which requests a fault applies to; every given field must match. */
export interface FaultMatch {
  verb?: Verb | readonly Verb[];
  /** Plural resource name, e.g. `workloadentries`. */
  resource?: string;
  namespace?: string;
  name?: string;
}

/**
 * An injected failure. The server consults `faults` in order for each resource request and fires
 * the first that matches (and passes its probability). `count` is decremented on each firing and
 * the fault is removed at 0; without `count` it stays until removed.
 */
export interface Fault {
  match?: FaultMatch;
  /** HTTP status to answer with: 429 TooManyRequests, 500 InternalError, 503, 504, 409 Conflict... */
  status?: number;
  /** Destroy the connection instead of answering. */
  drop?: boolean;
  /**
   * Answer as the server would, but close the connection after this many bytes of the body (a
   * server or proxy that dies halfway through an answer).
   */
  cutAfterBytes?: number;
  /** Hold the request this long first; with neither `status` nor `drop` the request then proceeds normally. */
  delayMs?: number;
  /** Hold the request until this settles (after delayMs), as delayMs does: a wait a test ends itself. */
  until?: Promise<unknown>;
  /** Fire after the request took effect (a write that happened but whose answer is lost). */
  after?: boolean;
  retryAfterSeconds?: number;
  message?: string;
  count?: number;
  /** 0..1, drawn from the server's seeded generator; default 1. */
  probability?: number;
  /** How often this fault fired; kept up to date by the server. */
  fired?: number;
}

/** Requests seen, by verb (totals over all resources) and per resource. */
export class RequestCounts {
  get = 0;
  list = 0;
  watch = 0;
  create = 0;
  apply = 0;
  patch = 0;
  update = 0;
  delete = 0;
  deletecollection = 0;
  /** Requests answered by an injected fault (status or dropped connection). */
  faults = 0;
  /** Write requests accepted that changed nothing (no resourceVersion bump). */
  noops = 0;
  /** Stored changes (resourceVersion bumps) made by requests; seeding through `put` is not counted. */
  changes = 0;
  private perResource = new Map<string, Record<Verb, number>>();

  /** Counts one request. */
  record(verb: Verb, resource: string): void {
    this[verb]++;
    let r = this.perResource.get(resource);
    if (!r) {
      r = Object.fromEntries(ALL_VERBS.map((v) => [v, 0])) as Record<Verb, number>;
      this.perResource.set(resource, r);
    }
    r[verb]++;
  }

  /** Counts for one resource (plural name); zeros when it saw no request. */
  of(resource: string): Readonly<Record<Verb, number>> {
    return this.perResource.get(resource) ?? (Object.fromEntries(ALL_VERBS.map((v) => [v, 0])) as Record<Verb, number>);
  }

  /** Mutating requests sent (create, apply, patch, update, delete, deletecollection), no-ops and faulted ones included. */
  writes(resource?: string): number {
    const src: Record<Verb, number> = resource ? this.of(resource) : this;
    return WRITE_VERBS.reduce((n, v) => n + src[v], 0);
  }

  /** Total requests of one verb (or all verbs), optionally for one resource. */
  total(verb?: Verb, resource?: string): number {
    const src: Record<Verb, number> = resource ? this.of(resource) : this;
    return verb ? src[verb] : ALL_VERBS.reduce((n, v) => n + src[v], 0);
  }

  /** Back to zero. */
  reset(): void {
    for (const v of ALL_VERBS) this[v] = 0;
    this.faults = 0;
    this.noops = 0;
    this.changes = 0;
    this.perResource = new Map();
  }
}

/** One request as the server understood it, for tests that check what a client sent. */
export interface RequestRecord {
  verb: Verb;
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
  /** HTTP status answered; 0 for a dropped connection. */
  status: number;
  query: Record<string, string>;
  contentType: string | undefined;
}

/** Options of the fake API server. */
export interface FakeKubeApiServerOptions {
  /** Delay before each request is handled. Default 0. */
  latencyMs?: number;
  /** CRD YAML files to serve. Default: Istio's WorkloadEntry and WorkloadGroup CRDs (ServiceEntries are always served, see serviceEntries). */
  crdFiles?: string[];
  /** When set, requests must carry `Authorization: Bearer <token>` (401 otherwise); the kubeconfig carries it. */
  token?: string;
  /** Seed for fault probabilities. Default 1. */
  seed?: number;
  /** How long continue tokens stay valid. Default 5 minutes, as etcd compaction allows. */
  continueTtlMs?: number;
  /** How many past changes a watch can resume from. Default 10,000. */
  watchHistory?: number;
  /** How many requests `requests` keeps. Default 1,000. */
  recordRequests?: number;
  /** First resourceVersion handed out. Default 1000. */
  initialResourceVersion?: number;
  /** Answer lists as a proxy or an old server might: as if no fieldSelector had been sent. Default false. */
  ignoreFieldSelector?: boolean;
  /** Answer lists as if no labelSelector had been sent. Default false. */
  ignoreLabelSelector?: boolean;
}

/** Where a request points. */
interface Route {
  def: ResourceDef;
  version: string;
  namespace: string | undefined;
  name: string | undefined;
}

interface Answer {
  code: number;
  /** The body, or its parts in order (a list's: written to the socket as they are, never copied into one buffer). */
  body: string | Buffer | Buffer[];
  headers?: Record<string, string>;
}

interface WriteCtx {
  def: ResourceDef;
  version: string;
  namespace: string;
  manager: string;
  dryRun: boolean;
  fieldValidation: string;
  warnings: string[];
}

interface WatchEvent {
  rv: number;
  def: ResourceDef;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  stored: Stored;
  prev: Stored | undefined;
}

interface Watcher {
  def: ResourceDef;
  version: string;
  matches: (s: Stored) => boolean;
  send: (type: string, s: Stored) => void;
  end: () => void;
}

const MAX_BODY = 3 * 1024 * 1024;
const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
};
/** ObjectMeta fields a client may send; anything else in metadata is dropped, as by the real decoder. */
const OBJECT_META_FIELDS = new Set([
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
]);

function nowSeconds(): string {
  return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isRecord(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]);
  return out;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomSuffix(): string {
  const chars = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += chars[Math.floor(Math.random() * chars.length)];
  return s;
}

function specOf(obj: KubeObject): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k !== 'apiVersion' && k !== 'kind' && k !== 'metadata' && k !== 'status') out[k] = v;
  }
  return out;
}

function labelsOf(s: Stored): Record<string, string> | undefined {
  const l = s.obj.metadata.labels;
  return isRecord(l) ? (l as Record<string, string>) : undefined;
}

/** A fake kube-apiserver; see the file comment. */
export class FakeKubeApiServer {
  /** Delay before each request is handled, in milliseconds. */
  latencyMs: number;
  /** The requests waiting out their delay now, with the delay each waits. */
  readonly delayed: Array<{ method: string; url: string; ms: number }> = [];
  /** Injected failures, consulted in order; push to add, splice or `length = 0` to clear. */
  readonly faults: Fault[] = [];
  /** Requests seen, by verb and resource. */
  readonly counts = new RequestCounts();
  /** TCP connections accepted since start, to see whether clients reuse theirs. */
  connections = 0;
  /** The most recent requests, oldest first. */
  readonly requests: RequestRecord[] = [];
  /** Lists ignore `fieldSelector` (a server double that filters less than a real one). */
  ignoreFieldSelector: boolean;
  ignoreLabelSelector: boolean;

  private readonly defs: ResourceDef[];
  private readonly routes = new Map<string, ResourceDef>();
  private readonly stores = new Map<ResourceDef, ResourceStore>();
  private readonly namespacesDef: ResourceDef;
  private rv: number;
  private readonly random: () => number;
  private readonly token: string | undefined;
  private readonly continueTtlMs: number;
  private readonly watchHistory: number;
  private readonly recordLimit: number;
  private history: WatchEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private server: http.Server | undefined;
  private baseUrl = '';
  /** True while a request is being executed: only then do no-ops and changes count. */
  private inRequest = false;

  /** Builds the server and loads the CRDs; throws when a CRD carries a rule the CEL evaluator cannot run. */
  constructor(options: FakeKubeApiServerOptions = {}) {
    this.latencyMs = options.latencyMs ?? 0;
    this.ignoreFieldSelector = options.ignoreFieldSelector ?? false;
    this.ignoreLabelSelector = options.ignoreLabelSelector ?? false;
    this.random = mulberry32(options.seed ?? 1);
    this.token = options.token;
    this.continueTtlMs = options.continueTtlMs ?? 5 * 60_000;
    this.watchHistory = options.watchHistory ?? 10_000;
    this.recordLimit = options.recordRequests ?? 1000;
    this.rv = options.initialResourceVersion ?? 1000;
    const crds = (options.crdFiles ?? [WORKLOADENTRY_CRD, WORKLOADGROUP_CRD]).flatMap(loadCrdFile);
    this.defs = [...coreResources(), ...crds, serviceEntries()];
    for (const d of this.defs) {
      this.stores.set(d, new ResourceStore());
      for (const v of d.versions) this.routes.set(`${d.group}/${v}/${d.plural}`, d);
    }
    this.namespacesDef = this.defs.find((d) => d.group === '' && d.plural === 'namespaces')!;
    this.createNamespace('default');
  }

  /** Starts listening on 127.0.0.1 at a free port; returns the base URL. */
  async start(): Promise<string> {
    if (this.server) return this.baseUrl;
    const server = http.createServer((req, res) => {
      void this.handle(req, res);
    });
    server.keepAliveTimeout = 5000;
    server.on('connection', () => this.connections++);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    if (!addr || typeof addr === 'string') throw new Error('no address');
    this.server = server;
    this.baseUrl = `http://127.0.0.1:${addr.port}`;
    return this.baseUrl;
  }

  /** The base URL (after start). */
  get url(): string {
    return this.baseUrl;
  }

  /** Ends watches, closes every connection and stops listening. */
  async close(): Promise<void> {
    for (const w of [...this.watchers]) w.end();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The current global resourceVersion (the last one handed out). */
  get resourceVersion(): number {
    return this.rv;
  }

  /** A kubeconfig for this server. Plain http needs `insecure-skip-tls-verify` for client-node 2.x. */
  kubeconfig(namespace = 'default'): string {
    if (!this.baseUrl) throw new Error('start() the server first');
    const user = this.token ? `  user:\n    token: ${this.token}` : '  user: {}';
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${this.baseUrl}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: fake',
      user,
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      '    user: fake',
      `    namespace: ${namespace}`,
      'current-context: fake',
      '',
    ].join('\n');
  }

  /** Writes the kubeconfig to `<dir>/kubeconfig` and returns that path. */
  writeKubeconfig(dir: string, namespace?: string): string {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'kubeconfig');
    writeFileSync(path, this.kubeconfig(namespace), { mode: 0o600 });
    return path;
  }

  /** A loaded client-node KubeConfig pointing at this server. */
  kubeConfig(namespace?: string): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeconfig(namespace));
    return kc;
  }

  /** Creates a namespace (no-op when it exists); returns it. */
  createNamespace(name: string, labels: Record<string, string> = {}): KubeObject {
    const existing = this.store(this.namespacesDef).get('', name);
    if (existing) return structuredClone(existing.obj);
    return this.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  }

  /** Deletes a namespace and everything in it at once (the real server takes a while). */
  deleteNamespace(name: string): boolean {
    const ns = this.store(this.namespacesDef).get('', name);
    if (!ns) return false;
    this.removeNamespaceContents(name);
    this.commitDelete(this.namespacesDef, ns, false);
    return true;
  }

  /** Copies of the stored objects of a resource (plural, kind or short name), in key order. */
  objects(resource: string, namespace?: string): KubeObject[] {
    const def = this.resolve(resource);
    return this.store(def)
      .all(def.namespaced ? namespace : undefined)
      .map((s) => structuredClone(s.obj));
  }

  /** How many objects a resource holds, in one namespace or in all. */
  size(resource: string, namespace?: string): number {
    const def = this.resolve(resource);
    return this.store(def).count(def.namespaced ? namespace : undefined);
  }

  /** A copy of one stored object, or undefined. Pass '' or undefined as namespace for cluster-scoped resources. */
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const def = this.resolve(resource);
    const s = this.store(def).get(def.namespaced ? (namespace ?? '') : '', name);
    return s ? structuredClone(s.obj) : undefined;
  }

  /**
   * Seeds or overwrites an object without a request: validated like a write unless `validate` is
   * false, given a new resourceVersion, watched like any change. `fieldManager` records the fields
   * as owned by that manager (an Update entry); without it the object keeps the managedFields it
   * carries, so a later apply finds them owned by "before-first-apply" as on a real server.
   */
  put(obj: KubeObject, opts: { fieldManager?: string; validate?: boolean } = {}): KubeObject {
    const def = this.defForObject(obj);
    const version = preferredVersion(def);
    const next = structuredClone(obj);
    next.apiVersion = groupVersion(def, version);
    const meta = next.metadata;
    this.checkMetaTypes(meta);
    const namespace = def.namespaced ? String(meta.namespace ?? 'default') : '';
    if (def.namespaced) {
      meta.namespace = namespace;
      if (!this.namespaceExists(namespace)) throw new Error(`namespace "${namespace}" does not exist: createNamespace("${namespace}") first`);
    } else delete meta.namespace;
    const name = String(meta.name ?? '');
    const old = this.store(def).get(namespace, name);
    meta.uid ??= old?.obj.metadata.uid ?? randomUUID();
    meta.creationTimestamp ??= old?.obj.metadata.creationTimestamp ?? nowSeconds();
    if (!old) def.prepareForCreate?.(next);
    const ctx: WriteCtx = { def, version, namespace, manager: opts.fieldManager ?? '', dryRun: false, fieldValidation: 'Ignore', warnings: [] };
    if (opts.validate === false) def.schemas?.get(version)?.process(next, old?.obj);
    else this.validate(ctx, next, old);
    if (opts.fieldManager) {
      const entries = trackUpdate({
        live: old?.obj,
        liveEntries: decodeManaged(old?.obj.metadata.managedFields),
        next,
        manager: opts.fieldManager,
        apiVersion: next.apiVersion,
        schema: def.schemas?.get(version)?.root,
        skipStatus: def.statusSubresource,
        now: nowSeconds(),
      });
      this.setManaged(next, entries);
    }
    return structuredClone(this.commit(def, next, old, false).obj);
  }

  /** Deletes an object without a request (finalizers are ignored); true when it existed. */
  remove(resource: string, namespace: string | undefined, name: string): boolean {
    const def = this.resolve(resource);
    const s = this.store(def).get(def.namespaced ? (namespace ?? '') : '', name);
    if (!s) return false;
    if (def === this.namespacesDef) return this.deleteNamespace(name);
    this.commitDelete(def, s, false);
    return true;
  }

  /** Total mutating requests sent (see RequestCounts.writes). */
  writes(resource?: string): number {
    return this.counts.writes(resource);
  }

  /** Clears counters, request records and faults; stored objects stay. */
  reset(): void {
    this.counts.reset();
    this.requests.length = 0;
    this.faults.length = 0;
  }

  /** Makes every outstanding continue token expire (the next page answers 410 Expired). */
  expireContinueTokens(): void {
    for (const s of this.stores.values()) s.expireSnapshots();
  }

  /** Forgets watch history: watches resuming from an older resourceVersion get 410 Expired. */
  compactWatchHistory(): void {
    this.history = [];
  }

  // ---------------------------------------------------------------------------------------------
  // Request handling

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      if (this.token && req.headers.authorization !== `Bearer ${this.token}`) throw unauthorized();
      if (this.latencyMs > 0) {
        const delayed = { method: req.method ?? 'GET', url: req.url ?? '/', ms: this.latencyMs };
        this.delayed.push(delayed);
        await new Promise((r) => setTimeout(r, delayed.ms));
        this.delayed.splice(this.delayed.indexOf(delayed), 1);
      }
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const path = url.pathname.replace(/\/+$/, '') || '/';
      const doc = this.discovery(path, req);
      if (doc !== undefined) {
        this.send(res, { code: 200, body: JSON.stringify(doc) });
        return;
      }
      if (path === '/healthz' || path === '/readyz' || path === '/livez') {
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('ok');
        return;
      }
      await this.resourceRequest(this.route(path), url, req, res);
    } catch (e) {
      if (!res.headersSent) this.send(res, this.errorAnswer(e));
    }
  }

  private errorAnswer(e: unknown): Answer {
    const err = e instanceof ApiError ? e : internalError((e as Error)?.message ?? String(e));
    return { code: err.code, body: JSON.stringify(err.body), headers: err.headers };
  }

  /** Sends the answer; with `cutAfter`, only that many bytes of its body before the connection is closed. */
  private send(res: http.ServerResponse, a: Answer, cutAfter?: number): void {
    const parts = typeof a.body === 'string' ? [Buffer.from(a.body)] : Array.isArray(a.body) ? a.body : [a.body];
    const length = parts.reduce((n, part) => n + part.length, 0);
    res.writeHead(a.code, {
      'Content-Type': 'application/json',
      'Content-Length': String(length),
      'Cache-Control': 'no-cache, private',
      ...a.headers,
    });
    if (cutAfter === undefined) {
      res.cork();
      for (const part of parts) res.write(part);
      res.end();
      res.uncork();
    } else {
      res.write(Buffer.concat(parts).subarray(0, Math.min(cutAfter, length - 1)), () => res.socket?.destroy());
    }
  }

  private discovery(path: string, req: http.IncomingMessage): object | undefined {
    const host = req.headers.host ?? '127.0.0.1';
    if (path === '/api') return apiVersions(host);
    if (path === '/apis') return apiGroupList(this.defs);
    if (path === '/version') {
      return {
        major: '1',
        minor: '32',
        gitVersion: 'v1.32.0-fake',
        gitCommit: '0000000000000000000000000000000000000000',
        gitTreeState: 'clean',
        buildDate: '2025-01-01T00:00:00Z',
        goVersion: 'go1.23.4',
        compiler: 'gc',
        platform: 'linux/amd64',
      };
    }
    const segs = path.split('/').filter(Boolean);
    if (segs[0] === 'api' && segs.length === 2 && segs[1] === 'v1') return apiResourceList('', 'v1', this.defs);
    if (segs[0] === 'apis' && segs.length === 2 && this.defs.some((d) => d.group === segs[1])) return apiGroup(segs[1]!, this.defs);
    if (segs[0] === 'apis' && segs.length === 3 && this.defs.some((d) => d.group === segs[1] && d.versions.includes(segs[2]!))) {
      return apiResourceList(segs[1]!, segs[2]!, this.defs);
    }
    return undefined;
  }

  private route(path: string): Route {
    const segs = path.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api' && segs.length >= 3) {
      group = '';
      version = segs[1]!;
      rest = segs.slice(2);
    } else if (segs[0] === 'apis' && segs.length >= 4) {
      group = segs[1]!;
      version = segs[2]!;
      rest = segs.slice(3);
    } else throw pathNotFound();
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3 && this.routes.get(`${group}/${version}/${rest[2]}`)?.namespaced) {
      namespace = rest[1]!;
      rest = rest.slice(2);
    }
    const def = this.routes.get(`${group}/${version}/${rest[0]}`);
    if (!def || rest.length > 2) throw pathNotFound();
    return { def, version, namespace, name: rest[1] };
  }

  private verbOf(method: string | undefined, route: Route, url: URL, contentType: string): Verb {
    const named = route.name !== undefined;
    switch (method) {
      case 'GET': {
        if (named) return 'get';
        const w = url.searchParams.get('watch');
        return w === 'true' || w === '1' ? 'watch' : 'list';
      }
      case 'POST':
        if (named) throw methodNotAllowed();
        return 'create';
      case 'PUT':
        if (!named) throw methodNotAllowed();
        return 'update';
      case 'PATCH':
        if (!named) throw methodNotAllowed();
        return contentType.startsWith(PATCH_TYPES.apply) ? 'apply' : 'patch';
      case 'DELETE':
        return named ? 'delete' : 'deletecollection';
      default:
        throw methodNotAllowed();
    }
  }

  private pickFault(verb: Verb, route: Route): Fault | undefined {
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i]!;
      const m = f.match ?? {};
      if (m.verb !== undefined && !(typeof m.verb === 'string' ? m.verb === verb : m.verb.includes(verb))) continue;
      if (m.resource !== undefined && m.resource !== route.def.plural) continue;
      if (m.namespace !== undefined && m.namespace !== route.namespace) continue;
      if (m.name !== undefined && m.name !== route.name) continue;
      if (f.count !== undefined && f.count <= 0) continue;
      if (f.probability !== undefined && this.random() >= f.probability) continue;
      f.fired = (f.fired ?? 0) + 1;
      if (f.count !== undefined) {
        f.count--;
        if (f.count <= 0) this.faults.splice(i, 1);
      }
      return f;
    }
    return undefined;
  }

  private faultAnswer(f: Fault, route: Route): Answer {
    const code = f.status ?? 500;
    let err: ApiError;
    switch (code) {
      case 429:
        err = tooManyRequests(f.retryAfterSeconds ?? 1, f.message);
        break;
      case 409:
        err = conflict({ group: route.def.group, resource: route.def.plural }, route.name ?? '', f.message);
        break;
      case 503:
        err = serviceUnavailable(f.message, f.retryAfterSeconds);
        break;
      case 504:
        err = timeout(f.message);
        break;
      case 500:
        err = internalError(f.message ?? 'injected fault');
        break;
      default:
        err = new ApiError(failure(code, undefined, f.message ?? `injected fault ${code}`));
    }
    if (f.retryAfterSeconds !== undefined) err.headers['Retry-After'] = String(f.retryAfterSeconds);
    return this.errorAnswer(err);
  }

  private record(r: RequestRecord): void {
    this.requests.push(r);
    if (this.requests.length > this.recordLimit) this.requests.splice(0, this.requests.length - this.recordLimit);
  }

  private async resourceRequest(route: Route, url: URL, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const contentType = String(req.headers['content-type'] ?? '').toLowerCase();
    const verb = this.verbOf(req.method, route, url, contentType);
    this.counts.record(verb, route.def.plural);
    const rec: RequestRecord = {
      verb,
      resource: route.def.plural,
      namespace: route.namespace,
      name: route.name,
      status: 0,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers['content-type'],
    };
    this.record(rec);
    let fault = this.pickFault(verb, route);
    if (fault?.delayMs || fault?.until) {
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault!.delayMs));
      if (fault.until) await fault.until.catch(() => undefined);
      if (fault.status === undefined && !fault.drop) fault = undefined;
    }
    if (fault && !fault.after && fault.cutAfterBytes === undefined) {
      this.counts.faults++;
      if (fault.drop) {
        req.socket.destroy();
        return;
      }
      const a = this.faultAnswer(fault, route);
      rec.status = a.code;
      this.send(res, a);
      return;
    }
    const body = req.method === 'GET' ? '' : await this.readBody(req);
    if (body && (contentType.includes('protobuf') || contentType.includes('cbor'))) {
      // Only JSON (and YAML for apply) is understood here; the real server also speaks protobuf and CBOR.
      const a = this.errorAnswer(unsupportedMediaType(['application/json', 'application/yaml']));
      rec.status = a.code;
      this.send(res, a);
      return;
    }
    if (verb === 'watch') {
      rec.status = 200;
      this.watch(route, url, req, res);
      return;
    }
    let answer: Answer;
    try {
      answer = this.execute(verb, route, url, req, body, contentType);
    } catch (e) {
      answer = this.errorAnswer(e);
    }
    if (fault) {
      this.counts.faults++;
      if (fault.drop) {
        req.socket.destroy();
        return;
      }
      if (fault.cutAfterBytes !== undefined) {
        rec.status = answer.code;
        this.send(res, answer, fault.cutAfterBytes);
        return;
      }
      answer = this.faultAnswer(fault, route);
    }
    rec.status = answer.code;
    this.send(res, answer);
  }

  private readBody(req: http.IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_BODY) {
          reject(tooLarge(MAX_BODY));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  private execute(verb: Verb, route: Route, url: URL, req: http.IncomingMessage, body: string, contentType: string): Answer {
    const q = url.searchParams;
    const { def } = route;
    const dryRunParam = q.getAll('dryRun');
    for (const d of dryRunParam) if (d !== 'All') throw badRequest(`dryRun: Unsupported value: "${d}": supported values: "All"`);
    const needsNamespace = def.namespaced && verb !== 'list' && verb !== 'deletecollection';
    if (needsNamespace && route.namespace === undefined) throw verb === 'create' ? methodNotAllowed() : pathNotFound();
    const fv = q.get('fieldValidation') ?? 'Warn';
    if (!['Ignore', 'Warn', 'Strict'].includes(fv)) {
      throw badRequest(`fieldValidation: Unsupported value: "${fv}": supported values: "Ignore", "Strict", "Warn"`);
    }
    const ua = String(req.headers['user-agent'] ?? '');
    const manager = q.get('fieldManager') ?? (ua.split('/')[0] || 'unknown');
    if (manager.length > 128) {
      throw new ApiError(
        failure(422, 'Invalid', `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes`),
      );
    }
    const ctx: WriteCtx = {
      def,
      version: route.version,
      namespace: route.namespace ?? '',
      manager,
      dryRun: dryRunParam.length > 0,
      fieldValidation: fv,
      warnings: [],
    };
    const asTable = String(req.headers.accept ?? '').includes('as=Table');
    this.inRequest = true;
    try {
      return this.dispatch(verb, route, q, ctx, body, contentType, asTable);
    } finally {
      this.inRequest = false;
    }
  }

  private dispatch(verb: Verb, route: Route, q: URLSearchParams, ctx: WriteCtx, body: string, contentType: string, asTable: boolean): Answer {
    let a: Answer;
    switch (verb) {
      case 'get':
        a = this.doGet(route, q, asTable);
        break;
      case 'list':
        a = this.doList(route, q, asTable);
        break;
      case 'create':
        a = this.doCreate(ctx, this.parseJson(body));
        break;
      case 'update':
        a = this.doUpdate(ctx, route.name!, this.parseJson(body));
        break;
      case 'apply':
        a = this.doApply(ctx, route.name!, body, q);
        break;
      case 'patch':
        a = this.doPatch(ctx, route.name!, body, contentType);
        break;
      case 'delete':
        a = this.doDelete(ctx, route.name!, body);
        break;
      case 'deletecollection':
        a = this.doDeleteCollection(ctx, route, q, body);
        break;
      default:
        throw methodNotAllowed();
    }
    if (ctx.warnings.length) {
      a.headers = { ...a.headers, Warning: ctx.warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', ') };
    }
    return a;
  }

  private parseJson(body: string): unknown {
    try {
      return JSON.parse(body);
    } catch (e) {
      throw badRequest(`the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (${(e as Error).message})`);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Reads

  private gr(def: ResourceDef) {
    return { group: def.group, resource: def.plural };
  }

  private store(def: ResourceDef): ResourceStore {
    return this.stores.get(def)!;
  }

  /** The object as JSON in the requested version; core list items carry no apiVersion/kind. */
  private itemJson(def: ResourceDef, version: string, s: Stored, inList: boolean): Buffer {
    if (inList && !def.custom) {
      const { apiVersion: _a, kind: _k, ...rest } = s.obj;
      return Buffer.from(JSON.stringify(rest));
    }
    if (version === preferredVersion(def)) return storedJson(s);
    return Buffer.from(JSON.stringify({ ...s.obj, apiVersion: groupVersion(def, version) }));
  }

  /** A list answer's body: its items' JSON between the list's own members. */
  private listBody(def: ResourceDef, version: string, items: readonly Stored[], meta: Record<string, unknown>): Buffer[] {
    const parts: Buffer[] = [Buffer.from(`{"apiVersion":${JSON.stringify(groupVersion(def, version))},"items":[`)];
    const comma = Buffer.from(',');
    items.forEach((s, i) => {
      if (i > 0) parts.push(comma);
      parts.push(this.itemJson(def, version, s, true));
    });
    parts.push(Buffer.from(`],"kind":${JSON.stringify(def.listKind)},"metadata":${JSON.stringify(meta)}}`));
    return parts;
  }

  private objectAnswer(code: number, def: ResourceDef, version: string, s: Stored): Answer {
    return { code, body: this.itemJson(def, version, s, false) };
  }

  private external(def: ResourceDef, version: string, obj: KubeObject): KubeObject {
    return version === preferredVersion(def) ? obj : { ...obj, apiVersion: groupVersion(def, version) };
  }

  private doGet(route: Route, q: URLSearchParams, asTable: boolean): Answer {
    const { def } = route;
    const s = this.store(def).get(route.namespace ?? '', route.name!);
    if (!s) throw notFound(this.gr(def), route.name!);
    if (asTable) {
      const t = table(def, [this.external(def, route.version, s.obj)], {
        includeObject: q.get('includeObject') ?? 'Metadata',
        now: Date.now(),
        listMeta: { resourceVersion: String(s.rv) },
      });
      return { code: 200, body: JSON.stringify(t) };
    }
    return this.objectAnswer(200, def, route.version, s);
  }

  private selectorFilter(def: ResourceDef, q: URLSearchParams): ((s: Stored) => boolean) | undefined {
    const ls = parseLabelSelector(this.ignoreLabelSelector ? null : q.get('labelSelector'));
    const fs = parseFieldSelector(this.ignoreFieldSelector ? null : q.get('fieldSelector'), new Set(['metadata.name', 'metadata.namespace', ...def.fieldSelectors]));
    if (ls.requirements.length === 0 && fs.requirements.length === 0) return undefined;
    return (s) => ls.matches(labelsOf(s)) && fs.matches((f) => readSelectableField(s.obj, f));
  }

  private doList(route: Route, q: URLSearchParams, asTable: boolean): Answer {
    const { def, version } = route;
    const limitRaw = q.get('limit');
    const limit = limitRaw ? Number(limitRaw) : undefined;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) throw badRequest(`limit: Invalid value: ${JSON.stringify(limitRaw)}`);
    const page = this.store(def).page({
      namespace: def.namespaced ? route.namespace : undefined,
      limit,
      continueToken: q.get('continue') ?? undefined,
      filter: this.selectorFilter(def, q),
      currentRv: this.rv,
      now: Date.now(),
      snapshotTtlMs: this.continueTtlMs,
    });
    const meta: Record<string, unknown> = { resourceVersion: String(page.rv) };
    if (page.continue) meta.continue = page.continue;
    if (page.remainingItemCount !== undefined) meta.remainingItemCount = page.remainingItemCount;
    if (asTable) {
      const t = table(
        def,
        page.items.map((s) => this.external(def, version, s.obj)),
        { includeObject: q.get('includeObject') ?? 'Metadata', now: Date.now(), listMeta: meta },
      );
      return { code: 200, body: JSON.stringify(t) };
    }
    return { code: 200, body: this.listBody(def, version, page.items, meta) };
  }

  private watch(route: Route, url: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
    const { def, version } = route;
    const q = url.searchParams;
    let filter: ((s: Stored) => boolean) | undefined;
    try {
      filter = this.selectorFilter(def, q);
    } catch (e) {
      this.send(res, this.errorAnswer(e));
      return;
    }
    const ns = def.namespaced ? route.namespace : undefined;
    const matches = (s: Stored) => (ns === undefined || s.namespace === ns) && (!filter || filter(s));
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    // Clients wait for the headers before reading events; a quiet watch must still answer.
    res.flushHeaders();
    const write = (type: string, objectJson: string | Buffer) => {
      res.write(Buffer.concat([Buffer.from(`{"type":"${type}","object":`), Buffer.from(objectJson), Buffer.from('}\n')]));
    };
    let ended = false;
    const watcher: Watcher = {
      def,
      version,
      matches,
      send: (type, s) => write(type, this.itemJson(def, version, s, false)),
      end: () => {
        if (ended) return;
        ended = true;
        this.watchers.delete(watcher);
        res.end();
      },
    };
    const rvParam = q.get('resourceVersion');
    if (!rvParam || rvParam === '0') {
      for (const s of this.store(def).all(ns)) if (matches(s)) watcher.send('ADDED', s);
    } else {
      const from = Number(rvParam);
      const oldest = this.history[0]?.rv;
      if (!Number.isFinite(from) || (from < this.rv && (oldest === undefined || oldest > from + 1))) {
        const status: StatusBody = failure(410, 'Expired', `too old resource version: ${rvParam} (${oldest ?? this.rv})`);
        write('ERROR', JSON.stringify(status));
        res.end();
        return;
      }
      for (const ev of this.history) if (ev.rv > from && ev.def === def) this.deliver(watcher, ev);
    }
    this.watchers.add(watcher);
    const timeoutSeconds = Number(q.get('timeoutSeconds') ?? 0);
    const timer = timeoutSeconds > 0 ? setTimeout(() => watcher.end(), timeoutSeconds * 1000) : undefined;
    req.on('close', () => {
      if (timer) clearTimeout(timer);
      ended = true;
      this.watchers.delete(watcher);
    });
  }

  private deliver(w: Watcher, ev: WatchEvent): void {
    if (ev.def !== w.def) return;
    const now = w.matches(ev.stored);
    if (ev.type === 'MODIFIED') {
      const before = ev.prev !== undefined && w.matches(ev.prev);
      if (now && before) w.send('MODIFIED', ev.stored);
      else if (now) w.send('ADDED', ev.stored);
      else if (before) w.send('DELETED', ev.stored);
      return;
    }
    if (now) w.send(ev.type, ev.stored);
  }

  private emit(ev: WatchEvent): void {
    this.history.push(ev);
    if (this.history.length > this.watchHistory) this.history.splice(0, Math.ceil(this.watchHistory / 10));
    for (const w of this.watchers) this.deliver(w, ev);
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  private namespaceExists(ns: string): boolean {
    return this.store(this.namespacesDef).get('', ns) !== undefined;
  }

  private requireNamespace(ctx: WriteCtx): void {
    if (ctx.def.namespaced && !this.namespaceExists(ctx.namespace)) throw notFound({ group: '', resource: 'namespaces' }, ctx.namespace);
  }

  /** Checks apiVersion/kind/namespace of a request body and drops metadata the client may not set. */
  private incoming(ctx: WriteCtx, body: unknown, what: 'create' | 'update'): KubeObject {
    if (!isRecord(body)) throw badRequest('the body of the request must be a JSON object');
    const { def, version } = ctx;
    const expected = groupVersion(def, version);
    // Built-in kinds default their type from the URL; custom resources must say what they are.
    if (!def.custom) {
      body.kind ??= def.kind;
      body.apiVersion ??= expected;
    }
    if (typeof body.kind !== 'string' || body.kind === '') throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(body)}'`);
    if (body.kind !== def.kind) throw badRequest(`the kind in the data (${body.kind}) does not match the expected kind (${def.kind})`);
    if (body.apiVersion !== undefined && body.apiVersion !== expected) {
      throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${expected})`);
    }
    const obj = body as KubeObject;
    obj.apiVersion = groupVersion(def, preferredVersion(def));
    if (obj.metadata === undefined || obj.metadata === null) obj.metadata = {};
    if (!isRecord(obj.metadata)) throw badRequest('metadata must be an object');
    this.checkMetaTypes(obj.metadata);
    const meta = obj.metadata;
    if (def.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== ctx.namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = ctx.namespace;
    } else delete meta.namespace;
    for (const k of Object.keys(meta)) {
      if (!OBJECT_META_FIELDS.has(k)) {
        delete meta[k];
        this.unknownField(ctx, `metadata.${k}`);
      }
    }
    if (what === 'create' && meta.resourceVersion !== undefined && meta.resourceVersion !== '') {
      throw new ApiError(failure(500, undefined, 'resourceVersion should not be set on objects to be created'));
    }
    delete meta.selfLink;
    delete meta.managedFields;
    return obj;
  }

  private checkMetaTypes(meta: Record<string, unknown>): void {
    for (const m of ['labels', 'annotations'] as const) {
      const map = meta[m];
      if (map === undefined || map === null) {
        delete meta[m];
        continue;
      }
      if (!isRecord(map)) throw badRequest(`json: cannot unmarshal ${Array.isArray(map) ? 'array' : typeof map} into Go struct field ObjectMeta.metadata.${m} of type map[string]string`);
      // ObjectMeta omits empty maps.
      if (Object.keys(map).length === 0) {
        delete meta[m];
        continue;
      }
      for (const v of Object.values(map)) {
        if (typeof v !== 'string') {
          throw badRequest(`json: cannot unmarshal ${v === null ? 'null' : typeof v} into Go struct field ObjectMeta.metadata.${m} of type string`);
        }
      }
    }
    if (meta.name !== undefined && typeof meta.name !== 'string') throw badRequest('json: cannot unmarshal into Go struct field ObjectMeta.metadata.name of type string');
  }

  private unknownField(ctx: WriteCtx, path: string): void {
    if (ctx.fieldValidation === 'Strict') throw badRequest(`strict decoding error: unknown field "${path}"`);
    if (ctx.fieldValidation === 'Warn') ctx.warnings.push(`unknown field "${path}"`);
  }

  /** Metadata, schema (pruning first) and per-kind checks; throws 422 with every cause. */
  private validate(ctx: WriteCtx, obj: KubeObject, old: Stored | undefined): void {
    const { def } = ctx;
    const errors: FieldError[] = [];
    errors.push(...validateObjectMeta(obj.metadata, { nameRule: def.nameRule, namespaced: def.namespaced }));
    const schema = def.schemas?.get(ctx.version) ?? def.schemas?.get(preferredVersion(def));
    if (schema) {
      const r = schema.process(obj, old?.obj);
      for (const p of r.pruned) this.unknownField(ctx, p);
      errors.push(...r.errors);
    }
    if (def.validate) errors.push(...def.validate(obj));
    if (errors.length) throw invalid({ group: def.group, kind: def.kind }, String(obj.metadata.name ?? ''), errors);
  }

  private setManaged(obj: KubeObject, entries: ManagedEntry[]): void {
    if (entries.length) obj.metadata.managedFields = encodeManaged(entries);
    else delete obj.metadata.managedFields;
  }

  /** System metadata the server owns: set on create, carried over from the stored object on update. */
  private systemMeta(def: ResourceDef, obj: KubeObject, old: Stored | undefined): void {
    const meta = obj.metadata;
    if (old) {
      const o = old.obj.metadata;
      meta.uid = o.uid;
      meta.creationTimestamp = o.creationTimestamp;
      for (const k of ['generation', 'deletionTimestamp', 'deletionGracePeriodSeconds'] as const) {
        if (o[k] !== undefined) meta[k] = o[k];
        else delete meta[k];
      }
      if (def.statusSubresource) {
        if (old.obj.status !== undefined) obj.status = old.obj.status;
        else delete obj.status;
      }
    } else {
      meta.uid = randomUUID();
      meta.creationTimestamp = nowSeconds();
      delete meta.generation;
      delete meta.deletionTimestamp;
      delete meta.deletionGracePeriodSeconds;
      if (def.statusSubresource) delete obj.status;
      def.prepareForCreate?.(obj);
    }
    delete meta.resourceVersion;
  }

  /**
   * Stores a write: a no-op when nothing changed (same object, same resourceVersion), else a new
   * resourceVersion, generation bumped when the spec changed, and watch events. An object marked
   * for deletion whose last finalizer went is deleted.
   */
  private commit(def: ResourceDef, next: KubeObject, old: Stored | undefined, dryRun: boolean): Stored {
    const meta = next.metadata;
    if (def.tracksGeneration) {
      if (!old) meta.generation = 1;
      else {
        const prevGen = typeof old.obj.metadata.generation === 'number' ? old.obj.metadata.generation : 1;
        const changed =
          !deepEqualJson(specOf(old.obj), specOf(next)) || old.obj.metadata.deletionTimestamp !== meta.deletionTimestamp;
        meta.generation = changed ? prevGen + 1 : prevGen;
      }
    }
    if (old) {
      meta.resourceVersion = old.obj.metadata.resourceVersion;
      if (deepEqualJson(old.obj, next)) {
        if (this.inRequest) this.counts.noops++;
        return old;
      }
    }
    const rv = dryRun ? this.rv : ++this.rv;
    meta.resourceVersion = String(rv);
    const obj = (def.custom ? sortKeys(next) : next) as KubeObject;
    const stored: Stored = { obj, rv, namespace: String(meta.namespace ?? ''), name: String(meta.name) };
    if (dryRun) return stored;
    if (this.inRequest) this.counts.changes++;
    // Kept as JSON from the start, as the API server keeps what it stores encoded: a list then
    // only copies the stored bytes, and the fake's CPU, shared with the client it answers, goes to
    // the writes that made them.
    storedJson(stored);
    this.store(def).set(stored);
    this.emit({ rv, def, type: old ? 'MODIFIED' : 'ADDED', stored, prev: old });
    const fin = meta.finalizers;
    if (meta.deletionTimestamp && (!Array.isArray(fin) || fin.length === 0)) this.commitDelete(def, stored, false);
    return stored;
  }

  /** Removes an object: a new resourceVersion and a DELETED event carrying it. */
  private commitDelete(def: ResourceDef, s: Stored, dryRun: boolean): Stored {
    if (dryRun) return s;
    const rv = ++this.rv;
    const obj = structuredClone(s.obj);
    obj.metadata.resourceVersion = String(rv);
    const gone: Stored = { obj, rv, namespace: s.namespace, name: s.name };
    this.store(def).delete(s.namespace, s.name);
    if (this.inRequest) this.counts.changes++;
    this.emit({ rv, def, type: 'DELETED', stored: gone, prev: s });
    return gone;
  }

  private removeNamespaceContents(ns: string): void {
    for (const d of this.defs) {
      if (!d.namespaced) continue;
      for (const s of this.store(d).all(ns)) this.commitDelete(d, s, false);
    }
  }

  private doCreate(ctx: WriteCtx, body: unknown): Answer {
    const obj = this.incoming(ctx, body, 'create');
    const meta = obj.metadata;
    this.requireNamespace(ctx);
    if ((meta.name === undefined || meta.name === '') && typeof meta.generateName === 'string' && meta.generateName) {
      meta.name = `${meta.generateName}${randomSuffix()}`;
    }
    this.systemMeta(ctx.def, obj, undefined);
    this.validate(ctx, obj, undefined);
    const name = String(meta.name);
    if (this.store(ctx.def).get(ctx.namespace, name)) throw alreadyExists(this.gr(ctx.def), name);
    const entries = trackUpdate({
      live: undefined,
      liveEntries: [],
      next: obj,
      manager: ctx.manager,
      apiVersion: groupVersion(ctx.def, ctx.version),
      schema: ctx.def.schemas?.get(ctx.version)?.root,
      skipStatus: ctx.def.statusSubresource,
      now: nowSeconds(),
    });
    this.setManaged(obj, entries);
    const stored = this.commit(ctx.def, obj, undefined, ctx.dryRun);
    return this.objectAnswer(201, ctx.def, ctx.version, stored);
  }

  private preconditions(ctx: WriteCtx, name: string, old: Stored, uid: unknown, rv: unknown): void {
    const gr = this.gr(ctx.def);
    if (uid !== undefined && uid !== '' && uid !== old.obj.metadata.uid) {
      throw conflict(gr, name, `Precondition failed: UID in precondition: ${String(uid)}, UID in object meta: ${String(old.obj.metadata.uid)}`);
    }
    if (rv !== undefined && rv !== '' && String(rv) !== old.obj.metadata.resourceVersion) throw conflict(gr, name);
  }

  private doUpdate(ctx: WriteCtx, name: string, body: unknown): Answer {
    const obj = this.incoming(ctx, body, 'update');
    const meta = obj.metadata;
    if (meta.name !== undefined && meta.name !== name) {
      throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
    }
    meta.name = name;
    const old = this.store(ctx.def).get(ctx.namespace, name);
    if (!old) {
      if (!ctx.def.allowCreateOnUpdate) throw notFound(this.gr(ctx.def), name);
      delete meta.resourceVersion;
      return this.doCreate(ctx, obj);
    }
    if ((meta.resourceVersion === undefined || meta.resourceVersion === '') && !ctx.def.allowUnconditionalUpdate) {
      throw invalid({ group: ctx.def.group, kind: ctx.def.kind }, name, [
        { reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', body: 'Invalid value: 0x0: must be specified for an update' },
      ]);
    }
    this.preconditions(ctx, name, old, meta.uid, meta.resourceVersion);
    return this.finishUpdate(ctx, obj, old);
  }

  private finishUpdate(ctx: WriteCtx, obj: KubeObject, old: Stored): Answer {
    this.systemMeta(ctx.def, obj, old);
    this.validate(ctx, obj, old);
    const entries = trackUpdate({
      live: old.obj,
      liveEntries: decodeManaged(old.obj.metadata.managedFields),
      next: obj,
      manager: ctx.manager,
      apiVersion: groupVersion(ctx.def, ctx.version),
      schema: ctx.def.schemas?.get(ctx.version)?.root,
      skipStatus: ctx.def.statusSubresource,
      now: nowSeconds(),
    });
    this.setManaged(obj, entries);
    const stored = this.commit(ctx.def, obj, old, ctx.dryRun);
    return this.objectAnswer(200, ctx.def, ctx.version, stored);
  }

  private doPatch(ctx: WriteCtx, name: string, body: string, contentType: string): Answer {
    const { def } = ctx;
    const kind = contentType.split(';')[0]!.trim();
    const accepted = def.custom
      ? [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.apply]
      : [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.strategic, PATCH_TYPES.apply];
    if (!accepted.includes(kind)) throw unsupportedMediaType(accepted);
    const old = this.store(def).get(ctx.namespace, name);
    if (!old) throw notFound(this.gr(def), name);
    const patch = this.parseJson(body);
    const current = structuredClone(this.external(def, ctx.version, old.obj));
    let patched: unknown;
    if (kind === PATCH_TYPES.json) {
      try {
        patched = jsonPatch(current, patch);
      } catch (e) {
        if (e instanceof PatchError) throw new ApiError(failure(422, 'Invalid', e.message));
        throw e;
      }
    } else {
      // Strategic merge patch on core kinds is taken as a merge patch: lists are replaced whole.
      if (!isRecord(patch)) throw badRequest('the body of a merge patch must be a JSON object');
      patched = mergePatch(current, patch);
    }
    if (!isRecord(patched) || !isRecord(patched.metadata)) throw badRequest('the patched object is not a Kubernetes object');
    const pm = patched.metadata;
    if (pm.name !== name) throw badRequest(`metadata.name: Invalid value: ${JSON.stringify(pm.name)}: field is immutable`);
    const next = this.incoming(ctx, { ...patched, apiVersion: groupVersion(def, ctx.version) }, 'update');
    this.preconditions(ctx, name, old, next.metadata.uid, next.metadata.resourceVersion);
    return this.finishUpdate(ctx, next, old);
  }

  private doApply(ctx: WriteCtx, name: string, body: string, q: URLSearchParams): Answer {
    const { def, version } = ctx;
    const fieldManager = q.get('fieldManager');
    if (!fieldManager) {
      throw new ApiError(
        failure(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch', {
          group: 'meta.k8s.io',
          kind: 'PatchOptions',
          causes: [{ reason: 'FieldValueRequired', message: 'Required value: is required for apply patch', field: 'fieldManager' }],
        }),
      );
    }
    const forceRaw = q.get('force');
    const force = forceRaw === 'true' || forceRaw === '1';
    let cfg: unknown;
    try {
      cfg = JSON.parse(body);
    } catch {
      try {
        cfg = parseYaml(body);
      } catch (e) {
        throw badRequest(`error decoding YAML: ${(e as Error).message}`);
      }
    }
    if (!isRecord(cfg)) throw badRequest('the body of an apply patch must be an object');
    const expected = groupVersion(def, version);
    if (cfg.apiVersion !== expected) {
      throw badRequest(`Incorrect version specified in apply patch. Specified patch version: ${cfg.apiVersion ?? ''}, expected: ${expected}`);
    }
    if (cfg.kind !== def.kind) {
      throw badRequest(`Incorrect kind specified in apply patch. Specified patch kind: ${cfg.kind ?? ''}, expected: ${def.kind}`);
    }
    if (cfg.metadata === undefined || cfg.metadata === null) cfg.metadata = {};
    if (!isRecord(cfg.metadata)) throw badRequest('metadata must be an object');
    const cm = cfg.metadata;
    if (Array.isArray(cm.managedFields) && cm.managedFields.length > 0) throw badRequest('metadata.managedFields must be nil');
    if (cm.name !== undefined && cm.name !== '' && cm.name !== name) {
      throw badRequest(`the name of the object (${String(cm.name)}) does not match the name on the URL (${name})`);
    }
    if (def.namespaced && cm.namespace !== undefined && cm.namespace !== '' && cm.namespace !== ctx.namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    this.checkMetaTypes(cm);
    const rvPre = cm.resourceVersion;
    const uidPre = cm.uid;
    // Only these metadata fields are applied; the rest is the server's or the URL's.
    const appliedMeta: Record<string, unknown> = {};
    for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences'] as const) if (cm[k] !== undefined) appliedMeta[k] = cm[k];
    for (const k of Object.keys(cm)) if (!OBJECT_META_FIELDS.has(k)) this.unknownField(ctx, `metadata.${k}`);
    const config: KubeObject = { ...(cfg as KubeObject), apiVersion: groupVersion(def, preferredVersion(def)), metadata: appliedMeta };
    if (def.statusSubresource) delete config.status;
    const schema = def.schemas?.get(version);
    if (schema) for (const p of schema.prune(config)) this.unknownField(ctx, p);
    const old = this.store(def).get(ctx.namespace, name);
    const now = nowSeconds();
    if (!old) {
      this.requireNamespace(ctx);
      const obj: KubeObject = structuredClone(config);
      obj.metadata = { ...obj.metadata, name };
      if (def.namespaced) obj.metadata.namespace = ctx.namespace;
      this.systemMeta(def, obj, undefined);
      this.validate(ctx, obj, undefined);
      this.setManaged(obj, [
        { manager: fieldManager, operation: 'Apply', apiVersion: expected, time: now, set: fieldSetOf(config, schema?.root, def.statusSubresource) },
      ]);
      const stored = this.commit(def, obj, undefined, ctx.dryRun);
      return this.objectAnswer(201, def, version, stored);
    }
    this.preconditions(ctx, name, old, uidPre, rvPre);
    const outcome = serverSideApply({
      live: old.obj,
      liveEntries: decodeManaged(old.obj.metadata.managedFields),
      config,
      manager: fieldManager,
      force,
      apiVersion: expected,
      schema: schema?.root,
      skipStatus: def.statusSubresource,
      now,
    });
    if (!outcome.ok) {
      const n = outcome.conflicts.length;
      const byManager = new Map<string, string[]>();
      for (const c of outcome.conflicts) byManager.set(c.manager, [...(byManager.get(c.manager) ?? []), c.field]);
      const parts = [...byManager].map(([m, fields]) =>
        fields.length === 1 ? `conflict with "${m}" using ${expected}: ${fields[0]}` : `conflicts with "${m}" using ${expected}:\n${fields.map((f) => `- ${f}`).join('\n')}`,
      );
      const causes = outcome.conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${expected}`, field: c.field }));
      const err = conflict(this.gr(def), name, '', causes);
      err.body.message = `Apply failed with ${n} conflict${n === 1 ? '' : 's'}: ${parts.join('\n')}`;
      throw err;
    }
    const next = outcome.obj as KubeObject;
    next.apiVersion = groupVersion(def, preferredVersion(def));
    next.metadata = { ...next.metadata, name };
    this.systemMeta(def, next, old);
    this.validate(ctx, next, old);
    this.setManaged(next, outcome.entries);
    const stored = this.commit(def, next, old, ctx.dryRun);
    return this.objectAnswer(200, def, version, stored);
  }

  private deleteOptions(body: string): { uid?: unknown; resourceVersion?: unknown; dryRun: boolean } {
    if (!body.trim()) return { dryRun: false };
    const opts = this.parseJson(body);
    if (!isRecord(opts)) throw badRequest('DeleteOptions must be an object');
    const pre = isRecord(opts.preconditions) ? opts.preconditions : {};
    return {
      uid: pre.uid ?? undefined,
      resourceVersion: pre.resourceVersion ?? undefined,
      dryRun: Array.isArray(opts.dryRun) && opts.dryRun.includes('All'),
    };
  }

  private deleteOne(ctx: WriteCtx, old: Stored, dryRun: boolean): { stored: Stored; deleted: boolean } {
    const { def } = ctx;
    if (def === this.namespacesDef && old.name === 'default') {
      throw new ApiError(
        failure(403, 'Forbidden', 'namespaces "default" is forbidden: this namespace may not be deleted', { name: 'default', kind: 'namespaces' }),
      );
    }
    const fin = old.obj.metadata.finalizers;
    const hasFinalizers = Array.isArray(fin) && fin.length > 0 && def !== this.namespacesDef;
    if (hasFinalizers) {
      if (old.obj.metadata.deletionTimestamp) return { stored: old, deleted: false };
      const next = structuredClone(old.obj);
      next.metadata.deletionTimestamp = nowSeconds();
      next.metadata.deletionGracePeriodSeconds = 0;
      return { stored: this.commit(def, next, old, dryRun), deleted: false };
    }
    if (def === this.namespacesDef && !dryRun) this.removeNamespaceContents(old.name);
    return { stored: this.commitDelete(def, old, dryRun), deleted: true };
  }

  private doDelete(ctx: WriteCtx, name: string, body: string): Answer {
    const { def } = ctx;
    const opts = this.deleteOptions(body);
    const old = this.store(def).get(ctx.namespace, name);
    if (!old) throw notFound(this.gr(def), name);
    this.preconditions(ctx, name, old, opts.uid, opts.resourceVersion);
    const { stored, deleted } = this.deleteOne(ctx, old, ctx.dryRun || opts.dryRun);
    if (deleted && def.custom) {
      const details: Record<string, unknown> = { name };
      if (def.group) details.group = def.group;
      details.kind = def.plural;
      details.uid = old.obj.metadata.uid;
      return { code: 200, body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details }) };
    }
    return this.objectAnswer(200, def, ctx.version, stored);
  }

  private doDeleteCollection(ctx: WriteCtx, route: Route, q: URLSearchParams, body: string): Answer {
    const { def, version } = route;
    const opts = this.deleteOptions(body);
    const filter = this.selectorFilter(def, q);
    const victims = this.store(def)
      .all(def.namespaced ? route.namespace : undefined)
      .filter((s) => !filter || filter(s));
    const out: Stored[] = [];
    for (const s of victims) {
      const c: WriteCtx = { ...ctx, namespace: s.namespace };
      out.push(this.deleteOne(c, s, ctx.dryRun || opts.dryRun).stored);
    }
    return { code: 200, body: this.listBody(def, version, out, { resourceVersion: String(this.rv) }) };
  }

  // ---------------------------------------------------------------------------------------------
  // Lookup helpers

  private resolve(resource: string): ResourceDef {
    const r = resource.toLowerCase();
    const def = this.defs.find(
      (d) => d.plural === r || d.singular === r || d.kind.toLowerCase() === r || d.shortNames.includes(r) || `${d.plural}.${d.group}` === r,
    );
    if (!def) throw new Error(`unknown resource "${resource}"; served: ${this.defs.map((d) => d.plural).join(', ')}`);
    return def;
  }

  private defForObject(obj: KubeObject): ResourceDef {
    const av = String(obj.apiVersion ?? '');
    const group = av.includes('/') ? av.split('/')[0]! : '';
    const def = this.defs.find((d) => d.group === group && d.kind === obj.kind);
    if (!def) throw new Error(`no resource serves ${av} ${String(obj.kind)}`);
    return def;
  }
}
