// The Event Grid webhook receiver: handshakes, authentication (query secret, Entra token) and events
// in both schemas, with sample events shaped as Azure documents them.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isVmsError } from '../../services/errors.ts';
import { type FakeEntraKeys, startFakeEntraKeys } from '../../test/fakes/azure/entra-keys.ts';
import type { WebhookRequest } from '../provider.ts';
import { type AzureWebhookConfig, azureProviderSchema } from './config.ts';
import { EVENT_GRID_CLIENT_ID, EVENT_TYPES, EventGridReceiver, POWER_ACTIONS } from './eventgrid.ts';
import { thrown, rejection } from '../../test/helpers/errors.ts';

const FIXTURES = path.join(import.meta.dirname, '../../test/fixtures/azure');
const SUBSCRIPTION_FILE = path.join(import.meta.dirname, '../../deploy/azure/event-subscription.json');
const SUB = '1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b';
const OTHER_SUB = '9b8a7c6d-0000-4e5f-8a9b-0c1d2e3f4a5b';
const TENANT = '72f988bf-0000-4000-8000-000000000047';
const AUDIENCE = 'api://vm-mesh-sync';
const DB1 = `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.compute/virtualmachines/db-1`;
const DB2 = `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.compute/virtualmachines/db-2`;

function fixture(name: string): unknown {
  return JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8')) as unknown;
}

function firstEvent(name: string): Record<string, unknown> {
  return (fixture(name) as Array<Record<string, unknown>>)[0]!;
}

function request(body: unknown, options: { method?: string; headers?: WebhookRequest['headers']; query?: WebhookRequest['query']; rawBody?: string } = {}): WebhookRequest {
  return {
    method: options.method ?? 'POST',
    headers: options.headers ?? {},
    query: options.query ?? {},
    body,
    rawBody: options.rawBody ?? (body === undefined ? '' : JSON.stringify(body)),
  };
}

function receiver(webhook?: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, now?: () => Date): EventGridReceiver {
  // Through the schema, so that defaults (param `code`, no client ids) are the real ones.
  const parsed = webhook === undefined ? undefined : azureProviderSchema.shape.webhook.parse(webhook);
  return new EventGridReceiver({ name: 'prod', subscriptions: [SUB], webhook: parsed as AzureWebhookConfig | undefined, env, ...(now ? { now } : {}) });
}

describe('handle', () => {
  const r = receiver({ querySecret: { value: 's3cret' } });

  it('answers the subscription validation event with its validation code', () => {
    expect(r.handle(request(fixture('eventgrid-subscription-validation.json')))).toEqual({
      kind: 'reply',
      status: 200,
      body: { validationResponse: '512d38b6-c7b8-40c8-89fe-f46f9e9622b6' },
    });
  });

  it('a validation event without a code is malformed', () => {
    const event = firstEvent('eventgrid-subscription-validation.json');
    event.data = { validationUrl: 'https://example.invalid' };
    const err = thrown(() => r.handle(request([event])));
    expect(isVmsError(err, 'VMS_ERR_WEBHOOK_BODY')).toBe(true);
    expect((err as Error).message).toBe('event [0]: the subscription validation event has no "data.validationCode" string');
  });

  it('answers the CloudEvents OPTIONS handshake with the origin it was asked for', () => {
    const options = request(undefined, { method: 'OPTIONS', headers: { 'webhook-request-origin': 'eventgrid.azure.net' } });
    expect(r.handle(options)).toEqual({ kind: 'reply', status: 200, headers: { 'WebHook-Allowed-Origin': 'eventgrid.azure.net' } });
    const limited = receiver({ querySecret: { value: 's3cret' }, allowedRate: 120 });
    expect(limited.handle(options)).toEqual({ kind: 'reply', status: 200, headers: { 'WebHook-Allowed-Origin': 'eventgrid.azure.net', 'WebHook-Allowed-Rate': '120' } });
  });

  it('an OPTIONS request without WebHook-Request-Origin, or with one that is no host, is malformed', () => {
    for (const headers of [{}, { 'webhook-request-origin': 'evil.example\r\nSet-Cookie: x' }, { 'webhook-request-origin': ['a', 'b'] }]) {
      expect(isVmsError(thrown(() => r.handle(request(undefined, { method: 'OPTIONS', headers }))), 'VMS_ERR_WEBHOOK_BODY')).toBe(true);
    }
  });

  it.each([
    ['a VM write', 'eventgrid-vm-write.json'],
    ['a tag write on the VM (its tags extension resource)', 'eventgrid-vm-tags-write.json'],
    ['a deallocate action', 'eventgrid-vm-deallocate.json'],
    ['a delete', 'eventgrid-vm-delete.json'],
  ])('%s in the Event Grid schema refreshes the VM, by its lowercased resource id and no region', (_, name) => {
    expect(r.handle(request(fixture(name)))).toEqual({ kind: 'refresh', refs: [{ provider: 'azure', account: SUB, id: DB1 }], ignored: 0 });
  });

  it('a single CloudEvent (start action) refreshes the VM', () => {
    expect(r.handle(request(fixture('cloudevents-vm-start.json')))).toEqual({ kind: 'refresh', refs: [{ provider: 'azure', account: SUB, id: DB1 }], ignored: 0 });
  });

  it('a CloudEvents batch refreshes its VMs and counts what it ignored', () => {
    expect(r.handle(request(fixture('cloudevents-batch.json')))).toEqual({ kind: 'refresh', refs: [{ provider: 'azure', account: SUB, id: DB2 }], ignored: 2 });
  });

  it('every power action refreshes; other VM actions are ignored with the reason', () => {
    for (const action of POWER_ACTIONS) {
      const event = firstEvent('eventgrid-vm-deallocate.json');
      event.data = { ...(event.data as object), operationName: `Microsoft.Compute/virtualMachines/${action}/action` };
      expect(r.handle(request([event])), action).toMatchObject({ kind: 'refresh' });
    }
    const runCommand = firstEvent('eventgrid-vm-deallocate.json');
    runCommand.data = { ...(runCommand.data as object), operationName: 'Microsoft.Compute/virtualMachines/runCommand/action' };
    expect(r.handle(request([runCommand]))).toEqual({ kind: 'ignored', reason: "VM action 'Microsoft.Compute/virtualMachines/runCommand/action' does not change what an entry says" });
  });

  it('ignores, with reasons, other resources, other subscriptions and other event types', () => {
    const [, nic, extension] = fixture('cloudevents-batch.json') as unknown[];
    const otherSub = firstEvent('eventgrid-vm-write.json');
    const uri = String((otherSub.data as { resourceUri: string }).resourceUri).replace(SUB, OTHER_SUB);
    otherSub.subject = uri;
    otherSub.data = { ...(otherSub.data as object), resourceUri: uri };
    const failure = { ...firstEvent('eventgrid-vm-write.json'), eventType: 'Microsoft.Resources.ResourceWriteFailure' };
    const deleted = { ...firstEvent('eventgrid-subscription-validation.json'), eventType: 'Microsoft.EventGrid.SubscriptionDeletedEvent', data: {} };

    expect(r.handle(request([nic]))).toEqual({ kind: 'ignored', reason: 'ResourceWriteSuccess on microsoft.network/networkinterfaces, not a virtual machine' });
    expect(r.handle(request([extension]))).toEqual({ kind: 'ignored', reason: 'ResourceWriteSuccess on microsoft.compute/virtualmachines/extensions, not a virtual machine' });
    expect(r.handle(request([otherSub]))).toEqual({ kind: 'ignored', reason: `subscription ${OTHER_SUB} is not a subscription of azure provider "prod"` });
    expect(r.handle(request([failure, deleted]))).toEqual({
      kind: 'ignored',
      reason: '"Microsoft.Resources.ResourceWriteFailure" events are not acted on; "Microsoft.EventGrid.SubscriptionDeletedEvent" events are not acted on',
    });
  });

  it('one VM named by several events is refreshed once; subject stands in for a missing resourceUri', () => {
    const write = firstEvent('eventgrid-vm-write.json');
    const bySubject = { ...firstEvent('eventgrid-vm-deallocate.json'), data: { operationName: 'Microsoft.Compute/virtualMachines/deallocate/action' } };
    const upper = { ...write, data: { ...(write.data as object), resourceUri: DB1.toUpperCase().replace('/SUBSCRIPTIONS/', '/subscriptions/') } };
    expect(r.handle(request([write, bySubject, upper]))).toEqual({ kind: 'refresh', refs: [{ provider: 'azure', account: SUB, id: DB1 }], ignored: 0 });
  });

  it('reads the body from its text when it was not parsed', () => {
    const text = readFileSync(path.join(FIXTURES, 'eventgrid-vm-write.json'), 'utf8');
    expect(r.handle(request(undefined, { rawBody: text }))).toMatchObject({ kind: 'refresh', refs: [{ id: DB1 }] });
  });

  it.each<[string, WebhookRequest, string]>([
    ['an empty body', request(undefined), 'the body is empty; expected Event Grid events or CloudEvents as JSON'],
    ['text that is not JSON', request(undefined, { rawBody: '{"eventType":' }), 'the body is not JSON'],
    ['an empty array', request([]), 'the body is an empty array; expected Event Grid events or CloudEvents'],
    ['an event that is not an object', request([42]), 'event [0]: an event must be a JSON object, not a number'],
    ['an event without a type', request([{ subject: DB1, data: {} }]), 'event [0]: the event has neither an "eventType" string (Event Grid schema) nor "specversion" (CloudEvents 1.0)'],
    ['a CloudEvent without a type', request({ specversion: '1.0', source: `/subscriptions/${SUB}`, data: {} }), 'the CloudEvent has no "type" string'],
    ['a resource event whose data is not an object', request([{ eventType: EVENT_TYPES.write, subject: DB1, data: 'x' }]), `event [0]: "data" of a ${EVENT_TYPES.write} event must be a JSON object, not a string`],
    ['a resource event that names no resource', request([{ eventType: EVENT_TYPES.delete, data: {} }]), `event [0]: a ${EVENT_TYPES.delete} event must name its resource in "data.resourceUri" or "subject"`],
    ['a resource that is not an ARM id', request([{ eventType: EVENT_TYPES.write, data: { resourceUri: 'db-1' } }]), "event [0]: the resource 'db-1' is not an Azure resource id (/subscriptions/…)"],
  ])('%s is malformed', (_, req, message) => {
    const err = thrown(() => r.handle(req));
    expect(isVmsError(err, 'VMS_ERR_WEBHOOK_BODY')).toBe(true);
    expect((err as Error).message).toContain(message);
  });
});

describe('authenticate with a query secret', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vms-azure-hook-'));
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts the secret in the query, and refuses a wrong or missing one', async () => {
    const r = receiver({ querySecret: { value: 's3cret' } });
    await expect(r.authenticate(request({}, { query: { code: 's3cret' } }))).resolves.toBeUndefined();

    const wrong = await rejection(r.authenticate(request({}, { query: { code: 's3cret!' } })));
    expect(isVmsError(wrong, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((wrong as Error).message).toBe('wrong credentials for azure provider "prod"');

    const missing = await rejection(r.authenticate(request({}, { query: { token: 's3cret' } })));
    expect(isVmsError(missing, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((missing as Error).message).toBe('missing credentials: expected query parameter code');
  });

  it('guards the handshakes too: the validation event and OPTIONS need the secret', async () => {
    const r = receiver({ querySecret: { value: 's3cret' } });
    const validation = fixture('eventgrid-subscription-validation.json');
    const handshake = { method: 'OPTIONS', headers: { 'webhook-request-origin': 'eventgrid.azure.net' } };

    expect(isVmsError(await rejection(r.authenticate(request(validation))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect(isVmsError(await rejection(r.authenticate(request(undefined, handshake))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);

    const withSecret = request(validation, { query: { code: 's3cret' } });
    await r.authenticate(withSecret);
    expect(r.handle(withSecret)).toMatchObject({ kind: 'reply', body: { validationResponse: '512d38b6-c7b8-40c8-89fe-f46f9e9622b6' } });
    await expect(r.authenticate(request(undefined, { ...handshake, query: { code: 's3cret' } }))).resolves.toBeUndefined();
  });

  it('reads the secret from a custom parameter, an environment variable or a file', async () => {
    const fromEnv = receiver({ querySecret: { param: 'key', value: { env: 'VMS_HOOK_SECRET' } } }, { VMS_HOOK_SECRET: 'from-env' });
    await expect(fromEnv.authenticate(request({}, { query: { key: 'from-env' } }))).resolves.toBeUndefined();
    expect(isVmsError(await rejection(fromEnv.authenticate(request({}, { query: { code: 'from-env' } }))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);

    const file = path.join(dir, 'secret');
    writeFileSync(file, 'from-file\n');
    await expect(receiver({ querySecret: { value: { file } } }).authenticate(request({}, { query: { code: 'from-file' } }))).resolves.toBeUndefined();
  });

  it('a secret that cannot be read, or is empty, refuses every request without revealing anything', async () => {
    const unset = await rejection(receiver({ querySecret: { value: { env: 'VMS_UNSET' } } }).authenticate(request({}, { query: { code: '' } })));
    expect(isVmsError(unset, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((unset as Error).message).toContain('environment variable VMS_UNSET is not set');

    const file = path.join(dir, 'empty');
    writeFileSync(file, '\n');
    const empty = await rejection(receiver({ querySecret: { value: { file } } }).authenticate(request({}, { query: { code: '' } })));
    expect((empty as Error).message).toBe('the webhook secret of azure provider "prod" is empty');
  });

  it('without webhook settings, every request is refused', async () => {
    const err = await rejection(receiver(undefined).authenticate(request({}, { query: { code: 'anything' } })));
    expect(isVmsError(err, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((err as Error).message).toContain('no webhook credentials configured');
  });
});

describe('authenticate with a Microsoft Entra token', () => {
  let keys: FakeEntraKeys;
  // Tokens are issued at a fixed time and checked against a clock set relative to it.
  const ISSUED = Date.parse('2025-01-15T09:00:00Z') / 1000;
  const during = () => new Date((ISSUED + 600) * 1000);
  const after = () => new Date((ISSUED + 3 * 3600) * 1000);

  beforeAll(async () => {
    keys = await startFakeEntraKeys();
  });

  afterAll(async () => {
    await keys.close();
  });

  function entra(extra: Record<string, unknown> = {}, now = during): EventGridReceiver {
    return receiver({ entra: { tenantId: TENANT, audience: AUDIENCE, jwksUri: keys.jwksUri, ...extra } }, {}, now);
  }

  function bearer(token: string): WebhookRequest {
    return request({}, { headers: { authorization: `Bearer ${token}` } });
  }

  it('accepts a v2.0 and a v1.0 token of the tenant for the audience; the key set is fetched once', async () => {
    const r = entra();
    const fetchesBefore = keys.fetches;
    await expect(r.authenticate(bearer(await keys.token({ tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED })))).resolves.toBeUndefined();
    await expect(r.authenticate(bearer(await keys.token({ tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED, version: 'v1' })))).resolves.toBeUndefined();
    expect(keys.fetches - fetchesBefore).toBe(1);
  });

  it.each<[string, Parameters<FakeEntraKeys['token']>[0], RegExp]>([
    ['another audience', { tenantId: TENANT, audience: 'api://someone-else', issuedAt: ISSUED }, /unexpected "aud" claim value/],
    ['another tenant', { tenantId: '00000000-1111-4222-8333-444444444444', audience: AUDIENCE, issuedAt: ISSUED }, /unexpected "iss" claim value/],
    ['a key that is not the tenant’s', { tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED, unknownKey: true }, /no applicable key found in the JSON Web Key Set/],
  ])('refuses a token for %s', async (_, options, reason) => {
    const err = await rejection(entra().authenticate(bearer(await keys.token(options))));
    expect(isVmsError(err, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((err as Error).message).toMatch(/^wrong credentials for azure provider "prod": the bearer token is refused: /);
    expect((err as Error).message).toMatch(reason);
  });

  it('refuses an expired token', async () => {
    const token = await keys.token({ tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED });
    await expect(entra({}, during).authenticate(bearer(token))).resolves.toBeUndefined();
    const err = await rejection(entra({}, after).authenticate(bearer(token)));
    expect(isVmsError(err, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect((err as Error).message).toMatch(/"exp" claim timestamp check failed/);
  });

  it('accepts an expired token for server.tokenClockSkew after its expiry and no longer (60 s by default)', async () => {
    const token = await keys.token({ tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED });
    const expiry = ISSUED + 3600;
    const at = (seconds: number) => () => new Date((expiry + seconds) * 1000);
    await expect(entra({}, at(59)).authenticate(bearer(token))).resolves.toBeUndefined();
    expect(isVmsError(await rejection(entra({}, at(61)).authenticate(bearer(token))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    const lenient = (now: () => Date) =>
      new EventGridReceiver({ name: 'prod', subscriptions: [SUB], webhook: { entra: { tenantId: TENANT, audience: AUDIENCE, jwksUri: keys.jwksUri, clientIds: [] } } as AzureWebhookConfig, now, clockSkewMs: 120_000 });
    await expect(lenient(at(119)).authenticate(bearer(token))).resolves.toBeUndefined();
    expect(isVmsError(await rejection(lenient(at(121)).authenticate(bearer(token))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
  });

  it('with clientIds, refuses tokens of other clients', async () => {
    const r = entra({ clientIds: [EVENT_GRID_CLIENT_ID.toUpperCase()] });
    await expect(r.authenticate(bearer(await keys.token({ tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED })))).resolves.toBeUndefined();
    const other = await rejection(r.authenticate(bearer(await keys.token({ tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED, clientId: '11111111-2222-4333-8444-555555555555' }))));
    expect((other as Error).message).toBe(
      'wrong credentials for azure provider "prod": the token was issued to client 11111111-2222-4333-8444-555555555555, which is not in webhook.entra.clientIds',
    );
  });

  it('refuses a missing, malformed or repeated Authorization header', async () => {
    const r = entra();
    const token = await keys.token({ tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED });
    expect((await rejection(r.authenticate(request({}))) as Error).message).toBe('missing credentials: expected a Microsoft Entra bearer token');
    expect(isVmsError(await rejection(r.authenticate(bearer('not.a.jwt'))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
    expect(isVmsError(await rejection(r.authenticate(request({}, { headers: { authorization: [`Bearer ${token}`, `Bearer ${token}`] } }))), 'VMS_ERR_WEBHOOK_UNAUTHORIZED')).toBe(true);
  });

  it('with both configured, either one is enough', async () => {
    const r = receiver({ querySecret: { value: 's3cret' }, entra: { tenantId: TENANT, audience: AUDIENCE, jwksUri: keys.jwksUri } }, {}, during);
    await expect(r.authenticate(request({}, { query: { code: 's3cret' } }))).resolves.toBeUndefined();
    await expect(r.authenticate(bearer(await keys.token({ tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED })))).resolves.toBeUndefined();
    const missing = await rejection(r.authenticate(request({})));
    expect((missing as Error).message).toBe('missing credentials: expected query parameter code or a Microsoft Entra bearer token');
  });

  it('keys that cannot be fetched are not the caller’s fault: a plain error, so the delivery is retried', async () => {
    const r = receiver({ entra: { tenantId: TENANT, audience: AUDIENCE, jwksUri: 'http://127.0.0.1:9/keys' } }, {}, during);
    const err = await rejection(r.authenticate(bearer(await keys.token({ tenantId: TENANT, audience: AUDIENCE, issuedAt: ISSUED }))));
    expect(isVmsError(err)).toBe(false);
    expect((err as Error).message).toMatch(/^the signing keys of tenant 72f988bf-0000-4000-8000-000000000047 cannot be read from http:\/\/127\.0\.0\.1:9\/keys: /);
  });
});

// Event Grid's filtering for the subset the deployed subscription uses: included event types, and
// advanced filters (all must hold) of StringContains and StringIn, compared without regard to case.
function passesFilter(filter: { includedEventTypes: string[]; advancedFilters: Array<{ operatorType: string; key: string; values: string[] }> }, event: Record<string, unknown>): boolean {
  const type = String(event.eventType ?? event.type);
  if (!filter.includedEventTypes.includes(type)) return false;
  return filter.advancedFilters.every((f) => {
    const value = f.key.split('.').reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined), event);
    if (typeof value !== 'string') return false;
    const have = value.toLowerCase();
    if (f.operatorType === 'StringContains') return f.values.some((v) => have.includes(v.toLowerCase()));
    if (f.operatorType === 'StringIn') return f.values.some((v) => have === v.toLowerCase());
    throw new Error(`operator ${f.operatorType} is not modelled here`);
  });
}

describe('deploy/azure/event-subscription.json', () => {
  const { filter } = (JSON.parse(readFileSync(SUBSCRIPTION_FILE, 'utf8')) as { properties: { filter: Parameters<typeof passesFilter>[0] } }).properties;
  const r = receiver({ querySecret: { value: 's3cret' } });

  it('lets through every event the receiver acts on', () => {
    const events = [
      ...['eventgrid-vm-write.json', 'eventgrid-vm-tags-write.json', 'eventgrid-vm-deallocate.json', 'eventgrid-vm-delete.json'].map(firstEvent),
      fixture('cloudevents-vm-start.json') as Record<string, unknown>,
      (fixture('cloudevents-batch.json') as Array<Record<string, unknown>>)[0]!,
    ];
    for (const event of events) {
      expect(r.handle(request([event])).kind).toBe('refresh');
      expect(passesFilter(filter, event), String(event.id)).toBe(true);
    }
    for (const action of POWER_ACTIONS) {
      const event = { ...firstEvent('eventgrid-vm-deallocate.json') };
      event.data = { ...(event.data as object), operationName: `Microsoft.Compute/virtualMachines/${action}/action` };
      expect(passesFilter(filter, event), action).toBe(true);
    }
    expect(filter.includedEventTypes.sort()).toEqual(Object.values(EVENT_TYPES).sort());
  });

  it('holds back what the receiver would only ignore', () => {
    const [, nic, extension] = fixture('cloudevents-batch.json') as Array<Record<string, unknown>>;
    const runCommand = firstEvent('eventgrid-vm-deallocate.json');
    runCommand.data = { ...(runCommand.data as object), operationName: 'Microsoft.Compute/virtualMachines/runCommand/action' };
    for (const event of [nic!, extension!, runCommand, { ...firstEvent('eventgrid-vm-write.json'), eventType: 'Microsoft.Resources.ResourceWriteFailure' }]) {
      expect(r.handle(request([event])).kind).toBe('ignored');
      expect(passesFilter(filter, event), String(event.id)).toBe(false);
    }
  });
});
