// The HTTP surface of `serve`: webhooks, health, readiness, metrics and status. Everything it needs
// comes in through ServerDeps, so it runs in tests without Redis or a cluster. A webhook never
// reaches a cloud API or the cluster from here: it is authenticated, turned into references by its
// provider's receiver and handed to `refresh`, which only enqueues.
import { validateHeaderName, validateHeaderValue } from 'node:http';
import rateLimit from '@fastify/rate-limit';
import fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { WebhookReceiver, WebhookRequest } from '../../providers/provider.ts';
import { VmsError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { type InstanceRef, referenceProblem } from '../model.ts';
import { WEBHOOK_CONTENT_TYPES, clip, errorBody, toErrorAnswer } from './error-answer.ts';
import { redactHeaders, serializeRequest } from './request-log.ts';
import { flattenQuery, parseWebhookBody } from './webhook-body.ts';

/** One named readiness check. */
export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

/** What /readyz reports. */
export interface Readiness {
  ready: boolean;
  checks: Record<string, ReadinessCheck>;
}

/** The collaborators of the HTTP surface; the runtime wires the real ones, tests pass fakes. */
export interface ServerDeps {
  logger: Logger;
  metrics: Metrics;
  /** Largest webhook body in bytes (config server.bodyLimit). */
  bodyLimit: number;
  /** Webhook requests per client and window (config server.rateLimit); absent or max 0: no limit. */
  rateLimit?: { max: number; windowMs: number };
  /** fastify's trustProxy (config server.trustProxy): whose X-Forwarded-For names the client. */
  trustProxy?: boolean | string[];
  /** Provider kind → its webhook receiver, mounted at /webhooks/<kind>. */
  receivers: ReadonlyMap<string, WebhookReceiver>;
  /** Enqueues a refresh of the referenced instances; never describes them itself. */
  refresh: (provider: string, refs: InstanceRef[]) => Promise<void>;
  /** Redis, the Kubernetes API and the scopes' first resyncs. */
  readiness: () => Promise<Readiness>;
  /** The /status document. */
  status: () => Promise<unknown>;
  /**
   * How long `refresh` and `readiness` may take before the answer is 503; default 5000 ms. A
   * client on a Redis that is down queues commands instead of failing, and a cloud that waits too
   * long for a webhook answer gives up on the delivery.
   */
  dependencyTimeoutMs?: number;
}

/** Switches the server into shutdown: webhooks and /readyz answer 503, /healthz stays 200. */
export interface ShutdownSwitch {
  setShuttingDown(): void;
  isShuttingDown(): boolean;
}

/**
 * The two HTTP servers of `serve`, with their shutdown switch: the webhooks on the port an ingress
 * exposes, and health, readiness, metrics and status on a cluster-internal admin port, so that
 * nothing but webhooks is reachable from outside and /status (instance names, tag values) is not.
 */
export interface VmsServers extends ShutdownSwitch {
  /** POST /webhooks/<provider> only. */
  webhooks: FastifyInstance;
  /** GET /healthz, /readyz, /metrics, /status only. */
  admin: FastifyInstance;
  /** Closes both. */
  close(): Promise<void>;
}

/** The webhook route; its provider segment is bounded to configured kinds before it reaches a metric label. */
export const WEBHOOK_ROUTE = '/webhooks/:provider';

/** Builds the two HTTP servers; call `listen` (or `inject` in tests) on each. */
export function buildServers(deps: ServerDeps): VmsServers {
  let shuttingDown = false;
  const isShuttingDown = (): boolean => shuttingDown;
  const webhooks = buildWebhookServer(deps, isShuttingDown);
  const admin = buildAdminServer(deps, isShuttingDown);
  return {
    webhooks,
    admin,
    setShuttingDown: () => {
      shuttingDown = true;
    },
    isShuttingDown,
    close: async () => {
      await Promise.all([webhooks.close(), admin.close()]);
    },
  };
}

/** A fastify instance with what both servers share: the logger, coded errors and 404s, no body parsers. */
function baseServer(deps: ServerDeps, port: 'webhooks' | 'admin'): FastifyInstance {
  // Typed as fastify's base logger so the instance is the plain FastifyInstance the runtime expects.
  const logger: FastifyBaseLogger = deps.logger.child({ component: 'http', port }, { serializers: { req: serializeRequest, headers: redactHeaders } });
  const app = fastify({
    loggerInstance: logger,
    // Probes and scrapes come every few seconds; their request lines would drown everything else.
    logController: new LogController({ disableRequestLogging: (request: FastifyRequest) => QUIET_PATHS.has(pathOf(request.url)) }),
    bodyLimit: deps.bodyLimit,
    trustProxy: deps.trustProxy ?? false,
    frameworkErrors: (err, _request, reply) => {
      // Fastify's messages here quote the path, which may carry what the client should not see echoed.
      void (reply as FastifyReply).code(400).send(errorBody('VMS_ERR_HTTP_REQUEST', `the request cannot be routed (${err.code})`));
    },
  });

  app.removeAllContentTypeParsers();
  app.setErrorHandler((err, request, reply) => {
    const webhook = request.routeOptions.url === WEBHOOK_ROUTE;
    const contentType = request.headers['content-type'];
    const answer = toErrorAnswer(err, { webhook, bodyLimit: deps.bodyLimit, requestId: request.id, contentType });
    if (webhook) deps.metrics.recordWebhookRejected(providerLabel(deps.receivers, request), answer.body.code);
    if (answer.status >= 500) request.log.error({ err, code: answer.body.code }, 'request failed');
    else request.log.info({ code: answer.body.code, reason: answer.body.message }, 'request rejected');
    return reply.code(answer.status).type('application/json; charset=utf-8').send(answer.body);
  });
  app.setNotFoundHandler((request, reply) => {
    const elsewhere = port === 'webhooks' ? ' (health, readiness, metrics and status are on the admin port, server.adminPort)' : ' (webhooks are on server.port)';
    return reply.code(404).send(errorBody('VMS_ERR_HTTP_REQUEST', `no route ${request.method} ${clip(pathOf(request.url))} on this port${elsewhere}`));
  });
  return app;
}

/** Health, readiness, metrics and status. */
function buildAdminServer(deps: ServerDeps, isShuttingDown: () => boolean): FastifyInstance {
  const timeoutMs = deps.dependencyTimeoutMs ?? 5000;
  const app = baseServer(deps, 'admin');

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (request, reply) => {
    const readiness = isShuttingDown()
      ? { ready: false, checks: { shutdown: { ok: false, detail: 'the process is shutting down' } } }
      : await readinessOrFailure(deps.readiness, timeoutMs, request);
    const ready = readiness.ready && Object.values(readiness.checks).every((check) => check.ok);
    return reply.code(ready ? 200 : 503).send({ ready, checks: readiness.checks });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await deps.metrics.text();
    return reply.type(deps.metrics.contentType).send(text);
  });

  app.get('/status', async () => deps.status());
  return app;
}

/** The webhooks, /webhooks/<provider>. */
function buildWebhookServer(deps: ServerDeps, isShuttingDown: () => boolean): FastifyInstance {
  const timeoutMs = deps.dependencyTimeoutMs ?? 5000;
  const rawBodies = new WeakMap<FastifyRequest, string>();
  const app = baseServer(deps, 'webhooks');
  // Only webhooks take bodies; their text is kept for signature checks and parsed here.
  app.addContentTypeParser([...WEBHOOK_CONTENT_TYPES], { parseAs: 'string', bodyLimit: deps.bodyLimit }, (request, body, done) => {
    const raw = body as string;
    rawBodies.set(request, raw);
    try {
      done(null, parseWebhookBody(raw));
    } catch (err) {
      done(err as Error, undefined);
    }
  });

  const limit = deps.rateLimit ?? { max: 0, windowMs: 0 };
  if (limit.max > 0) {
    void app.register(rateLimit, {
      global: false,
      // Per client address (server.trustProxy decides which address that is behind proxies).
      errorResponseBuilder: (_request, context) =>
        new VmsError(
          'VMS_ERR_WEBHOOK_RATE_LIMITED',
          `more than ${context.max} webhook requests from this client in ${context.after}; retry after ${Math.ceil(context.ttl / 1000)} s (server.rateLimit)`,
        ),
    });
  }
  const webhookRoute = (scope: FastifyInstance): void => {
    scope.route({
      method: ['POST', 'OPTIONS'],
      url: WEBHOOK_ROUTE,
      ...(limit.max > 0 ? { config: { rateLimit: { max: limit.max, timeWindow: limit.windowMs } } } : {}),
      // Checked before the body is read (after the rate limit): an unknown provider, a closing replica
      // or a caller without credentials costs no upload and no parsing.
      preParsing: async (request, _reply, payload) => {
        const provider = providerParam(request);
        const receiver = deps.receivers.get(provider);
        if (!receiver) {
          const known = [...deps.receivers.keys()].sort().join(', ') || 'none';
          throw new VmsError('VMS_ERR_WEBHOOK_UNKNOWN_PROVIDER', `no webhook receiver for provider '${clip(provider)}' (configured: ${known})`);
        }
        if (isShuttingDown()) throw new VmsError('VMS_ERR_SHUTTING_DOWN', 'this replica is shutting down; the delivery should be retried');
        await receiver.authenticate({ method: request.method, headers: { ...request.headers }, query: flattenQuery(request.query) });
        return payload;
      },
      handler: async (request, reply) => {
        const provider = providerParam(request);
        const receiver = deps.receivers.get(provider);
        if (!receiver) throw new VmsError('VMS_ERR_WEBHOOK_UNKNOWN_PROVIDER', `no webhook receiver for provider '${clip(provider)}'`);
        const webhookRequest: WebhookRequest = {
          method: request.method,
          headers: { ...request.headers },
          query: flattenQuery(request.query),
          body: request.body,
          rawBody: rawBodies.get(request) ?? '',
        };
        const outcome = receiver.handle(webhookRequest);
        switch (outcome.kind) {
          case 'refresh': {
            outcome.refs.forEach((ref, i) => {
              const problem = referenceProblem(ref);
              if (problem !== undefined) throw new VmsError('VMS_ERR_WEBHOOK_BODY', `instance reference ${i + 1} of the event cannot be described: ${problem}`);
            });
            if (outcome.refs.length > 0) await refreshOrUnavailable(deps.refresh, provider, outcome.refs, timeoutMs, request);
            deps.metrics.recordWebhook(provider, 'refresh');
            return reply.code(202).send({ accepted: outcome.refs.length, ignored: outcome.ignored });
          }
          case 'ignored':
            deps.metrics.recordWebhook(provider, 'ignored');
            return reply.code(200).send({ ignored: outcome.reason });
          case 'reply':
            sendReply(reply, outcome.status, outcome.headers, outcome.body);
            deps.metrics.recordWebhook(provider, 'reply');
            return reply;
          default:
            throw new Error(`the ${provider} webhook receiver returned an outcome of unknown kind`);
        }
      },
    });
  };
  // In a scope of its own, registered after the rate limit so that the limit sees the route.
  void app.register(async (scope) => webhookRoute(scope));
  return app;
}

const QUIET_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

function pathOf(url: string): string {
  return url.split('?', 1)[0] ?? '';
}

function providerParam(request: FastifyRequest): string {
  const params = request.params as { provider?: unknown } | undefined;
  return typeof params?.provider === 'string' ? params.provider : '';
}

/** The provider label of a webhook metric: a configured kind, or `unknown` so that scanners cannot grow series. */
function providerLabel(receivers: ReadonlyMap<string, WebhookReceiver>, request: FastifyRequest): string {
  const provider = providerParam(request);
  return receivers.has(provider) ? provider : 'unknown';
}

async function refreshOrUnavailable(
  refresh: ServerDeps['refresh'],
  provider: string,
  refs: InstanceRef[],
  timeoutMs: number,
  request: FastifyRequest,
): Promise<void> {
  try {
    await withTimeout(refresh(provider, refs), timeoutMs, 'queueing the refresh');
  } catch (err) {
    request.log.warn({ err }, 'refresh could not be queued');
    throw new VmsError('VMS_ERR_REDIS_UNREACHABLE', 'the refresh could not be queued; the delivery should be retried', undefined, { cause: err });
  }
}

async function readinessOrFailure(readiness: ServerDeps['readiness'], timeoutMs: number, request: FastifyRequest): Promise<Readiness> {
  try {
    return await withTimeout(readiness(), timeoutMs, 'the readiness checks');
  } catch (err) {
    request.log.warn({ err }, 'readiness checks failed');
    return { ready: false, checks: { readiness: { ok: false, detail: `the readiness checks failed: ${(err as Error).message}` } } };
  }
}

/** Sends a receiver's handshake answer; a status or header node would refuse is our bug, answered as 500. */
function sendReply(reply: FastifyReply, status: number, headers: Record<string, string> | undefined, body: unknown): void {
  if (!Number.isInteger(status) || status < 200 || status > 599) throw new Error(`a webhook receiver replied with status ${status}`);
  for (const [name, value] of Object.entries(headers ?? {})) {
    validateHeaderName(name);
    validateHeaderValue(name, value);
  }
  void reply.code(status).headers(headers ?? {});
  void reply.send(body);
}

/** Rejects when `promise` takes longer than `ms`; the work itself is not cancelled, only no longer awaited. */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

