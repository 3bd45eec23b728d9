// `vm-mesh-sync plan`: what would change. Reads the cluster when one is reachable, else plans
// against an empty one and says so; never needs Redis and never writes.
import { isVmsError } from '../errors.ts';
import { type EntryKey, entryKey, type WorkloadEntry } from '../model.ts';
import { localClock } from '../stamp.ts';
import { observeScopes } from '../sync/observe.ts';
import { allSkips, desiredMeshServices, planScopes } from '../sync/plan-scopes.ts';
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
    let clusterNote = 'cluster: not read (--no-cluster); planned against an empty cluster';
    if (opts.cluster) {
      const cluster = openCluster(config, { optional: true, env: io.env });
      if (cluster.ok) {
        try {
          owned = await cluster.writer.listOwned();
          foreign = await cluster.writer.listForeign();
          clusterNote = `cluster: ${cluster.server}, ${owned.length} entries owned by ${config.ownerId}`;
        } catch (err) {
          if (!isVmsError(err, 'VMS_ERR_KUBE_UNREACHABLE', 'VMS_ERR_KUBE_TRANSIENT')) throw err;
          clusterNote = `cluster: ${cluster.server} did not answer (${err.message}); planned against an empty cluster`;
        }
      } else {
        clusterNote = `cluster: ${cluster.reason}; planned against an empty cluster`;
      }
    }
    const plan = planScopes(config, observed, owned, { force: opts.force, configuredScopes: configuredScopeKeys(providers), foreign });
    const report: PlanReport = {
      plan,
      observed,
      skips: allSkips(observed),
      live: new Map(owned.map((e) => [entryKey(e.metadata.namespace, e.metadata.name), e])),
      clusterNote,
      services: desiredMeshServices(config, observed, owned),
    };
    const render = opts.output === 'json' ? renderJson : opts.output === 'diff' ? renderDiff : renderYaml;
    io.stdout.write(render(report));
    return EXIT.ok;
  });
}
