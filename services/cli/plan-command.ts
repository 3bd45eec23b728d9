// `vm-mesh-sync plan`: what would change. Reads the cluster when one is reachable, else plans
// against an empty one and says so; never needs Redis and never writes.
import { isVmsError } from '../errors.ts';
import { indexAutoRegistered } from '../mapping/index.ts';
import { entryKey, type ForeignEntry, keyOfObject, type OwnedObject, type WorkloadEntry } from '../model.ts';
import { localClock } from '../stamp.ts';
import { observeScopes } from '../sync/observe.ts';
import { allSkips, entriesAfter, joinPlans, type MeshServiceObjects, planMeshServices, planScopes } from '../sync/plan-scopes.ts';
import type { Writer } from '../writer/writer.ts';
import { openCluster } from './cluster.ts';
import { configuredScopeKeys, withContext } from './context.ts';
import { EXIT, type CliIO } from './io.ts';
import { renderDiff, renderJson, renderYaml, type PlanReport } from './render.ts';

/** Options of `plan`. */
export interface PlanCommandOptions {
  config?: string;
  output: 'yaml' | 'json' | 'diff';
  force: boolean;
  /** False with --no-cluster. */
  cluster: boolean;
}

/** Runs `plan` and resolves to the exit code. */
export async function runPlan(opts: PlanCommandOptions, io: CliIO): Promise<number> {
  return withContext(opts.config, io, { logLevel: 'warn' }, async (ctx) => {
    const { config, providers } = ctx;
    let clusterNote = 'cluster: not read (--no-cluster); planned against an empty cluster';
    const cluster = opts.cluster ? openCluster(config, { optional: true, env: io.env }) : undefined;
    if (cluster && !cluster.ok) clusterNote = `cluster: ${cluster.reason}; planned against an empty cluster`;
    /** A read of the cluster, or undefined (and a note saying so) when it does not answer. */
    const read = async <T>(call: (writer: Writer) => Promise<T>): Promise<T | undefined> => {
      if (!cluster?.ok) return undefined;
      try {
        return await call(cluster.writer);
      } catch (err) {
        if (!isVmsError(err, 'VMS_ERR_KUBE_UNREACHABLE', 'VMS_ERR_KUBE_TRANSIENT')) throw err;
        clusterNote = `cluster: ${cluster.server} did not answer (${err.message}); planned against an empty cluster`;
        return undefined;
      }
    };
    // The cluster is read first: mapping needs the entries istiod auto-registered.
    const foreignRead = await read((w) => w.listForeign());
    const observed = await observeScopes(providers, {
      config,
      clock: localClock,
      timeoutMs: config.resync.timeout,
      autoRegistered: indexAutoRegistered(foreignRead ?? []),
    });
    const ownedRead = foreignRead === undefined ? undefined : await read((w) => w.listOwned());
    const objectsRead = ownedRead === undefined ? undefined : await read((w) => w.listMeshServiceObjects(config.services));
    // Planned against all of the cluster or none of it.
    const clusterRead = objectsRead !== undefined;
    const owned: WorkloadEntry[] = clusterRead ? (ownedRead ?? []) : [];
    const foreign: ForeignEntry[] = clusterRead ? (foreignRead ?? []) : [];
    const objects: MeshServiceObjects = objectsRead ?? { owned: [], foreign: [] };
    if (cluster?.ok && clusterRead) clusterNote = `cluster: ${cluster.server}, ${owned.length} entries owned by ${config.ownerId}`;
    const entryPlan = planScopes(config, observed, owned, { force: opts.force, configuredScopes: configuredScopeKeys(providers), foreign });
    const services = planMeshServices(config, observed, entriesAfter(owned, entryPlan), objects, { force: opts.force, foreign });
    const live = new Map<string, OwnedObject>(owned.map((e) => [entryKey(e.metadata.namespace, e.metadata.name), e]));
    for (const o of objects.owned) live.set(keyOfObject(o), o);
    const report: PlanReport = {
      plan: joinPlans(entryPlan, services.plan),
      observed,
      skips: allSkips(observed),
      live,
      clusterNote,
      services: services.derived,
    };
    const render = opts.output === 'json' ? renderJson : opts.output === 'diff' ? renderDiff : renderYaml;
    io.stdout.write(render(report));
    return EXIT.ok;
  });
}
