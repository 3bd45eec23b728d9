// Kubernetes Events that tell the story in `kubectl describe` / `kubectl get events`: why an
// entry could not be written, why a VM's tag values keep it out of the mesh. Rate-limited per
// object and reason so that a resync every few minutes does not flood the API, and never awaited
// by the work that triggers them.
import { isVmsError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { entryName } from '../mapping/index.ts';
import { API_VERSION_OF, type OwnedKind, parseObjectKey, type Skip } from '../model.ts';
import type { KubeApi } from '../writer/kube-api.ts';
import { TransientKubeError } from '../writer/transient-kube-error.ts';

/** How often the same reason is reported on the same object at most. */
export const EVENT_INTERVAL_MS = 10 * 60_000;
/** Events sent per second at most, over all objects. */
export const EVENTS_PER_SECOND = 5;
const MAX_REMEMBERED = 50_000;

/** Options of EventRecorder. */
export interface EventRecorderOptions {
  logger?: Pick<Logger, 'debug' | 'warn'>;
  /** This replica's name, shown as the reporting instance. */
  instance?: string;
  /** Namespace of events about instances whose entry namespace is unknown. */
  defaultNamespace?: string;
  now?: () => number;
}

/** Sends rate-limited Warning events about WorkloadEntries. */
export class EventRecorder {
  readonly #api: Pick<KubeApi, 'createEvent'>;
  readonly #options: EventRecorderOptions;
  readonly #lastSent = new Map<string, number>();
  /** Events the API server refused: not sent again by this process. */
  readonly #refused = new Set<string>();
  /** Codes of refusals already logged at warn: each is said once. */
  readonly #refusalsSaid = new Set<string>();
  #windowStart = 0;
  #sentInWindow = 0;
  #closed = false;

  constructor(api: Pick<KubeApi, 'createEvent'>, options: EventRecorderOptions = {}) {
    this.#api = api;
    this.#options = options;
  }

  /** An entry could not be written; `key` is `namespace/name`. */
  writeFailed(key: string, code: string, message: string): void {
    const [namespace = 'default', name = key] = key.split('/');
    this.#send(namespace, name, reasonOf(code), `${code}: ${message}`);
  }

  /**
   * An instance is kept out of the mesh by a value that cannot be used (bad tag, no address): the
   * Event goes to the namespace mapping chose for its entry, or the default one when the namespace
   * itself is what could not be used.
   */
  skipped(skip: Skip): void {
    if (!skip.keepsEntry) return; // untagged or stopped VMs are normal, not news
    const name = entryName(skip.instance);
    this.#send(skip.namespace ?? this.#options.defaultNamespace ?? 'default', name, reasonOf(skip.code), `${skip.instance.provider}:${skip.instance.id} (${skip.instance.name}): ${skip.code}: ${skip.reason}`);
  }

  /**
   * A scope wants an entry name that another scope (or an object not ours) holds, or a mesh
   * service a name held by a Service, ServiceEntry or WorkloadGroup not ours; `key` is an
   * object key (objectKey), and the Event is about that object.
   */
  conflict(key: string, reason: string): void {
    const { kind, namespace, name } = parseObjectKey(key);
    this.#send(namespace || 'default', name, 'EntryConflict', `VMS_ERR_ENTRY_CONFLICT: ${reason}`, kind);
  }

  /** Stops sending. */
  close(): void {
    this.#closed = true;
  }

  #send(namespace: string, name: string, reason: string, message: string, kind: OwnedKind = 'WorkloadEntry'): void {
    if (this.#closed) return;
    const now = this.#options.now?.() ?? Date.now();
    const id = `${kind}/${namespace}/${name}/${reason}`;
    if (this.#refused.has(id)) return;
    const last = this.#lastSent.get(id);
    if (last !== undefined && now - last < EVENT_INTERVAL_MS) return;
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#sentInWindow = 0;
    }
    if (this.#sentInWindow >= EVENTS_PER_SECOND) return;
    this.#sentInWindow++;
    if (this.#lastSent.size >= MAX_REMEMBERED) this.#lastSent.clear();
    this.#lastSent.set(id, now);
    this.#api
      .createEvent({
        involvedObject: { apiVersion: API_VERSION_OF[kind], kind, namespace, name },
        reason,
        message: message.slice(0, 1024),
        type: 'Warning',
        ...(this.#options.instance ? { reportingInstance: this.#options.instance } : {}),
      })
      .catch((err: Error) => {
        if (isVmsError(err) && !(err instanceof TransientKubeError)) {
          // Refused (forbidden, invalid, no such namespace): asking again changes nothing.
          if (this.#refused.size >= MAX_REMEMBERED) this.#refused.clear();
          this.#refused.add(id);
          const first = !this.#refusalsSaid.has(err.code);
          this.#refusalsSaid.add(err.code);
          const log = { code: err.code, namespace, name, reason, err: err.message };
          if (first) this.#options.logger?.warn(log, 'the Kubernetes API refused a Warning Event; events like it are not sent again by this process');
          else this.#options.logger?.debug(log, 'Warning Event refused');
        } else {
          // Failed on the way (network, 5xx): the next occasion may send it.
          this.#lastSent.delete(id);
          this.#options.logger?.debug({ err: err.message, namespace, name }, 'event not recorded');
        }
      });
  }
}

/** `VMS_SKIP_BAD_PORTS` → `BadPorts`, `VMS_ERR_KUBE_REJECTED` → `KubeRejected`: the short UpperCamelCase reason Events use. */
export function reasonOf(code: string): string {
  return code
    .replace(/^VMS_(ERR|SKIP)_/, '')
    .toLowerCase()
    .split('_')
    .map((w) => (w ? w[0]!.toUpperCase() + w.slice(1) : ''))
    .join('');
}
