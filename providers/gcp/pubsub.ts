// Pub/Sub push deliveries for `/webhooks/gcp`: Cloud Asset Inventory feed messages about Compute
// instances and Cloud Audit Log entries routed by a log sink become instance references to describe
// again now instead of at the next resync. The receiver never calls Compute; a message only says
// which instance to look at, never what it looks like.
//
// What is refused and what is acknowledged: a request that is not a Pub/Sub push envelope at all
// (no `message` object, no `subscription`) comes from a sender or subscription set up wrongly and is
// answered 400 (VMS_ERR_WEBHOOK_BODY), which shows in metrics and logs. A well-formed envelope whose
// message can never be used (no data, data that is not base64 or not JSON, a payload of another
// shape, another asset type or method, a project outside the block) is acknowledged with the reason
// (200), because Pub/Sub would otherwise redeliver it until it expires and no retry can fix it.
import { OAuth2Client } from 'google-auth-library';
import { VmsError } from '../../services/errors.ts';
import type { InstanceRef } from '../../services/model.ts';
import type { WebhookCredentials, WebhookOutcome, WebhookReceiver, WebhookRequest } from '../provider.ts';
import { bodyError, clip, DEFAULT_TOKEN_CLOCK_SKEW_MS, describeJson, isObject, parseBody, unauthorized } from '../webhook-support.ts';
import { GCP_PROJECT_ID, type GcpProviderConfig, type GcpWebhookConfig } from './config.ts';
import { NUMERIC_ID, RESOURCE_NAME, regionOfZone, ZONE_NAME } from './instance.ts';

/** The Cloud Asset Inventory type of a Compute Engine instance, as a feed must select it. */
export const ASSET_TYPE = 'compute.googleapis.com/Instance';

/**
 * The audit-log methods (`compute.instances.<verb>`, with or without the `v1.`/`beta.` prefix) that
 * change what mapping reads: existence, status, labels, network tags, addresses and name, plus the
 * system events that stop or restart a VM. Other methods (setMetadata, attachDisk, …) are ignored.
 */
export const AUDIT_METHODS: readonly string[] = [
  'insert',
  'delete',
  'start',
  'startWithEncryptionKey',
  'stop',
  'suspend',
  'resume',
  'reset',
  'setLabels',
  'setTags',
  'setName',
  'update',
  'updateNetworkInterface',
  'addNetworkInterface',
  'deleteNetworkInterface',
  'addAccessConfig',
  'deleteAccessConfig',
  'updateAccessConfig',
  'preempted',
  'hostError',
  'automaticRestart',
  'guestTerminate',
  'terminateOnHostMaintenance',
];

/** The text the first message of every Cloud Asset Inventory feed starts with. */
export const FEED_WELCOME_PREFIX = 'You have successfully configured real time feed';

/** The issuers Google puts into ID tokens. */
export const GOOGLE_ISSUERS: readonly string[] = ['https://accounts.google.com', 'accounts.google.com'];

/** What the receiver needs to know about its provider block. */
export interface PubSubPushReceiverOptions {
  /** The block name, for messages. */
  name: string;
  projects: readonly string[];
  /** Absent: every request is refused (a webhook without authentication would accept anyone). */
  webhook: GcpWebhookConfig | undefined;
  /** Verifies tokens; absent: one fetching Google's certificates from `webhook.certsUrl`. */
  oauth2Client?: OAuth2Client;
  /** How long past its expiry (or before its issue time) a token is still accepted; default 60 s, at most Google's 300 s. */
  clockSkewMs?: number;
  /** The clock tokens are checked against; the system's by default. */
  now?: () => number;
}

type MessageResult = { kind: 'ref'; ref: InstanceRef } | { kind: 'ignored'; reason: string };

const METHOD = /^(?:(?:v1|beta|alpha)\.)?compute\.instances\.([A-Za-z]+)$/;
const ASSET_NAME = /^\/\/compute\.googleapis\.com\/projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)$/;
const RESOURCE_PATH = /^projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2,3})?$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** The Pub/Sub push receiver of one GCP provider block. */
export class PubSubPushReceiver implements WebhookReceiver {
  readonly #name: string;
  readonly #projects: ReadonlySet<string>;
  readonly #webhook: GcpWebhookConfig | undefined;
  readonly #verifier: OAuth2Client | undefined;
  readonly #skewSeconds: number;
  readonly #now: () => number;

  constructor(options: PubSubPushReceiverOptions) {
    this.#name = options.name;
    this.#skewSeconds = Math.floor((options.clockSkewMs ?? DEFAULT_TOKEN_CLOCK_SKEW_MS) / 1000);
    this.#now = options.now ?? Date.now;
    this.#projects = new Set(options.projects);
    this.#webhook = options.webhook;
    // One client per block: it caches Google's certificates for as long as Google's max-age says.
    this.#verifier =
      options.oauth2Client ?? (options.webhook === undefined ? undefined : new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: options.webhook.certsUrl } }));
  }

  /**
   * Accepts a push request whose `Authorization: Bearer` token is a Google-signed ID token (RS256,
   * issuer accounts.google.com) for the configured audience, issued to the configured service
   * account with a verified email. Throws VMS_ERR_WEBHOOK_UNAUTHORIZED otherwise, and
   * VMS_ERR_WEBHOOK_KEYS_UNAVAILABLE when Google's certificates cannot be fetched.
   */
  async authenticate(req: WebhookCredentials): Promise<void> {
    const config = this.#webhook;
    const verifier = this.#verifier;
    if (!config || !verifier) {
      throw unauthorized(`gcp provider "${this.#name}" has no webhook configured (webhook.audience and webhook.serviceAccountEmail), so every request is refused`);
    }
    const header = req.headers.authorization;
    if (header === undefined) throw unauthorized('missing credentials: expected an Authorization: Bearer token, as a push subscription with authentication sends');
    // A repeated header is ambiguous; refusing it is safer than guessing which copy counts.
    if (typeof header !== 'string') throw unauthorized('more than one Authorization header');
    const match = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(header);
    if (!match) throw unauthorized('the Authorization header is not a Bearer token');
    const token = match[1]!;
    const head = jwtHeader(token);
    if (head === undefined) throw unauthorized('the bearer token is not a JWT');
    if (head.alg !== 'RS256' || typeof head.kid !== 'string') {
      throw unauthorized(`the bearer token is not signed the way Google signs ID tokens (alg ${quoteValue(head.alg)}, expected RS256 with a key id)`);
    }

    let payload: Record<string, unknown> | undefined;
    try {
      const ticket = await verifier.verifyIdToken({ idToken: token, audience: config.audience });
      payload = ticket.getPayload() as Record<string, unknown> | undefined;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message.startsWith('Failed to retrieve verification certificates')) {
        throw new VmsError('VMS_ERR_WEBHOOK_KEYS_UNAVAILABLE', `Google's token certificates cannot be fetched from ${config.certsUrl}: ${message.slice(message.indexOf(':') + 1).trim()}`, undefined, {
          cause: err,
        });
      }
      throw unauthorized(verifyFailure(message));
    }
    if (!payload) throw unauthorized('the token has no payload');
    // google-auth-library allows 300 s of clock skew; the configured skew is checked here on top.
    const now = Math.floor(this.#now() / 1000);
    if (typeof payload.exp === 'number' && now > payload.exp + this.#skewSeconds) {
      throw unauthorized(`the token has expired: it expired ${now - payload.exp} s ago, more than the ${this.#skewSeconds} s of clock skew allowed (server.tokenClockSkew)`);
    }
    if (typeof payload.iat === 'number' && payload.iat - this.#skewSeconds > now) {
      throw unauthorized(`the token was issued ${payload.iat - now} s in the future, more than the ${this.#skewSeconds} s of clock skew allowed (server.tokenClockSkew)`);
    }
    if (!GOOGLE_ISSUERS.includes(String(payload.iss))) throw unauthorized(`the token was not issued by Google (iss ${quoteValue(payload.iss)})`);
    const email = typeof payload.email === 'string' ? payload.email.toLowerCase() : undefined;
    if (email === undefined) throw unauthorized('the token carries no email claim; set --push-auth-service-account on the push subscription');
    if (email !== config.serviceAccountEmail) {
      throw unauthorized(`the token was issued to ${quoteValue(payload.email)}, not to webhook.serviceAccountEmail of gcp provider "${this.#name}"`);
    }
    if (payload.email_verified !== true) throw unauthorized('the token says its email is not verified');
  }

  /** Turns one push delivery into references, or acknowledges it with a reason; throws VMS_ERR_WEBHOOK_BODY for a body that is not a push envelope. */
  handle(req: WebhookRequest): WebhookOutcome {
    const body = parseBody(req, 'a Pub/Sub push envelope');
    if (!isObject(body)) throw bodyError(`the body must be a Pub/Sub push envelope (a JSON object with "message" and "subscription"), not ${describeJson(body)}`);
    const message = field(body, 'message');
    if (!isObject(message)) {
      const unwrapped = field(body, 'asset') !== undefined || field(body, 'protoPayload') !== undefined || field(body, 'logName') !== undefined;
      throw bodyError(
        unwrapped
          ? 'the body is a bare asset or log entry: the push subscription delivers unwrapped payloads; turn payload unwrapping off (no --push-no-wrapper)'
          : `the body has no "message" object, so it is not a Pub/Sub push envelope (message is ${describeJson(message)})`,
      );
    }
    if (typeof field(body, 'subscription') !== 'string') throw bodyError(`the push envelope has no "subscription" string (it is ${describeJson(field(body, 'subscription'))})`);

    const id = field(message, 'messageId') ?? field(message, 'message_id');
    const label = typeof id === 'string' && id !== '' ? `message ${clip(id)}` : 'the message';
    const result = this.#readMessage(message);
    if (result.kind === 'ignored') return { kind: 'ignored', reason: `${label}: ${result.reason}` };
    return { kind: 'refresh', refs: [result.ref], ignored: 0 };
  }

  #readMessage(message: Record<string, unknown>): MessageResult {
    const data = field(message, 'data');
    if (data === undefined || data === '') return ignored('it has no data');
    if (typeof data !== 'string') return ignored(`its data is ${describeJson(data)}, not a base64 string`);
    const compact = data.replace(/\s+/g, '');
    if (!BASE64.test(compact) && !BASE64URL.test(compact)) return ignored('its data is not base64');
    const text = Buffer.from(compact, BASE64.test(compact) ? 'base64' : 'base64url').toString('utf8');
    if (text.startsWith(FEED_WELCOME_PREFIX)) return ignored('the welcome message of a Cloud Asset Inventory feed');
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      return ignored('its data is not JSON');
    }
    if (typeof payload === 'string' && payload.startsWith(FEED_WELCOME_PREFIX)) return ignored('the welcome message of a Cloud Asset Inventory feed');
    if (!isObject(payload)) return ignored(`its data is ${describeJson(payload)}, not an asset feed message or a log entry`);
    if (isObject(field(payload, 'asset')) || isObject(field(payload, 'priorAsset'))) return this.#readAsset(payload);
    if (isObject(field(payload, 'protoPayload'))) return this.#readLogEntry(payload);
    return ignored('its data is neither a Cloud Asset Inventory feed message (asset) nor an audit log entry (protoPayload)');
  }

  // A TemporalAsset: `asset` (absent or bare on deletion), `priorAsset`, `deleted`.
  #readAsset(temporal: Record<string, unknown>): MessageResult {
    const asset = objectOr(field(temporal, 'asset'));
    const prior = objectOr(field(temporal, 'priorAsset'));
    const assetType = field(asset, 'assetType') ?? field(prior, 'assetType');
    if (assetType !== ASSET_TYPE) return ignored(`an asset of type ${quoteValue(assetType)}, not ${ASSET_TYPE}`);
    const name = field(asset, 'name') ?? field(prior, 'name');
    const parts = typeof name === 'string' ? ASSET_NAME.exec(name) : null;
    if (!parts) return ignored(`asset name ${quoteValue(name)} is not //compute.googleapis.com/projects/<project>/zones/<zone>/instances/<instance>`);
    const [, project, zone, instance] = parts as unknown as [string, string, string, string];
    // The numeric id names the entry; the asset name may only carry the instance name.
    const numericId = [asset, prior].map((a) => field(objectOr(field(objectOr(field(a, 'resource')), 'data')), 'id')).find(isNumericId);
    return this.#ref(project, zone, numericId === undefined ? instance : String(numericId), 'asset');
  }

  // A LogEntry of a Cloud Audit Log routed by a log sink.
  #readLogEntry(entry: Record<string, unknown>): MessageResult {
    const proto = objectOr(field(entry, 'protoPayload'));
    const service = field(proto, 'serviceName');
    if (service !== undefined && service !== 'compute.googleapis.com') return ignored(`an audit log entry of ${quoteValue(service)}, not compute.googleapis.com`);
    const method = field(proto, 'methodName');
    const verb = typeof method === 'string' ? METHOD.exec(method)?.[1] : undefined;
    if (verb === undefined) return ignored(`audit log method ${quoteValue(method)} is not a Compute instance method`);
    if (!AUDIT_METHODS.includes(verb)) return ignored(`audit log method ${quoteValue(method)} does not change what vm-mesh-sync reads`);
    const resource = objectOr(field(entry, 'resource'));
    const type = field(resource, 'type');
    if (type !== undefined && type !== 'gce_instance') return ignored(`an audit log entry about a ${quoteValue(type)}, not a gce_instance`);
    const labels = objectOr(field(resource, 'labels'));
    const path = field(proto, 'resourceName');
    const parts = typeof path === 'string' ? RESOURCE_PATH.exec(path) : null;
    const project = stringOr(field(labels, 'project_id')) ?? parts?.[1];
    const zone = stringOr(field(labels, 'zone')) ?? parts?.[2];
    const numericId = [field(labels, 'instance_id')].find(isNumericId);
    const instance = numericId === undefined ? parts?.[3] : String(numericId);
    if (project === undefined || zone === undefined || instance === undefined) {
      return ignored(`audit log entry for ${quoteValue(method)} names no instance (resource.labels and protoPayload.resourceName ${quoteValue(path)})`);
    }
    return this.#ref(project, zone, instance, 'audit log entry');
  }

  #ref(project: string, zone: string, id: string, what: string): MessageResult {
    if (!GCP_PROJECT_ID.test(project)) return ignored(`${what} names project ${quoteValue(project)}, which is not a project id`);
    if (!this.#projects.has(project)) return ignored(`project ${project} is not a project of gcp provider "${this.#name}"`);
    const region = ZONE_NAME.test(zone) ? regionOfZone(zone) : undefined;
    if (region === undefined) return ignored(`${what} names zone ${quoteValue(zone)}, which is not a zone`);
    if (!NUMERIC_ID.test(id) && !RESOURCE_NAME.test(id)) return ignored(`${what} names instance ${quoteValue(id)}, which is neither an instance name nor a numeric id`);
    return { kind: 'ref', ref: { provider: 'gcp', account: project, region, zone, id } };
  }
}

// The JOSE header, decoded without trusting it: only to refuse what Google never sends.
function jwtHeader(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !BASE64URL.test(parts[0]!)) return undefined;
  try {
    const header: unknown = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
    return isObject(header) ? header : undefined;
  } catch {
    return undefined;
  }
}

// google-auth-library's messages quote the whole token; these say what failed without it.
function verifyFailure(message: string): string {
  const known: Array<[RegExp, string]> = [
    [/^(Wrong number of segments|Can't parse token)/, 'the bearer token is not a JWT'],
    [/^No pem found/, 'the token is signed with a key Google does not publish (unknown key id)'],
    [/^Invalid token signature/, 'the token signature does not verify'],
    [/^(No issue time|No expiration time|iat field|exp field)/, 'the token has no valid iat and exp'],
    [/^Expiration time too far in future/, 'the token expires too far in the future'],
    [/^Token used too early/, 'the token is not valid yet'],
    [/^Token used too late/, 'the token has expired'],
    [/^Invalid issuer/, 'the token was not issued by Google (issuer is not accounts.google.com)'],
    [/^Wrong recipient/, 'the token audience is not webhook.audience (the push subscription sets it with --push-auth-token-audience)'],
  ];
  return known.find(([pattern]) => pattern.test(message))?.[1] ?? 'the token cannot be verified';
}

function isNumericId(value: unknown): boolean {
  return (typeof value === 'string' && NUMERIC_ID.test(value)) || (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0);
}

function objectOr(value: unknown): Record<string, unknown> {
  return isObject(value) ? value : {};
}

function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

// Own properties only: a key like `constructor` must not reach Object.prototype.
function field(object: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

function ignored(reason: string): MessageResult {
  return { kind: 'ignored', reason };
}

function quoteValue(value: unknown): string {
  return typeof value === 'string' ? `'${clip(value)}'` : describeJson(value);
}

/** The receiver of a `type: gcp` block, from its config (and, in tests, a token verifier). */
export function pubSubReceiverOf(config: GcpProviderConfig, options: { oauth2Client?: OAuth2Client; clockSkewMs?: number } = {}): PubSubPushReceiver {
  return new PubSubPushReceiver({
    name: config.name,
    projects: config.projects,
    webhook: config.webhook,
    ...options,
  });
}
