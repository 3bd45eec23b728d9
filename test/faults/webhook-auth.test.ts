// Every webhook route refuses missing, wrong and (where the scheme can tell) replayed credentials,
// through the real server and the real receivers built from config. One row per authentication
// scheme of each provider; a provider type without a row or a reason fails the first test, so a
// new provider cannot ship a route this table does not cover.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../config/load.ts';
import { providerSchema } from '../../config/schema.ts';
import { createProviders } from '../../providers/index.ts';
import { silentLogger } from '../../services/logger.ts';
import { Metrics } from '../../services/metrics.ts';
import type { InstanceRef } from '../../services/model.ts';
import { webhookReceivers } from '../../services/runtime/receivers.ts';
import type { FastifyInstance } from 'fastify';
import { buildServers } from '../../services/server/server.ts';
import { type FakeEntraKeys, startFakeEntraKeys } from '../fakes/azure/entra-keys.ts';
import { type FakeGoogleCerts, PUSH_AUDIENCE, PUSH_SERVICE_ACCOUNT, startFakeGoogleCerts } from '../fakes/gcp/google-certs.ts';

const FIXTURES = path.join(import.meta.dirname, '../fixtures');
const fixtureText = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');
const AWS_ACCOUNT = '123456789012';
const AZURE_SUBSCRIPTION = '1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const ENTRA_AUDIENCE = 'api://vm-mesh-sync';
const API_KEY = 'k3y-0123456789abcdef';
const PASSWORD = 'pa55-0123456789abcdef';
const QUERY_SECRET = 'qs-0123456789abcdef';

/** Provider types that have no webhook route, and why. */
const WITHOUT_WEBHOOK: Record<string, string> = { static: 'an inventory file has no event bus' };

/** One request as the test sends it. */
interface Req {
  headers: Record<string, string>;
  query?: string;
}

/** One authentication scheme of one provider. */
interface Row {
  name: string;
  provider: 'aws' | 'gcp' | 'azure';
  /** The provider block, with its webhook settings. */
  block: () => Record<string, unknown>;
  body: string;
  valid: () => Promise<Req>;
  missing: () => Promise<Req>;
  /** Wrong credentials of several kinds: another value, one of another length, a near miss. */
  wrong: () => Promise<Req[]>;
  /** A request that was valid once and is no longer; a string says why the scheme cannot tell. */
  replay: (() => Promise<Req>) | string;
  /** For token schemes: the block with its signing keys out of reach, and the code the answer must carry. */
  keysUnreachable?: { block: () => Record<string, unknown>; code: string };
}

/** Where nothing listens: signing keys that cannot be fetched. */
const NO_KEYS = 'http://127.0.0.1:9/keys';

let google: FakeGoogleCerts;
let entra: FakeEntraKeys;
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const HOUR = 3600;
/** A replayed token expired one second more than the clock skew the default config allows (server.tokenClockSkew). */
const EXPIRED_FOR = parseConfig({ providers: [{ type: 'aws', name: 'prod', regions: ['us-east-1'], accounts: [{ id: AWS_ACCOUNT }] }] }).server.tokenClockSkew / 1000 + 1;

const rows: Row[] = [
  {
    name: 'aws API key',
    provider: 'aws',
    block: () => ({ type: 'aws', name: 'prod', regions: ['us-east-1'], accounts: [{ id: AWS_ACCOUNT }], webhook: { apiKey: { value: API_KEY } } }),
    body: fixtureText('aws/ec2-state-change-pending.json'),
    valid: async () => ({ headers: { 'x-api-key': API_KEY } }),
    missing: async () => ({ headers: {} }),
    wrong: async (): Promise<Req[]> => [
      { headers: { 'x-api-key': API_KEY.replace(/.$/, 'X') } },
      { headers: { 'x-api-key': `${API_KEY}0` } },
      { headers: { 'x-api-key': '' } },
      { headers: { 'x-api-key': API_KEY.toUpperCase() } },
      // The key in the wrong header.
      { headers: { authorization: API_KEY } },
    ],
    replay: 'an API key is the same on every delivery, so a captured request replays; only TLS keeps it from being captured',
  },
  {
    name: 'aws Basic',
    provider: 'aws',
    block: () => ({ type: 'aws', name: 'prod', regions: ['us-east-1'], accounts: [{ id: AWS_ACCOUNT }], webhook: { basic: { username: 'eventbridge', password: PASSWORD } } }),
    body: fixtureText('aws/ec2-state-change-pending.json'),
    valid: async () => ({ headers: { authorization: basic('eventbridge', PASSWORD) } }),
    missing: async () => ({ headers: {} }),
    wrong: async () => [
      { headers: { authorization: basic('eventbridge', `${PASSWORD}x`) } },
      { headers: { authorization: basic('eventbridgex', PASSWORD) } },
      { headers: { authorization: basic('', '') } },
      { headers: { authorization: `Bearer ${PASSWORD}` } },
      { headers: { authorization: 'Basic !!!' } },
    ],
    replay: 'Basic credentials are the same on every delivery, so a captured request replays; only TLS keeps it from being captured',
  },
  {
    name: 'gcp Pub/Sub OIDC token',
    provider: 'gcp',
    block: () => ({ type: 'gcp', name: 'shop', projects: ['shop-prod'], webhook: { audience: PUSH_AUDIENCE, serviceAccountEmail: PUSH_SERVICE_ACCOUNT, certsUrl: google.url } }),
    body: JSON.stringify({ ...JSON.parse(fixtureText('gcp/pubsub-push-envelope.json')), message: { data: Buffer.from('{}').toString('base64'), messageId: '1' } }),
    valid: async () => ({ headers: { authorization: `Bearer ${await google.sign()}` } }),
    missing: async () => ({ headers: {} }),
    wrong: async () => [
      { headers: { authorization: `Bearer ${await google.sign({}, { foreignKey: true })}` } },
      { headers: { authorization: `Bearer ${await google.sign({ aud: 'https://elsewhere.example.com/push' })}` } },
      { headers: { authorization: `Bearer ${await google.sign({ email: 'other@shop-prod.iam.gserviceaccount.com' })}` } },
      { headers: { authorization: `Bearer ${await google.sign({}, { alg: 'none' })}` } },
      { headers: { authorization: 'Bearer not.a.token' } },
    ],
    replay: async () => {
      const now = Math.floor(Date.now() / 1000);
      return { headers: { authorization: `Bearer ${await google.sign({ iat: now - HOUR - EXPIRED_FOR, exp: now - EXPIRED_FOR })}` } };
    },
    keysUnreachable: {
      block: () => ({ type: 'gcp', name: 'shop', projects: ['shop-prod'], webhook: { audience: PUSH_AUDIENCE, serviceAccountEmail: PUSH_SERVICE_ACCOUNT, certsUrl: NO_KEYS } }),
      code: 'VMS_ERR_WEBHOOK_KEYS_UNAVAILABLE',
    },
  },
  {
    name: 'azure query secret',
    provider: 'azure',
    block: () => ({ type: 'azure', name: 'subs', subscriptions: [AZURE_SUBSCRIPTION], webhook: { querySecret: { value: QUERY_SECRET } } }),
    body: fixtureText('azure/eventgrid-vm-write.json'),
    valid: async () => ({ headers: {}, query: `?code=${QUERY_SECRET}` }),
    missing: async () => ({ headers: {} }),
    wrong: async (): Promise<Req[]> => [
      { headers: {}, query: `?code=${QUERY_SECRET}x` },
      { headers: {}, query: '?code=' },
      { headers: {}, query: `?Code=${QUERY_SECRET}` },
      { headers: { 'x-code': QUERY_SECRET } },
    ],
    replay: 'the query secret is the same on every delivery, so a captured request replays; only TLS keeps it from being captured',
  },
  {
    name: 'azure Entra token',
    provider: 'azure',
    block: () => ({
      type: 'azure',
      name: 'subs',
      subscriptions: [AZURE_SUBSCRIPTION],
      webhook: { entra: { tenantId: TENANT, audience: ENTRA_AUDIENCE, jwksUri: entra.jwksUri } },
    }),
    body: fixtureText('azure/eventgrid-vm-write.json'),
    valid: async () => ({ headers: { authorization: `Bearer ${await entra.token({ tenantId: TENANT, audience: ENTRA_AUDIENCE })}` } }),
    missing: async () => ({ headers: {} }),
    wrong: async () => [
      { headers: { authorization: `Bearer ${await entra.token({ tenantId: TENANT, audience: ENTRA_AUDIENCE, unknownKey: true })}` } },
      { headers: { authorization: `Bearer ${await entra.token({ tenantId: TENANT, audience: 'api://other' })}` } },
      { headers: { authorization: `Bearer ${await entra.token({ tenantId: '11111111-2222-4333-8444-555555555555', audience: ENTRA_AUDIENCE })}` } },
      { headers: { authorization: 'Bearer a.b.c' } },
    ],
    replay: async () => ({
      headers: { authorization: `Bearer ${await entra.token({ tenantId: TENANT, audience: ENTRA_AUDIENCE, issuedAt: Math.floor(Date.now() / 1000) - HOUR - EXPIRED_FOR, lifetime: HOUR })}` },
    }),
    keysUnreachable: {
      block: () => ({ type: 'azure', name: 'subs', subscriptions: [AZURE_SUBSCRIPTION], webhook: { entra: { tenantId: TENANT, audience: ENTRA_AUDIENCE, jwksUri: NO_KEYS } } }),
      // The Event Grid receiver reports unreadable keys as an internal failure, by its own design.
      code: 'VMS_ERR_INTERNAL',
    },
  },
];

beforeAll(async () => {
  google = await startFakeGoogleCerts();
  entra = await startFakeEntraKeys();
});
afterAll(async () => {
  await google.close();
  await entra.close();
});

/** The real server with the receivers config makes for `blocks`, and the refreshes it asked for. */
async function serverFor(blocks: Array<Record<string, unknown>>): Promise<{ app: FastifyInstance; routes: string[]; refreshes: InstanceRef[][] }> {
  const config = parseConfig({ providers: blocks });
  const receivers = webhookReceivers(await createProviders(config.providers, { mapping: config.mapping, tokenClockSkewMs: config.server.tokenClockSkew }));
  const refreshes: InstanceRef[][] = [];
  const app = buildServers({
    logger: silentLogger(),
    metrics: new Metrics(),
    bodyLimit: 1 << 20,
    receivers,
    refresh: async (_provider, refs) => void refreshes.push(refs),
    readiness: async () => ({ ready: true, checks: {} }),
    status: async () => ({}),
  }).webhooks;
  await app.ready();
  return { app, routes: [...receivers.keys()].sort(), refreshes };
}

describe('webhook authentication', () => {
  it('the table covers every provider type: each has rows, or a reason why it has no webhook route', async () => {
    const types = providerSchema.options.map((o) => o.shape.type.value as string).sort();
    const covered = [...new Set([...rows.map((r) => r.provider), ...Object.keys(WITHOUT_WEBHOOK)])].sort();
    expect(types).toEqual(covered);
    // And every row's block really mounts a route under its provider's name.
    const { app, routes } = await serverFor(rows.map((r) => r.block()).filter((b, i, all) => all.findIndex((x) => x.type === b.type) === i));
    await app.close();
    expect(routes).toEqual([...new Set(rows.map((r) => r.provider))].sort());
  });

  describe.each(rows)('$name', (row) => {
    let app: FastifyInstance;
    let refreshes: InstanceRef[][];
    beforeAll(async () => {
      ({ app, refreshes } = await serverFor([row.block()]));
    });
    afterAll(async () => {
      await app.close();
    });

    const send = (req: Req) =>
      app.inject({ method: 'POST', url: `/webhooks/${row.provider}${req.query ?? ''}`, headers: { 'content-type': 'application/json', ...req.headers }, payload: row.body });
    const expectRefused = async (req: Req) => {
      const before = refreshes.length;
      const res = await send(req);
      expect(res.statusCode, res.body).toBe(401);
      expect(res.json().code).toBe('VMS_ERR_WEBHOOK_UNAUTHORIZED');
      expect(refreshes.length).toBe(before);
    };

    it('accepts valid credentials (so that the refusals below are about the credentials alone)', async () => {
      const res = await send(await row.valid());
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(200);
      expect(res.statusCode, res.body).toBeLessThan(300);
    });

    it('refuses missing credentials', async () => {
      await expectRefused(await row.missing());
    });

    it('refuses wrong credentials', async () => {
      for (const req of await row.wrong()) await expectRefused(req);
    });

    // Keys out of reach are no verdict on the token: 500, so that the sender retries, never 401 or 2xx.
    const unreachable = row.keysUnreachable;
    if (unreachable) {
      it(`answers 500 ${unreachable.code} when the signing keys cannot be fetched`, async () => {
        const down = await serverFor([unreachable.block()]);
        try {
          const res = await down.app.inject({
            method: 'POST',
            url: `/webhooks/${row.provider}`,
            headers: { 'content-type': 'application/json', ...(await row.valid()).headers },
            payload: row.body,
          });
          expect(res.statusCode, res.body).toBe(500);
          expect(res.json().code).toBe(unreachable.code);
          expect(down.refreshes).toEqual([]);
        } finally {
          await down.app.close();
        }
      });
    }

    // Rows whose scheme cannot tell a replay carry the reason instead of a test.
    const replay = row.replay;
    if (typeof replay === 'function') {
      it('refuses a replayed token, expired by the allowed clock skew and one second', async () => {
        await expectRefused(await replay());
      });
    }
  });
});
