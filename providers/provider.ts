import type { Described, InstanceRef, Listing, ProviderKind, Scope } from '../services/model.ts';

/**
 * What every provider plugin implements. A provider knows its cloud and nothing about Kubernetes:
 * it lists scopes, describes instances by reference, and says whether a listing was complete.
 * A provider never throws for a scope it could not read: it returns an incomplete listing with
 * the problem, so that the deletion guard keeps that scope's entries.
 */
export interface Provider {
  readonly kind: ProviderKind;
  /** The name of this provider block in the config. */
  readonly name: string;
  /** The scopes this provider block covers, known from config alone. */
  scopes(): Scope[];
  /** Every instance in one scope that may be onboarded (server-side filtering where the cloud allows it). */
  list(scope: Scope, signal?: AbortSignal): Promise<Listing>;
  /** The current state of a few instances; `instance: null` means the provider says it is gone. */
  describe(refs: InstanceRef[], signal?: AbortSignal): Promise<Described[]>;
  /** Releases clients and sockets. */
  close?(): Promise<void>;
}
