// The words of the domain, shared by every layer. Nothing here does I/O.

/** The cloud (or inventory) an instance comes from. */
export type ProviderKind = 'static' | 'aws' | 'gcp' | 'azure';

/** A provider's instance state, normalized across clouds. */
export type InstanceState = 'pending' | 'running' | 'stopping' | 'stopped' | 'terminated';

export const INSTANCE_STATES: readonly InstanceState[] = ['pending', 'running', 'stopping', 'stopped', 'terminated'];

/** A virtual machine as a provider saw it, with nothing cloud-specific left. */
export interface Instance {
  provider: ProviderKind;
  /** AWS account id, GCP project id, Azure subscription id, or the static inventory's name. */
  account: string;
  region: string;
  /** Availability zone; empty when the machine has none (an Azure VM without a zone). */
  zone: string;
  /** The provider's id of the instance (i-0abc…, a GCP numeric id, an Azure VM resource id). */
  id: string;
  name: string;
  state: InstanceState;
  privateIPv4s: string[];
  publicIPv4s: string[];
  ipv6s: string[];
  /** VPC / VPC network / VNet id, when known. */
  networkId?: string;
  subnetId?: string;
  /** Tags, GCP labels and Azure tags; keys as the cloud spells them. */
  tags: Record<string, string>;
  /**
   * When the provider read this state (RFC 3339). Informational: entries carry the stamp of the
   * observation they come from (MapContext.observedAt), taken from the one clock when it started.
   */
  observedAt: string;
}

/** Enough to find one instance again (from a webhook event). */
export interface InstanceRef {
  provider: ProviderKind;
  account: string;
  region?: string;
  zone?: string;
  id: string;
}

/** The longest field of an instance reference taken from an event. */
const MAX_REF_FIELD = 1024;
// C0 and C1 control characters and DEL.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Why an instance reference read from an event cannot be described, or undefined when it can: every
 * field is well-formed Unicode (no lone surrogate, which URL encoding refuses) without control
 * characters, and not absurdly long. Checked before a webhook is accepted, so that a reference a
 * refresh could never use is refused with its reason instead of failing in the queue.
 */
export function referenceProblem(ref: InstanceRef): string | undefined {
  for (const field of ['account', 'region', 'zone', 'id'] as const) {
    const value = ref[field];
    if (value === undefined) continue;
    if (typeof value !== 'string') return `its ${field} is not a string`;
    if (field === 'account' || field === 'id' ? value === '' : false) return `its ${field} is empty`;
    if (!value.isWellFormed()) return `its ${field} is not well-formed Unicode (a lone surrogate)`;
    if (CONTROL.test(value)) return `its ${field} contains a control character`;
    if (value.length > MAX_REF_FIELD) return `its ${field} is longer than ${MAX_REF_FIELD} characters`;
  }
  return undefined;
}

/** One unit of discovery: AWS account × region, a GCP project, an Azure subscription, a static file. */
export interface Scope {
  /** Stable and unique, e.g. `aws:prod:123456789012:us-east-1` or `static:onprem`. */
  key: string;
  provider: ProviderKind;
  /** The name of the provider block in the config this scope belongs to. */
  source: string;
  account: string;
  region?: string;
}

/** What a provider returns for one scope. An incomplete listing never leads to deletes. */
export interface Listing {
  scope: Scope;
  instances: Instance[];
  /** False when part of the scope could not be read (a failed page, an unreachable zone, a truncated answer). */
  complete: boolean;
  /** Why the listing is incomplete, or entries of the inventory that were left out; readable sentences with codes. */
  problems: Problem[];
}

/** Something wrong with input that was set aside, with a stable code and where it was found. */
export interface Problem {
  code: string;
  message: string;
  /** Where: an inventory position (`machines[3]`), a zone, a page. */
  at?: string;
}

/** The result of describing one referenced instance: `instance` is null when the provider says it is gone. */
export interface Described {
  ref: InstanceRef;
  instance: Instance | null;
}

/** Istio's WorkloadEntry spec as we write it (networking.istio.io/v1). */
export interface WorkloadEntrySpec {
  address?: string;
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  serviceAccount?: string;
  network?: string;
  locality?: string;
  weight?: number;
}

/** Metadata of the namespaced objects vm-mesh-sync writes: entries, Services, ServiceEntries, WorkloadGroups. */
export interface ObjectMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  resourceVersion?: string;
  uid?: string;
}

/** A WorkloadEntry object, as desired by mapping or as read from the cluster. */
export interface WorkloadEntry {
  apiVersion: 'networking.istio.io/v1';
  kind: 'WorkloadEntry';
  metadata: ObjectMeta;
  spec: WorkloadEntrySpec;
}

/** Why an instance gets no WorkloadEntry: a stable code and a sentence a cloud engineer understands. */
export interface Skip {
  instance: InstanceRef & { name: string };
  /** The scope the instance was listed in. */
  scopeKey: string;
  /** The instance's source (`instanceSource`), which owned entries carry in SOURCE_ANNOTATION. */
  source: string;
  code: string;
  reason: string;
  /** The namespace mapping chose for the entry, when it got that far (a bad namespace tag has none). */
  namespace?: string;
  /**
   * True when the skip comes from a value that cannot be used (a bad tag, no address), as opposed
   * to an instance that is not selected or not running. An existing entry for such an instance is
   * kept as it is rather than deleted: a typo in a tag must not take a VM out of the mesh.
   */
  keepsEntry: boolean;
}

/** Mapping's answer for one instance. */
export type MapResult = { kind: 'entry'; entry: WorkloadEntry } | { kind: 'skip'; skip: Skip };

/**
 * The key of an object we write: `namespace/name` for an entry, `<Kind>/namespace/name` for a
 * Service, ServiceEntry or WorkloadGroup (see objectKey). The unit of coalescing and ordering.
 */
export type EntryKey = string;

/** One change to the cluster. Changes for one key converge to the newest `observedAt`. */
export type Change =
  | {
      op: 'upsert';
      key: EntryKey;
      /** The object to write: a WorkloadEntry, or a Service, ServiceEntry or WorkloadGroup of a mesh service. */
      entry: OwnedObject;
      observedAt: string;
      /** The plan saw no entry with this key: the writer may create it without reading first (a 409 sends it back to reading). */
      expectAbsent?: boolean;
      /**
       * The scope (SCOPE_ANNOTATION) of the live entry this upsert takes over, which the plan found
       * no longer configured. Without it the writer never replaces an entry of another scope.
       */
      takeOverFrom?: string;
    }
  | {
      op: 'delete';
      key: EntryKey;
      /** The kind of the object; a WorkloadEntry when absent. */
      kind?: OwnedKind;
      namespace: string;
      name: string;
      /** The scope deciding the delete: the writer deletes only an entry whose SCOPE_ANNOTATION names it. */
      scopeKey: string;
      observedAt: string;
    };

/** Labels and annotations that mark an entry as ours and say where it came from. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'vm-mesh-sync';
export const OWNER_LABEL = 'vm-mesh-sync.io/owner';
/**
 * The metadata label that finds entries by name, many names in one request (`in (…)`): a field
 * selector takes one name per request. Its value is the entry's name, or, for a name longer than a
 * label value may be, the name's head and a hash (nameLabelValue). Finding by it only narrows what
 * the server sends: names are compared on our side.
 */
export const NAME_LABEL = 'vm-mesh-sync.io/name';
export const SOURCE_ANNOTATION = 'vm-mesh-sync.io/source';
export const SCOPE_ANNOTATION = 'vm-mesh-sync.io/scope';
export const OBSERVED_AT_ANNOTATION = 'vm-mesh-sync.io/observed-at';
/**
 * The spec label naming the mesh service of an entry (from the service tag). Services,
 * ServiceEntries and WorkloadGroups select entries by it together with INSTALLATION_LABEL, so that
 * one installation's Service never selects another's VMs.
 */
export const SERVICE_LABEL = 'vm-mesh-sync.io/service';
/** Label keys vm-mesh-sync sets itself, which neither tags nor config may set: its own domain, and the managed-by label of its ownership. */
export function isReservedLabelKey(key: string): boolean {
  return key.startsWith('vm-mesh-sync.io/') || key === MANAGED_BY_LABEL;
}
/**
 * The spec label carrying the owner id beside SERVICE_LABEL. Not OWNER_LABEL: istiod copies a
 * WorkloadGroup's labels onto the entries it auto-registers, metadata included, and one carrying
 * OWNER_LABEL would drop out of the listing of entries that are not ours (owner!=id), so that its
 * VM would get a second entry from us.
 */
/**
 * Objects asked for per page when the cluster is listed (config kubernetes.pageSize); client-go
 * pages by 500. A page's bytes are split into entries as they arrive, and its entries parsed once
 * it has come, in slices (7–8 ms for 1000 entries here). Fewer round trips made the listing of
 * 100,000 owned entries 0.4–1.3 s faster than pages of 500, in runs alternating the two. Services
 * and WorkloadGroups are parsed a page at once by the Kubernetes client (a page of 5000 entries
 * held the event loop for over 100 ms, when entries were parsed that way too).
 */
export const DEFAULT_KUBE_PAGE_SIZE = 1000;

export const INSTALLATION_LABEL = 'vm-mesh-sync.io/installation';

/**
 * Istio's health checking of an entry (istiod reads it in pilot/pkg/model/status): with "true", the
 * entry gets no traffic until the Istio agent on the VM reports its probe healthy in `status`.
 */
export const HEALTH_CHECKS_ANNOTATION = 'proxy.istio.io/health-checks-enabled';
/** The probe vm-mesh-sync read from the health tag, in its canonical form (`http:8080/healthz`). */
export const HEALTH_CHECK_ANNOTATION = 'vm-mesh-sync.io/health-check';
/** The WorkloadGroup an entry that istiod auto-registered belongs to (pilot/pkg/autoregistration). */
export const AUTO_REGISTRATION_GROUP_ANNOTATION = 'istio.io/autoRegistrationGroup';

/**
 * Whether a label or annotation key of an entry we own is ours to remove when mapping stops setting
 * it: every key in our `vm-mesh-sync.io/` domain, and HEALTH_CHECKS_ANNOTATION, which only the
 * health tag decides on our entries (istiod sets it on the entries it auto-registers, never ours).
 */
export function isManagedMetadataKey(key: string): boolean {
  return key.startsWith('vm-mesh-sync.io/') || key === HEALTH_CHECKS_ANNOTATION;
}

/** A WorkloadEntry in the cluster that is not ours, as far as planning needs it. */
export interface ForeignEntry {
  key: EntryKey;
  /** `spec.address`, when it has one. */
  address?: string;
  /** `spec.network`, when it has one. */
  network?: string;
  /** Its AUTO_REGISTRATION_GROUP_ANNOTATION: istiod made it for a VM that auto-registered. */
  autoRegistrationGroup?: string;
}

/** Where an instance came from, as written in SOURCE_ANNOTATION: `aws:<account>:<region>:<id>`. */
export function instanceSource(instance: Pick<Instance, 'provider' | 'account' | 'region' | 'id'>): string {
  // Joined, not concatenated: `+` and template strings build a rope of pieces, which planning then
  // walks piece by piece each time it compares the annotation; a join is one flat string.
  return [instance.provider, instance.account, instance.region, instance.id].join(':');
}

/** The id at the end of a source that instanceSource wrote for these provider, account and region. */
export function idOfSource(source: string, of: { provider: string; account: string; region?: string }): string {
  return source.slice(of.provider.length + of.account.length + (of.region ?? '').length + 3);
}

/** The key of an entry. */
export function entryKey(namespace: string, name: string): EntryKey {
  // Joined, not concatenated: one flat string. A template string is a rope that the planner's sort
  // flattens into a second string, beside the rope and its `namespace/` piece.
  return [namespace, name].join('/');
}

/** One port of a Kubernetes Service as we write it. */
export interface ServicePort {
  name: string;
  port: number;
  /** The transport: UDP for a port named `udp…` (Istio's rule), else TCP. */
  protocol: 'TCP' | 'UDP';
  /** Istio's protocol for the port name, when the name implies one (`http`, `grpc`, `tls`…). */
  appProtocol?: string;
  targetPort: number;
}

/** A Kubernetes Service selecting the entries of one mesh service (v1, ClusterIP). */
export interface KubeService {
  apiVersion: 'v1';
  kind: 'Service';
  metadata: ObjectMeta;
  spec: { type: 'ClusterIP'; selector: Record<string, string>; ports: ServicePort[] };
}

/** One port of an Istio ServiceEntry. */
export interface ServiceEntryPort {
  number: number;
  name: string;
  /** Istio's protocol (HTTP, GRPC, TCP…); absent when the port name implies none (Istio then detects it). */
  protocol?: string;
  targetPort: number;
}

/** An Istio ServiceEntry for one mesh service: MESH_INTERNAL, STATIC, selecting the entries. */
export interface ServiceEntry {
  apiVersion: 'networking.istio.io/v1';
  kind: 'ServiceEntry';
  metadata: ObjectMeta;
  spec: {
    hosts: string[];
    location: 'MESH_INTERNAL';
    resolution: 'STATIC';
    ports: ServiceEntryPort[];
    workloadSelector: { labels: Record<string, string> };
  };
}

/** An Istio WorkloadGroup for one mesh service: what its VMs share, for `istioctl x workload entry configure`. */
export interface WorkloadGroup {
  apiVersion: 'networking.istio.io/v1';
  kind: 'WorkloadGroup';
  metadata: ObjectMeta;
  spec: {
    /** Labels (and annotations) of the workloads of the group. */
    metadata: { labels: Record<string, string> };
    /** The WorkloadEntry fields the group's VMs share (never an address). */
    template: Pick<WorkloadEntrySpec, 'ports' | 'serviceAccount' | 'network'>;
    /** Istio's health probe (httpGet, tcpSocket, exec, grpc and timings), when the service has one. */
    probe?: Record<string, unknown>;
  };
}

/** What a mesh service is reached by: a Service or a ServiceEntry. */
export type ServiceObject = KubeService | ServiceEntry;

/** A Service, ServiceEntry or WorkloadGroup of a mesh service: the objects derived from entries. */
export type MeshServiceObject = ServiceObject | WorkloadGroup;

/** The kinds of MeshServiceObject. */
export type MeshServiceKind = MeshServiceObject['kind'];

/** Every object vm-mesh-sync writes. */
export type OwnedObject = WorkloadEntry | MeshServiceObject;

/** The kinds vm-mesh-sync writes. */
export type OwnedKind = OwnedObject['kind'];

/**
 * The scope (SCOPE_ANNOTATION) of the Services, ServiceEntries and WorkloadGroups of mesh
 * services. They are derived from the entries of every scope, so no provider scope holds them;
 * this one is planned with a complete picture of every scope (see planMeshServices in
 * services/sync/plan-scopes.ts). Provider scope keys always contain a `:`, this one never.
 */
export const MESH_SERVICES_SCOPE = 'mesh-services';

/** The key of an object (see EntryKey): entries keep `namespace/name`, other kinds are prefixed with their kind. */
export function objectKey(kind: OwnedKind, namespace: string, name: string): EntryKey {
  return kind === 'WorkloadEntry' ? entryKey(namespace, name) : `${kind}/${namespace}/${name}`;
}

/** The key of an object, from its kind and metadata. */
export function keyOfObject(obj: { kind: OwnedKind; metadata: { namespace: string; name: string } }): EntryKey {
  return objectKey(obj.kind, obj.metadata.namespace, obj.metadata.name);
}

/** The kind, namespace and name a key names (see objectKey). */
export function parseObjectKey(key: EntryKey): { kind: OwnedKind; namespace: string; name: string } {
  const parts = key.split('/');
  if (parts.length === 3) return { kind: parts[0] as OwnedKind, namespace: parts[1]!, name: parts[2]! };
  return { kind: 'WorkloadEntry', namespace: parts[0] ?? '', name: parts[1] ?? key };
}

/** The apiVersion of each kind we write. */
export const API_VERSION_OF: Readonly<Record<OwnedKind, string>> = {
  WorkloadEntry: 'networking.istio.io/v1',
  Service: 'v1',
  ServiceEntry: 'networking.istio.io/v1',
  WorkloadGroup: 'networking.istio.io/v1',
};
