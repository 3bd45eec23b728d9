// The Pub/Sub push receiver: OIDC tokens signed with the fake's own key and verified by the real
// google-auth-library verifier, and asset feed and audit log messages in push envelopes.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVmsError } from '../../services/errors.ts';
import { type FakeGoogleCerts, PUSH_AUDIENCE, PUSH_SERVICE_ACCOUNT, startFakeGoogleCerts } from '../../test/fakes/gcp/google-certs.ts';
import type { WebhookRequest } from '../provider.ts';
import { gcpProviderSchema, type GcpWebhookConfig } from './config.ts';
import { ASSET_TYPE, AUDIT_METHODS, PubSubPushReceiver } from './pubsub.ts';
import { thrown, rejection } from '../../test/helpers/errors.ts';

const FIXTURES = path.join(import.meta.dirname, '../../test/fixtures/gcp');
const SINK_FILTER = path.join(import.meta.dirname, '../../deploy/gcp/log-sink-filter.txt');
const INSTANCE_ID = '5550123412341234567';
const DB_REF = { provider: 'gcp', account: 'shop-prod', region: 'europe-west1', zone: 'europe-west1-b', id: INSTANCE_ID };

function fixtureText(name: string): string {
  return readFileSync(path.join(FIXTURES, name), 'utf8');
}

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(fixtureText(name)) as Record<string, unknown>;
}

/** A push envelope as Pub/Sub sends it, carrying `data` base64-encoded (a string as is, anything else as JSON). */
function envelope(data: unknown, change: (e: Record<string, any>) => void = () => {}): Record<string, unknown> {
  const e = fixture('pubsub-push-envelope.json') as Record<string, any>;
  e.message.data = Buffer.from(typeof data === 'string' ? data : JSON.stringify(data), 'utf8').toString('base64');
  change(e);
  return e;
}

function request(body: unknown, headers: WebhookRequest['headers'] = {}, rawBody?: string): WebhookRequest {
  return { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, query: {}, body, rawBody: rawBody ?? (body === undefined ? '' : JSON.stringify(body)) };
}

function webhook(certsUrl: string, overrides: Partial<GcpWebhookConfig> = {}): GcpWebhookConfig {
  const block = gcpProviderSchema.parse({
    type: 'gcp',
    name: 'prod',
    projects: ['shop-prod'],
    webhook: { audience: PUSH_AUDIENCE, serviceAccountEmail: PUSH_SERVICE_ACCOUNT, certsUrl, ...overrides },
  });
  return block.webhook!;
}

describe('authenticate', () => {
  let google: FakeGoogleCerts;
  let receiver: PubSubPushReceiver;

  beforeAll(async () => {
    google = await startFakeGoogleCerts();
    receiver = new PubSubPushReceiver({ name: 'prod', projects: ['shop-prod'], webhook: webhook(google.url) });
  });

  afterAll(async () => {
    await google.close();
  });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('accepts a token Google signed for the audience and the push service account, fetching the certificates once', async () => {
    const before = google.requests;
    await expect(receiver.authenticate(request(envelope('x'), bearer(await google.sign())))).resolves.toBeUndefined();
    await expect(receiver.authenticate(request(envelope('x'), bearer(await google.sign({ iss: 'accounts.google.com' }))))).resolves.toBeUndefined();
    // The email in config is compared without regard to case, as Google's are lowercase.
    await expect(receiver.authenticate(request(envelope('x'), bearer(await google.sign({ email: PUSH_SERVICE_ACCOUNT.toUpperCase() }))))).resolves.toBeUndefined();
    expect(google.requests - before).toBe(1);
  });

  it.each<[string, () => Promise<WebhookRequest['headers']>, string]>([
    ['no Authorization header', async () => ({}), 'missing credentials: expected an Authorization: Bearer token'],
    ['Basic credentials', async () => ({ authorization: 'Basic dXNlcjpwYXNz' }), 'the Authorization header is not a Bearer token'],
    ['two Authorization headers', async () => ({ authorization: ['Bearer a.b.c', 'Bearer d.e.f'] }), 'more than one Authorization header'],
    ['garbage', async () => ({ authorization: 'Bearer not-a-jwt' }), 'the bearer token is not a JWT'],
    ['a token whose header is not JSON', async () => ({ authorization: 'Bearer eyJub3Q.eyJ4IjoxfQ.c2ln' }), 'the bearer token is not a JWT'],
    ['an unsigned token (alg none)', async () => bearer(await google.sign({}, { alg: 'none' })), "the bearer token is not signed the way Google signs ID tokens (alg 'none', expected RS256 with a key id)"],
    ['a token signed with another key under Google’s key id', async () => bearer(await google.sign({}, { foreignKey: true })), 'the token signature does not verify'],
    ['a token signed with a key id Google does not publish', async () => bearer(await google.sign({}, { kid: 'unknown-key' })), 'the token is signed with a key Google does not publish (unknown key id)'],
    [
      'an expired token',
      async () => bearer(await google.sign({ iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 })),
      'the token has expired',
    ],
    ['a token for another audience', async () => bearer(await google.sign({ aud: 'https://elsewhere.example.com/push' })), 'the token audience is not webhook.audience'],
    ['a token from another issuer', async () => bearer(await google.sign({ iss: 'https://evil.example.com' })), 'the token was not issued by Google'],
    ['a token of another service account', async () => bearer(await google.sign({ email: 'someone@shop-prod.iam.gserviceaccount.com' })), "the token was issued to 'someone@shop-prod.iam.gserviceaccount.com'"],
    ['a token with an unverified email', async () => bearer(await google.sign({ email_verified: false })), 'the token says its email is not verified'],
    ['a token without an email', async () => bearer(await google.sign({ email: undefined, email_verified: undefined })), 'the token carries no email claim'],
  ])('refuses %s with VMS_ERR_WEBHOOK_UNAUTHORIZED, never echoing the token', async (_, headers, message) => {
    const h = await headers();
    const err = await rejection(receiver.authenticate(request(envelope('x'), h)));
    expect(isVmsError(err, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((err as Error).message).toContain(message);
    const token = typeof h.authorization === 'string' ? h.authorization.replace(/^\w+\s+/, '') : undefined;
    if (token !== undefined && token.length > 20) expect((err as Error).message).not.toContain(token.slice(-20));
  });

  it('accepts an expired token for server.tokenClockSkew after its expiry and no longer (60 s by default, not the library’s 300 s)', async () => {
    const now = Math.floor(Date.now() / 1000);
    // The skew is checked against the receiver's clock, held at `now`: a slow run cannot move a second.
    const receiver = new PubSubPushReceiver({ name: 'prod', projects: ['shop-prod'], webhook: webhook(google.url), now: () => now * 1000 });
    const expiredFor = async (seconds: number) => bearer(await google.sign({ iat: now - 3600 - seconds, exp: now - seconds }));
    await expect(receiver.authenticate(request(envelope('x'), await expiredFor(50)))).resolves.toBeUndefined();
    const late = await rejection(receiver.authenticate(request(envelope('x'), await expiredFor(61))));
    expect(isVmsError(late, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((late as Error).message).toMatch(/the token has expired: it expired 61 s ago, more than the 60 s of clock skew allowed/);
    const lenient = new PubSubPushReceiver({ name: 'prod', projects: ['shop-prod'], webhook: webhook(google.url), clockSkewMs: 120_000, now: () => now * 1000 });
    await expect(lenient.authenticate(request(envelope('x'), await expiredFor(110)))).resolves.toBeUndefined();
    expect(isVmsError(await rejection(lenient.authenticate(request(envelope('x'), await expiredFor(125)))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    // Issued in the future by more than the skew.
    const early = await rejection(receiver.authenticate(request(envelope('x'), bearer(await google.sign({ iat: now + 90, exp: now + 3690 })))));
    expect((early as Error).message).toMatch(/issued 90 s in the future/);
  });

  it('without webhook config every request is refused', async () => {
    const open = new PubSubPushReceiver({ name: 'prod', projects: ['shop-prod'], webhook: undefined });
    const err = await rejection(open.authenticate(request(envelope('x'), bearer(await google.sign()))));
    expect(isVmsError(err, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((err as Error).message).toContain('has no webhook configured');
  });

  it('certificates that cannot be fetched are VMS_ERR_WEBHOOK_KEYS_UNAVAILABLE (retried by Pub/Sub), not a verdict on the token', async () => {
    const cold = new PubSubPushReceiver({ name: 'prod', projects: ['shop-prod'], webhook: webhook(google.url) });
    google.failing = true;
    try {
      const err = await rejection(cold.authenticate(request(envelope('x'), bearer(await google.sign()))));
      expect(isVmsError(err, 'VMS_ERR_WEBHOOK_KEYS_UNAVAILABLE')).toBe(true);
      expect((err as Error).message).toContain(`Google's token certificates cannot be fetched from ${google.url}`);
    } finally {
      google.failing = false;
    }
    await expect(cold.authenticate(request(envelope('x'), bearer(await google.sign())))).resolves.toBeUndefined();
  });
});

describe('handle', () => {
  const r = new PubSubPushReceiver({ name: 'prod', projects: ['shop-prod'], webhook: undefined });

  describe('Cloud Asset Inventory feed messages', () => {
    it.each(['asset-feed-instance-created.json', 'asset-feed-instance-updated.json'])('%s refreshes the instance by its numeric id', (name) => {
      expect(r.handle(request(envelope(fixture(name))))).toEqual({ kind: 'refresh', refs: [DB_REF], ignored: 0 });
    });

    it('a deletion refreshes the instance by the numeric id of its prior state, so the entry named by it can go', () => {
      const deleted = fixture('asset-feed-instance-deleted.json');
      expect(deleted.deleted).toBe(true);
      expect(r.handle(request(envelope(deleted)))).toEqual({ kind: 'refresh', refs: [DB_REF], ignored: 0 });
    });

    it('a message without any numeric id falls back to the instance name from the asset name', () => {
      const deleted = fixture('asset-feed-instance-deleted.json');
      delete deleted.priorAsset;
      expect(r.handle(request(envelope(deleted)))).toEqual({ kind: 'refresh', refs: [{ ...DB_REF, id: 'db-1' }], ignored: 0 });
    });

    it("the feed's welcome message is acknowledged and ignored", () => {
      expect(r.handle(request(envelope(fixtureText('asset-feed-welcome.txt'))))).toEqual({
        kind: 'ignored',
        reason: 'message 13719873256348871: the welcome message of a Cloud Asset Inventory feed',
      });
    });

    it('another asset type, or an instance of a project outside the block, is ignored', () => {
      const disk = fixture('asset-feed-instance-created.json') as Record<string, any>;
      disk.asset.assetType = 'compute.googleapis.com/Disk';
      expect(r.handle(request(envelope(disk)))).toMatchObject({ kind: 'ignored', reason: expect.stringContaining(`an asset of type 'compute.googleapis.com/Disk', not ${ASSET_TYPE}`) });
      const elsewhere = fixture('asset-feed-instance-created.json') as Record<string, any>;
      elsewhere.asset.name = '//compute.googleapis.com/projects/other-prod/zones/europe-west1-b/instances/db-1';
      expect(r.handle(request(envelope(elsewhere)))).toMatchObject({ kind: 'ignored', reason: 'message 13719873256348871: project other-prod is not a project of gcp provider "prod"' });
    });
  });

  describe('audit log entries', () => {
    it.each(['audit-log-instances-insert.json', 'audit-log-instances-delete.json', 'audit-log-instances-setlabels.json'])('%s refreshes the instance by resource.labels.instance_id', (name) => {
      expect(r.handle(request(envelope(fixture(name))))).toEqual({ kind: 'refresh', refs: [DB_REF], ignored: 0 });
    });

    it('without instance_id, the instance name of protoPayload.resourceName', () => {
      const entry = fixture('audit-log-instances-insert.json') as Record<string, any>;
      entry.resource.labels = {};
      expect(r.handle(request(envelope(entry)))).toEqual({ kind: 'refresh', refs: [{ ...DB_REF, id: 'db-1' }], ignored: 0 });
    });

    it.each([
      ['compute.instances.stop', 'refresh'],
      ['beta.compute.instances.setTags', 'refresh'],
      ['compute.instances.preempted', 'refresh'],
      ['v1.compute.instances.setMetadata', 'ignored'],
      ['v1.compute.disks.insert', 'ignored'],
    ])('method %s: %s', (method, kind) => {
      const entry = fixture('audit-log-instances-setlabels.json') as Record<string, any>;
      entry.protoPayload.methodName = method;
      expect(r.handle(request(envelope(entry))).kind).toBe(kind);
    });

    it('an entry of another service or resource type is ignored', () => {
      const entry = fixture('audit-log-instances-setlabels.json') as Record<string, any>;
      entry.resource.type = 'gce_disk';
      expect(r.handle(request(envelope(entry)))).toMatchObject({ kind: 'ignored', reason: expect.stringContaining("about a 'gce_disk'") });
    });

    it('the log sink filter in deploy/gcp selects exactly the methods acted on', () => {
      const filter = readFileSync(SINK_FILTER, 'utf8');
      const verbs = /compute\\\.instances\\\.\(([^)]+)\)\$/.exec(filter)?.[1]?.split('|');
      expect(verbs?.sort()).toEqual([...AUDIT_METHODS].sort());
    });
  });

  describe('envelopes', () => {
    it('reads the raw body when the HTTP layer did not parse it', () => {
      const body = envelope(fixture('audit-log-instances-setlabels.json'));
      expect(r.handle(request(undefined, {}, JSON.stringify(body)))).toMatchObject({ kind: 'refresh', refs: [DB_REF] });
    });

    it.each<[string, (e: Record<string, any>) => void, string]>([
      ['no data', (e) => delete e.message.data, 'message 13719873256348871: it has no data'],
      ['data that is not a string', (e) => (e.message.data = 42), 'message 13719873256348871: its data is a number, not a base64 string'],
      ['data that is not base64', (e) => (e.message.data = '%%% not base64 %%%'), 'message 13719873256348871: its data is not base64'],
      ['data that is not JSON', (e) => (e.message.data = Buffer.from('{"protoPayload":').toString('base64')), 'message 13719873256348871: its data is not JSON'],
      ['JSON of another shape', (e) => (e.message.data = Buffer.from('{"hello":"world"}').toString('base64')), 'neither a Cloud Asset Inventory feed message (asset) nor an audit log entry'],
      ['a JSON array', (e) => (e.message.data = Buffer.from('[1,2]').toString('base64')), 'its data is an array'],
      [
        'an asset name that is not an instance',
        (e) => (e.message.data = Buffer.from(JSON.stringify({ asset: { assetType: ASSET_TYPE, name: '//compute.googleapis.com/projects/shop-prod/global/networks/prod' } })).toString('base64')),
        "asset name '//compute.googleapis.com/projects/shop-prod/global/networks/prod' is not",
      ],
      ['no message id', (e) => (delete e.message.messageId, delete e.message.message_id, delete e.message.data), 'the message: it has no data'],
    ])('a message with %s is acknowledged with the reason, as no retry can fix it', (_, change, reason) => {
      const outcome = r.handle(request(envelope('unused', change)));
      expect(outcome).toMatchObject({ kind: 'ignored', reason: expect.stringContaining(reason) });
    });

    it('an instance reference that is malformed is acknowledged, not refreshed', () => {
      const entry = fixture('audit-log-instances-setlabels.json') as Record<string, any>;
      entry.resource.labels = { project_id: 'shop-prod', zone: 'europe-west1-b' };
      entry.protoPayload.resourceName = 'projects/shop-prod/zones/europe-west1-b/instances/Not_A_Name';
      expect(r.handle(request(envelope(entry)))).toMatchObject({ kind: 'ignored', reason: expect.stringContaining("names instance 'Not_A_Name'") });
    });

    it.each<[string, unknown, string]>([
      ['not an object', [1, 2], 'the body must be a Pub/Sub push envelope (a JSON object with "message" and "subscription"), not an array'],
      ['without message', { subscription: 'projects/p/subscriptions/s' }, 'the body has no "message" object, so it is not a Pub/Sub push envelope (message is missing)'],
      ['without subscription', { message: { data: '' } }, 'the push envelope has no "subscription" string (it is missing)'],
      [
        'an unwrapped payload',
        { protoPayload: { methodName: 'v1.compute.instances.stop' } },
        'the body is a bare asset or log entry: the push subscription delivers unwrapped payloads; turn payload unwrapping off (no --push-no-wrapper)',
      ],
    ])('a body %s is VMS_ERR_WEBHOOK_BODY (400)', (_, body, message) => {
      const err = thrown(() => r.handle(request(body)));
      expect(isVmsError(err, 'VMS_ERR_WEBHOOK_BODY')).toBe(true);
      expect((err as Error).message).toBe(message);
    });

    it('an empty or non-JSON raw body is VMS_ERR_WEBHOOK_BODY', () => {
      expect(isVmsError(thrown(() => r.handle(request(undefined, {}, ''))), 'VMS_ERR_WEBHOOK_BODY')).toBe(true);
      expect(isVmsError(thrown(() => r.handle(request(undefined, {}, '{"message":'))), 'VMS_ERR_WEBHOOK_BODY')).toBe(true);
    });
  });
});
