// What every cloud provider (aws, gcp, azure) shares, so that a cloud is only its own calls: its
// scopes, the listing skeleton (a scope that is not ours, a call that failed or was abandoned, all
// become an incomplete listing that deletes nothing, never a throw) and how a failed call is
// worded. Plain code with no SDK: it is loaded in the provider threads too.
import type { MappingConfig } from '../config/schema.ts';
import { type ErrorCode, VmsError } from '../services/errors.ts';
import type { Described, Instance, InstanceRef, Listing, Problem, ProviderKind, Scope } from '../services/model.ts';
import { brokenListing, wholeListing } from './paging.ts';
import type { PagedListing, ProviderWithWebhook, WebhookReceiver } from './provider.ts';

/** What every cloud provider takes beyond its config block; a cloud adds its credentials and the like. */
export interface CloudProviderOptions {
  /** The onboarding selector of the mapping rules; the cloud narrows its listing by it as far as its API allows. */
  selector: MappingConfig['selector'];
  /** The clock that stamps observations. */
  now?: () => Date;
}

/** The scope of one account of a block (and one region, where the cloud scopes by region): `<kind>:<block>:<account>[:<region>]`. */
export function cloudScope(kind: CloudProvider['kind'], block: string, account: string, region?: string): Scope {
  const key = [kind, block, account, ...(region === undefined ? [] : [region])].join(':');
  return { key, provider: kind, source: block, account, ...(region === undefined ? {} : { region }) };
}

/** How far a listing got: the pages it has read. */
export interface ListingProgress {
  pages: number;
}

/** What readScope is given to read one scope with. */
export interface ScopeReading {
  signal: AbortSignal | undefined;
  /** Takes each page's instances; the next page is read once it resolves. */
  onPage: (instances: Instance[]) => Promise<void>;
  /** To be counted up per page read: an abandoned listing says how far it got. */
  progress: ListingProgress;
}

/** Thrown by readScope to end the listing with exactly this problem (an answer that cannot be trusted). */
export class BrokenListing extends Error {
  readonly at: string;
  readonly code: ErrorCode;
  constructor(message: string, at: string, code: ErrorCode = 'VMS_ERR_PROVIDER_FAILED') {
    super(message);
    this.name = 'BrokenListing';
    this.at = at;
    this.code = code;
  }
}

/** Thrown by readScope for a failed step other than its main call: the listing's problem names the step and where it failed. */
export class ListingStepFailure extends Error {
  readonly at: string;
  constructor(step: string, at: string, cause: unknown) {
    super(step, { cause });
    this.name = 'ListingStepFailure';
    this.at = at;
  }
}

/** Why an abort happened, as one line. */
function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : String(reason ?? 'aborted');
}

/**
 * The base of a cloud provider block. A cloud fills in readScope (read one scope's instances, page
 * by page), listingCall (how its listing call is named in a problem), explain (its SDK's errors as
 * one line) and describe.
 */
export abstract class CloudProvider implements ProviderWithWebhook {
  abstract readonly kind: Exclude<ProviderKind, 'static'>;
  abstract readonly webhook: WebhookReceiver;
  readonly name: string;
  readonly #scopes: ReadonlyMap<string, Scope>;
  readonly #now: () => Date;

  /** `scopes`: every scope of the block, known from its config alone; `now`: the clock that stamps observations. */
  protected constructor(name: string, scopes: readonly Scope[], now: (() => Date) | undefined) {
    this.name = name;
    this.#scopes = new Map(scopes.map((s) => [s.key, s]));
    this.#now = now ?? (() => new Date());
  }

  /** Every scope of the block (copies: a caller cannot change ours). */
  scopes(): Scope[] {
    return [...this.#scopes.values()].map((s) => ({ ...s }));
  }

  /** All selected instances of one scope; never throws, an unreadable scope is an incomplete listing. */
  async list(scope: Scope, signal?: AbortSignal): Promise<Listing> {
    return wholeListing((onPage) => this.listPages(scope, signal, onPage));
  }

  /**
   * list() page by page. The listing is complete when readScope ends without problems; when it
   * throws, the listing broke off and its pages must not be used.
   */
  async listPages(scope: Scope, signal: AbortSignal | undefined, onPage: (instances: Instance[]) => Promise<void>): Promise<PagedListing> {
    const own = this.#scopes.get(scope.key);
    if (!own) return brokenListing(scope, `scope ${scope.key} does not belong to ${this.kind} provider "${this.name}"`, scope.key);
    const progress: ListingProgress = { pages: 0 };
    let problems: Problem[];
    try {
      signal?.throwIfAborted();
      problems = await this.readScope(own, { signal, onPage, progress });
    } catch (err) {
      const { message, at, code } = this.listingFailure(own, progress, err, signal);
      return brokenListing(scope, message, at, code);
    }
    // A problem could hide an instance whose entry exists: keep the scope's deletes back.
    return { scope: own, complete: problems.length === 0, problems, failed: false };
  }

  /** The current state of a few instances; `instance: null` means the cloud says it is gone. */
  abstract describe(refs: InstanceRef[], signal?: AbortSignal): Promise<Described[]>;

  /** Releases clients and sockets. */
  abstract close(): Promise<void>;

  /** Reads one scope of this block, each page's instances to `reading.onPage`; resolves to the problems that make it incomplete. */
  protected abstract readScope(scope: Scope, reading: ScopeReading): Promise<Problem[]>;

  /** The listing call of `scope` as a problem names it (`DescribeInstances in us-east-1 (account …)`); `step` when a ListingStepFailure names one. */
  protected abstract listingCall(scope: Scope, step?: string): string;

  /** A failed call of this cloud as one line: status, the cloud's code and message, attempts made. */
  protected abstract explain(err: unknown): string;

  /** Why a listing of `scope` broke off: abandoned after so many pages, or failed as the cloud explained it. */
  protected listingFailure(scope: Scope, progress: ListingProgress, err: unknown, signal: AbortSignal | undefined): { message: string; at: string; code: ErrorCode } {
    if (err instanceof BrokenListing) return { message: err.message, at: err.at, code: err.code };
    const step = err instanceof ListingStepFailure ? err : undefined;
    const what = this.listingCall(scope, step?.message);
    const at = step?.at ?? `page ${progress.pages + 1}`;
    const code: ErrorCode = 'VMS_ERR_PROVIDER_FAILED';
    if (signal?.aborted) return { message: `${what} was abandoned after ${progress.pages} page(s): ${abortReason(signal)}`, at, code };
    return { message: `${what} failed: ${this.explain(step?.cause ?? err)}`, at, code };
  }

  /** A describe call that failed or was abandoned, for the caller to retry rather than take as "gone". */
  protected callFailure(what: string, err: unknown, signal: AbortSignal | undefined, details: Record<string, unknown>): VmsError {
    const why = signal?.aborted ? `abandoned: ${abortReason(signal)}` : `failed: ${this.explain(err)}`;
    return new VmsError('VMS_ERR_PROVIDER_FAILED', `${what} ${why}`, details, { cause: err });
  }

  /** A reference to an instance this block cannot see (`where` as the cloud writes references); saying "gone" for it would delete its entry. */
  protected outside(ref: InstanceRef, where: string): VmsError {
    return new VmsError('VMS_ERR_PROVIDER_FAILED', `reference ${where} is outside ${this.kind} provider "${this.name}"`, { ref });
  }

  /** The observation stamp of what was just read. */
  protected observedAt(): string {
    return this.#now().toISOString();
  }
}
