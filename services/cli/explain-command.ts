// `vm-mesh-sync explain <provider>:<instance-id>`: is this VM in the mesh, and if not, why.
// Asks the provider about the instance, maps it with the configured rules, and compares with the
// cluster and with the last write error that the service recorded in Redis (when reachable).
import type { Provider } from '../../providers/provider.ts';
import { isVmsError, VmsError } from '../errors.ts';
import { mapInstance } from '../mapping/index.ts';
import { entryKey, type Instance, type ProviderKind, type Scope, type WorkloadEntry } from '../model.ts';
import { entriesEqual, isOwned } from '../planning/index.ts';
import { createRedis, redisReady } from '../queue/redis.ts';
import { StatusStore, type WriteError } from '../runtime/status-store.ts';
import { openCluster } from './cluster.ts';
import { closeProviders, loadContext } from './context.ts';
import { EXIT, type CliIO, reportError } from './main.ts';

/** The verdict of `explain`. */
export type Verdict =
  | 'in-mesh'
  | 'pending'
  | 'not-found'
  | 'not-tagged'
  | 'not-running'
  | 'invalid-tag'
  | 'not-owned'
  | 'write-failed'
  | 'awaiting-delete';

/** What `explain` found out. */
export interface Explanation {
  instance: string;
  verdict: Verdict;
  /** Sentences for a person, in order. */
  reasons: string[];
  scope?: string;
  code?: string;
  entry?: { key: string; live: boolean; upToDate: boolean };
  lastWriteError?: WriteError;
}

const KINDS: readonly ProviderKind[] = ['static', 'aws', 'gcp', 'azure'];

/** Splits `aws:i-0abc` into its provider kind and id. */
export function parseInstanceArg(arg: string): { kind: ProviderKind; id: string } {
  const colon = arg.indexOf(':');
  const kind = arg.slice(0, colon) as ProviderKind;
  const id = arg.slice(colon + 1).trim();
  if (colon <= 0 || !KINDS.includes(kind) || id === '') {
    throw new VmsError('VMS_ERR_USAGE', `"${arg}" is not <provider>:<instance-id>; provider is one of ${KINDS.join(', ')}`);
  }
  return { kind, id };
}

async function findInstance(providers: readonly Provider[], kind: ProviderKind, id: string): Promise<{ instance: Instance; scope: Scope } | null> {
  for (const provider of providers.filter((p) => p.kind === kind)) {
    for (const scope of provider.scopes()) {
      const ref = { provider: kind, account: scope.account, ...(scope.region ? { region: scope.region } : {}), id };
      const [described] = await provider.describe([ref]);
      if (described?.instance) return { instance: described.instance, scope };
    }
  }
  return null;
}

/** Runs `explain` and resolves to the exit code (0 when the explanation was given). */
export async function runExplain(arg: string, opts: { config?: string; output: 'text' | 'json' }, io: CliIO): Promise<number> {
  let ctx;
  try {
    ctx = loadContext(opts.config, io, { logLevel: 'warn' });
  } catch (err) {
    return reportError(err, io);
  }
  try {
    const { kind, id } = parseInstanceArg(arg);
    const explanation = await explain(ctx, kind, id);
    io.stdout.write(opts.output === 'json' ? `${JSON.stringify(explanation, null, 2)}\n` : renderExplanation(explanation));
    return EXIT.ok;
  } catch (err) {
    return reportError(err, io);
  } finally {
    await closeProviders(ctx.providers);
  }
}

async function explain(ctx: ReturnType<typeof loadContext>, kind: ProviderKind, id: string): Promise<Explanation> {
  const { config, providers } = ctx;
  const name = `${kind}:${id}`;
  const found = await findInstance(providers, kind, id);
  if (!found) {
    return {
      instance: name,
      verdict: 'not-found',
      reasons: [`no configured ${kind} scope knows an instance ${id} (it may be terminated, or in an account, region or project not in the config)`],
    };
  }
  const { instance, scope } = found;
  const result = mapInstance(instance, config.mapping, { ownerId: config.ownerId, scopeKey: scope.key });
  const base = { instance: name, scope: scope.key };
  const reasons = [`found in scope ${scope.key}: ${instance.name}, ${instance.state}, tags ${JSON.stringify(instance.tags)}`];

  const cluster = openCluster(config, { optional: true });
  const readLive = async (namespace: string, entryName: string): Promise<WorkloadEntry | null | undefined> => {
    if (!cluster.ok) return undefined;
    try {
      return await cluster.api.getEntry(namespace, entryName);
    } catch (err) {
      if (isVmsError(err)) return undefined;
      throw err;
    }
  };
  const lastError = async (key: string): Promise<WriteError | null> => {
    const redis = createRedis(config.redis.url, { role: 'producer' });
    try {
      await redisReady(redis, 2000);
      return await new StatusStore(redis, config.redis.prefix).writeError(key);
    } catch {
      return null;
    } finally {
      redis.disconnect();
    }
  };

  if (result.kind === 'skip') {
    const { skip } = result;
    const verdict: Verdict =
      skip.code === 'VMS_SKIP_NOT_SELECTED' ? 'not-tagged' : skip.code === 'VMS_SKIP_NOT_RUNNING' ? 'not-running' : 'invalid-tag';
    reasons.push(`not in the mesh: ${skip.code}: ${skip.reason}`);
    if (skip.keepsEntry) reasons.push('an entry it already has is kept unchanged until the value is fixed');
    return { ...base, verdict, code: skip.code, reasons };
  }

  const { entry } = result;
  const key = entryKey(entry.metadata.namespace, entry.metadata.name);
  const live = await readLive(entry.metadata.namespace, entry.metadata.name);
  const writeError = await lastError(key);
  const withError = writeError ? { lastWriteError: writeError } : {};
  if (live === undefined) {
    reasons.push(`would get WorkloadEntry ${key}; the cluster could not be read, so whether it is applied is unknown`);
    if (writeError) reasons.push(`last write error: ${writeError.code}: ${writeError.message} (${writeError.at})`);
    return { ...base, verdict: writeError ? 'write-failed' : 'pending', entry: { key, live: false, upToDate: false }, reasons, ...withError };
  }
  if (live && !isOwned(live, config.ownerId)) {
    reasons.push(`WorkloadEntry ${key} exists but is not ours (no owner label ${config.ownerId}); it is left alone`);
    return { ...base, verdict: 'not-owned', code: 'VMS_ERR_NOT_OWNED', entry: { key, live: true, upToDate: false }, reasons };
  }
  const upToDate = live !== null && entriesEqual(entry, live);
  if (upToDate) {
    reasons.push(`in the mesh: WorkloadEntry ${key} is applied and up to date (address ${entry.spec.address})`);
    return { ...base, verdict: 'in-mesh', entry: { key, live: true, upToDate }, reasons };
  }
  if (writeError) {
    reasons.push(`WorkloadEntry ${key} could not be written: ${writeError.code}: ${writeError.message} (${writeError.at})`);
    return { ...base, verdict: 'write-failed', code: writeError.code, entry: { key, live: live !== null, upToDate }, reasons, ...withError };
  }
  reasons.push(`WorkloadEntry ${key} is ${live ? 'out of date' : 'not created yet'}; the next resync or event applies it`);
  return { ...base, verdict: 'pending', entry: { key, live: live !== null, upToDate }, reasons };
}

/** The explanation as lines for a terminal. */
export function renderExplanation(e: Explanation): string {
  return `${e.instance}: ${e.verdict}\n${e.reasons.map((r) => `  - ${r}`).join('\n')}\n`;
}
