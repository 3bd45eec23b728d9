// `vm-mesh-sync plan`: what would change. Reads the cluster when one is reachable, else plans
// against an empty one and says so; never needs Redis and never writes.
import { isVmsError } from '../errors.ts';
import { type EntryKey, entryKey, keyOfObject, type OwnedObject, type WorkloadEntry } from '../model.ts';
import { localClock } from '../stamp.ts';
import { observeScopes } from '../sync/observe.ts';
import { allSkips, entriesAfter, joinPlans, type MeshServiceObjects, planMeshServices, planScopes } from '../sync/plan-scopes.ts';
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
    const observed = await observeScopes(providers, { config, clock: localClock, timeoutMs: config.resync.timeout });
    let owned: WorkloadEntry[] = [];
    let foreign: EntryKey[] = [];
    let objects: MeshServiceObjects = { owned: [], foreign: [] };
    let clusterNote = 'cluster: not read (--no-cluster); planned against an empty cluster';
    if (opts.cluster) {
      const cluster = openCluster(config, { optional: true, env: io.env });
      if (cluster.ok) {
        try {
          owned = await cluster.writer.listOwned();
          foreign = await cluster.writer.listForeign();
          objects = await cluster.writer.listMeshServiceObjects(config.services);
          clusterNote = `cluster: ${cluster.server}, ${owned.length} entries owned by ${config.ownerId}`;
        } catch (err) {
          if (!isVmsError(err, 'VMS_ERR_KUBE_UNREACHABLE', 'VMS_ERR_KUBE_TRANSIENT')) throw err;
          clusterNote = `cluster: ${cluster.server} did not answer (${err.message}); planned against an empty cluster`;
        }
      } else {
        clusterNote = `cluster: ${cluster.reason}; planned against an empty cluster`;
      }
    }
    const entryPlan = planScopes(config, observed, owned, { force: opts.force, configuredScopes: configuredScopeKeys(providers), foreign });
    const services = planMeshServices(config, observed, entriesAfter(owned, entryPlan), objects, { force: opts.force });
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
