import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mappingSchema } from '../../config/schema.ts';
import type { Instance, KubeService, ServiceEntry, WorkloadEntry, WorkloadGroup } from '../model.ts';
import { loadCrdFile } from '../../test/fakes/kube/resources.ts';
import { validateObjectMeta } from '../../test/fakes/kube/metadata.ts';
import { serviceEntryProblems, validateService } from '../../test/fakes/kube/service-rules.ts';
import { deriveMeshServices, istioProtocol, mapInstances, plainEntry, type MeshServiceOptions } from './index.ts';

const RULES = mappingSchema.parse({ labels: { fromTags: { app: 'app' } } });
const CTX = { ownerId: 'prod', scopeKey: 'static:onprem', observedAt: '2025-01-01T00:00:00.000Z', namespaces: { global: ['*'] } };
const OPTIONS: MeshServiceOptions = { ownerId: 'prod', kind: 'service', workloadGroups: true, clusterDomain: 'cluster.local' };
const SELECTOR = (service: string) => ({ 'vm-mesh-sync.io/installation': 'prod', 'vm-mesh-sync.io/service': service });
const OWNED = { 'app.kubernetes.io/managed-by': 'vm-mesh-sync', 'vm-mesh-sync.io/owner': 'prod' };

const WORKLOAD_GROUP_SCHEMA = loadCrdFile(fileURLToPath(new URL('../../test/fixtures/istio-crds/workloadgroup-crd.yaml', import.meta.url)))[0]!.schemas!.get('v1')!;

let nextId = 0;
/** The entry of a running VM with these tags (mapped by the real rules). */
function vmEntry(tags: Record<string, string>, over: Partial<Instance> = {}): WorkloadEntry {
  const id = over.id ?? `vm-${++nextId}`;
  const instance: Instance = {
    provider: 'static',
    account: 'onprem',
    region: 'us-east-1',
    zone: 'us-east-1a',
    id,
    name: id,
    state: 'running',
    privateIPv4s: [`10.0.0.${nextId % 250}`],
    publicIPv4s: [],
    ipv6s: [],
    tags: { mesh: 'true', ...tags },
    observedAt: CTX.observedAt,
    ...over,
  };
  const { entries, skips } = mapInstances([instance], RULES, CTX);
  if (skips.length > 0) throw new Error(`${skips[0]!.code}: ${skips[0]!.reason}`);
  return entries[0]!;
}

/** Field errors a real API server gives for the Service, or problems of the ServiceEntry by Istio's rules. */
function serviceObjectProblems(obj: KubeService | ServiceEntry): string[] {
  const copy = structuredClone(obj) as unknown as Record<string, unknown>;
  const metaErrors = validateObjectMeta(copy.metadata as Record<string, unknown>, { namespaced: true, nameRule: "label" }).map((e) => `${e.field}: ${e.body}`);
  if (obj.kind === 'Service') return [...metaErrors, ...validateService(copy).map((e) => `${e.field}: ${e.body}`)];
  return [...metaErrors, ...serviceEntryProblems(copy)];
}

/** What the API server with Istio's WorkloadGroup CRD says about the group: pruned fields and errors (schema and CEL rules). */
function workloadGroupProblems(group: WorkloadGroup): string[] {
  const copy = structuredClone(group) as unknown as Record<string, unknown>;
  const { pruned, errors } = WORKLOAD_GROUP_SCHEMA.process(copy, undefined);
  const metaErrors = validateObjectMeta(copy.metadata as Record<string, unknown>, { namespaced: true, nameRule: "subdomain" });
  return [...pruned.map((p) => `${p}: pruned`), ...[...errors, ...metaErrors].map((e) => `${e.field}: ${e.body}`)];
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

describe('seed example: two postgres VMs tagged mesh-service=postgres', () => {
  const tags = { app: 'postgres', 'mesh-ports': 'postgres:5432', 'mesh-service-account': 'postgres-vm', 'mesh-service': 'postgres' };
  const a = vmEntry(tags, { id: 'pg-1' });
  const b = vmEntry(tags, { id: 'pg-2', zone: 'us-east-1b' });
  const derived = deriveMeshServices([a, b], OPTIONS);

  it("gives the guide's Service: port 5432 named postgres, a selector matching both entries", () => {
    expect(derived.services).toEqual([
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'postgres', namespace: 'default', labels: OWNED, annotations: { 'vm-mesh-sync.io/scope': 'mesh-services' } },
        spec: { type: 'ClusterIP', selector: SELECTOR('postgres'), ports: [{ name: 'postgres', port: 5432, protocol: 'TCP', targetPort: 5432 }] },
      },
    ]);
    const service = derived.services[0] as KubeService;
    for (const entry of [a, b]) expect(matches(service.spec.selector, entry.spec.labels)).toBe(true);
    expect(serviceObjectProblems(service)).toEqual([]);
    expect(derived.excluded).toEqual([]);
    expect(derived.problems).toEqual([]);
  });

  it('gives a WorkloadGroup with what both share, valid against the CRD and its CEL rules', () => {
    expect(derived.workloadGroups).toEqual([
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'WorkloadGroup',
        metadata: { name: 'postgres', namespace: 'default', labels: OWNED, annotations: { 'vm-mesh-sync.io/scope': 'mesh-services' } },
        spec: {
          metadata: { labels: { app: 'postgres', ...SELECTOR('postgres') } },
          template: { ports: { postgres: 5432 }, serviceAccount: 'postgres-vm' },
        },
      },
    ]);
    expect(workloadGroupProblems(derived.workloadGroups[0]!)).toEqual([]);
  });

  it('gives a ServiceEntry instead when asked: MESH_INTERNAL, STATIC, selecting both entries', () => {
    const { services } = deriveMeshServices([a, b], { ...OPTIONS, kind: 'service-entry' });
    expect(services).toEqual([
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'ServiceEntry',
        metadata: { name: 'postgres', namespace: 'default', labels: OWNED, annotations: { 'vm-mesh-sync.io/scope': 'mesh-services' } },
        spec: {
          hosts: ['postgres.default.svc.cluster.local'],
          location: 'MESH_INTERNAL',
          resolution: 'STATIC',
          ports: [{ number: 5432, name: 'postgres', targetPort: 5432 }],
          workloadSelector: { labels: SELECTOR('postgres') },
        },
      },
    ]);
    expect(serviceObjectProblems(services[0]!)).toEqual([]);
  });

  it('writes neither with kind off, and no WorkloadGroup when they are turned off', () => {
    const off = deriveMeshServices([a, b], { ...OPTIONS, kind: 'off', workloadGroups: false });
    expect(off).toEqual({ services: [], workloadGroups: [], excluded: [], problems: [] });
  });
});

describe('ports of a service', () => {
  const cases: Array<{
    name: string;
    /** Each VM's ports tag. */
    vms: string[];
    /** The Service's ports as name:number/transport. */
    ports: string[];
    /** Indexes of the VMs excluded, and a part of the first one's reason. */
    excluded?: number[];
    reason?: string;
  }> = [
    { name: 'union of ports that agree', vms: ['postgres:5432', 'postgres:5432,metrics:9187'], ports: ['postgres:5432/TCP', 'metrics:9187/TCP'] },
    { name: 'majority wins a name', vms: ['pg:5432', 'pg:5432', 'pg:5433'], ports: ['pg:5432/TCP'], excluded: [2], reason: 'its port pg:5433 disagrees with pg:5432, which 2 of the 3 VMs of service db in default use' },
    { name: 'majority wins whatever the listing order', vms: ['pg:5433', 'pg:5432', 'pg:5432'], ports: ['pg:5432/TCP'], excluded: [0] },
    { name: 'a tie goes to the smaller port number', vms: ['pg:5433', 'pg:5432'], ports: ['pg:5432/TCP'], excluded: [0] },
    { name: 'a tie on numbers goes to the smaller name', vms: ['pgb:5432', 'pga:5432'], ports: ['pga:5432/TCP'], excluded: [0], reason: 'gives the number 5432 another name than pga' },
    { name: 'the whole port set counts, not single ports', vms: ['a:1,b:3', 'b:2,c:1'], ports: ['a:1/TCP', 'b:3/TCP'], excluded: [1] },
    { name: 'one VM giving a number two names', vms: ['http:8080,web:8080', 'http:8080,web:8080', 'http:8080'], ports: ['http:8080/TCP'], excluded: [0, 1], reason: 'its ports http:8080 and web:8080 share a number' },
    { name: 'a VM without ports agrees with any', vms: ['', 'http:8080'], ports: ['http:8080/TCP'] },
    { name: 'UDP and TCP may share a number', vms: ['dns:53,udp-dns:53'], ports: ['dns:53/TCP', 'udp-dns:53/UDP'] },
    { name: 'ports ordered by number', vms: ['http:8080,grpc:9090,admin:80'], ports: ['admin:80/TCP', 'http:8080/TCP', 'grpc:9090/TCP'] },
  ];

  it.each(cases)('$name', ({ vms, ports, excluded = [], reason }) => {
    const entries = vms.map((p, i) => vmEntry({ 'mesh-service': 'db', 'mesh-ports': p }, { id: `db-${i}` }));
    const derived = deriveMeshServices(entries, OPTIONS);
    const service = derived.services[0] as KubeService;
    expect(service.spec.ports.map((p) => `${p.name}:${p.port}/${p.protocol}`)).toEqual(ports);
    expect(serviceObjectProblems(service)).toEqual([]);
    expect(derived.excluded.map((x) => x.entry.metadata.name)).toEqual(excluded.map((i) => `static-db-${i}`));
    for (const x of derived.excluded) expect(x.code).toBe('VMS_SKIP_SERVICE_PORT_CONFLICT');
    if (reason !== undefined) expect(derived.excluded[0]!.reason).toContain(reason);
    // The WorkloadGroup describes only the VMs kept.
    const group = derived.workloadGroups[0]!;
    expect(workloadGroupProblems(group)).toEqual([]);
    for (const [name, number] of Object.entries(group.spec.template.ports ?? {})) expect(service.spec.ports).toContainEqual(expect.objectContaining({ name, port: number }));
  });

  it('gives no Service to a service without ports, and says why; its WorkloadGroup is still written', () => {
    const derived = deriveMeshServices([vmEntry({ 'mesh-service': 'batch' })], OPTIONS);
    expect(derived.services).toEqual([]);
    expect(derived.problems).toEqual([
      {
        namespace: 'default',
        service: 'batch',
        code: 'VMS_SKIP_SERVICE_NO_PORTS',
        reason: 'no VM of service batch in default has a port, and a Service needs one; tag its VMs with mesh-ports (e.g. postgres:5432), or set mapping.ports.default',
      },
    ]);
    expect(derived.workloadGroups.map((g) => g.metadata.name)).toEqual(['batch']);
    expect(workloadGroupProblems(derived.workloadGroups[0]!)).toEqual([]);
  });
});

describe('Istio protocol from a port name', () => {
  const cases: Array<[string, string | undefined]> = [
    ['http', 'http'],
    ['http-web', 'http'],
    ['HTTP2', 'http2'],
    ['https', 'https'],
    ['grpc', 'grpc'],
    ['grpc-web', 'grpc-web'],
    ['grpc-web-api', 'grpc-web'],
    ['grpc-api', 'grpc'],
    ['tcp-5432', 'tcp'],
    ['tls-ldap', 'tls'],
    ['mongo', 'mongo'],
    ['mysql-primary', 'mysql'],
    ['redis', 'redis'],
    ['udp-dns', 'udp'],
    ['postgres', undefined],
    ['httpx', undefined],
    ['web-http', undefined],
  ];
  it.each(cases)('%s → %s', (name, protocol) => {
    expect(istioProtocol(name)).toBe(protocol);
  });

  it('carries the protocol as appProtocol on the Service and as protocol on the ServiceEntry', () => {
    const e = vmEntry({ 'mesh-service': 'web', 'mesh-ports': 'http-web:8080,grpc:9090,postgres:5432' });
    const [service] = deriveMeshServices([e], OPTIONS).services as [KubeService];
    expect(service.spec.ports.map((p) => p.appProtocol)).toEqual([undefined, 'http', 'grpc']);
    const [entry] = deriveMeshServices([e], { ...OPTIONS, kind: 'service-entry' }).services as [ServiceEntry];
    expect(entry.spec.ports.map((p) => p.protocol)).toEqual([undefined, 'HTTP', 'GRPC']);
  });
});

describe('WorkloadGroup', () => {
  it('keeps only the labels, ports, service account and network every VM shares', () => {
    const a = vmEntry({ 'mesh-service': 'api', app: 'api', 'mesh-label-tier': 'web', 'mesh-ports': 'http:8080,admin:9000', 'mesh-service-account': 'api', 'mesh-network': 'east' });
    const b = vmEntry({ 'mesh-service': 'api', app: 'api', 'mesh-label-tier': 'edge', 'mesh-ports': 'http:8080', 'mesh-service-account': 'api-b', 'mesh-network': 'east' });
    const [group] = deriveMeshServices([a, b], OPTIONS).workloadGroups;
    expect(group!.spec).toEqual({ metadata: { labels: { app: 'api', ...SELECTOR('api') } }, template: { ports: { http: 8080 }, network: 'east' } });
    expect(workloadGroupProblems(group!)).toEqual([]);
  });

  it.each([
    ['every VM has the same probe', ['tcp:5432', 'tcp-5432'], { tcpSocket: { port: 5432 } }],
    ['one VM', ['http:8080/healthz'], { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' } }],
    ['the VMs disagree', ['tcp:5432', 'http:8080/healthz'], undefined],
    ['one VM has none', ['tcp:5432', undefined], undefined],
    ['none has one', [undefined, undefined], undefined],
  ])('gets the health probe its VMs share: %s', (_name, probes, expected) => {
    const entries = probes.map((p) => vmEntry({ 'mesh-service': 'db', 'mesh-ports': 'pg:5432', ...(p === undefined ? {} : { 'mesh-health': p }) }));
    const [group] = deriveMeshServices(entries, OPTIONS).workloadGroups;
    expect(group!.spec.probe).toEqual(expected);
    expect(workloadGroupProblems(group!)).toEqual([]);
  });
});

describe('which entries count', () => {
  it('groups by namespace and service, ignoring entries without a service or of another owner', () => {
    const entries = [
      vmEntry({ 'mesh-service': 'pg', 'mesh-ports': 'pg:5432', 'mesh-namespace': 'db' }),
      vmEntry({ 'mesh-service': 'pg', 'mesh-ports': 'pg:5432', 'mesh-namespace': 'default' }),
      vmEntry({ 'mesh-ports': 'pg:5432' }),
    ];
    const foreign = structuredClone(plainEntry(entries[0]!));
    foreign.metadata.name = 'other';
    foreign.spec.labels!['vm-mesh-sync.io/installation'] = 'staging';
    foreign.spec.ports = { pg: 6543 };
    const derived = deriveMeshServices([...entries, foreign], OPTIONS);
    expect(derived.services.map((s) => `${s.metadata.namespace}/${s.metadata.name}`)).toEqual(['db/pg', 'default/pg']);
    expect(derived.excluded).toEqual([]);
  });
});

describe('properties', () => {
  const portName = fc.constantFrom('http', 'grpc', 'pg', 'tcp-a', 'udp-dns', 'metrics', 'tls');
  const portNumber = fc.constantFrom(53, 80, 5432, 8080, 9090);
  const vm = fc.record({
    service: fc.constantFrom('a', 'b', 'c'),
    namespace: fc.constantFrom('default', 'db'),
    ports: fc.dictionary(portName, portNumber, { maxKeys: 4 }),
  });

  it('every object is valid, kept entries are selected with their ports, and listing order does not matter', () => {
    fc.assert(
      fc.property(fc.array(vm, { minLength: 1, maxLength: 12 }), fc.boolean(), (vms, entryKind) => {
        const entries = vms.map((v, i) =>
          vmEntry(
            { 'mesh-service': v.service, 'mesh-namespace': v.namespace, 'mesh-ports': Object.entries(v.ports).map(([n, p]) => `${n}:${p}`).join(',') },
            { id: `p-${i}` },
          ),
        );
        const options = { ...OPTIONS, kind: entryKind ? ('service-entry' as const) : ('service' as const) };
        const derived = deriveMeshServices(entries, options);
        for (const s of derived.services) expect(serviceObjectProblems(s)).toEqual([]);
        for (const g of derived.workloadGroups) expect(workloadGroupProblems(g)).toEqual([]);
        const excluded = new Set(derived.excluded.map((x) => x.entry));
        for (const e of entries) {
          if (excluded.has(e)) continue;
          const service = derived.services.find((s) => s.metadata.namespace === e.metadata.namespace && s.metadata.name === e.spec.labels!['vm-mesh-sync.io/service']);
          if (Object.keys(e.spec.ports ?? {}).length === 0 && service === undefined) continue;
          expect(service).toBeDefined();
          for (const [name, number] of Object.entries(e.spec.ports ?? {})) {
            const ports = service!.kind === 'Service' ? service!.spec.ports.map((p) => [p.name, p.port]) : service!.spec.ports.map((p) => [p.name, p.number]);
            expect(ports).toContainEqual([name, number]);
          }
        }
        expect(deriveMeshServices([...entries].reverse(), options)).toEqual(derived);
      }),
      { numRuns: 150 },
    );
  });
});
