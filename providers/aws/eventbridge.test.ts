// The EventBridge webhook receiver: authentication and events, with AWS's published sample events.
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isVmsError } from '../../services/errors.ts';
import type { WebhookRequest } from '../provider.ts';
import type { AwsWebhookConfig } from './config.ts';
import { EVENT_TYPES, EventBridgeReceiver } from './eventbridge.ts';
import { thrown, rejection } from '../../test/helpers/errors.ts';

const FIXTURES = path.join(import.meta.dirname, '../../test/fixtures/aws');
const RULE_PATTERN = path.join(import.meta.dirname, '../../deploy/aws/eventbridge-rule-pattern.json');

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8')) as Record<string, unknown>;
}

function request(body: unknown, headers: WebhookRequest['headers'] = {}, rawBody?: string): WebhookRequest {
  return { method: 'POST', headers, query: {}, body, rawBody: rawBody ?? (body === undefined ? '' : JSON.stringify(body)) };
}

function receiver(webhook?: AwsWebhookConfig, env: NodeJS.ProcessEnv = {}): EventBridgeReceiver {
  return new EventBridgeReceiver({ name: 'prod', accounts: ['123456789012', '111122223333'], regions: ['us-east-1', 'us-west-1'], webhook, env });
}

describe('handle', () => {
  const r = receiver();

  it("EC2's sample state-change event (pending) refreshes that instance", () => {
    expect(r.handle(request(fixture('ec2-state-change-pending.json')))).toEqual({
      kind: 'refresh',
      refs: [{ provider: 'aws', account: '123456789012', region: 'us-east-1', id: 'i-1234567890abcdef0' }],
      ignored: 0,
    });
  });

  it.each(['running', 'stopped', 'terminated', 'shutting-down'])('a state change to %s refreshes the instance', (state) => {
    const event = fixture('ec2-state-change-pending.json');
    event.detail = { 'instance-id': 'i-0abc1234def567890', state };
    expect(r.handle(request(event))).toMatchObject({ kind: 'refresh', refs: [{ id: 'i-0abc1234def567890' }] });
  });

  it("EventBridge's sample with a space before the instance id is read with the id trimmed", () => {
    expect(r.handle(request(fixture('eventbridge-ec2-state-change-terminated.json')))).toEqual({
      kind: 'refresh',
      refs: [{ provider: 'aws', account: '111122223333', region: 'us-west-1', id: 'i-1234567890abcdef0' }],
      ignored: 0,
    });
  });

  it("the tag-change sample names the instance in its resource ARN", () => {
    expect(r.handle(request(fixture('tag-change-on-resource.json')))).toEqual({
      kind: 'refresh',
      refs: [{ provider: 'aws', account: '123456789012', region: 'us-east-1', id: 'i-0000000aaaaaaaaaa' }],
      ignored: 0,
    });
  });

  it('a tag change on something other than an EC2 instance is ignored', () => {
    const event = fixture('tag-change-on-resource.json');
    event.detail = { ...(event.detail as object), service: 'ec2', 'resource-type': 'volume' };
    event.resources = ['arn:aws:ec2:us-east-1:123456789012:volume/vol-0123456789abcdef0'];
    expect(r.handle(request(event))).toEqual({ kind: 'ignored', reason: 'tag change on ec2/volume, not an EC2 instance' });
  });

  it('other event types are ignored with a reason', () => {
    const event = { ...fixture('ec2-state-change-pending.json'), 'detail-type': 'EC2 Spot Instance Interruption Warning' };
    expect(r.handle(request(event))).toEqual({ kind: 'ignored', reason: '"EC2 Spot Instance Interruption Warning" events from aws.ec2 are not acted on' });
    const fromElsewhere = { ...fixture('ec2-state-change-pending.json'), source: 'com.example.app' };
    expect(r.handle(request(fromElsewhere))).toMatchObject({ kind: 'ignored', reason: expect.stringContaining('from com.example.app') });
  });

  it('events of an account or region this block does not cover are ignored', () => {
    expect(r.handle(request({ ...fixture('ec2-state-change-pending.json'), account: '999999999999' }))).toEqual({
      kind: 'ignored',
      reason: 'account 999999999999 is not an account of aws provider "prod"',
    });
    expect(r.handle(request({ ...fixture('ec2-state-change-pending.json'), region: 'eu-west-1' }))).toEqual({
      kind: 'ignored',
      reason: 'region eu-west-1 is not a region of aws provider "prod"',
    });
  });

  it('an array of events gives the instances of all of them, each once, and counts the ignored ones', () => {
    const pending = fixture('ec2-state-change-pending.json');
    const outcome = r.handle(request([pending, fixture('tag-change-on-resource.json'), pending, { ...pending, 'detail-type': 'Something Else' }]));
    expect(outcome).toEqual({
      kind: 'refresh',
      refs: [
        { provider: 'aws', account: '123456789012', region: 'us-east-1', id: 'i-1234567890abcdef0' },
        { provider: 'aws', account: '123456789012', region: 'us-east-1', id: 'i-0000000aaaaaaaaaa' },
      ],
      ignored: 1,
    });
  });

  it('reads the raw body when the HTTP layer did not parse it', () => {
    const raw = readFileSync(path.join(FIXTURES, 'eventbridge-ec2-state-change-terminated.json'), 'utf8');
    expect(r.handle(request(undefined, {}, raw))).toMatchObject({ kind: 'refresh', refs: [{ id: 'i-1234567890abcdef0' }] });
  });

  const pending = () => fixture('ec2-state-change-pending.json');
  it.each<[string, () => WebhookRequest, string]>([
    ['an empty body', () => request(undefined, {}, ''), 'the body is empty'],
    ['a body that is not JSON', () => request(undefined, {}, '{"detail-type": '), 'the body is not JSON'],
    ['a JSON string', () => request('hello'), 'an event must be a JSON object, not a string'],
    ['null', () => request(null), 'an event must be a JSON object, not null'],
    ['an empty array', () => request([]), 'the body is an empty array'],
    ['an event without detail-type', () => request({ ...pending(), 'detail-type': undefined }), 'no "detail-type" string'],
    ['an event without source', () => request({ ...pending(), source: 42 }), 'no "source" string'],
    ['a bad account', () => request({ ...pending(), account: '12345' }), `"account" must be a 12-digit account id, not '12345'`],
    ['a missing region', () => request({ ...pending(), region: undefined }), '"region" must be an AWS region name, not missing'],
    ['a missing detail', () => request({ ...pending(), detail: undefined }), '"detail" must be a JSON object, not missing'],
    ['no instance id', () => request({ ...pending(), detail: { state: 'running' } }), 'detail.instance-id must be an instance id string, not missing'],
    ['a bad instance id', () => request({ ...pending(), detail: { 'instance-id': 'i-XYZ', state: 'running' } }), `detail.instance-id 'i-XYZ' is not an EC2 instance id`],
    [
      'a tag change without resources',
      () => request({ ...fixture('tag-change-on-resource.json'), resources: [] }),
      'a tag change event must name its resource in "resources"',
    ],
    [
      'a tag change with a foreign ARN',
      () => request({ ...fixture('tag-change-on-resource.json'), resources: ['arn:aws:s3:::my-bucket'] }),
      `resources[0] 'arn:aws:s3:::my-bucket' is not an EC2 instance ARN`,
    ],
    ['a malformed event inside an array', () => request([pending(), { ...pending(), detail: [] }]), 'event [1]: "detail" must be a JSON object, not an array'],
  ])('%s is VMS_ERR_WEBHOOK_BODY with the reason', (_, make, reason) => {
    const err = thrown(() => r.handle(make()));
    expect(isVmsError(err, 'VMS_ERR_WEBHOOK_BODY')).toBe(true);
    expect((err as Error).message).toContain(reason);
  });
});

describe('authenticate', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vms-aws-webhook-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const basicHeader = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

  it('accepts the configured API key header and refuses a wrong or missing one', async () => {
    const r = receiver({ apiKey: { header: 'x-api-key', value: 's3cret-key' } });
    await expect(r.authenticate(request({}, { 'x-api-key': 's3cret-key' }))).resolves.toBeUndefined();

    const wrong = await rejection(r.authenticate(request({}, { 'x-api-key': 's3cret-kez' })));
    expect(isVmsError(wrong, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((wrong as Error).message).toBe('wrong credentials for aws provider "prod"');

    const missing = await rejection(r.authenticate(request({}, {})));
    expect(isVmsError(missing, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((missing as Error).message).toBe('missing credentials: expected header x-api-key');
  });

  it('reads the key from a custom header (any case in config) and from an environment variable', async () => {
    const r = receiver({ apiKey: { header: 'X-VMS-Token', value: { env: 'VMS_HOOK_KEY' } } }, { VMS_HOOK_KEY: 'from-env' });
    await expect(r.authenticate(request({}, { 'x-vms-token': 'from-env' }))).resolves.toBeUndefined();
    expect(isVmsError(await rejection(r.authenticate(request({}, { 'x-api-key': 'from-env' }))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
  });

  it('refuses a repeated key header rather than guessing which copy counts', async () => {
    const r = receiver({ apiKey: { header: 'x-api-key', value: 'k' } });
    expect(isVmsError(await rejection(r.authenticate(request({}, { 'x-api-key': ['k', 'k'] }))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
  });

  it('accepts Basic credentials (password from a file) and refuses a wrong user or password', async () => {
    const file = path.join(dir, 'password');
    writeFileSync(file, 'pa:ss w0rd\n');
    const r = receiver({ basic: { username: 'eventbridge', password: { file } } });
    await expect(r.authenticate(request({}, { authorization: basicHeader('eventbridge', 'pa:ss w0rd') }))).resolves.toBeUndefined();
    for (const header of [basicHeader('eventbridge', 'pa:ss w0rd!'), basicHeader('eventbridgf', 'pa:ss w0rd'), 'Bearer abc', 'Basic !!!']) {
      expect(isVmsError(await rejection(r.authenticate(request({}, { authorization: header }))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    }
  });

  it('reads a key file once per few seconds, not per request, and takes a rotated Secret without a restart', async () => {
    // As the kubelet mounts a Secret: key -> ..data/key, and ..data is swapped to a new directory.
    const mount = path.join(dir, 'mount');
    const version = (name: string, key: string) => {
      mkdirSync(path.join(mount, name), { recursive: true });
      writeFileSync(path.join(mount, name, 'key'), `${key}\n`);
      symlinkSync(name, path.join(mount, `..data-${name}`));
      renameSync(path.join(mount, `..data-${name}`), path.join(mount, '..data'));
    };
    version('v1', 'old-key');
    symlinkSync('..data/key', path.join(mount, 'key'));
    let now = 0;
    const r = new EventBridgeReceiver({
      name: 'prod',
      accounts: ['123456789012'],
      regions: ['us-east-1'],
      webhook: { apiKey: { header: 'x-api-key', value: { file: path.join(mount, 'key') } } },
      secretFiles: { maxAgeMs: 5000, now: () => now },
    });
    const accepts = async (key: string) => (await r.authenticate(request({}, { 'x-api-key': key })).then(() => true, () => false));
    expect(await accepts('old-key')).toBe(true);
    version('v2', 'new-key');
    now = 1000;
    // Still the value read a second ago: the file was not read for this request.
    expect(await accepts('old-key')).toBe(true);
    expect(await accepts('new-key')).toBe(false);
    now = 6000;
    expect(await accepts('new-key')).toBe(true);
    expect(await accepts('old-key')).toBe(false);
  });

  it('with both configured, either one is enough', async () => {
    const r = receiver({ apiKey: { header: 'x-api-key', value: 'k1' }, basic: { username: 'u', password: 'p' } });
    await expect(r.authenticate(request({}, { 'x-api-key': 'k1' }))).resolves.toBeUndefined();
    await expect(r.authenticate(request({}, { authorization: basicHeader('u', 'p') }))).resolves.toBeUndefined();
    const missing = await rejection(r.authenticate(request({}, {})));
    expect((missing as Error).message).toBe('missing credentials: expected header x-api-key or Basic authorization');
  });

  it('without webhook credentials in config, every request is refused', async () => {
    const err = await rejection(receiver(undefined).authenticate(request({}, { 'x-api-key': 'anything' })));
    expect(isVmsError(err, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((err as Error).message).toContain('no webhook credentials configured');
  });

  it('a secret that cannot be read, or is empty, refuses the request without revealing anything', async () => {
    const unset = await rejection(receiver({ apiKey: { header: 'x-api-key', value: { env: 'VMS_UNSET' } } }).authenticate(request({}, { 'x-api-key': '' })));
    expect(isVmsError(unset, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((unset as Error).message).toContain('environment variable VMS_UNSET is not set');

    const file = path.join(dir, 'empty');
    writeFileSync(file, '\n');
    const empty = await rejection(receiver({ apiKey: { header: 'x-api-key', value: { file } } }).authenticate(request({}, { 'x-api-key': '' })));
    expect((empty as Error).message).toContain('are empty');
  });
});

// EventBridge's matching for the subset the deployed pattern uses: `$or`, nested objects, and
// arrays of exact values (a field matches when its value, or any element of it, is listed).
function matchesPattern(pattern: Record<string, unknown>, event: Record<string, unknown>): boolean {
  return Object.entries(pattern).every(([key, want]) => {
    if (key === '$or') return (want as Array<Record<string, unknown>>).some((alt) => matchesPattern(alt, event));
    const have = event[key];
    if (Array.isArray(want)) return (Array.isArray(have) ? have : [have]).some((v) => want.includes(v));
    return typeof have === 'object' && have !== null && matchesPattern(want as Record<string, unknown>, have as Record<string, unknown>);
  });
}

describe('deploy/aws/eventbridge-rule-pattern.json', () => {
  const pattern = JSON.parse(readFileSync(RULE_PATTERN, 'utf8')) as Record<string, unknown>;

  it('selects every event the receiver acts on', () => {
    for (const name of ['ec2-state-change-pending.json', 'eventbridge-ec2-state-change-terminated.json', 'tag-change-on-resource.json']) {
      expect(matchesPattern(pattern, fixture(name)), name).toBe(true);
    }
    for (const type of Object.values(EVENT_TYPES)) {
      const event = { source: type.source, 'detail-type': type.detailType, detail: { service: 'ec2', 'resource-type': 'instance' } };
      expect(matchesPattern(pattern, event), type.detailType).toBe(true);
    }
  });

  it('leaves out what the receiver would only ignore', () => {
    const volumeTagChange = fixture('tag-change-on-resource.json');
    volumeTagChange.detail = { ...(volumeTagChange.detail as object), 'resource-type': 'volume' };
    expect(matchesPattern(pattern, volumeTagChange)).toBe(false);
    expect(matchesPattern(pattern, { ...fixture('ec2-state-change-pending.json'), 'detail-type': 'EC2 Spot Instance Interruption Warning' })).toBe(false);
    expect(matchesPattern(pattern, { ...fixture('ec2-state-change-pending.json'), source: 'aws.tag' })).toBe(false);
  });
});
