// The resources the fake serves and how the real server describes them: core Namespaces,
// ServiceAccounts, Services and Events, and any CustomResourceDefinition loaded from YAML (Istio's
// WorkloadEntry by default). Discovery documents and Table output are built from these too.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { isRecord, type NameRule } from './metadata.ts';
import { defaultService, serviceEntryProblems, validateService } from './service-rules.ts';
import { StructuralSchema, type SchemaProps } from './schema.ts';
import type { FieldError } from './status.ts';
import type { KubeObject } from './store.ts';

/** A column of `kubectl get` output (a CRD's additionalPrinterColumns, or a built-in one). */
export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath?: string;
  value?: (obj: KubeObject) => unknown;
}

/** Everything the server needs to know about one resource. */
export interface ResourceDef {
  /** '' for the core group. */
  group: string;
  /** Served versions; the first is the preferred (storage) one. */
  versions: string[];
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  shortNames: string[];
  categories: string[];
  namespaced: boolean;
  nameRule: NameRule;
  /** A custom resource: list items carry apiVersion/kind, strategic merge patch is refused, deletes answer a Status. */
  custom: boolean;
  /** Per served version, for custom resources. */
  schemas: Map<string, StructuralSchema> | undefined;
  /** Main-resource writes keep the stored status (and never track it in managedFields). */
  statusSubresource: boolean;
  /** metadata.generation starts at 1 and grows when anything but metadata and status changes. */
  tracksGeneration: boolean;
  /** PUT without metadata.resourceVersion is allowed (false for custom resources). */
  allowUnconditionalUpdate: boolean;
  /** PUT of a missing object creates it. */
  allowCreateOnUpdate: boolean;
  printerColumns: PrinterColumn[];
  /** Field selector fields besides metadata.name and metadata.namespace. */
  fieldSelectors: string[];
  /** Defaults the server fills in on create. */
  prepareForCreate?: (obj: KubeObject) => void;
  /** Checks beyond metadata and schema. */
  validate?: (obj: KubeObject) => FieldError[];
}

/** `networking.istio.io/v1`, or `v1` for core. */
export function groupVersion(def: ResourceDef, version: string): string {
  return def.group ? `${def.group}/${version}` : version;
}

/** The preferred (storage) version. */
export function preferredVersion(def: ResourceDef): string {
  return def.versions[0]!;
}

/** Reads a dotted JSONPath such as `.spec.address` or `.status.conditions[0].type`. */
export function readJsonPath(obj: unknown, path: string): unknown {
  const parts = path.replace(/^\{?\.?/, '').replace(/\}$/, '').match(/[^.[\]]+|\[\d+\]/g) ?? [];
  let cur: unknown = obj;
  for (const p of parts) {
    if (p.startsWith('[')) {
      if (!Array.isArray(cur)) return undefined;
      cur = cur[Number(p.slice(1, -1))];
    } else {
      if (!isRecord(cur)) return undefined;
      cur = cur[p];
    }
  }
  return cur;
}

function str(v: unknown): string {
  return v === undefined || v === null ? '' : String(v);
}

const NAMESPACES: ResourceDef = {
  group: '',
  versions: ['v1'],
  plural: 'namespaces',
  singular: 'namespace',
  kind: 'Namespace',
  listKind: 'NamespaceList',
  shortNames: ['ns'],
  categories: [],
  namespaced: false,
  nameRule: 'label',
  custom: false,
  schemas: undefined,
  statusSubresource: true,
  tracksGeneration: false,
  allowUnconditionalUpdate: true,
  allowCreateOnUpdate: false,
  printerColumns: [
    { name: 'Status', type: 'string', description: 'The status of the namespace', jsonPath: '.status.phase' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  fieldSelectors: ['status.phase'],
  prepareForCreate(obj) {
    const name = str(obj.metadata.name);
    const labels = isRecord(obj.metadata.labels) ? obj.metadata.labels : {};
    obj.metadata.labels = { ...labels, 'kubernetes.io/metadata.name': name };
    const spec = isRecord(obj.spec) ? obj.spec : {};
    obj.spec = { ...spec, finalizers: Array.isArray(spec.finalizers) ? spec.finalizers : ['kubernetes'] };
    obj.status = { phase: 'Active' };
  },
};

const SERVICE_ACCOUNTS: ResourceDef = {
  group: '',
  versions: ['v1'],
  plural: 'serviceaccounts',
  singular: 'serviceaccount',
  kind: 'ServiceAccount',
  listKind: 'ServiceAccountList',
  shortNames: ['sa'],
  categories: [],
  namespaced: true,
  nameRule: 'subdomain',
  custom: false,
  schemas: undefined,
  statusSubresource: false,
  tracksGeneration: false,
  allowUnconditionalUpdate: true,
  allowCreateOnUpdate: false,
  printerColumns: [
    { name: 'Secrets', type: 'integer', value: (o) => (Array.isArray(o.secrets) ? o.secrets.length : 0) },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  fieldSelectors: [],
};

const EVENT_FIELDS = [
  'involvedObject.kind',
  'involvedObject.namespace',
  'involvedObject.name',
  'involvedObject.uid',
  'involvedObject.apiVersion',
  'involvedObject.resourceVersion',
  'involvedObject.fieldPath',
  'reason',
  'reportingComponent',
  'source',
  'type',
];

const EVENTS: ResourceDef = {
  group: '',
  versions: ['v1'],
  plural: 'events',
  singular: 'event',
  kind: 'Event',
  listKind: 'EventList',
  shortNames: ['ev'],
  categories: [],
  namespaced: true,
  nameRule: 'subdomain',
  custom: false,
  schemas: undefined,
  statusSubresource: false,
  tracksGeneration: false,
  allowUnconditionalUpdate: true,
  allowCreateOnUpdate: true,
  printerColumns: [
    { name: 'Last Seen', type: 'date', value: (o) => o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp },
    { name: 'Type', type: 'string', jsonPath: '.type' },
    { name: 'Reason', type: 'string', jsonPath: '.reason' },
    {
      name: 'Object',
      type: 'string',
      value: (o) => {
        const io = isRecord(o.involvedObject) ? o.involvedObject : {};
        return `${str(io.kind).toLowerCase()}/${str(io.name)}`;
      },
    },
    { name: 'Message', type: 'string', jsonPath: '.message' },
  ],
  fieldSelectors: EVENT_FIELDS,
  validate(obj) {
    const io = obj.involvedObject;
    const ns = str(obj.metadata.namespace);
    if (isRecord(io) && typeof io.namespace === 'string' && io.namespace !== '' && io.namespace !== ns) {
      return [
        {
          reason: 'FieldValueInvalid',
          field: 'involvedObject.namespace',
          body: `Invalid value: ${JSON.stringify(io.namespace)}: does not match event.namespace`,
        },
      ];
    }
    return [];
  },
};

/** Core Services, with Kubernetes' checks and defaults (a cluster IP from 10.96.0.0/16, in order). */
function services(): ResourceDef {
  let allocated = 0;
  return {
    group: '',
    versions: ['v1'],
    plural: 'services',
    singular: 'service',
    kind: 'Service',
    listKind: 'ServiceList',
    shortNames: ['svc'],
    categories: ['all'],
    namespaced: true,
    nameRule: 'label',
    custom: false,
    schemas: undefined,
    statusSubresource: true,
    tracksGeneration: false,
    allowUnconditionalUpdate: true,
    allowCreateOnUpdate: false,
    printerColumns: [
      { name: 'Type', type: 'string', jsonPath: '.spec.type' },
      { name: 'Cluster-IP', type: 'string', jsonPath: '.spec.clusterIP' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
    fieldSelectors: [],
    prepareForCreate(obj) {
      defaultService(obj, () => {
        allocated++;
        return `10.96.${Math.floor(allocated / 250)}.${(allocated % 250) + 1}`;
      });
    },
    validate: (obj) => validateService(obj),
  };
}

/** The core resources every fake server serves. */
export function coreResources(): ResourceDef[] {
  return [NAMESPACES, SERVICE_ACCOUNTS, services(), EVENTS];
}

/**
 * Istio's ServiceEntry (networking.istio.io/v1). No ServiceEntry CRD is vendored: its schema keeps
 * any field, and istiod's validation rules (service-rules.ts) refuse what istiod's webhook would.
 */
export function serviceEntries(): ResourceDef {
  return {
    group: 'networking.istio.io',
    versions: ['v1', 'v1beta1', 'v1alpha3'],
    plural: 'serviceentries',
    singular: 'serviceentry',
    kind: 'ServiceEntry',
    listKind: 'ServiceEntryList',
    shortNames: ['se'],
    categories: ['istio-io', 'networking-istio-io'],
    namespaced: true,
    nameRule: 'subdomain',
    custom: true,
    schemas: new Map(
      ['v1', 'v1beta1', 'v1alpha3'].map((v) => [
        v,
        new StructuralSchema({
          type: 'object',
          properties: {
            spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          },
        }),
      ]),
    ),
    statusSubresource: true,
    tracksGeneration: true,
    allowUnconditionalUpdate: false,
    allowCreateOnUpdate: false,
    printerColumns: [
      { name: 'Hosts', type: 'string', jsonPath: '.spec.hosts' },
      { name: 'Location', type: 'string', jsonPath: '.spec.location' },
      { name: 'Resolution', type: 'string', jsonPath: '.spec.resolution' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
    fieldSelectors: [],
    validate: (obj) => serviceEntryProblems(obj).map((p) => ({ reason: 'FieldValueInvalid', field: p.slice(0, p.indexOf(':')), body: p.slice(p.indexOf(':') + 2) })),
  };
}

/** A field of an object as field selectors read it (`metadata.name`, `involvedObject.kind`, `source`...). */
export function readSelectableField(obj: KubeObject, field: string): string {
  if (field === 'source') {
    const src = obj.source;
    return isRecord(src) ? str(src.component) : '';
  }
  return str(readJsonPath(obj, `.${field}`));
}

/** The ResourceDef of a CustomResourceDefinition (parsed YAML/JSON); its rules are compiled here. */
export function crdResource(crd: unknown): ResourceDef {
  if (!isRecord(crd) || crd.kind !== 'CustomResourceDefinition' || !isRecord(crd.spec)) {
    throw new Error('not a CustomResourceDefinition');
  }
  const spec = crd.spec;
  const names = spec.names as Record<string, unknown>;
  const versions = (spec.versions as Record<string, unknown>[]).filter((v) => v.served !== false);
  const storage = versions.find((v) => v.storage === true) ?? versions[0];
  if (!storage) throw new Error(`CRD ${str(isRecord(crd.metadata) ? crd.metadata.name : '')} serves no version`);
  const ordered = [storage, ...versions.filter((v) => v !== storage)];
  const schemas = new Map<string, StructuralSchema>();
  for (const v of ordered) {
    const s = isRecord(v.schema) ? (v.schema.openAPIV3Schema as SchemaProps | undefined) : undefined;
    schemas.set(str(v.name), new StructuralSchema(s ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }));
  }
  const columns = (Array.isArray(storage.additionalPrinterColumns) ? storage.additionalPrinterColumns : []) as Record<string, unknown>[];
  const kind = str(names.kind);
  return {
    group: str(spec.group),
    versions: ordered.map((v) => str(v.name)),
    plural: str(names.plural),
    singular: str(names.singular) || kind.toLowerCase(),
    kind,
    listKind: str(names.listKind) || `${kind}List`,
    shortNames: (names.shortNames as string[] | undefined) ?? [],
    categories: (names.categories as string[] | undefined) ?? [],
    namespaced: spec.scope !== 'Cluster',
    nameRule: 'subdomain',
    custom: true,
    schemas,
    statusSubresource: isRecord(storage.subresources) && storage.subresources.status !== undefined,
    tracksGeneration: true,
    allowUnconditionalUpdate: false,
    allowCreateOnUpdate: false,
    printerColumns: columns.map((c) => ({
      name: str(c.name),
      type: str(c.type) || 'string',
      format: typeof c.format === 'string' ? c.format : undefined,
      description: typeof c.description === 'string' ? c.description : undefined,
      priority: typeof c.priority === 'number' ? c.priority : undefined,
      jsonPath: str(c.jsonPath),
    })),
    fieldSelectors: [],
  };
}

/** Loads every CRD in a YAML file (one or more documents). */
export function loadCrdFile(path: string): ResourceDef[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  return docs.map((d) => d.toJS()).filter((d) => isRecord(d) && d.kind === 'CustomResourceDefinition').map(crdResource);
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/** `/api`: the legacy group's versions. */
export function apiVersions(serverAddress: string): object {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

/** `/apis/<group>`: an APIGroup document (without kind/apiVersion when it is an entry of APIGroupList). */
export function apiGroup(group: string, defs: ResourceDef[], standalone = true): object {
  const versions = [...new Set(defs.filter((d) => d.group === group).flatMap((d) => d.versions))];
  const preferred = defs.find((d) => d.group === group)!.versions[0]!;
  return {
    ...(standalone ? { kind: 'APIGroup', apiVersion: 'v1' } : {}),
    name: group,
    versions: versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v })),
    preferredVersion: { groupVersion: `${group}/${preferred}`, version: preferred },
  };
}

/** `/apis`: every named group. */
export function apiGroupList(defs: ResourceDef[]): object {
  const groups = [...new Set(defs.filter((d) => d.group).map((d) => d.group))];
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map((g) => apiGroup(g, defs, false)) };
}

/** `/apis/<group>/<version>` or `/api/v1`: the resources of one group version. */
export function apiResourceList(group: string, version: string, defs: ResourceDef[]): object {
  const resources = defs
    .filter((d) => d.group === group && d.versions.includes(version))
    .map((d) => {
      const r: Record<string, unknown> = {
        name: d.plural,
        singularName: d.singular,
        namespaced: d.namespaced,
        kind: d.kind,
        verbs: VERBS,
      };
      if (d.shortNames.length) r.shortNames = d.shortNames;
      if (d.categories.length) r.categories = d.categories;
      return r;
    });
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
}

/** Kubernetes' HumanDuration, the AGE column's spelling (`5s`, `3m20s`, `2d4h`). */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.floor(hours / 24) % 365;
    const y = Math.floor(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

const NAME_DESCRIPTION =
  'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names';

/** A meta.k8s.io/v1 Table, what `kubectl get` asks for, with the resource's printer columns. */
export function table(
  def: ResourceDef,
  objects: KubeObject[],
  opts: { includeObject: string; now: number; listMeta: Record<string, unknown> },
): object {
  const columnDefinitions = [
    { name: 'Name', type: 'string', format: 'name', description: NAME_DESCRIPTION, priority: 0 },
    ...def.printerColumns.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? '',
      description: c.description ?? '',
      priority: c.priority ?? 0,
    })),
  ];
  const rows = objects.map((o) => {
    const cells: unknown[] = [o.metadata.name];
    for (const c of def.printerColumns) {
      let v = c.value ? c.value(o) : c.jsonPath ? readJsonPath(o, c.jsonPath) : undefined;
      if (c.type === 'date' && typeof v === 'string') {
        const t = Date.parse(v);
        v = Number.isNaN(t) ? v : humanDuration(opts.now - t);
      }
      cells.push(v === undefined ? null : v);
    }
    const row: Record<string, unknown> = { cells };
    if (opts.includeObject === 'Object') row.object = o;
    else if (opts.includeObject !== 'None') {
      row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
    }
    return row;
  });
  return { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: opts.listMeta, columnDefinitions, rows };
}
