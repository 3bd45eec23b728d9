// The duplicate rule for Istio auto-registration: a VM whose sidecar auto-registered through a
// WorkloadGroup already has a WorkloadEntry that istiod made (annotation istio.io/autoRegistrationGroup).
// An entry of ours with the same address on the same network would be a second endpoint for the
// same VM, so mapping skips it (VMS_SKIP_AUTO_REGISTERED) and the planner removes ours.
import { isIPv6 } from 'node:net';
import type { ForeignEntry } from '../model.ts';

/** The auto-registered entries of the cluster by address (in canonical form); build it with indexAutoRegistered. */
export type AutoRegisteredIndex = ReadonlyMap<string, readonly ForeignEntry[]>;

/**
 * The entries istiod auto-registered among `foreign`, by address. An entry counts when its
 * istio.io/autoRegistrationGroup annotation is not empty (istiod's own test) and it has an address;
 * the caller has already checked on its side that none of them is ours.
 */
export function indexAutoRegistered(foreign: Iterable<ForeignEntry>): AutoRegisteredIndex {
  const index = new Map<string, ForeignEntry[]>();
  for (const entry of foreign) {
    if (!entry.autoRegistrationGroup || !entry.address) continue;
    const address = canonicalAddress(entry.address);
    const list = index.get(address);
    if (list) list.push(entry);
    else index.set(address, [entry]);
  }
  return index;
}

/**
 * The auto-registered entry that an entry of ours with this address and network would duplicate,
 * or undefined. When several match, the one with the smallest key, so the reason is the same on
 * every run.
 */
export function findAutoRegistered(index: AutoRegisteredIndex, address: string, network: string | undefined): ForeignEntry | undefined {
  if (index.size === 0) return undefined;
  let found: ForeignEntry | undefined;
  for (const entry of index.get(canonicalAddress(address)) ?? []) {
    if (sameNetwork(entry.network, network) && (found === undefined || entry.key < found.key)) found = entry;
  }
  return found;
}

/**
 * Whether two entries' networks are the same for Istio. A network that is absent or blank matches
 * every network, as in Istio's own network.ID.Equals (IsSameOrEmpty): an endpoint without a network
 * is reachable from all of them, so the same address there is the same VM. Named networks match
 * only when equal.
 */
export function sameNetwork(a: string | undefined, b: string | undefined): boolean {
  const x = a?.trim() ?? '';
  const y = b?.trim() ?? '';
  return x === '' || y === '' || x === y;
}

/**
 * An address as compared here: an IPv6 address in its one compressed lowercase form (a cloud and
 * the agent on the VM may spell the same address differently), anything else as written.
 */
export function canonicalAddress(address: string): string {
  const text = address.trim();
  // A zone id (`%eth0`) is not an address an entry can carry; such a value is compared as written.
  if (!isIPv6(text) || text.includes('%')) return text;
  // The URL parser serializes an IPv6 host in RFC 5952 form: lowercase, zeros compressed.
  return new URL(`http://[${text}]/`).hostname.slice(1, -1);
}
