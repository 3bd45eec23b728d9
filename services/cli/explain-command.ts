// `vm-mesh-sync explain <provider>:<instance-id>`: is this VM in the mesh, and if not, why.
// Asks the provider about the instance, maps it with the configured rules, and compares with the
// cluster and with the last write error that the service recorded in Redis (when reachable).
import type { Provider } from '../../providers/provider.ts';
import { isVmsError, VmsError } from '../errors.ts';
import { entryName, indexAutoRegistered, mapInstance, serviceHost, serviceOfEntry, serviceSelector } from '../mapping/index.ts';
import { localClock } from '../stamp.ts';
import { mapContext } from '../sync/observe.ts';
import { entryKey, type ForeignEntry, SCOPE_ANNOTATION, type Instance, type MeshServiceObject, type ProviderKind, type Scope, type WorkloadEntry } from '../model.ts';
import { entriesEqual, isOwned } from '../planning/index.ts';
import { createRedis, redisReady } from '../queue/redis.ts';
import { StatusStore, type WriteError } from '../runtime/status-store.ts';
import { openCluster } from './cluster.ts';
import { type CommandContext, configuredScopeKeys, withContext } from './context.ts';
import { EXIT, type CliIO } from './io.ts';

/** The verdict of `explain`. */
export type Verdict =
  | 'in-mesh'
  | 'pending'
  | 'not-found'
  | 'not-tagged'
  | 'not-running'
  | 'invalid-tag'
  | 'auto-registered'
  | 'not-owned'
  | 'conflict'
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
  /** The mesh service the VM serves and the hostname it is reached by; absent when its entry names none. */
  service?: { namespace: string; name: string; host: string; kind: 'Service' | 'ServiceEntry' | 'none' };
  /** Deletes the deletion guard held back in the instance's scope at the service's last resync. */
  heldDeletes?: Array<{ deletes: number; reason: string }>;
}

/** What releases deletes the deletion guard holds back. */
export const FORCE_COMMAND = 'vm-mesh-sync sync --once --force';

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
  return withContext(opts.config, io, { logLevel: 'warn' }, async (ctx) => {
    const { kind, id } = parseInstanceArg(arg);
    const explanation = await explain(ctx, kind, id, io.env);
    io.stdout.write(opts.output === 'json' ? `${JSON.stringify(explanation, null, 2)}\n` : renderExplanation(explanation));
    return EXIT.ok;
  });
}

/** What `explain` reads besides the provider; each read says "unknown" (undefined or null) rather than failing. */
interface Sources {
  /** The live entry, null when absent, undefined when the cluster cannot be read. */
  readLive(namespace: string, name: string): Promise<WorkloadEntry | null | undefined>;
  /** Our entries named `name` in any namespace; undefined when the cluster cannot be read. */
  readOwned(name: string): Promise<WorkloadEntry[] | undefined>;
  /** The entries that are not ours (Writer.listForeign); undefined when the cluster cannot be read. */
  readForeign(): Promise<ForeignEntry[] | undefined>;
  /** The live Service or ServiceEntry of a mesh service, null when absent, undefined when the cluster cannot be read. */
  readServiceObject(kind: 'Service' | 'ServiceEntry', namespace: string, name: string): Promise<MeshServiceObject | null | undefined>;
  /** Reads the service's shared status in Redis; null when Redis cannot be reached. */
  fromStatus<T>(read: (store: StatusStore) => Promise<T>): Promise<T | null>;
}

/** The cluster and Redis as `explain` reads them, both optional. */
function sources(config: CommandContext['config'], env: NodeJS.ProcessEnv): Sources {
  const cluster = openCluster(config, { optional: true, env });
  const orUnknown = async <T>(read: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await read();
    } catch (err) {
      if (isVmsError(err)) return undefined;
      throw err;
    }
  };
  return {
    readLive: (namespace, name) => (cluster.ok ? orUnknown(() => cluster.api.getEntry(namespace, name)) : Promise.resolve(undefined)),
    readServiceObject: (kind, namespace, name) => (cluster.ok ? orUnknown(() => cluster.api.getObject(kind, namespace, name)) : Promise.resolve(undefined)),
    readOwned: (name) => (cluster.ok ? orUnknown(() => cluster.writer.findOwnedByName(name)) : Promise.resolve(undefined)),
    readForeign: () => (cluster.ok ? orUnknown(() => cluster.writer.listForeign()) : Promise.resolve(undefined)),
    async fromStatus(read) {
      const redis = createRedis(config.redis.url, { role: 'producer' });
      try {
        await redisReady(redis, 2000);
        return await read(new StatusStore(redis, config.redis.prefix));
      } catch {
        return null;
      } finally {
        redis.disconnect();
      }
    },
  };
}

/**
 * An instance that is leaving the mesh (untagged, stopped, gone) while our entry for it is still
 * there: the next resync deletes it, unless the deletion guard of its scope holds deletes back.
 */
async function awaitingDelete(
  src: Sources,
  policy: CommandContext['config']['policy'],
  owned: readonly WorkloadEntry[],
  scopeKey: string | undefined,
  why: string,
  base: Omit<Explanation, 'verdict' | 'reasons' | 'entry'>,
  reasons: string[],
): Promise<Explanation> {
  const first = owned[0]!;
  const key = entryKey(first.metadata.namespace, first.metadata.name);
  const keys = owned.map((e) => entryKey(e.metadata.namespace, e.metadata.name)).join(', ');
  if (policy !== 'sync') {
    // Under these policies nothing is ever deleted, so promising a delete would mislead.
    reasons.push(`${why}; but WorkloadEntry ${keys} is still there, and policy ${policy} never deletes entries: delete it by hand if the VM has left for good`);
    return { ...base, verdict: 'awaiting-delete', entry: { key, live: true, upToDate: false }, reasons };
  }
  reasons.push(`${why}; but WorkloadEntry ${keys} is still there: it is deleted on the next resync unless the deletion guard holds it back`);
  const statuses = scopeKey === undefined ? null : await src.fromStatus((store) => store.scopes());
  const held = (scopeKey === undefined ? [] : (statuses?.get(scopeKey)?.held ?? [])).filter((h) => h.deletes > 0);
  if (held.length > 0) {
    const count = held.reduce((n, h) => n + h.deletes, 0);
    reasons.push(
      `held back by the deletion guard: the last resync of ${scopeKey} held back ${count} delete(s) (${held.map((h) => h.reason).join('; ')}); ` +
        `once the plan is checked, run \`${FORCE_COMMAND}\` to let them through`,
    );
  }
  return { ...base, verdict: 'awaiting-delete', entry: { key, live: true, upToDate: false }, reasons, ...(held.length > 0 ? { heldDeletes: held } : {}) };
}

async function explain(ctx: CommandContext, kind: ProviderKind, id: string, env: NodeJS.ProcessEnv): Promise<Explanation> {
  const { config, providers } = ctx;
  const name = `${kind}:${id}`;
  const found = await findInstance(providers, kind, id);
  const src = sources(config, env);

  if (!found) {
    const missing = `no configured ${kind} scope knows an instance ${id} (it may be terminated, or in an account, region or project not in the config)`;
    const owned = await src.readOwned(entryName({ provider: kind, id }));
    if (owned && owned.length > 0) {
      const scopeKey = owned[0]!.metadata.annotations[SCOPE_ANNOTATION];
      return awaitingDelete(src, config.policy, owned, scopeKey, missing, { instance: name, ...(scopeKey === undefined ? {} : { scope: scopeKey }) }, []);
    }
    return { instance: name, verdict: 'not-found', reasons: [missing] };
  }
  const { instance, scope } = found;
  // The same rules as a resync: an instance at the address of an entry istiod auto-registered is skipped.
  const foreign = await src.readForeign();
  const result = mapInstance(instance, config.mapping, mapContext(config, scope, await localClock(), indexAutoRegistered(foreign ?? [])));
  const base = { instance: name, scope: scope.key };
  const reasons = [`found in scope ${scope.key}: ${instance.name}, ${instance.state}, tags ${JSON.stringify(instance.tags)}`];
  if (foreign === undefined) reasons.push('the cluster could not be read, so whether Istio auto-registered this VM is unknown');

  if (result.kind === 'skip') {
    const { skip } = result;
    const verdict: Verdict =
      skip.code === 'VMS_SKIP_NOT_SELECTED'
        ? 'not-tagged'
        : skip.code === 'VMS_SKIP_NOT_RUNNING'
          ? 'not-running'
          : skip.code === 'VMS_SKIP_AUTO_REGISTERED'
            ? 'auto-registered'
            : 'invalid-tag';
    if (!skip.keepsEntry) {
      // Not selected or not running means "leave the mesh": an entry still there is on its way out.
      const owned = await src.readOwned(entryName(instance));
      if (owned && owned.length > 0) return awaitingDelete(src, config.policy, owned, scope.key, `leaving the mesh: ${skip.code}: ${skip.reason}`, { ...base, code: skip.code }, reasons);
    }
    reasons.push(`not in the mesh: ${skip.code}: ${skip.reason}`);
    if (skip.keepsEntry) reasons.push('an entry it already has is kept unchanged until the value is fixed');
    return { ...base, verdict, code: skip.code, reasons };
  }

  const { entry } = result;
  const explained = await explainEntry(ctx, src, entry, scope, base, reasons);
  const reach = await reachability(entry, config, src);
  explained.reasons.push(reach.reason);
  return reach.service ? { ...explained, service: reach.service } : explained;
}

/**
 * Which mesh hostname reaches a VM whose entry is `entry`, or why none does. Judged from this VM
 * alone: `plan` shows the Service with the ports all VMs of the service agree on.
 */
async function reachability(entry: WorkloadEntry, config: CommandContext['config'], src: Sources): Promise<{ reason: string; service?: NonNullable<Explanation['service']> }> {
  const { clusterDomain, kind } = config.services;
  const of = serviceOfEntry(entry, config.ownerId);
  const tag = config.mapping.service.tag;
  if (!of) {
    return { reason: `reachable by no mesh hostname: it has no ${tag} tag; tag it ${tag}=<name> to be reached as <name>.${entry.metadata.namespace}.svc.${clusterDomain}` };
  }
  const host = serviceHost(of.service, of.namespace, clusterDomain);
  const selector = Object.entries(serviceSelector(of.service, config.ownerId)).map(([k, v]) => `${k}=${v}`).join(',');
  if (kind === 'off') {
    return {
      reason: `serves mesh service ${of.service}; services.kind is off, so vm-mesh-sync writes no Service for it: a Service named ${of.service} in ${of.namespace} selecting ${selector} makes it reachable as ${host}`,
      service: { namespace: of.namespace, name: of.service, host, kind: 'none' },
    };
  }
  const object = kind === 'service' ? 'Service' : 'ServiceEntry';
  const service = { namespace: of.namespace, name: of.service, host, kind: object } as const;
  if (Object.keys(entry.spec.ports ?? {}).length === 0) {
    return { reason: `serves mesh service ${of.service}, but has no ports (tag ${config.mapping.ports.tag}): a ${object} only reaches ports its VMs declare`, service };
  }
  const live = await src.readServiceObject(object, of.namespace, of.service);
  if (live && !isOwned(live, config.ownerId)) {
    const theirs = live.kind === 'Service' ? live.spec?.selector ?? {} : {};
    const selects = Object.keys(theirs).length > 0 && Object.entries(theirs).every(([k, v]) => entry.spec.labels?.[k] === v);
    return {
      reason: selects
        ? `reachable as ${host}: served by your Service ${of.namespace}/${of.service}, which is not vm-mesh-sync's and whose selector selects this VM; vm-mesh-sync leaves it alone (VMS_ERR_ENTRY_CONFLICT)`
        : `not reachable as ${host}: ${object} ${of.namespace}/${of.service} exists and is not vm-mesh-sync's, so vm-mesh-sync leaves it alone and writes none (VMS_ERR_ENTRY_CONFLICT); delete or rename it, or tag the VM with another ${tag}`,
      service,
    };
  }
  const state = live === undefined ? 'the cluster was not read' : live ? 'it exists' : 'sync writes it';
  return {
    reason: `reachable as ${host} through ${object} ${of.namespace}/${of.service} (selecting ${selector}); ${state}`,
    service,
  };
}

/** The verdict on an instance that maps to `entry`: applied, pending, not ours, held by another scope, failing. */
async function explainEntry(
  ctx: CommandContext,
  src: Sources,
  entry: WorkloadEntry,
  scope: Scope,
  base: { instance: string; scope: string },
  reasons: string[],
): Promise<Explanation> {
  const { config, providers } = ctx;
  const key = entryKey(entry.metadata.namespace, entry.metadata.name);
  const live = await src.readLive(entry.metadata.namespace, entry.metadata.name);
  const writeError = await src.fromStatus((store) => store.writeError(key));
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
  const holder = live?.metadata.annotations[SCOPE_ANNOTATION] ?? '';
  if (live && holder !== scope.key && configuredScopeKeys(providers).includes(holder)) {
    reasons.push(
      `WorkloadEntry ${key} belongs to scope ${holder}, which lists an instance of the same name and keeps it; ` +
        `this scope's instance is left out (VMS_ERR_ENTRY_CONFLICT): list the instance in one provider block only`,
    );
    return { ...base, verdict: 'conflict', code: 'VMS_ERR_ENTRY_CONFLICT', entry: { key, live: true, upToDate: false }, reasons };
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
