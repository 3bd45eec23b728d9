// Azure VM discovery for one `type: azure` block: one scope per subscription. A VM's addresses live
// on its network interfaces, so a listing reads VMs, interfaces and public IPs together: by one
// joined Resource Graph query (default), or where Resource Graph is not allowed by listing VMs once
// per subscription and interfaces and public IPs once per resource group (`discovery: arm`). Never
// one request per VM: ARM throttles reads per subscription and principal.
import type { VirtualMachine } from '@azure/arm-compute';
import type { NetworkInterface, PublicIPAddress } from '@azure/arm-network';
import { isRestError, type QueryResponse } from '@azure/arm-resourcegraph';
import type { TokenCredential } from '@azure/identity';
import { askedAhead, mapLimited } from '../../services/concurrency.ts';
import { VmsError } from '../../services/errors.ts';
import type { Described, Instance, InstanceRef, Problem, Scope } from '../../services/model.ts';
import { BrokenListing, CloudProvider, type CloudProviderOptions, cloudScope, type ListingProgress, ListingStepFailure, type ScopeReading } from '../cloud-provider.ts';
import { AzureClients, armErrorOf, attemptsOf } from './clients.ts';
import type { AzureProviderConfig } from './config.ts';
import { type EventGridReceiver, eventGridReceiverOf } from './eventgrid.ts';
import { discoveryQuery, rowVmKey, vmsFromRows } from './graph.ts';
import { fromArmVm, publicIpIdsOf, toInstance } from './instance.ts';
import { foreignSubscription, normalizeResourceId, parseVmResourceId, resourceGroupAndName, type VmResourceId } from './resource-id.ts';

/** Resource groups whose interfaces or public IPs are listed at once, and VMs described at once. */
export const CONCURRENCY = 4;

/** What the provider needs beyond its config block; only `selector` is required. */
export interface AzureProviderOptions extends CloudProviderOptions {
  /** The identity that calls Azure; absent: DefaultAzureCredential. */
  credential?: TokenCredential;
  /** PEM certificates trusted for the endpoint instead of the public roots (a test fake's). */
  ca?: string;
  /** Where secret references are looked up. */
  env?: NodeJS.ProcessEnv;
}

/** Azure VM discovery for one `type: azure` block. */
export class AzureProvider extends CloudProvider {
  readonly kind = 'azure' as const;
  readonly webhook: EventGridReceiver;
  readonly #config: AzureProviderConfig;
  readonly #subscriptions: ReadonlySet<string>;
  readonly #tag: string;
  readonly #clients: AzureClients;

  constructor(config: AzureProviderConfig, options: AzureProviderOptions) {
    // One scope per subscription, `azure:<name>:<subscription>`.
    super(config.name, config.subscriptions.map((s) => cloudScope('azure', config.name, s)), options.now);
    this.#config = config;
    this.#subscriptions = new Set(config.subscriptions);
    this.#tag = options.selector.tag;
    this.#clients = new AzureClients(config, {
      ...(options.credential === undefined ? {} : { credential: options.credential }),
      ...(options.ca === undefined ? {} : { ca: options.ca }),
    });
    this.webhook = eventGridReceiverOf(config, options.env);
  }

  protected listingCall(scope: Scope, step?: string): string {
    return `${step ?? (this.#config.discovery === 'arm' ? 'listing virtual machines' : 'the Resource Graph query')} in subscription ${scope.account}`;
  }

  /**
   * Every VM of one subscription that carries the selector tag. Resource Graph pages are handed on
   * as they arrive (its rows come ordered by VM id, so only the rows of the last VM of a page wait
   * for the next page, and rows of a VM that come apart fail the listing); `discovery: arm` joins
   * VMs, interfaces and public IPs first and hands them on at once. A truncated Resource Graph
   * answer or a VM that cannot be read is a problem, which keeps the subscription's entries from
   * being deleted.
   */
  protected async readScope(scope: Scope, { signal, onPage, progress }: ScopeReading): Promise<Problem[]> {
    if (this.#config.discovery !== 'arm') return this.#listGraph(scope, progress, signal, onPage);
    const { instances, problems } = await this.#listArm(scope, progress, signal);
    await onPage(instances);
    return problems;
  }

  /**
   * The current state of the referenced VMs, whatever their tags (a VM that lost the selector tag
   * must be seen, so that its entry goes). A 404 means gone; any other failure throws, so that the
   * caller retries rather than deleting on a guess.
   */
  async describe(refs: InstanceRef[], signal?: AbortSignal): Promise<Described[]> {
    const wanted = new Map<string, VmResourceId>();
    for (const ref of refs) {
      if (ref.provider !== 'azure' || !this.#subscriptions.has(ref.account.toLowerCase())) {
        throw this.outside(ref, `${ref.provider}:${ref.account}:${ref.id}`);
      }
      // An id that is not a VM's names nothing, and a VM id names its subscription: a VM of another
      // subscription is not in this one (`explain` asks every scope). Both are null without a call.
      const vm = parseVmResourceId(ref.id);
      if (vm && vm.subscriptionId === ref.account.toLowerCase()) wanted.set(vm.id, vm);
    }

    const found = new Map<string, Instance | null>();
    await mapLimited([...wanted.values()], CONCURRENCY, async (vm) => {
      found.set(vm.id, await this.#describeOne(vm, signal));
    });
    return refs.map((ref) => {
      const vm = parseVmResourceId(ref.id);
      return { ref, instance: vm && vm.subscriptionId === ref.account.toLowerCase() ? (found.get(vm.id) ?? null) : null };
    });
  }

  /** Drops the SDK clients. */
  async close(): Promise<void> {
    this.#clients.clear();
  }

  /**
   * An SDK error as one line: HTTP status, ARM error code, message, and how many attempts were
   * made. Without an aborted signal, an aborted request is one that ran into the configured timeout.
   */
  protected explain(err: unknown): string {
    if (!(err instanceof Error)) return String(err);
    if (err.name === 'AbortError') return `a request took longer than ${this.#config.timeout} ms and was abandoned`;
    if (isRestError(err)) {
      const body = armErrorOf(err.request);
      const head = [err.statusCode === undefined ? undefined : `HTTP ${err.statusCode}`, err.code ?? body?.code].filter(Boolean).join(' ');
      const message = body?.message ?? err.message;
      const attempts = attemptsOf(err.request);
      return `${head ? `${head}: ` : ''}${message}${attempts > 1 ? ` (after ${attempts} attempts)` : ''}`;
    }
    return `${err.name && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message}`;
  }

  /** Why an answer naming another subscription than the one asked cannot be used, and what to fix. */
  #subscriptionMismatch(call: string, vmId: string, foreign: string, subscription: string): string {
    return `${call} in subscription ${subscription} answered with VM ${normalizeResourceId(vmId)} of subscription ${foreign}: the endpoint ${this.#config.endpoint} does not serve subscription ${subscription} as asked; check subscriptions[] and endpoint (nothing in this scope is changed until they match)`;
  }

  async #listGraph(scope: Scope, progress: ListingProgress, signal: AbortSignal | undefined, onPage: (instances: Instance[]) => Promise<void>): Promise<Problem[]> {
    const client = this.#clients.graph();
    const query = discoveryQuery(this.#tag);
    const problems: Problem[] = [];
    // Rows of VMs not handed on yet: those of the last VM read, which may go on in the next page.
    let waiting: Array<{ row: unknown; observedAt: string }> = [];
    let waitingFrom = 0;
    let rowsRead = 0;
    // VMs handed on: rows of one of them coming back later mean the answer is not in the order asked for.
    const passed = new PassedVms();
    const handOn = async (rows: Array<{ row: unknown; observedAt: string }>, firstIndex: number) => {
      if (rows.length === 0) return;
      const { vms, problems: unreadable } = vmsFromRows(rows, firstIndex);
      problems.push(...unreadable);
      const instances: Instance[] = [];
      for (const { vm, observedAt } of vms) {
        const foreign = foreignSubscription(vm.id, scope.account);
        if (foreign !== undefined) {
          throw new BrokenListing(this.#subscriptionMismatch('the Resource Graph query', vm.id, foreign, scope.account), `page ${progress.pages}`, 'VMS_ERR_ACCOUNT_MISMATCH');
        }
        if (!passed.add(vm.id)) {
          // It was handed on without these rows, perhaps with the wrong interface as its primary: nothing of this listing may be used.
          throw new BrokenListing(
            `Resource Graph did not answer subscription ${scope.account} in the order of VM ids asked for (rows of VM ${vm.id} came apart); nothing of this listing is used`,
            `page ${progress.pages}`,
            'VMS_ERR_PROVIDER_ANSWER',
          );
        }
        const mapped = toInstance(vm, { subscriptionId: scope.account, observedAt });
        if (mapped.ok) instances.push(mapped.instance);
        else problems.push(mapped.problem);
      }
      await onPage(instances);
    };
    const seenTokens = new Set<string>();
    let truncated = false;
    const ask = (token: string | undefined): Promise<QueryResponse> =>
      client.resources(
        { subscriptions: [scope.account], query, options: { top: this.#config.pageSize, resultFormat: 'objectArray', ...(token ? { skipToken: token } : {}) } },
        signal === undefined ? {} : { abortSignal: signal },
      );
    let pending: Promise<QueryResponse> | undefined = ask(undefined);
    while (pending !== undefined) {
      const answer: QueryResponse = await pending;
      progress.pages++;
      const observedAt = this.observedAt();
      if (!Array.isArray(answer.data)) throw new Error(`Resource Graph answered page ${progress.pages} without an array of rows`);
      const page = (answer.data as unknown[]).map((row) => ({ row, observedAt }));
      rowsRead += page.length;
      if (answer.resultTruncated === 'true') truncated = true;
      const skipToken = answer.skipToken || undefined;
      if (skipToken !== undefined) {
        if (seenTokens.has(skipToken)) throw new Error(`Resource Graph returned the same skip token twice (page ${progress.pages})`);
        seenTokens.add(skipToken);
      }
      // The next page is asked for before this one is handed on, so that Resource Graph makes it
      // ready meanwhile.
      pending = skipToken === undefined ? undefined : askedAhead(ask(skipToken));
      const rows = waiting.concat(page);
      // Everything up to the last VM's first row is complete; the last VM waits unless this was the last page.
      // Rows without an id (problems, whatever VM they were) wait with it rather than cut it short.
      let cut = rows.length;
      if (skipToken !== undefined) {
        let lastKey: string | undefined;
        for (let i = rows.length - 1; i >= 0 && lastKey === undefined; i--) lastKey = rowVmKey(rows[i]!.row);
        while (cut > 0 && [lastKey, undefined].includes(rowVmKey(rows[cut - 1]!.row))) cut--;
      }
      await handOn(rows.slice(0, cut), waitingFrom);
      waitingFrom += cut;
      waiting = rows.slice(cut);
    }
    await handOn(waiting, waitingFrom);

    if (truncated) {
      problems.push({
        code: 'VMS_ERR_PROVIDER_FAILED',
        message: `Resource Graph truncated its answer for subscription ${scope.account} (${rowsRead} row(s) read); VMs it left out keep their entries until a complete listing`,
        at: `page ${progress.pages}`,
      });
    }
    // An unreadable VM or a truncated answer could hide a VM whose entry exists: keep the deletes back.
    return problems;
  }

  async #listArm(scope: Scope, progress: ListingProgress, signal: AbortSignal | undefined): Promise<{ instances: Instance[]; problems: Problem[] }> {
    const subscription = scope.account;
    const compute = await this.#clients.compute(subscription);
    const network = await this.#clients.network(subscription);
    const abort = signal === undefined ? {} : { abortSignal: signal };

    const selected: Array<{ vm: VirtualMachine; observedAt: string }> = [];
    try {
      // statusOnly adds each VM's instance view (power state) to the list, sparing a call per VM.
      for await (const page of pagesOf(compute.virtualMachines.listAll({ statusOnly: 'true', ...abort }).byPage(), signal)) {
        progress.pages++;
        const observedAt = this.observedAt();
        // The list API cannot filter by tag: select here, by key only, as the Resource Graph query does.
        for (const vm of page) {
          const foreign = foreignSubscription(vm.id ?? '', subscription);
          if (foreign !== undefined) {
            throw new BrokenListing(this.#subscriptionMismatch('listing virtual machines', vm.id!, foreign, subscription), `virtual machines page ${progress.pages}`, 'VMS_ERR_ACCOUNT_MISMATCH');
          }
          if (vm.tags && Object.hasOwn(vm.tags, this.#tag)) selected.push({ vm, observedAt });
        }
      }
    } catch (err) {
      if (err instanceof BrokenListing) throw err;
      throw new ListingStepFailure('listing virtual machines', `virtual machines page ${progress.pages + 1}`, err);
    }

    const nics = new Map<string, NetworkInterface>();
    const nicGroups = resourceGroupsOf(selected.flatMap(({ vm }) => (vm.networkProfile?.networkInterfaces ?? []).map((n) => n.id ?? '')), subscription);
    await mapLimited(nicGroups, CONCURRENCY, async (group) => {
      try {
        for await (const page of pagesOf(network.networkInterfaces.list(group, abort).byPage(), signal)) {
          for (const nic of page) if (nic.id) nics.set(normalizeResourceId(nic.id), nic);
        }
      } catch (err) {
        throw new ListingStepFailure(`listing network interfaces of resource group ${group}`, `resource group ${group}`, err);
      }
    });

    const publicIps = new Map<string, PublicIPAddress>();
    const wantedNics = selected.flatMap(({ vm }) => (vm.networkProfile?.networkInterfaces ?? []).flatMap((n) => nics.get(normalizeResourceId(n.id ?? '')) ?? []));
    const publicIpGroups = resourceGroupsOf(wantedNics.flatMap(publicIpIdsOf), subscription);
    await mapLimited(publicIpGroups, CONCURRENCY, async (group) => {
      try {
        for await (const page of pagesOf(network.publicIPAddresses.list(group, abort).byPage(), signal)) {
          for (const ip of page) if (ip.id) publicIps.set(normalizeResourceId(ip.id), ip);
        }
      } catch (err) {
        throw new ListingStepFailure(`listing public IP addresses of resource group ${group}`, `resource group ${group}`, err);
      }
    });

    const instances = new Map<string, Instance>();
    const problems: Problem[] = [];
    for (const { vm, observedAt } of selected) {
      const mapped = toInstance(fromArmVm(vm, nics, publicIps), { subscriptionId: subscription, observedAt });
      if (mapped.ok) instances.set(mapped.instance.id, mapped.instance);
      else problems.push(mapped.problem);
    }
    return { instances: [...instances.values()], problems };
  }

  async #describeOne(ref: VmResourceId, signal: AbortSignal | undefined): Promise<Instance | null> {
    const abort = signal === undefined ? {} : { abortSignal: signal };
    try {
      signal?.throwIfAborted();
      const compute = await this.#clients.compute(ref.subscriptionId);
      const network = await this.#clients.network(ref.subscriptionId);
      let vm: VirtualMachine;
      try {
        vm = await compute.virtualMachines.get(ref.resourceGroup, ref.name, { expand: 'instanceView', ...abort });
      } catch (err) {
        if (isGone(err)) return null;
        throw err;
      }
      const foreign = foreignSubscription(vm.id ?? '', ref.subscriptionId);
      if (foreign !== undefined) {
        throw new VmsError('VMS_ERR_ACCOUNT_MISMATCH', this.#subscriptionMismatch(`getting VM ${ref.id}`, vm.id!, foreign, ref.subscriptionId), { id: ref.id, owner: foreign });
      }
      const observedAt = this.observedAt();

      const nics = new Map<string, NetworkInterface>();
      for (const nicRef of vm.networkProfile?.networkInterfaces ?? []) {
        const where = nicRef.id ? resourceGroupAndName(nicRef.id) : undefined;
        if (!where) continue;
        try {
          const nic = await (await this.#clients.network(where.subscriptionId)).networkInterfaces.get(where.resourceGroup, where.name, abort);
          nics.set(normalizeResourceId(nicRef.id!), nic);
        } catch (err) {
          // Left out, the VM maps to a "not found" problem if it was the primary one.
          if (!isGone(err)) throw err;
        }
      }
      const publicIps = new Map<string, PublicIPAddress>();
      for (const id of [...nics.values()].flatMap(publicIpIdsOf)) {
        const where = resourceGroupAndName(id);
        if (!where || publicIps.has(id)) continue;
        try {
          publicIps.set(id, await network.publicIPAddresses.get(where.resourceGroup, where.name, abort));
        } catch (err) {
          if (!isGone(err)) throw err;
        }
      }

      const mapped = toInstance(fromArmVm(vm, nics, publicIps), { subscriptionId: ref.subscriptionId, observedAt });
      if (!mapped.ok) throw new VmsError('VMS_ERR_PROVIDER_ANSWER', mapped.problem.message, { id: ref.id });
      return mapped.instance;
    } catch (err) {
      if (err instanceof VmsError) throw err;
      throw this.callFailure(`describing VM ${ref.id}`, err, signal, { id: ref.id });
    }
  }
}

/** Builds the provider for a validated `type: azure` block (the registry's factory). */
export function createAzureProvider(config: AzureProviderConfig, options: AzureProviderOptions): AzureProvider {
  return new AzureProvider(config, options);
}

// A missing subscription is a configuration error, not a VM that is gone.
function isGone(err: unknown): boolean {
  return isRestError(err) && err.statusCode === 404 && err.code !== 'SubscriptionNotFound';
}

// The resource groups of ids in one subscription, lowercased and in first-seen order.
function resourceGroupsOf(ids: readonly string[], subscription: string): string[] {
  const groups = new Set<string>();
  for (const id of ids) {
    const where = resourceGroupAndName(id);
    if (where && where.subscriptionId === subscription) groups.add(where.resourceGroup);
  }
  return [...groups];
}

// The SDK sends later pages without the caller's abort signal: stop waiting for them when it fires.
async function* pagesOf<T>(pages: AsyncIterableIterator<T[]>, signal: AbortSignal | undefined): AsyncGenerator<T[]> {
  for (;;) {
    signal?.throwIfAborted();
    const next = await untilAborted(pages.next(), signal);
    if (next.done) return;
    yield next.value;
  }
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  // The abandoned request may still fail later; that failure has nobody left to tell.
  promise.catch(() => undefined);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason ?? 'aborted')));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * The VMs a listing has handed on, as the names of each resource group's VMs: a listing of a
 * hundred thousand VMs holds their names, not a hundred thousand resource ids of a hundred and
 * more characters each. The same VMs as normalizeResourceId tells apart.
 */
export class PassedVms {
  /** By resource group (the id up to its last `/`; undefined for an id without one), the names. */
  readonly #byGroup = new Map<string | undefined, Set<string>>();

  /** Records a VM by its resource id; false when it was recorded already. */
  add(vmId: string): boolean {
    const id = vmId.trim().replace(/\/+$/, '');
    const cut = id.lastIndexOf('/');
    // Each part lowercased by itself: a string of its own, not a slice that would keep the whole id.
    const group = cut < 0 ? undefined : id.slice(0, cut).toLowerCase();
    const name = id.slice(cut + 1).toLowerCase();
    let names = this.#byGroup.get(group);
    if (names === undefined) {
      names = new Set();
      this.#byGroup.set(group, names);
    }
    if (names.has(name)) return false;
    names.add(name);
    return true;
  }
}
