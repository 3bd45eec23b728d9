// What the request log may say about a request. Webhook credentials travel in headers
// (Authorization, API keys, Event Grid SAS keys) and in query strings (`?token=`, `?code=`), so a
// request is logged without its headers and with query values masked.

const SENSITIVE_HEADER = /auth|key|token|secret|cookie|signature|password|credential/i;
const MASK = '***';

/** The parts of a request the serializer reads; FastifyRequest has them. */
export interface LoggedRequest {
  method: string;
  url: string;
  ip?: string;
  headers?: Record<string, string | string[] | undefined>;
}

/** The `req` serializer of the HTTP logger: method, path with masked query values, client address. */
export function serializeRequest(req: LoggedRequest): Record<string, unknown> {
  const agent = req.headers?.['user-agent'];
  return {
    method: req.method,
    url: maskQuery(req.url),
    remoteAddress: req.ip,
    userAgent: typeof agent === 'string' ? agent : undefined,
  };
}

/** The `headers` serializer: a copy with every credential-looking header masked, for code that logs headers. */
export function redactHeaders(headers: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (headers === undefined || headers === null || typeof headers !== 'object') return headers;
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = SENSITIVE_HEADER.test(name) ? MASK : value;
  return out;
}

/** `/path?a=1&b=2` → `/path?a=***&b=***`: the names help debugging, the values may be keys. */
export function maskQuery(url: string): string {
  const at = url.indexOf('?');
  if (at === -1) return url;
  const names = url
    .slice(at + 1)
    .split('&')
    .filter((pair) => pair.length > 0)
    .map((pair) => {
      const eq = pair.indexOf('=');
      return `${eq === -1 ? pair : pair.slice(0, eq)}=${MASK}`;
    });
  return `${url.slice(0, at)}?${names.join('&')}`;
}
