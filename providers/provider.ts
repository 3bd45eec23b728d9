import type { Described, Instance, InstanceRef, Listing, ProviderKind, Scope } from '../services/model.ts';

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
  /**
   * list() page by page, for providers whose listings are large: each page's instances go to
   * `onPage`, and the next page is read once it resolves, so a listing is never held whole here.
   */
  listPages?(scope: Scope, signal: AbortSignal | undefined, onPage: (instances: Instance[]) => Promise<void>): Promise<PagedListing>;
  /** The current state of a few instances; `instance: null` means the provider says it is gone. */
  describe(refs: InstanceRef[], signal?: AbortSignal): Promise<Described[]>;
  /** Releases clients and sockets. */
  close?(): Promise<void>;
}

/**
 * The end of a listing read page by page. `failed`: the listing broke off (a failed request, an
 * abandoned call); the pages already passed on are then dropped, as a failed list() returns none.
 */
export type PagedListing = Omit<Listing, 'instances'> & { failed: boolean };

/** A provider that can also take events from its cloud's event bus. */
export interface ProviderWithWebhook extends Provider {
  readonly webhook: WebhookReceiver;
}

/**
 * What a webhook request carries before its body is read: every scheme's credential is in a header
 * or the query string, so a request is authenticated from these alone and an unauthenticated one
 * costs only its headers.
 */
export interface WebhookCredentials {
  method: string;
  /** Header names in lower case. */
  headers: Record<string, string | string[] | undefined>;
  query: Record<string, string | undefined>;
}

/** An incoming webhook request, as the HTTP layer hands it to a provider's receiver. */
export interface WebhookRequest extends WebhookCredentials {
  /** The body parsed as JSON (undefined when empty). */
  body: unknown;
  /** The body exactly as received, for signature checks. */
  rawBody: string;
}

/** What a webhook request amounts to. */
export type WebhookOutcome =
  /** Instances to describe again and re-plan now, without waiting for the next resync. */
  | { kind: 'refresh'; refs: InstanceRef[]; ignored: number }
  /** Understood and acknowledged, but nothing to do (another event type, a welcome message). */
  | { kind: 'ignored'; reason: string }
  /** A protocol handshake answered directly (Event Grid validation, CloudEvents OPTIONS). */
  | { kind: 'reply'; status: number; body?: unknown; headers?: Record<string, string> };

/**
 * A provider's webhook receiver, mounted at `/webhooks/<provider kind>`. It never calls a cloud
 * API or the cluster: it checks credentials and turns the body into instance references.
 */
export interface WebhookReceiver {
  /**
   * Throws VmsError VMS_ERR_WEBHOOK_UNAUTHORIZED when credentials are missing or wrong (compared in
   * constant time). Runs before the body is read.
   */
  authenticate(req: WebhookCredentials): Promise<void>;
  /** Throws VmsError VMS_ERR_WEBHOOK_BODY, with a reason, when the body is malformed. */
  handle(req: WebhookRequest): WebhookOutcome;
}
