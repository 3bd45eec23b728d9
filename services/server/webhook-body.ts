// Webhook bodies are read as text and parsed here, so the exact text stays available for signature
// checks and a body that is not JSON is answered with the parser's own reason.
import { VmsError } from '../errors.ts';

/**
 * Parses a webhook body. Empty (or blank) is `undefined`, as WebhookRequest promises. Keys that
 * could reach an object's prototype when a receiver merges the body are refused, as fastify's own
 * JSON parser does.
 */
export function parseWebhookBody(raw: string): unknown {
  if (raw.trim() === '') return undefined;
  try {
    // A reviver costs a call per value (a wide megabyte took about 0.3 s), so it runs only on a
    // body that could hold such a key: one that names it, or escapes characters (`\u005f_proto__`).
    return mayHidePrototypeKeys(raw) ? JSON.parse(raw, refusePrototypeKeys) : JSON.parse(raw);
  } catch (err) {
    if (err instanceof VmsError) throw err;
    throw new VmsError('VMS_ERR_WEBHOOK_BODY', `the body is not JSON: ${(err as Error).message}`);
  }
}

/** True unless the text can be seen to hold neither key: it names neither and escapes no character. */
export function mayHidePrototypeKeys(raw: string): boolean {
  return raw.includes('__proto__') || raw.includes('constructor') || raw.includes('\\u');
}

function refusePrototypeKeys(this: unknown, key: string, value: unknown): unknown {
  if (key === '__proto__') throw new VmsError('VMS_ERR_WEBHOOK_BODY', 'the body has a "__proto__" key, which is not accepted');
  if (key === 'constructor' && typeof value === 'object' && value !== null && Object.hasOwn(value, 'prototype')) {
    throw new VmsError('VMS_ERR_WEBHOOK_BODY', 'the body has a "constructor.prototype" key, which is not accepted');
  }
  return value;
}

/** The query as WebhookRequest has it: one string per name (the first of repeated ones), on an object without a prototype. */
export function flattenQuery(query: unknown): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = Object.create(null);
  if (typeof query !== 'object' || query === null) return out;
  for (const [name, value] of Object.entries(query)) {
    const first: unknown = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') out[name] = first;
  }
  return out;
}
