// From the entries of a resync to what makes them reachable: one Service (or ServiceEntry) and one
// WorkloadGroup per (namespace, service) that the entries' service label names. Pure: entries in,
// objects out, the same for any order of the entries.
import {
  entryKey,
  HEALTH_CHECK_ANNOTATION,
  INSTALLATION_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  MESH_SERVICES_SCOPE,
  OWNER_LABEL,
  SCOPE_ANNOTATION,
  SERVICE_LABEL,
  type EntryKey,
  type KubeService,
  type ObjectMeta,
  type ServiceEntry,
  type ServiceEntryPort,
  type ServiceObject,
  type ServicePort,
  type WorkloadEntry,
  type WorkloadGroup,
} from '../model.ts';
import { annotationOfEntry, nameOfEntry, namespaceOfEntry, specOfEntry } from '../desired-entry.ts';
import { parseHealthCheck, type ReadinessProbe } from './health.ts';

/** Why a service gets no Service or ServiceEntry; stable like skip codes. */
export const SERVICE_CODES = {
  VMS_SKIP_SERVICE_NO_PORTS:
    'no VM of the service has a port (tag mesh-ports), and a Service or ServiceEntry needs at least one; its WorkloadGroup is still written',
} as const;

/** A stable code of SERVICE_CODES. */
export type ServiceCode = keyof typeof SERVICE_CODES;

/** What is written per service (config `services`). */
export interface MeshServiceOptions {
  ownerId: string;
  /** `service`: a Kubernetes Service; `service-entry`: an Istio ServiceEntry; `off`: neither. */
  kind: 'service' | 'service-entry' | 'off';
  workloadGroups: boolean;
  /** The cluster's DNS domain, for ServiceEntry hosts and the hostname `explain` shows. */
  clusterDomain: string;
}

/** An entry left out of its service because its ports disagree with those of the other VMs. */
export interface ExcludedEntry {
  entry: WorkloadEntry;
  code: 'VMS_SKIP_SERVICE_PORT_CONFLICT';
  reason: string;
}

/** A service that gets no Service or ServiceEntry, and why. */
export interface ServiceProblem {
  namespace: string;
  service: string;
  code: ServiceCode;
  reason: string;
}

/** What deriveMeshServices gives. */
export interface MeshServices {
  /** Services or ServiceEntries (by the option `kind`), sorted by namespace/name. */
  services: ServiceObject[];
  /** Sorted by namespace/name. */
  workloadGroups: WorkloadGroup[];
  /** Entries whose ports disagree with their service's, left out of its objects. Sorted by key. */
  excluded: ExcludedEntry[];
  /** Sorted by namespace/service. */
  problems: ServiceProblem[];
}

/** The (namespace, service) an entry of this owner serves, or undefined when it names none. */
export function serviceOfEntry(entry: WorkloadEntry, ownerId: string): { namespace: string; service: string } | undefined {
  const labels = specOfEntry(entry).labels;
  const service = labels?.[SERVICE_LABEL];
  if (!service || labels[INSTALLATION_LABEL] !== ownerId) return undefined;
  return { namespace: namespaceOfEntry(entry), service };
}

/** The labels a service's Service, ServiceEntry and WorkloadGroup select its entries by. */
export function serviceSelector(service: string, ownerId: string): Record<string, string> {
  return { [INSTALLATION_LABEL]: ownerId, [SERVICE_LABEL]: service };
}

/** The mesh hostname of a service: `<service>.<namespace>.svc.<cluster domain>`. */
export function serviceHost(service: string, namespace: string, clusterDomain: string): string {
  return `${service}.${namespace}.svc.${clusterDomain}`;
}

// Istio's explicit protocol selection: a port name `<protocol>[-<suffix>]`, case ignored
// (istio/pkg/config/protocol; `grpc-web` is matched whole, before the suffix is cut off).
const ISTIO_PROTOCOLS = new Set(['http', 'http2', 'https', 'grpc', 'grpc-web', 'tcp', 'tls', 'mongo', 'mysql', 'redis', 'udp']);

/**
 * The protocol Istio infers from a port name (lowercase: `http`, `grpc-web`, `tcp`…), or
 * undefined when the name names none: Istio then detects HTTP and falls back to plain TCP.
 */
export function istioProtocol(portName: string): string | undefined {
  const name = portName.toLowerCase();
  if (name === 'grpc-web' || name.startsWith('grpc-web-')) return 'grpc-web';
  const dash = name.indexOf('-');
  const prefix = dash === -1 ? name : name.slice(0, dash);
  return ISTIO_PROTOCOLS.has(prefix) ? prefix : undefined;
}

/** A port of a service: a name and a number every VM that has the name agrees on. */
interface Port {
  name: string;
  number: number;
}

/**
 * One Service (or ServiceEntry) and one WorkloadGroup per (namespace, service) the entries of this
 * owner name (see serviceOfEntry). Rules:
 * - ports: the port set (name → number) the most entries of the service carry wins; entries with
 *   another set join in the order of how many carry theirs, as long as no port of theirs has a
 *   name already given another number or a number already given another name (per transport for
 *   a Service, at all for a ServiceEntry).
 *   An entry that disagrees, or gives one number two names itself, is excluded
 *   (VMS_SKIP_SERVICE_PORT_CONFLICT) and its ports left out.
 *   Among sets carried by equally many entries the one with the smaller ports (by number, then
 *   name) goes first, so the answer never depends on listing order;
 * - the Service or ServiceEntry has the union of the ports of the entries kept; with none, there
 *   is no Service or ServiceEntry (VMS_SKIP_SERVICE_NO_PORTS);
 * - the WorkloadGroup has the spec labels, ports, service account and network that every kept
 *   entry of the service shares.
 */
export function deriveMeshServices(entries: readonly WorkloadEntry[], options: MeshServiceOptions): MeshServices {
  const groups = new Map<string, { namespace: string; service: string; entries: WorkloadEntry[] }>();
  for (const entry of entries) {
    const of = serviceOfEntry(entry, options.ownerId);
    if (!of) continue;
    const key = entryKey(of.namespace, of.service);
    const group = groups.get(key);
    if (group) group.entries.push(entry);
    else groups.set(key, { ...of, entries: [entry] });
  }

  const out: MeshServices = { services: [], workloadGroups: [], excluded: [], problems: [] };
  for (const key of [...groups.keys()].sort(compareStrings)) {
    const { namespace, service, entries: members } = groups.get(key)!;
    const { kept, ports, excluded } = choosePorts(members, namespace, service, options.kind === 'service');
    for (const e of excluded) out.excluded.push(e);
    if (options.kind !== 'off') {
      if (ports.length === 0) {
        out.problems.push({
          namespace,
          service,
          code: 'VMS_SKIP_SERVICE_NO_PORTS',
          reason:
            `no VM of service ${service} in ${namespace} has a port, and a ${options.kind === 'service' ? 'Service' : 'ServiceEntry'} needs one; ` +
            'tag its VMs with mesh-ports (e.g. postgres:5432), or set mapping.ports.default',
        });
      } else {
        out.services.push(options.kind === 'service' ? kubeService(namespace, service, ports, options) : serviceEntry(namespace, service, ports, options));
      }
    }
    if (options.workloadGroups && kept.length > 0) out.workloadGroups.push(workloadGroup(namespace, service, kept, options));
  }
  out.excluded = out.excluded.map((e) => ({ key: keyOf(e.entry), e })).sort((a, b) => compareStrings(a.key, b.key)).map(({ e }) => e);
  return out;
}

/** The entries of one service whose ports agree, the union of their ports (by number), and the others. */
function choosePorts(members: readonly WorkloadEntry[], namespace: string, service: string, perTransport: boolean): { kept: WorkloadEntry[]; ports: Port[]; excluded: ExcludedEntry[] } {
  // Entries by port set, each set as its ports sorted by number then name.
  const sets = new Map<string, { ports: Port[]; entries: WorkloadEntry[] }>();
  // Most VMs of a service have the same ports: each distinct map, as written, is sorted once.
  const seen = new Map<string, { id: string; ports: Port[] }>();
  for (const entry of members) {
    const map = specOfEntry(entry).ports ?? {};
    let written = '';
    for (const name in map) written += `${name}:${map[name]},`;
    let known = seen.get(written);
    if (known === undefined) {
      const ports = Object.entries(map)
        .map(([name, number]) => ({ name, number }))
        .sort(comparePorts);
      known = { id: ports.map((p) => `${p.number}/${p.name}`).join(','), ports };
      seen.set(written, known);
    }
    const set = sets.get(known.id);
    if (set) set.entries.push(entry);
    else sets.set(known.id, { ports: known.ports, entries: [entry] });
  }
  const ranked = [...sets.values()].sort((a, b) => b.entries.length - a.entries.length || comparePortLists(a.ports, b.ports));

  const byName = new Map<string, { number: number; count: number }>();
  const byNumber = new Map<string, { name: string; count: number }>();
  const numberKey = (p: Port): string => (perTransport ? transportKey(p) : String(p.number));
  const kept: WorkloadEntry[] = [];
  const excluded: ExcludedEntry[] = [];
  for (const set of ranked) {
    const disagreement = set.ports.map((p) => disagreementOf(p, byName, byNumber.get(numberKey(p)), members.length, namespace, service)).find((r) => r !== undefined) ?? ownDisagreement(set.ports, numberKey);
    if (disagreement !== undefined) {
      for (const entry of set.entries) excluded.push({ entry, code: 'VMS_SKIP_SERVICE_PORT_CONFLICT', reason: disagreement });
      continue;
    }
    for (const entry of set.entries) kept.push(entry);
    for (const p of set.ports) {
      const named = byName.get(p.name);
      if (named) named.count += set.entries.length;
      else byName.set(p.name, { number: p.number, count: set.entries.length });
      const numbered = byNumber.get(numberKey(p));
      if (numbered) numbered.count += set.entries.length;
      else byNumber.set(numberKey(p), { name: p.name, count: set.entries.length });
    }
  }
  const ports = [...byName].map(([name, { number }]) => ({ name, number })).sort(comparePorts);
  // In no particular order: what is derived from them does not depend on it, and `excluded` is
  // sorted once for all services.
  return { kept, ports, excluded };
}

/** Why port `p` cannot join the ports chosen so far, or undefined when it can. */
function disagreementOf(
  p: Port,
  byName: ReadonlyMap<string, { number: number; count: number }>,
  numbered: { name: string; count: number } | undefined,
  total: number,
  namespace: string,
  service: string,
): string | undefined {
  const of = `of the ${total} VMs of service ${service} in ${namespace}`;
  const named = byName.get(p.name);
  if (named && named.number !== p.number) {
    return (
      `its port ${p.name}:${p.number} disagrees with ${p.name}:${named.number}, which ${named.count} ${of} use; ` +
      `tag it mesh-ports with ${p.name}:${named.number}, or give it another mesh-service`
    );
  }
  if (numbered && numbered.name !== p.name) {
    return (
      `its port ${p.name}:${p.number} gives the number ${p.number} another name than ${numbered.name}, which ${numbered.count} ${of} use; ` +
      `tag it mesh-ports with ${numbered.name}:${p.number}, or give it another mesh-service`
    );
  }
  return undefined;
}

/** Why one VM's own ports cannot all be ports of a Service (two names for one number), or undefined. */
function ownDisagreement(ports: readonly Port[], numberKey: (p: Port) => string): string | undefined {
  const seen = new Map<string, string>();
  for (const p of ports) {
    const other = seen.get(numberKey(p));
    if (other !== undefined) {
      return `its ports ${other}:${p.number} and ${p.name}:${p.number} share a number, and a Service port number has one name; drop one of them from mesh-ports`;
    }
    seen.set(numberKey(p), p.name);
  }
  return undefined;
}

/**
 * A Service port number is unique per transport (Kubernetes' rule), so a UDP port may share a TCP
 * port's number; a ServiceEntry's port numbers are unique whatever the protocol (istiod's rule).
 */
function transportKey(p: Port): string {
  return `${p.number}/${transportOf(p.name)}`;
}

function transportOf(portName: string): 'TCP' | 'UDP' {
  return istioProtocol(portName) === 'udp' ? 'UDP' : 'TCP';
}

/** Marked as ours like an entry: the owner labels, and the scope of every mesh service's objects. */
function meta(namespace: string, name: string, ownerId: string): ObjectMeta {
  return { name, namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [OWNER_LABEL]: ownerId }, annotations: { [SCOPE_ANNOTATION]: MESH_SERVICES_SCOPE } };
}

function kubeService(namespace: string, service: string, ports: readonly Port[], options: MeshServiceOptions): KubeService {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(namespace, service, options.ownerId),
    spec: {
      type: 'ClusterIP',
      selector: serviceSelector(service, options.ownerId),
      ports: ports.map((p): ServicePort => {
        const protocol = istioProtocol(p.name);
        return {
          name: p.name,
          port: p.number,
          protocol: transportOf(p.name),
          ...(protocol !== undefined && protocol !== 'udp' ? { appProtocol: protocol } : {}),
          targetPort: p.number,
        };
      }),
    },
  };
}

function serviceEntry(namespace: string, service: string, ports: readonly Port[], options: MeshServiceOptions): ServiceEntry {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'ServiceEntry',
    metadata: meta(namespace, service, options.ownerId),
    spec: {
      hosts: [serviceHost(service, namespace, options.clusterDomain)],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      ports: ports.map((p): ServiceEntryPort => {
        const protocol = istioProtocol(p.name);
        return { number: p.number, name: p.name, ...(protocol !== undefined ? { protocol: protocol.toUpperCase() } : {}), targetPort: p.number };
      }),
      workloadSelector: { labels: serviceSelector(service, options.ownerId) },
    },
  };
}

function workloadGroup(namespace: string, service: string, kept: readonly WorkloadEntry[], options: MeshServiceOptions): WorkloadGroup {
  const first = kept[0]!;
  // What `a` and `b` share; `a` itself when `b` has all of it, which is the usual case and makes nothing.
  const shared = (a: Record<string, string | number> | undefined, b: Record<string, string | number> | undefined) => {
    if (a !== undefined && b !== undefined && hasAll(b, a)) return a;
    return Object.fromEntries(Object.entries(a ?? {}).filter(([k, v]) => b !== undefined && Object.hasOwn(b, k) && b[k] === v));
  };
  const firstSpec = specOfEntry(first);
  let labels: Record<string, string> = { ...firstSpec.labels };
  let ports: Record<string, number> = { ...firstSpec.ports };
  let serviceAccount = firstSpec.serviceAccount;
  let network = firstSpec.network;
  for (let i = 1; i < kept.length; i++) {
    const e = kept[i]!;
    const spec = specOfEntry(e);
    labels = shared(labels, spec.labels) as Record<string, string>;
    ports = shared(ports, spec.ports) as Record<string, number>;
    if (spec.serviceAccount !== serviceAccount) serviceAccount = undefined;
    if (spec.network !== network) network = undefined;
  }
  const template: WorkloadGroup['spec']['template'] = {};
  if (Object.keys(ports).length > 0) template.ports = ports;
  if (serviceAccount !== undefined) template.serviceAccount = serviceAccount;
  if (network !== undefined) template.network = network;
  const group: WorkloadGroup = {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadGroup',
    metadata: meta(namespace, service, options.ownerId),
    // Every kept entry carries the selector labels, so the shared labels always include them.
    spec: { metadata: { labels }, template },
  };
  // Istio probes the VMs of the group with it: like the rest, only a probe every VM shares.
  const probe = sharedProbe(kept);
  if (probe !== undefined) group.spec.probe = probe;
  return group;
}

/**
 * The health probe (the health tag, as HEALTH_CHECK_ANNOTATION carries it) of every entry, when
 * they all have the same one; otherwise none.
 */
export function sharedProbe(entries: readonly WorkloadEntry[]): ReadinessProbe | undefined {
  const texts = new Set(entries.map((e) => annotationOfEntry(e, HEALTH_CHECK_ANNOTATION)));
  if (texts.size !== 1) return undefined;
  const [text] = texts;
  if (text === undefined) return undefined;
  const parsed = parseHealthCheck(text, `annotation ${HEALTH_CHECK_ANNOTATION}`);
  return parsed.ok ? parsed.value?.probe : undefined;
}

/** True when `b` has every key of `a` with the same value. */
function hasAll(b: Record<string, string | number>, a: Record<string, string | number>): boolean {
  for (const k in a) if (!Object.hasOwn(b, k) || b[k] !== a[k]) return false;
  return true;
}

function keyOf(entry: WorkloadEntry): EntryKey {
  return entryKey(namespaceOfEntry(entry), nameOfEntry(entry));
}

function comparePorts(a: Port, b: Port): number {
  return a.number - b.number || compareStrings(a.name, b.name);
}

function comparePortLists(a: readonly Port[], b: readonly Port[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = comparePorts(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/** Code-unit order: the same on every machine, unlike localeCompare. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
