// Every error the HTTP surface answers is `{ code, message, hint }` from the catalogue, so a cloud
// operator reading a failed delivery has a code to search for, and never a stack.
import { ERROR_CODES, type ErrorCode, VmsError } from '../errors.ts';

/** The JSON body of every error answer. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  hint: string;
}

/** An error answer: the status and the body. */
export interface ErrorAnswer {
  status: number;
  body: ErrorBody;
}

/** What the mapping needs to know about the request that failed. */
export interface ErrorContext {
  /** True on /webhooks/<provider>: malformed requests there are webhook body errors. */
  webhook: boolean;
  bodyLimit: number;
  requestId: string;
  contentType: string | undefined;
}

/** The status of each code that an answer may carry; a VmsError with another code is unexpected here. */
const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  VMS_ERR_WEBHOOK_UNAUTHORIZED: 401,
  VMS_ERR_WEBHOOK_RATE_LIMITED: 429,
  VMS_ERR_WEBHOOK_BODY: 400,
  VMS_ERR_WEBHOOK_TOO_LARGE: 413,
  VMS_ERR_WEBHOOK_UNKNOWN_PROVIDER: 404,
  VMS_ERR_HTTP_REQUEST: 400,
  // 503 makes the cloud retry the delivery later or on another replica.
  VMS_ERR_REDIS_UNREACHABLE: 503,
  VMS_ERR_SHUTTING_DOWN: 503,
  // 500 makes the sender retry a delivery whose token could not be checked yet (the catalogue's promise).
  VMS_ERR_WEBHOOK_KEYS_UNAVAILABLE: 500,
  VMS_ERR_INTERNAL: 500,
};

/** The media types a webhook body may have. */
export const WEBHOOK_CONTENT_TYPES: readonly string[] = [
  'application/json',
  'application/cloudevents+json',
  'application/cloudevents-batch+json',
  'text/plain',
];

/** The body of an error answer with the catalogue's hint. */
export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { code, message, hint: ERROR_CODES[code] };
}

/** Turns anything thrown while handling a request into the answer the client gets. */
export function toErrorAnswer(err: unknown, context: ErrorContext): ErrorAnswer {
  if (err instanceof VmsError) {
    const status = STATUS_BY_CODE[err.code];
    if (status !== undefined) return { status, body: errorBody(err.code, err.message) };
    return internal(context);
  }
  const fastifyCode = frameworkCode(err);
  const status = statusOf(err);
  const requestCode: ErrorCode = context.webhook ? 'VMS_ERR_WEBHOOK_BODY' : 'VMS_ERR_HTTP_REQUEST';
  if (fastifyCode === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 413, body: errorBody('VMS_ERR_WEBHOOK_TOO_LARGE', `the body is larger than the limit of ${context.bodyLimit} bytes (server.bodyLimit)`) };
  }
  if (fastifyCode === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    const given = context.contentType === undefined ? 'no content type' : `content type '${clip(context.contentType)}'`;
    return { status: 415, body: errorBody(requestCode, `${given} is not accepted; send one of ${WEBHOOK_CONTENT_TYPES.join(', ')}`) };
  }
  // Fastify's own 4xx errors (a Content-Length that does not match the body, …) carry safe messages.
  if (fastifyCode !== undefined && status !== undefined && status >= 400 && status < 500) {
    return { status, body: errorBody(requestCode, (err as Error).message) };
  }
  return internal(context);
}

function internal(context: ErrorContext): ErrorAnswer {
  return { status: 500, body: errorBody('VMS_ERR_INTERNAL', `the request failed unexpectedly (request id ${context.requestId})`) };
}

function frameworkCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('FST_') ? code : undefined;
}

function statusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const status = (err as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Caps echoed request text, so an answer never grows with what the client sent. */
export function clip(text: string, max = 64): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
