// Fields every provider block has, whatever its cloud.
import { z } from 'zod';

/** Names a provider block; it appears in scope keys and in metrics. */
export const blockName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be lowercase letters, digits and dashes').max(40);

/** A namespace name, or a glob of one where `*` stands for any run of characters (`team-*`). */
export const namespacePattern = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9*]([-a-z0-9*]*[a-z0-9*])?$/, 'must be a namespace name (lowercase letters, digits, dashes), optionally with * as a wildcard');

/** A list of namespace patterns. */
export const namespacePatterns = z.array(namespacePattern).min(1, 'must list at least one namespace');

/**
 * The namespaces a block's instances may be put in by their namespace tag; it narrows
 * `mapping.namespace.allowed` (a namespace must be in both). Absent: the global list alone.
 */
export const blockNamespaces = namespacePatterns.optional();
