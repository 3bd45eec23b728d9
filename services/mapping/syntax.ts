// The name and value grammars Kubernetes and Istio enforce, in one place, so that mapping rejects
// exactly what the API server would reject and checkEntry asserts the same rules.
import { isIPv6 } from 'node:net';

const DNS1123_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z](?:[-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
/** The pattern of the WorkloadEntry CRD's `ports` key rule. */
const PORT_NAME = /^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const DOTTED_QUAD = /^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** The longest port name the CRD accepts (its rule is `size(key) < 63`). */
export const MAX_PORT_NAME = 62;
/** The most ports the CRD accepts (`maxProperties`). */
export const MAX_PORTS = 128;
/** The most spec labels the CRD accepts (`maxProperties`). */
export const MAX_LABELS = 256;
/** The longest label value (and label key name part) Kubernetes accepts. */
export const MAX_LABEL_VALUE = 63;
/** The largest weight the CRD accepts (uint32). */
export const MAX_WEIGHT = 4_294_967_295;
/** The longest `network` the CRD accepts; mapping keeps networks to label values (63) anyway. */
export const MAX_NETWORK = 2048;
/** The longest `locality` the CRD accepts. */
export const MAX_LOCALITY = 2048;

/** A DNS-1123 label (namespaces): lowercase alphanumerics and `-`, at most 63 characters. */
export function isDns1123Label(value: string): boolean {
  return value.length <= 63 && DNS1123_LABEL.test(value);
}

/** A DNS-1035 label (Service names): a DNS-1123 label that starts with a letter. */
export function isDns1035Label(value: string): boolean {
  return value.length <= 63 && DNS1035_LABEL.test(value);
}

/** A DNS-1123 subdomain (object names, service accounts): dot-separated labels, at most 253 characters. */
export function isDns1123Subdomain(value: string): boolean {
  return value.length <= 253 && DNS1123_SUBDOMAIN.test(value);
}

/** A Kubernetes label (or annotation) key: optional DNS subdomain prefix and `/`, then a name of at most 63. */
export function isLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1 && !isDns1123Subdomain(key.slice(0, slash))) return false;
  return name.length <= MAX_LABEL_VALUE && LABEL_NAME.test(name);
}

/** A Kubernetes label value: empty, or at most 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric. */
export function isLabelValue(value: string): boolean {
  return value.length <= MAX_LABEL_VALUE && LABEL_VALUE.test(value);
}

/** A port name the WorkloadEntry CRD accepts. */
export function isPortName(name: string): boolean {
  return name.length <= MAX_PORT_NAME && PORT_NAME.test(name);
}

/** A strict dotted-quad IPv4 address (no leading zeros, no prefix length). */
export function isIPv4Address(value: string): boolean {
  return DOTTED_QUAD.test(value);
}

/** An IPv6 address without zone id or prefix length; zones and prefixes cannot be dialled by a sidecar. */
export function isIPv6Address(value: string): boolean {
  return !value.includes('%') && !value.includes('/') && isIPv6(value);
}

/** An address an entry may carry: IPv4 or IPv6, and not the unspecified address (nothing listens there). */
export function isUsableAddress(value: string): boolean {
  if (isIPv4Address(value)) return value !== '0.0.0.0';
  return isIPv6Address(value) && !isUnspecifiedIPv6(value);
}

function isUnspecifiedIPv6(value: string): boolean {
  // `::`, `0::0`, `0:0:0:0:0:0:0:0` and friends: every group zero.
  return /^[0:]+$/.test(value);
}
