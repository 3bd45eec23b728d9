// Evaluates the README's alert expressions on scraped Prometheus text, as Prometheus would with
// one scrape per replica: enough PromQL for `time() - max by (l) (m) > n`,
// `sum by (l) (increase(m[15m])) > n` and `max by (l) (m{k="v"}) > n`. Anything else is an error,
// so an alert rewritten beyond this subset fails its test instead of passing unread.

/** One series of one replica's scrape. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The element of an instant vector. */
export interface Element {
  labels: Record<string, string>;
  value: number;
}

/** Parses exposition-format text into samples; `replica` becomes the `instance` label, as a scrape adds it. */
export function parseScrape(text: string, replica: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels: Record<string, string> = { instance: replica };
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/**
 * Evaluates `expr` at `nowSeconds` over the replicas' scrapes; `earlier` are the scrapes at the
 * start of an increase() range. Returns the elements that would fire.
 */
export function evaluateAlert(expr: string, nowSeconds: number, scrapes: Sample[][], earlier: Sample[][] = []): Element[] {
  const m = /^\s*(time\(\)\s*-\s*)?(max|sum)\s+by\s*\((\w+)\)\s*\((.+)\)\s*>\s*([0-9.]+)\s*$/.exec(expr);
  if (!m) throw new Error(`alert expression outside the evaluated subset: ${expr}`);
  const [, minusFromTime, agg, by, inner, threshold] = m;
  const vector = innerVector(inner!.trim(), scrapes.flat(), earlier.flat());
  const groups = new Map<string, number[]>();
  for (const e of vector) {
    const key = e.labels[by!] ?? '';
    groups.set(key, [...(groups.get(key) ?? []), e.value]);
  }
  const out: Element[] = [];
  for (const [key, values] of groups) {
    const aggregated = agg === 'max' ? Math.max(...values) : values.reduce((a, b) => a + b, 0);
    const value = minusFromTime ? nowSeconds - aggregated : aggregated;
    if (value > Number(threshold)) out.push({ labels: { [by!]: key }, value });
  }
  return out;
}

function innerVector(inner: string, now: Sample[], before: Sample[]): Element[] {
  const inc = /^increase\((.+)\[\w+\]\)$/.exec(inner);
  if (inc) {
    const at = select(inc[1]!, before);
    return select(inc[1]!, now).map((e) => {
      const earlier = at.find((b) => sameLabels(b.labels, e.labels));
      return { labels: e.labels, value: e.value - (earlier?.value ?? 0) };
    });
  }
  return select(inner, now);
}

function select(selector: string, samples: Sample[]): Element[] {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/.exec(selector.trim());
  if (!m) throw new Error(`selector outside the evaluated subset: ${selector}`);
  const wanted = [...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!] as const);
  return samples.filter((s) => s.name === m[1] && wanted.every(([k, v]) => s.labels[k] === v)).map((s) => ({ labels: s.labels, value: s.value }));
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
