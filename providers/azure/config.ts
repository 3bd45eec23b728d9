// The `type: azure` provider block. Checked once at start, so that a wrong subscription id,
// endpoint or webhook setting is an error naming the key rather than a listing that fails every
// resync.
import { z } from 'zod';
import { blockName, blockNamespaces } from '../../config/block.ts';
import { duration } from '../../config/duration.ts';
import { secretRef } from '../../config/secret.ts';
import { SUBSCRIPTION_ID } from './resource-id.ts';

/** Microsoft Entra tenant ids are GUIDs too. */
export const TENANT_ID = SUBSCRIPTION_ID;
// What a query parameter name may be without escaping.
const QUERY_PARAM = /^[A-Za-z0-9_.~-]+$/;

const httpsUrl = z.string().refine((value) => {
  try {
    return new URL(value).protocol === 'https:';
  } catch {
    return false;
  }
}, 'must be an https URL');

const guid = (what: string) =>
  z
    .string()
    .regex(SUBSCRIPTION_ID, `must be ${what} (a GUID)`)
    .transform((v) => v.toLowerCase());

const webhookSchema = z
  .strictObject({
    /** A secret in the delivery URL's query string (`https://…/webhooks/azure?code=…`), as Event Grid keeps it. */
    querySecret: z
      .strictObject({
        param: z.string().regex(QUERY_PARAM, 'must be a query parameter name (letters, digits, - _ . ~)').default('code'),
        value: secretRef,
      })
      .optional(),
    /** A Microsoft Entra bearer token, as Event Grid sends it for a subscription with Entra authentication. */
    entra: z
      .strictObject({
        tenantId: guid('a Microsoft Entra tenant id'),
        /** The token audience: the application id URI or client id of the app registration the subscription names. */
        audience: z.string().min(1),
        /** Where the tenant's signing keys are; default `https://login.microsoftonline.com/<tenantId>/discovery/v2.0/keys`. */
        jwksUri: z
          .string()
          .refine((value) => {
            try {
              const url = new URL(value);
              // Plain HTTP only to this machine: a key server for local trials and tests.
              return url.protocol === 'https:' || (url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname));
            } catch {
              return false;
            }
          }, 'must be an https URL')
          .optional(),
        /**
         * Client ids allowed to call (the token's `azp` or `appid`); empty: any client of the tenant.
         * Event Grid's own is 4962773b-9cdb-44cf-a8bf-237846a00ab7.
         */
        clientIds: z.array(guid('a client (application) id')).default([]),
      })
      .optional(),
    /** Sent as `WebHook-Allowed-Rate` in the CloudEvents handshake: requests per second this endpoint accepts. */
    allowedRate: z.number().int().min(1).optional(),
  })
  .refine((w) => w.querySecret !== undefined || w.entra !== undefined, 'must configure querySecret or entra (or both)');

/** The config block of Azure VM discovery: one scope per subscription. */
export const azureProviderSchema = z.strictObject({
  type: z.literal('azure'),
  /** Names this block; appears in scope keys (`azure:<name>:<subscription>`) and in metrics. */
  name: blockName,
  /** Namespaces this block's instances may be put in (narrows mapping.namespace.allowed). */
  namespaces: blockNamespaces,
  /** Subscription ids, each a scope. Kept lowercased, as they appear in resource ids. */
  subscriptions: z
    .array(guid('a subscription id'))
    .min(1, 'must list at least one subscription')
    .refine((s) => new Set(s).size === s.length, 'must not list a subscription twice'),
  /**
   * `resource-graph`: one joined query per subscription (needs Microsoft.ResourceGraph/resources/read).
   * `arm`: list VMs, then interfaces and public IPs per resource group, for where Resource Graph is not allowed.
   */
  discovery: z.enum(['resource-graph', 'arm']).default('resource-graph'),
  /** The Resource Manager endpoint; another cloud's (`https://management.usgovcloudapi.net`) or a test fake. */
  endpoint: httpsUrl.default('https://management.azure.com'),
  /** The token scope; default `<endpoint origin>/.default`. */
  tokenScope: z.string().min(1).optional(),
  /** Rows per Resource Graph page (it accepts up to 1000). */
  pageSize: z.number().int().min(1).max(1000).default(1000),
  /** Retries per request after a 429 (waiting as Retry-After says), a 5xx or a network error; then the scope counts as failed. */
  maxRetries: z.number().int().min(0).max(10).default(4),
  /** The first retry delay without Retry-After; it grows exponentially up to maxRetryDelay. */
  retryDelay: duration.default(1000),
  maxRetryDelay: duration.default(30_000),
  /** The longest one request may take before it is abandoned (not retried). */
  timeout: duration.pipe(z.number().min(1, 'must be more than 0')).default(30_000),
  /** How Event Grid deliveries authenticate. Without it, every webhook request is refused. */
  webhook: webhookSchema.optional(),
});

/** An Azure provider block after validation. */
export type AzureProviderConfig = z.infer<typeof azureProviderSchema>;
/** The webhook settings of an Azure provider block. */
export type AzureWebhookConfig = NonNullable<AzureProviderConfig['webhook']>;
