// Observation stamps: the one clock every write path takes its times from, and the one way they
// are read and compared. Pure except for the local clock (Redis's, for `serve`, is in
// queue/redis.ts).
//
// A stamp is RFC 3339 UTC with microseconds (`2026-12-02T05:29:26.123456Z`): fixed width, so the
// canonical form orders as a string (Redis Lua compares it so), and fine enough that two
// observations through one Redis clock practically never share an instant. A stamp that cannot be
// read (`manual`, empty, a typo) counts as the oldest possible, so a hand-edited annotation can
// never freeze an entry.

/** Gives the stamp of an observation that starts now. */
export type Clock = () => Promise<string>;

/** The canonical form of an unreadable stamp: sorts before every readable one. */
export const OLDEST_STAMP = '';

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/u;

/** Microseconds since the epoch of a stamp, or -Infinity when it is not a readable RFC 3339 time. */
export function stampMicros(stamp: string | undefined): number {
  if (stamp === undefined) return Number.NEGATIVE_INFINITY;
  const m = RFC3339.exec(stamp);
  if (!m) return Number.NEGATIVE_INFINITY;
  const [, y, mo, d, h, mi, s, frac, , sign, oh, om] = m;
  const seconds = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  // Date.UTC accepts day 31 of February and hour 24 by rolling over; a real time does not.
  const check = new Date(seconds);
  if (check.getUTCDate() !== Number(d) || check.getUTCHours() !== Number(h) || Number(s) > 59) return Number.NEGATIVE_INFINITY;
  const offsetMs = sign ? (sign === '-' ? 1 : -1) * (Number(oh) * 60 + Number(om)) * 60_000 : 0;
  const micros = Number(((frac ?? '') + '000000').slice(0, 6));
  const total = (seconds + offsetMs) * 1000 + micros;
  return Number.isFinite(total) ? total : Number.NEGATIVE_INFINITY;
}

/** The stamp of a time in microseconds since the epoch. */
export function stampFromMicros(micros: number): string {
  const ms = Math.floor(micros / 1000);
  const rest = String(Math.round(micros - ms * 1000)).padStart(3, '0');
  return `${new Date(ms).toISOString().slice(0, 23)}${rest}Z`;
}

/** The last stamp canonicalStamp read, and its canonical form: every change of a plan carries the same stamp. */
let lastStamp: { stamp: string | undefined; canonical: string } = { stamp: undefined, canonical: OLDEST_STAMP };

/** The canonical form (`…ffffffZ`), or OLDEST_STAMP when unreadable: compare these as strings. */
export function canonicalStamp(stamp: string | undefined): string {
  if (stamp === lastStamp.stamp) return lastStamp.canonical;
  const micros = stampMicros(stamp);
  const canonical = Number.isFinite(micros) ? stampFromMicros(micros) : OLDEST_STAMP;
  lastStamp = { stamp, canonical };
  return canonical;
}

/** Negative when `a` is older than `b`, 0 when the same instant (two unreadable stamps included), positive when newer. */
export function compareStamps(a: string | undefined, b: string | undefined): number {
  const x = stampMicros(a);
  const y = stampMicros(b);
  return x === y ? 0 : x < y ? -1 : 1;
}

/** This process's clock: for `plan` and `sync --once`, where one process stamps everything. */
export const localClock: Clock = async () => stampFromMicros(Date.now() * 1000);
