// What every command starts with: the validated config, the providers and a logger.
import { configPath, loadConfig } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { createProviders } from '../../providers/index.ts';
import type { Provider } from '../../providers/provider.ts';
import { createLogger, type Logger } from '../logger.ts';
import type { CliIO } from './main.ts';

/** The pieces a command works with. */
export interface CommandContext {
  config: Readonly<Config>;
  configFile: string;
  providers: Provider[];
  logger: Logger;
}

/** Loads config (throws VmsError VMS_ERR_CONFIG_* on a bad one) and builds the providers. */
export async function loadContext(flag: string | undefined, io: CliIO, options: { logLevel?: string } = {}): Promise<CommandContext> {
  const configFile = configPath(flag, io.env);
  const config = loadConfig(configFile, io.env);
  const logger = createLogger(options.logLevel ?? config.log.level, io.stderr);
  const providers = await createProviders(config.providers, { mapping: config.mapping, env: io.env });
  return { config, configFile, providers, logger };
}

/** Closes what the providers hold open. */
export async function closeProviders(providers: readonly Provider[]): Promise<void> {
  await Promise.allSettled(providers.map((p) => p.close?.()));
}

/** The keys of every scope the config covers. */
export function configuredScopeKeys(providers: readonly Provider[]): string[] {
  return providers.flatMap((p) => p.scopes().map((s) => s.key));
}
