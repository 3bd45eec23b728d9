// The Azure SDK clients of one provider block, made on first use and kept: each keeps its token and
// its connections, so a resync costs neither a token request nor a TLS handshake per call. One
// Resource Graph client serves every subscription (the subscription travels in the request); the
// Compute and Network clients are bound to one subscription each, and their packages (about 50 MiB
// of the provider thread) are loaded only when one is first needed: a block that lists through
// Resource Graph needs them only to describe VMs for events.
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { NetworkManagementClient } from '@azure/arm-network';
import { ResourceGraphClient } from '@azure/arm-resourcegraph';
import type { PipelinePolicy, PipelineRequest } from '@azure/core-rest-pipeline';
import { DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import type { AzureProviderConfig } from './config.ts';

/** What the clients need beyond the config block. */
export interface AzureClientsOptions {
  /**
   * The identity that calls Azure. Absent: DefaultAzureCredential, which in a cluster is Workload
   * Identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE), else a service principal
   * from AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET, else a managed identity.
   */
  credential?: TokenCredential;
  /**
   * Certificates (PEM) trusted for the endpoint instead of the public roots. For an endpoint behind
   * a private CA set NODE_EXTRA_CA_CERTS instead, which adds to the public roots.
   */
  ca?: string;
}

// Requests of one call share one PipelineRequest across retries: what happened to it is kept on it.
const attempts = new WeakMap<PipelineRequest, number>();
const armErrors = new WeakMap<PipelineRequest, { code?: string; message?: string }>();

/** How many times a request was sent; 0 when it never reached the transport. */
export function attemptsOf(request: PipelineRequest | undefined): number {
  return request === undefined ? 0 : (attempts.get(request) ?? 0);
}

/**
 * The ARM error body (`{ error: { code, message } }`) of the last failed answer to a request. The
 * SDKs' paging helpers replace its message with "Pagination failed…", which says nothing.
 */
export function armErrorOf(request: PipelineRequest | undefined): { code?: string; message?: string } | undefined {
  return request === undefined ? undefined : armErrors.get(request);
}

/** The SDK clients of one provider block. */
export class AzureClients {
  readonly #config: AzureProviderConfig;
  readonly #credential: TokenCredential;
  readonly #ca: string | undefined;
  #graph: ResourceGraphClient | undefined;
  readonly #compute = new Map<string, ComputeManagementClient>();
  readonly #network = new Map<string, NetworkManagementClient>();

  constructor(config: AzureProviderConfig, options: AzureClientsOptions = {}) {
    this.#config = config;
    // DefaultAzureCredential reads its environment here and asks for a token only on first use.
    this.#credential = options.credential ?? new DefaultAzureCredential();
    this.#ca = options.ca;
  }

  /** The Resource Graph client. */
  graph(): ResourceGraphClient {
    this.#graph ??= new ResourceGraphClient(this.#credential, this.#clientOptions());
    return this.#graph;
  }

  /** The Compute client of one subscription. */
  async compute(subscriptionId: string): Promise<ComputeManagementClient> {
    let client = this.#compute.get(subscriptionId);
    if (!client) {
      const { ComputeManagementClient } = await import('@azure/arm-compute');
      client = this.#compute.get(subscriptionId) ?? new ComputeManagementClient(this.#credential, subscriptionId, this.#clientOptions());
      this.#compute.set(subscriptionId, client);
    }
    return client;
  }

  /** The Network client of one subscription. */
  async network(subscriptionId: string): Promise<NetworkManagementClient> {
    let client = this.#network.get(subscriptionId);
    if (!client) {
      const { NetworkManagementClient } = await import('@azure/arm-network');
      client = this.#network.get(subscriptionId) ?? new NetworkManagementClient(this.#credential, subscriptionId, this.#clientOptions());
      this.#network.set(subscriptionId, client);
    }
    return client;
  }

  /** Forgets every client; their pooled connections close when idle. */
  clear(): void {
    this.#graph = undefined;
    this.#compute.clear();
    this.#network.clear();
  }

  // Shared by every client. The SDKs ask for management.azure.com's scope whatever the endpoint,
  // which is wrong for another cloud: the scope follows the endpoint unless configured.
  #clientOptions() {
    const { endpoint, tokenScope, maxRetries, retryDelay, maxRetryDelay, timeout } = this.#config;
    return {
      endpoint,
      credentials: { scopes: [tokenScope ?? `${new URL(endpoint).origin}/.default`] },
      retryOptions: { maxRetries, retryDelayInMs: retryDelay, maxRetryDelayInMs: maxRetryDelay },
      userAgentOptions: { userAgentPrefix: 'vm-mesh-sync' },
      additionalPolicies: [
        { policy: timeoutPolicy(timeout), position: 'perCall' as const },
        { policy: attemptPolicy(retryDelay, maxRetryDelay), position: 'perRetry' as const },
      ],
      ...(this.#ca === undefined ? {} : { tlsOptions: { ca: this.#ca } }),
    };
  }
}

// The paging helpers send later pages without the caller's options: a client-wide timeout reaches them too.
function timeoutPolicy(timeout: number): PipelinePolicy {
  return {
    name: 'vmsRequestTimeout',
    sendRequest: (request, next) => {
      if (!request.timeout) request.timeout = timeout;
      return next(request);
    },
  };
}

// Per attempt: counts it, keeps the ARM error body, and gives a 429 without Retry-After one, so that
// the SDK's retry policy (which retries a 429 only with such a header) waits and retries it. Resource
// Graph says when its quota resets in x-ms-user-quota-resets-after (hh:mm:ss) instead.
function attemptPolicy(fallbackDelay: number, maxDelay: number): PipelinePolicy {
  return {
    name: 'vmsAttempt',
    sendRequest: async (request, next) => {
      attempts.set(request, (attempts.get(request) ?? 0) + 1);
      const response = await next(request);
      if (response.status === 429 && !RETRY_AFTER_HEADERS.some((h) => response.headers.has(h))) {
        const resetsAfter = quotaResetDelay(response.headers.get('x-ms-user-quota-resets-after'));
        response.headers.set('retry-after-ms', String(Math.min(resetsAfter ?? fallbackDelay, maxDelay)));
      }
      if (response.status >= 400 && response.bodyAsText) {
        try {
          const error = (JSON.parse(response.bodyAsText) as { error?: { code?: unknown; message?: unknown } }).error;
          armErrors.set(request, {
            ...(typeof error?.code === 'string' ? { code: error.code } : {}),
            ...(typeof error?.message === 'string' ? { message: error.message } : {}),
          });
        } catch {
          // Not an ARM error body: the SDK's own message stands.
        }
      }
      return response;
    },
  };
}

const RETRY_AFTER_HEADERS = ['retry-after', 'retry-after-ms', 'x-ms-retry-after-ms'];

/** `hh:mm:ss` (Resource Graph's quota reset) in milliseconds; undefined when absent or malformed. */
export function quotaResetDelay(value: string | undefined): number | undefined {
  const match = value === undefined ? null : /^(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)$/.exec(value.trim());
  if (!match) return undefined;
  return Math.round((Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3])) * 1000);
}
