// The one way secrets are taken out of what is shown: a config for logs and `/status`, and any URL
// (Redis connection strings above all) before it reaches a log line or an error message.

/** Config keys whose values are secrets, wherever they appear. */
const SECRET_KEY = /(password|secret|token|apikey|api_key|credential|privatekey|clientsecret|externalid)/i;
/** Keys inside a secret block that name where or how a secret is sent, not the secret itself. */
const NOT_SECRET = new Set(['env', 'file', 'header', 'param', 'username']);
const MASK = '***';

/** A copy of the config fit for logs and `/status`: passwords in URLs and secret values replaced. */
export function maskConfig<T>(value: T): T {
  return maskValue(value, '', false) as T;
}

function maskValue(value: unknown, key: string, inSecret: boolean): unknown {
  if (typeof value === 'string') {
    // A secret reference ({env} or {file}) names where the secret is, which is safe to show.
    if ((inSecret || SECRET_KEY.test(key)) && !NOT_SECRET.has(key)) return MASK;
    return maskUrl(value);
  }
  if (Array.isArray(value)) return value.map((v) => maskValue(v, key, inSecret));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = maskValue(v, k, inSecret || SECRET_KEY.test(k));
    return out;
  }
  return value;
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * `text` with the secrets of a URL replaced by `***`: the password (`redis://user:***@host`), a
 * user part without a password, which may itself be a token (`https://***@host`), and the values
 * of query parameters with secret names (ioredis takes `?password=`). Any other text is returned
 * as it is. The user part ends at the last `@` of the authority, so a password holding `@` is
 * masked whole; the text is not re-encoded, so what is shown is what was written.
 */
export function maskUrl(text: string): string {
  const scheme = SCHEME.exec(text)?.[0];
  if (scheme === undefined) return text;
  const rest = text.slice(scheme.length);
  const authorityEnd = rest.search(/[/?#\s]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  const at = authority.lastIndexOf('@');
  let masked = authority;
  if (at !== -1) {
    const colon = authority.indexOf(':');
    const user = colon !== -1 && colon < at ? `${authority.slice(0, colon)}:` : '';
    masked = `${user}${MASK}${authority.slice(at)}`;
  }
  return `${scheme}${masked}${maskSecretParams(rest.slice(authority.length))}`;
}

// `/0?password=pw&db=2` → `/0?password=***&db=2`; names and other values stay for debugging.
function maskSecretParams(tail: string): string {
  const query = tail.indexOf('?');
  if (query === -1) return tail;
  const fragment = tail.indexOf('#', query);
  const end = fragment === -1 ? tail.length : fragment;
  const pairs = tail
    .slice(query + 1, end)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq !== -1 && SECRET_KEY.test(safeDecode(pair.slice(0, eq))) ? `${pair.slice(0, eq)}=${MASK}` : pair;
    });
  return `${tail.slice(0, query + 1)}${pairs.join('&')}${tail.slice(end)}`;
}

function safeDecode(name: string): string {
  try {
    return decodeURIComponent(name.replaceAll('+', ' '));
  } catch {
    return name;
  }
}
