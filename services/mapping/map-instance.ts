// Instance × mapping rules → WorkloadEntry or Skip. Pure: no I/O, no clock; the same input always
// gives the same output, which is what lets planning compare desired and current entries.
import type { MappingConfig } from '../../config/schema.ts';
import {
  entryKey,
  instanceSource,
  INSTALLATION_LABEL,
  SERVICE_LABEL,
  idOfSource,
  type ForeignEntry,
  type Instance,
  type MapResult,
  type Skip,
  type WorkloadEntry,
} from '../model.ts';
import { chooseAddress } from './address.ts';
import { DesiredEntry, nameOfEntry, namespaceOfEntry, plainEntry, sourceOfEntry, type EntryShape } from '../desired-entry.ts';
import { type AutoRegisteredIndex, findAutoRegistered } from './auto-registered.ts';
import { parseHealthCheck } from './health.ts';
import { entryName } from './entry-name.ts';
import { describeNamespacePolicy, namespaceAllowed, type NamespacePolicy } from './namespaces.ts';
import { buildLabels } from './labels.ts';
import { checkPortMap, parsePorts, type Ports } from './ports.ts';
import { skipKeepsEntry, type SkipCode } from './skip-codes.ts';
import { fail, ok, quote, readTag, type Step } from './step.ts';
import { Interner, type MemoWalk } from '../intern.ts';
import { ChunkedArray, ShardedMap } from '../shards.ts';
import { CHECKPOINT_EVERY, runSync, type Sliced } from '../slices.ts';
import { isDns1035Label, isDns1123Label, isDns1123Subdomain, isLabelValue, MAX_LOCALITY, MAX_WEIGHT } from './syntax.ts';

/** What mapping needs to know about the caller: whose entries these are and which scope listed the instance. */
export interface MapContext {
  /** The installation's owner id (config `ownerId`), written as OWNER_LABEL. */
  ownerId: string;
  /** The scope the instance was listed in, written as SCOPE_ANNOTATION and carried by skips. */
  scopeKey: string;
  /**
   * The stamp of the observation (from the one clock, taken when it started), written as
   * OBSERVED_AT_ANNOTATION. Every entry of one listing carries the listing's stamp.
   */
  observedAt: string;
  /** Where a namespace tag may put the entry; absent: only `namespace.default`. */
  namespaces?: NamespacePolicy;
  /**
   * Shares equal label and port maps between the entries of one listing (mapInstances makes one),
   * and remembers what tag values and places (namespace, labels, ports, locality) map to. It
   * serves one listing: the same rules and context for every instance it sees.
   */
  shared?: Interner;
  /**
   * The entries istiod auto-registered (Writer.listForeign, indexed): an instance with the same
   * address and network is skipped with VMS_SKIP_AUTO_REGISTERED. Absent: none are known.
   */
  autoRegistered?: AutoRegisteredIndex;
}

/**
 * Maps one instance. Checks run in this order and the first failure is the skip: selector, state,
 * auto-registered duplicate (when address and network can be told), namespace, labels, service,
 * service account, ports, address tag and address, network, locality, weight, health.
 */
export function mapInstance(instance: Instance, rules: MappingConfig, ctx: MapContext): MapResult {
  const result = mapCompact(instance, rules, ctx);
  return result.kind === 'entry' ? { kind: 'entry', entry: plainEntry(result.entry) } : result;
}

/** mapInstance, giving the entry in compact form (DesiredEntry): what a listing holds of each instance. */
function mapCompact(instance: Instance, rules: MappingConfig, ctx: MapContext): MapResult {
  const { tag: selectorTag, value: selectorWanted } = rules.selector;
  const selectorValue = readTag(instance.tags, selectorTag);
  if (!isSelected(selectorValue, selectorWanted)) {
    if (selectorWanted.trim() === '*') return skipped(instance, ctx, fail('VMS_SKIP_NOT_SELECTED', `has no ${selectorTag} tag; only instances with one get an entry`));
    const has = selectorValue === undefined ? '' : ` (its ${selectorTag} tag is ${quote(selectorValue)})`;
    return skipped(instance, ctx, fail('VMS_SKIP_NOT_SELECTED', `not tagged ${selectorTag}=${selectorWanted}${has}; only instances tagged so get an entry`));
  }
  if (instance.state !== 'running') {
    return skipped(instance, ctx, fail('VMS_SKIP_NOT_RUNNING', `the instance is ${instance.state}, not running; it gets an entry again when it runs`));
  }

  // With an interner, what most instances of a listing share is looked up rather than worked out
  // again; its memos are given functions made once and their inputs, never a closure per instance.
  const shared = ctx.shared;
  const namespace = shared ? namespaceOf(instance.tags, rules, ctx, shared) : namespaceFromTags(instance.tags, rules, ctx);
  const address = chooseAddress(instance, rules.address);
  const network = chooseNetwork(instance, rules.network);
  // Before any bad value: a skip for a bad value keeps the entry we have, and Istio must not see the VM twice.
  if (address.ok && network.ok && ctx.autoRegistered !== undefined) {
    const twin = findAutoRegistered(ctx.autoRegistered, address.value, network.value);
    if (twin !== undefined) {
      return skipped(instance, ctx, fail('VMS_SKIP_AUTO_REGISTERED', autoRegisteredReason(twin, address.value, network.value)), namespace.ok ? namespace.value : undefined);
    }
  }
  if (!namespace.ok) return skipped(instance, ctx, namespace);
  // From here on a skip says in which namespace the entry would be (its Warning Event goes there).
  const labels = shared ? labelsOf(instance.tags, rules, shared) : buildLabels(instance.tags, rules);
  if (!labels.ok) return skipped(instance, ctx, labels, namespace.value);
  const service = chooseService(instance.tags, rules.service.tag);
  if (!service.ok) return skipped(instance, ctx, service, namespace.value);
  const serviceAccount = chooseServiceAccount(instance.tags, rules.serviceAccount);
  if (!serviceAccount.ok) return skipped(instance, ctx, serviceAccount, namespace.value);
  const ports = shared ? portsOf(instance.tags, rules.ports, shared) : choosePorts(instance.tags, rules.ports);
  if (!ports.ok) return skipped(instance, ctx, ports, namespace.value);
  if (!address.ok) return skipped(instance, ctx, address, namespace.value);
  if (!network.ok) return skipped(instance, ctx, network, namespace.value);
  const locality = !rules.locality.enabled ? ok(undefined) : shared ? localityOf(instance, shared) : makeLocality(instance.region, instance.zone);
  if (!locality.ok) return skipped(instance, ctx, locality, namespace.value);
  const weight = chooseWeight(instance.tags, rules.weight.tag);
  if (!weight.ok) return skipped(instance, ctx, weight, namespace.value);
  const healthTag = readTag(instance.tags, rules.health.tag);
  const health = healthTag === undefined ? ok(undefined) : parseHealthCheck(healthTag, `tag ${rules.health.tag}`);
  if (!health.ok) return skipped(instance, ctx, health, namespace.value);

  // Fixed field order, so printed plans and diffs read the same for every entry (the address
  // comes first, see DesiredEntry). With an interner, the port and label maps come shared already,
  // and so does the rest of the spec, with the shape of every entry that has it.
  const rest = {} as ShapeSpec;
  if (ports.value !== undefined) rest.ports = ports.value;
  const specLabels =
    service.value === undefined
      ? labels.value
      : shared
        ? shared.derived(labels.value ?? NO_LABELS, service.value, sharedServiceLabels, labels.value, service.value, ctx)
        : withServiceLabels(labels.value, service.value, ctx.ownerId);
  if (specLabels !== undefined) rest.labels = specLabels;
  if (serviceAccount.value !== undefined) rest.serviceAccount = shared ? shared.string(serviceAccount.value) : serviceAccount.value;
  if (network.value !== undefined) rest.network = shared ? shared.string(network.value) : network.value;
  if (locality.value !== undefined) rest.locality = shared ? shared.string(locality.value) : locality.value;
  if (weight.value !== undefined) rest.weight = weight.value;
  const healthText = health.value?.text;
  let shape: EntryShape;
  if (shared) {
    const inNamespace = shared.string(namespace.value);
    const spec = shared.map(rest as Record<string, string | number>) as ShapeSpec;
    const byHealth = shared.derived(spec, inNamespace, newShapeTable);
    const known = byHealth.get(healthText);
    if (known !== undefined) shape = known;
    else {
      shape = { namespace: inNamespace, ownerId: ctx.ownerId, scopeKey: ctx.scopeKey, observedAt: ctx.observedAt, spec, health: healthText };
      byHealth.set(healthText, shape);
    }
  } else {
    shape = { namespace: namespace.value, ownerId: ctx.ownerId, scopeKey: ctx.scopeKey, observedAt: ctx.observedAt, spec: rest, health: healthText };
  }
  return { kind: 'entry', entry: new DesiredEntry(entryName(instance), address.value, instanceSource(instance), shape) };
}

/** The spec of an entry's shape: all of it but the address. */
type ShapeSpec = { -readonly [K in keyof EntryShape['spec']]: EntryShape['spec'][K] };

/** The shapes of one spec and namespace (an interner serves one listing, whose context is the same throughout), by health check. */
function newShapeTable(): Map<string | undefined, EntryShape> {
  return new Map();
}

/** Why an instance is left to the entry Istio auto-registered for it. */
function autoRegisteredReason(twin: ForeignEntry, address: string, network: string | undefined): string {
  const where = network === undefined ? 'no network' : `network ${quote(network)}`;
  const theirs = twin.network ? `network ${quote(twin.network)}` : 'no network';
  return (
    `Istio auto-registered this VM as WorkloadEntry ${twin.key} (WorkloadGroup ${quote(twin.autoRegistrationGroup ?? '')}, ` +
    `address ${address}, ${theirs}); an entry of ours at address ${address} with ${where} would make Istio see the VM twice, ` +
    'so it gets none and any it has is deleted. Leave the VM to auto-registration, or stop it auto-registering ' +
    '(remove ISTIO_META_AUTO_REGISTER_GROUP from its sidecar) to have vm-mesh-sync manage it'
  );
}

/**
 * Maps a listing. Two entries with the same `namespace/name` cannot both exist: the one whose
 * source (`instanceSource`) sorts first keeps the name, whatever order the provider listed them
 * in, and every other gets VMS_SKIP_DUPLICATE_NAME. Entries and skips keep the input order.
 */
export function mapInstances(instances: readonly Instance[], rules: MappingConfig, ctx: MapContext): MappedInstances {
  const mapper = new ListingMapper(rules, ctx);
  runSync(mapper.add(instances));
  return mapper.finish();
}

/** What mapInstances gives. */
export interface MappedInstances {
  entries: WorkloadEntry[];
  skips: Skip[];
}

/** Who an instance is, as a skip names it: all that is kept of an instance once it is mapped. */
type Identity = Skip['instance'];

/**
 * Where an instance is, as its skip names it: shared by every instance of a listing in the same
 * zone, so that what is kept of each instance that has an entry's name is a pointer, not an object.
 */
type Where = Pick<Identity, 'provider' | 'account' | 'region' | 'zone'>;

/** An instance that lost its entry's name to another: its skip is written at the end, naming the final owner. */
interface Loser {
  at: number;
  namespace: string;
  name: string;
  who: Identity;
  source: string;
}

/**
 * mapInstances for a listing that arrives page by page (add each page as it comes, then finish):
 * an instance is not needed once it is mapped, so a large listing is never held whole. The result
 * is that of mapInstances over the whole listing.
 */
export class ListingMapper {
  readonly #rules: MappingConfig;
  readonly #ctx: MapContext;
  /** Entries in listing order; a slot whose entry lost its name to a later one is emptied. */
  readonly #entries = new ChunkedArray<WorkloadEntry | undefined>();
  /**
   * By namespace, then name: the slot of the entry that has the name so far. Keyed by the two
   * strings the entry has already, rather than a key string made for every instance of the listing.
   */
  readonly #slots = new Map<string, ShardedMap<number>>();
  /**
   * By slot, who its instance is, should it lose the name to a later one: its place in the
   * listing, where it is, and its name (its id is the end of its source, which its entry holds).
   * Arrays rather than an object per instance: a listing of 100,000 kept 8 MiB of such objects.
   * Chunked: as one array each, they are larger than V8 keeps on its heap's pages (services/shards.ts).
   */
  readonly #at = new ChunkedArray<number>();
  readonly #where = new ChunkedArray<Where>();
  readonly #names = new ChunkedArray<string>();
  /** By zone, the Wheres made so far. */
  readonly #wheres = new Map<string | undefined, Where[]>();
  readonly #skips: Array<{ at: number; skip: Skip }> = [];
  readonly #losers: Loser[] = [];
  /** Instances added so far. */
  instances = 0;

  constructor(rules: MappingConfig, ctx: MapContext) {
    this.#rules = rules;
    this.#ctx = ctx.shared ? ctx : { ...ctx, shared: new Interner() };
  }

  /** Maps a page of the listing (sliced work). */
  *add(instances: readonly Instance[]): Sliced<void> {
    for (let i = 0; i < instances.length; i++) {
      if (i % CHECKPOINT_EVERY === CHECKPOINT_EVERY - 1) yield;
      const instance = instances[i]!;
      const at = this.instances++;
      const result = mapCompact(instance, this.#rules, this.#ctx);
      if (result.kind === 'skip') {
        this.#skips.push({ at, skip: result.skip });
        continue;
      }
      const { entry } = result;
      const name = nameOfEntry(entry);
      const namespace = namespaceOfEntry(entry);
      const source = sourceOfEntry(entry);
      let inNamespace = this.#slots.get(namespace);
      if (inNamespace === undefined) {
        inNamespace = new ShardedMap();
        this.#slots.set(namespace, inNamespace);
      }
      const byName = inNamespace.mapFor(name);
      const owner = byName.get(name);
      if (owner !== undefined) {
        const ownerSource = sourceOfEntry(this.#entries.at(owner)!);
        if (!(source < ownerSource)) {
          this.#losers.push({ at, namespace, name, who: identityOf(instance), source });
          continue;
        }
        this.#entries.set(owner, undefined);
        this.#losers.push({ at: this.#at.at(owner)!, namespace, name, who: this.#identity(owner, ownerSource), source: ownerSource });
      }
      const slot = this.#entries.push(entry);
      this.#at.push(at);
      this.#where.push(this.#whereOf(instance));
      this.#names.push(instance.name);
      byName.set(name, slot);
    }
  }

  /** The shared Where of an instance. */
  #whereOf(instance: Instance): Where {
    let inZone = this.#wheres.get(instance.zone);
    if (inZone === undefined) {
      inZone = [];
      this.#wheres.set(instance.zone, inZone);
    }
    for (const where of inZone) {
      if (where.provider === instance.provider && where.account === instance.account && where.region === instance.region) return where;
    }
    const where: Where = { provider: instance.provider, account: instance.account, region: instance.region, zone: instance.zone };
    inZone.push(where);
    return where;
  }

  /** Who the instance of a slot is, as its skip names it. */
  #identity(slot: number, source: string): Identity {
    const { provider, account, region, zone } = this.#where.at(slot)!;
    return { provider, account, region, zone, id: idOfSource(source, { provider, account, region }), name: this.#names.at(slot)! };
  }

  /** The entries and skips of everything added. */
  finish(): MappedInstances {
    const entries: WorkloadEntry[] = [];
    this.#entries.forEach((entry) => {
      if (entry !== undefined) entries.push(entry);
    });
    const skips = [...this.#skips];
    for (const loser of this.#losers) {
      const ownerSource = sourceOfEntry(this.#entries.at(this.#slots.get(loser.namespace)!.get(loser.name)!)!);
      skips.push({
        at: loser.at,
        skip: skipOf(
          loser.who,
          loser.source,
          this.#ctx,
          'VMS_SKIP_DUPLICATE_NAME',
          `its entry ${entryKey(loser.namespace, loser.name)} is already taken by ${quote(ownerSource)}, listed in the same scope ` +
            `(ids that differ only in letter case or punctuation give the same name); give one of them another ${this.#rules.namespace.tag} tag`,
        ),
      });
    }
    if (this.#losers.length > 0) skips.sort((a, b) => a.at - b.at);
    return { entries, skips: skips.map((s) => s.skip) };
  }
}

/**
 * The result of an instance skipped for `failed`; `namespace` is where its entry would be, once
 * that is known. A function of its own rather than a closure over the instance, which every
 * instance would pay for.
 */
function skipped(instance: Instance, ctx: MapContext, failed: { code: SkipCode; reason: string }, namespace?: string): MapResult {
  const skip = makeSkip(instance, ctx, failed.code, failed.reason);
  if (namespace !== undefined) skip.namespace = namespace;
  return { kind: 'skip', skip };
}

function makeSkip(instance: Instance, ctx: MapContext, code: SkipCode, reason: string): Skip {
  return skipOf(identityOf(instance), instanceSource(instance), ctx, code, reason);
}

/** Who an instance is, as a skip names it: these fields alone, in this order. */
function identityOf(of: Identity): Identity {
  return { provider: of.provider, account: of.account, region: of.region, zone: of.zone, id: of.id, name: of.name };
}

function skipOf(who: Identity, source: string, ctx: MapContext, code: SkipCode, reason: string): Skip {
  return { instance: who, scopeKey: ctx.scopeKey, source, code, reason, keepsEntry: skipKeepsEntry(code) };
}

/** Selector values compare trimmed and without regard to case; `*` accepts any value of a present tag. */
function isSelected(tagValue: string | undefined, wanted: string): boolean {
  if (tagValue === undefined) return false;
  // The common case, without trimming and lowercasing both for every instance.
  if (tagValue === wanted) return true;
  if (wanted.trim() === '*') return true;
  return tagValue.trim().toLowerCase() === wanted.trim().toLowerCase();
}

/** Where entries may go when the context names no policy: the default namespace alone. */
function namespacePolicyOf(rules: MappingConfig, ctx: MapContext): NamespacePolicy {
  return ctx.namespaces ?? { global: [rules.namespace.default] };
}

/** namespaceFromTags, once per distinct value of the namespace tag in a listing (and once for its absence). */
function namespaceOf(tags: Record<string, string>, rules: MappingConfig, ctx: MapContext, shared: Interner): Step<string> {
  return perTagValue(tags, rules.namespace.tag, shared.memoWalk('namespace')).result(namespaceFromTags, tags, rules, ctx);
}

/** chooseNamespace under the context's namespace policy. */
function namespaceFromTags(tags: Record<string, string>, rules: MappingConfig, ctx: MapContext): Step<string> {
  return chooseNamespace(tags, rules.namespace, namespacePolicyOf(rules, ctx));
}

/**
 * The namespace: the tag's value, or `namespace.default` when the tag is absent or blank (an entry
 * cannot be in no namespace). Lowercased, trimmed, whitespace runs → `-`; then a DNS-1123 label
 * that the namespace policy allows.
 */
function chooseNamespace(tags: Record<string, string>, rules: MappingConfig['namespace'], policy: NamespacePolicy): Step<string> {
  const tagged = readTag(tags, rules.tag);
  const fromTag = tagged !== undefined && tagged.trim() !== '';
  const raw = fromTag ? tagged : rules.default;
  const namespace = raw.trim().toLowerCase().replace(/\s+/gu, '-');
  if (isDns1123Label(namespace)) {
    if (namespaceAllowed(namespace, policy)) return ok(namespace);
    const where = fromTag ? `tag ${rules.tag}` : 'mapping.namespace.default';
    return fail(
      'VMS_SKIP_NAMESPACE_NOT_ALLOWED',
      `${where}: namespace ${quote(namespace)} is not allowed by ${describeNamespacePolicy(policy)}; ` +
        'tag the VM with an allowed namespace, or ask the operator to allow this one',
    );
  }
  const where = fromTag ? `tag ${rules.tag}` : 'mapping.namespace.default';
  return fail(
    'VMS_SKIP_BAD_NAMESPACE',
    `${where}: ${quote(raw)} is not a namespace name ` +
      "(use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
  );
}

/**
 * The mesh service: the tag's value, trimmed, lowercased, whitespace runs → `-`; blank or absent
 * means none. It names a Kubernetes Service, so it must then be a DNS-1035 label. A bad value is a
 * skip (which keeps an entry the VM already has) rather than an entry without a service: that
 * entry would silently leave the service it serves now.
 */
function chooseService(tags: Record<string, string>, tag: string): Step<string | undefined> {
  const raw = readTag(tags, tag);
  if (raw === undefined || raw.trim() === '') return ok(undefined);
  const service = raw.trim().toLowerCase().replace(/\s+/gu, '-');
  if (isDns1035Label(service)) return ok(service);
  return fail(
    'VMS_SKIP_BAD_SERVICE',
    `tag ${tag}: ${quote(raw)} is not a service name ` +
      "(use lowercase letters, digits and '-', starting with a letter and ending with a letter or digit, at most 63 characters)",
  );
}

/** What `Interner.derived` keys the service labels of an instance without label tags by. */
const NO_LABELS = Object.freeze({});

/** withServiceLabels, shared (`ctx.shared` is set). */
function sharedServiceLabels(labels: Record<string, string> | undefined, service: string, ctx: MapContext): Record<string, string> {
  return ctx.shared!.map(withServiceLabels(labels, service, ctx.ownerId));
}

/** The spec labels with the service and installation labels a Service selects by; ours win over labels from tags. */
function withServiceLabels(labels: Record<string, string> | undefined, service: string, ownerId: string): Record<string, string> {
  const all: Record<string, string> = { ...labels, [INSTALLATION_LABEL]: ownerId, [SERVICE_LABEL]: service };
  // Sorted like every other label map, so equal labels print and serialize the same.
  return Object.fromEntries(Object.entries(all).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The service account: the tag's value, or `serviceAccount.default` when the tag is absent.
 * Lowercased and trimmed; blank means no serviceAccount field; otherwise a DNS-1123 subdomain.
 */
function chooseServiceAccount(tags: Record<string, string>, rules: MappingConfig['serviceAccount']): Step<string | undefined> {
  const tagged = readTag(tags, rules.tag);
  const raw = tagged ?? rules.default;
  const account = raw.trim().toLowerCase();
  if (account === '') return ok(undefined);
  if (isDns1123Subdomain(account)) return ok(account);
  const where = tagged !== undefined ? `tag ${rules.tag}` : 'mapping.serviceAccount.default';
  return fail(
    'VMS_SKIP_BAD_SERVICE_ACCOUNT',
    `${where}: ${quote(raw)} is not a service account name ` +
      "(use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters)",
  );
}

/**
 * buildLabels, once per distinct set of the tags it reads (those with the label prefix and those
 * of `labels.fromTags`, with their values, in the order the instance has them) in a listing: most
 * instances share theirs. The labels come as one shared map.
 */
function labelsOf(tags: Record<string, string>, rules: MappingConfig, shared: Interner): ReturnType<typeof buildLabels> {
  const walk = shared.memoWalk('labels');
  const prefix = rules.labels.tagPrefix;
  // The tags' own keys, in their order (as Object.keys), without a list of them.
  for (const tag in tags) {
    if (!Object.hasOwn(tags, tag)) continue;
    if ((prefix === '' || !tag.startsWith(prefix)) && !Object.hasOwn(rules.labels.fromTags, tag)) continue;
    walk.step(tag);
    walk.step(readTag(tags, tag) ?? '');
  }
  return walk.result(sharedLabels, tags, rules, shared);
}

/** buildLabels, with the labels as a shared map. */
function sharedLabels(tags: Record<string, string>, rules: MappingConfig, shared: Interner): ReturnType<typeof buildLabels> {
  return sharedValue(buildLabels(tags, rules), shared);
}

/** choosePorts, once per distinct value of the ports tag in a listing (and once for its absence); the ports come as one shared map. */
function portsOf(tags: Record<string, string>, rules: MappingConfig['ports'], shared: Interner): Step<Ports> {
  return perTagValue(tags, rules.tag, shared.memoWalk('ports')).result(sharedPorts, tags, rules, shared);
}

/** choosePorts, with the ports as a shared map. */
function sharedPorts(tags: Record<string, string>, rules: MappingConfig['ports'], shared: Interner): Step<Ports> {
  return sharedValue(choosePorts(tags, rules), shared);
}

/** A step whose map value, if any, is the interner's shared copy. */
function sharedValue<T extends Record<string, string | number> | undefined>(step: Step<T>, shared: Interner): Step<T> {
  return step.ok && step.value !== undefined ? ok(shared.map(step.value)) : step;
}

/** `walk` on by the value of `tag` when the instance has it: a blank value is a key, and absence another. */
function perTagValue(tags: Record<string, string>, tag: string, walk: MemoWalk): MemoWalk {
  const tagged = readTag(tags, tag);
  if (tagged !== undefined) walk.step(tagged);
  return walk;
}

/** makeLocality, once per region and zone in a listing. */
function localityOf(instance: Instance, shared: Interner): Step<string | undefined> {
  const walk = shared.memoWalk('locality');
  walk.step(instance.region);
  walk.step(instance.zone);
  return walk.result(makeLocality, instance.region, instance.zone);
}

/** The ports: the tag (blank means none) or, when the tag is absent, `ports.default`. */
function choosePorts(tags: Record<string, string>, rules: MappingConfig['ports']): Step<Ports> {
  const tagged = readTag(tags, rules.tag);
  if (tagged !== undefined) return parsePorts(tagged, `tag ${rules.tag}`);
  return checkPortMap(rules.default, 'mapping.ports.default');
}

/**
 * The network: the tag (trimmed; blank means none) wins, then `byNetworkId[instance.networkId]`,
 * then `network.name`, else none. Istio matches it against the `topology.istio.io/network` label,
 * so it must be a valid label value (at most 63 characters); it is not rewritten, since a
 * rewritten name would silently be another network.
 */
function chooseNetwork(instance: Instance, rules: MappingConfig['network']): Step<string | undefined> {
  const tagged = readTag(instance.tags, rules.tag);
  let raw: string;
  let where: string;
  if (tagged !== undefined) {
    raw = tagged;
    where = `tag ${rules.tag}`;
  } else if (instance.networkId !== undefined && Object.hasOwn(rules.byNetworkId, instance.networkId)) {
    raw = rules.byNetworkId[instance.networkId] ?? '';
    where = `mapping.network.byNetworkId[${quote(instance.networkId)}]`;
  } else {
    raw = rules.name;
    where = 'mapping.network.name';
  }
  const network = raw.trim();
  if (network === '') return ok(undefined);
  if (isLabelValue(network)) return ok(network);
  return fail(
    'VMS_SKIP_BAD_NETWORK',
    `${where}: ${quote(raw)} is not a network name ` +
      "(use up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, as in the topology.istio.io/network label)",
  );
}

/**
 * Istio's locality `region/zone` (Istio's form is region/zone/subzone, so a `/` inside a value
 * would shift the parts: it becomes `-`). No zone → `region`; no region → no locality.
 */
function makeLocality(region: string, zone: string): Step<string | undefined> {
  const r = region.trim().replaceAll('/', '-');
  const z = zone.trim().replaceAll('/', '-');
  if (r === '') return ok(undefined);
  const locality = z === '' ? r : `${r}/${z}`;
  if (locality.length <= MAX_LOCALITY) return ok(locality);
  return fail('VMS_SKIP_BAD_LOCALITY', `region ${quote(region)} and zone ${quote(zone)} give a locality longer than ${MAX_LOCALITY} characters`);
}

/** The weight: a decimal whole number 1..4294967295 from the tag (trimmed); absent or blank → none. */
function chooseWeight(tags: Record<string, string>, tag: string): Step<number | undefined> {
  const raw = readTag(tags, tag);
  if (raw === undefined || raw.trim() === '') return ok(undefined);
  const text = raw.trim();
  const weight = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (weight >= 1 && weight <= MAX_WEIGHT) return ok(weight);
  return fail('VMS_SKIP_BAD_WEIGHT', `tag ${tag}: ${quote(raw)} is not a weight (use a whole number from 1 to ${MAX_WEIGHT})`);
}
