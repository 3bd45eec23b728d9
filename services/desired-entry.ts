// A desired WorkloadEntry in compact form. A listing of a hundred thousand instances maps to as many
// entries, and a plain WorkloadEntry is five objects (the entry, its metadata, labels, annotations
// and spec), of which only the name, address and source differ from one instance to the next in
// most listings. A DesiredEntry holds those three and a shape that the entries of a listing with
// the same namespace, spec and health check share: one object instead of five.
//
// It reads as a WorkloadEntry: `metadata` and `spec` are built on each read (a new object every
// time, never to be changed in place), and JSON.stringify writes the whole entry. Planning's hot
// paths read the fields directly (nameOfEntry, namespaceOfEntry, sourceOfEntry).
//
// A HeldEntry is the same for the stand-in of an owned entry that planning reads only in part
// (sameAsDesired): its name, and a frozen shape the stand-ins that differ only in name share. It
// is planned, never written: the writer turns a DesiredEntry into a plain entry, never a HeldEntry.
import {
  HEALTH_CHECK_ANNOTATION,
  HEALTH_CHECKS_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  NAME_LABEL,
  OBSERVED_AT_ANNOTATION,
  OWNER_LABEL,
  SCOPE_ANNOTATION,
  SOURCE_ANNOTATION,
  type Change,
  type ObjectMeta,
  type OwnedObject,
  type WorkloadEntry,
  type WorkloadEntrySpec,
} from './model.ts';
import { nameLabelValue } from './mapping/entry-name.ts';

/** What the entries of one listing share when they have the same namespace, spec (but the address) and health check. */
export interface EntryShape {
  readonly namespace: string;
  readonly ownerId: string;
  readonly scopeKey: string;
  readonly observedAt: string;
  /** The spec without its address, in the order the entry's spec has its fields. */
  readonly spec: Readonly<Omit<WorkloadEntrySpec, 'address'>>;
  /** The health check (HEALTH_CHECK_ANNOTATION), in its canonical form. */
  readonly health: string | undefined;
}

/** A desired WorkloadEntry: its name, address and source, and the shape it shares with others. */
export class DesiredEntry implements WorkloadEntry {
  readonly #name: string;
  readonly #address: string;
  readonly #source: string;
  readonly #shape: EntryShape;

  constructor(name: string, address: string, source: string, shape: EntryShape) {
    this.#name = name;
    this.#address = address;
    this.#source = source;
    this.#shape = shape;
  }

  get apiVersion(): 'networking.istio.io/v1' {
    return 'networking.istio.io/v1';
  }

  get kind(): 'WorkloadEntry' {
    return 'WorkloadEntry';
  }

  get name(): string {
    return this.#name;
  }

  get namespace(): string {
    return this.#shape.namespace;
  }

  get address(): string {
    return this.#address;
  }

  get source(): string {
    return this.#source;
  }

  get shape(): EntryShape {
    return this.#shape;
  }

  /** A new object on each read, the entry's metadata as mapping writes it. */
  get metadata(): ObjectMeta {
    const shape = this.#shape;
    const annotations: Record<string, string> = {
      [SOURCE_ANNOTATION]: this.#source,
      [SCOPE_ANNOTATION]: shape.scopeKey,
      [OBSERVED_AT_ANNOTATION]: shape.observedAt,
    };
    if (shape.health !== undefined) {
      annotations[HEALTH_CHECKS_ANNOTATION] = 'true';
      annotations[HEALTH_CHECK_ANNOTATION] = shape.health;
    }
    return {
      name: this.#name,
      namespace: shape.namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [NAME_LABEL]: nameLabelValue(this.#name), [OWNER_LABEL]: shape.ownerId },
      annotations,
    };
  }

  /** A new object on each read, the entry's spec: the address first, then the shape's fields. */
  get spec(): WorkloadEntrySpec {
    const spec = {} as WorkloadEntrySpec;
    spec.address = this.#address;
    const rest = this.#shape.spec;
    for (const key in rest) {
      const value = rest[key as keyof typeof rest];
      if (value !== undefined) (spec as Record<string, unknown>)[key] = value;
    }
    return spec;
  }

  /** The entry as a plain WorkloadEntry: what is queued and written. */
  toJSON(): WorkloadEntry {
    return plainEntry(this);
  }
}

/**
 * What the stand-ins of owned entries that planning reads only in part (sameAsDesired) share: all
 * of such an entry but its name. Its maps are shared and frozen.
 */
export interface HeldShape {
  readonly apiVersion: WorkloadEntry['apiVersion'];
  readonly kind: WorkloadEntry['kind'];
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly spec: Readonly<WorkloadEntrySpec>;
}

/**
 * The stand-in of an owned entry that planning reads only in part (sameAsDesired): its name, and a
 * shape that the stand-ins with the same namespace, labels, annotations and spec share. It reads
 * as a WorkloadEntry whose maps are the shape's (frozen: a stand-in is planned, never written).
 */
export class HeldEntry implements WorkloadEntry {
  readonly #name: string;
  readonly #shape: HeldShape;

  constructor(name: string, shape: HeldShape) {
    this.#name = name;
    this.#shape = shape;
  }

  get apiVersion(): WorkloadEntry['apiVersion'] {
    return this.#shape.apiVersion;
  }

  get kind(): WorkloadEntry['kind'] {
    return this.#shape.kind;
  }

  get name(): string {
    return this.#name;
  }

  get namespace(): string {
    return this.#shape.namespace;
  }

  get shape(): HeldShape {
    return this.#shape;
  }

  /** A new object on each read, with the shape's (frozen) maps. */
  get metadata(): ObjectMeta {
    const shape = this.#shape;
    return { name: this.#name, namespace: shape.namespace, labels: shape.labels as Record<string, string>, annotations: shape.annotations as Record<string, string> };
  }

  /** The shape's (frozen) spec. */
  get spec(): WorkloadEntrySpec {
    return this.#shape.spec as WorkloadEntrySpec;
  }

  toJSON(): WorkloadEntry {
    return plainEntry(this);
  }
}

/** The entry as a plain WorkloadEntry (a DesiredEntry or HeldEntry built out; any other object as it is). */
export function plainEntry(entry: WorkloadEntry): WorkloadEntry {
  if (entry instanceof DesiredEntry) return { apiVersion: entry.apiVersion, kind: entry.kind, metadata: entry.metadata, spec: entry.spec };
  // A copy whose maps are its own, not the shape's frozen ones.
  if (entry instanceof HeldEntry) return JSON.parse(JSON.stringify({ apiVersion: entry.apiVersion, kind: entry.kind, metadata: entry.metadata, spec: entry.spec })) as WorkloadEntry;
  return entry;
}

/** An object's labels and annotations, without building a compact entry's metadata where it holds them. */
export function labelsAndAnnotations(entry: OwnedObject): Pick<ObjectMeta, 'labels' | 'annotations'> | undefined {
  return entry instanceof HeldEntry ? (entry.shape as Pick<ObjectMeta, 'labels' | 'annotations'>) : entry.metadata;
}

/** The change with a desired entry in compact form as the WorkloadEntry it reads as (a copy; any other change as it is). */
export function plainChange(change: Change): Change {
  return change.op === 'upsert' && change.entry instanceof DesiredEntry ? { ...change, entry: plainEntry(change.entry) } : change;
}

/** An object's name, without building a desired entry's metadata. */
export function nameOfEntry(entry: OwnedObject): string {
  return entry instanceof DesiredEntry || entry instanceof HeldEntry ? entry.name : entry.metadata.name;
}

/** An object's namespace, without building a desired entry's metadata. */
export function namespaceOfEntry(entry: OwnedObject): string {
  return entry instanceof DesiredEntry || entry instanceof HeldEntry ? entry.namespace : entry.metadata.namespace;
}

/** An entry's source (SOURCE_ANNOTATION), '' for none, without building a desired entry's metadata. */
export function sourceOfEntry(entry: OwnedObject): string {
  if (entry instanceof DesiredEntry) return entry.source;
  if (entry instanceof HeldEntry) return entry.shape.annotations[SOURCE_ANNOTATION] ?? '';
  return entry.metadata.annotations?.[SOURCE_ANNOTATION] ?? '';
}

/** An entry's spec but its address, without building a desired entry's spec: what the Services of its VMs are derived from. */
export function specOfEntry(entry: WorkloadEntry): Readonly<Omit<WorkloadEntrySpec, 'address'>> {
  return entry instanceof DesiredEntry || entry instanceof HeldEntry ? entry.shape.spec : entry.spec;
}

/** One of an object's annotations, without building a desired entry's metadata for the ones it holds directly. */
export function annotationOfEntry(entry: OwnedObject, key: string): string | undefined {
  if (entry instanceof DesiredEntry) {
    if (key === SOURCE_ANNOTATION) return entry.source;
    if (key === SCOPE_ANNOTATION) return entry.shape.scopeKey;
    if (key === OBSERVED_AT_ANNOTATION) return entry.shape.observedAt;
  }
  if (entry instanceof HeldEntry) return entry.shape.annotations[key];
  return entry.metadata.annotations?.[key];
}
