// Pure planning: desired entries × owned entries × policy → changes. See plan.ts for the rules.
export { calculatePlan, isOwned, planSliced } from './plan.ts';
export type {
  Conflict,
  DeleteGuard,
  DesiredScope,
  HeldDeletes,
  Orphan,
  Plan,
  PlanInput,
  PlanOptions,
  PlanSummary,
  SkippedScope,
} from './plan.ts';
export { POLICIES, POLICY_NAMES, isPolicyName } from './policy.ts';
export type { CandidateChanges, DeleteChange, Policy, PolicyName, UpsertChange } from './policy.ts';
export { diffEntries, entriesEqual } from './compare.ts';
export type { EntryDifference } from './compare.ts';
