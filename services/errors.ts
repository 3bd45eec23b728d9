// One catalogue of the failures a user can see, each with a stable code to search for and a hint
// that says what to do. Codes never change meaning; new failures get new codes.

/** Every error code vm-mesh-sync reports, with the sentence that says what to do about it. */
export const ERROR_CODES = {
  // Configuration (exit code 2)
  VMS_ERR_CONFIG_NOT_FOUND: 'the config file does not exist or cannot be read; pass --config or set VMS_CONFIG',
  VMS_ERR_CONFIG_PARSE: 'the config file is not valid YAML or JSON; fix the syntax at the position shown',
  VMS_ERR_CONFIG_INVALID: 'a config key has a wrong value or is unknown; fix the key path shown',
  VMS_ERR_CONFIG_ENV: 'an environment variable has a wrong value; fix the variable named',

  // Inventories and cloud answers (reported, the rest still syncs)
  VMS_ERR_INVENTORY_NOT_FOUND: 'the inventory file does not exist or cannot be read; check the path in the static provider block',
  VMS_ERR_INVENTORY_PARSE: 'the inventory file is not valid YAML or JSON, or not a list of machines; fix it at the position shown',
  VMS_ERR_INVENTORY_ENTRY: 'one machine in the inventory is malformed; it is skipped and the others still sync',
  VMS_ERR_PROVIDER_FAILED: 'the provider could not list a scope; nothing in that scope is deleted until it can',
  VMS_ERR_PROVIDER_ANSWER: 'the cloud API answered with something unexpected; the instance is skipped',
  VMS_ERR_ACCOUNT_MISMATCH: "the cloud answered for another account than the scope's (AWS account, GCP project, Azure subscription); fix the account id or roleArn, or the project, subscription or endpoint; nothing in that scope is changed until they match",

  // Cluster writes
  VMS_ERR_KUBE_REJECTED: 'the Kubernetes API rejected the object; the server reason says which field',
  VMS_ERR_KUBE_NAMESPACE_MISSING: 'the target namespace does not exist; create it or change the namespace tag/default',
  VMS_ERR_KUBE_FORBIDDEN: 'the service account lacks a permission; apply the ClusterRole in deploy/',
  VMS_ERR_KUBE_UNAUTHORIZED: 'the Kubernetes API rejected the credentials; check the kubeconfig user or the in-cluster service account token',
  VMS_ERR_KUBE_TRANSIENT: 'the Kubernetes API failed in a way that is retried (429, 5xx, conflict, network)',
  VMS_ERR_KUBE_UNREACHABLE: 'the Kubernetes API cannot be reached; check the kubeconfig or in-cluster service account',
  VMS_ERR_NOT_OWNED: 'the entry exists but is not ours (missing or foreign owner label); it is left alone',
  VMS_ERR_ENTRY_CONFLICT: 'two scopes (provider blocks) list an instance with the same entry name; the scope that wrote it first keeps it; list the instance in one block only',
  VMS_ERR_NAMESPACE_NOT_ALLOWED: 'a create or update names a namespace outside mapping.namespace.allowed; nothing is written there',

  VMS_ERR_PORT_IN_USE: 'another process listens on server.port or server.adminPort; stop it or choose other ports (VMS_PORT, VMS_ADMIN_PORT)',

  // Queue
  VMS_ERR_REDIS_UNREACHABLE: 'Redis cannot be reached; check REDIS_URL and that Redis is running',

  // Webhooks
  VMS_ERR_WEBHOOK_UNAUTHORIZED: 'the webhook request has missing or wrong credentials',
  VMS_ERR_WEBHOOK_RATE_LIMITED: 'this client sent more webhook requests than server.rateLimit allows; retry after the Retry-After header',
  VMS_ERR_WEBHOOK_BODY: 'the webhook body is malformed; the reason says which part',
  VMS_ERR_WEBHOOK_TOO_LARGE: 'the webhook body exceeds the size limit',
  VMS_ERR_WEBHOOK_UNKNOWN_PROVIDER: 'no webhook receiver is configured for this provider',
  VMS_ERR_WEBHOOK_KEYS_UNAVAILABLE:
    'the public keys that verify webhook tokens cannot be fetched; check egress to the certificate URL (gcp webhook.certsUrl); the delivery is answered 500 so the sender retries it',

  // HTTP server
  VMS_ERR_HTTP_REQUEST: 'the HTTP request matches no route or is malformed; the server answers GET /healthz, /readyz, /metrics, /status and POST /webhooks/<provider>',
  VMS_ERR_SHUTTING_DOWN: 'this replica is shutting down; retry the request, another replica takes it',
  VMS_ERR_INTERNAL: 'an unexpected failure inside vm-mesh-sync; the log line with the same request id has the details',

  // Commands
  VMS_ERR_USAGE: 'the command line is wrong; run vm-mesh-sync --help',
  VMS_ERR_SYNC_FAILED: 'some changes or scopes failed during sync; the list says which',
} as const;

/** A stable error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** An error a user sees: a stable code, a specific message, and the catalogue's hint. */
export class VmsError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VmsError';
    this.code = code;
    this.details = details;
  }

  /** What to do about it, from the catalogue. */
  get hint(): string {
    return ERROR_CODES[this.code];
  }

  /** `CODE: message (hint)`, the one-line form for terminals. */
  toLine(): string {
    return `${this.code}: ${this.message}`;
  }
}

/** True when `err` is a VmsError with one of the given codes (any code when none given). */
export function isVmsError(err: unknown, ...codes: ErrorCode[]): err is VmsError {
  return err instanceof VmsError && (codes.length === 0 || codes.includes(err.code));
}
