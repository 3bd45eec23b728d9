// `vm-mesh-sync sync --once`: one resync of every scope, applied directly by the writer in this
// process (no Redis), then exit non-zero if a scope or a change failed.
import { isVmsError } from '../errors.ts';
import { indexAutoRegistered } from '../mapping/index.ts';
import { entryKey } from '../model.ts';
import { localClock } from '../stamp.ts';
import { observeScopes } from '../sync/observe.ts';
import { allSkips, entriesAfter, joinPlans, planMeshServices, planScopes } from '../sync/plan-scopes.ts';
import { applyChanges } from '../sync/apply.ts';
import { openCluster } from './cluster.ts';
import { configuredScopeKeys, withContext } from './context.ts';
import { EXIT, type CliIO } from './io.ts';

/** Options of `sync`. */
export interface SyncCommandOptions {
  config?: string;
  force: boolean;
}

/** Runs `sync --once` and resolves to the exit code. */
export async function runSync(opts: SyncCommandOptions, io: CliIO): Promise<number> {
  return withContext(opts.config, io, {}, async (ctx) => {
    const { config, providers, logger } = ctx;
    const cluster = openCluster(config, { optional: false, logger, env: io.env });
    if (!cluster.ok) throw new Error(cluster.reason);
    // Read before the listing: mapping needs the entries istiod auto-registered.
    const foreign = await cluster.writer.listForeign();
    const observed = await observeScopes(providers, { config, clock: localClock, timeoutMs: config.resync.timeout, autoRegistered: indexAutoRegistered(foreign) });
    const retry = { maxAttempts: config.queue.attempts, baseDelayMs: config.queue.backoff };
    const owned = await cluster.writer.listOwned();
    const objects = await cluster.writer.listMeshServiceObjects(config.services);
    const entryPlan = planScopes(config, observed, owned, { force: opts.force, configuredScopes: configuredScopeKeys(providers), foreign });
    const services = planMeshServices(config, observed, entriesAfter(owned, entryPlan), objects, { force: opts.force, foreign });
    const plan = joinPlans(entryPlan, services.plan);
    // Entries first, then the objects of their services: a Service is deleted only once no entry
    // of ours names it any more, which the writer checks in the cluster.
    const apply = { concurrency: config.queue.concurrency, ...retry };
    const outcome = await applyChanges(cluster.writer, entryPlan.changes, apply);
    const serviceOutcome = await applyChanges(cluster.writer, services.plan.changes, apply);
    for (const [result, n] of Object.entries(serviceOutcome.results)) outcome.results[result as keyof typeof outcome.results] = (outcome.results[result as keyof typeof outcome.results] ?? 0) + n;
    outcome.failed.push(...serviceOutcome.failed);

    const incomplete = observed.filter((o) => !o.listing.complete);
    for (const o of observed) {
      for (const p of o.listing.problems) logger.warn({ scope: o.scope.key, code: p.code, at: p.at }, p.message);
    }
    for (const h of plan.held) logger.warn({ scope: h.scopeKey, deletes: h.deletes.length, ownedInScope: h.ownedInScope }, `deletes held back: ${h.reason}`);
    for (const c of plan.conflicts) logger.warn({ key: c.key, kind: c.kind }, c.reason);
    // What keeps a VM out of its service's objects, or a service without a Service: said as plan shows it.
    for (const x of services.derived.excluded) {
      logger.warn({ key: entryKey(x.entry.metadata.namespace, x.entry.metadata.name), code: x.code }, `left out of its service: ${x.reason}`);
    }
    for (const p of services.derived.problems) logger.warn({ service: `${p.namespace}/${p.service}`, code: p.code }, p.reason);
    for (const f of outcome.failed) logger.error({ key: f.change.key, op: f.change.op, code: isVmsError(f.error) ? f.error.code : undefined }, f.error.message);

    const summary = {
      scopes: observed.length,
      incompleteScopes: incomplete.map((o) => o.scope.key),
      skipped: allSkips(observed).length,
      held: plan.summary.held,
      conflicts: plan.conflicts.map((c) => ({ key: c.key, kind: c.kind })),
      leftOutOfServices: services.derived.excluded.length,
      servicesWithoutPorts: services.derived.problems.length,
      results: outcome.results,
      failed: outcome.failed.map((f) => ({ key: f.change.key, op: f.change.op, error: f.error.message })),
    };
    io.stdout.write(`${JSON.stringify(summary)}\n`);
    logger.info(summary, 'sync finished');
    // A name taken by an entry that is not ours keeps an instance out of the mesh until someone acts.
    // So does a Service name taken by one that does not select the service's VMs.
    const taken = plan.conflicts.some((c) => c.kind === 'not-owned' && c.servedByForeign !== true);
    if (outcome.failed.length > 0 || incomplete.length > 0 || taken) return EXIT.failed;
    // A CronJob must flag held deletes: the fleet is not what the cloud says until someone decides.
    return plan.summary.held > 0 ? EXIT.held : EXIT.ok;
  });
}
