// The ports tag grammar. It must be writable in every cloud: GCP label values allow only lowercase
// letters, digits, `-` and `_`, so `postgres-5432_metrics-9187` means the same as
// `postgres:5432,metrics:9187`.
import { isPortName, MAX_PORT_NAME, MAX_PORTS } from './syntax.ts';
import { fail, ok, quote, type Step } from './step.ts';

/** Ports of an entry: name → number; undefined when the entry has none. */
export type Ports = Record<string, number> | undefined;

const ITEM_SEPARATORS = /[,;_\s]+/u;
const DIGITS = /^[0-9]+$/;
const USE_NAME_PORT = 'use name:port with a port from 1 to 65535';
const NAME_RULE = `use letters, digits and '-', starting and ending with a letter or digit, at most ${MAX_PORT_NAME} characters`;

/**
 * Parses a ports tag value. Grammar:
 * - items are separated by `,` `;` `_` or whitespace (whitespace around `:` and `=` is ignored);
 * - an item is `name:port`, `name=port`, `name-port` (the port is the digits after the last `-`),
 *   or a bare `port`, which is named `tcp-<port>`;
 * - ports are decimal 1–65535; names are lowercased and must then be a CRD port name (letters,
 *   digits and inner `-`, at most 62 characters); a name may appear once; at most 128 ports.
 * A blank value means no ports. `where` names the source in reasons (`tag mesh-ports`).
 */
export function parsePorts(value: string, where: string): Step<Ports> {
  const items = value
    .replace(/\s*([:=])\s*/gu, '$1')
    .split(ITEM_SEPARATORS)
    .filter((item) => item !== '');
  const pairs: Array<[string, string, string]> = [];
  for (const item of items) {
    const sep = item.search(/[:=]/);
    if (sep !== -1) {
      pairs.push([item, item.slice(0, sep), item.slice(sep + 1)]);
    } else if (DIGITS.test(item)) {
      const port = portNumber(item);
      if (port === undefined) return fail('VMS_SKIP_BAD_PORTS', `${where}: ${quote(item)} is not a port (${USE_NAME_PORT})`);
      pairs.push([item, `tcp-${port}`, item]);
    } else {
      const dash = item.lastIndexOf('-');
      const port = item.slice(dash + 1);
      if (dash === -1 || !DIGITS.test(port)) {
        return fail('VMS_SKIP_BAD_PORTS', `${where}: ${quote(item)} has no port number (${USE_NAME_PORT}, e.g. postgres:5432)`);
      }
      pairs.push([item, item.slice(0, dash), port]);
    }
  }
  return collect(pairs, where);
}

/** Checks ports given in config (`mapping.ports.default`) by the same rules as the tag. */
export function checkPortMap(ports: Record<string, number>, where: string): Step<Ports> {
  return collect(
    Object.entries(ports).map(([name, port]): [string, string, string] => [`${name}:${port}`, name, String(port)]),
    where,
  );
}

/** Validates `[item as written, name, port text]` triples into a port map. */
function collect(pairs: Array<[string, string, string]>, where: string): Step<Ports> {
  if (pairs.length > MAX_PORTS) {
    return fail('VMS_SKIP_BAD_PORTS', `${where} lists ${pairs.length} ports; a WorkloadEntry takes at most ${MAX_PORTS}`);
  }
  const ports: Record<string, number> = {};
  for (const [item, rawName, portText] of pairs) {
    const port = portNumber(portText);
    if (port === undefined) return fail('VMS_SKIP_BAD_PORTS', `${where}: ${quote(item)} is not a port (${USE_NAME_PORT})`);
    const name = rawName.toLowerCase();
    if (name === '') return fail('VMS_SKIP_BAD_PORTS', `${where}: ${quote(item)} has no port name (${USE_NAME_PORT})`);
    if (!isPortName(name)) {
      return fail('VMS_SKIP_BAD_PORTS', `${where}: ${quote(item)} has the invalid port name ${quote(rawName)} (${NAME_RULE})`);
    }
    if (Object.hasOwn(ports, name)) {
      return fail('VMS_SKIP_BAD_PORTS', `${where}: the port name ${quote(name)} is given twice (give each port its own name)`);
    }
    ports[name] = port;
  }
  return ok(pairs.length === 0 ? undefined : ports);
}

/** The port a decimal string names, or undefined when it is not one from 1 to 65535. */
function portNumber(text: string): number | undefined {
  if (!DIGITS.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? port : undefined;
}
