// Policies decide which kinds of change a plan may contain, as in external-dns: pure functions
// looked up by the name the config uses.
import type { Change } from '../model.ts';

/** A change that creates or replaces an entry. */
export type UpsertChange = Extract<Change, { op: 'upsert' }>;

/** A change that removes an entry. */
export type DeleteChange = Extract<Change, { op: 'delete' }>;

/** The changes a plan could make, split by kind so a policy can drop whole kinds. */
export interface CandidateChanges {
  /** Upserts of entries the cluster does not have. */
  creates: UpsertChange[];
  /** Upserts of entries we own that differ from the desired ones. */
  updates: UpsertChange[];
  deletes: DeleteChange[];
}

/** Keeps the changes a policy allows; never adds any. */
export type Policy = (changes: CandidateChanges) => CandidateChanges;

/** The policy names the config accepts. */
export type PolicyName = 'sync' | 'upsert-only' | 'create-only';

/**
 * `sync` makes the cluster match the clouds; `upsert-only` never removes an entry (a safe first
 * rollout); `create-only` never touches an entry once it exists (hand edits survive).
 */
export const POLICIES: Readonly<Record<PolicyName, Policy>> = Object.freeze({
  sync: (changes: CandidateChanges): CandidateChanges => changes,
  'upsert-only': (changes: CandidateChanges): CandidateChanges => ({
    creates: changes.creates,
    updates: changes.updates,
    deletes: [],
  }),
  'create-only': (changes: CandidateChanges): CandidateChanges => ({
    creates: changes.creates,
    updates: [],
    deletes: [],
  }),
});

/** Every policy name, for config schemas and help texts. */
export const POLICY_NAMES: readonly PolicyName[] = Object.freeze(Object.keys(POLICIES) as PolicyName[]);

/** True when `name` is a policy this build knows, so strings from config can be narrowed. */
export function isPolicyName(name: string): name is PolicyName {
  return Object.hasOwn(POLICIES, name);
}
