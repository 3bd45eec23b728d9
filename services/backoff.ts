// The one retry backoff of the project, used by the writer's retries of the Kubernetes API and by
// the GCP provider's retries of Compute. (BullMQ's own backoff retries queued jobs; it is configured,
// not computed here.)

/** The longest wait before retry `attempt` (1 for the first retry): `baseMs` doubled per earlier retry, at most `maxDoublings` times. */
export function backoffCeiling(baseMs: number, attempt: number, maxDoublings = Number.POSITIVE_INFINITY): number {
  return baseMs * 2 ** Math.min(attempt - 1, maxDoublings);
}

/**
 * The wait before retry `attempt`, in whole milliseconds: half of the ceiling fixed, half drawn
 * with `random` (a number in [0, 1)). The fixed half keeps a struggling server from being asked
 * again at once; the random half keeps replicas that failed together from returning together.
 */
export function jitteredBackoff(baseMs: number, attempt: number, random: () => number, maxDoublings?: number): number {
  const ceiling = backoffCeiling(baseMs, attempt, maxDoublings);
  return Math.floor(ceiling / 2 + random() * (ceiling / 2));
}
