// Error bodies of the fake API server, shaped and worded as kube-apiserver sends them, so that
// client code parsing `ApiException.body` sees what it would see against a real cluster.

/** One entry of `details.causes` (Go's metav1.StatusCause; `reason` is its CauseType). */
export interface StatusCause {
  reason?: string;
  message: string;
  field?: string;
}

/** `details` of a Status; keys in the order the real server serialises them. */
export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

/** A `meta/v1 Status` body. */
export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** A group and resource (plural), as the server names objects in NotFound/AlreadyExists/Conflict messages. */
export interface GroupResource {
  group: string;
  resource: string;
}

/** A group and kind, as the server names objects in Invalid messages. */
export interface GroupKind {
  group: string;
  kind: string;
}

/** A failure a handler throws; the server turns it into an HTTP answer with this Status body. */
export class ApiError extends Error {
  readonly body: StatusBody;
  readonly headers: Record<string, string>;

  constructor(body: StatusBody, headers: Record<string, string> = {}) {
    super(body.message ?? body.reason ?? `HTTP ${body.code}`);
    this.name = 'ApiError';
    this.body = body;
    this.headers = headers;
  }

  /** The HTTP status code. */
  get code(): number {
    return this.body.code;
  }
}

/** `workloadentries.networking.istio.io`, or `serviceaccounts` for the core group. */
export function qualifiedResource(gr: GroupResource): string {
  return gr.group ? `${gr.resource}.${gr.group}` : gr.resource;
}

/** `WorkloadEntry.networking.istio.io`, or `ServiceAccount` for the core group. */
export function qualifiedKind(gk: GroupKind): string {
  return gk.group ? `${gk.kind}.${gk.group}` : gk.kind;
}

/** Builds a Failure body; `details` is left out when empty, as Go's omitempty does. */
export function failure(code: number, reason: string | undefined, message: string, details?: StatusDetails): StatusBody {
  const body: StatusBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, code };
  if (reason) body.reason = reason;
  if (details) body.details = details;
  // Keep `code` last, as the real server does.
  const { code: c, ...rest } = body;
  return { ...rest, code: c };
}

function gvDetails(gr: GroupResource, name: string, kind: string): StatusDetails {
  const d: StatusDetails = { name };
  if (gr.group) d.group = gr.group;
  d.kind = kind;
  return d;
}

/** 404: `workloadentries.networking.istio.io "x" not found`. */
export function notFound(gr: GroupResource, name: string): ApiError {
  return new ApiError(
    failure(404, 'NotFound', `${qualifiedResource(gr)} "${name}" not found`, gvDetails(gr, name, gr.resource)),
  );
}

/** 409: `... "x" already exists`. */
export function alreadyExists(gr: GroupResource, name: string): ApiError {
  return new ApiError(
    failure(409, 'AlreadyExists', `${qualifiedResource(gr)} "${name}" already exists`, gvDetails(gr, name, gr.resource)),
  );
}

/** The optimistic-lock sentence the real server uses for a stale resourceVersion. */
export const OPTIMISTIC_LOCK_MESSAGE =
  'the object has been modified; please apply your changes to the latest version and try again';

/** 409: `Operation cannot be fulfilled on ... "x": <why>`. */
export function conflict(gr: GroupResource, name: string, why: string = OPTIMISTIC_LOCK_MESSAGE, causes?: StatusCause[]): ApiError {
  const details = gvDetails(gr, name, gr.resource);
  if (causes) details.causes = causes;
  return new ApiError(
    failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(gr)} "${name}": ${why}`, details),
  );
}

/** One validation failure: the field path and the body of the message (`Invalid value: 0: ...`). */
export interface FieldError {
  reason: string;
  field: string;
  /** Message without the field, e.g. `Invalid value: "integer": port must be between 1-65535`. */
  body: string;
}

/** `field: body`, the form used when errors are joined into one message. */
export function fieldErrorString(e: FieldError): string {
  return e.field ? `${e.field}: ${e.body}` : e.body;
}

/** 422: `WorkloadEntry.networking.istio.io "x" is invalid: [...]` with one cause per field error. */
export function invalid(gk: GroupKind, name: string, errors: FieldError[]): ApiError {
  const causes = errors.map((e) => ({ reason: e.reason, message: e.body, field: e.field }));
  // Go's aggregate drops duplicate messages and brackets a list of more than one.
  const parts = [...new Set(errors.map(fieldErrorString))];
  const joined = parts.length === 1 ? parts[0]! : `[${parts.join(', ')}]`;
  const details: StatusDetails = { name };
  if (gk.group) details.group = gk.group;
  details.kind = gk.kind;
  details.causes = causes;
  const message = parts.length === 0 ? `${qualifiedKind(gk)} "${name}" is invalid` : `${qualifiedKind(gk)} "${name}" is invalid: ${joined}`;
  return new ApiError(failure(422, 'Invalid', message, details));
}

/** 400 BadRequest with a plain message. */
export function badRequest(message: string): ApiError {
  return new ApiError(failure(400, 'BadRequest', message));
}

/** 429 TooManyRequests with Retry-After, as API Priority and Fairness answers. */
export function tooManyRequests(retryAfterSeconds: number, message = 'Too many requests, please try again later.'): ApiError {
  return new ApiError(failure(429, 'TooManyRequests', message, { retryAfterSeconds }), {
    'Retry-After': String(retryAfterSeconds),
  });
}

/** 500 InternalError: `Internal error occurred: <message>`. */
export function internalError(message: string): ApiError {
  return new ApiError(
    failure(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] }),
  );
}

/** 503 ServiceUnavailable. */
export function serviceUnavailable(message = 'the server is currently unable to handle the request', retryAfterSeconds?: number): ApiError {
  const headers: Record<string, string> = {};
  if (retryAfterSeconds !== undefined) headers['Retry-After'] = String(retryAfterSeconds);
  return new ApiError(
    failure(503, 'ServiceUnavailable', message, retryAfterSeconds !== undefined ? { retryAfterSeconds } : undefined),
    headers,
  );
}

/** 504 Timeout. */
export function timeout(message = 'the server was unable to return a response in the time allotted, but may still be processing the request'): ApiError {
  return new ApiError(failure(504, 'Timeout', message, {}));
}

/** 410 Expired, sent for a continue token whose snapshot is gone or a watch from a compacted resourceVersion. */
export function expired(message: string): ApiError {
  return new ApiError(failure(410, 'Expired', message));
}

/** 404 for a path the server does not serve. */
export function pathNotFound(): ApiError {
  return new ApiError(failure(404, 'NotFound', 'the server could not find the requested resource', {}));
}

/** 405 for a verb the resource does not support at that path. */
export function methodNotAllowed(): ApiError {
  return new ApiError(failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {}));
}

/** 415 for a PATCH content type the resource does not accept. */
export function unsupportedMediaType(accepted: string[]): ApiError {
  return new ApiError(
    failure(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
      {},
    ),
  );
}

/** 401 when a bearer token is required and missing or wrong. */
export function unauthorized(): ApiError {
  return new ApiError(failure(401, 'Unauthorized', 'Unauthorized'));
}

/** 413 for a body over the server's request size limit. */
export function tooLarge(limit: number): ApiError {
  return new ApiError(failure(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limit}`));
}

/** Formats a value in a field error the way Go's `%#v`-like field.Error does for JSON values. */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null || value === undefined) return 'null';
  return JSON.stringify(value);
}
