// Events of an Event Grid system topic on a subscription (Azure Resource Manager events), delivered to
// /webhooks/azure in the Event Grid schema or as CloudEvents 1.0: a VM written (created, tags or
// settings changed), deleted, or started, stopped, deallocated or restarted becomes a reference to
// describe again now instead of at the next resync. The receiver never calls Azure: an event only
// says which VM to look at, never what it looks like. It also answers both handshakes Event Grid
// uses to confirm an endpoint: the subscription validation event and the CloudEvents OPTIONS request.
import { SecretReader } from '../../config/secret.ts';
import type { InstanceRef } from '../../services/model.ts';
import type { WebhookCredentials, WebhookOutcome, WebhookReceiver, WebhookRequest } from '../provider.ts';
import { bodyError, clip, constantTimeEqual, DEFAULT_TOKEN_CLOCK_SKEW_MS, describeJson, isObject, parseBody, singleHeader, unauthorized } from '../webhook-support.ts';
import type { AzureProviderConfig, AzureWebhookConfig } from './config.ts';
import { parseResourceId, parseVmResourceId } from './resource-id.ts';

/** The event types acted on, as the event subscription must include them (deploy/azure/event-subscription.json). */
export const EVENT_TYPES = {
  write: 'Microsoft.Resources.ResourceWriteSuccess',
  delete: 'Microsoft.Resources.ResourceDeleteSuccess',
  action: 'Microsoft.Resources.ResourceActionSuccess',
} as const;

/** The event Event Grid sends to a new webhook subscription; the answer echoes its validation code. */
export const VALIDATION_EVENT = 'Microsoft.EventGrid.SubscriptionValidationEvent';

/**
 * VM actions that change what an entry says (running or not). Others (run command, extension and
 * key operations) are ignored; the resync sees anything they change.
 */
export const POWER_ACTIONS: readonly string[] = ['start', 'deallocate', 'powerOff', 'restart', 'redeploy', 'reimage', 'reapply', 'performMaintenance', 'simulateEviction'];

/** Event Grid's own client id, the `azp`/`appid` of the tokens it sends with Entra authentication. */
export const EVENT_GRID_CLIENT_ID = '4962773b-9cdb-44cf-a8bf-237846a00ab7';

/** What the receiver needs to know about its provider block. */
export interface EventGridReceiverOptions {
  /** The block name, for messages. */
  name: string;
  /** Lowercased subscription ids. */
  subscriptions: readonly string[];
  /** Absent: every request is refused (a webhook without credentials would accept anyone). */
  webhook: AzureWebhookConfig | undefined;
  /** Where secret references are looked up. */
  env?: NodeJS.ProcessEnv;
  /** The clock token lifetimes are checked against. */
  now?: () => Date;
  /** How long past its expiry (or before its start) an Entra token is still accepted; default 60 s. */
  clockSkewMs?: number;
  /** How secret files are re-read (tests set the clock). */
  secretFiles?: { maxAgeMs?: number; now?: () => number };
}

type EventResult = { kind: 'refs'; refs: InstanceRef[] } | { kind: 'ignored'; reason: string } | { kind: 'validate'; code: string };

// A malformed event; the message says which part.
class Malformed extends Error {}

// jose errors that mean "this token is not acceptable", as opposed to "the keys cannot be fetched".
const TOKEN_REFUSED = new Set([
  'ERR_JWT_EXPIRED',
  'ERR_JWT_CLAIM_VALIDATION_FAILED',
  'ERR_JWT_INVALID',
  'ERR_JWS_INVALID',
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWKS_MULTIPLE_MATCHING_KEYS',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
]);

const ACTION_OPERATION = /^microsoft\.compute\/virtualmachines\/([^/]+)\/action$/i;
const POWER_ACTION_SET = new Set(POWER_ACTIONS.map((a) => a.toLowerCase()));

/** The webhook receiver of one Azure provider block. */
export class EventGridReceiver implements WebhookReceiver {
  readonly #name: string;
  readonly #subscriptions: ReadonlySet<string>;
  readonly #webhook: AzureWebhookConfig | undefined;
  readonly #secret: SecretReader | undefined;
  readonly #now: (() => Date) | undefined;
  // One key set per receiver: jose caches the keys and refetches them when an unknown key id shows up.
  #jwks: ReturnType<(typeof import('jose'))['createRemoteJWKSet']> | undefined;

  readonly #skewSeconds: number;

  constructor(options: EventGridReceiverOptions) {
    this.#name = options.name;
    this.#subscriptions = new Set(options.subscriptions.map((s) => s.toLowerCase()));
    this.#webhook = options.webhook;
    this.#secret = options.webhook?.querySecret ? new SecretReader(options.webhook.querySecret.value, options.env, options.secretFiles) : undefined;
    this.#now = options.now;
    this.#skewSeconds = Math.floor((options.clockSkewMs ?? DEFAULT_TOKEN_CLOCK_SKEW_MS) / 1000);
  }

  /**
   * Accepts the configured query secret or a Microsoft Entra bearer token (either is enough when both
   * are configured); the handshakes are authenticated the same way, as Event Grid sends them to the
   * same URL. A secret file is read again every few seconds, so a rotated Kubernetes Secret needs no restart.
   * Signing keys that cannot be fetched throw a plain Error (answered 500, so Event Grid retries).
   */
  async authenticate(req: WebhookCredentials): Promise<void> {
    const config = this.#webhook;
    if (!config) {
      throw unauthorized(`azure provider "${this.#name}" has no webhook credentials configured (webhook.querySecret or webhook.entra), so every request is refused`);
    }
    let secret: { param: string; value: string } | undefined;
    try {
      if (config.querySecret && this.#secret) secret = { param: config.querySecret.param, value: await this.#secret.read() };
    } catch (err) {
      throw unauthorized(`the webhook secret of azure provider "${this.#name}" cannot be read: ${(err as Error).message}`);
    }
    // An empty secret file would otherwise accept `?code=`.
    if (secret?.value === '') throw unauthorized(`the webhook secret of azure provider "${this.#name}" is empty`);

    let presented = false;
    let accepted = false;
    let refusal: string | undefined;
    if (secret) {
      const value = req.query[secret.param];
      if (value !== undefined) presented = true;
      accepted = constantTimeEqual(value ?? '', secret.value) && value !== undefined;
    }
    if (config.entra && !accepted) {
      const token = bearerToken(req.headers.authorization);
      if (token !== undefined) {
        presented = true;
        refusal = await this.#verifyToken(token, config.entra);
        accepted = refusal === undefined;
      }
    }
    if (accepted) return;
    const expected = [secret ? `query parameter ${secret.param}` : undefined, config.entra ? 'a Microsoft Entra bearer token' : undefined].filter(Boolean).join(' or ');
    if (!presented) throw unauthorized(`missing credentials: expected ${expected}`);
    throw unauthorized(`wrong credentials for azure provider "${this.#name}"${refusal ? `: ${refusal}` : ''}`);
  }

  /**
   * Answers the handshakes, and turns Event Grid events or CloudEvents (one, or an array) into
   * references; throws VMS_ERR_WEBHOOK_BODY naming the bad part.
   */
  handle(req: WebhookRequest): WebhookOutcome {
    if (req.method.toUpperCase() === 'OPTIONS') return this.#abuseProtectionHandshake(req);
    const body = parseBody(req, 'Event Grid events or CloudEvents');
    const events = Array.isArray(body) ? body : [body];
    if (events.length === 0) throw bodyError('the body is an empty array; expected Event Grid events or CloudEvents');
    const refs = new Map<string, InstanceRef>();
    const ignored: string[] = [];
    for (const [i, event] of events.entries()) {
      let result: EventResult;
      try {
        result = this.#readEvent(event);
      } catch (err) {
        if (!(err instanceof Malformed)) throw err;
        throw bodyError(Array.isArray(body) ? `event [${i}]: ${err.message}` : err.message);
      }
      // Event Grid sends the validation event alone; answering it is all that is asked.
      if (result.kind === 'validate') return { kind: 'reply', status: 200, body: { validationResponse: result.code } };
      if (result.kind === 'ignored') ignored.push(result.reason);
      else for (const ref of result.refs) refs.set(ref.id, ref);
    }
    if (refs.size === 0) return { kind: 'ignored', reason: [...new Set(ignored)].join('; ') };
    return { kind: 'refresh', refs: [...refs.values()], ignored: ignored.length };
  }

  // CloudEvents 1.0 webhook spec, section 4: the sender asks with OPTIONS before it delivers.
  #abuseProtectionHandshake(req: WebhookRequest): WebhookOutcome {
    const origin = singleHeader(req.headers, 'webhook-request-origin')?.trim();
    if (!origin) throw bodyError('an OPTIONS request must carry a WebHook-Request-Origin header (the CloudEvents abuse-protection handshake)');
    if (!/^[\x21-\x7e]{1,255}$/.test(origin)) throw bodyError('the WebHook-Request-Origin header is not a host name');
    const headers: Record<string, string> = { 'WebHook-Allowed-Origin': origin };
    if (this.#webhook?.allowedRate !== undefined) headers['WebHook-Allowed-Rate'] = String(this.#webhook.allowedRate);
    return { kind: 'reply', status: 200, headers };
  }

  #readEvent(event: unknown): EventResult {
    if (!isObject(event)) throw new Malformed(`an event must be a JSON object, not ${describeJson(event)}`);
    const cloudEvent = event.specversion !== undefined;
    const type = cloudEvent ? event.type : event.eventType;
    if (typeof type !== 'string' || type.trim() === '') {
      throw new Malformed(
        cloudEvent ? 'the CloudEvent has no "type" string' : 'the event has neither an "eventType" string (Event Grid schema) nor "specversion" (CloudEvents 1.0)',
      );
    }
    const data = event.data;
    if (type === VALIDATION_EVENT) {
      const code = isObject(data) ? data.validationCode : undefined;
      if (typeof code !== 'string' || code.trim() === '') throw new Malformed('the subscription validation event has no "data.validationCode" string');
      return { kind: 'validate', code };
    }
    if (type !== EVENT_TYPES.write && type !== EVENT_TYPES.delete && type !== EVENT_TYPES.action) {
      return { kind: 'ignored', reason: `"${clip(type)}" events are not acted on` };
    }
    if (!isObject(data)) throw new Malformed(`"data" of a ${type} event must be a JSON object, not ${describeJson(data)}`);
    const uri = typeof data.resourceUri === 'string' && data.resourceUri.trim() !== '' ? data.resourceUri : event.subject;
    if (typeof uri !== 'string' || uri.trim() === '') throw new Malformed(`a ${type} event must name its resource in "data.resourceUri" or "subject"`);
    if (!/^\/subscriptions\//i.test(uri.trim())) throw new Malformed(`the resource '${clip(uri)}' is not an Azure resource id (/subscriptions/…)`);

    const vm = parseVmResourceId(uri, { allowTagsExtension: true });
    if (!vm) return { kind: 'ignored', reason: `${shortType(type)} on ${resourceTypeOf(uri)}, not a virtual machine` };
    if (type === EVENT_TYPES.action) {
      const operation = typeof data.operationName === 'string' ? data.operationName.trim() : '';
      const action = ACTION_OPERATION.exec(operation)?.[1];
      if (action === undefined || !POWER_ACTION_SET.has(action.toLowerCase())) {
        return { kind: 'ignored', reason: `VM action '${clip(operation)}' does not change what an entry says` };
      }
    }
    if (!this.#subscriptions.has(vm.subscriptionId)) {
      return { kind: 'ignored', reason: `subscription ${vm.subscriptionId} is not a subscription of azure provider "${this.#name}"` };
    }
    // No region: the resource id does not say, and describe does not need it.
    return { kind: 'refs', refs: [{ provider: 'azure', account: vm.subscriptionId, id: vm.id }] };
  }

  // undefined when the token is accepted, else why not.
  async #verifyToken(token: string, entra: NonNullable<AzureWebhookConfig['entra']>): Promise<string | undefined> {
    let jose: typeof import('jose');
    try {
      // Loaded only when Entra authentication is configured.
      jose = await import('jose');
    } catch (err) {
      throw new Error(`Microsoft Entra authentication needs the jose package, which cannot be loaded: ${(err as Error).message}`, { cause: err });
    }
    const jwksUri = entra.jwksUri ?? `https://login.microsoftonline.com/${entra.tenantId}/discovery/v2.0/keys`;
    this.#jwks ??= jose.createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: 5000 });
    const keys = this.#jwks;
    try {
      const { payload } = await jose.jwtVerify(token, keys, {
        audience: entra.audience,
        // v2.0 tokens, and v1.0 tokens of app registrations that still issue them.
        issuer: [`https://login.microsoftonline.com/${entra.tenantId}/v2.0`, `https://sts.windows.net/${entra.tenantId}/`],
        algorithms: ['RS256'],
        clockTolerance: this.#skewSeconds,
        ...(this.#now === undefined ? {} : { currentDate: this.#now() }),
      });
      if (entra.clientIds.length > 0) {
        const client = typeof payload.azp === 'string' ? payload.azp : typeof payload.appid === 'string' ? payload.appid : undefined;
        if (client === undefined || !entra.clientIds.includes(client.toLowerCase())) {
          return `the token was issued to client ${client ?? '(none)'}, which is not in webhook.entra.clientIds`;
        }
      }
      return undefined;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && TOKEN_REFUSED.has(code)) return `the bearer token is refused: ${(err as Error).message}`;
      // The keys could not be read: not the caller's fault, and worth a retry.
      this.#jwks = undefined;
      throw new Error(`the signing keys of tenant ${entra.tenantId} cannot be read from ${jwksUri}: ${(err as Error).message}`, { cause: err });
    }
  }
}

function shortType(type: string): string {
  return type.replace(/^Microsoft\.Resources\./, '');
}

function resourceTypeOf(uri: string): string {
  const parsed = parseResourceId(uri);
  return parsed ? `${parsed.namespace}/${parsed.types.join('/')}` : `'${clip(uri)}'`;
}

function bearerToken(header: string | string[] | undefined): string | undefined {
  // A repeated header is ambiguous; refusing it is safer than guessing which copy counts.
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+([A-Za-z0-9\-_.~+/]+=*)\s*$/i.exec(header);
  return match?.[1];
}

/** The receiver of a `type: azure` block, from its config alone. */
export function eventGridReceiverOf(config: AzureProviderConfig, env?: NodeJS.ProcessEnv, options: { clockSkewMs?: number } = {}): EventGridReceiver {
  return new EventGridReceiver({
    name: config.name,
    subscriptions: config.subscriptions,
    webhook: config.webhook,
    ...(env === undefined ? {} : { env }),
    ...options,
  });
}
