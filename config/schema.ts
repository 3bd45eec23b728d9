// The one schema of vm-mesh-sync's configuration. Every default lives here; unknown keys are
// errors (strict objects) so that a typo never silently falls back to a default.
import { z } from 'zod';
import { awsProviderSchema } from '../providers/aws/config.ts';
import { azureProviderSchema } from '../providers/azure/config.ts';
import { gcpProviderSchema } from '../providers/gcp/config.ts';
import { staticProviderSchema } from '../providers/static/config.ts';
import { namespacePatterns } from './block.ts';
import { duration } from './duration.ts';
import { DEFAULT_KUBE_PAGE_SIZE, isReservedLabelKey } from '../services/model.ts';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const TAG_KEY = z.string().min(1).max(512);
const LABEL_KEY = z
  .string()
  .regex(
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
    'must be a Kubernetes label key (optional DNS prefix and /, then up to 63 letters, digits, -, _ or .)',
  );
const RESERVED_LABEL_MESSAGE = 'is a label vm-mesh-sync sets itself (ownership and mesh service selection); use another key, and the mesh-service tag for services';
const LABEL_VALUE = z
  .string()
  .regex(/^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/, 'must be a Kubernetes label value (up to 63 letters, digits, -, _ or .)');
const PORT_NAME = z
  .string()
  .regex(/^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$/, 'must be letters, digits and dashes')
  .max(62);
const PORT_NUMBER = z.number().int().min(1).max(65535);

/** How an instance's tags and addresses become a WorkloadEntry. The same rules for every provider. */
export const mappingSchema = z.strictObject({
  /** Which instances are onboarded: those with this tag (and value, when given). */
  selector: z
    .strictObject({
      tag: TAG_KEY.default('mesh'),
      /** The value the tag must have; `*` accepts any value. Compared without regard to case. */
      value: z.string().default('true'),
    })
    .prefault({}),
  labels: z
    .strictObject({
      /** tag key → label key. */
      fromTags: z
        .record(TAG_KEY, LABEL_KEY.refine((key) => !isReservedLabelKey(key), RESERVED_LABEL_MESSAGE))
        .default({ 'mesh-app': 'app', 'mesh-version': 'version' }),
      /** Tags whose key starts with this prefix become labels named by the rest of the key; empty turns it off. */
      tagPrefix: z.string().default('mesh-label-'),
      /** Labels put on every entry's spec. */
      static: z
        .record(LABEL_KEY, LABEL_VALUE)
        .superRefine((labels, ctx) => {
          for (const key of Object.keys(labels)) if (isReservedLabelKey(key)) ctx.addIssue({ code: 'custom', path: [key], message: RESERVED_LABEL_MESSAGE });
        })
        .default({}),
    })
    .prefault({}),
  namespace: z
    .strictObject({
      tag: TAG_KEY.default('mesh-namespace'),
      default: z.string().regex(DNS1123_LABEL, 'must be a DNS-1123 label').max(63).default('default'),
      /**
       * Namespaces a namespace tag may choose (names, or globs with *). Absent: the default
       * namespace alone, so a tag cannot put an endpoint into another team's namespace.
       */
      allowed: namespacePatterns.optional(),
    })
    .prefault({}),
  serviceAccount: z
    .strictObject({
      tag: TAG_KEY.default('mesh-service-account'),
      /** Empty: no serviceAccount in the entry (Istio then uses the namespace's `default`). */
      default: z
        .string()
        .max(253)
        .regex(/^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be empty or a DNS-1123 subdomain')
        .default(''),
      /** Create the named service account in the entry's namespace when it is missing. */
      ensure: z.boolean().default(true),
    })
    .prefault({}),
  ports: z
    .strictObject({
      tag: TAG_KEY.default('mesh-ports'),
      /** Ports of entries whose instance has no ports tag: name → number. */
      default: z.record(PORT_NAME, PORT_NUMBER).default({}),
    })
    .prefault({}),
  address: z
    .strictObject({
      /** Which address the entry gets. `first-available` tries private IPv4, public IPv4, then IPv6. */
      prefer: z.enum(['private-ipv4', 'public-ipv4', 'ipv6', 'first-available']).default('private-ipv4'),
      /** A tag that overrides `prefer` per instance (same values). */
      tag: TAG_KEY.default('mesh-address'),
    })
    .prefault({}),
  network: z
    .strictObject({
      /** The mesh network of every entry; empty means none unless `byNetworkId` names one. */
      name: LABEL_VALUE.default(''),
      /** VPC / VPC network / VNet id → mesh network name; wins over `name`. */
      byNetworkId: z.record(z.string().min(1), LABEL_VALUE.min(1)).default({}),
      /** A tag that sets the network per instance; wins over both. */
      tag: TAG_KEY.default('mesh-network'),
    })
    .prefault({}),
  locality: z
    .strictObject({
      /** Write `region/zone` as the entry's locality. */
      enabled: z.boolean().default(true),
    })
    .prefault({}),
  weight: z
    .strictObject({
      tag: TAG_KEY.default('mesh-weight'),
    })
    .prefault({}),
  health: z
    .strictObject({
      /** A probe (`http:8080/healthz`, `tcp:5432`, …) turns on Istio's health checking of the entry. */
      tag: TAG_KEY.default('mesh-health'),
    })
    .prefault({}),
  service: z
    .strictObject({
      /**
       * The mesh service a VM serves (a DNS-1035 label, the Service's name). Its entry gets the
       * spec labels SERVICE_LABEL and INSTALLATION_LABEL, which the Service (or ServiceEntry) selects by.
       */
      tag: TAG_KEY.default('mesh-service'),
    })
    .prefault({}),
});


/** What vm-mesh-sync writes for each (namespace, service) its entries name (the service tag). */
export const servicesSchema = z.strictObject({
  /**
   * `service`: a Kubernetes Service (ClusterIP) selecting the entries; `service-entry`: an Istio
   * ServiceEntry (MESH_INTERNAL, workloadSelector) instead; `off`: neither (the entries still carry
   * the service label, for a Service written by hand).
   */
  kind: z.enum(['service', 'service-entry', 'off']).default('service'),
  /** Write a WorkloadGroup per service, for `istioctl x workload entry configure`. */
  workloadGroups: z.boolean().default(true),
  /** The cluster's DNS domain: hosts are `<service>.<namespace>.svc.<clusterDomain>`. */
  clusterDomain: z
    .string()
    .max(200)
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a DNS name such as cluster.local')
    .default('cluster.local'),
});

/** The provider blocks; each cloud adds its schema to this union. */
export const providerSchema = z.discriminatedUnion('type', [staticProviderSchema, awsProviderSchema, gcpProviderSchema, azureProviderSchema]);

/** The whole configuration file. */
export const configSchema = z.strictObject({
  /** Distinguishes installations that share a cluster: only entries with this owner id are ever changed. */
  ownerId: z.string().regex(DNS1123_LABEL, 'must be a DNS-1123 label (lowercase letters, digits, dashes)').max(63).default('default'),
  /** `sync` creates, updates and deletes; `upsert-only` never deletes; `create-only` only creates. */
  policy: z.enum(['sync', 'upsert-only', 'create-only']).default('sync'),
  deletionGuard: z
    .strictObject({
      /** A plan deleting more than this share of a scope's entries holds those deletes back. */
      maxDeleteFraction: z.number().min(0).max(1).default(0.5),
      /** Up to this many deletes in one scope are never held back. */
      allowDeletesUpTo: z.number().int().min(0).default(2),
    })
    .prefault({}),
  mapping: mappingSchema.prefault({}),
  services: servicesSchema.prefault({}),
  providers: z.array(providerSchema).min(1, 'must list at least one provider block'),
  resync: z
    .strictObject({
      /** How often every scope is listed again (`serve`). */
      interval: duration.default(300_000),
      /** A listing that takes longer is abandoned and counts as failed (nothing deleted). */
      timeout: duration.default(120_000),
    })
    .prefault({}),
  redis: z
    .strictObject({
      /** Overridden by REDIS_URL. May carry a password; it is masked wherever config is shown. */
      url: z.string().url().default('redis://127.0.0.1:6379'),
      /** Key prefix of every queue; wrap it in braces (`{vms}`) for Redis Cluster. */
      prefix: z.string().min(1).default('{vms}'),
    })
    .prefault({}),
  kubernetes: z
    .strictObject({
      /** Path of a kubeconfig; empty: $KUBECONFIG, then the in-cluster service account, then ~/.kube/config. */
      kubeconfig: z.string().default(''),
      context: z.string().default(''),
      fieldManager: z.string().min(1).max(128).default('vm-mesh-sync'),
      /** Page size when listing owned entries. */
      pageSize: z.number().int().min(1).max(5000).default(DEFAULT_KUBE_PAGE_SIZE),
      /**
       * `all`: owned entries are listed cluster-wide (needs the ClusterRole). `allowed`: namespace
       * by namespace in mapping.namespace.allowed, which must then be exact names (for the
       * namespaced-rbac component, a Role per namespace).
       */
      listNamespaces: z.enum(['all', 'allowed']).default('all'),
    })
    .prefault({}),
  queue: z
    .strictObject({
      /** Apply jobs processed at once per process. */
      concurrency: z.number().int().min(1).max(256).default(16),
      /** Attempts for a transient failure before the job is kept as failed. */
      attempts: z.number().int().min(1).max(100).default(12),
      /** First retry delay; doubles on each attempt. */
      backoff: duration.default(1000),
      /** Failed jobs kept for inspection. */
      keepFailed: z.number().int().min(0).default(1000),
      /** A job held by a process that died is taken over by another after this long. */
      stalledAfter: duration.default(15_000),
      /**
       * A webhook's refresh of an instance waits this long after the instance's last event, so a
       * burst of events for one VM costs one describe and one write. 0 refreshes at once.
       */
      refreshDebounce: duration.default(250),
    })
    .prefault({}),
  server: z
    .strictObject({
      host: z.string().default('0.0.0.0'),
      /** The webhooks' port: the one an ingress exposes. */
      port: z.number().int().min(0).max(65535).default(8080),
      /** Health, readiness, metrics and status: a port only the cluster reaches (kubelet, Prometheus). */
      adminPort: z.number().int().min(0).max(65535).default(8081),
      /** Largest webhook body accepted, in bytes. */
      bodyLimit: z.number().int().min(1024).default(1_048_576),
      /**
       * Which proxies in front of the server are trusted to say the client's address
       * (X-Forwarded-For): true (any), or the proxies' addresses and CIDR ranges. Behind an ingress,
       * set it so that the rate limit is per client, not per ingress.
       */
      trustProxy: z.union([z.boolean(), z.array(z.string().min(1)).min(1)]).default(false),
      /**
       * How long SIGTERM waits for jobs in flight to finish and Redis to close before it drops the
       * connections and exits, at most about 3 s later (jobs left are taken over by another
       * replica). Keep it at least 5 s below the pod's terminationGracePeriodSeconds, or the
       * kubelet kills the process first.
       */
      shutdownTimeout: duration.default(45_000),
      /**
       * How far past its expiry (or before its issue time) a webhook bearer token is still accepted:
       * Pub/Sub's Google ID tokens and Event Grid's Microsoft Entra tokens alike. At most 5 minutes,
       * the most Google's verifier allows.
       */
      tokenClockSkew: duration.default(60_000).refine((ms) => ms <= 300_000, 'must be at most 5m (Google ID tokens are refused past that anyway)'),
      /** Webhook requests one client may make per window; more get 429 with Retry-After. `max: 0` turns the limit off. */
      rateLimit: z
        .strictObject({
          max: z.number().int().min(0).default(3000),
          window: duration.default(10_000),
        })
        .prefault({}),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
}).superRefine((config, ctx) => {
  if (config.server.port !== 0 && config.server.port === config.server.adminPort) {
    ctx.addIssue({ code: 'custom', path: ['server', 'adminPort'], message: `must differ from server.port (${config.server.port}): webhooks and the admin routes have a port each` });
  }
  const allowed = config.mapping.namespace.allowed;
  if (config.kubernetes.listNamespaces === 'allowed' && allowed?.some((p) => p.includes('*'))) {
    ctx.addIssue({
      code: 'custom',
      path: ['kubernetes', 'listNamespaces'],
      message: 'is "allowed", so mapping.namespace.allowed must list exact namespace names, without *',
    });
  }
});

/** The configuration after validation, with every default filled in. */
export type Config = z.infer<typeof configSchema>;

/** The mapping rules after validation. */
export type MappingConfig = Config['mapping'];
/** What is written per service, after validation. */
export type ServicesConfig = Config['services'];
/** One provider block after validation. */
export type ProviderConfig = Config['providers'][number];
