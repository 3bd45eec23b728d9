// Turns what @kubernetes/client-node throws into the two kinds of failure the rest of
// vm-mesh-sync reasons about: TransientKubeError (retry) and VmsError (give up, say why).
import { ApiException } from '@kubernetes/client-node';
import { VmsError } from '../errors.ts';
import { TransientKubeError } from './transient-kube-error.ts';

/** The parts of a Kubernetes `Status` body we use. */
export interface KubeStatus {
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    kind?: string;
    group?: string;
    causes?: Array<{ reason?: string; message?: string; field?: string }>;
  };
}

/** What was being done, so that messages name the object and the verb. */
export interface KubeCallContext {
  verb: 'get' | 'list' | 'create' | 'apply' | 'patch' | 'delete';
  /** `WorkloadEntry ns/name`, `ServiceAccount ns/name`, `Event in ns`. */
  what: string;
}

// Socket-level failures: the request may never have reached the server, so trying again is safe
// for every call we make (all are idempotent or guarded by preconditions).
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** The Status object inside an ApiException body (a raw JSON string in client-node 2.x). */
export function parseKubeStatus(body: unknown): KubeStatus {
  let value: unknown = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch {
      return { message: body.slice(0, 500) };
    }
  }
  return typeof value === 'object' && value !== null ? (value as KubeStatus) : {};
}

/** Retry-After is seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** True when a 404 says the namespace, not the object, is missing. */
function isNamespaceMissing(status: KubeStatus): boolean {
  return status.details?.kind === 'namespaces' || /^namespaces "[^"]*" not found/.test(status.message ?? '');
}

function headerValue(headers: Record<string, string> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === name) return value;
  }
  return undefined;
}

/** The socket error code somewhere in the cause chain (fetch wraps it in `TypeError: fetch failed`). */
function networkCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    if (current.name === 'TimeoutError' || current.name === 'AbortError') return 'ETIMEDOUT';
    if (/socket hang up|other side closed/i.test(current.message)) return 'ECONNRESET';
    if (current instanceof AggregateError && current.errors.length > 0) {
      current = current.errors[0];
    } else {
      current = current.cause;
    }
  }
  return undefined;
}

/**
 * Whether fetch refused the request before connecting because of its port: the Fetch standard's
 * "bad port" list (6000, 6665-6669, 10080 and others), which Node's fetch enforces as browsers do.
 * Its only trace is a `TypeError: fetch failed` whose cause is an `Error: bad port` without a code.
 */
function isBadPort(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current.message === 'bad port') return true;
    current = current.cause;
  }
  return false;
}

/**
 * The error to throw for a failed call. ApiExceptions become TransientKubeError (429, 5xx, 409,
 * 408) or a VmsError naming the server's reason; socket failures become TransientKubeError; a
 * port fetch refuses is a VmsError (no retry connects to it); anything else (a bug) is returned as
 * it is. `server`: the API server's URL as the kubeconfig gives it, for messages.
 */
export function translateKubeError(err: unknown, context: KubeCallContext, server?: string): Error {
  if (err instanceof TransientKubeError || err instanceof VmsError) return err;
  if (err instanceof ApiException) return translateApiException(err as ApiException<unknown>, context);
  if (isBadPort(err)) {
    let port = '';
    try {
      port = server === undefined ? '' : new URL(server).port;
    } catch {
      // A server that is not a URL is named as it is.
    }
    const which = port === '' ? "the API server's port" : `port ${port} of the API server ${server}`;
    return new VmsError(
      'VMS_ERR_KUBE_UNREACHABLE',
      `${context.verb} ${context.what}: Node's fetch refuses ${which}: it is on the Fetch standard's list of blocked ("bad") ports, to which Node never connects; serve or forward the API server on another port (e.g. 6443) and change the kubeconfig's server`,
      { reason: 'bad port', ...(server === undefined ? {} : { server }) },
      { cause: err },
    );
  }
  const code = networkCode(err);
  if (code !== undefined) {
    const detail = err instanceof Error ? err.message : String(err);
    return new TransientKubeError(`${context.verb} ${context.what}: Kubernetes API unreachable (${code}: ${detail})`, { reason: code }, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

function translateApiException(err: ApiException<unknown>, context: KubeCallContext): Error {
  const status = parseKubeStatus(err.body);
  const code = err.code;
  const serverMessage = status.message ?? '';
  const where = `${context.verb} ${context.what}`;
  const said = serverMessage ? `: ${serverMessage}` : '';
  const retryAfterMs = parseRetryAfter(headerValue(err.headers, 'retry-after'));
  const details = { status: code, reason: status.reason, causes: status.details?.causes };

  if (code === 429 || code === 408 || code >= 500 || code === 409) {
    const reason = status.reason ?? (code === 429 ? 'TooManyRequests' : code === 409 ? 'Conflict' : `HTTP${code}`);
    const init = retryAfterMs === undefined ? { status: code, reason } : { status: code, reason, retryAfterMs };
    return new TransientKubeError(`${where}: ${code} ${reason}${said}`, init, { cause: err });
  }
  if (code === 404) {
    if (isNamespaceMissing(status)) {
      const namespace = status.details?.name ?? /^namespaces "([^"]*)"/.exec(serverMessage)?.[1] ?? '';
      return new VmsError('VMS_ERR_KUBE_NAMESPACE_MISSING', `${where}: namespace "${namespace}" does not exist`, { ...details, namespace }, { cause: err });
    }
    return new TransientKubeError(`${where}: 404 NotFound${said}`, { status: 404, reason: status.reason ?? 'NotFound' }, { cause: err });
  }
  if (code === 401) {
    return new VmsError('VMS_ERR_KUBE_UNAUTHORIZED', `${where}: 401 Unauthorized${said}`, details, { cause: err });
  }
  if (code === 403) {
    return new VmsError('VMS_ERR_KUBE_FORBIDDEN', `${where}: 403 Forbidden${said}`, details, { cause: err });
  }
  const causes = (status.details?.causes ?? [])
    .map((c) => [c.field, c.message].filter(Boolean).join(': '))
    .filter((line) => line !== '');
  const causeText = causes.length > 0 && !causes.every((c) => serverMessage.includes(c)) ? ` (${causes.join('; ')})` : '';
  return new VmsError('VMS_ERR_KUBE_REJECTED', `${where}: ${code} ${status.reason ?? 'Invalid'}${said}${causeText}`, details, { cause: err });
}
