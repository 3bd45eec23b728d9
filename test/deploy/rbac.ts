// The permissions deploy/base grants to vm-mesh-sync, read from its ClusterRole, so that tests
// can compare them with what the code calls.
import { DEPLOY, only, resourceObjects } from './deploy-files.ts';
import path from 'node:path';

/** One (API group, resource) pair of the ClusterRole and the verbs granted on it. */
export interface ClusterRoleRule {
  /** '' is the core group. */
  apiGroup: string;
  resource: string;
  verbs: string[];
}

/**
 * The rules of deploy/base's ClusterRole, one per API group and resource (rules naming several
 * groups or resources are split, rules on the same pair merged), verbs sorted, pairs sorted.
 * Throws when the ClusterRole has anything these rows cannot express: nonResourceURLs,
 * resourceNames or an aggregationRule.
 */
export function clusterRoleRules(): ClusterRoleRule[] {
  return roleRules(only(resourceObjects(path.join(DEPLOY, 'base')), 'ClusterRole'));
}

/** The rules of one Role or ClusterRole object, in the form of clusterRoleRules. */
export function roleRules(role: Record<string, any>): ClusterRoleRule[] {
  if (role.aggregationRule) throw new Error('the ClusterRole aggregates other roles');
  const byPair = new Map<string, ClusterRoleRule>();
  for (const rule of (role.rules ?? []) as Array<Record<string, string[] | undefined>>) {
    if (rule.nonResourceURLs?.length) throw new Error(`the ClusterRole grants nonResourceURLs ${rule.nonResourceURLs.join(', ')}`);
    if (rule.resourceNames?.length) throw new Error(`the ClusterRole limits a rule to resourceNames ${rule.resourceNames.join(', ')}`);
    for (const apiGroup of rule.apiGroups ?? []) {
      for (const resource of rule.resources ?? []) {
        const key = `${apiGroup}/${resource}`;
        const row = byPair.get(key) ?? { apiGroup, resource, verbs: [] };
        row.verbs = [...new Set([...row.verbs, ...(rule.verbs ?? [])])].sort();
        byPair.set(key, row);
      }
    }
  }
  return [...byPair.values()].sort((a, b) => a.apiGroup.localeCompare(b.apiGroup) || a.resource.localeCompare(b.resource));
}
