// The Event Grid receiver behind the real HTTP server (fastify inject): what Event Grid sends to
// /webhooks/azure, with the content types it uses, and what it gets back.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../services/logger.ts';
import { Metrics } from '../../services/metrics.ts';
import type { InstanceRef } from '../../services/model.ts';
import type { FastifyInstance } from 'fastify';
import { buildServers } from '../../services/server/server.ts';
import { EventGridReceiver } from './eventgrid.ts';

const FIXTURES = path.join(import.meta.dirname, '../../test/fixtures/azure');
const SUB = '1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b';
const DB1 = `/subscriptions/${SUB}/resourcegroups/rg-mesh/providers/microsoft.compute/virtualmachines/db-1`;

const servers: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function server(): { app: FastifyInstance; refreshed: Array<{ provider: string; refs: InstanceRef[] }> } {
  const refreshed: Array<{ provider: string; refs: InstanceRef[] }> = [];
  const receiver = new EventGridReceiver({ name: 'prod', subscriptions: [SUB], webhook: { querySecret: { param: 'code', value: 's3cret' } } });
  const app = buildServers({
    logger: silentLogger(),
    metrics: new Metrics({ defaultMetrics: false }),
    bodyLimit: 1_048_576,
    receivers: new Map([['azure', receiver]]),
    refresh: async (provider, refs) => {
      refreshed.push({ provider, refs });
    },
    readiness: async () => ({ ready: true, checks: {} }),
    status: async () => ({}),
  }).webhooks;
  servers.push(app);
  return { app, refreshed };
}

function fixtureText(name: string): string {
  return readFileSync(path.join(FIXTURES, name), 'utf8');
}

describe('POST and OPTIONS /webhooks/azure', () => {
  it('answers the validation handshake with the code, when the delivery URL carries the secret', async () => {
    const { app } = server();
    const headers = { 'content-type': 'application/json', 'aeg-event-type': 'SubscriptionValidation' };
    const payload = fixtureText('eventgrid-subscription-validation.json');

    const ok = await app.inject({ method: 'POST', url: '/webhooks/azure?code=s3cret', headers, payload });
    const refused = await app.inject({ method: 'POST', url: '/webhooks/azure?code=guess', headers, payload });

    expect([ok.statusCode, ok.json()]).toEqual([200, { validationResponse: '512d38b6-c7b8-40c8-89fe-f46f9e9622b6' }]);
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toMatchObject({ code: 'VMS_ERR_WEBHOOK_UNAUTHORIZED' });
  });

  it('answers the CloudEvents OPTIONS handshake with WebHook-Allowed-Origin', async () => {
    const { app } = server();
    const res = await app.inject({ method: 'OPTIONS', url: '/webhooks/azure?code=s3cret', headers: { 'webhook-request-origin': 'eventgrid.azure.net' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['webhook-allowed-origin']).toBe('eventgrid.azure.net');
  });

  it('queues a refresh for Event Grid events and for CloudEvents, single and batched', async () => {
    const { app, refreshed } = server();
    const deliveries: Array<[string, string]> = [
      ['application/json', fixtureText('eventgrid-vm-write.json')],
      ['application/cloudevents+json; charset=utf-8', fixtureText('cloudevents-vm-start.json')],
      ['application/cloudevents-batch+json; charset=utf-8', fixtureText('cloudevents-batch.json')],
    ];
    const answers = [];
    for (const [type, payload] of deliveries) {
      const res = await app.inject({ method: 'POST', url: '/webhooks/azure?code=s3cret', headers: { 'content-type': type }, payload });
      answers.push([res.statusCode, res.json()]);
    }

    expect(answers).toEqual([
      [202, { accepted: 1, ignored: 0 }],
      [202, { accepted: 1, ignored: 0 }],
      [202, { accepted: 1, ignored: 2 }],
    ]);
    expect(refreshed.map((r) => [r.provider, r.refs.map((ref) => ref.id)])).toEqual([
      ['azure', [DB1]],
      ['azure', [DB1]],
      ['azure', [DB1.replace('db-1', 'db-2')]],
    ]);
  });

  it('a malformed delivery is a 400 naming the part', async () => {
    const { app } = server();
    const res = await app.inject({ method: 'POST', url: '/webhooks/azure?code=s3cret', headers: { 'content-type': 'application/json' }, payload: '[{"data":{}}]' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'VMS_ERR_WEBHOOK_BODY', message: expect.stringContaining('event [0]') });
  });
});
