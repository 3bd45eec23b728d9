// The requests of the WorkloadEntry calls, sent with undici's `request` rather than through
// @kubernetes/client-node's generated client. Every entry the service writes or reads passes here,
// 100,000 at a cold start and one per event in a storm: the generated client's fetch, object
// serializer and middleware cost about twice the CPU of the request itself (0.5-0.8 ms against
// 0.25-0.45 ms per create, measured against the fake API server). Authentication and TLS stay the
// client library's: each request takes its headers (bearer token, exec plugin, impersonation) and
// its dispatcher (CA, client certificate, proxy) from the kubeconfig, as the library's own calls do.
import { ApiException, type KubeConfig } from '@kubernetes/client-node';
import type { RequestContext } from '@kubernetes/client-node';
import { type Dispatcher, request } from 'undici';
import { type ByteArena, readJsonList } from '../json-list.ts';

/**
 * The ports fetch never connects to: the Fetch standard's "bad ports"
 * (https://fetch.spec.whatwg.org/#bad-port). The client library's calls go through fetch and fail
 * on them; these requests fail the same way, so that a server on such a port is refused by every
 * call alike (translateKubeError says why).
 */
const BAD_PORTS: ReadonlySet<string> = new Set(
  [
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135,
    137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719,
    1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
  ].map(String),
);

/** What a request carries. */
export interface KubeRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** The path below the server's URL, its segments already encoded. */
  path: string;
  /** Query parameters; undefined values are left out. */
  query?: Record<string, string | number | boolean | undefined>;
  /** Sent as JSON. */
  body?: unknown;
  /** The body's content type (default `application/json`): apply and merge patches say theirs. */
  contentType?: string;
  /**
   * A list: the answer comes as a JsonListAnswer, each item's bytes apart and the rest parsed. A
   * page's text is never held whole as one string (see json-list.ts).
   */
  list?: boolean;
  /** Where a list's items are copied (see ByteArena); without one, they are views of the answer's chunks. */
  arena?: ByteArena;
  /**
   * A write whose answer nobody reads: a successful answer's body is read to its end, so that the
   * connection is kept, but neither decoded nor parsed, and the call gives undefined (a body that
   * breaks off after the success status is no error: the server has done the write). The object
   * the server sends back for a create or a patch of one of our entries is about 2 KB of JSON, 43%
   * of it managedFields: a first sync of 100,000 entries parsed as many and dropped them.
   */
  discard?: boolean;
}

/** The most of a discarded answer read to keep its connection; a longer one closes it instead. */
const DISCARD_LIMIT = 1 << 20;

/**
 * Sends a request and gives the parsed JSON answer (undefined for a request that discards it); a
 * non-2xx answer throws an ApiException, as the generated client does.
 */
export type KubeSend = (req: KubeRequest) => Promise<unknown>;

/** The headers and dispatcher the kubeconfig gives one request. */
interface Authenticated {
  headers: Record<string, string>;
  dispatcher: Dispatcher | undefined;
}

async function authenticate(kc: KubeConfig): Promise<Authenticated> {
  const headers: Record<string, string> = {};
  let dispatcher: Dispatcher | undefined;
  // applySecurityAuthentication only sets headers and the dispatcher on the context it is given.
  const context = {
    // Without the leading and trailing whitespace fetch strips from header values (a token file
    // read as it is ends in a newline, which undici's request refuses).
    setHeaderParam: (key: string, value: string) => {
      headers[key.toLowerCase()] = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
    },
    setDispatcher: (d: Dispatcher) => {
      dispatcher = d;
    },
  } as unknown as RequestContext;
  await kc.applySecurityAuthentication(context);
  return { headers, dispatcher };
}

function queryString(query: KubeRequest['query']): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.append(key, String(value));
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
}

function headerRecord(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) if (value !== undefined) out[key] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

/**
 * A sender for the kubeconfig's current cluster. A request whose answer does not begin within
 * `timeoutMs`, or whose body then stalls for as long, is abandoned; `userAgent` names the service
 * in the API server's audit log.
 */
export function kubeSender(kc: KubeConfig, timeoutMs: number, userAgent: string): KubeSend {
  const server = (kc.getCurrentCluster()?.server ?? '').replace(/\/+$/, '');
  let port = '';
  try {
    port = new URL(server).port;
  } catch {
    // Not a URL: the request fails on it as it would through the client library.
  }
  return async (req) => {
    if (BAD_PORTS.has(port)) throw new Error('bad port');
    const { headers, dispatcher } = await authenticate(kc);
    headers.accept = 'application/json';
    headers['user-agent'] = userAgent;
    let body: string | undefined;
    if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['content-type'] = req.contentType ?? 'application/json';
    }
    const answer = await request(`${server}${req.path}${queryString(req.query)}`, {
      method: req.method,
      headers,
      ...(body === undefined ? {} : { body }),
      ...(dispatcher === undefined ? {} : { dispatcher }),
      // undici's own timers: an AbortSignal.timeout per request (a timer, a weak reference and
      // listeners on undici's side) cost about 45 µs of CPU, a third of a small request's.
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const ok = answer.statusCode >= 200 && answer.statusCode <= 299;
    // Nothing this service reads is in an object's managedFields (43% of the bytes of one of our entries).
    if (ok && req.list) return readJsonList(answer.body, { leaveOut: ['metadata', 'managedFields'] }, req.arena);
    if (ok && req.discard) {
      await answer.body.dump({ limit: DISCARD_LIMIT });
      return undefined;
    }
    const text = await answer.body.text();
    if (!ok) {
      throw new ApiException(answer.statusCode, `${req.method} ${req.path}`, text, headerRecord(answer.headers));
    }
    return text === '' ? undefined : JSON.parse(text);
  };
}

/** The path of a namespaced object (or of its collection when `name` is absent). */
export function namespacedPath(api: { group: string; version: string; plural: string }, namespace: string, name?: string): string {
  const base = `/apis/${api.group}/${api.version}/namespaces/${encodeURIComponent(namespace)}/${api.plural}`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

/** The path of a kind's objects across all namespaces. */
export function clusterPath(api: { group: string; version: string; plural: string }): string {
  return `/apis/${api.group}/${api.version}/${api.plural}`;
}
