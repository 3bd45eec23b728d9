// The provider registry: one factory per provider type, keyed by the config block's `type`.
// Each cloud's SDK is loaded only when a block of its type is configured: the SDKs together
// would take several hundred MiB of memory in every process otherwise. The cloud blocks of a kind
// run in one worker thread (thread/), so that its SDK's parsing never holds this thread's event
// loop and its SDK is loaded once; a block's webhook receiver, which needs no SDK, stays here.
import type { MappingConfig, ProviderConfig } from '../config/schema.ts';
import type { Provider, WebhookReceiver } from './provider.ts';

/** What a provider may need beyond its own block. */
export interface ProviderContext {
  /** The onboarding selector is sent to the cloud as a filter where the API allows it. */
  mapping: MappingConfig;
  /** Where secret references (`{env: NAME}`) are looked up; the process environment by default. */
  env?: NodeJS.ProcessEnv;
  /** How long past its expiry a webhook bearer token is still accepted (server.tokenClockSkew); 60 s by default. */
  tokenClockSkewMs?: number;
}

type Factory<T extends ProviderConfig['type']> = (config: Extract<ProviderConfig, { type: T }>, ctx: ProviderContext) => Promise<Provider>;

/** Builds a provider for each type of config block. */
const FACTORIES: { [T in ProviderConfig['type']]: Factory<T> } = {
  static: async (config) => (await import('./static/static-provider.ts')).createStaticProvider(config),
  aws: async (config, ctx) =>
    (await import('./aws/aws-provider.ts')).createAwsProvider(config, { selector: ctx.mapping.selector, ...(ctx.env ? { env: ctx.env } : {}) }),
  gcp: async (config, ctx) => (await import('./gcp/gcp-provider.ts')).createGcpProvider(config, { selector: ctx.mapping.selector }),
  azure: async (config, ctx) =>
    (await import('./azure/azure-provider.ts')).createAzureProvider(config, { selector: ctx.mapping.selector, ...(ctx.env ? { env: ctx.env } : {}) }),
};

/** The webhook receiver of each cloud type, from the block's config alone. */
const RECEIVERS: { [T in Exclude<ProviderConfig['type'], 'static'>]: (config: Extract<ProviderConfig, { type: T }>, ctx: ProviderContext) => Promise<WebhookReceiver> } = {
  aws: async (config, ctx) => (await import('./aws/eventbridge.ts')).eventBridgeReceiverOf(config, ctx.env),
  gcp: async (config, ctx) => (await import('./gcp/pubsub.ts')).pubSubReceiverOf(config, { ...(ctx.tokenClockSkewMs === undefined ? {} : { clockSkewMs: ctx.tokenClockSkewMs }) }),
  azure: async (config, ctx) =>
    (await import('./azure/eventgrid.ts')).eventGridReceiverOf(config, ctx.env, { ...(ctx.tokenClockSkewMs === undefined ? {} : { clockSkewMs: ctx.tokenClockSkewMs }) }),
};

/** The provider of one block, in this thread. */
export async function buildProvider(block: ProviderConfig, ctx: ProviderContext): Promise<Provider> {
  return (FACTORIES[block.type] as Factory<typeof block.type>)(block, ctx);
}

/**
 * One provider per config block, in config order, started side by side. The cloud blocks of one
 * kind share a worker thread, so that its SDK is loaded once.
 */
export async function createProviders(blocks: readonly ProviderConfig[], ctx: ProviderContext): Promise<Provider[]> {
  const threads = new Map<ProviderConfig['type'], Promise<import('./thread/threaded-provider.ts').ProviderThread>>();
  const threadOf = (kind: ProviderConfig['type']) => {
    let thread = threads.get(kind);
    if (!thread) {
      thread = import('./thread/threaded-provider.ts').then(({ ProviderThread }) => new ProviderThread(kind, ctx.env ? { env: ctx.env } : {}));
      threads.set(kind, thread);
    }
    return thread;
  };
  const started = await Promise.allSettled(
    blocks.map(async (block): Promise<Provider> => {
      if (block.type === 'static') return buildProvider(block, ctx);
      const webhook = await (RECEIVERS[block.type] as (config: typeof block, ctx: ProviderContext) => Promise<WebhookReceiver>)(block, ctx);
      const { ThreadedProvider } = await import('./thread/threaded-provider.ts');
      return ThreadedProvider.start({ block, mapping: ctx.mapping, webhook, thread: await threadOf(block.type) });
    }),
  );
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  const providers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  if (failed) {
    // The first block that could not be built is the error; the others' threads are not left running.
    await Promise.allSettled(providers.map((p) => p.close?.()));
    throw failed.reason;
  }
  return providers;
}
