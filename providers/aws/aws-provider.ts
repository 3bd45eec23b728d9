// The AWS provider: EC2 instances of each configured account × region, one scope each. Listing is
// server-side filtered and all-or-nothing per scope: a page that fails makes the listing incomplete
// (nothing in that scope is deleted) rather than presenting the pages read so far as the whole.
import { type DescribeInstancesCommandInput, type EC2Client, type Filter, paginateDescribeInstances } from '@aws-sdk/client-ec2';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { MappingConfig } from '../../config/schema.ts';
import { VmsError } from '../../services/errors.ts';
import type { Described, Instance, InstanceRef, Listing, Problem, Scope } from '../../services/model.ts';
import { brokenListing, wholeListing } from '../paging.ts';
import type { PagedListing, ProviderWithWebhook } from '../provider.ts';
import { AssumeRoleError, type AwsCredentials, Ec2ClientPool } from './clients.ts';
import type { AwsAccountConfig, AwsProviderConfig } from './config.ts';
import { type EventBridgeReceiver, eventBridgeReceiverOf, INSTANCE_ID } from './eventbridge.ts';
import { toInstance } from './instance.ts';

/** The states listed: stopping and stopped too, so that skip reasons can say "stopped" rather than nothing. */
export const LISTED_STATES = ['pending', 'running', 'stopping', 'stopped'] as const;

/** EC2's limit on instance ids per DescribeInstances call. */
export const DESCRIBE_BATCH = 1000;

/** What the provider needs beyond its config block; only `selector` is required. */
export interface AwsProviderOptions {
  /** The onboarding selector of the mapping rules, sent to EC2 as a filter. */
  selector: MappingConfig['selector'];
  /** Source credentials; absent: the SDK's default chain (IRSA, EKS Pod Identity, environment, instance profile). */
  credentials?: AwsCredentials;
  /** The clock that stamps observations. */
  now?: () => Date;
  /** Where secret references are looked up. */
  env?: NodeJS.ProcessEnv;
}

/** EC2 discovery for one `type: aws` block. */
export class AwsProvider implements ProviderWithWebhook {
  readonly kind = 'aws' as const;
  readonly name: string;
  readonly webhook: EventBridgeReceiver;
  readonly #config: AwsProviderConfig;
  readonly #accounts: ReadonlyMap<string, AwsAccountConfig>;
  readonly #scopes: ReadonlyMap<string, Scope>;
  readonly #filters: Filter[];
  readonly #clients: Ec2ClientPool;
  readonly #now: () => Date;
  /** Per account, the account its credentials belong to, once STS has said it. */
  readonly #identities = new Map<string, string>();

  constructor(config: AwsProviderConfig, options: AwsProviderOptions) {
    this.name = config.name;
    this.#config = config;
    this.#accounts = new Map(config.accounts.map((a) => [a.id, a]));
    this.#scopes = new Map(
      config.accounts.flatMap((a) =>
        config.regions.map((region): [string, Scope] => {
          const key = `aws:${config.name}:${a.id}:${region}`;
          return [key, { key, provider: 'aws', source: config.name, account: a.id, region }];
        }),
      ),
    );
    this.#filters = listingFilters(options.selector, config.filters);
    this.#clients = new Ec2ClientPool(config, {
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    this.#now = options.now ?? (() => new Date());
    this.webhook = eventBridgeReceiverOf(config, options.env);
  }

  /** Every account × region of the block, `aws:<name>:<account>:<region>`. */
  scopes(): Scope[] {
    return [...this.#scopes.values()].map((s) => ({ ...s }));
  }

  /** All selected instances of one account and region; never throws, an unreadable scope is an incomplete listing. */
  async list(scope: Scope, signal?: AbortSignal): Promise<Listing> {
    return wholeListing((onPage) => this.listPages(scope, signal, onPage));
  }

  /**
   * list() page by page: each page's instances go to `onPage` as soon as they are read, and the
   * next page is asked for once `onPage` resolves, so that nothing but a page is held here. An
   * instance a later page repeats is passed on once.
   */
  async listPages(scope: Scope, signal: AbortSignal | undefined, onPage: (instances: Instance[]) => Promise<void>): Promise<PagedListing> {
    const own = this.#scopes.get(scope.key);
    const account = own ? this.#accounts.get(own.account) : undefined;
    if (!own?.region || !account) {
      return brokenListing(scope, `scope ${scope.key} does not belong to aws provider "${this.name}"`, scope.key);
    }
    const where = `${own.region} (account ${account.id})`;
    const identity = await this.#checkIdentity(account, own.region, signal);
    if (identity) return brokenListing(scope, identity.message, 'GetCallerIdentity', identity.code);
    const seen = new Set<string>();
    const problems: Problem[] = [];
    let pages = 0;
    try {
      signal?.throwIfAborted();
      const client = this.#clients.get(account, own.region);
      const input: DescribeInstancesCommandInput = { Filters: this.#filters };
      const paginator = paginateDescribeInstances({ client, pageSize: this.#config.pageSize, stopOnSameToken: true }, input, abortOptions(signal));
      for await (const page of paginator) {
        pages++;
        const observedAt = this.#now().toISOString();
        const batch: Instance[] = [];
        const foreign = foreignOwner(page.Reservations, account.id);
        if (foreign !== undefined) {
          return brokenListing(scope, accountMismatch(account, foreign, `DescribeInstances in ${where} answered with instances of account ${foreign}`), `page ${pages}`, 'VMS_ERR_ACCOUNT_MISMATCH');
        }
        for (const ec2 of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
          const mapped = toInstance(ec2, { account: account.id, region: own.region, observedAt });
          if (!mapped.ok) problems.push(mapped.problem);
          else if (!seen.has(mapped.instance.id)) {
            seen.add(mapped.instance.id);
            batch.push(mapped.instance);
          }
        }
        await onPage(batch);
      }
    } catch (err) {
      const at = `page ${pages + 1}`;
      if (signal?.aborted) {
        return brokenListing(scope, `DescribeInstances in ${where} was abandoned after ${pages} page(s): ${reasonOf(signal)}`, at);
      }
      return brokenListing(scope, `DescribeInstances in ${where} failed: ${explain(err)}`, at);
    }
    // An instance that cannot be read could be one whose entry exists: keep the scope's deletes back.
    return { scope: own, complete: problems.length === 0, problems, failed: false };
  }

  /**
   * The current state of the referenced instances, whatever their tags (an instance that lost the
   * selector tag must be seen, so that its entry goes). EC2's "not found" means gone; any other
   * failure throws, so that the caller retries rather than deleting on a guess.
   */
  async describe(refs: InstanceRef[], signal?: AbortSignal): Promise<Described[]> {
    const wanted = new Map<string, { account: AwsAccountConfig; region: string; ids: Set<string> }>();
    for (const ref of refs) {
      const account = this.#accounts.get(ref.account);
      if (ref.provider !== 'aws' || !account || (ref.region !== undefined && !this.#config.regions.includes(ref.region))) {
        // Saying "gone" for an instance this block cannot see would delete its entry.
        throw new VmsError('VMS_ERR_PROVIDER_FAILED', `reference ${ref.provider}:${ref.account}:${ref.region ?? '*'}:${ref.id} is outside aws provider "${this.name}"`, {
          ref,
        });
      }
      if (!INSTANCE_ID.test(ref.id)) continue;
      // Without a region the instance may be in any of the block's regions.
      for (const region of ref.region === undefined ? this.#config.regions : [ref.region]) {
        const key = `${account.id}:${region}`;
        const group = wanted.get(key) ?? { account, region, ids: new Set<string>() };
        group.ids.add(ref.id);
        wanted.set(key, group);
      }
    }

    const found = new Map<string, Instance>();
    await Promise.all(
      [...wanted.values()].map(async ({ account, region, ids }) => {
        const all = [...ids];
        for (let i = 0; i < all.length; i += DESCRIBE_BATCH) {
          for (const instance of await this.#describeBatch(account, region, all.slice(i, i + DESCRIBE_BATCH), signal)) {
            found.set(`${account.id}:${region}:${instance.id}`, instance);
          }
        }
      }),
    );

    return refs.map((ref) => {
      const regions = ref.region === undefined ? this.#config.regions : [ref.region];
      const instance = regions.map((region) => found.get(`${ref.account}:${region}:${ref.id}`)).find((i) => i !== undefined);
      return { ref, instance: instance ?? null };
    });
  }

  /**
   * Whether the account's credentials belong to the configured account: STS says once per account
   * (GetCallerIdentity; the answer is kept), and a mismatch or an unanswered question stops the
   * call. Asked of AWS itself, or of `endpoint.sts` when one is set; a custom EC2 endpoint without
   * one (a VPC endpoint, an emulator) is not asked, and the reservations' owners are checked alone.
   */
  async #checkIdentity(account: AwsAccountConfig, region: string, signal: AbortSignal | undefined): Promise<{ code: 'VMS_ERR_ACCOUNT_MISMATCH' | 'VMS_ERR_PROVIDER_FAILED'; message: string } | undefined> {
    if (this.#config.endpoint.ec2 !== undefined && this.#config.endpoint.sts === undefined) return undefined;
    let actual = this.#identities.get(account.id);
    if (actual === undefined) {
      try {
        const answer = await this.#clients.sts(account, region).send(new GetCallerIdentityCommand({}), abortOptions(signal));
        if (!answer.Account) throw new Error('the answer names no account');
        actual = answer.Account;
      } catch (err) {
        return { code: 'VMS_ERR_PROVIDER_FAILED', message: `GetCallerIdentity for account ${account.id} in ${region} failed, so its credentials cannot be checked: ${explain(err)}` };
      }
      this.#identities.set(account.id, actual);
    }
    if (actual === account.id) return undefined;
    return { code: 'VMS_ERR_ACCOUNT_MISMATCH', message: accountMismatch(account, actual, `${region} (account ${account.id}), as STS GetCallerIdentity says`) };
  }

  /** Closes the EC2 clients' connections. */
  async close(): Promise<void> {
    this.#clients.destroy();
  }

  // EC2 fails the whole call when one id does not exist, naming the missing ones: drop them, ask again.
  async #describeBatch(account: AwsAccountConfig, region: string, ids: string[], signal: AbortSignal | undefined): Promise<Instance[]> {
    const where = `${region} (account ${account.id})`;
    const identity = await this.#checkIdentity(account, region, signal);
    if (identity) throw new VmsError(identity.code, identity.message, { account: account.id, region });
    let client: EC2Client;
    try {
      client = this.#clients.get(account, region);
    } catch (err) {
      throw new VmsError('VMS_ERR_PROVIDER_FAILED', `DescribeInstances in ${where} cannot start: ${explain(err)}`, { account: account.id, region }, { cause: err });
    }
    let remaining = ids;
    while (remaining.length > 0) {
      try {
        const result: Instance[] = [];
        for await (const page of paginateDescribeInstances({ client, stopOnSameToken: true }, { InstanceIds: remaining }, abortOptions(signal))) {
          const observedAt = this.#now().toISOString();
          const foreign = foreignOwner(page.Reservations, account.id);
          if (foreign !== undefined) throw new VmsError('VMS_ERR_ACCOUNT_MISMATCH', accountMismatch(account, foreign, `DescribeInstances in ${where} answered with instances of account ${foreign}`), { account: account.id, owner: foreign, region });
          for (const ec2 of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) {
            const mapped = toInstance(ec2, { account: account.id, region, observedAt });
            if (!mapped.ok) throw new VmsError('VMS_ERR_PROVIDER_ANSWER', mapped.problem.message, { account: account.id, region });
            result.push(mapped.instance);
          }
        }
        return result;
      } catch (err) {
        if (err instanceof VmsError) throw err;
        if (!signal?.aborted && errorCode(err) === 'InvalidInstanceID.NotFound') {
          const named = new Set(((err as Error).message.match(/i-[0-9a-f]{8,17}/g) ?? []).filter((id) => remaining.includes(id)));
          if (named.size > 0) {
            remaining = remaining.filter((id) => !named.has(id));
            continue;
          }
          if (remaining.length === 1) return [];
          // The message named none of ours: ask one by one, so that each answer is unambiguous.
          const each: Instance[] = [];
          for (const id of remaining) each.push(...(await this.#describeBatch(account, region, [id], signal)));
          return each;
        }
        const why = signal?.aborted ? `abandoned: ${reasonOf(signal)}` : `failed: ${explain(err)}`;
        throw new VmsError('VMS_ERR_PROVIDER_FAILED', `DescribeInstances of ${remaining.length} instance(s) in ${where} ${why}`, { account: account.id, region }, { cause: err });
      }
    }
    return [];
  }
}

/** Builds the provider for a validated `type: aws` block (the registry's factory). */
export function createAwsProvider(config: AwsProviderConfig, options: AwsProviderOptions): AwsProvider {
  return new AwsProvider(config, options);
}

/**
 * The filters of a listing. The selector goes to EC2 as `tag-key` only: EC2 compares tag values
 * exactly, while mapping accepts the value trimmed and in any case, and a listing narrower than
 * mapping would delete entries that an event just created.
 */
export function listingFilters(selector: MappingConfig['selector'], extra: AwsProviderConfig['filters']): Filter[] {
  return [
    { Name: 'tag-key', Values: [escapeFilterValue(selector.tag)] },
    { Name: 'instance-state-name', Values: [...LISTED_STATES] },
    ...extra.map((f) => ({ Name: f.name, Values: [...f.values] })),
  ];
}

// Filter values are globs; a literal tag key must not be one.
function escapeFilterValue(value: string): string {
  return value.replace(/[\\*?]/g, '\\$&');
}

/**
 * The account that owns a reservation of the page, when it is not the configured one: credentials
 * (or a role) of another account would otherwise put that account's instances into the mesh as
 * this one's. A reservation without an owner decides nothing.
 */
export function foreignOwner(reservations: ReadonlyArray<{ OwnerId?: string | undefined }> | undefined, accountId: string): string | undefined {
  return reservations?.find((r) => r.OwnerId !== undefined && r.OwnerId !== accountId)?.OwnerId;
}

function accountMismatch(account: AwsAccountConfig, owner: string, where: string): string {
  const through = account.roleArn === undefined ? 'its credentials' : `role ${account.roleArn}`;
  return `${where}: ${through} belong to account ${owner}, not ${account.id}; fix accounts[].id or roleArn (nothing in this scope is changed until they match)`;
}

function abortOptions(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal === undefined ? {} : { abortSignal: signal };
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { Code?: unknown; name?: unknown };
  return typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : undefined;
}

/** An SDK error as one line: the AWS error code, its message, and how many attempts were made. */
export function explain(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err instanceof AssumeRoleError) return err.message;
  const code = errorCode(err);
  const attempts = (err as { $metadata?: { attempts?: number } }).$metadata?.attempts;
  const prefix = code && code !== 'Error' && !err.message.startsWith(code) ? `${code}: ` : '';
  return `${prefix}${err.message}${attempts && attempts > 1 ? ` (after ${attempts} attempts)` : ''}`;
}

function reasonOf(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : String(reason ?? 'aborted');
}
