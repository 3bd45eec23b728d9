import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import type { WebhookCredentials, WebhookOutcome, WebhookReceiver, WebhookRequest } from '../../providers/provider.ts';
import { ERROR_CODES, VmsError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { Metrics } from '../metrics.ts';
import type { InstanceRef } from '../model.ts';
import { sampleValue } from './metrics-sample.test-helper.ts';
import { maskQuery, redactHeaders, serializeRequest } from './request-log.ts';
import type { FastifyInstance } from 'fastify';
import { type Readiness, type ServerDeps, type VmsServers, buildServers } from './server.ts';

const KEY = 's3cret';

/**
 * A receiver speaking a tiny protocol: `x-api-key` must be KEY; the body's `type` says what the
 * request amounts to. It records what it was handed.
 */
class FakeReceiver implements WebhookReceiver {
  readonly seen: WebhookRequest[] = [];
  crash: boolean;

  constructor(options: { crash?: boolean } = {}) {
    this.crash = options.crash ?? false;
  }

  async authenticate(req: WebhookCredentials): Promise<void> {
    if (req.headers['x-api-key'] !== KEY) throw new VmsError('VMS_ERR_WEBHOOK_UNAUTHORIZED', 'x-api-key is missing or wrong');
  }

  handle(req: WebhookRequest): WebhookOutcome {
    this.seen.push(req);
    if (this.crash) throw new TypeError('cannot read properties of undefined');
    if (req.method === 'OPTIONS') {
      return { kind: 'reply', status: 200, headers: { 'webhook-allowed-origin': 'eventgrid.azure.net', allow: 'POST' } };
    }
    const body = req.body as { type?: unknown; ids?: unknown } | undefined;
    if (typeof body !== 'object' || body === null || typeof body.type !== 'string') {
      throw new VmsError('VMS_ERR_WEBHOOK_BODY', 'the body has no "type"');
    }
    switch (body.type) {
      case 'refresh': {
        const ids = Array.isArray(body.ids) ? body.ids.filter((id): id is string => typeof id === 'string') : [];
        const refs: InstanceRef[] = ids.map((id) => ({ provider: 'aws', account: '123456789012', region: 'eu-west-1', id }));
        return { kind: 'refresh', refs, ignored: Array.isArray(body.ids) ? body.ids.length - ids.length : 0 };
      }
      case 'ping':
        return { kind: 'ignored', reason: 'a ping needs nothing' };
      case 'validate':
        return { kind: 'reply', status: 200, body: { validationResponse: 'abc' }, headers: { 'x-handshake': 'done' } };
      default:
        throw new VmsError('VMS_ERR_WEBHOOK_BODY', `unknown type '${body.type}'`);
    }
  }
}

/** Records refresh calls; fails or hangs when told to. */
class RecordingRefresh {
  readonly calls: Array<{ provider: string; refs: InstanceRef[] }> = [];
  mode: 'ok' | 'fail' | 'hang' = 'ok';

  readonly refresh = async (provider: string, refs: InstanceRef[]): Promise<void> => {
    if (this.mode === 'fail') throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
    if (this.mode === 'hang') return new Promise<void>(() => {});
    this.calls.push({ provider, refs });
  };
}

interface Harness {
  servers: VmsServers;
  /** The webhook port's server. */
  webhooks: FastifyInstance;
  /** The admin port's server. */
  admin: FastifyInstance;
  metrics: Metrics;
  receiver: FakeReceiver;
  refresh: RecordingRefresh;
  readinessCalls: () => number;
}

const built: VmsServers[] = [];
afterEach(async () => {
  await Promise.all(built.splice(0).map((s) => s.close()));
});

function harness(overrides: Partial<ServerDeps> & { receiver?: FakeReceiver; readinessResult?: Readiness } = {}): Harness {
  const metrics = new Metrics({ defaultMetrics: false });
  const receiver = overrides.receiver ?? new FakeReceiver();
  const refresh = new RecordingRefresh();
  let readinessCalls = 0;
  const readinessResult: Readiness = overrides.readinessResult ?? { ready: true, checks: { redis: { ok: true }, kubernetes: { ok: true } } };
  const servers = buildServers({
    logger: silentLogger(),
    metrics,
    bodyLimit: 1024,
    receivers: new Map<string, WebhookReceiver>([['aws', receiver]]),
    refresh: refresh.refresh,
    readiness: async () => {
      readinessCalls++;
      return readinessResult;
    },
    status: async () => ({ scopes: [{ key: 'aws:prod:123456789012:eu-west-1', lastResync: '2025-01-01T00:00:00.000Z' }] }),
    dependencyTimeoutMs: 200,
    ...overrides,
  });
  built.push(servers);
  return { servers, webhooks: servers.webhooks, admin: servers.admin, metrics, receiver, refresh, readinessCalls: () => readinessCalls };
}

function post(app: FastifyInstance, body: string, headers: Record<string, string> = {}, provider = 'aws') {
  return app.inject({
    method: 'POST',
    url: `/webhooks/${provider}`,
    headers: { 'content-type': 'application/json', 'x-api-key': KEY, ...headers },
    payload: body,
  });
}

function expectErrorBody(json: unknown, code: keyof typeof ERROR_CODES): void {
  expect(json).toEqual({ code, message: expect.any(String), hint: ERROR_CODES[code] });
}

describe('GET /healthz', () => {
  it('answers ok without asking any dependency', async () => {
    const h = harness();
    const res = await h.admin.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
    expect(h.readinessCalls()).toBe(0);
  });
});

describe('GET /readyz', () => {
  it('answers 200 with the checks when ready', async () => {
    const h = harness();
    const res = await h.admin.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ready: true, checks: { redis: { ok: true }, kubernetes: { ok: true } } });
  });

  it('answers 503 with the checks when not ready', async () => {
    const checks = { redis: { ok: false, detail: 'connect ECONNREFUSED' }, kubernetes: { ok: true } };
    const h = harness({ readinessResult: { ready: false, checks } });
    const res = await h.admin.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ ready: false, checks });
  });

  it('answers 503 when a check failed even though the readiness said ready', async () => {
    const h = harness({ readinessResult: { ready: true, checks: { 'scope:static:onprem': { ok: false, detail: 'no completed resync' } } } });
    const res = await h.admin.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json().ready).toBe(false);
  });

  it('answers 503 when the readiness checks throw or hang', async () => {
    const throwing = harness({ readiness: async () => Promise.reject(new Error('redis ping failed')) });
    const thrown = await throwing.admin.inject({ method: 'GET', url: '/readyz' });
    expect(thrown.statusCode).toBe(503);
    expect(thrown.json().checks.readiness.ok).toBe(false);

    const hanging = harness({ readiness: () => new Promise<Readiness>(() => {}) });
    const hung = await hanging.admin.inject({ method: 'GET', url: '/readyz' });
    expect(hung.statusCode).toBe(503);
    expect(hung.json().checks.readiness.detail).toMatch(/longer than 200 ms/);
  });
});

describe('GET /metrics', () => {
  it('answers Prometheus text with the registry content type', async () => {
    const h = harness();
    const res = await h.admin.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(h.metrics.contentType);
    expect(sampleValue(res.body, 'vms_changes_enqueued_total', { op: 'create' })).toBe(0);
  });

  it('counts accepted and rejected webhooks by provider, outcome and code', async () => {
    const h = harness();
    await post(h.webhooks, JSON.stringify({ type: 'refresh', ids: ['i-1'] }));
    await post(h.webhooks, JSON.stringify({ type: 'ping' }));
    await post(h.webhooks, JSON.stringify({ type: 'ping' }));
    await post(h.webhooks, JSON.stringify({ type: 'ping' }), { 'x-api-key': 'wrong' });
    await post(h.webhooks, '{', {});
    await post(h.webhooks, '{}', {}, 'nope');
    const text = (await h.admin.inject({ method: 'GET', url: '/metrics' })).body;
    expect(sampleValue(text, 'vms_webhook_events_total', { provider: 'aws', outcome: 'refresh' })).toBe(1);
    expect(sampleValue(text, 'vms_webhook_events_total', { provider: 'aws', outcome: 'ignored' })).toBe(2);
    expect(sampleValue(text, 'vms_webhook_rejected_total', { provider: 'aws', code: 'VMS_ERR_WEBHOOK_UNAUTHORIZED' })).toBe(1);
    expect(sampleValue(text, 'vms_webhook_rejected_total', { provider: 'aws', code: 'VMS_ERR_WEBHOOK_BODY' })).toBe(1);
    expect(sampleValue(text, 'vms_webhook_rejected_total', { provider: 'unknown', code: 'VMS_ERR_WEBHOOK_UNKNOWN_PROVIDER' })).toBe(1);
    expect(text).not.toContain('provider="nope"');
  });
});

describe('GET /status', () => {
  it('answers the status document', async () => {
    const h = harness();
    const res = await h.admin.inject({ method: 'GET', url: '/status' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ scopes: [{ key: 'aws:prod:123456789012:eu-west-1', lastResync: '2025-01-01T00:00:00.000Z' }] });
  });

  it('answers 500 with a code and no stack when the status cannot be built', async () => {
    const h = harness({ status: async () => Promise.reject(new Error('boom at /srv/app/services/x.ts:1:1')) });
    const res = await h.admin.inject({ method: 'GET', url: '/status' });
    expect(res.statusCode).toBe(500);
    expectErrorBody(res.json(), 'VMS_ERR_INTERNAL');
    expect(res.body).not.toContain('boom');
    expect(res.body).not.toContain('.ts:');
  });
});

describe('POST /webhooks/:provider', () => {
  it('queues a refresh of the referenced instances and answers 202', async () => {
    const h = harness();
    const res = await post(h.webhooks, JSON.stringify({ type: 'refresh', ids: ['i-1', 'i-2', 7] }));
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ accepted: 2, ignored: 1 });
    expect(h.refresh.calls).toEqual([
      {
        provider: 'aws',
        refs: [
          { provider: 'aws', account: '123456789012', region: 'eu-west-1', id: 'i-1' },
          { provider: 'aws', account: '123456789012', region: 'eu-west-1', id: 'i-2' },
        ],
      },
    ]);
  });

  it.each([
    ['a lone surrogate', '"vm\\ud800"', 'its id is not well-formed Unicode (a lone surrogate)'],
    ['a control character', '"vm\\u0000x"', 'its id contains a control character'],
  ])('answers 400 with the reason to a reference with %s, and queues nothing', async (_, id, reason) => {
    const h = harness();
    const res = await post(h.webhooks, `{"type":"refresh","ids":["i-ok",${id}]}`);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ code: 'VMS_ERR_WEBHOOK_BODY', message: `instance reference 2 of the event cannot be described: ${reason}`, hint: ERROR_CODES.VMS_ERR_WEBHOOK_BODY });
    expect(h.refresh.calls).toEqual([]);
  });

  it('queues nothing for a refresh without references', async () => {
    const h = harness();
    const res = await post(h.webhooks, JSON.stringify({ type: 'refresh', ids: [] }));
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ accepted: 0, ignored: 0 });
    expect(h.refresh.calls).toEqual([]);
  });

  it('hands the receiver the raw body, lower-case headers and one value per query name', async () => {
    const h = harness();
    const raw = '{ "type" : "ping",\n  "n": 1 }';
    const res = await h.webhooks.inject({
      method: 'POST',
      url: '/webhooks/aws?token=a&token=b&x=1',
      headers: { 'content-type': 'text/plain; charset=UTF-8', 'X-Api-Key': KEY, 'X-Amz-Sns-Message-Type': 'Notification' },
      payload: raw,
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ignored: 'a ping needs nothing' });
    const seen = h.receiver.seen[0]!;
    expect(seen.rawBody).toBe(raw);
    expect(seen.body).toEqual({ type: 'ping', n: 1 });
    expect(seen.headers['x-amz-sns-message-type']).toBe('Notification');
    expect({ ...seen.query }).toEqual({ token: 'a', x: '1' });
  });

  it.each(['application/cloudevents+json', 'application/cloudevents-batch+json', 'application/json; charset=utf-8'])('accepts %s', async (type) => {
    const h = harness();
    const res = await post(h.webhooks, JSON.stringify({ type: 'ping' }), { 'content-type': type });
    expect(res.statusCode).toBe(200);
  });

  it('answers 401 to wrong credentials and never handles the body', async () => {
    const h = harness();
    const res = await post(h.webhooks, JSON.stringify({ type: 'refresh', ids: ['i-1'] }), { 'x-api-key': 'guess' });
    expect(res.statusCode).toBe(401);
    expectErrorBody(res.json(), 'VMS_ERR_WEBHOOK_UNAUTHORIZED');
    expect(h.receiver.seen).toEqual([]);
    expect(h.refresh.calls).toEqual([]);
  });

  it('refuses a caller without credentials before reading its body: a 1 MB upload gets its 401 after the headers', async () => {
    const h = harness({ bodyLimit: 2 * 1024 * 1024 });
    await h.webhooks.listen({ host: '127.0.0.1', port: 0 });
    const { port } = h.webhooks.server.address() as net.AddressInfo;
    const socket = net.connect(port, '127.0.0.1');
    const answer = new Promise<string>((resolve, reject) => {
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString('latin1');
        if (text.includes('\r\n\r\n') && text.includes('}')) resolve(text);
      });
      socket.on('error', reject);
      // A server that waits for the rest of the body never answers: that is the failure.
      socket.setTimeout(10_000, () => reject(new Error('no answer while the body was incomplete: the server waited for it')));
    });
    // The headers promise a megabyte, and only a kilobyte of it is ever sent.
    const size = 1024 * 1024;
    socket.write(`POST /webhooks/aws HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: ${size}\r\n\r\n`);
    socket.write('['.repeat(1024));
    const text = await answer;
    socket.destroy();
    expect(text).toMatch(/^HTTP\/1\.1 401 /);
    expect(text).toContain('VMS_ERR_WEBHOOK_UNAUTHORIZED');
    expect(h.receiver.seen).toEqual([]);
  });

  it('answers 401, not a parse error, to a deeply nested body without credentials', async () => {
    const h = harness({ bodyLimit: 1024 * 1024 });
    const res = await post(h.webhooks, '['.repeat(200_000) + ']'.repeat(200_000), { 'x-api-key': '' });
    expect(res.statusCode).toBe(401);
    expectErrorBody(res.json(), 'VMS_ERR_WEBHOOK_UNAUTHORIZED');
  });

  it('answers 429 with Retry-After to a client past server.rateLimit, counts it, and leaves other clients and the probes alone', async () => {
    const h = harness({ rateLimit: { max: 3, windowMs: 60_000 }, trustProxy: true });
    const from = (ip: string, key = KEY) => post(h.webhooks, JSON.stringify({ type: 'ping' }), { 'x-forwarded-for': ip, 'x-api-key': key });
    // Refused requests count too: guessing keys is limited like anything else.
    expect((await from('203.0.113.7', 'guess')).statusCode).toBe(401);
    expect((await from('203.0.113.7')).statusCode).toBe(200);
    expect((await from('203.0.113.7')).statusCode).toBe(200);
    const limited = await from('203.0.113.7');
    expect(limited.statusCode).toBe(429);
    expectErrorBody(limited.json(), 'VMS_ERR_WEBHOOK_RATE_LIMITED');
    expect(limited.json().message).toContain('more than 3 webhook requests');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await from('198.51.100.1')).statusCode).toBe(200);
    expect((await h.admin.inject({ method: 'GET', url: '/healthz', headers: { 'x-forwarded-for': '203.0.113.7' } })).statusCode).toBe(200);
    expect(sampleValue(await h.metrics.text(), 'vms_webhook_rejected_total', { provider: 'aws', code: 'VMS_ERR_WEBHOOK_RATE_LIMITED' })).toBe(1);
  });

  it('has no rate limit with server.rateLimit.max 0', async () => {
    const h = harness({ rateLimit: { max: 0, windowMs: 60_000 } });
    for (let i = 0; i < 20; i++) expect((await post(h.webhooks, JSON.stringify({ type: 'ping' }))).statusCode).toBe(200);
  });

  it('answers 400 with the parser reason to a body that is not JSON', async () => {
    const h = harness();
    const res = await post(h.webhooks, '{"type": "refresh",');
    expect(res.statusCode).toBe(400);
    expectErrorBody(res.json(), 'VMS_ERR_WEBHOOK_BODY');
    expect(res.json().message).toMatch(/^the body is not JSON: /);
    expect(h.receiver.seen).toEqual([]);
  });

  it('answers 400 to a body with a __proto__ key', async () => {
    const h = harness();
    const res = await post(h.webhooks, '{"type":"ping","__proto__":{"polluted":true}}');
    expect(res.statusCode).toBe(400);
    expectErrorBody(res.json(), 'VMS_ERR_WEBHOOK_BODY');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('answers 400 when the receiver finds the body malformed', async () => {
    const h = harness();
    const res = await post(h.webhooks, JSON.stringify({ kind: 'what' }));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ code: 'VMS_ERR_WEBHOOK_BODY', message: 'the body has no "type"', hint: ERROR_CODES.VMS_ERR_WEBHOOK_BODY });
  });

  it('answers 413 to a body over the limit', async () => {
    const h = harness();
    const res = await post(h.webhooks, JSON.stringify({ type: 'ping', pad: 'x'.repeat(2000) }));
    expect(res.statusCode).toBe(413);
    expectErrorBody(res.json(), 'VMS_ERR_WEBHOOK_TOO_LARGE');
    expect(res.json().message).toContain('1024 bytes');
    expect(sampleValue(await h.metrics.text(), 'vms_webhook_rejected_total', { provider: 'aws', code: 'VMS_ERR_WEBHOOK_TOO_LARGE' })).toBe(1);
  });

  it('answers 415 to a content type it does not parse', async () => {
    const h = harness();
    const res = await post(h.webhooks, 'a=1', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(res.statusCode).toBe(415);
    expectErrorBody(res.json(), 'VMS_ERR_WEBHOOK_BODY');
  });

  it('answers 404 to a provider without a receiver, before reading the body', async () => {
    const h = harness();
    const res = await post(h.webhooks, 'not even json', {}, 'gcp');
    expect(res.statusCode).toBe(404);
    expectErrorBody(res.json(), 'VMS_ERR_WEBHOOK_UNKNOWN_PROVIDER');
    expect(res.json().message).toContain('configured: aws');
  });

  it('answers 503 so the cloud retries when the refresh cannot be queued', async () => {
    const h = harness();
    h.refresh.mode = 'fail';
    const failed = await post(h.webhooks, JSON.stringify({ type: 'refresh', ids: ['i-1'] }));
    expect(failed.statusCode).toBe(503);
    expectErrorBody(failed.json(), 'VMS_ERR_REDIS_UNREACHABLE');
    expect(failed.body).not.toContain('ECONNREFUSED');

    h.refresh.mode = 'hang';
    const hung = await post(h.webhooks, JSON.stringify({ type: 'refresh', ids: ['i-1'] }));
    expect(hung.statusCode).toBe(503);
    expectErrorBody(hung.json(), 'VMS_ERR_REDIS_UNREACHABLE');

    const text = await h.metrics.text();
    expect(sampleValue(text, 'vms_webhook_rejected_total', { provider: 'aws', code: 'VMS_ERR_REDIS_UNREACHABLE' })).toBe(2);
    expect(sampleValue(text, 'vms_webhook_events_total', { provider: 'aws', outcome: 'refresh' })).toBeUndefined();
  });

  it('passes a receiver reply through with its status, headers and body', async () => {
    const h = harness();
    const res = await post(h.webhooks, JSON.stringify({ type: 'validate' }));
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-handshake']).toBe('done');
    expect(res.json()).toEqual({ validationResponse: 'abc' });
    expect(h.refresh.calls).toEqual([]);
  });

  it('answers the CloudEvents OPTIONS handshake through the receiver', async () => {
    const h = harness();
    const res = await h.webhooks.inject({
      method: 'OPTIONS',
      url: '/webhooks/aws',
      headers: { 'x-api-key': KEY, 'webhook-request-origin': 'eventgrid.azure.net' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['webhook-allowed-origin']).toBe('eventgrid.azure.net');
    expect(res.headers.allow).toBe('POST');
    expect(res.body).toBe('');
    expect(h.receiver.seen[0]?.body).toBeUndefined();
    expect(sampleValue(await h.metrics.text(), 'vms_webhook_events_total', { provider: 'aws', outcome: 'reply' })).toBe(1);
  });

  it('answers 500 with a generic code when the receiver fails unexpectedly', async () => {
    const h = harness({ receiver: new FakeReceiver({ crash: true }) });
    const res = await post(h.webhooks, JSON.stringify({ type: 'ping' }));
    expect(res.statusCode).toBe(500);
    expectErrorBody(res.json(), 'VMS_ERR_INTERNAL');
    expect(res.body).not.toContain('cannot read properties');
    const healthy = await h.admin.inject({ method: 'GET', url: '/healthz' });
    expect(healthy.statusCode).toBe(200);
  });
});

describe('shutting down', () => {
  it('answers webhooks and /readyz with 503 and /healthz with 200', async () => {
    const h = harness();
    expect(h.servers.isShuttingDown()).toBe(false);
    h.servers.setShuttingDown();
    expect(h.servers.isShuttingDown()).toBe(true);

    const hook = await post(h.webhooks, JSON.stringify({ type: 'refresh', ids: ['i-1'] }));
    expect(hook.statusCode).toBe(503);
    expectErrorBody(hook.json(), 'VMS_ERR_SHUTTING_DOWN');
    expect(h.refresh.calls).toEqual([]);

    const ready = await h.admin.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json().checks.shutdown.ok).toBe(false);

    const health = await h.admin.inject({ method: 'GET', url: '/healthz' });
    expect(health.statusCode).toBe(200);
  });
});

describe('other routes', () => {
  it('answer 404 with a code', async () => {
    const h = harness();
    for (const [server, method, url] of [
      [h.admin, 'GET', '/nope?secret=1'],
      [h.webhooks, 'GET', '/webhooks/aws'],
      [h.admin, 'POST', '/healthz'],
    ] as const) {
      const res = await server.inject({ method, url });
      expect(res.statusCode).toBe(404);
      expectErrorBody(res.json(), 'VMS_ERR_HTTP_REQUEST');
      expect(res.body).not.toContain('secret');
    }
  });

  it('each route is on its own port: webhooks on the webhook port, health, readiness, metrics and status on the admin port, 404 elsewhere', async () => {
    const h = harness();
    const routes = [
      { method: 'GET', url: '/healthz', port: 'admin', status: 200 },
      { method: 'GET', url: '/readyz', port: 'admin', status: 200 },
      { method: 'GET', url: '/metrics', port: 'admin', status: 200 },
      { method: 'GET', url: '/status', port: 'admin', status: 200 },
      { method: 'POST', url: '/webhooks/aws', port: 'webhooks', status: 200 },
      { method: 'OPTIONS', url: '/webhooks/aws', port: 'webhooks', status: 200 },
    ] as const;
    for (const route of routes) {
      for (const port of ['admin', 'webhooks'] as const) {
        const res = await h[port].inject({
          method: route.method,
          url: route.url,
          headers: { 'content-type': 'application/json', 'x-api-key': KEY },
          ...(route.method === 'POST' ? { payload: JSON.stringify({ type: 'ping' }) } : {}),
        });
        expect({ route: `${route.method} ${route.url}`, port, status: res.statusCode }).toEqual({ route: `${route.method} ${route.url}`, port, status: port === route.port ? route.status : 404 });
        if (port !== route.port) expect(res.json().message).toMatch(/on this port/);
      }
    }
  });

  it('answer 400 with a code to a URL that cannot be decoded', async () => {
    const h = harness();
    const res = await h.webhooks.inject({ method: 'POST', url: '/webhooks/%E0%A4%A', headers: { 'x-api-key': KEY } });
    expect(res.statusCode).toBe(400);
    expectErrorBody(res.json(), 'VMS_ERR_HTTP_REQUEST');
  });
});

describe('request log serializers', () => {
  it('leave headers out of the request line and mask query values', () => {
    const line = serializeRequest({
      method: 'POST',
      url: '/webhooks/gcp?token=abc&x',
      ip: '10.0.0.1',
      headers: { authorization: 'Bearer abc', 'x-api-key': 'k', 'user-agent': 'Google-Cloud-PubSub' },
    });
    expect(line).toEqual({ method: 'POST', url: '/webhooks/gcp?token=***&x=***', remoteAddress: '10.0.0.1', userAgent: 'Google-Cloud-PubSub' });
    expect(JSON.stringify(line)).not.toContain('abc');
  });

  it('mask credential headers wherever headers are logged', () => {
    expect(redactHeaders({ authorization: 'Bearer t', 'x-api-key': 'k', 'aeg-sas-key': 's', 'content-type': 'application/json' })).toEqual({
      authorization: '***',
      'x-api-key': '***',
      'aeg-sas-key': '***',
      'content-type': 'application/json',
    });
    expect(maskQuery('/metrics')).toBe('/metrics');
  });
});

describe('any request to a webhook', () => {
  const HEADER_NAME = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/).filter(
    (name) => !['content-length', 'transfer-encoding', 'host', 'content-type', 'connection', 'expect', 'upgrade', 'te', 'trailer'].includes(name),
  );
  const HEADER_VALUE = fc.stringMatching(/^[\x21-\x7e]{0,40}$/);
  // Weighted towards requests that get past each check, so every answer of the route is reached.
  const BODY = fc.oneof(
    { arbitrary: fc.string({ maxLength: 300 }), weight: 2 },
    { arbitrary: fc.json({ maxDepth: 3 }), weight: 2 },
    {
      arbitrary: fc
        .record({ type: fc.constantFrom('refresh', 'ping', 'validate', 'other'), ids: fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 4 }) })
        .map((b) => JSON.stringify(b)),
      weight: 6,
    },
    { arbitrary: fc.string({ minLength: 1100, maxLength: 1500 }), weight: 1 },
  );
  const CONTENT_TYPE = fc.oneof(
    {
      arbitrary: fc.constantFrom('application/json', 'text/plain; charset=utf-8', 'application/cloudevents+json', 'application/cloudevents-batch+json'),
      weight: 8,
    },
    { arbitrary: fc.constantFrom('application/xml', 'application/json;;', 'APPLICATION/JSON', ''), weight: 1 },
    { arbitrary: HEADER_VALUE, weight: 1 },
  );
  const PROVIDER = fc.oneof({ arbitrary: fc.constant('aws'), weight: 8 }, { arbitrary: fc.string({ maxLength: 12 }), weight: 1 });
  const WITH_KEY = fc.oneof({ arbitrary: fc.constant(true), weight: 8 }, { arbitrary: fc.constant(false), weight: 1 });

  it('never answers a 5xx other than the designed 503 and never throws', async () => {
    const h = harness();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('POST', 'OPTIONS'),
        PROVIDER,
        CONTENT_TYPE,
        BODY,
        fc.dictionary(HEADER_NAME, HEADER_VALUE, { maxKeys: 6 }),
        WITH_KEY,
        fc.constantFrom('ok', 'fail') as fc.Arbitrary<'ok' | 'fail'>,
        async (method, provider, contentType, body, headers, withKey, refreshMode) => {
          h.refresh.mode = refreshMode;
          const res = await h.webhooks.inject({
            method,
            url: `/webhooks/${encodeURIComponent(provider)}`,
            headers: { ...headers, ...(contentType ? { 'content-type': contentType } : {}), ...(withKey ? { 'x-api-key': KEY } : {}) },
            payload: body,
          });
          if (res.statusCode >= 500) {
            expect(res.statusCode).toBe(503);
            expect(res.json().code).toBe('VMS_ERR_REDIS_UNREACHABLE');
          }
          if (res.statusCode >= 400) {
            const json = res.json();
            expect(Object.keys(ERROR_CODES)).toContain(json.code);
            expect(json.hint).toBe(ERROR_CODES[json.code as keyof typeof ERROR_CODES]);
            expect(res.body).not.toMatch(/\n\s+at /);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
