// A desired WorkloadEntry in compact form. A listing of a hundred thousand instances maps to as many
// entries, and a plain WorkloadEntry is five objects (the entry, its metadata, labels, annotations
// and spec), of which only the name, address and source differ from one instance to the next in
// most listings. A DesiredEntry holds those three and a shape that the entries of a listing with
// the same namespace, spec and health check share: one object instead of five.
//
// It reads as a WorkloadEntry: `metadata` and `spec` are built on each read (a new object every
// time, never to be changed in place), and JSON.stringify writes the whole entry. Planning's hot
// paths read the fields directly (nameOfEntry, namespaceOfEntry, sourceOfEntry).
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

/** The entry as a plain WorkloadEntry (a DesiredEntry built out; any other object as it is). */
export function plainEntry(entry: WorkloadEntry): WorkloadEntry {
  if (!(entry instanceof DesiredEntry)) return entry;
  return { apiVersion: entry.apiVersion, kind: entry.kind, metadata: entry.metadata, spec: entry.spec };
}

/** The change with a desired entry in compact form as the WorkloadEntry it reads as (a copy; any other change as it is). */
export function plainChange(change: Change): Change {
  return change.op === 'upsert' && change.entry instanceof DesiredEntry ? { ...change, entry: plainEntry(change.entry) } : change;
}

/** An object's name, without building a desired entry's metadata. */
export function nameOfEntry(entry: OwnedObject): string {
  return entry instanceof DesiredEntry ? entry.name : entry.metadata.name;
}

/** An object's namespace, without building a desired entry's metadata. */
export function namespaceOfEntry(entry: OwnedObject): string {
  return entry instanceof DesiredEntry ? entry.namespace : entry.metadata.namespace;
}

/** An entry's source (SOURCE_ANNOTATION), '' for none, without building a desired entry's metadata. */
export function sourceOfEntry(entry: OwnedObject): string {
  return entry instanceof DesiredEntry ? entry.source : (entry.metadata.annotations?.[SOURCE_ANNOTATION] ?? '');
}

/** An entry's spec but its address, without building a desired entry's spec: what the Services of its VMs are derived from. */
export function specOfEntry(entry: WorkloadEntry): Readonly<Omit<WorkloadEntrySpec, 'address'>> {
  return entry instanceof DesiredEntry ? entry.shape.spec : entry.spec;
}

/** One of an object's annotations, without building a desired entry's metadata for the ones it holds directly. */
export function annotationOfEntry(entry: OwnedObject, key: string): string | undefined {
  if (entry instanceof DesiredEntry) {
    if (key === SOURCE_ANNOTATION) return entry.source;
    if (key === SCOPE_ANNOTATION) return entry.shape.scopeKey;
    if (key === OBSERVED_AT_ANNOTATION) return entry.shape.observedAt;
  }
  return entry.metadata.annotations?.[key];
}
