// The provider registry: one factory per provider type, keyed by the config block's `type`.
// Each cloud's SDK is loaded only when a block of its type is configured: the SDKs together
// would take several hundred MiB of memory in every process otherwise.
import type { MappingConfig, ProviderConfig } from '../config/schema.ts';
import type { Provider } from './provider.ts';

/** What a provider may need beyond its own block. */
export interface ProviderContext {
  /** The onboarding selector is sent to the cloud as a filter where the API allows it. */
  mapping: MappingConfig;
  /** Where secret references (`{env: NAME}`) are looked up; the process environment by default. */
  env?: NodeJS.ProcessEnv;
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

/** One provider per config block, in config order. */
export async function createProviders(blocks: readonly ProviderConfig[], ctx: ProviderContext): Promise<Provider[]> {
  const providers: Provider[] = [];
  for (const block of blocks) providers.push(await (FACTORIES[block.type] as Factory<typeof block.type>)(block, ctx));
  return providers;
}
