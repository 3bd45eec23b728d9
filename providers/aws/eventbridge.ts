// Events from an EventBridge rule, delivered by an API destination: instance state changes and tag
// changes become instance references to describe again now instead of at the next resync. The
// receiver never calls AWS; the event only says which instance to look at, never what it looks like.
import { SecretReader } from '../../config/secret.ts';
import type { InstanceRef } from '../../services/model.ts';
import type { WebhookCredentials, WebhookOutcome, WebhookReceiver, WebhookRequest } from '../provider.ts';
import { bodyError, clip, constantTimeEqual, describeJson, isObject, parseBody, singleHeader, unauthorized } from '../webhook-support.ts';
import { AWS_ACCOUNT_ID, AWS_REGION, type AwsProviderConfig, type AwsWebhookConfig } from './config.ts';

/** EC2 instance ids: `i-` and 8 (older) or 17 hex digits. */
export const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

/** The event types this receiver acts on, as an EventBridge rule must select them (deploy/aws/eventbridge-rule-pattern.json). */
export const EVENT_TYPES = {
  stateChange: { source: 'aws.ec2', detailType: 'EC2 Instance State-change Notification' },
  tagChange: { source: 'aws.tag', detailType: 'Tag Change on Resource' },
} as const;

/** What the receiver needs to know about its provider block. */
export interface EventBridgeReceiverOptions {
  /** The block name, for messages. */
  name: string;
  accounts: readonly string[];
  regions: readonly string[];
  /** Absent: every request is refused (a webhook without credentials would accept anyone). */
  webhook: AwsWebhookConfig | undefined;
  /** Where secret references are looked up. */
  env?: NodeJS.ProcessEnv;
  /** How secret files are re-read (tests set the clock). */
  secretFiles?: { maxAgeMs?: number; now?: () => number };
}

type EventResult = { kind: 'refs'; refs: InstanceRef[] } | { kind: 'ignored'; reason: string };

// A malformed event; the message says which part.
class Malformed extends Error {}

/** The webhook receiver of one AWS provider block. */
export class EventBridgeReceiver implements WebhookReceiver {
  readonly #name: string;
  readonly #accounts: ReadonlySet<string>;
  readonly #regions: ReadonlySet<string>;
  readonly #webhook: AwsWebhookConfig | undefined;
  readonly #apiKey: SecretReader | undefined;
  readonly #password: SecretReader | undefined;

  constructor(options: EventBridgeReceiverOptions) {
    this.#name = options.name;
    this.#accounts = new Set(options.accounts);
    this.#regions = new Set(options.regions);
    this.#webhook = options.webhook;
    const apiKey = options.webhook?.apiKey;
    const basic = options.webhook?.basic;
    this.#apiKey = apiKey ? new SecretReader(apiKey.value, options.env, options.secretFiles) : undefined;
    this.#password = basic ? new SecretReader(basic.password, options.env, options.secretFiles) : undefined;
  }

  /**
   * Accepts the configured API key header or Basic credentials. A secret file is read again every
   * few seconds (SecretReader), so that a rotated Kubernetes Secret takes effect without a restart.
   */
  async authenticate(req: WebhookCredentials): Promise<void> {
    const config = this.#webhook;
    if (!config) {
      throw unauthorized(`aws provider "${this.#name}" has no webhook credentials configured (webhook.apiKey or webhook.basic), so every request is refused`);
    }
    let apiKey: { header: string; value: string } | undefined;
    let basic: { username: string; password: string } | undefined;
    try {
      if (config.apiKey && this.#apiKey) apiKey = { header: config.apiKey.header.toLowerCase(), value: await this.#apiKey.read() };
      if (config.basic && this.#password) basic = { username: config.basic.username, password: await this.#password.read() };
    } catch (err) {
      throw unauthorized(`the webhook credentials of aws provider "${this.#name}" cannot be read: ${(err as Error).message}`);
    }
    if (apiKey?.value === '' || basic?.password === '') {
      // An empty secret file would otherwise accept an empty header.
      throw unauthorized(`the webhook credentials of aws provider "${this.#name}" are empty`);
    }

    // Both checks always run, so the time taken does not say which one came close.
    let presented = false;
    let accepted = false;
    if (apiKey) {
      const value = singleHeader(req.headers, apiKey.header);
      if (value !== undefined) presented = true;
      accepted = constantTimeEqual(value ?? '', apiKey.value) && value !== undefined;
    }
    if (basic) {
      const credentials = parseBasic(singleHeader(req.headers, 'authorization'));
      if (credentials) presented = true;
      const userOk = constantTimeEqual(credentials?.username ?? '', basic.username);
      const passwordOk = constantTimeEqual(credentials?.password ?? '', basic.password);
      accepted = (userOk && passwordOk && credentials !== undefined) || accepted;
    }
    if (accepted) return;
    const expected = [apiKey ? `header ${apiKey.header}` : undefined, basic ? 'Basic authorization' : undefined].filter(Boolean).join(' or ');
    throw unauthorized(presented ? `wrong credentials for aws provider "${this.#name}"` : `missing credentials: expected ${expected}`);
  }

  /** Turns one event, or an array of events, into references; throws VMS_ERR_WEBHOOK_BODY naming the bad part. */
  handle(req: WebhookRequest): WebhookOutcome {
    const body = parseBody(req, 'an EventBridge event');
    const events = Array.isArray(body) ? body : [body];
    if (events.length === 0) throw bodyError('the body is an empty array; expected an EventBridge event');
    const refs = new Map<string, InstanceRef>();
    const ignored: string[] = [];
    events.forEach((event, i) => {
      let result: EventResult;
      try {
        result = this.#readEvent(event);
      } catch (err) {
        if (!(err instanceof Malformed)) throw err;
        throw bodyError(Array.isArray(body) ? `event [${i}]: ${err.message}` : err.message);
      }
      if (result.kind === 'ignored') ignored.push(result.reason);
      for (const ref of result.kind === 'refs' ? result.refs : []) refs.set(`${ref.account}:${ref.region}:${ref.id}`, ref);
    });
    if (refs.size === 0) return { kind: 'ignored', reason: [...new Set(ignored)].join('; ') };
    return { kind: 'refresh', refs: [...refs.values()], ignored: ignored.length };
  }

  #readEvent(event: unknown): EventResult {
    if (!isObject(event)) throw new Malformed(`an event must be a JSON object, not ${describeJson(event)}`);
    const detailType = event['detail-type'];
    const source = event.source;
    if (typeof detailType !== 'string') throw new Malformed('the event has no "detail-type" string; is the API destination sending the event unchanged (no input transformer)?');
    if (typeof source !== 'string') throw new Malformed('the event has no "source" string');
    const isStateChange = source === EVENT_TYPES.stateChange.source && detailType === EVENT_TYPES.stateChange.detailType;
    const isTagChange = source === EVENT_TYPES.tagChange.source && detailType === EVENT_TYPES.tagChange.detailType;
    if (!isStateChange && !isTagChange) return { kind: 'ignored', reason: `"${detailType}" events from ${source} are not acted on` };

    const account = readString(event, 'account', AWS_ACCOUNT_ID, 'a 12-digit account id');
    const region = readString(event, 'region', AWS_REGION, 'an AWS region name');
    const detail = event.detail;
    if (!isObject(detail)) throw new Malformed(`"detail" must be a JSON object, not ${describeJson(detail)}`);

    let ids: string[];
    if (isStateChange) {
      ids = [instanceId(detail['instance-id'], 'detail.instance-id')];
    } else {
      const service = detail.service;
      const resourceType = detail['resource-type'];
      if ((service !== undefined && service !== 'ec2') || (resourceType !== undefined && resourceType !== 'instance')) {
        return { kind: 'ignored', reason: `tag change on ${String(service)}/${String(resourceType)}, not an EC2 instance` };
      }
      const resources = event.resources;
      if (!Array.isArray(resources) || resources.length === 0) throw new Malformed('a tag change event must name its resource in "resources"');
      ids = resources.map((arn, i) => instanceIdFromArn(arn, `resources[${i}]`));
    }

    if (!this.#accounts.has(account)) return { kind: 'ignored', reason: `account ${account} is not an account of aws provider "${this.#name}"` };
    if (!this.#regions.has(region)) return { kind: 'ignored', reason: `region ${region} is not a region of aws provider "${this.#name}"` };
    return { kind: 'refs', refs: ids.map((id) => ({ provider: 'aws', account, region, id })) };
  }
}

function readString(event: Record<string, unknown>, key: string, pattern: RegExp, what: string): string {
  const value = event[key];
  if (typeof value !== 'string') throw new Malformed(`"${key}" must be ${what}, not ${describeJson(value)}`);
  const trimmed = value.trim();
  if (!pattern.test(trimmed)) throw new Malformed(`"${key}" must be ${what}, not '${clip(value, 80)}'`);
  return trimmed;
}

// AWS's own published sample event carries an instance id with a leading space: trim before checking.
function instanceId(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new Malformed(`${where} must be an instance id string, not ${describeJson(value)}`);
  const id = value.trim();
  if (!INSTANCE_ID.test(id)) throw new Malformed(`${where} '${clip(value, 80)}' is not an EC2 instance id (i- and 8 or 17 hex digits)`);
  return id;
}

function instanceIdFromArn(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new Malformed(`${where} must be an ARN string, not ${describeJson(value)}`);
  const match = /^arn:[a-z-]+:ec2:[a-z0-9-]*:\d{12}:instance\/(.*)$/.exec(value.trim());
  if (!match) throw new Malformed(`${where} '${clip(value, 80)}' is not an EC2 instance ARN (arn:aws:ec2:<region>:<account>:instance/<id>)`);
  return instanceId(match[1], where);
}

function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  const match = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** The receiver of a `type: aws` block, from its config alone. */
export function eventBridgeReceiverOf(config: AwsProviderConfig, env?: NodeJS.ProcessEnv): EventBridgeReceiver {
  return new EventBridgeReceiver({
    name: config.name,
    accounts: config.accounts.map((a) => a.id),
    regions: config.regions,
    webhook: config.webhook,
    ...(env === undefined ? {} : { env }),
  });
}
