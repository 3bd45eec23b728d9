// The jobs `serve` queues besides the apply jobs: their queues, their data and the ids that make
// BullMQ coalesce them. Plain data and naming only, so that tools and benchmarks can name the
// queues without loading the runtime.
import type { InstanceRef } from '../model.ts';
import { idPart } from '../queue/job-id.ts';

/** The queue of scope resyncs. */
export const RESYNC_QUEUE_NAME = 'vms-resync';
/**
 * The queue of instance refreshes of earlier versions, one job per instance. Replicas of this
 * version hand its jobs over to the refresh set (services/queue/refresh-set.ts) and never put jobs
 * on it, so that events an earlier replica accepted during a rolling update are still refreshed.
 */
export const REFRESH_QUEUE_NAME = 'vms-refresh';

/**
 * Refreshes run in batches: the instances that come due while earlier batches run are claimed,
 * described (one cloud call per scope), planned and enqueued together. Up to REFRESH_IN_FLIGHT
 * batches of up to REFRESH_BATCH instances run at once.
 */
export const REFRESH_BATCH = 100;
export const REFRESH_IN_FLIGHT = 2;
/** Tries of an instance's refresh before it is left to the next resync. */
export const REFRESH_ATTEMPTS = 5;

/** The data of a resync job. */
export interface ResyncJobData {
  scopeKey: string;
}

/** The data of a refresh job of an earlier version. */
export interface RefreshJobData {
  ref: InstanceRef;
}

/**
 * The id of an instance's refresh: events for one instance coalesce into at most one running and
 * one waiting refresh, and the waiting one describes the instance after the newest event.
 */
export function refreshId(ref: InstanceRef): string {
  return [ref.provider, ref.account, ref.id].map(idPart).join('|');
}

/** The id of a scope's resync scheduler. */
export function schedulerId(scopeKey: string): string {
  return `resync-${idPart(scopeKey)}`;
}
