// ARM resource ids, read without calling Azure. Azure treats ids as case-insensitive and answers
// with whatever casing the resource was created with (`resourceGroups` or `resourcegroups`,
// `Microsoft.Compute` or `microsoft.compute`), so every id that leaves this provider is lowercased:
// the listing, describe and the Event Grid receiver then agree on one spelling, and so do the
// WorkloadEntry names computed from it.

/** A subscription id: a GUID. */
export const SUBSCRIPTION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The parts of a resource id below a resource group. */
export interface ResourceId {
  /** The whole id, lowercased and without a trailing slash. */
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  /** The resource provider namespace, e.g. `microsoft.compute`. */
  namespace: string;
  /** Resource type segments: `['virtualmachines']`, `['virtualnetworks', 'subnets']`. */
  types: string[];
  /** The name of each type segment, in the same order. */
  names: string[];
}

/** A virtual machine's resource id, split into what the Compute API asks for. */
export interface VmResourceId {
  /** `/subscriptions/<s>/resourcegroups/<rg>/providers/microsoft.compute/virtualmachines/<name>`, lowercased. */
  id: string;
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

// A tag write on a VM is reported on the VM's tags extension resource, not on the VM itself.
const TAGS_EXTENSION = /\/providers\/microsoft\.resources\/tags\/default$/;

/** Lowercases an id and drops surrounding blanks and a trailing slash; the one spelling used everywhere. */
export function normalizeResourceId(value: string): string {
  return value.trim().toLowerCase().replace(/\/+$/, '');
}

/**
 * Splits `/subscriptions/<s>/resourceGroups/<rg>/providers/<namespace>/<type>/<name>[/<type>/<name>…]`;
 * undefined for anything else (a subscription or resource group id, an extension resource).
 */
export function parseResourceId(value: string): ResourceId | undefined {
  const id = normalizeResourceId(value);
  const parts = id.split('/');
  if (parts[0] !== '' || parts[1] !== 'subscriptions' || parts[3] !== 'resourcegroups' || parts[5] !== 'providers') return undefined;
  const [subscriptionId, resourceGroup, namespace] = [parts[2], parts[4], parts[6]];
  if (!subscriptionId || !SUBSCRIPTION_ID.test(subscriptionId) || !resourceGroup || !namespace) return undefined;
  const rest = parts.slice(7);
  if (rest.length === 0 || rest.length % 2 !== 0 || rest.some((p) => p === '')) return undefined;
  const types = rest.filter((_, i) => i % 2 === 0);
  const names = rest.filter((_, i) => i % 2 === 1);
  // A nested `providers` segment makes it an extension resource of another one.
  if (types.includes('providers')) return undefined;
  return { id, subscriptionId, resourceGroup, namespace, types, names };
}

/** The VM an id names: the VM itself, or its tags extension (`…/providers/Microsoft.Resources/tags/default`). */
export function parseVmResourceId(value: string, options: { allowTagsExtension?: boolean } = {}): VmResourceId | undefined {
  let id = normalizeResourceId(value);
  if (options.allowTagsExtension) id = id.replace(TAGS_EXTENSION, '');
  const parsed = parseResourceId(id);
  if (!parsed || parsed.namespace !== 'microsoft.compute' || parsed.types.length !== 1 || parsed.types[0] !== 'virtualmachines') return undefined;
  return { id: parsed.id, subscriptionId: parsed.subscriptionId, resourceGroup: parsed.resourceGroup, name: parsed.names[0]! };
}

/** The virtual network of a subnet id, lowercased; undefined when the id is not a subnet's. */
export function vnetOfSubnet(subnetId: string): string | undefined {
  const parsed = parseResourceId(subnetId);
  if (!parsed || parsed.namespace !== 'microsoft.network' || parsed.types.length !== 2) return undefined;
  if (parsed.types[0] !== 'virtualnetworks' || parsed.types[1] !== 'subnets') return undefined;
  return `/subscriptions/${parsed.subscriptionId}/resourcegroups/${parsed.resourceGroup}/providers/microsoft.network/virtualnetworks/${parsed.names[0]!}`;
}

/** The resource group of a top-level resource id and its name; undefined for anything else. */
export function resourceGroupAndName(value: string): { subscriptionId: string; resourceGroup: string; name: string } | undefined {
  const parsed = parseResourceId(value);
  if (!parsed || parsed.types.length !== 1) return undefined;
  return { subscriptionId: parsed.subscriptionId, resourceGroup: parsed.resourceGroup, name: parsed.names[0]! };
}

/**
 * The subscription of a resource id Azure answered for `subscription`, when it names another one
 * (compared without regard to case): an endpoint that serves another subscription than the one
 * asked would otherwise put that subscription's VMs into the mesh as this one's. An id without a
 * subscription segment decides nothing here (mapping reports it as a VM it cannot read).
 */
export function foreignSubscription(id: string, subscription: string): string | undefined {
  const named = /^\/subscriptions\/([^/]+)\//i.exec(id.trim())?.[1]?.toLowerCase();
  return named === undefined || named === subscription.toLowerCase() ? undefined : named;
}
