// The `type: gcp` provider block. Checked once at start, so that a wrong project id or endpoint is
// an error naming the key rather than a listing that fails every resync.
import { z } from 'zod';
import { blockName, blockNamespaces } from '../../config/block.ts';
import { duration } from '../../config/duration.ts';

/** A GCP project id: 6-30 lowercase letters, digits and dashes, starting with a letter; legacy domain-scoped ids (`example.com:proj`) too. */
export const GCP_PROJECT_ID = /^([a-z0-9][-a-z0-9.]*[a-z0-9]:)?[a-z][-a-z0-9]{4,28}[a-z0-9]$/;

/** Hosts a plain-http endpoint may name: credentials must never cross a network in clear text. */
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** The Compute API endpoint override: an origin only, since the client appends `/compute/v1/...` itself. */
const endpointUrl = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL such as https://compute.googleapis.com' });
    return;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL such as https://compute.googleapis.com' });
  } else if (url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    ctx.addIssue({ code: 'custom', message: 'must be an origin only (scheme, host and port), without path, query or credentials' });
  } else if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname)) {
    ctx.addIssue({ code: 'custom', message: 'may use http only for 127.0.0.1, localhost or [::1]; use https for any other host' });
  }
});

const certsUrl = z.string().refine((value) => {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
  } catch {
    return false;
  }
}, 'must be an https URL (http only for 127.0.0.1, localhost or [::1])');

const webhookSchema = z.strictObject({
  /**
   * The audience the push subscription puts into its tokens (`--push-auth-token-audience`); when the
   * subscription sets none, Pub/Sub uses the push endpoint URL, so write that URL here.
   */
  audience: z.string().min(1, 'must not be empty'),
  /** The service account the push subscription signs its tokens as (`--push-auth-service-account`). */
  serviceAccountEmail: z
    .string()
    .regex(/^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'must be a service account email such as pubsub-push@my-project.iam.gserviceaccount.com')
    .transform((email) => email.toLowerCase()),
  /** Where Google's token-signing certificates are fetched (PEM map by key id, as Google serves them). */
  certsUrl: certsUrl.default('https://www.googleapis.com/oauth2/v1/certs'),
});

/** The config block of GCP Compute Engine discovery: each project is one scope. */
export const gcpProviderSchema = z.strictObject({
  type: z.literal('gcp'),
  /** Names this block; appears in scope keys (`gcp:<name>:<project>`) and in metrics. */
  name: blockName,
  /** Namespaces this block's instances may be put in (narrows mapping.namespace.allowed). */
  namespaces: blockNamespaces,
  projects: z
    .array(z.string().regex(GCP_PROJECT_ID, 'must be a GCP project id such as my-project-123 (the id, not the number or the display name)'))
    .min(1, 'must list at least one project')
    .refine((p) => new Set(p).size === p.length, 'must not list a project twice'),
  /**
   * Path of a service-account key file (a mounted Secret). Absent: Application Default Credentials
   * (GKE Workload Identity, GOOGLE_APPLICATION_CREDENTIALS, the metadata server).
   */
  keyFile: z.string().min(1).optional(),
  /** Compute API endpoint override (Private Service Connect, a local fake); the default is Google's. */
  endpoint: endpointUrl.optional(),
  /**
   * Also offer each network tag (`tags.items`) as a tag with the value `true`, so the selector and
   * other tag rules can use it; a label with the same key wins. Listing then filters client-side.
   */
  networkTagsAsTags: z.boolean().default(false),
  /** Attempts per API call (429, 5xx, timeouts) before the project counts as failed. */
  maxAttempts: z.number().int().min(1).max(20).default(5),
  /** The first retry delay; doubled on each attempt, with full jitter, up to 32 times this. */
  retryDelay: duration.pipe(z.number().min(1, 'must be more than 0')).default(500),
  /** Instances per aggregatedList page (Compute accepts 1-500). */
  pageSize: z.number().int().min(1).max(500).default(500),
  /** The longest one API request may take before it is abandoned and retried. */
  timeout: duration.pipe(z.number().min(1, 'must be more than 0')).default(30_000),
  /** How Pub/Sub push requests prove themselves. Without it, every webhook request is refused. */
  webhook: webhookSchema.optional(),
});

/** A GCP provider block after validation. */
export type GcpProviderConfig = z.infer<typeof gcpProviderSchema>;
/** The webhook settings of a GCP provider block. */
export type GcpWebhookConfig = NonNullable<GcpProviderConfig['webhook']>;
