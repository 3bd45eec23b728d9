// How a plan is shown: YAML (a stream kubectl could apply, with the rest as comments), JSON (for
// machines), or a diff (for people reviewing a change). Pure: strings in, strings out.
import { stringify } from 'yaml';
import type { Plan } from '../planning/index.ts';
import { diffEntries } from '../planning/index.ts';
import { plainEntry, type MeshServices } from '../mapping/index.ts';
import type { OwnedObject, Skip } from '../model.ts';
import type { ObservedScope } from '../sync/plan-scopes.ts';

/** Everything a plan report shows. */
export interface PlanReport {
  plan: Plan;
  observed: readonly ObservedScope[];
  skips: readonly Skip[];
  /** The owned entries planned against, by key, for diffs. */
  live: ReadonlyMap<string, OwnedObject>;
  /** How the cluster was read: `cluster` or why an empty one was assumed. */
  clusterNote: string;
  /** The Services (or ServiceEntries) and WorkloadGroups the planned entries call for; their changes are in `plan`. */
  services: MeshServices;
}

function objectKey(obj: { metadata: { namespace: string; name: string } }): string {
  return `${obj.metadata.namespace}/${obj.metadata.name}`;
}

function serviceLines(r: PlanReport): string[] {
  const s = r.services;
  const lines = [`services: the entries call for ${s.services.length} Services or ServiceEntries and ${s.workloadGroups.length} WorkloadGroups`];
  for (const p of s.problems) lines.push(`service ${p.namespace}/${p.service}: ${p.code}: ${p.reason}`);
  for (const x of s.excluded) lines.push(`left out of service ${x.entry.metadata.namespace}/${x.entry.spec.labels?.['vm-mesh-sync.io/service'] ?? ''}: ${objectKey(x.entry)} ${x.code}: ${x.reason}`);
  return lines;
}

function summaryLine(r: PlanReport): string {
  const s = r.plan.summary;
  return `${s.create} to create, ${s.update} to update, ${s.delete} to delete, ${s.unchanged} unchanged, ${s.held} held back, ${r.skips.length} instances skipped`;
}

function comment(text: string): string {
  return text
    .split('\n')
    .map((l) => `# ${l}`.trimEnd())
    .join('\n');
}

function scopeLines(r: PlanReport): string[] {
  return r.observed.map((o) => {
    const state = o.listing.complete ? 'complete' : 'INCOMPLETE (nothing in it is deleted)';
    return `scope ${o.scope.key}: ${o.listed} instances, ${o.entries.length} entries, listing ${state}`;
  });
}

function problemLines(r: PlanReport): string[] {
  return r.observed.flatMap((o) => o.listing.problems.map((p) => `problem in ${o.scope.key}${p.at ? ` at ${p.at}` : ''}: ${p.code}: ${p.message}`));
}

function skipLine(s: Skip): string {
  return `skipped ${s.instance.provider}:${s.instance.id} (${s.instance.name}) ${s.code}: ${s.reason}`;
}

function cleanEntry(object: OwnedObject): OwnedObject {
  const entry = object.kind === 'WorkloadEntry' ? plainEntry(object) : object;
  const { resourceVersion: _rv, uid: _uid, ...metadata } = entry.metadata;
  return { ...entry, metadata } as OwnedObject;
}

/** The plan as a YAML stream: the entries to write as documents, everything else as comments. */
export function renderYaml(r: PlanReport): string {
  const head = [
    `vm-mesh-sync plan: ${summaryLine(r)}`,
    r.clusterNote,
    ...scopeLines(r),
    ...problemLines(r),
    ...r.plan.held.map((h) => `held back in ${h.scopeKey}: ${h.deletes.length} deletes: ${h.reason}`),
    ...r.plan.conflicts.map((c) => `conflict ${c.key}: ${c.reason}`),
    ...r.plan.orphaned.map((o) => `kept ${o.key}: ${o.reason}`),
    ...r.skips.map(skipLine),
    ...serviceLines(r),
  ];
  const docs: string[] = [comment(head.join('\n'))];
  for (const change of r.plan.changes) {
    if (change.op === 'upsert') {
      const verb = r.live.has(change.key) ? 'update' : 'create';
      docs.push(`# ${verb} ${change.key}\n${stringify(cleanEntry(change.entry)).trimEnd()}`);
    } else {
      docs.push(`# delete ${change.key}`);
    }
  }
  return `${docs.join('\n---\n')}\n`;
}

/** The plan as one JSON document. */
export function renderJson(r: PlanReport): string {
  return `${JSON.stringify(
    {
      summary: r.plan.summary,
      cluster: r.clusterNote,
      scopes: r.observed.map((o) => ({
        scope: o.scope.key,
        complete: o.listing.complete,
        instances: o.listed,
        entries: o.entries.length,
        problems: o.listing.problems,
      })),
      changes: r.plan.changes.map((c) =>
        c.op === 'upsert'
          ? { op: r.live.has(c.key) ? 'update' : 'create', key: c.key, entry: cleanEntry(c.entry) }
          : { op: 'delete', key: c.key },
      ),
      held: r.plan.held,
      conflicts: r.plan.conflicts,
      orphaned: r.plan.orphaned,
      skipped: r.skips,
      services: {
        services: r.services.services,
        workloadGroups: r.services.workloadGroups,
        problems: r.services.problems,
        excluded: r.services.excluded.map((x) => ({ key: objectKey(x.entry), code: x.code, reason: x.reason })),
      },
    },
    null,
    2,
  )}\n`;
}

/** The plan as a readable diff: `+` create, `~` update with changed paths, `-` delete. */
export function renderDiff(r: PlanReport): string {
  const lines = [`# ${summaryLine(r)}`, `# ${r.clusterNote}`];
  for (const change of r.plan.changes) {
    if (change.op === 'delete') {
      lines.push(`- ${change.key}`);
      continue;
    }
    const live = r.live.get(change.key);
    if (!live) {
      lines.push(`+ ${change.key}`);
      for (const l of stringify(cleanEntry(change.entry).spec).trimEnd().split('\n')) lines.push(`+     ${l}`);
      continue;
    }
    lines.push(`~ ${change.key}`);
    for (const d of diffEntries(change.entry, live)) lines.push(`~     ${d.path}: ${JSON.stringify(d.live)} -> ${JSON.stringify(d.desired)}`);
  }
  for (const h of r.plan.held) for (const d of h.deletes) lines.push(`! ${d.key} (delete held back: ${h.reason})`);
  for (const s of r.skips) lines.push(`  ${skipLine(s)}`);
  for (const l of serviceLines(r)) lines.push(`  ${l}`);
  return `${lines.join('\n')}\n`;
}
