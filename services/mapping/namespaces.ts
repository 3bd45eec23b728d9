// Which namespaces a tag may put an entry in. Anyone who can tag a VM in a synced account chooses
// its namespace, so the choice is bounded by lists the operator writes: a global one (what the
// installation may write at all) and, per provider block, one that narrows it further. Pure.

/** A namespace pattern: an exact name, or a glob where `*` stands for any run of characters. */
export type NamespacePattern = string;

/** The namespaces one provider block may write to: a namespace must match both lists. */
export interface NamespacePolicy {
  /** `mapping.namespace.allowed`, or the default namespace alone when it is not set. */
  global: readonly NamespacePattern[];
  /** The block's own `namespaces`; absent: the global list alone decides. */
  block?: readonly NamespacePattern[] | undefined;
}

/** True when `namespace` matches one of `patterns`. */
export function matchesNamespace(namespace: string, patterns: readonly NamespacePattern[]): boolean {
  return patterns.some((pattern) => (pattern.includes('*') ? globToRegExp(pattern).test(namespace) : pattern === namespace));
}

/** True when the policy lets an entry (and its service account) live in `namespace`. */
export function namespaceAllowed(namespace: string, policy: NamespacePolicy): boolean {
  return matchesNamespace(namespace, policy.global) && (policy.block === undefined || matchesNamespace(namespace, policy.block));
}

/** The policy's lists in words, for skip reasons. */
export function describeNamespacePolicy(policy: NamespacePolicy): string {
  const global = `mapping.namespace.allowed [${policy.global.join(', ')}]`;
  return policy.block === undefined ? global : `${global} and the provider block's namespaces [${policy.block.join(', ')}]`;
}

const globs = new Map<string, RegExp>();

function globToRegExp(pattern: string): RegExp {
  let re = globs.get(pattern);
  if (!re) {
    const body = pattern
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/gu, '\\$&'))
      .join('.*');
    re = new RegExp(`^${body}$`, 'u');
    globs.set(pattern, re);
  }
  return re;
}

/** The policy of one provider block: `mapping.namespace.allowed` (the default namespace alone when unset) and the block's list. */
export function namespacePolicy(
  namespace: { default: string; allowed?: readonly NamespacePattern[] | undefined },
  block?: readonly NamespacePattern[],
): NamespacePolicy {
  return { global: namespace.allowed ?? [namespace.default], ...(block ? { block } : {}) };
}

/**
 * What the writer may touch: the global list, and the namespaces to list owned entries in one by
 * one (`kubernetes.listNamespaces: allowed`; absent: one cluster-wide list).
 */
export function writerNamespaces(config: {
  mapping: { namespace: { default: string; allowed?: readonly NamespacePattern[] | undefined } };
  kubernetes: { listNamespaces: 'all' | 'allowed' };
}): { namespaces: readonly NamespacePattern[]; listNamespaces?: readonly NamespacePattern[] } {
  const namespaces = namespacePolicy(config.mapping.namespace).global;
  return config.kubernetes.listNamespaces === 'allowed' ? { namespaces, listNamespaces: namespaces } : { namespaces };
}
