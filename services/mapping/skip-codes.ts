// Why an instance gets no WorkloadEntry. Codes are stable: a user searches for them, dashboards
// count them; a new reason gets a new code.

/** Every skip code mapping reports, with a short description for docs and `explain`. */
export const SKIP_CODES = {
  VMS_SKIP_NOT_SELECTED: 'the instance does not carry the selector tag (mesh=true by default); its entry is removed',
  VMS_SKIP_NOT_RUNNING: 'the instance is not running (pending, stopping, stopped, terminated); its entry is removed',
  VMS_SKIP_NO_ADDRESS: 'the instance has no usable address of the kind chosen by address.prefer or the address tag',
  VMS_SKIP_BAD_ADDRESS_TAG: 'the address tag is not one of private-ipv4, public-ipv4, ipv6, first-available',
  VMS_SKIP_BAD_PORTS:
    'the ports tag (or ports.default) has an item that is not name:port with a valid name and a port from 1 to 65535, a repeated name, or more than 128 ports',
  VMS_SKIP_BAD_LABEL: 'a label tag cannot become a Kubernetes label (bad key, a value with nothing usable, or more than 256 labels)',
  VMS_SKIP_BAD_NAMESPACE: 'the namespace tag (or namespace.default) is not a DNS-1123 label of at most 63 characters',
  VMS_SKIP_NAMESPACE_NOT_ALLOWED:
    'the namespace tag names a namespace outside mapping.namespace.allowed (or the provider block\'s namespaces); an entry it already has in an allowed namespace is kept',
  VMS_SKIP_BAD_SERVICE_ACCOUNT: 'the service account tag (or serviceAccount.default) is not a DNS-1123 subdomain of at most 253 characters',
  VMS_SKIP_BAD_NETWORK: 'the network (tag, network.byNetworkId or network.name) is not a label-value-like name of at most 63 characters',
  VMS_SKIP_BAD_LOCALITY: 'the region and zone together are longer than the 2048 characters a locality may have',
  VMS_SKIP_BAD_WEIGHT: 'the weight tag is not a whole number from 1 to 4294967295',
  VMS_SKIP_BAD_SERVICE:
    'the service tag is not a DNS-1035 label of at most 63 characters (lowercase letters, digits and -, starting with a letter), the name a Kubernetes Service must have',
  VMS_SKIP_SERVICE_PORT_CONFLICT:
    'the VM\'s ports disagree with those most VMs of its mesh service carry (a port name with another number, or a number with another name); the Service keeps theirs',
  VMS_SKIP_DUPLICATE_NAME: 'another instance in the same listing maps to the same namespace/name; the one whose source sorts first keeps it',
  VMS_SKIP_BAD_HEALTH: 'the health tag is not a probe (http:PORT/PATH, https:PORT/PATH, tcp:PORT, or the dash form http-PORT-PATH); an entry it already has is kept as it is',
  VMS_SKIP_AUTO_REGISTERED:
    'Istio auto-registration already made a WorkloadEntry (annotation istio.io/autoRegistrationGroup) with the same address and network; an entry we have for the VM is deleted, so Istio never sees it twice',
} as const;

/** A stable skip code. */
export type SkipCode = keyof typeof SKIP_CODES;

/**
 * Whether an existing entry survives a skip with this code. "Not selected" and "not running" say
 * the VM should leave the mesh, and "auto-registered" says Istio has it already (ours would be a
 * second endpoint for the same VM); every other code is a value we cannot use, and a typo in a tag
 * must not take a serving VM out of the mesh.
 */
export function skipKeepsEntry(code: SkipCode): boolean {
  return code !== 'VMS_SKIP_NOT_SELECTED' && code !== 'VMS_SKIP_NOT_RUNNING' && code !== 'VMS_SKIP_AUTO_REGISTERED';
}
