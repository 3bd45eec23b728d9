// A fake Azure Resource Manager endpoint on 127.0.0.1 over HTTPS that the real Azure SDK clients talk
// to: Resource Graph's query API, and the Compute and Network reads vm-mesh-sync makes (VMs listed
// with their status, VM by name with its instance view, network interfaces and public IPs per
// resource group and by name). Answers are ARM's JSON wire format; errors are ARM error bodies
// `{ error: { code, message } }`. It pages with `nextLink` (its own address) and `$skipToken`,
// throttles with 429 and Retry-After on demand, fails with 5xx on demand, and records every request.
//
// Resource Graph queries are not parsed as KQL. The fake checks that the query selects VMs by the
// tag, joins network interfaces and public IPs by lowercased id, and answers the rows that query
// defines (providers/azure/graph.ts): one per VM × interface × IP configuration.
import https from 'node:https';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestCertificate } from './tls.ts';

/** The subscription a fake answers for when a test names none. */
export const DEFAULT_SUBSCRIPTION = '1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b';
/** The resource group of seeded resources when a test names none. */
export const DEFAULT_RESOURCE_GROUP = 'rg-mesh';
/** The virtual network of seeded addresses when a test names none. */
export const DEFAULT_VNET = 'vnet-mesh';

/** What a request was for, to aim faults and to read the record. */
export type ArmRequestKind = 'graph' | 'list-vms' | 'get-vm' | 'list-nics' | 'get-nic' | 'list-public-ips' | 'get-public-ip' | 'unknown';

/** One IP configuration of a seeded network interface. */
export interface FakeIpConfig {
  /** Default `ipconfig<n>`. */
  name?: string;
  primary?: boolean;
  privateIp?: string;
  /** Set for a prefix assignment (`10.0.0.16` with 28 is 10.0.0.16/28). */
  prefixLength?: number;
  /** `vnet/subnet` in the interface's resource group, or a full subnet id. Default `vnet-mesh/default`. */
  subnet?: string;
  /** A public IP resource associated with this configuration. */
  publicIp?: { name?: string; address?: string; resourceGroup?: string };
}

/** One network interface of a seeded VM. */
export interface FakeNic {
  /** Default `<vm>-nic<n>`. */
  name?: string;
  /** Default: the VM's. */
  resourceGroup?: string;
  /** The VM's primary flag for this interface (absent: not stated). */
  primary?: boolean;
  /** The interface's own primary flag (absent: not stated). */
  nicPrimary?: boolean;
  ipConfigs: FakeIpConfig[];
}

/** A VM as a test describes it; everything but the name has a default. */
export interface FakeVm {
  name: string;
  subscription?: string;
  resourceGroup?: string;
  /** Default westeurope. */
  location?: string;
  /** Default none (a regional VM). */
  zones?: string[];
  tags?: Record<string, string>;
  /** Default `PowerState/running`; null: no power state reported. */
  powerState?: string | null;
  /** Shorthand for one interface with one configuration. */
  privateIp?: string;
  publicIp?: string;
  /** Default: one interface from privateIp / publicIp (none when both are absent). */
  nics?: FakeNic[];
}

/** One request as the fake received it. */
export interface RecordedArmRequest {
  method: string;
  /** The path without the query. */
  path: string;
  kind: ArmRequestKind;
  query: Record<string, string>;
  subscription: string | undefined;
  resourceGroup: string | undefined;
  /** The parsed JSON body (Resource Graph). */
  body: unknown;
  authorization: string | undefined;
  /** The status the fake answered with (0 while held open). */
  status: number;
}

/** Which requests a fault applies to. */
export interface FaultTarget {
  kind?: ArmRequestKind;
  subscription?: string;
  resourceGroup?: string;
  /** Only requests for a second or later page. */
  laterPages?: boolean;
}

/** An error answer. */
export interface ArmFault {
  status: number;
  /** Default by status: TooManyRequests, InternalServerError, AuthorizationFailed, … */
  code?: string;
  message?: string;
  /** The Retry-After header (seconds); by default `0` on a 429, absent otherwise; null: never. */
  retryAfter?: string | null;
  /** More response headers (Resource Graph's `x-ms-user-quota-resets-after`). */
  headers?: Record<string, string>;
}

/** How a fake is started. */
export interface FakeArmOptions {
  tls: TestCertificate;
  /** Subscriptions that exist besides those of seeded VMs. Default: DEFAULT_SUBSCRIPTION. */
  subscriptions?: string[];
  /** Items per page of ARM list answers. Default 100. */
  armPageSize?: number;
  vms?: FakeVm[];
}

interface Stored {
  vms: Map<string, Record<string, unknown>>;
  nics: Map<string, Record<string, unknown>>;
  publicIps: Map<string, Record<string, unknown>>;
  powerStates: Map<string, string | null>;
}

class ArmError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(status: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

const DEFAULT_CODES: Record<number, [string, string]> = {
  400: ['BadRequest', 'The request is not valid.'],
  401: ['AuthenticationFailed', 'Authentication failed.'],
  403: ['AuthorizationFailed', 'The client does not have authorization to perform this action over this scope or the scope is invalid.'],
  429: ['TooManyRequests', 'The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:05:00.'],
  500: ['InternalServerError', 'Encountered internal server error.'],
  503: ['ServiceUnavailable', 'The service is temporarily unavailable.'],
};

/** A running fake ARM endpoint. */
export class FakeArm {
  readonly url: string;
  readonly requests: RecordedArmRequest[] = [];
  /** When set, Resource Graph answers at most this many rows, marked truncated and without a skip token. */
  truncateAfter: number | undefined;
  readonly #store: Stored = { vms: new Map(), nics: new Map(), publicIps: new Map(), powerStates: new Map() };
  readonly #subscriptions: Set<string>;
  readonly #armPageSize: number;
  readonly #close: () => Promise<void>;
  readonly #tokens = new Map<string, { offset: number; context: string }>();
  #nextFaults: Array<{ target: FaultTarget; fault: ArmFault }> = [];
  #standing: Array<{ target: FaultTarget; fault: ArmFault }> = [];
  #hanging: FaultTarget[] = [];
  #tokenCounter = 0;
  /** Subscriptions answered with another subscription's resources: asked → answering, lowercased. */
  readonly #answeredAs = new Map<string, string>();
  /** Bumped by every change of the store, so that the rows of a Resource Graph query can be kept between its pages. */
  #version = 0;
  /** The rows of the last Resource Graph query, while nothing changed: a 100,000-VM query is not joined again for each of its pages. */
  #rows: { key: string; version: number; rows: Array<Record<string, unknown>> } | undefined;

  constructor(url: string, close: () => Promise<void>, options: FakeArmOptions) {
    this.url = url;
    this.#close = close;
    this.#subscriptions = new Set((options.subscriptions ?? [DEFAULT_SUBSCRIPTION]).map((s) => s.toLowerCase()));
    this.#armPageSize = options.armPageSize ?? 100;
    for (const vm of options.vms ?? []) this.putVm(vm);
  }

  /** Adds or replaces a VM with its interfaces and public IPs; returns the VM's resource id as ARM spells it. */
  putVm(seed: FakeVm): string {
    const subscription = (seed.subscription ?? DEFAULT_SUBSCRIPTION).toLowerCase();
    this.#subscriptions.add(subscription);
    const group = seed.resourceGroup ?? DEFAULT_RESOURCE_GROUP;
    const vmId = `/subscriptions/${subscription}/resourceGroups/${group}/providers/Microsoft.Compute/virtualMachines/${seed.name}`;
    this.removeVm(vmId);
    const location = seed.location ?? 'westeurope';
    const nics = seed.nics ?? (seed.privateIp === undefined && seed.publicIp === undefined ? [] : [{ ipConfigs: [{ ...(seed.privateIp === undefined ? {} : { privateIp: seed.privateIp }), ...(seed.publicIp === undefined ? {} : { publicIp: { address: seed.publicIp } }) }] }]);

    const refs = nics.map((nic, n) => {
      const nicGroup = nic.resourceGroup ?? group;
      const nicName = nic.name ?? `${seed.name}-nic${n}`;
      const nicId = `/subscriptions/${subscription}/resourceGroups/${nicGroup}/providers/Microsoft.Network/networkInterfaces/${nicName}`;
      const ipConfigurations = nic.ipConfigs.map((c, i) => {
        const name = c.name ?? `ipconfig${i + 1}`;
        const configId = `${nicId}/ipConfigurations/${name}`;
        const subnet = c.subnet ?? `${DEFAULT_VNET}/default`;
        const subnetId = subnet.startsWith('/')
          ? subnet
          : `/subscriptions/${subscription}/resourceGroups/${nicGroup}/providers/Microsoft.Network/virtualNetworks/${subnet.split('/')[0]}/subnets/${subnet.split('/')[1] ?? 'default'}`;
        const properties: Record<string, unknown> = {
          provisioningState: 'Succeeded',
          privateIPAllocationMethod: 'Dynamic',
          subnet: { id: subnetId },
          primary: c.primary ?? i === 0,
        };
        if (c.privateIp !== undefined) {
          properties.privateIPAddress = c.privateIp;
          properties.privateIPAddressVersion = c.privateIp.includes(':') ? 'IPv6' : 'IPv4';
        }
        if (c.prefixLength !== undefined) properties.privateIPAddressPrefixLength = c.prefixLength;
        if (c.publicIp) {
          const ipGroup = c.publicIp.resourceGroup ?? nicGroup;
          const ipName = c.publicIp.name ?? `${seed.name}-ip${n}${i}`;
          const ipId = `/subscriptions/${subscription}/resourceGroups/${ipGroup}/providers/Microsoft.Network/publicIPAddresses/${ipName}`;
          properties.publicIPAddress = { id: ipId };
          const ipProperties: Record<string, unknown> = {
            provisioningState: 'Succeeded',
            publicIPAllocationMethod: 'Static',
            publicIPAddressVersion: c.publicIp.address?.includes(':') ? 'IPv6' : 'IPv4',
            ipConfiguration: { id: configId },
          };
          if (c.publicIp.address !== undefined) ipProperties.ipAddress = c.publicIp.address;
          this.#store.publicIps.set(ipId.toLowerCase(), { id: ipId, name: ipName, type: 'Microsoft.Network/publicIPAddresses', location, sku: { name: 'Standard' }, properties: ipProperties });
        }
        return { id: configId, name, type: 'Microsoft.Network/networkInterfaces/ipConfigurations', properties };
      });
      const nicProperties: Record<string, unknown> = { provisioningState: 'Succeeded', virtualMachine: { id: vmId }, ipConfigurations, macAddress: '00-0D-3A-00-00-01' };
      if (nic.nicPrimary !== undefined) nicProperties.primary = nic.nicPrimary;
      this.#store.nics.set(nicId.toLowerCase(), { id: nicId, name: nicName, type: 'Microsoft.Network/networkInterfaces', location, properties: nicProperties });
      // ARM spells a VM's interface references with the resource group as the VM was created, often in capitals.
      const refId = nicId.replace(`/resourceGroups/${nicGroup}/`, `/resourceGroups/${nicGroup.toUpperCase()}/`);
      return nic.primary === undefined ? { id: refId } : { id: refId, properties: { primary: nic.primary } };
    });

    const vm: Record<string, unknown> = {
      id: vmId,
      name: seed.name,
      type: 'Microsoft.Compute/virtualMachines',
      location,
      tags: { ...seed.tags },
      properties: {
        vmId: fakeGuid(vmId),
        hardwareProfile: { vmSize: 'Standard_D2s_v5' },
        networkProfile: { networkInterfaces: refs },
        provisioningState: 'Succeeded',
      },
    };
    if (seed.zones) vm.zones = [...seed.zones];
    this.#store.vms.set(vmId.toLowerCase(), vm);
    this.#store.powerStates.set(vmId.toLowerCase(), seed.powerState === undefined ? 'PowerState/running' : seed.powerState);
    this.#version++;
    return vmId;
  }

  /** Removes a VM; its interfaces and public IPs stay, as they do in Azure unless deleted with it. */
  removeVm(id: string): void {
    this.#store.vms.delete(id.toLowerCase());
    this.#store.powerStates.delete(id.toLowerCase());
    this.#version++;
  }

  /** Removes a network interface (a VM that still refers to it then points at nothing). */
  removeNic(id: string): void {
    this.#store.nics.delete(id.toLowerCase());
    this.#version++;
  }

  /** The resource ids of a VM's interfaces, as the interfaces spell them. */
  nicIdsOf(vmId: string): string[] {
    const vm = this.#store.vms.get(vmId.toLowerCase());
    const refs = ((vm?.properties as { networkProfile?: { networkInterfaces?: Array<{ id: string }> } })?.networkProfile?.networkInterfaces ?? []).map((r) => r.id.toLowerCase());
    return refs.map((r) => (this.#store.nics.get(r)?.id as string | undefined) ?? r);
  }

  /** Replaces a VM's tags. */
  setTags(vmId: string, tags: Record<string, string>): void {
    const vm = this.#store.vms.get(vmId.toLowerCase());
    if (!vm) throw new Error(`fake ARM has no VM ${vmId}`);
    vm.tags = { ...tags };
    this.#version++;
  }

  /** Sets a VM's power state code (`PowerState/deallocated`, …); null: none reported. */
  setPowerState(vmId: string, code: string | null): void {
    if (!this.#store.vms.has(vmId.toLowerCase())) throw new Error(`fake ARM has no VM ${vmId}`);
    this.#store.powerStates.set(vmId.toLowerCase(), code);
    this.#version++;
  }

  /**
   * Requests for subscription `asked` (by path or in a Resource Graph body) are answered with
   * subscription `answering`'s resources, as an endpoint or proxy that routes to the wrong
   * subscription would.
   */
  answerAs(asked: string, answering: string): void {
    this.#answeredAs.set(asked.toLowerCase(), answering.toLowerCase());
    this.#version++;
  }

  /** The next `count` requests matching `target` fail with `fault`; then it answers normally again. */
  failNext(count: number, fault: ArmFault, target: FaultTarget = {}): void {
    for (let i = 0; i < count; i++) this.#nextFaults.push({ target, fault });
  }

  /** Every request matching `target` fails with `fault` until `heal()`. */
  failAlways(target: FaultTarget, fault: ArmFault): void {
    this.#standing.push({ target, fault });
  }

  /** Requests matching `target` are held open and never answered, until `heal()`. */
  hang(target: FaultTarget): void {
    this.#hanging.push(target);
  }

  /** Ends every fault. */
  heal(): void {
    this.#nextFaults = [];
    this.#standing = [];
    this.#hanging = [];
  }

  /** Requests of one kind, in order. */
  requestsOf(kind: ArmRequestKind): RecordedArmRequest[] {
    return this.requests.filter((r) => r.kind === kind);
  }

  /** Stops the server and drops held-open requests. */
  close(): Promise<void> {
    return this.#close();
  }

  /** Serves one HTTP request. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const text = await readBody(req);
    const route = routeOf(req.method ?? 'GET', url.pathname);
    const record: RecordedArmRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      kind: route.kind,
      query: Object.fromEntries(url.searchParams),
      subscription: route.subscription,
      resourceGroup: route.resourceGroup,
      body: undefined,
      authorization: typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined,
      status: 0,
    };
    this.requests.push(record);
    if (this.#hanging.some((t) => matches(t, record))) return;
    let status = 200;
    let payload: unknown;
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'x-ms-request-id': fakeGuid(String(this.requests.length)) };
    try {
      if (text !== '') {
        try {
          record.body = JSON.parse(text) as unknown;
        } catch {
          throw new ArmError(400, 'InvalidRequestContent', 'The request content was invalid and could not be deserialized.');
        }
      }
      // A Resource Graph request names its subscriptions in the body; one of them counts as the request's.
      const named = (record.body as { subscriptions?: unknown } | undefined)?.subscriptions;
      if (route.kind === 'graph' && Array.isArray(named) && named.length === 1) record.subscription = String(named[0]).toLowerCase();
      payload = this.#answer(route, url, record);
    } catch (err) {
      if (!(err instanceof ArmError)) throw err;
      status = err.status;
      payload = { error: { code: err.code, message: err.message } };
      Object.assign(headers, err.headers);
    }
    record.status = status;
    res.writeHead(status, headers);
    res.end(JSON.stringify(payload));
  }

  #answer(route: Route, url: URL, record: RecordedArmRequest): unknown {
    if (!record.authorization || !/^Bearer \S+$/.test(record.authorization)) {
      throw new ArmError(401, 'AuthenticationFailed', 'Authentication failed. The Authorization header is missing.');
    }
    if (!url.searchParams.get('api-version')) {
      throw new ArmError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
    }
    const next = this.#nextFaults.findIndex((f) => matches(f.target, record));
    const fault = next >= 0 ? this.#nextFaults.splice(next, 1)[0]!.fault : this.#standing.find((f) => matches(f.target, record))?.fault;
    if (fault) {
      const [code, message] = DEFAULT_CODES[fault.status] ?? ['Error', 'The request failed.'];
      const retryAfter = fault.retryAfter === undefined ? (fault.status === 429 ? '0' : undefined) : fault.retryAfter;
      throw new ArmError(fault.status, fault.code ?? code, fault.message ?? message, { ...(retryAfter === null || retryAfter === undefined ? {} : { 'retry-after': retryAfter }), ...fault.headers });
    }
    if (route.kind === 'unknown') throw new ArmError(404, 'InvalidResourceType', `The resource type could not be found for path '${url.pathname}'.`);
    if (route.kind === 'graph') return this.#graph(record);

    const subscription = this.#answeredAs.get(route.subscription!) ?? route.subscription!;
    if (!this.#subscriptions.has(subscription)) throw new ArmError(404, 'SubscriptionNotFound', `The subscription '${subscription}' could not be found.`);
    const group = route.resourceGroup;
    if (group !== undefined && !this.#groupExists(subscription, group)) {
      throw new ArmError(404, 'ResourceGroupNotFound', `Resource group '${group}' could not be found.`);
    }
    const inGroup = (id: string) => id.startsWith(`/subscriptions/${subscription}/resourcegroups/${group}/`);
    switch (route.kind) {
      case 'list-vms': {
        const statusOnly = url.searchParams.get('statusOnly') === 'true';
        const all = [...this.#store.vms.entries()].filter(([id]) => id.startsWith(`/subscriptions/${subscription}/`));
        return this.#page(url, all.map(([id, vm]) => (statusOnly ? this.#withInstanceView(id, vm) : vm)));
      }
      case 'get-vm': {
        const id = `/subscriptions/${subscription}/resourcegroups/${group}/providers/microsoft.compute/virtualmachines/${route.name}`;
        const vm = this.#store.vms.get(id);
        if (!vm) throw notFound('Microsoft.Compute/virtualMachines', route.name!, group!);
        return url.searchParams.get('$expand') === 'instanceView' ? this.#withInstanceView(id, vm) : vm;
      }
      case 'list-nics':
        return this.#page(url, [...this.#store.nics.entries()].filter(([id]) => inGroup(id)).map(([, nic]) => nic));
      case 'get-nic': {
        const nic = this.#store.nics.get(`/subscriptions/${subscription}/resourcegroups/${group}/providers/microsoft.network/networkinterfaces/${route.name}`);
        if (!nic) throw notFound('Microsoft.Network/networkInterfaces', route.name!, group!);
        return nic;
      }
      case 'list-public-ips':
        return this.#page(url, [...this.#store.publicIps.entries()].filter(([id]) => inGroup(id)).map(([, ip]) => ip));
      case 'get-public-ip': {
        const ip = this.#store.publicIps.get(`/subscriptions/${subscription}/resourcegroups/${group}/providers/microsoft.network/publicipaddresses/${route.name}`);
        if (!ip) throw notFound('Microsoft.Network/publicIPAddresses', route.name!, group!);
        return ip;
      }
    }
  }

  // ARM pages with an opaque $skiptoken inside a nextLink that carries the fake's own address.
  #page(url: URL, items: unknown[]): { value: unknown[]; nextLink?: string } {
    const context = `${url.pathname.toLowerCase()}?${url.searchParams.get('statusOnly') ?? ''}`;
    let offset = 0;
    const token = url.searchParams.get('$skiptoken');
    if (token !== null) {
      const known = this.#tokens.get(token);
      if (!known || known.context !== context) throw new ArmError(400, 'InvalidSkipToken', 'The skip token is not valid.');
      offset = known.offset;
    }
    const value = items.slice(offset, offset + this.#armPageSize);
    if (offset + this.#armPageSize >= items.length) return { value };
    const next = this.#newToken(offset + this.#armPageSize, context);
    const link = new URL(url.pathname, this.url);
    for (const [k, v] of url.searchParams) if (k !== '$skiptoken') link.searchParams.set(k, v);
    link.searchParams.set('$skiptoken', next);
    return { value, nextLink: link.toString() };
  }

  #graph(record: RecordedArmRequest): unknown {
    const body = record.body as { subscriptions?: unknown; query?: unknown; options?: Record<string, unknown> } | undefined;
    if (!body || typeof body.query !== 'string') throw new ArmError(400, 'BadRequest', 'The request body must carry a "query" string.');
    const subscriptions = Array.isArray(body.subscriptions) ? body.subscriptions.map((s) => String(s).toLowerCase()).map((s) => this.#answeredAs.get(s) ?? s) : [];
    if (subscriptions.length === 0) throw new ArmError(400, 'BadRequest', 'This fake needs the subscriptions to query in the request body.');
    const denied = subscriptions.find((s) => !this.#subscriptions.has(s));
    if (denied) throw new ArmError(403, 'AuthorizationFailed', `The client does not have authorization to perform action 'Microsoft.ResourceGraph/resources/read' over scope '/subscriptions/${denied}'.`);
    const options = body.options ?? {};
    const format = options.resultFormat ?? 'objectArray';
    if (format !== 'objectArray') throw new ArmError(400, 'BadRequest', `This fake answers resultFormat objectArray only, not ${String(format)}.`);
    const top = options.$top === undefined ? 100 : Number(options.$top);
    if (!Number.isInteger(top) || top < 1 || top > 1000) throw new ArmError(400, 'BadRequest', `$top must be between 1 and 1000, not ${String(options.$top)}.`);
    const tag = checkDiscoveryQuery(body.query);

    const rows = this.#graphRows(subscriptions, tag);
    const context = JSON.stringify([body.query, subscriptions]);
    let offset = 0;
    if (typeof options.$skipToken === 'string') {
      const known = this.#tokens.get(options.$skipToken);
      if (!known || known.context !== context) throw new ArmError(400, 'BadRequest', 'The $skipToken does not belong to this query.');
      offset = known.offset;
    }
    if (this.truncateAfter !== undefined && rows.length > this.truncateAfter) {
      const data = rows.slice(0, this.truncateAfter);
      return { totalRecords: rows.length, count: data.length, data, facets: [], resultTruncated: 'true' };
    }
    const data = rows.slice(offset, offset + top);
    const answer: Record<string, unknown> = { totalRecords: rows.length, count: data.length, data, facets: [], resultTruncated: 'false' };
    if (offset + top < rows.length) answer.$skipToken = this.#newToken(offset + top, context);
    return answer;
  }

  // The rows of providers/azure/graph.ts's discovery query: VM × interface × IP configuration, joined by lowercased id.
  #graphRows(subscriptions: string[], tag: string): Array<Record<string, unknown>> {
    const key = JSON.stringify([subscriptions, tag]);
    if (this.#rows?.key === key && this.#rows.version === this.#version) return this.#rows.rows;
    const rows = this.#joinRows(subscriptions, tag);
    this.#rows = { key, version: this.#version, rows };
    return rows;
  }

  #joinRows(subscriptions: string[], tag: string): Array<Record<string, unknown>> {
    const rows: Array<Record<string, unknown>> = [];
    const vms = [...this.#store.vms.values()]
      .filter((vm) => subscriptions.some((s) => String(vm.id).toLowerCase().startsWith(`/subscriptions/${s}/`)))
      .filter((vm) => Object.hasOwn(vm.tags as object, tag))
      .sort((a, b) => (String(a.id) < String(b.id) ? -1 : 1));
    for (const vm of vms) {
      const properties = vm.properties as { networkProfile: { networkInterfaces: Array<{ id: string; properties?: { primary?: boolean } }> } };
      const base = {
        id: vm.id,
        name: vm.name,
        location: vm.location,
        zones: vm.zones ?? null,
        tags: vm.tags,
        powerState: this.#store.powerStates.get(String(vm.id).toLowerCase()) ?? '',
      };
      for (const ref of properties.networkProfile.networkInterfaces) {
        const nicKey = ref.id.toLowerCase();
        const left = { ...base, nicKey, nicRefPrimary: ref.properties?.primary ?? null };
        const nic = this.#store.nics.get(nicKey);
        if (!nic) {
          rows.push({ ...left, nicId: null, nicPrimary: null, ipName: '', ipPrimary: null, privateIp: '', privatePrefixLength: null, subnetId: '', publicIp: '' });
          continue;
        }
        const nicProperties = nic.properties as { primary?: boolean; ipConfigurations: Array<{ name: string; properties: Record<string, unknown> }> };
        for (const config of nicProperties.ipConfigurations) {
          const p = config.properties as {
            primary?: boolean;
            privateIPAddress?: string;
            privateIPAddressPrefixLength?: number;
            subnet?: { id: string };
            publicIPAddress?: { id: string };
          };
          const publicIp = p.publicIPAddress ? this.#store.publicIps.get(p.publicIPAddress.id.toLowerCase()) : undefined;
          rows.push({
            ...left,
            nicId: nic.id,
            nicPrimary: nicProperties.primary ?? null,
            ipName: config.name,
            ipPrimary: p.primary ?? null,
            privateIp: p.privateIPAddress ?? '',
            privatePrefixLength: p.privateIPAddressPrefixLength ?? null,
            subnetId: p.subnet?.id ?? '',
            publicIp: String((publicIp?.properties as { ipAddress?: string } | undefined)?.ipAddress ?? ''),
          });
        }
      }
    }
    return rows;
  }

  #withInstanceView(id: string, vm: Record<string, unknown>): Record<string, unknown> {
    const code = this.#store.powerStates.get(id);
    const statuses: Array<Record<string, string>> = [{ code: 'ProvisioningState/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded', time: '2025-01-01T00:00:00.0000000+00:00' }];
    if (code) statuses.push({ code, level: 'Info', displayStatus: `VM ${code.split('/')[1] ?? ''}` });
    return { ...vm, properties: { ...(vm.properties as object), instanceView: { computerName: vm.name, osName: 'ubuntu', osVersion: '24.04', statuses } } };
  }

  #groupExists(subscription: string, group: string): boolean {
    const prefix = `/subscriptions/${subscription}/resourcegroups/${group}/`;
    return [this.#store.vms, this.#store.nics, this.#store.publicIps].some((m) => [...m.keys()].some((id) => id.startsWith(prefix)));
  }

  #newToken(offset: number, context: string): string {
    const token = `fake${(++this.#tokenCounter).toString(36)}${Buffer.from(String(offset)).toString('base64url')}`;
    this.#tokens.set(token, { offset, context });
    return token;
  }
}

/** Starts a fake ARM endpoint on 127.0.0.1 over HTTPS with the given certificate. */
export async function startFakeArm(options: FakeArmOptions): Promise<FakeArm> {
  let fake: FakeArm | undefined;
  const server = https.createServer({ key: options.tls.key, cert: options.tls.cert }, (req, res) => {
    fake!.handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });
  fake = new FakeArm(`https://127.0.0.1:${port}`, close, options);
  return fake;
}

/**
 * Checks that a query is the discovery query: VMs filtered by a tag key, joined with interfaces and
 * public IPs by lowercased id. Returns the tag; throws Resource Graph's InvalidQuery otherwise.
 */
export function checkDiscoveryQuery(query: string): string {
  const tag = /\| where isnotnull\(tags\[@"((?:[^"]|"")*)"\]\)/.exec(query)?.[1]?.replaceAll('""', '"');
  const required: Array<[string, boolean]> = [
    ['the VM type', /where type =~ 'microsoft\.compute\/virtualmachines'/.test(query)],
    ['the tag filter', tag !== undefined],
    ['the interface join', /join kind=leftouter \(\s*Resources\s*\| where type =~ 'microsoft\.network\/networkinterfaces'/.test(query)],
    ['the public IP join', /join kind=leftouter \(\s*Resources\s*\| where type =~ 'microsoft\.network\/publicipaddresses'/.test(query)],
    ['lowercased join keys', /nicKey = tolower\(/.test(query) && /\) on nicKey/.test(query) && /\) on publicIpKey/.test(query)],
    ['the power state', /powerState = tostring\(properties\.extended\.instanceView\.powerState\.code\)/.test(query)],
  ];
  const missing = required.filter(([, ok]) => !ok).map(([what]) => what);
  if (missing.length > 0 || tag === undefined) {
    throw new ArmError(400, 'InvalidQuery', `Query is invalid for this fake: it lacks ${missing.join(', ')}.`);
  }
  return tag;
}

interface Route {
  kind: ArmRequestKind;
  subscription?: string;
  resourceGroup?: string;
  name?: string;
}

// ARM matches paths without regard to case; so does the fake.
function routeOf(method: string, path: string): Route {
  const p = decodeURIComponent(path).toLowerCase().replace(/\/+$/, '');
  if (method === 'POST' && p === '/providers/microsoft.resourcegraph/resources') return { kind: 'graph' };
  if (method !== 'GET') return { kind: 'unknown' };
  let m = /^\/subscriptions\/([^/]+)\/providers\/microsoft\.compute\/virtualmachines$/.exec(p);
  if (m) return { kind: 'list-vms', subscription: m[1]! };
  m = /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/(microsoft\.compute\/virtualmachines|microsoft\.network\/networkinterfaces|microsoft\.network\/publicipaddresses)(?:\/([^/]+))?$/.exec(p);
  if (!m) return { kind: 'unknown' };
  const [, subscription, resourceGroup, type, name] = m;
  const kinds: Record<string, [ArmRequestKind, ArmRequestKind]> = {
    'microsoft.compute/virtualmachines': ['unknown', 'get-vm'],
    'microsoft.network/networkinterfaces': ['list-nics', 'get-nic'],
    'microsoft.network/publicipaddresses': ['list-public-ips', 'get-public-ip'],
  };
  const [list, get] = kinds[type!]!;
  return name === undefined ? { kind: list, subscription: subscription!, resourceGroup: resourceGroup! } : { kind: get, subscription: subscription!, resourceGroup: resourceGroup!, name };
}

function matches(target: FaultTarget, r: RecordedArmRequest): boolean {
  const laterPage = r.query.$skiptoken !== undefined || (typeof (r.body as { options?: { $skipToken?: unknown } } | undefined)?.options?.$skipToken === 'string');
  return (
    (target.kind === undefined || target.kind === r.kind) &&
    (target.subscription === undefined || target.subscription.toLowerCase() === r.subscription) &&
    (target.resourceGroup === undefined || target.resourceGroup.toLowerCase() === r.resourceGroup) &&
    (!target.laterPages || laterPage)
  );
}

function notFound(type: string, name: string, group: string): ArmError {
  return new ArmError(404, 'ResourceNotFound', `The Resource '${type}/${name}' under resource group '${group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// A stable GUID-shaped value derived from a string.
function fakeGuid(seed: string): string {
  let h = 0x811c9dc5;
  const hex: string[] = [];
  for (let round = 0; round < 4; round++) {
    for (const c of `${round}:${seed}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
    hex.push(h.toString(16).padStart(8, '0'));
  }
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-4${s.slice(13, 16)}-8${s.slice(17, 20)}-${s.slice(20, 32)}`;
}
