// The static provider: machines from an inventory file (see inventory.ts for the format), for
// on-prem and bare-metal servers, local runs and tests. The file is read afresh on every call, so
// an edit is picked up by the next resync without a restart.
import { VmsError, type ErrorCode } from '../../services/errors.ts';
import type { Described, Instance, InstanceRef, Listing, Scope } from '../../services/model.ts';
import { brokenListing, listingPages } from '../paging.ts';
import type { PagedListing, Provider } from '../provider.ts';
import { CHECKPOINT_EVERY, runSliced, type Sliced } from '../../services/slices.ts';
import type { StaticProviderConfig } from './config.ts';
import { type InventoryMachine, type ParsedInventory, readInventory, readInventoryPages } from './inventory.ts';

/** What tests and tools may replace: the clock that stamps observations. */
export interface StaticProviderOptions {
  now?: () => Date;
}

/** Lists the machines of one inventory file as a single scope, `static:<name>`. */
export class StaticProvider implements Provider {
  readonly kind = 'static' as const;
  readonly name: string;
  readonly #inventory: string;
  readonly #account: string;
  readonly #now: () => Date;

  constructor(config: StaticProviderConfig, options: StaticProviderOptions = {}) {
    this.name = config.name;
    this.#inventory = config.inventory;
    this.#account = config.account ?? config.name;
    this.#now = options.now ?? (() => new Date());
  }

  /** The one scope of this inventory. */
  scopes(): Scope[] {
    return [{ key: `static:${this.name}`, provider: 'static', source: this.name, account: this.#account }];
  }

  /** Every machine of the file; incomplete (so nothing is deleted) when the file or any entry is unusable. */
  async list(scope: Scope, signal?: AbortSignal): Promise<Listing> {
    const foreign = this.#foreignScope(scope);
    if (foreign) return { ...foreign, instances: [] };
    let inventory: ParsedInventory;
    try {
      inventory = await readInventory(this.#inventory, signal);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      return {
        scope,
        instances: [],
        complete: false,
        problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: `reading inventory ${this.#inventory} was abandoned: ${why}`, at: this.#inventory }],
      };
    }
    const observedAt = this.#now().toISOString();
    return {
      scope,
      instances: await runSliced(toInstances(inventory.machines, scope.account, observedAt)),
      complete: inventory.complete,
      problems: inventory.problems,
    };
  }

  /**
   * list() page by page: a JSON inventory is read as it streams (see readInventoryPages), anything
   * else whole, as one page.
   */
  async listPages(scope: Scope, signal: AbortSignal | undefined, onPage: (instances: Instance[]) => Promise<void>): Promise<PagedListing> {
    const foreign = this.#foreignScope(scope);
    if (foreign) return { ...foreign, failed: false };
    const observedAt = this.#now().toISOString();
    let read;
    try {
      read = await readInventoryPages(this.#inventory, signal, async (machines) => onPage(await runSliced(toInstances(machines, scope.account, observedAt))));
    } catch (err) {
      // Only an abort is the reading's; anything else is what the pages were handed to.
      if (!signal?.aborted) throw err;
      return brokenListing(scope, `reading inventory ${this.#inventory} was abandoned: ${err instanceof Error ? err.message : String(err)}`, this.#inventory);
    }
    if (read === undefined) return listingPages({ list: (s, sig) => this.list(s, sig) }, scope, signal, onPage);
    return { scope, ...read };
  }

  /** The listing of a scope that is not this provider's, which it must not answer for. */
  #foreignScope(scope: Scope): Omit<Listing, 'instances'> | undefined {
    const own = this.scopes()[0]!;
    if (scope.key === own.key) return undefined;
    return {
      scope,
      complete: false,
      problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: `scope ${scope.key} is not the scope of static provider "${this.name}" (${own.key})`, at: scope.key }],
    };
  }

  /**
   * Looks the references up in the file. A reference that is not there is `null` (gone) only when
   * the file was read whole; otherwise this throws, because a machine whose entry is broken is not gone.
   */
  async describe(refs: InstanceRef[], signal?: AbortSignal): Promise<Described[]> {
    for (const ref of refs) {
      if (ref.provider !== 'static' || ref.account !== this.#account) {
        // Saying "gone" for another inventory's machine would delete its entry.
        throw new RangeError(`reference ${ref.provider}:${ref.account}:${ref.id} does not belong to static provider "${this.name}" (account ${this.#account})`);
      }
    }
    const inventory = await readInventory(this.#inventory, signal);
    const observedAt = this.#now().toISOString();
    const byId = new Map(inventory.machines.map((m) => [m.id, m]));
    const missing = refs.filter((ref) => !byId.has(ref.id));
    if (missing.length > 0 && !inventory.complete) {
      const first = inventory.problems[0];
      const summary = inventory.problems.map((p) => `${p.at ? `${p.at}: ` : ''}${p.message}`).join('; ');
      throw new VmsError(
        (first?.code ?? 'VMS_ERR_INVENTORY_ENTRY') as ErrorCode,
        `cannot tell whether ${missing.map((r) => r.id).join(', ')} still exist: inventory ${this.#inventory} is not readable in full (${summary})`,
        { problems: inventory.problems },
      );
    }
    return refs.map((ref) => {
      const machine = byId.get(ref.id);
      return { ref, instance: machine ? toInstance(machine, this.#account, observedAt) : null };
    });
  }
}

/** Builds the provider for a validated `type: static` block (the registry's factory). */
export function createStaticProvider(config: StaticProviderConfig, options: StaticProviderOptions = {}): StaticProvider {
  return new StaticProvider(config, options);
}

function* toInstances(machines: InventoryMachine[], account: string, observedAt: string): Sliced<Instance[]> {
  const out: Instance[] = new Array(machines.length);
  for (let i = 0; i < machines.length; i++) {
    out[i] = toInstance(machines[i]!, account, observedAt);
    if (i % CHECKPOINT_EVERY === 0) yield;
  }
  return out;
}

function toInstance(machine: InventoryMachine, account: string, observedAt: string): Instance {
  return { provider: 'static', account, ...machine, observedAt };
}
