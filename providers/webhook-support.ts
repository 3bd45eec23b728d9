// What every provider's webhook receiver needs: constant-time credential checks, careful body
// reading and error values with the catalogue's codes.
import { hash, timingSafeEqual } from 'node:crypto';
import { VmsError } from '../services/errors.ts';
import type { WebhookRequest } from './provider.ts';

/**
 * Compares a presented secret with the expected one in constant time. Digests have equal length
 * whatever was sent, which timingSafeEqual needs, and hide the secret's length.
 */
export function constantTimeEqual(presented: string, expected: string): boolean {
  const a = hash('sha256', presented, 'buffer');
  const b = hash('sha256', expected, 'buffer');
  return timingSafeEqual(a, b);
}

/** The body as JSON: what the HTTP layer parsed, else the raw text; `expected` names what should be there. */
export function parseBody(req: WebhookRequest, expected: string): unknown {
  if (req.body !== undefined) return req.body;
  if (req.rawBody.trim() === '') throw bodyError(`the body is empty; expected ${expected} as JSON`);
  try {
    return JSON.parse(req.rawBody) as unknown;
  } catch (err) {
    throw bodyError(`the body is not JSON: ${(err as Error).message}`);
  }
}

/** A header's value when it was sent exactly once; a repeated header is ambiguous and counts as absent. */
export function singleHeader(headers: WebhookRequest['headers'], name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** True for a plain JSON object. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What kind of JSON value this is, for messages that must not echo it. */
export function describeJson(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A received value fit for an error message: cut to `max` characters, control characters escaped. */
export function clip(value: string, max = 120): string {
  const shown = value.length > max ? `${value.slice(0, max - 3)}...` : value;
  return shown.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A refusal for missing or wrong credentials (401). */
export function unauthorized(message: string): VmsError {
  return new VmsError('VMS_ERR_WEBHOOK_UNAUTHORIZED', message);
}

/** A refusal for a malformed body (400). */
export function bodyError(message: string): VmsError {
  return new VmsError('VMS_ERR_WEBHOOK_BODY', message);
}

/** How long past its expiry a webhook bearer token is accepted unless server.tokenClockSkew says otherwise. */
export const DEFAULT_TOKEN_CLOCK_SKEW_MS = 60_000;
