// A fake EC2 endpoint on 127.0.0.1 that the real EC2Client talks to: the Query protocol in,
// EC2's XML out (DescribeInstances only), with EC2's server-side filtering, pagination and error
// codes. It records every request, so tests can check what reached the server, and fails on
// demand: the next N requests, or every request of one region or account.
import type http from 'node:http';
import { el, indexedKeys, listen, listParam, type QueryRequest, readQueryRequest, requestId, sendXml, type XmlReply, xmlEscape } from './query-protocol.ts';

/** The account a fake answers for when a test does not map access keys to accounts. */
export const DEFAULT_ACCOUNT = '123456789012';

/** EC2's instance state names. */
export type Ec2StateName = 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';

const STATE_CODES: Record<Ec2StateName, number> = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80 };

/** One network interface of a seeded instance. */
export interface FakeInterface {
  deviceIndex: number;
  networkCardIndex?: number;
  /** The first is the interface's primary private address. */
  privateIps?: string[];
  /** The public address associated with the primary private address. */
  publicIp?: string;
  /** Elastic IPs on secondary private addresses: private → public. */
  secondaryPublicIps?: Record<string, string>;
  ipv6s?: string[];
}

/** An instance as a test describes it; everything but the id has a default. */
export interface FakeInstance {
  id: string;
  account?: string;
  /** Default us-east-1. */
  region?: string;
  /** Default: the region + `a`. */
  zone?: string;
  /** Default running. */
  state?: Ec2StateName;
  /** The state name put in answers instead of `state` (filters still see `state`): an answer from a newer EC2. */
  reportedState?: string;
  /** The Name tag. */
  name?: string;
  tags?: Record<string, string>;
  /** The instance-level primary private address; absent for an IPv6-only instance. */
  privateIp?: string;
  publicIp?: string;
  /** The instance-level primary IPv6 (only set when the instance has one enabled). */
  primaryIpv6?: string;
  vpcId?: string;
  subnetId?: string;
  /** Default: one eth0 carrying privateIp, publicIp and ipv6s. */
  interfaces?: FakeInterface[];
  /** IPv6 addresses of the synthesized eth0. */
  ipv6s?: string[];
  reservationId?: string;
  /** The ownerId of the instance's reservation, when it is not the account asked (a misrouted answer). */
  reservationOwner?: string;
}

/** One request as the fake received it. */
export interface RecordedEc2Request {
  action: string;
  version: string;
  params: Record<string, string>;
  filters: Array<{ name: string; values: string[] }>;
  instanceIds: string[];
  maxResults: number | undefined;
  nextToken: string | undefined;
  accessKeyId: string | undefined;
  securityToken: string | undefined;
  /** The region from the request's signature. */
  region: string | undefined;
  /** The account the access key belongs to. */
  account: string | undefined;
  /** The status the fake answered with (0 while held open). */
  status: number;
}

/** Which requests a standing fault applies to. */
export interface FaultTarget {
  region?: string;
  account?: string;
  /** Only requests for a second or later page (carrying a NextToken). */
  laterPages?: boolean;
}

/** How a fake is started. */
export interface FakeEc2Options {
  instances?: FakeInstance[];
  /** The account of an access key; undefined → AuthFailure. Default: every key is DEFAULT_ACCOUNT. */
  accountOf?: (accessKeyId: string) => string | undefined;
}

// EC2's HTTP status for each error code the fake can produce.
const ERROR_STATUS: Record<string, number> = {
  RequestLimitExceeded: 503,
  Unavailable: 503,
  InternalError: 500,
  'InvalidInstanceID.NotFound': 400,
  'InvalidInstanceID.Malformed': 400,
  InvalidParameterValue: 400,
  InvalidParameterCombination: 400,
  InvalidAction: 400,
  AuthFailure: 401,
  UnauthorizedOperation: 403,
  OptInRequired: 401,
};

const DEFAULT_MESSAGES: Record<string, string> = {
  RequestLimitExceeded: 'Request limit exceeded.',
  Unavailable: 'The service is unavailable. Please try again shortly.',
  InternalError: 'An internal error has occurred.',
  AuthFailure: 'AWS was not able to validate the provided access credentials',
  UnauthorizedOperation: 'You are not authorized to perform this operation.',
  OptInRequired: 'You are not subscribed to this service. Please go to http://aws.amazon.com to subscribe.',
};

class Ec2Error extends Error {
  readonly code: string;
  constructor(code: string, message?: string) {
    super(message ?? DEFAULT_MESSAGES[code] ?? code);
    this.code = code;
  }
}

/** A running fake EC2 endpoint. */
export class FakeEc2 {
  readonly url: string;
  readonly requests: RecordedEc2Request[] = [];
  readonly #instances = new Map<string, FakeInstance>();
  // Each instance's XML, encoded when it is stored or changed: a listing only puts the stored
  // bytes together, so serving one costs the fake little of the CPU it shares with the client it
  // answers. Kept as bytes, out of the heap: 100,000 strings built piece by piece are millions of
  // string pieces for each full collection to walk.
  readonly #xml = new WeakMap<FakeInstance, Buffer>();
  readonly #accountOf: (accessKeyId: string) => string | undefined;
  readonly #close: () => Promise<void>;
  readonly #tokens = new Map<string, { offset: number; query: string }>();
  #nextFaults: Array<{ target: FaultTarget; code: string; message: string | undefined }> = [];
  #standing: Array<{ target: FaultTarget; code: string; message: string | undefined }> = [];
  #failAfter: { left: number; code: string } | undefined;
  #hanging: FaultTarget[] = [];
  #tokenCounter = 0;
  // Every change bumps the version: the instances a query selects are kept for the pages that
  // follow while nothing changed (a 100,000-instance listing otherwise filters the whole fleet
  // once per page).
  #version = 0;
  #selection: { query: string; version: number; selected: FakeInstance[] } | undefined;

  constructor(url: string, close: () => Promise<void>, options: FakeEc2Options) {
    this.url = url;
    this.#close = close;
    this.#accountOf = options.accountOf ?? (() => DEFAULT_ACCOUNT);
    for (const seed of options.instances ?? []) this.put(seed);
  }

  /** Adds or replaces an instance. */
  put(instance: FakeInstance): void {
    const stored = structuredClone(instance);
    this.#instances.set(instance.id, stored);
    this.#xml.set(stored, Buffer.from(instanceXml(stored)));
    this.#version++;
  }

  /** Removes an instance for good (as EC2 does about an hour after termination). */
  remove(id: string): void {
    this.#instances.delete(id);
    this.#version++;
  }

  /** Replaces an instance's tags (the Name tag stays in `name`). */
  setTags(id: string, tags: Record<string, string>): void {
    const instance = this.#get(id);
    instance.tags = { ...tags };
    this.#xml.set(instance, Buffer.from(instanceXml(instance)));
    this.#version++;
  }

  /** Moves an instance to another state. */
  setState(id: string, state: Ec2StateName): void {
    const instance = this.#get(id);
    instance.state = state;
    this.#xml.set(instance, Buffer.from(instanceXml(instance)));
    this.#version++;
  }

  /** The next `count` requests (to this region and/or account, when given) fail with `code`; then it answers normally again. */
  failNext(count: number, code: string, options: FaultTarget & { message?: string } = {}): void {
    const { message, ...target } = options;
    for (let i = 0; i < count; i++) this.#nextFaults.push({ target, code, message });
  }

  /** Every request to this region and/or account fails with `code` until `heal()`. */
  failAlways(target: FaultTarget, code: string, message?: string): void {
    this.#standing.push({ target, code, message });
  }

  /** After `answered` more requests are answered, every request fails with `code` until `heal()` (a listing that breaks off half-way). */
  failAfter(answered: number, code: string): void {
    this.#failAfter = { left: answered, code };
  }

  /** Requests to this region and/or account are held open and never answered, until `heal()`. */
  hang(target: FaultTarget): void {
    this.#hanging.push(target);
  }

  /** Ends standing faults and pending `failNext` faults. */
  heal(): void {
    this.#nextFaults = [];
    this.#standing = [];
    this.#hanging = [];
    this.#failAfter = undefined;
  }

  /** DescribeInstances requests received, in order. */
  get describeRequests(): RecordedEc2Request[] {
    return this.requests.filter((r) => r.action === 'DescribeInstances');
  }

  /** Stops the server and drops held-open requests. */
  close(): Promise<void> {
    return this.#close();
  }

  #get(id: string): FakeInstance {
    const instance = this.#instances.get(id);
    if (!instance) throw new Error(`fake EC2 has no instance ${id}`);
    return instance;
  }

  /** Serves one HTTP request. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const query = await readQueryRequest(req);
    const account = query.accessKeyId === undefined ? undefined : this.#accountOf(query.accessKeyId);
    const record = recordOf(query, account);
    this.requests.push(record);
    if (this.#hanging.some((t) => matches(t, record))) return;
    const reply = this.#reply(req, query, record);
    record.status = reply.status;
    sendXml(res, reply);
  }

  #reply(req: http.IncomingMessage, query: QueryRequest, record: RecordedEc2Request): XmlReply {
    try {
      if (req.method !== 'POST' || (req.url ?? '/').split('?')[0] !== '/') throw new Ec2Error('InvalidAction', `${req.method} ${req.url} is not an EC2 Query endpoint`);
      if (record.accessKeyId === undefined || record.account === undefined) throw new Ec2Error('AuthFailure');
      const next = this.#nextFaults.findIndex((f) => matches(f.target, record));
      const fault = next >= 0 ? this.#nextFaults.splice(next, 1)[0] : this.#standing.find((f) => matches(f.target, record));
      if (fault) throw new Ec2Error(fault.code, fault.message);
      if (this.#failAfter && this.#failAfter.left-- <= 0) throw new Ec2Error(this.#failAfter.code);
      if (record.action !== 'DescribeInstances') throw new Ec2Error('InvalidAction', `The action ${record.action} is not valid for this web service.`);
      return { status: 200, body: this.#describeInstances(record) };
    } catch (err) {
      if (!(err instanceof Ec2Error)) throw err;
      return { status: ERROR_STATUS[err.code] ?? 400, body: errorXml(err.code, err.message) };
    }
  }

  #describeInstances(r: RecordedEc2Request): Buffer[] {
    const region = r.region ?? 'us-east-1';
    if (r.instanceIds.length > 0 && r.maxResults !== undefined) {
      throw new Ec2Error('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
    }
    if (r.maxResults !== undefined && (!Number.isInteger(r.maxResults) || r.maxResults < 5 || r.maxResults > 1000)) {
      throw new Ec2Error('InvalidParameterValue', `Value ( ${r.params.MaxResults} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`);
    }
    for (const id of r.instanceIds) {
      if (!/^i-[0-9a-f]{8,17}$/.test(id)) throw new Ec2Error('InvalidInstanceID.Malformed', `Invalid id: "${id}"`);
    }
    const predicates = r.filters.map(filterPredicate);
    const queryKey = JSON.stringify([r.filters, r.instanceIds, r.maxResults, r.account, region]);
    if (r.instanceIds.length > 0) {
      const inScope = new Set([...this.#instances.values()].filter((i) => inScopeOf(i, r.account, region)).map((i) => i.id));
      const missing = [...new Set(r.instanceIds)].filter((id) => !inScope.has(id));
      if (missing.length === 1) throw new Ec2Error('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`);
      if (missing.length > 1) throw new Ec2Error('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`);
    }
    let selected: FakeInstance[];
    if (this.#selection?.query === queryKey && this.#selection.version === this.#version) selected = this.#selection.selected;
    else {
      const wanted = new Set(r.instanceIds);
      selected = [...this.#instances.values()].filter((i) => inScopeOf(i, r.account, region) && (wanted.size === 0 || wanted.has(i.id)) && predicates.every((p) => p(i)));
      this.#selection = { query: queryKey, version: this.#version, selected };
    }

    // The token remembers the query it belongs to, as EC2 refuses a token from another query.
    let offset = 0;
    if (r.nextToken !== undefined) {
      const token = this.#tokens.get(r.nextToken);
      if (!token || token.query !== queryKey) throw new Ec2Error('InvalidParameterValue', 'The specified nextToken is not valid.');
      offset = token.offset;
    }
    const size = r.maxResults ?? selected.length;
    const page = selected.slice(offset, offset + size);
    let nextToken: string | undefined;
    if (offset + size < selected.length) {
      nextToken = `eyJ2IjoiMiIsImMiOi${(++this.#tokenCounter).toString(36)}`;
      this.#tokens.set(nextToken, { offset: offset + size, query: queryKey });
    }
    return describeInstancesXml(page, r.account!, nextToken, (i) => this.#xml.get(i)!);
  }
}

/** Starts a fake EC2 endpoint on 127.0.0.1. */
export async function startFakeEc2(options: FakeEc2Options = {}): Promise<FakeEc2> {
  let fake: FakeEc2 | undefined;
  const { url, close } = await listen((req, res) => {
    fake!.handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  fake = new FakeEc2(url, close, options);
  return fake;
}

function recordOf(q: QueryRequest, account: string | undefined): RecordedEc2Request {
  const p = q.params;
  return {
    action: p.Action ?? '',
    version: p.Version ?? '',
    params: p,
    filters: indexedKeys(p, 'Filter').map((n) => ({ name: p[`Filter.${n}.Name`] ?? '', values: listParam(p, `Filter.${n}.Value`) })),
    instanceIds: listParam(p, 'InstanceId'),
    maxResults: p.MaxResults === undefined ? undefined : Number(p.MaxResults),
    nextToken: p.NextToken,
    accessKeyId: q.accessKeyId,
    securityToken: q.securityToken,
    region: q.region,
    account,
    status: 0,
  };
}

function matches(target: FaultTarget, r: RecordedEc2Request): boolean {
  return (
    (target.region === undefined || target.region === r.region) &&
    (target.account === undefined || target.account === r.account) &&
    (!target.laterPages || r.nextToken !== undefined)
  );
}

// EC2 filter values are case-sensitive globs: `*` any run, `?` one character, `\` escapes.
function glob(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) re += escapeRegExp(pattern[++i]!);
    else if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else re += escapeRegExp(c);
  }
  return new RegExp(`^${re}$`, 's');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function inScopeOf(i: FakeInstance, account: string | undefined, region: string): boolean {
  return (i.account ?? DEFAULT_ACCOUNT) === account && (i.region ?? 'us-east-1') === region;
}

/** One tag's value, as tagsOf(i)[key] (a tag named Name wins over `name`). */
function tagOf(i: FakeInstance, key: string): string | undefined {
  if (i.tags !== undefined && Object.hasOwn(i.tags, key)) return i.tags[key];
  return key === 'Name' ? i.name : undefined;
}

function tagsOf(i: FakeInstance): Record<string, string> {
  return { ...(i.name === undefined ? {} : { Name: i.name }), ...i.tags };
}

function filterPredicate(filter: { name: string; values: string[] }): (i: FakeInstance) => boolean {
  if (filter.values.length === 0) throw new Ec2Error('InvalidParameterValue', `The filter '${filter.name}' requires a value`);
  const patterns = filter.values.map(glob);
  const any = (value: string | undefined) => value !== undefined && patterns.some((p) => p.test(value));
  if (filter.name.startsWith('tag:')) {
    const key = filter.name.slice(4);
    return (i) => any(tagOf(i, key));
  }
  switch (filter.name) {
    case 'tag-key':
      return (i) => Object.keys(tagsOf(i)).some(any);
    case 'tag-value':
      return (i) => Object.values(tagsOf(i)).some(any);
    case 'instance-state-name':
      return (i) => any(i.state ?? 'running');
    case 'instance-state-code':
      return (i) => any(String(STATE_CODES[i.state ?? 'running']));
    case 'instance-id':
      return (i) => any(i.id);
    case 'vpc-id':
      return (i) => any(i.vpcId);
    case 'subnet-id':
      return (i) => any(i.subnetId);
    case 'availability-zone':
      return (i) => any(zoneOf(i));
    case 'private-ip-address':
      return (i) => any(i.privateIp);
    default:
      throw new Ec2Error('InvalidParameterValue', `The filter '${filter.name}' is invalid`);
  }
}

function zoneOf(i: FakeInstance): string {
  return i.zone ?? `${i.region ?? 'us-east-1'}a`;
}

function interfacesOf(i: FakeInstance): FakeInterface[] {
  if (i.interfaces) return i.interfaces;
  if (i.privateIp === undefined && i.publicIp === undefined && !i.ipv6s?.length && i.primaryIpv6 === undefined) return [];
  const eth0: FakeInterface = { deviceIndex: 0, privateIps: i.privateIp === undefined ? [] : [i.privateIp] };
  if (i.publicIp !== undefined) eth0.publicIp = i.publicIp;
  const ipv6s = [...(i.primaryIpv6 === undefined ? [] : [i.primaryIpv6]), ...(i.ipv6s ?? [])];
  if (ipv6s.length > 0) eth0.ipv6s = [...new Set(ipv6s)];
  return [eth0];
}

function describeInstancesXml(page: FakeInstance[], account: string, nextToken: string | undefined, xmlOf: (i: FakeInstance) => Buffer): Buffer[] {
  // Consecutive instances of one reservation share a reservationSet item, as EC2 groups them.
  const parts: Buffer[] = [Buffer.from(`<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">${el('requestId', requestId())}<reservationSet>`)];
  const owner = el('ownerId', account);
  const close = Buffer.from('</instancesSet></item>');
  let open: string | undefined;
  for (const i of page) {
    const id = i.reservationId ?? `r-${i.id.slice(2)}`;
    if (id !== open) {
      if (open !== undefined) parts.push(close);
      parts.push(Buffer.from(`<item>${el('reservationId', id)}${i.reservationOwner === undefined ? owner : el('ownerId', i.reservationOwner)}<groupSet/><instancesSet>`));
      open = id;
    }
    parts.push(xmlOf(i));
  }
  if (open !== undefined) parts.push(close);
  parts.push(Buffer.from(`</reservationSet>${el('nextToken', nextToken)}</DescribeInstancesResponse>`));
  return parts;
}

function instanceXml(i: FakeInstance): string {
  const state = i.state ?? 'running';
  const tags = tagsOf(i);
  const dns = i.privateIp ? `ip-${i.privateIp.replaceAll('.', '-')}.ec2.internal` : '';
  const tagSet = Object.keys(tags).length
    ? `<tagSet>${Object.entries(tags).map(([k, v]) => `<item>${el('key', k)}${el('value', v)}</item>`).join('')}</tagSet>`
    : '';
  return (
    `<item>${el('instanceId', i.id)}${el('imageId', 'ami-0abcdef1234567890')}` +
    `<instanceState>${el('code', STATE_CODES[state])}${el('name', i.reportedState ?? state)}</instanceState>` +
    `${el('privateDnsName', dns)}<dnsName/>${el('reason', state === 'stopped' ? 'User initiated (2024-05-01 10:00:00 GMT)' : '')}` +
    `${el('amiLaunchIndex', 0)}<productCodes/>${el('instanceType', 't3.micro')}${el('launchTime', '2024-05-01T09:00:00.000Z')}` +
    `<placement>${el('availabilityZone', zoneOf(i))}<groupName/>${el('tenancy', 'default')}</placement>` +
    `<monitoring><state>disabled</state></monitoring>${el('subnetId', i.subnetId)}${el('vpcId', i.vpcId)}` +
    `${el('privateIpAddress', i.privateIp)}${el('ipAddress', i.publicIp)}${el('ipv6Address', i.primaryIpv6)}` +
    `${el('sourceDestCheck', true)}<groupSet/>${el('architecture', 'x86_64')}${el('rootDeviceType', 'ebs')}` +
    `${el('rootDeviceName', '/dev/xvda')}<blockDeviceMapping/>${el('virtualizationType', 'hvm')}<clientToken/>${tagSet}` +
    `${el('hypervisor', 'xen')}<networkInterfaceSet>${interfacesOf(i).map((ni, n) => interfaceXml(i, ni, n)).join('')}</networkInterfaceSet>` +
    `${el('ebsOptimized', false)}${el('enaSupport', true)}</item>`
  );
}

function interfaceXml(i: FakeInstance, ni: FakeInterface, n: number): string {
  const privateIps = ni.privateIps ?? [];
  const primary = privateIps[0];
  const association = (ip: string | undefined) =>
    ip === undefined ? '' : `<association>${el('publicIp', ip)}${el('publicDnsName', `ec2-${ip.replaceAll('.', '-')}.compute-1.amazonaws.com`)}${el('ipOwnerId', 'amazon')}</association>`;
  const addresses = privateIps
    .map(
      (ip, k) =>
        `<item>${el('privateIpAddress', ip)}${el('primary', k === 0)}${association(k === 0 ? ni.publicIp : ni.secondaryPublicIps?.[ip])}</item>`,
    )
    .join('');
  const ipv6 = (ni.ipv6s ?? []).map((ip, k) => `<item>${el('ipv6Address', ip)}${el('isPrimaryIpv6', k === 0 && ip === i.primaryIpv6)}</item>`).join('');
  return (
    `<item>${el('networkInterfaceId', `eni-${i.id.slice(2, 10)}${n.toString(16).padStart(9, '0')}`)}${el('subnetId', i.subnetId)}${el('vpcId', i.vpcId)}` +
    `${el('description', '')}${el('ownerId', i.account ?? DEFAULT_ACCOUNT)}${el('status', 'in-use')}${el('macAddress', '02:00:00:00:00:0' + (n % 10))}` +
    `${el('privateIpAddress', primary)}${el('sourceDestCheck', true)}<groupSet/>` +
    `<attachment>${el('attachmentId', `eni-attach-${n}`)}${el('deviceIndex', ni.deviceIndex)}${el('networkCardIndex', ni.networkCardIndex ?? 0)}${el('status', 'attached')}${el('deleteOnTermination', true)}</attachment>` +
    `${association(ni.publicIp)}<privateIpAddressesSet>${addresses}</privateIpAddressesSet>` +
    `<ipv6AddressesSet>${ipv6}</ipv6AddressesSet>${el('interfaceType', 'interface')}</item>`
  );
}

function errorXml(code: string, message: string): string {
  return `<Response><Errors><Error><Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message></Error></Errors><RequestID>${requestId()}</RequestID></Response>`;
}
