// What every command starts with: the validated config, the providers and a logger.
import { configPath, loadConfig } from '../../config/load.ts';
import type { Config } from '../../config/schema.ts';
import { createProviders } from '../../providers/index.ts';
import type { Provider } from '../../providers/provider.ts';
import { createLogger, type Logger } from '../logger.ts';
import { type CliIO, reportError } from './io.ts';

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
  const providers = await createProviders(config.providers, { mapping: config.mapping, env: io.env, tokenClockSkewMs: config.server.tokenClockSkew });
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

/**
 * Runs a command's body with its context: a bad config or an error the body throws becomes the
 * reported `CODE: message` and exit code, and the providers are closed however the body ends.
 */
export async function withContext(
  flag: string | undefined,
  io: CliIO,
  options: { logLevel?: string },
  body: (ctx: CommandContext) => Promise<number>,
): Promise<number> {
  let ctx: CommandContext;
  try {
    ctx = await loadContext(flag, io, options);
  } catch (err) {
    return reportError(err, io);
  }
  try {
    return await body(ctx);
  } catch (err) {
    return reportError(err, io);
  } finally {
    await closeProviders(ctx.providers);
  }
}
