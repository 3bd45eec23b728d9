// The subset of the Kubernetes API vm-mesh-sync uses, behind one small interface, so that the
// writer's rules can be read without the client library's details and the RBAC ClusterRole can be
// read off this file: workloadentries get/list/create/patch (apply and merge patch)/delete, serviceaccounts get/create,
// events create; for mesh services (unless config services turns them off): services,
// serviceentries and workloadgroups get/list/create/patch (merge patch)/delete. WorkloadEntries
// go over kube-http.ts's lighter requests, everything else through the client library.
import os from 'node:os';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  Observable,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { ConfigurationOptions, CoreV1Event, ObservableMiddleware, V1ServiceAccount } from '@kubernetes/client-node';
import { ByteArena, type JsonListAnswer } from '../json-list.ts';
import { askedAhead } from '../concurrency.ts';
import { CHECKPOINT_EVERY, runSliced, type Sliced } from '../slices.ts';
import { VmsError } from '../errors.ts';
import type { KubeService, MeshServiceKind, MeshServiceObject, ObjectMeta, ServicePort, WorkloadEntry, WorkloadEntrySpec } from '../model.ts';
import { parseKubeStatus, translateKubeError } from './kube-errors.ts';
import type { KubeCallContext } from './kube-errors.ts';
import { reuseConnections } from './kube-connections.ts';
import { clusterPath, kubeSender, namespacedPath } from './kube-http.ts';
import { TransientKubeError } from './transient-kube-error.ts';

/** Where WorkloadEntries live in the API. */
export const WORKLOAD_ENTRY_API = { group: 'networking.istio.io', version: 'v1', plural: 'workloadentries' } as const;

/** Where the Istio kinds of mesh services live in the API (Services are core v1). */
export const MESH_SERVICE_APIS = {
  ServiceEntry: { group: 'networking.istio.io', version: 'v1', plural: 'serviceentries' },
  WorkloadGroup: { group: 'networking.istio.io', version: 'v1', plural: 'workloadgroups' },
} as const;

/** A service account as far as we care: whether it exists and who made it. */
export interface ServiceAccountInfo {
  namespace: string;
  name: string;
  labels: Record<string, string>;
}

/** Guards a delete against removing an object that changed or was replaced since it was read. */
export interface DeletePreconditions {
  resourceVersion?: string;
  uid?: string;
}

/** A core/v1 Event about one object (an entry that could not be written, say). */
export interface KubeEventInput {
  involvedObject: { apiVersion: string; kind: string; namespace: string; name: string; uid?: string; resourceVersion?: string };
  /** UpperCamelCase, short and stable: `NotOwned`, `NamespaceMissing`, `Rejected`. */
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  /** The component that reports, shown by `kubectl describe`. */
  reportingComponent?: string;
  /** This process (pod name), to tell replicas apart. */
  reportingInstance?: string;
}

/** How to list. */
export interface ListOptions {
  fieldSelector?: string;
  namespace?: string;
  /** Runs each page's request (with retries); the request alone when absent. */
  page?: <T>(request: () => Promise<T>) => Promise<T>;
  /**
   * What to keep of each entry read, page by page: a smaller stand-in, or nothing (undefined); the
   * entry itself when absent.
   */
  keep?: (entry: WorkloadEntry) => WorkloadEntry | undefined;
  /**
   * Counts the entries read, kept or not: those of the listing's last attempt when an expired
   * continue token made it start over (`keep` saw the earlier attempts' too).
   */
  read?: { entries: number };
}

/** The calls the writer and the runtime make. Errors are TransientKubeError or VmsError. */
export interface KubeApi {
  /** The live entry, or null when there is none. */
  getEntry(namespace: string, name: string): Promise<WorkloadEntry | null>;
  /**
   * Entries of all namespaces matching the label selector (and the field selector, e.g.
   * `metadata.name=x`, when given), following `continue` page by page. Each page's request goes
   * through `page` when given (the writer's retries), so that a failed page is asked again
   * rather than the whole listing.
   */
  listOwnedEntries(labelSelector: string, pageSize: number, options?: ListOptions): Promise<WorkloadEntry[]>;
  /**
   * Creates the entry; a 409 AlreadyExists is a TransientKubeError (someone was faster). The
   * writes resolve to nothing: the object the server answers with is not read (see KubeRequest.discard).
   */
  createEntry(entry: WorkloadEntry, options?: { fieldManager?: string }): Promise<void>;
  /**
   * Server-side apply with force. When `entry.metadata.resourceVersion` is set the server
   * refuses (409) if the object changed since then.
   */
  applyEntry(entry: WorkloadEntry, options: { fieldManager: string }): Promise<void>;
  /**
   * A JSON merge patch, for removing fields that server-side apply leaves in place because another
   * manager (or our own create) also owns them. `metadata.resourceVersion` in the patch is a
   * precondition (409 when the object changed).
   */
  mergePatchEntry(namespace: string, name: string, patch: Record<string, unknown>, options: { fieldManager: string }): Promise<void>;
  /** Deletes under preconditions; false when the entry was already gone. */
  deleteEntry(namespace: string, name: string, preconditions: DeletePreconditions): Promise<boolean>;
  getServiceAccount(namespace: string, name: string): Promise<ServiceAccountInfo | null>;
  /** Creates a service account; false when it already existed. */
  createServiceAccount(namespace: string, name: string, labels: Record<string, string>): Promise<boolean>;
  createEvent(event: KubeEventInput): Promise<void>;
  /**
   * A Service, ServiceEntry or WorkloadGroup, or null when there is none. A Service is read as the
   * fields we write (type, selector, ports): what the API server fills in (clusterIP, ipFamilies,
   * sessionAffinity...) is not ours and is never compared.
   */
  getObject(kind: MeshServiceKind, namespace: string, name: string): Promise<MeshServiceObject | null>;
  /** Every object of the kind (in `namespace` when given), ours or not, read like getObject, page by page. */
  listObjects(kind: MeshServiceKind, pageSize: number, options?: Pick<ListOptions, 'namespace' | 'page'>): Promise<MeshServiceObject[]>;
  /** Creates the object; a 409 AlreadyExists is a TransientKubeError. */
  createObject(obj: MeshServiceObject, options: { fieldManager: string }): Promise<void>;
  /**
   * A JSON merge patch of the object: lists (ports, hosts) are replaced whole, which server-side
   * apply would not do for a list another manager also owns. `metadata.resourceVersion` in the
   * patch is a precondition.
   */
  mergePatchObject(kind: MeshServiceKind, namespace: string, name: string, patch: Record<string, unknown>, options: { fieldManager: string }): Promise<void>;
  /** Deletes under preconditions; false when the object was already gone. */
  deleteObject(kind: MeshServiceKind, namespace: string, name: string, preconditions: DeletePreconditions): Promise<boolean>;
}

/** Tuning of the real client. */
export interface KubeApiOptions {
  /** A request that takes longer is abandoned and counts as transient (default 30 s). */
  requestTimeoutMs?: number;
  /** `source.component` of the events we create. */
  component?: string;
}

/** The real KubeApi over @kubernetes/client-node. */
export function createKubeApi(kc: KubeConfig, options: KubeApiOptions = {}): KubeApi {
  reuseConnections(kc);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const core = kc.makeApiClient(CoreV1Api);
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  const component = options.component ?? 'vm-mesh-sync';
  const { group, version, plural } = WORKLOAD_ENTRY_API;
  const server = kc.getCurrentCluster()?.server;
  // WorkloadEntries, the calls made once per instance, go over the lighter sender (kube-http.ts).
  const send = kubeSender(kc, timeoutMs, component);
  const entries = { group, version, plural };

  // client-node sets no timeout of its own: a hung connection would hold a job forever.
  const timeout: ObservableMiddleware = {
    pre: (ctx) => {
      ctx.setSignal(AbortSignal.timeout(timeoutMs));
      return new Observable(Promise.resolve(ctx));
    },
    post: (ctx) => new Observable(Promise.resolve(ctx)),
  };
  const plain: ConfigurationOptions<ObservableMiddleware> = { middleware: [timeout], middlewareMergeStrategy: 'append' };
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch, plain);

  async function call<T>(context: KubeCallContext, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw translateKubeError(err, context, server);
    }
  }

  /** A 404 about the object itself (not its namespace); those mean "absent" to get and delete. */
  function isObjectNotFound(err: unknown): boolean {
    return err instanceof ApiException && err.code === 404 && parseKubeStatus(err.body).details?.kind !== 'namespaces';
  }

  function resourceMissing(context: KubeCallContext, err: TransientKubeError): VmsError {
    return new VmsError(
      'VMS_ERR_KUBE_REJECTED',
      `${context.verb} ${context.what}: the API server does not serve ${plural}.${group}/${version} (is Istio installed?): ${err.message}`,
      { status: 404 },
      { cause: err },
    );
  }

  return {
    async getEntry(namespace, name) {
      const context: KubeCallContext = { verb: 'get', what: `WorkloadEntry ${namespace}/${name}` };
      try {
        return toEntry(await send({ method: 'GET', path: namespacedPath(entries, namespace, name) }));
      } catch (err) {
        if (isObjectNotFound(err)) return null;
        throw translateKubeError(err, context, server);
      }
    },

    async listOwnedEntries(labelSelector, pageSize, listOptions = {}) {
      const { fieldSelector, namespace } = listOptions;
      const page = listOptions.page ?? ((request) => request());
      const { keep } = listOptions;
      const where = namespace ? ` in namespace ${namespace}` : '';
      const context: KubeCallContext = { verb: 'list', what: `WorkloadEntries${where} (${[labelSelector, fieldSelector].filter(Boolean).join(' ')})` };
      const path = namespace ? namespacedPath(entries, namespace) : clusterPath(entries);
      /**
       * One page, asked again through `page` after a failure; its items are read once it has all
       * come, into `arena`.
       */
      const fetchPage = (token: string | undefined, arena: ByteArena): Promise<JsonListAnswer> =>
        page(async () => {
          const query = { labelSelector: labelSelector || undefined, fieldSelector: fieldSelector || undefined, limit: pageSize, continue: token };
          try {
            return (await send({ method: 'GET', path, query, list: true, arena })) as JsonListAnswer;
          } catch (err) {
            // An expired continue token is not retried page by page: the listing starts over.
            if (err instanceof ApiException && err.code === 410) throw err;
            const translated = translateKubeError(err, context, server);
            throw translated instanceof TransientKubeError && translated.status === 404 ? resourceMissing(context, translated) : translated;
          }
        });
      // An expired continue token (410) means the listing must start over; a few times at most.
      for (let restart = 0; ; restart++) {
        const out: WorkloadEntry[] = [];
        let read = 0;
        // Two, taking turns: a page is read into one while the page before it, in the other, is
        // parsed. The page after that is asked for only once this parsing is done.
        const arenas = [new ByteArena(), new ByteArena()];
        const arenaOf = (page: number): ByteArena => arenas[page % 2]!;
        let pages = 0;
        let next: Promise<JsonListAnswer> | undefined;
        try {
          next = fetchPage(undefined, arenaOf(pages++));
          while (next !== undefined) {
            const answer: JsonListAnswer = await next;
            const token: string | undefined = (answer.rest as { metadata?: { continue?: string } } | null)?.metadata?.continue || undefined;
            // The next page is asked for before this one's items are parsed, so that the server
            // makes it ready meanwhile (the continue token comes at the end of a page).
            next = token === undefined ? undefined : askedAhead(fetchPage(token, arenaOf(pages++)));
            if (next !== undefined) {
              // undici writes the request within two turns of the event loop (the first frees the
              // connection the last answer came on); the parsing below gives it none.
              await nextTurn();
              await nextTurn();
            }
            await runSliced(readEntries(answer.items, keep, out));
            read += answer.items.length;
          }
          if (listOptions.read) listOptions.read.entries += read;
          return out;
        } catch (err) {
          if (err instanceof ApiException && err.code === 410 && restart < 3) continue;
          throw translateKubeError(err, context, server);
        }
      }
    },

    async createEntry(entry, createOptions = {}) {
      const { namespace, name } = entry.metadata;
      const context: KubeCallContext = { verb: 'create', what: `WorkloadEntry ${namespace}/${name}` };
      try {
        await send({
          method: 'POST',
          path: namespacedPath(entries, namespace),
          query: { fieldManager: createOptions.fieldManager || undefined },
          body: entryBody(entry, false),
          discard: true,
        });
      } catch (err) {
        const translated = translateKubeError(err, context, server);
        if (translated instanceof TransientKubeError && translated.status === 404) throw resourceMissing(context, translated);
        throw translated;
      }
    },

    async applyEntry(entry, applyOptions) {
      const { namespace, name } = entry.metadata;
      const context: KubeCallContext = { verb: 'apply', what: `WorkloadEntry ${namespace}/${name}` };
      await call(context, () =>
        send({
          method: 'PATCH',
          path: namespacedPath(entries, namespace, name),
          query: { fieldManager: applyOptions.fieldManager, force: true },
          body: entryBody(entry, true),
          contentType: PatchStrategy.ServerSideApply,
          discard: true,
        }),
      );
    },

    async mergePatchEntry(namespace, name, patch, patchOptions) {
      const context: KubeCallContext = { verb: 'patch', what: `WorkloadEntry ${namespace}/${name}` };
      await call(context, () =>
        send({
          method: 'PATCH',
          path: namespacedPath(entries, namespace, name),
          query: { fieldManager: patchOptions.fieldManager },
          body: patch,
          contentType: PatchStrategy.MergePatch,
          discard: true,
        }),
      );
    },

    async deleteEntry(namespace, name, preconditions) {
      const context: KubeCallContext = { verb: 'delete', what: `WorkloadEntry ${namespace}/${name}` };
      const pre = {
        ...(preconditions.resourceVersion ? { resourceVersion: preconditions.resourceVersion } : {}),
        ...(preconditions.uid ? { uid: preconditions.uid } : {}),
      };
      try {
        await send({ method: 'DELETE', path: namespacedPath(entries, namespace, name), body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: pre } });
        return true;
      } catch (err) {
        if (isObjectNotFound(err)) return false;
        throw translateKubeError(err, context, server);
      }
    },

    async getServiceAccount(namespace, name) {
      const context: KubeCallContext = { verb: 'get', what: `ServiceAccount ${namespace}/${name}` };
      try {
        const sa: V1ServiceAccount = await core.readNamespacedServiceAccount({ namespace, name }, plain);
        return { namespace, name, labels: { ...(sa.metadata?.labels ?? {}) } };
      } catch (err) {
        if (isObjectNotFound(err)) return null;
        throw translateKubeError(err, context, server);
      }
    },

    async createServiceAccount(namespace, name, labels) {
      const context: KubeCallContext = { verb: 'create', what: `ServiceAccount ${namespace}/${name}` };
      try {
        await core.createNamespacedServiceAccount(
          { namespace, body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, labels: { ...labels } } } },
          plain,
        );
        return true;
      } catch (err) {
        if (err instanceof ApiException && err.code === 409) return false;
        throw translateKubeError(err, context, server);
      }
    },

    async createEvent(event) {
      const { involvedObject: obj } = event;
      const context: KubeCallContext = { verb: 'create', what: `Event in ${obj.namespace}` };
      const now = new Date();
      const body: CoreV1Event = {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${obj.name}.`, namespace: obj.namespace },
        involvedObject: { ...obj },
        reason: event.reason,
        message: event.message.slice(0, 1024),
        type: event.type,
        source: { component: event.reportingComponent ?? component },
        reportingComponent: event.reportingComponent ?? component,
        reportingInstance: event.reportingInstance ?? os.hostname(),
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      };
      await call(context, () => core.createNamespacedEvent({ namespace: obj.namespace, body }, plain));
    },

    async getObject(kind, namespace, name) {
      const context: KubeCallContext = { verb: 'get', what: `${kind} ${namespace}/${name}` };
      try {
        const obj: unknown =
          kind === 'Service'
            ? await core.readNamespacedService({ namespace, name }, plain)
            : await custom.getNamespacedCustomObject({ ...MESH_SERVICE_APIS[kind], namespace, name }, plain);
        return toMeshServiceObject(kind, obj);
      } catch (err) {
        if (isObjectNotFound(err)) return null;
        throw translateKubeError(err, context);
      }
    },

    async listObjects(kind, pageSize, listOptions = {}) {
      const { namespace } = listOptions;
      const page = listOptions.page ?? ((request) => request());
      const context: KubeCallContext = { verb: 'list', what: `${kind}s${namespace ? ` in namespace ${namespace}` : ''}` };
      for (let restart = 0; ; restart++) {
        const out: MeshServiceObject[] = [];
        let token: string | undefined;
        try {
          do {
            const query = { limit: pageSize, ...(token ? { _continue: token } : {}) };
            const request = (): Promise<unknown> => {
              if (kind === 'Service') {
                return namespace ? core.listNamespacedService({ ...query, namespace }, plain) : core.listServiceForAllNamespaces(query, plain);
              }
              const { group: g, version: v, plural: p } = MESH_SERVICE_APIS[kind];
              return namespace
                ? custom.listNamespacedCustomObject({ ...query, group: g, version: v, plural: p, namespace }, plain)
                : custom.listCustomObjectForAllNamespaces({ ...query, group: g, version: v, resourcePlural: p }, plain);
            };
            const answer = (await page(() =>
              request().catch((err: unknown) => {
                if (err instanceof ApiException && err.code === 410) throw err;
                throw translateKubeError(err, context);
              }),
            )) as { items?: unknown[]; metadata?: { _continue?: string; continue?: string } };
            for (const item of answer.items ?? []) out.push(toMeshServiceObject(kind, item));
            token = answer.metadata?.continue || answer.metadata?._continue || undefined;
          } while (token !== undefined);
          return out;
        } catch (err) {
          if (err instanceof ApiException && err.code === 410 && restart < 3) continue;
          throw translateKubeError(err, context);
        }
      }
    },

    async createObject(obj, createOptions) {
      const { namespace, name } = obj.metadata;
      const context: KubeCallContext = { verb: 'create', what: `${obj.kind} ${namespace}/${name}` };
      const body = objectBody(obj);
      const fieldManager = createOptions.fieldManager;
      await call(context, () =>
        obj.kind === 'Service'
          ? core.createNamespacedService({ namespace, body: body as never, fieldManager }, plain)
          : custom.createNamespacedCustomObject({ ...MESH_SERVICE_APIS[obj.kind], namespace, body, fieldManager }, plain),
      );
    },

    async mergePatchObject(kind, namespace, name, patch, patchOptions) {
      const context: KubeCallContext = { verb: 'patch', what: `${kind} ${namespace}/${name}` };
      const fieldManager = patchOptions.fieldManager;
      await call(context, () =>
        kind === 'Service'
          ? core.patchNamespacedService({ namespace, name, body: patch, fieldManager }, mergePatch)
          : custom.patchNamespacedCustomObject({ ...MESH_SERVICE_APIS[kind], namespace, name, body: patch, fieldManager }, mergePatch),
      );
    },

    async deleteObject(kind, namespace, name, preconditions) {
      const context: KubeCallContext = { verb: 'delete', what: `${kind} ${namespace}/${name}` };
      const body = {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        // Orphan: istiod makes the entries of VMs that auto-registered through a WorkloadGroup with
        // the group as their controller owner; a cascading delete would take those entries along.
        propagationPolicy: 'Orphan',
        preconditions: {
          ...(preconditions.resourceVersion ? { resourceVersion: preconditions.resourceVersion } : {}),
          ...(preconditions.uid ? { uid: preconditions.uid } : {}),
        },
      };
      try {
        if (kind === 'Service') await core.deleteNamespacedService({ namespace, name, body }, plain);
        else await custom.deleteNamespacedCustomObject({ ...MESH_SERVICE_APIS[kind], namespace, name, body }, plain);
        return true;
      } catch (err) {
        if (isObjectNotFound(err)) return false;
        throw translateKubeError(err, context);
      }
    },
  };
}

/** A mesh service's object as we send it: the fields we own, nothing the server keeps for itself. */
function objectBody(obj: MeshServiceObject): Record<string, unknown> {
  const { name, namespace, labels, annotations } = obj.metadata;
  return { apiVersion: obj.apiVersion, kind: obj.kind, metadata: { name, namespace, labels: { ...labels }, annotations: { ...annotations } }, spec: structuredClone(obj.spec) };
}

/** The metadata we read of any object: the maps the model promises always present. */
function readMeta(m: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string; uid?: string }): ObjectMeta {
  return {
    name: m.name ?? '',
    namespace: m.namespace ?? '',
    labels: ownMap(m.labels),
    annotations: ownMap(m.annotations),
    ...(m.resourceVersion !== undefined ? { resourceVersion: m.resourceVersion } : {}),
    ...(m.uid !== undefined ? { uid: m.uid } : {}),
  };
}

/**
 * A mesh service's object from the server's JSON. A Service keeps only the fields we write (the
 * server adds clusterIP, clusterIPs, ipFamilies, ipFamilyPolicy, sessionAffinity and
 * internalTrafficPolicy, which are its own); the Istio kinds keep their spec whole, as entries do.
 */
function toMeshServiceObject(kind: MeshServiceKind, obj: unknown): MeshServiceObject {
  const o = (obj ?? {}) as { metadata?: Parameters<typeof readMeta>[0]; spec?: Record<string, unknown> };
  const metadata = readMeta(o.metadata ?? {});
  const spec = o.spec ?? {};
  if (kind !== 'Service') return { apiVersion: 'networking.istio.io/v1', kind, metadata, spec: structuredClone(spec) } as MeshServiceObject;
  const ports = (Array.isArray(spec.ports) ? spec.ports : []) as Array<Record<string, unknown>>;
  const service: KubeService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata,
    spec: {
      type: spec.type as 'ClusterIP',
      selector: { ...((spec.selector as Record<string, string> | undefined) ?? {}) },
      ports: ports.map((p) => ({
        name: p.name as string,
        port: p.port as number,
        protocol: p.protocol as ServicePort['protocol'],
        ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol as string } : {}),
        targetPort: p.targetPort as number,
      })),
    },
  };
  return service;
}

/** What we send: only the fields we own, so server-side apply claims nothing else. */
function entryBody(entry: WorkloadEntry, withResourceVersion: boolean): Record<string, unknown> {
  const { name, namespace, labels, annotations, resourceVersion } = entry.metadata;
  return {
    apiVersion: entry.apiVersion,
    kind: entry.kind,
    metadata: {
      name,
      namespace,
      labels: { ...labels },
      annotations: { ...annotations },
      ...(withResourceVersion && resourceVersion ? { resourceVersion } : {}),
    },
    spec: { ...entry.spec },
  };
}

/**
 * A page's entries, parsed and passed through `keep` into `out`, with checkpoints: a page of 1000
 * takes several milliseconds, more with a resync planning beside it.
 */
function* readEntries(items: readonly Buffer[], keep: ListOptions['keep'], out: WorkloadEntry[]): Sliced<void> {
  for (let i = 0; i < items.length; i++) {
    if (i % CHECKPOINT_EVERY === CHECKPOINT_EVERY - 1) yield;
    const entry = toEntry(JSON.parse(items[i]!.toString('utf8')));
    const kept = keep ? keep(entry) : entry;
    if (kept !== undefined) out.push(kept);
  }
}

/** Resolves once the event loop has run its timers and I/O. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A WorkloadEntry from the server's JSON, with the maps the model promises always present. */
function toEntry(obj: unknown): WorkloadEntry {
  const o = (obj ?? {}) as {
    metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string; uid?: string };
    spec?: WorkloadEntrySpec;
  };
  const m = o.metadata ?? {};
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: readMeta(m),
    spec: ownMap(o.spec),
  };
}

/**
 * A map of an answer as the model holds it: a plain object (as JSON.parse makes them) is taken as it
 * is, since the answer it came from is ours alone and dropped once read; anything else (absent,
 * null, an array from a broken server) is spread into a new object, as it always was.
 */
function ownMap<T extends object>(value: T | null | undefined): T {
  if (typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype) return value;
  return { ...(value ?? {}) } as T;
}
