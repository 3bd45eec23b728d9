// Many entries of one listing carry equal small maps and strings: the ownership labels, the
// `app`/`version` labels of one service, its ports, a zone's locality. An interner hands out one
// shared, frozen copy of each, so that a hundred thousand entries hold a few hundred such maps
// rather than a hundred thousand; freezing makes a change to a shared map an error, not a leak
// into other entries. One interner lives as long as one listing (a mapping run, a list of the
// cluster), so nothing accumulates across resyncs.

/** Shares equal string maps and strings. */
export class Interner {
  readonly #maps = new Map<string, Readonly<Record<string, unknown>>>();
  readonly #strings = new Map<string, string>();

  /** One frozen copy of each distinct map (same keys, same order, same values). */
  map<T extends Record<string, string | number>>(value: T): T {
    // Keys and values of these maps (label keys and values, port names) never hold a NUL.
    let key = '';
    for (const k in value) {
      const v = value[k];
      key += `${k}\u0000${typeof v === 'number' ? 'n' : 's'}${v}\u0000`;
    }
    const known = this.#maps.get(key);
    if (known) return known as T;
    const frozen = Object.freeze(value);
    this.#maps.set(key, frozen);
    return frozen;
  }

  /** One copy of each distinct string. */
  string(value: string): string {
    const known = this.#strings.get(value);
    if (known !== undefined) return known;
    this.#strings.set(value, value);
    return value;
  }
}
