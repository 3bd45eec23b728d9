// The AWS provider: EC2 instances of each configured account × region, one scope each. Listing is
// server-side filtered and all-or-nothing per scope: a page that fails makes the listing incomplete
// (nothing in that scope is deleted) rather than presenting the pages read so far as the whole.
import { type DescribeInstancesCommandInput, type EC2Client, type Filter, paginateDescribeInstances } from '@aws-sdk/client-ec2';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import type { MappingConfig } from '../../config/schema.ts';
import { askedAhead } from '../../services/concurrency.ts';
import { VmsError } from '../../services/errors.ts';
import type { Described, Instance, InstanceRef, Problem, Scope } from '../../services/model.ts';
import { BrokenListing, CloudProvider, type CloudProviderOptions, cloudScope, type ScopeReading } from '../cloud-provider.ts';
import { AssumeRoleError, type AwsCredentials, Ec2ClientPool } from './clients.ts';
import type { AwsAccountConfig, AwsProviderConfig } from './config.ts';
import { type EventBridgeReceiver, eventBridgeReceiverOf, INSTANCE_ID } from './eventbridge.ts';
import { eachReservation, reservationsOf } from './describe-answer.ts';
import { toInstance } from './instance.ts';

/** The states listed: stopping and stopped too, so that skip reasons can say "stopped" rather than nothing. */
export const LISTED_STATES = ['pending', 'running', 'stopping', 'stopped'] as const;

/** EC2's limit on instance ids per DescribeInstances call. */
export const DESCRIBE_BATCH = 1000;

/** What the provider needs beyond its config block; only `selector` is required. */
export interface AwsProviderOptions extends CloudProviderOptions {
  /** Source credentials; absent: the SDK's default chain (IRSA, EKS Pod Identity, environment, instance profile). */
  credentials?: AwsCredentials;
  /** Where secret references are looked up. */
  env?: NodeJS.ProcessEnv;
}

/** EC2 discovery for one `type: aws` block. */
export class AwsProvider extends CloudProvider {
  readonly kind = 'aws' as const;
  readonly webhook: EventBridgeReceiver;
  readonly #config: AwsProviderConfig;
  readonly #accounts: ReadonlyMap<string, AwsAccountConfig>;
  readonly #filters: Filter[];
  readonly #clients: Ec2ClientPool;
  /** Per account, the account its credentials belong to, once STS has said it. */
  readonly #identities = new Map<string, string>();

  constructor(config: AwsProviderConfig, options: AwsProviderOptions) {
    // Every account × region of the block, `aws:<name>:<account>:<region>`.
    super(config.name, config.accounts.flatMap((a) => config.regions.map((region) => cloudScope('aws', config.name, a.id, region))), options.now);
    this.#config = config;
    this.#accounts = new Map(config.accounts.map((a) => [a.id, a]));
    this.#filters = listingFilters(options.selector, config.filters);
    this.#clients = new Ec2ClientPool(config, {
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    this.webhook = eventBridgeReceiverOf(config, options.env);
  }

  protected listingCall(scope: Scope): string {
    return `DescribeInstances in ${scope.region} (account ${scope.account})`;
  }

  /**
   * One account and region, after its credentials are checked: each page's instances go on as
   * soon as they are read, so that nothing but a page is held here. An instance a later page
   * repeats is passed on once.
   */
  protected async readScope(scope: Scope, { signal, onPage, progress }: ScopeReading): Promise<Problem[]> {
    const account = this.#accounts.get(scope.account)!;
    const region = scope.region!;
    const identity = await this.#checkIdentity(account, region, signal);
    if (identity) throw new BrokenListing(identity.message, 'GetCallerIdentity', identity.code);
    const seen = new Set<string>();
    const problems: Problem[] = [];
    const client = this.#clients.get(account, region);
    const input: DescribeInstancesCommandInput = { Filters: this.#filters };
    const pages = paginateDescribeInstances({ client, pageSize: this.#config.pageSize, stopOnSameToken: true }, input, abortOptions(signal));
    let next = pages.next();
    for (;;) {
      const step = await next;
      if (step.done) break;
      const page = step.value;
      // The next page is asked for before this one is mapped, so that EC2 makes it ready meanwhile.
      next = askedAhead(pages.next());
      progress.pages++;
      const observedAt = this.observedAt();
      const batch: Instance[] = [];
      // Each reservation as it is read, so that a page's reservations are never held together; a
      // page whose answer fails, or names another account, passes nothing on.
      await eachReservation(page, (reservation) => {
        const foreign = foreignOwner([reservation], account.id);
        if (foreign !== undefined) {
          const message = accountMismatch(account, foreign, `${this.listingCall(scope)} answered with instances of account ${foreign}`);
          throw new BrokenListing(message, `page ${progress.pages}`, 'VMS_ERR_ACCOUNT_MISMATCH');
        }
        for (const ec2 of reservation.Instances ?? []) {
          const mapped = toInstance(ec2, { account: account.id, region, observedAt });
          if (!mapped.ok) problems.push(mapped.problem);
          else if (!seen.has(mapped.instance.id)) {
            seen.add(mapped.instance.id);
            batch.push(mapped.instance);
          }
        }
      });
      await onPage(batch);
    }
    return problems;
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
        throw this.outside(ref, `${ref.provider}:${ref.account}:${ref.region ?? '*'}:${ref.id}`);
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
        return { code: 'VMS_ERR_PROVIDER_FAILED', message: `GetCallerIdentity for account ${account.id} in ${region} failed, so its credentials cannot be checked: ${this.explain(err)}` };
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
      throw new VmsError('VMS_ERR_PROVIDER_FAILED', `DescribeInstances in ${where} cannot start: ${this.explain(err)}`, { account: account.id, region }, { cause: err });
    }
    let remaining = ids;
    while (remaining.length > 0) {
      try {
        const result: Instance[] = [];
        for await (const page of paginateDescribeInstances({ client, stopOnSameToken: true }, { InstanceIds: remaining }, abortOptions(signal))) {
          const observedAt = this.observedAt();
          const reservations = await reservationsOf(page);
          const foreign = foreignOwner(reservations, account.id);
          if (foreign !== undefined) throw new VmsError('VMS_ERR_ACCOUNT_MISMATCH', accountMismatch(account, foreign, `DescribeInstances in ${where} answered with instances of account ${foreign}`), { account: account.id, owner: foreign, region });
          for (const ec2 of reservations.flatMap((r) => r.Instances ?? [])) {
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
        throw this.callFailure(`DescribeInstances of ${remaining.length} instance(s) in ${where}`, err, signal, { account: account.id, region });
      }
    }
    return [];
  }

  /** An SDK error as one line: the AWS error code, its message, and how many attempts were made. */
  protected explain(err: unknown): string {
    if (!(err instanceof Error)) return String(err);
    if (err instanceof AssumeRoleError) return err.message;
    const code = errorCode(err);
    const attempts = (err as { $metadata?: { attempts?: number } }).$metadata?.attempts;
    const prefix = code && code !== 'Error' && !err.message.startsWith(code) ? `${code}: ` : '';
    return `${prefix}${err.message}${attempts && attempts > 1 ? ` (after ${attempts} attempts)` : ''}`;
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
