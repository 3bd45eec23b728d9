// The GCP provider: Compute Engine instances of each configured project, one scope each, read with
// aggregatedList across all zones. A zone Compute reports as unreachable, or a page that cannot be
// read, makes the project's listing incomplete, so nothing in it is deleted on a partial view.
import type { AuthClient, OAuth2Client } from 'google-auth-library';
import type { MappingConfig } from '../../config/schema.ts';
import { askedAhead, mapLimited } from '../../services/concurrency.ts';
import { VmsError } from '../../services/errors.ts';
import type { Described, Instance, InstanceRef, Problem, Scope } from '../../services/model.ts';
import { BrokenListing, CloudProvider, type CloudProviderOptions, cloudScope, type ListingProgress, type ScopeReading } from '../cloud-provider.ts';
import {
  abortableSleep,
  type AggregatedListPage,
  type AggregatedListRequest,
  aggregatedListPage,
  type CallPolicy,
  ComputeCallError,
  ComputeClient,
  describeError,
  getInstance,
} from './compute.ts';
import type { GcpProviderConfig } from './config.ts';
import { foreignProject, type GceInstance, NETWORK_TAG_VALUE, NUMERIC_ID, RESOURCE_NAME, toInstance, ZONE_NAME } from './instance.ts';
import { type PubSubPushReceiver, pubSubReceiverOf } from './pubsub.ts';

/** How many instances.get calls one describe runs at once. */
export const DESCRIBE_CONCURRENCY = 8;

/** GCP label keys: what a selector tag must be for any label to carry it. */
const LABEL_KEY = /^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$/u;
/** GCP label values (possibly empty). */
const LABEL_VALUE = /^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$/u;

/** What the provider needs beyond its config block; only `selector` is required. */
export interface GcpProviderOptions extends CloudProviderOptions {
  /** Credentials used as they are; absent: `keyFile`, else Application Default Credentials (Workload Identity). */
  authClient?: AuthClient;
  /** The client that verifies push tokens; absent: one that fetches certificates from `webhook.certsUrl`. */
  oauth2Client?: OAuth2Client;
  /** Waits between attempts; replaceable so that retries take no real time in tests. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** The jitter source, a number in [0, 1). */
  random?: () => number;
}

/** How a listing narrows its instances: a Compute filter expression, and whether the selector is checked here too. */
export interface ListingFilter {
  /** Sent as aggregatedList's `filter`; undefined: every instance of the project is read. */
  server: string | undefined;
  /** Keep only instances whose tags carry the selector tag (the server could not filter on network tags). */
  clientSide: boolean;
}

/**
 * The filter of a listing. Labels are filtered by Compute: `labels.<tag> = "<value>"`, or
 * `labels.<tag>:*` for the value `*`. GCP label values are lowercase and cannot hold spaces, and
 * mapping compares the selector value trimmed and in any case, so the lowercased, trimmed value
 * selects on the server exactly what mapping selects. When network tags count as tags and one
 * could satisfy the selector (value `*` or `true`), Compute cannot filter on "label or network
 * tag": every instance is read and instances without the selector tag are dropped here.
 * Throws VMS_ERR_CONFIG_INVALID when no GCP label or network tag could ever match the selector.
 */
export function listingFilter(selector: MappingConfig['selector'], networkTagsAsTags: boolean, block = 'gcp'): ListingFilter {
  const key = selector.tag;
  const wanted = selector.value.trim().toLowerCase();
  if (!LABEL_KEY.test(key)) {
    throw new VmsError(
      'VMS_ERR_CONFIG_INVALID',
      `mapping.selector.tag '${key}' can never be a GCP label key or network tag (lowercase letters, digits, _ and -, starting with a letter, at most 63 characters), so ${block} would select nothing`,
    );
  }
  if (networkTagsAsTags && (wanted === '*' || wanted === NETWORK_TAG_VALUE)) return { server: undefined, clientSide: true };
  if (wanted === '*') return { server: `labels.${key}:*`, clientSide: false };
  if (!LABEL_VALUE.test(wanted)) {
    throw new VmsError(
      'VMS_ERR_CONFIG_INVALID',
      `mapping.selector.value '${selector.value}' can never be a GCP label value (lowercase letters, digits, _ and -, at most 63 characters), so ${block} would select nothing`,
    );
  }
  return { server: `labels.${key} = "${wanted}"`, clientSide: false };
}

/** Compute Engine discovery for one `type: gcp` block. */
export class GcpProvider extends CloudProvider {
  readonly kind = 'gcp' as const;
  readonly webhook: PubSubPushReceiver;
  readonly #config: GcpProviderConfig;
  readonly #filter: ListingFilter;
  readonly #selectorTag: string;
  readonly #client: ComputeClient;
  readonly #policy: CallPolicy;

  constructor(config: GcpProviderConfig, options: GcpProviderOptions) {
    // Every project of the block, `gcp:<name>:<project>`; a project is one scope across all its zones.
    super(config.name, config.projects.map((project) => cloudScope('gcp', config.name, project)), options.now);
    this.#config = config;
    this.#filter = listingFilter(options.selector, config.networkTagsAsTags, `gcp provider "${config.name}"`);
    this.#selectorTag = options.selector.tag;
    this.#client = new ComputeClient(config, options.authClient === undefined ? {} : { authClient: options.authClient });
    this.#policy = {
      maxAttempts: config.maxAttempts,
      retryDelay: config.retryDelay,
      timeout: config.timeout,
      sleep: options.sleep ?? abortableSleep,
      random: options.random ?? Math.random,
    };
    this.webhook = pubSubReceiverOf(config, options.oauth2Client === undefined ? {} : { oauth2Client: options.oauth2Client });
  }

  protected listingCall(scope: Scope): string {
    return `aggregatedList of project ${scope.account}`;
  }

  /** One project, all zones: zones Compute could not read are problems beside the instances read. */
  protected async readScope(scope: Scope, { signal, onPage, progress }: ScopeReading): Promise<Problem[]> {
    const selected = (page: Instance[]): Instance[] => (this.#filter.clientSide ? page.filter((i) => Object.hasOwn(i.tags, this.#selectorTag)) : page);
    const { problems } = await this.#aggregated(scope.account, this.#filter.server, signal, progress, (page) => onPage(selected(page)));
    return problems;
  }

  /**
   * The current state of the referenced instances, whatever their labels (an instance that lost the
   * selector label must be seen, so that its entry goes). A reference's id is the numeric id or the
   * instance name; with a zone it is one instances.get, without one an aggregatedList filtered to
   * it. Compute's 404 means gone; any other failure throws, so the caller retries rather than
   * deleting on a guess. A reference by name that is found comes back with the numeric id, the id
   * the instance's entry is named by.
   */
  async describe(refs: InstanceRef[], signal?: AbortSignal): Promise<Described[]> {
    const work = new Map<string, { project: string; zone: string | undefined; id: string }>();
    for (const ref of refs) {
      const where = `${ref.provider}:${ref.account}:${ref.zone ?? '*'}:${ref.id}`;
      if (ref.provider !== 'gcp' || !this.#config.projects.includes(ref.account)) {
        // Saying "gone" for an instance this block cannot see would delete its entry.
        throw this.outside(ref, where);
      }
      if (ref.zone !== undefined && !ZONE_NAME.test(ref.zone)) {
        throw new VmsError('VMS_ERR_PROVIDER_FAILED', `reference ${where} names no zone one can ask (zone '${ref.zone}')`, { ref });
      }
      work.set(workKey(ref), { project: ref.account, zone: ref.zone, id: ref.id });
    }

    const found = new Map<string, Instance | null>();
    await mapLimited([...work.entries()], DESCRIBE_CONCURRENCY, async ([key, item]) => {
      found.set(key, NUMERIC_ID.test(item.id) || RESOURCE_NAME.test(item.id) ? await this.#describeOne(item, signal) : null);
    });

    return refs.map((ref) => {
      const instance = found.get(workKey(ref)) ?? null;
      return { ref: instance !== null && instance.id !== ref.id ? { ...ref, id: instance.id } : ref, instance };
    });
  }

  /** Closes the Compute client's connections. */
  async close(): Promise<void> {
    await this.#client.close();
  }

  async #describeOne(item: { project: string; zone: string | undefined; id: string }, signal: AbortSignal | undefined): Promise<Instance | null> {
    const where = `${item.id} in ${item.zone ?? 'any zone'} (project ${item.project})`;
    if (item.zone === undefined) {
      const filter = NUMERIC_ID.test(item.id) ? `id = ${item.id}` : `name = "${item.id}"`;
      const progress: ListingProgress = { pages: 0 };
      let result: { instances: Instance[]; problems: Problem[] };
      try {
        result = await this.#aggregated(item.project, filter, signal, progress);
      } catch (err) {
        // Worded as the project's listing would say it: the lookup is that listing narrowed to one instance.
        const project = this.scopes().find((s) => s.account === item.project)!;
        const { message, code } = this.listingFailure(project, progress, err, signal);
        throw new VmsError(code, message, { project: item.project, id: item.id });
      }
      if (result.problems.length > 0) {
        // A zone that could not be read may hold it: "not found" would be a guess.
        throw new VmsError('VMS_ERR_PROVIDER_FAILED', `looking up instance ${where}: ${result.problems.map((p) => p.message).join('; ')}`, { project: item.project, id: item.id });
      }
      if (result.instances.length > 1) {
        throw new VmsError('VMS_ERR_PROVIDER_FAILED', `instance name ${item.id} is used in several zones of project ${item.project}; the reference needs a zone`, {
          project: item.project,
          id: item.id,
        });
      }
      return result.instances[0] ?? null;
    }
    let gce;
    try {
      gce = await getInstance(this.#client, { project: item.project, zone: item.zone, instance: item.id }, this.#policy, signal);
    } catch (err) {
      throw this.callFailure(`instances.get of ${where}`, err, signal, { project: item.project, zone: item.zone, id: item.id });
    }
    if (gce === null) return null;
    const foreign = foreignProject(gce, item.project);
    if (foreign !== undefined) {
      throw new VmsError('VMS_ERR_ACCOUNT_MISMATCH', this.#projectMismatch(`instances.get of ${where}`, gce, foreign, item.project), { project: item.project, owner: foreign, id: item.id });
    }
    const mapped = toInstance(gce, { project: item.project, observedAt: this.observedAt(), networkTagsAsTags: this.#config.networkTagsAsTags, zone: item.zone });
    if (!mapped.ok) throw new VmsError('VMS_ERR_PROVIDER_ANSWER', mapped.problem.message, { project: item.project, zone: item.zone, id: item.id });
    return mapped.instance;
  }

  // Every page of one project's aggregatedList, counted in `progress`. A failed call throws (never a
  // partial view passing as whole); zones Compute could not read become problems beside the
  // instances read.
  async #aggregated(
    project: string,
    filter: string | undefined,
    signal: AbortSignal | undefined,
    progress: ListingProgress,
    onPage?: (instances: Instance[]) => Promise<void>,
  ): Promise<{ instances: Instance[]; problems: Problem[] }> {
    // With `onPage`, each page's instances go there (an instance a later page repeats, once) and
    // none are kept here; without, they are all returned.
    const instances = new Map<string, Instance>();
    const passed = new Set<string>();
    const problems = new Map<string, Problem>();
    const tokens = new Set<string>();
    signal?.throwIfAborted();
    const ask = (pageToken: string | undefined): Promise<AggregatedListPage> => {
      const request: AggregatedListRequest = {
        project,
        maxResults: this.#config.pageSize,
        returnPartialSuccess: true,
        ...(filter === undefined ? {} : { filter }),
        ...(pageToken === undefined ? {} : { pageToken }),
      };
      return aggregatedListPage(this.#client, request, this.#policy, signal);
    };
    let pending: Promise<AggregatedListPage> | undefined = ask(undefined);
    while (pending !== undefined) {
      const page: AggregatedListPage = await pending;
      progress.pages++;
      const next: string | undefined = page.nextPageToken ? page.nextPageToken : undefined;
      if (next !== undefined && tokens.has(next)) {
        throw new BrokenListing(`aggregatedList of project ${project} returned page token '${next.slice(0, 40)}' twice; the listing would never end`, `page ${progress.pages + 1}`);
      }
      if (next !== undefined) tokens.add(next);
      // The next page is asked for before this one is mapped, so that Compute makes it ready meanwhile.
      pending = next === undefined ? undefined : askedAhead(ask(next));
      const observedAt = this.observedAt();
      const batch: Instance[] = [];
      for (const [scopeName, scoped] of Object.entries(page.items ?? {})) {
        const zone = scopeName.startsWith('zones/') ? scopeName.slice('zones/'.length) : undefined;
        const warning = scoped?.warning;
        if (warning?.code && warning.code !== 'NO_RESULTS_ON_PAGE') {
          const message = `${scopeName} of project ${project} answered ${String(warning.code)}${warning.message ? `: ${warning.message}` : ''}; its instances may be missing`;
          problems.set(`${scopeName}:${String(warning.code)}`, { code: 'VMS_ERR_PROVIDER_FAILED', message, at: scopeName });
        }
        for (const gce of scoped?.instances ?? []) {
          const foreign = foreignProject(gce, project);
          if (foreign !== undefined) throw new BrokenListing(this.#projectMismatch(`aggregatedList of project ${project}`, gce, foreign, project), scopeName, 'VMS_ERR_ACCOUNT_MISMATCH');
          const mapped = toInstance(gce, { project, observedAt, networkTagsAsTags: this.#config.networkTagsAsTags, ...(zone === undefined ? {} : { zone }) });
          // An instance that cannot be read could be one whose entry exists: keep the project's deletes back.
          if (!mapped.ok) problems.set(`${mapped.problem.at}:${mapped.problem.message}`, mapped.problem);
          else if (!onPage) instances.set(mapped.instance.id, mapped.instance);
          else if (!passed.has(mapped.instance.id)) {
            passed.add(mapped.instance.id);
            batch.push(mapped.instance);
          }
        }
      }
      for (const unreachable of page.unreachables ?? []) {
        problems.set(`${unreachable}:UNREACHABLE`, {
          code: 'VMS_ERR_PROVIDER_FAILED',
          message: `${unreachable} of project ${project} could not be reached; its instances are missing from the listing`,
          at: unreachable,
        });
      }
      const topWarning = page.warning;
      if (topWarning?.code && topWarning.code !== 'NO_RESULTS_ON_PAGE') {
        problems.set(`page:${String(topWarning.code)}`, {
          code: 'VMS_ERR_PROVIDER_FAILED',
          message: `aggregatedList of project ${project} answered ${String(topWarning.code)}${topWarning.message ? `: ${topWarning.message}` : ''}`,
          at: `page ${progress.pages}`,
        });
      }
      if (onPage) await onPage(batch);
    }
    return { instances: [...instances.values()], problems: [...problems.values()] };
  }

  /** Why an answer naming another project than the one asked cannot be used, and what to fix. */
  #projectMismatch(call: string, gce: GceInstance, foreign: string, project: string): string {
    const endpoint = this.#config.endpoint ?? 'https://compute.googleapis.com';
    return `${call} answered with instance ${gce.name ?? String(gce.id ?? '')} of project ${foreign} (its selfLink is ${gce.selfLink}): the Compute endpoint ${endpoint} does not serve project ${project} as asked; check projects[] and endpoint (nothing in this scope is changed until they match)`;
  }

  /** A failed Compute call as one line: HTTP status, Google's message, and how many attempts were made. */
  protected explain(err: unknown): string {
    if (err instanceof ComputeCallError) return err.message;
    return describeError(err);
  }
}

/** Builds the provider for a validated `type: gcp` block (the registry's factory). */
export function createGcpProvider(config: GcpProviderConfig, options: GcpProviderOptions): GcpProvider {
  return new GcpProvider(config, options);
}

function workKey(ref: InstanceRef): string {
  return `${ref.account}/${ref.zone ?? '*'}/${ref.id}`;
}
