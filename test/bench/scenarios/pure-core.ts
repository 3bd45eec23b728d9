// Scenario 1: mapping and planning alone, no I/O. 100,000 instances against 100,000 owned
// entries, every second instance moved to another address: half the plan is updates.
import { mapInstances } from '../../../services/mapping/index.ts';
import type { Scope, WorkloadEntry } from '../../../services/model.ts';
import { scopeNamespaces } from '../../../services/sync/observe.ts';
import { planScopes } from '../../../services/sync/plan-scopes.ts';
import { BENCH_OWNER, benchConfig, benchEntriesOf, benchInstance, STATIC_NAME, STATIC_SCOPE } from '../fixtures.ts';
import { atMost, median, mib, round } from '../measure.ts';
import { type BenchOptions, progress, type Scenario, type ScenarioResult } from '../scenario-types.ts';

const WARM_RUNS = 5;

interface RunTimes {
  mapMs: number;
  planMs: number;
  totalMs: number;
}

/** Map and plan once; returns the times and keeps the plan alive through `keep`. */
function mapAndPlan(instances: ReturnType<typeof benchInstance>[], owned: WorkloadEntry[], now: string, keep: unknown[]): RunTimes {
  const config = benchConfig();
  const scope: Scope = { key: STATIC_SCOPE, provider: 'static', source: STATIC_NAME, account: STATIC_NAME };
  const started = performance.now();
  const { entries, skips } = mapInstances(instances, config.mapping, { ownerId: BENCH_OWNER, scopeKey: STATIC_SCOPE, observedAt: now });
  const mapped = performance.now();
  const observed = { scope, listing: { scope, complete: true, problems: [] }, listed: instances.length, entries, skips, observedAt: now, namespaces: scopeNamespaces(config, scope) };
  const plan = planScopes(config, [observed], owned, {
    configuredScopes: [STATIC_SCOPE],
  });
  const planned = performance.now();
  if (plan.summary.update !== Math.floor(instances.length / 2) || plan.summary.unchanged !== Math.ceil(instances.length / 2)) {
    throw new Error(`unexpected plan: ${JSON.stringify(plan.summary)}`);
  }
  keep.push(entries, plan);
  return { mapMs: round(mapped - started), planMs: round(planned - mapped), totalMs: round(planned - started) };
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** The pure core scenario. */
export const pureCore: Scenario = {
  name: 'pure-core',
  title: 'Pure core: map + plan',
  async run(options: BenchOptions): Promise<ScenarioResult> {
    const n = options.quick ? 10_000 : 100_000;
    progress(this.name, `building ${n} instances and ${n} owned entries`);
    // Owned entries as the cluster returns them: with resourceVersion and uid.
    const owned = benchEntriesOf('static', n).map((e, i) => ({
      ...e,
      metadata: { ...e.metadata, resourceVersion: String(1000 + i), uid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` },
    }));
    const now = new Date().toISOString();
    const instances = Array.from({ length: n }, (_, i) => benchInstance(i, now, i % 2));

    gc();
    const before = process.memoryUsage();
    const peakBefore = process.resourceUsage().maxRSS * 1024;
    const keep: unknown[] = [];
    const cold = mapAndPlan(instances, owned, now, keep);
    const afterRun = process.memoryUsage();
    const peakAfter = process.resourceUsage().maxRSS * 1024;
    gc();
    const retained = process.memoryUsage().heapUsed - before.heapUsed;
    keep.length = 0;

    const warm: RunTimes[] = [];
    for (let r = 0; r < WARM_RUNS; r++) {
      gc();
      warm.push(mapAndPlan(instances, owned, now, keep));
      keep.length = 0;
    }
    const warmTotal = median(warm.map((w) => w.totalMs));
    const figures = {
      instances: n,
      owned: n,
      changed: Math.floor(n / 2),
      coldMs: cold,
      warmRuns: warm,
      warmMedianMs: { map: median(warm.map((w) => w.mapMs)), plan: median(warm.map((w) => w.planMs)), total: warmTotal },
      memory: {
        heapBeforeMiB: mib(before.heapUsed),
        heapAfterColdRunMiB: mib(afterRun.heapUsed),
        heapRetainedByResultMiB: mib(retained),
        rssBeforeMiB: mib(before.rss),
        peakRssDuringRunMiB: mib(Math.max(peakAfter, peakBefore)),
        peakRssDeltaMiB: mib(Math.max(0, peakAfter - before.rss)),
      },
    };
    return {
      name: this.name,
      title: this.title,
      figures,
      rows: [
        { figure: 'input', value: `${n.toLocaleString('en-US')} instances × ${n.toLocaleString('en-US')} owned entries, ${figures.changed.toLocaleString('en-US')} changed` },
        { figure: 'time, first run (map + plan)', value: `${cold.totalMs} ms (${cold.mapMs} + ${cold.planMs})` },
        { figure: `time, median of ${WARM_RUNS} more runs (map + plan)`, value: `${warmTotal} ms (${figures.warmMedianMs.map} + ${figures.warmMedianMs.plan})` },
        { figure: 'heap growth during first run / kept by its result', value: `${round(mib(afterRun.heapUsed - before.heapUsed))} MiB / ${mib(retained)} MiB` },
        { figure: 'peak RSS growth during first run', value: `${figures.memory.peakRssDeltaMiB} MiB (peak ${figures.memory.peakRssDuringRunMiB} MiB, inputs included)` },
      ],
      goals: [atMost(`pure core, ${n.toLocaleString('en-US')} instances (median run)`, warmTotal / 1000, 0.5, 's')],
      notes: [],
    };
  },
};
