// The provider registry: one factory per provider type, keyed by the config block's `type`.
import type { MappingConfig, ProviderConfig } from '../config/schema.ts';
import { createAwsProvider } from './aws/aws-provider.ts';
import { createAzureProvider } from './azure/azure-provider.ts';
import { createGcpProvider } from './gcp/gcp-provider.ts';
import type { Provider } from './provider.ts';
import { createStaticProvider } from './static/static-provider.ts';

/** What a provider may need beyond its own block. */
export interface ProviderContext {
  /** The onboarding selector is sent to the cloud as a filter where the API allows it. */
  mapping: MappingConfig;
  /** Where secret references (`{env: NAME}`) are looked up; the process environment by default. */
  env?: NodeJS.ProcessEnv;
}

type Factory<T extends ProviderConfig['type']> = (config: Extract<ProviderConfig, { type: T }>, ctx: ProviderContext) => Provider;

/** Builds a provider for each type of config block. */
const FACTORIES: { [T in ProviderConfig['type']]: Factory<T> } = {
  static: (config) => createStaticProvider(config),
  aws: (config, ctx) => createAwsProvider(config, { selector: ctx.mapping.selector, ...(ctx.env ? { env: ctx.env } : {}) }),
  gcp: (config, ctx) => createGcpProvider(config, { selector: ctx.mapping.selector }),
  azure: (config, ctx) => createAzureProvider(config, { selector: ctx.mapping.selector, ...(ctx.env ? { env: ctx.env } : {}) }),
};

/** One provider per config block, in config order. */
export function createProviders(blocks: readonly ProviderConfig[], ctx: ProviderContext): Provider[] {
  return blocks.map((block) => (FACTORIES[block.type] as Factory<typeof block.type>)(block, ctx));
}
