// A fake Compute Engine REST endpoint on 127.0.0.1 that the real InstancesClient talks to:
// instances.aggregatedList and instances.get of API v1, with Compute's JSON, server-side list
// filters (the label, name, id and status expressions vm-mesh-sync sends), pagination with opaque
// tokens bound to their query, per-zone warnings, `unreachables` under returnPartialSuccess, and
// Google's JSON errors. It records every request, so tests can check what reached the server, and
// fails on demand: the next N requests, or every request of one kind or project.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** The project a seeded instance is in unless it says otherwise. */
export const DEFAULT_PROJECT = 'test-project';
/** The zone a seeded instance is in unless it says otherwise. */
export const DEFAULT_ZONE = 'us-central1-a';
/** The prefix of every URL in Compute's answers. */
export const API_PREFIX = 'https://www.googleapis.com/compute/v1';
/** Zones every project has, so that aggregated answers carry NO_RESULTS_ON_PAGE scopes as Compute's do. */
export const DEFAULT_ZONES: readonly string[] = ['us-central1-a', 'us-central1-b', 'europe-west1-b'];

/** One network interface of a seeded instance. */
export interface FakeNic {
  /** Network name; default `default`. */
  network?: string;
  /** The project owning the network (a Shared VPC host); default the instance's project. */
  networkProject?: string;
  /** Subnetwork name; default `default`. */
  subnetwork?: string;
  networkIP?: string;
  /** External IPv4 addresses, one access config each. */
  natIPs?: string[];
  /** The internal IPv6 address. */
  ipv6Address?: string;
  /** External IPv6 addresses, one IPv6 access config each. */
  externalIpv6s?: string[];
}

/** An instance as a test describes it; everything but id and name has a default. */
export interface FakeGceInstance {
  /** The numeric id, in decimal. */
  id: string;
  name: string;
  project?: string;
  zone?: string;
  /** Compute status; default RUNNING. */
  status?: string;
  labels?: Record<string, string>;
  /** Network tags (`tags.items`). */
  networkTags?: string[];
  /** Default: one nic0 built from privateIp, publicIp, ipv6 and externalIpv6. */
  nics?: FakeNic[];
  privateIp?: string;
  publicIp?: string;
  ipv6?: string;
  externalIpv6?: string;
}

/** The two calls the fake serves. */
export type ComputeCall = 'aggregatedList' | 'get';

/** One request as the fake received it. */
export interface RecordedComputeRequest {
  method: string;
  /** The path without the query. */
  path: string;
  call: ComputeCall | 'unknown';
  project: string | undefined;
  zone: string | undefined;
  /** The instance name or id of a get. */
  instance: string | undefined;
  query: Record<string, string>;
  filter: string | undefined;
  pageToken: string | undefined;
  maxResults: number | undefined;
  returnPartialSuccess: boolean;
  authorization: string | undefined;
  /** The status the fake answered with (0 while held open). */
  status: number;
}

/** Which requests a fault applies to. */
export interface FaultTarget {
  call?: ComputeCall;
  project?: string;
  /** Only requests for a second or later page (carrying a pageToken). */
  laterPages?: boolean;
}

/** How a fake is started. */
export interface FakeComputeOptions {
  instances?: FakeGceInstance[];
}

interface GoogleErrorSpec {
  status: number;
  message: string;
}

const STATUS_NAMES: Record<number, { status: string; reason: string; message: string }> = {
  400: { status: 'INVALID_ARGUMENT', reason: 'invalid', message: 'Invalid value.' },
  403: { status: 'PERMISSION_DENIED', reason: 'forbidden', message: "Required 'compute.instances.list' permission for 'projects/{project}'" },
  404: { status: 'NOT_FOUND', reason: 'notFound', message: 'The resource was not found' },
  429: {
    status: 'RESOURCE_EXHAUSTED',
    reason: 'rateLimitExceeded',
    message: "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute' of service 'compute.googleapis.com'.",
  },
  500: { status: 'INTERNAL', reason: 'backendError', message: 'Internal error. Please try again or contact Google Support.' },
  503: { status: 'UNAVAILABLE', reason: 'backendError', message: 'The service is currently unavailable.' },
};

class ComputeError extends Error {
  readonly status: number;
  constructor(status: number, message?: string) {
    super(message ?? STATUS_NAMES[status]?.message ?? `HTTP ${status}`);
    this.status = status;
  }
}

/** A running fake Compute endpoint. */
export class FakeCompute {
  readonly url: string;
  readonly requests: RecordedComputeRequest[] = [];
  readonly #instances = new Map<string, FakeGceInstance>();
  readonly #zones = new Map<string, string[]>();
  readonly #warnings = new Map<string, { code: string; message: string }>();
  readonly #unreachable = new Set<string>();
  readonly #tokens = new Map<string, { offset: number; query: string }>();
  readonly #close: () => Promise<void>;
  #nextFaults: Array<{ target: FaultTarget } & GoogleErrorSpec> = [];
  #standing: Array<{ target: FaultTarget } & GoogleErrorSpec> = [];
  #hanging: FaultTarget[] = [];
  #tokenCounter = 0;
  /** Projects answered with another project's instances: asked → answering. */
  readonly #answeredAs = new Map<string, string>();
  /** Bumped by every change of what a listing answers, so that the answer of a query can be kept between its pages. */
  #version = 0;
  /** The sorted selection of the last aggregatedList query, while nothing changed: a 100,000-instance listing is not filtered and sorted again for each of its pages. */
  #selection: { key: string; version: number; zones: string[]; selected: FakeGceInstance[] } | undefined;

  constructor(url: string, close: () => Promise<void>, options: FakeComputeOptions) {
    this.url = url;
    this.#close = close;
    for (const seed of options.instances ?? []) this.put(seed);
  }

  /** The port, for clients configured by host and port. */
  get port(): number {
    return Number(new URL(this.url).port);
  }

  /** Adds or replaces an instance (by id). */
  put(instance: FakeGceInstance): void {
    this.#instances.set(instance.id, structuredClone(instance));
    this.#version++;
  }

  /** Deletes an instance: it is absent from listings and a get answers 404. */
  remove(id: string): void {
    this.#instances.delete(id);
    this.#version++;
  }

  /** Replaces an instance's labels. */
  setLabels(id: string, labels: Record<string, string>): void {
    this.#get(id).labels = { ...labels };
    this.#version++;
  }

  /** Moves an instance to another status. */
  setStatus(id: string, status: string): void {
    this.#get(id).status = status;
    this.#version++;
  }

  /** The zones a project has (default DEFAULT_ZONES); each appears in aggregated answers. */
  setZones(zones: string[], project = DEFAULT_PROJECT): void {
    this.#zones.set(project, [...zones]);
    this.#version++;
  }

  /** Every aggregated answer files this zone under a warning instead of its instances. */
  zoneWarning(zone: string, code: string, message: string, project = DEFAULT_PROJECT): void {
    this.#warnings.set(`${project}/${zone}`, { code, message });
    this.#version++;
  }

  /**
   * The zone cannot be read: with returnPartialSuccess it is named in `unreachables`, without it
   * the zone's scope carries an UNREACHABLE warning; either way its instances are left out.
   */
  unreachable(zone: string, project = DEFAULT_PROJECT): void {
    this.#unreachable.add(`${project}/${zone}`);
    this.#version++;
  }

  /**
   * Requests for project `asked` are answered with project `answering`'s instances (their selfLinks
   * naming `answering`), as an endpoint or proxy that routes to the wrong project would.
   */
  answerAs(asked: string, answering: string): void {
    this.#answeredAs.set(asked, answering);
    this.#version++;
  }

  /** The next `count` matching requests fail with this HTTP status; then it answers normally again. */
  failNext(count: number, status: number, options: FaultTarget & { message?: string } = {}): void {
    const { message, ...target } = options;
    for (let i = 0; i < count; i++) this.#nextFaults.push({ target, status, message: message ?? '' });
  }

  /** Every matching request fails with this HTTP status until `heal()`. */
  failAlways(target: FaultTarget, status: number, message?: string): void {
    this.#standing.push({ target, status, message: message ?? '' });
  }

  /** Matching requests are held open and never answered, until `heal()` or `close()`. */
  hang(target: FaultTarget): void {
    this.#hanging.push(target);
  }

  /** Ends standing faults, pending `failNext` faults and hangs. */
  heal(): void {
    this.#nextFaults = [];
    this.#standing = [];
    this.#hanging = [];
  }

  /** aggregatedList requests received, in order. */
  get listRequests(): RecordedComputeRequest[] {
    return this.requests.filter((r) => r.call === 'aggregatedList');
  }

  /** get requests received, in order. */
  get getRequests(): RecordedComputeRequest[] {
    return this.requests.filter((r) => r.call === 'get');
  }

  /** Stops the server and drops held-open requests. */
  close(): Promise<void> {
    return this.#close();
  }

  #get(id: string): FakeGceInstance {
    const instance = this.#instances.get(id);
    if (!instance) throw new Error(`fake Compute has no instance ${id}`);
    return instance;
  }

  /** Serves one HTTP request. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const record = recordOf(req);
    this.requests.push(record);
    if (this.#hanging.some((t) => matches(t, record))) return;
    let status = 200;
    let body: unknown;
    try {
      body = this.#answer(req, record);
    } catch (err) {
      if (!(err instanceof ComputeError)) throw err;
      status = err.status;
      body = googleError(err.status, err.message.replaceAll('{project}', record.project ?? ''));
    }
    record.status = status;
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify(body));
  }

  #answer(req: http.IncomingMessage, r: RecordedComputeRequest): unknown {
    if (req.method !== 'GET' || r.call === 'unknown') throw new ComputeError(404, `${req.method} ${r.path} is not a Compute v1 instances method this fake serves`);
    const next = this.#nextFaults.findIndex((f) => matches(f.target, r));
    const fault = next >= 0 ? this.#nextFaults.splice(next, 1)[0] : this.#standing.find((f) => matches(f.target, r));
    if (fault) throw new ComputeError(fault.status, fault.message || undefined);
    return r.call === 'aggregatedList' ? this.#aggregatedList(r) : this.#getInstance(r);
  }

  #getInstance(r: RecordedComputeRequest): unknown {
    const project = this.#answeredAs.get(r.project!) ?? r.project!;
    const zone = r.zone!;
    const wanted = r.instance!;
    const found = [...this.#instances.values()].find(
      (i) => (i.project ?? DEFAULT_PROJECT) === project && (i.zone ?? DEFAULT_ZONE) === zone && (i.name === wanted || i.id === wanted),
    );
    if (!found) throw new ComputeError(404, `The resource 'projects/${project}/zones/${zone}/instances/${wanted}' was not found`);
    return instanceJson(found);
  }

  /** The zones of a project and the instances a query selects, in page order. */
  #select(project: string, filter: string | undefined, key: string): { zones: string[]; selected: FakeGceInstance[] } {
    if (this.#selection?.key === key && this.#selection.version === this.#version) return this.#selection;
    const predicate = filter === undefined ? () => true : compileFilter(filter);
    const zones = [...new Set([...(this.#zones.get(project) ?? DEFAULT_ZONES), ...[...this.#instances.values()].filter((i) => (i.project ?? DEFAULT_PROJECT) === project).map((i) => i.zone ?? DEFAULT_ZONE)])].sort();
    const hidden = (zone: string) => this.#unreachable.has(`${project}/${zone}`) || this.#warnings.has(`${project}/${zone}`);
    const selected = [...this.#instances.values()]
      .filter((i) => (i.project ?? DEFAULT_PROJECT) === project && !hidden(i.zone ?? DEFAULT_ZONE) && predicate(i))
      .sort((a, b) => (a.zone ?? DEFAULT_ZONE).localeCompare(b.zone ?? DEFAULT_ZONE) || a.name.localeCompare(b.name));
    this.#selection = { key, version: this.#version, zones, selected };
    return this.#selection;
  }

  #aggregatedList(r: RecordedComputeRequest): unknown {
    const project = this.#answeredAs.get(r.project!) ?? r.project!;
    const maxResults = r.maxResults ?? 500;
    if (!Number.isInteger(maxResults) || maxResults < 0 || maxResults > 500) {
      throw new ComputeError(400, `Invalid value for field 'maxResults': '${r.query.maxResults}'. Must be less than or equal to 500`);
    }
    // A token is only good for the query it came from, as Compute's are.
    const queryKey = JSON.stringify([project, r.filter, maxResults, r.returnPartialSuccess]);
    const { zones, selected } = this.#select(project, r.filter, queryKey);
    let offset = 0;
    if (r.pageToken !== undefined) {
      const token = this.#tokens.get(r.pageToken);
      if (!token || token.query !== queryKey) throw new ComputeError(400, "Invalid value for field 'pageToken'");
      offset = token.offset;
    }
    const size = maxResults === 0 ? 500 : maxResults;
    const page = selected.slice(offset, offset + size);
    const items: Record<string, unknown> = {};
    for (const zone of zones) {
      const key = `zones/${zone}`;
      const warning = this.#warnings.get(`${project}/${zone}`);
      if (warning) {
        items[key] = { warning: { ...warning, data: [{ key: 'scope', value: key }] } };
      } else if (this.#unreachable.has(`${project}/${zone}`)) {
        if (!r.returnPartialSuccess) items[key] = { warning: { code: 'UNREACHABLE', message: `The resource '${key}' is unreachable.`, data: [{ key: 'scope', value: key }] } };
      } else {
        const here = page.filter((i) => (i.zone ?? DEFAULT_ZONE) === zone);
        items[key] =
          here.length > 0
            ? { instances: here.map(instanceJson) }
            : { warning: { code: 'NO_RESULTS_ON_PAGE', message: `There are no results for scope '${key}' on this page.`, data: [{ key: 'scope', value: key }] } };
      }
    }
    const answer: Record<string, unknown> = {
      kind: 'compute#instanceAggregatedList',
      id: `projects/${project}/aggregated/instances`,
      items,
      selfLink: `${API_PREFIX}/projects/${project}/aggregated/instances`,
    };
    if (offset + size < selected.length) {
      const token = `CkQ${(++this.#tokenCounter).toString(36).padStart(6, '0')}`;
      this.#tokens.set(token, { offset: offset + size, query: queryKey });
      answer.nextPageToken = token;
    }
    const unreachables = zones.filter((z) => this.#unreachable.has(`${project}/${z}`)).map((z) => `zones/${z}`);
    if (r.returnPartialSuccess && unreachables.length > 0 && offset === 0) answer.unreachables = unreachables;
    return answer;
  }
}

/** Starts a fake Compute endpoint on 127.0.0.1. */
export async function startFakeCompute(options: FakeComputeOptions = {}): Promise<FakeCompute> {
  let fake: FakeCompute | undefined;
  const server = http.createServer((req, res) => {
    try {
      fake!.handle(req, res);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });
  fake = new FakeCompute(`http://127.0.0.1:${port}`, close, options);
  return fake;
}

function recordOf(req: http.IncomingMessage): RecordedComputeRequest {
  const url = new URL(req.url ?? '/', 'http://fake');
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) query[key] = value;
  const list = /^\/compute\/v1\/projects\/([^/]+)\/aggregated\/instances$/.exec(url.pathname);
  const get = /^\/compute\/v1\/projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)$/.exec(url.pathname);
  const auth = req.headers.authorization;
  return {
    method: req.method ?? '',
    path: url.pathname,
    call: list ? 'aggregatedList' : get ? 'get' : 'unknown',
    project: decodeURIComponent(list?.[1] ?? get?.[1] ?? '') || undefined,
    zone: get ? decodeURIComponent(get[2]!) : undefined,
    instance: get ? decodeURIComponent(get[3]!) : undefined,
    query,
    filter: query.filter,
    pageToken: query.pageToken,
    maxResults: query.maxResults === undefined ? undefined : Number(query.maxResults),
    returnPartialSuccess: query.returnPartialSuccess === 'true',
    authorization: typeof auth === 'string' ? auth : undefined,
    status: 0,
  };
}

function matches(target: FaultTarget, r: RecordedComputeRequest): boolean {
  return (
    (target.call === undefined || target.call === r.call) &&
    (target.project === undefined || target.project === r.project) &&
    (!target.laterPages || r.pageToken !== undefined)
  );
}

function googleError(status: number, message: string): unknown {
  const names = STATUS_NAMES[status] ?? { status: 'UNKNOWN', reason: 'unknown' };
  return { error: { code: status, message, errors: [{ message, domain: 'global', reason: names.reason }], status: names.status } };
}

/**
 * Compute's list filter, for the expressions vm-mesh-sync sends: `labels.<key> = "<value>"`,
 * `labels.<key>:*`, `name = "<name>"`, `id = <id>`, `status = <STATUS>`, alone or as parenthesized
 * expressions joined by AND (or nothing). Anything else is refused as Compute refuses a filter it
 * cannot parse.
 */
export function compileFilter(filter: string): (i: FakeGceInstance) => boolean {
  const invalid = () => new ComputeError(400, `Invalid value for field 'filter': '${filter}'. Invalid list filter expression.`);
  const trimmed = filter.trim();
  let expressions: string[];
  if (trimmed.startsWith('(')) {
    const groups = [...trimmed.matchAll(/\(([^()]*)\)\s*(?:AND\s*)?/g)];
    if (groups.map((g) => g[0]).join('').trim() !== trimmed) throw invalid();
    expressions = groups.map((g) => g[1]!.trim());
  } else {
    expressions = [trimmed];
  }
  const predicates = expressions.map((expression) => {
    const m = /^([A-Za-z][\w.-]*)\s*(=|!=|:)\s*(.+)$/.exec(expression);
    if (!m) throw invalid();
    const [, fieldName, op, rawValue] = m as unknown as [string, string, string, string];
    const quoted = /^"([^"\\]*)"$/.exec(rawValue);
    if (!quoted && /["\s()]/.test(rawValue)) throw invalid();
    const value = quoted ? quoted[1]! : rawValue;
    const read = fieldReader(fieldName);
    if (read === undefined) throw invalid();
    if (op === ':') {
      if (value !== '*') throw invalid();
      return (i: FakeGceInstance) => read(i) !== undefined;
    }
    return op === '=' ? (i: FakeGceInstance) => read(i) === value : (i: FakeGceInstance) => read(i) !== value;
  });
  return (i) => predicates.every((p) => p(i));
}

function fieldReader(name: string): ((i: FakeGceInstance) => string | undefined) | undefined {
  if (name.startsWith('labels.')) {
    const key = name.slice('labels.'.length);
    return (i) => (i.labels && Object.hasOwn(i.labels, key) ? i.labels[key] : undefined);
  }
  if (name === 'name') return (i) => i.name;
  if (name === 'id') return (i) => i.id;
  if (name === 'status') return (i) => i.status ?? 'RUNNING';
  return undefined;
}

function nicsOf(i: FakeGceInstance): FakeNic[] {
  if (i.nics) return i.nics;
  const nic: FakeNic = {};
  if (i.privateIp !== undefined) nic.networkIP = i.privateIp;
  if (i.publicIp !== undefined) nic.natIPs = [i.publicIp];
  if (i.ipv6 !== undefined) nic.ipv6Address = i.ipv6;
  if (i.externalIpv6 !== undefined) nic.externalIpv6s = [i.externalIpv6];
  return [nic];
}

/** An instance as Compute v1 answers it. */
export function instanceJson(i: FakeGceInstance): Record<string, unknown> {
  const project = i.project ?? DEFAULT_PROJECT;
  const zone = i.zone ?? DEFAULT_ZONE;
  const region = zone.slice(0, zone.lastIndexOf('-'));
  const nics = nicsOf(i).map((nic, n) => {
    const json: Record<string, unknown> = {
      kind: 'compute#networkInterface',
      network: `${API_PREFIX}/projects/${nic.networkProject ?? project}/global/networks/${nic.network ?? 'default'}`,
      subnetwork: `${API_PREFIX}/projects/${nic.networkProject ?? project}/regions/${region}/subnetworks/${nic.subnetwork ?? 'default'}`,
      name: `nic${n}`,
      fingerprint: 'zXmOi3v7Ebs=',
      stackType: nic.ipv6Address !== undefined || nic.externalIpv6s?.length ? (nic.networkIP === undefined ? 'IPV6_ONLY' : 'IPV4_IPV6') : 'IPV4_ONLY',
    };
    if (nic.networkIP !== undefined) json.networkIP = nic.networkIP;
    if (nic.natIPs?.length) json.accessConfigs = nic.natIPs.map((ip) => ({ kind: 'compute#accessConfig', type: 'ONE_TO_ONE_NAT', name: 'External NAT', natIP: ip, networkTier: 'PREMIUM' }));
    if (nic.ipv6Address !== undefined) json.ipv6Address = nic.ipv6Address;
    if (nic.externalIpv6s?.length) {
      json.ipv6AccessConfigs = nic.externalIpv6s.map((ip) => ({ kind: 'compute#accessConfig', type: 'DIRECT_IPV6', name: 'external-ipv6', externalIpv6: ip, externalIpv6PrefixLength: 96, networkTier: 'PREMIUM' }));
    }
    return json;
  });
  const json: Record<string, unknown> = {
    kind: 'compute#instance',
    id: i.id,
    creationTimestamp: '2024-05-01T02:00:00.000-07:00',
    name: i.name,
    machineType: `${API_PREFIX}/projects/${project}/zones/${zone}/machineTypes/e2-small`,
    status: i.status ?? 'RUNNING',
    zone: `${API_PREFIX}/projects/${project}/zones/${zone}`,
    canIpForward: false,
    networkInterfaces: nics,
    disks: [{ kind: 'compute#attachedDisk', type: 'PERSISTENT', mode: 'READ_WRITE', source: `${API_PREFIX}/projects/${project}/zones/${zone}/disks/${i.name}`, deviceName: i.name, index: 0, boot: true, autoDelete: true }],
    metadata: { kind: 'compute#metadata', fingerprint: 'cPaNPA2E4TE=' },
    serviceAccounts: [{ email: '123456789012-compute@developer.gserviceaccount.com', scopes: ['https://www.googleapis.com/auth/cloud-platform'] }],
    selfLink: `${API_PREFIX}/projects/${project}/zones/${zone}/instances/${i.name}`,
    scheduling: { onHostMaintenance: 'MIGRATE', automaticRestart: true, preemptible: false, provisioningModel: 'STANDARD' },
    cpuPlatform: 'Intel Broadwell',
    labelFingerprint: '42WmSpB8rSM=',
    startRestricted: false,
    deletionProtection: false,
    fingerprint: 'ZKvXu_ImUdk=',
    lastStartTimestamp: '2024-05-01T02:00:10.000-07:00',
  };
  if (i.networkTags?.length) json.tags = { items: [...i.networkTags], fingerprint: 'tGPQ3hpzNhM=' };
  else json.tags = { fingerprint: '42WmSpB8rSM=' };
  if (i.labels && Object.keys(i.labels).length > 0) json.labels = { ...i.labels };
  return json;
}
