// The messages between a cloud provider running in a worker thread (provider-thread.ts) and its
// stand-in on the main thread (threaded-provider.ts). Everything here crosses the thread boundary
// by structured clone: plain data only.
import type { MappingConfig, ProviderConfig } from '../../config/schema.ts';
import { ERROR_CODES, type ErrorCode, VmsError } from '../../services/errors.ts';
import type { Described, InstanceRef, Scope } from '../../services/model.ts';
import type { PagedListing } from '../provider.ts';
import type { PackedInstances } from './packed-instances.ts';

/**
 * Main thread → provider thread. A thread hosts every block of one provider kind (one SDK loaded
 * once): `add` builds a block's provider under the number `block`, which later requests name.
 */
export type ThreadRequest =
  | { op: 'add'; id: number; block: number; config: ProviderConfig; mapping: MappingConfig }
  | { op: 'list'; id: number; block: number; scope: Scope }
  | { op: 'describe'; id: number; block: number; refs: InstanceRef[] }
  | { op: 'remove'; id: number; block: number }
  | { op: 'abort'; id: number }
  /** The main thread has read a chunk of instances and takes the next. */
  | { op: 'next'; id: number }
  | { op: 'close' };

/**
 * Provider thread → main thread. A listing comes as `instances` chunks, each after the main thread
 * asked for the next, then `listed`.
 */
export type ThreadReply =
  | { type: 'added'; id: number; scopes: Scope[] }
  | { type: 'removed'; id: number }
  | { type: 'instances'; id: number; instances: PackedInstances }
  | { type: 'listed'; id: number; listing: PagedListing }
  | { type: 'described'; id: number; described: Described[] }
  | { type: 'error'; id: number; error: ThreadError }
  | { type: 'closed' };

/** An error as it crosses the boundary: its code (a VmsError's) survives. */
export interface ThreadError {
  message: string;
  code?: string;
  details?: Record<string, unknown>;
}

/** Instances per message of a listing: each message costs the main thread a short, bounded read. */
export const INSTANCES_PER_MESSAGE = 1000;

export function toThreadError(err: unknown): ThreadError {
  if (err instanceof VmsError) {
    let details: Record<string, unknown> | undefined;
    try {
      details = err.details === undefined ? undefined : structuredClone(err.details);
    } catch {
      details = undefined;
    }
    return { message: err.message, code: err.code, ...(details ? { details } : {}) };
  }
  return { message: err instanceof Error ? err.message : String(err) };
}

export function fromThreadError(error: ThreadError): Error {
  if (error.code !== undefined && Object.hasOwn(ERROR_CODES, error.code)) return new VmsError(error.code as ErrorCode, error.message, error.details);
  return new Error(error.message);
}

/** How much lower than the process a provider thread runs (Linux niceness, added; see provider-thread.ts). */
export const THREAD_NICENESS = 10;
