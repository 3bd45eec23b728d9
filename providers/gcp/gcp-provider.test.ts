// Listing through the real InstancesClient (REST) against the fake Compute endpoint on 127.0.0.1.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { jwtVerify } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isVmsError } from '../../services/errors.ts';
import { DEFAULT_PROJECT, type FakeCompute, startFakeCompute } from '../../test/fakes/gcp/compute-server.ts';
import { COMPUTE_READ_SCOPE } from './compute.ts';
import { createGcpProvider, type GcpProvider, listingFilter } from './gcp-provider.ts';
import { gcpBlock, recordingSleep, SELECTOR, steppingClock, testProvider } from './test-support.ts';

let compute: FakeCompute;
const providers: GcpProvider[] = [];

function provider(...args: Parameters<typeof testProvider> extends [string, ...infer Rest] ? Rest : never): GcpProvider {
  const p = testProvider(compute.url, ...args);
  providers.push(p);
  return p;
}

function scopeOf(p: GcpProvider, project = DEFAULT_PROJECT) {
  const scope = p.scopes().find((s) => s.account === project);
  if (!scope) throw new Error(`no scope for ${project}`);
  return scope;
}

beforeEach(async () => {
  compute = await startFakeCompute();
});

afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.close()));
  await compute.close();
});

describe('scopes', () => {
  it('are the projects of the block, keyed gcp:<name>:<project>, without a region', () => {
    const p = provider({ projects: ['test-project', 'other-project-42'] });
    expect(p.scopes()).toEqual([
      { key: 'gcp:test:test-project', provider: 'gcp', source: 'test', account: 'test-project' },
      { key: 'gcp:test:other-project-42', provider: 'gcp', source: 'test', account: 'other-project-42' },
    ]);
  });

  it('a scope of another block is refused as an incomplete listing, without a call', async () => {
    const p = provider();
    const listing = await p.list({ key: 'gcp:other:test-project', provider: 'gcp', source: 'other', account: 'test-project' });
    expect(listing).toMatchObject({ complete: false, instances: [], problems: [{ code: 'VMS_ERR_PROVIDER_FAILED' }] });
    expect(compute.requests).toHaveLength(0);
  });
});

describe('list', () => {
  it('passes each page on as it is read, and a listing that breaks off after some pages gives nothing', async () => {
    for (let n = 0; n < 5; n++) compute.put({ id: `${2000 + n}`, name: `vm-${n}`, zone: 'us-central1-a', labels: { mesh: 'true' } });
    const p = provider({ pageSize: 2, maxAttempts: 2 }, { sleep: async () => {} });
    const pages: string[][] = [];
    const whole = await p.listPages(scopeOf(p), undefined, async (page) => void pages.push(page.map((i) => i.id)));
    expect(whole).toMatchObject({ complete: true, failed: false, problems: [] });
    expect(pages.flat().sort()).toEqual(['2000', '2001', '2002', '2003', '2004']);
    expect(pages.every((page) => page.length <= 2)).toBe(true);
    expect(pages.length).toBeGreaterThan(1);

    // The second page fails on every try: what the first page gave must not be used.
    let first = true;
    const broken = await p.listPages(scopeOf(p), undefined, async () => {
      if (first) compute.failAlways({}, 500);
      first = false;
    });
    expect(broken).toMatchObject({ complete: false, failed: true, problems: [{ code: 'VMS_ERR_PROVIDER_FAILED' }] });
    expect(await p.list(scopeOf(p))).toMatchObject({ complete: false, instances: [] });
    compute.heal();
  });

  it('asks for the next page while a page is still being taken in, and hands the pages on in order', async () => {
    for (let n = 0; n < 5; n++) compute.put({ id: `${3000 + n}`, name: `vm-${n}`, zone: 'us-central1-a', labels: { mesh: 'true' } });
    const p = provider({ pageSize: 2 });
    const lists = () => compute.requests.filter((r) => r.call === 'aggregatedList').length;
    // Each page is taken in only once Compute has been asked for the one after it (or after a few
    // seconds: then the next page was not asked for, and the listing fails the check below).
    const askedWhileTaking: number[] = [];
    const pages: string[][] = [];
    const listing = await p.listPages(scopeOf(p), undefined, async (instances) => {
      pages.push(instances.map((i) => i.id));
      const wanted = Math.min(pages.length + 1, 3);
      for (let waited = 0; lists() < wanted && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
      askedWhileTaking.push(lists());
    });
    expect(listing).toMatchObject({ complete: true, failed: false });
    expect(askedWhileTaking).toEqual([2, 3, 3]);
    expect(pages.flat()).toEqual(['3000', '3001', '3002', '3003', '3004']);
    expect(lists()).toBe(3);
  });

  it('reads every page across zones, with returnPartialSuccess and the page size, stamping each page', async () => {
    for (let n = 0; n < 5; n++) compute.put({ id: `${1000 + n}`, name: `vm-${n}`, zone: n < 3 ? 'us-central1-a' : 'europe-west1-b', labels: { mesh: 'true' } });
    const p = provider({ pageSize: 2 }, { now: steppingClock().now });

    const listing = await p.list(scopeOf(p));

    expect(listing.problems).toEqual([]);
    expect(listing.complete).toBe(true);
    expect(listing.instances.map((i) => i.id).sort()).toEqual(['1000', '1001', '1002', '1003', '1004']);
    const requests = compute.listRequests;
    expect(requests.map((r) => [r.maxResults, r.returnPartialSuccess, r.pageToken === undefined])).toEqual([
      [2, true, true],
      [2, true, false],
      [2, true, false],
    ]);
    expect(new Set(requests.map((r) => r.pageToken)).size).toBe(3);
    expect([...new Set(listing.instances.map((i) => i.observedAt))]).toEqual(['2025-01-01T00:00:00.000Z', '2025-01-01T00:00:01.000Z', '2025-01-01T00:00:02.000Z']);
    expect(Object.fromEntries(listing.instances.map((i) => [i.id, `${i.region}/${i.zone}`]))).toMatchObject({
      '1000': 'us-central1/us-central1-a',
      '1004': 'europe-west1/europe-west1-b',
    });
  });

  it('sends the selector as a label filter, which Compute evaluates', async () => {
    compute.put({ id: '1', name: 'a', labels: { mesh: 'true' } });
    compute.put({ id: '2', name: 'b', labels: { mesh: 'false' } });
    compute.put({ id: '3', name: 'c', labels: { team: 'x' } });
    compute.put({ id: '4', name: 'd', networkTags: ['mesh'] });
    const p = provider();

    const listing = await p.list(scopeOf(p));

    expect(compute.listRequests[0]!.filter).toBe('labels.mesh = "true"');
    expect(compute.listRequests[0]!.path).toBe('/compute/v1/projects/test-project/aggregated/instances');
    expect(listing.instances.map((i) => i.id)).toEqual(['1']);
  });

  it('a selector value of * asks Compute for the label key only', async () => {
    compute.put({ id: '1', name: 'a', labels: { mesh: 'anything' } });
    compute.put({ id: '2', name: 'b', labels: { team: 'x' } });
    const p = provider({}, { selector: { tag: 'mesh', value: '*' } });

    const listing = await p.list(scopeOf(p));

    expect(compute.listRequests[0]!.filter).toBe('labels.mesh:*');
    expect(listing.instances.map((i) => i.id)).toEqual(['1']);
  });

  it('with networkTagsAsTags, reads the whole project and keeps instances whose label or network tag carries the selector', async () => {
    compute.put({ id: '1', name: 'labelled', labels: { mesh: 'true' } });
    compute.put({ id: '2', name: 'tagged', networkTags: ['mesh', 'http-server'] });
    compute.put({ id: '3', name: 'label-wins', labels: { mesh: 'false' }, networkTags: ['mesh'] });
    compute.put({ id: '4', name: 'neither', networkTags: ['http-server'] });
    const p = provider({ networkTagsAsTags: true });

    const listing = await p.list(scopeOf(p));

    expect(compute.listRequests[0]!.filter).toBeUndefined();
    expect(Object.fromEntries(listing.instances.map((i) => [i.name, i.tags]))).toEqual({
      labelled: { mesh: 'true' },
      tagged: { mesh: 'true', 'http-server': 'true' },
      // The label is kept as it is; mapping then skips the instance as not selected.
      'label-wins': { mesh: 'false' },
    });
  });

  it('maps what Compute answers: zone, region, addresses of every interface, network path, labels', async () => {
    compute.put({
      id: '4567890123456789012',
      name: 'db-1',
      zone: 'europe-west1-b',
      labels: { mesh: 'true', 'mesh-app': 'postgres' },
      nics: [
        { network: 'prod-vpc', networkProject: 'host-project', subnetwork: 'db', networkIP: '10.0.1.10', natIPs: ['34.1.2.3'], ipv6Address: 'fd20:1::10', externalIpv6s: ['2600:1900::10'] },
        { network: 'backup', networkIP: '10.9.0.2' },
      ],
    });
    const p = provider({}, { now: () => new Date('2025-02-03T04:05:06.789Z') });

    const listing = await p.list(scopeOf(p));

    expect(listing.instances).toEqual([
      {
        provider: 'gcp',
        account: 'test-project',
        region: 'europe-west1',
        zone: 'europe-west1-b',
        id: '4567890123456789012',
        name: 'db-1',
        state: 'running',
        privateIPv4s: ['10.0.1.10', '10.9.0.2'],
        publicIPv4s: ['34.1.2.3'],
        ipv6s: ['fd20:1::10', '2600:1900::10'],
        networkId: 'projects/host-project/global/networks/prod-vpc',
        subnetId: 'projects/host-project/regions/europe-west1/subnetworks/db',
        tags: { mesh: 'true', 'mesh-app': 'postgres' },
        observedAt: '2025-02-03T04:05:06.789Z',
      },
    ]);
  });

  it('maps an IPv6-only instance, and lists stopped (TERMINATED), suspended and starting instances with their state', async () => {
    compute.put({ id: '1', name: 'v6', labels: { mesh: 'true' }, nics: [{ ipv6Address: 'fd20:1::1' }] });
    compute.put({ id: '2', name: 'stopped', labels: { mesh: 'true' }, status: 'TERMINATED', privateIp: '10.0.0.2' });
    compute.put({ id: '3', name: 'suspended', labels: { mesh: 'true' }, status: 'SUSPENDED', privateIp: '10.0.0.3' });
    compute.put({ id: '4', name: 'booting', labels: { mesh: 'true' }, status: 'STAGING', privateIp: '10.0.0.4' });
    compute.put({ id: '5', name: 'stopping', labels: { mesh: 'true' }, status: 'STOPPING', privateIp: '10.0.0.5' });
    const p = provider();

    const byName = new Map((await p.list(scopeOf(p))).instances.map((i) => [i.name, i]));

    expect(byName.get('v6')).toMatchObject({ privateIPv4s: [], publicIPv4s: [], ipv6s: ['fd20:1::1'], state: 'running' });
    expect(Object.fromEntries([...byName].map(([name, i]) => [name, i.state]))).toEqual({
      v6: 'running',
      stopped: 'stopped',
      suspended: 'stopped',
      booting: 'pending',
      stopping: 'stopping',
    });
  });

  it('an unreachable zone (unreachables) makes the listing incomplete; the other zones are still listed', async () => {
    compute.put({ id: '1', name: 'a', zone: 'us-central1-a', labels: { mesh: 'true' } });
    compute.put({ id: '2', name: 'b', zone: 'europe-west1-b', labels: { mesh: 'true' } });
    compute.unreachable('europe-west1-b');
    const p = provider();

    const listing = await p.list(scopeOf(p));

    expect(listing.instances.map((i) => i.id)).toEqual(['1']);
    expect(listing.complete).toBe(false);
    expect(listing.problems).toEqual([
      { code: 'VMS_ERR_PROVIDER_FAILED', message: 'zones/europe-west1-b of project test-project could not be reached; its instances are missing from the listing', at: 'zones/europe-west1-b' },
    ]);
  });

  it('a zone filed under a warning other than NO_RESULTS_ON_PAGE makes the listing incomplete', async () => {
    compute.put({ id: '1', name: 'a', zone: 'us-central1-a', labels: { mesh: 'true' } });
    compute.zoneWarning('us-central1-b', 'UNREACHABLE', "The resource 'zones/us-central1-b' is unreachable.");
    const p = provider();

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: false, instances: [{ id: '1' }] });
    expect(listing.problems).toEqual([
      {
        code: 'VMS_ERR_PROVIDER_FAILED',
        message: "zones/us-central1-b of project test-project answered UNREACHABLE: The resource 'zones/us-central1-b' is unreachable.; its instances may be missing",
        at: 'zones/us-central1-b',
      },
    ]);
  });

  it("an answer with an instance of another project (its selfLink) fails the listing with VMS_ERR_ACCOUNT_MISMATCH and gives nothing", async () => {
    compute.put({ id: '1', name: 'a', labels: { mesh: 'true' } });
    compute.put({ id: '2', name: 'b', project: 'other-project', labels: { mesh: 'true' } });
    compute.answerAs(DEFAULT_PROJECT, 'other-project');
    const p = provider();

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: false, instances: [], problems: [{ code: 'VMS_ERR_ACCOUNT_MISMATCH', at: 'zones/us-central1-a' }] });
    expect(listing.problems).toHaveLength(1);
    expect(listing.problems[0]!.message).toBe(
      `aggregatedList of project test-project answered with instance b of project other-project (its selfLink is https://www.googleapis.com/compute/v1/projects/other-project/zones/us-central1-a/instances/b): the Compute endpoint ${compute.url} does not serve project test-project as asked; check projects[] and endpoint (nothing in this scope is changed until they match)`,
    );
  });

  it('empty zones (NO_RESULTS_ON_PAGE) do not make a listing incomplete, and an empty project is a complete empty listing', async () => {
    const p = provider();
    const listing = await p.list(scopeOf(p));
    expect(listing).toEqual({ scope: scopeOf(p), instances: [], complete: true, problems: [] });
    expect(compute.listRequests[0]!.status).toBe(200);
  });

  it('rides out throttling: a 429 is retried with growing, jittered backoff and the listing is complete', async () => {
    compute.put({ id: '1', name: 'a', labels: { mesh: 'true' } });
    compute.failNext(2, 429);
    const recorder = recordingSleep();
    const p = provider({ maxAttempts: 3, retryDelay: '400ms' }, { sleep: recorder.sleep, random: () => 1 });

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: true, problems: [], instances: [{ id: '1' }] });
    expect(compute.listRequests.map((r) => r.status)).toEqual([429, 429, 200]);
    // Attempt n waits between half and all of retryDelay·2^(n-1).
    expect(recorder.delays).toEqual([400, 800]);
  });

  it('a 503 that persists fails the project after maxAttempts, as an incomplete listing with the reason; another project still lists', async () => {
    compute.put({ id: '1', name: 'a', project: 'test-project', labels: { mesh: 'true' } });
    compute.put({ id: '2', name: 'b', project: 'other-project', labels: { mesh: 'true' } });
    compute.failAlways({ project: 'other-project' }, 503);
    const recorder = recordingSleep();
    const p = provider({ projects: ['test-project', 'other-project'], maxAttempts: 4 }, { sleep: recorder.sleep, random: () => 0 });

    const [ok, bad] = await Promise.all([p.list(scopeOf(p, 'test-project')), p.list(scopeOf(p, 'other-project'))]);

    expect(ok).toMatchObject({ complete: true, instances: [{ id: '1' }] });
    expect(bad).toEqual({
      scope: scopeOf(p, 'other-project'),
      instances: [],
      complete: false,
      problems: [
        {
          code: 'VMS_ERR_PROVIDER_FAILED',
          message: 'aggregatedList of project other-project failed: HTTP 503: The service is currently unavailable. (after 4 attempts)',
          at: 'page 1',
        },
      ],
    });
    expect(compute.listRequests.filter((r) => r.project === 'other-project')).toHaveLength(4);
    expect(recorder.delays).toEqual([250, 500, 1000]);
  });

  it('an endpoint that refuses connections is retried like a 503, then the project counts as failed', async () => {
    const gone = await startFakeCompute();
    await gone.close();
    const recorder = recordingSleep();
    const p = testProvider(gone.url, { maxAttempts: 2 }, { sleep: recorder.sleep });
    providers.push(p);

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: false, problems: [{ message: expect.stringMatching(/ECONNREFUSED.*\(after 2 attempts\)$/) }] });
    expect(recorder.delays).toHaveLength(1);
  });

  it('an error that no retry fixes (403) fails at once', async () => {
    compute.failAlways({}, 403);
    const p = provider({ maxAttempts: 5 });

    const listing = await p.list(scopeOf(p));

    expect(listing.problems).toEqual([
      { code: 'VMS_ERR_PROVIDER_FAILED', message: "aggregatedList of project test-project failed: HTTP 403: Required 'compute.instances.list' permission for 'projects/test-project'", at: 'page 1' },
    ]);
    expect(compute.listRequests).toHaveLength(1);
  });

  it('a failure on a later page discards the pages already read: no partial listing passes as complete', async () => {
    for (let n = 0; n < 5; n++) compute.put({ id: `${n + 1}`, name: `vm-${n}`, labels: { mesh: 'true' } });
    compute.failAlways({ laterPages: true }, 500);
    const p = provider({ pageSize: 2, maxAttempts: 2 });

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: false, instances: [], problems: [{ at: 'page 2', message: expect.stringContaining('HTTP 500') }] });
    expect(compute.listRequests.map((r) => r.status)).toEqual([200, 500, 500]);
  });

  it('an instance with a status this version does not know makes the listing incomplete but keeps the others', async () => {
    compute.put({ id: '1', name: 'a', labels: { mesh: 'true' } });
    compute.put({ id: '2', name: 'b', labels: { mesh: 'true' }, status: 'HIBERNATING' });
    const p = provider();

    const listing = await p.list(scopeOf(p));

    expect(listing.instances.map((i) => i.id)).toEqual(['1']);
    expect(listing.complete).toBe(false);
    expect(listing.problems).toEqual([{ code: 'VMS_ERR_PROVIDER_ANSWER', message: "instance 2 (b) in us-central1-a has an unknown status 'HIBERNATING'", at: '2' }]);
  });

  it('sees label changes between listings; an instance that lost the selector label is no longer listed', async () => {
    compute.put({ id: '1', name: 'a', labels: { mesh: 'true', 'mesh-app': 'web' } });
    const p = provider();
    expect((await p.list(scopeOf(p))).instances[0]!.tags).toEqual({ mesh: 'true', 'mesh-app': 'web' });

    compute.setLabels('1', { 'mesh-app': 'web' });
    expect(await p.list(scopeOf(p))).toMatchObject({ complete: true, instances: [] });
  });

  it('an aborted signal abandons the listing as incomplete, also while a request is in flight', async () => {
    const p = provider();
    const before = new AbortController();
    before.abort(new Error('resync timeout'));
    expect(await p.list(scopeOf(p), before.signal)).toMatchObject({
      complete: false,
      problems: [{ message: 'aggregatedList of project test-project was abandoned after 0 page(s): resync timeout' }],
    });
    expect(compute.requests).toHaveLength(0);

    compute.hang({});
    const during = new AbortController();
    const pending = p.list(scopeOf(p), during.signal);
    await vi.waitFor(() => expect(compute.requests).toHaveLength(1));
    during.abort(new Error('shutting down'));
    expect(await pending).toMatchObject({ complete: false, instances: [], problems: [{ message: expect.stringContaining('abandoned after 0 page(s): shutting down') }] });
  });

  it('a request that exceeds the timeout is abandoned, retried, and the project counts as failed', async () => {
    compute.hang({});
    const p = provider({ timeout: '200ms', maxAttempts: 2 });

    const listing = await p.list(scopeOf(p));

    expect(listing.complete).toBe(false);
    expect(listing.problems[0]!.message).toMatch(/^aggregatedList of project test-project failed: .*\d+ milliseconds.* \(after 2 attempts\)$/);
    expect(compute.listRequests).toHaveLength(2);
  });
});

describe('memory', () => {
  it('a listing keeps none of the pages it has read once it is done (the library held each for its 30 s timeout)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    for (let i = 0; i < 5000; i++) compute.put({ id: String(10_000 + i), name: `vm-${i}`, zone: 'us-central1-a', labels: { mesh: 'true', 'mesh-app': `app-${i}` }, privateIp: '10.0.0.1' });
    const p = provider({ timeout: '60s' });
    // A first listing loads what the client loads once (its protos, the auth client).
    expect(await p.listPages(scopeOf(p), undefined, async () => {})).toMatchObject({ complete: true });
    gc();
    const before = process.memoryUsage().heapUsed;
    let listed = 0;
    expect(await p.listPages(scopeOf(p), undefined, async (page) => void (listed += page.length))).toMatchObject({ complete: true });
    gc();
    const kept = process.memoryUsage().heapUsed - before;
    expect(listed).toBe(5000);
    // The 10 pages of this listing hold about 15 MiB while they are reachable.
    expect(kept).toBeLessThan(4 * 1024 * 1024);
  });
});

describe('listingFilter', () => {
  it.each<[string, { tag: string; value: string }, boolean, ReturnType<typeof listingFilter>]>([
    ['a value: lowercased and trimmed, as mapping compares', { tag: 'mesh', value: ' TRUE ' }, false, { server: 'labels.mesh = "true"', clientSide: false }],
    ['any value', { tag: 'mesh', value: '*' }, false, { server: 'labels.mesh:*', clientSide: false }],
    ['network tags could select: client-side', { tag: 'mesh', value: 'true' }, true, { server: undefined, clientSide: true }],
    ['network tags could select any value: client-side', { tag: 'mesh', value: '*' }, true, { server: undefined, clientSide: true }],
    ['network tags cannot carry another value: the server filters', { tag: 'mesh', value: 'yes' }, true, { server: 'labels.mesh = "yes"', clientSide: false }],
  ])('%s', (_, selector, networkTags, expected) => {
    expect(listingFilter(selector, networkTags)).toEqual(expected);
  });

  it.each([
    [{ tag: 'Mesh', value: 'true' }, "mapping.selector.tag 'Mesh' can never be a GCP label key"],
    [{ tag: 'mesh.io/x', value: 'true' }, "mapping.selector.tag 'mesh.io/x' can never be a GCP label key"],
    [{ tag: 'mesh', value: 'yes please' }, "mapping.selector.value 'yes please' can never be a GCP label value"],
  ])('refuses a selector no GCP label can carry: %j', (selector, message) => {
    let err: unknown;
    try {
      listingFilter(selector, false);
    } catch (e) {
      err = e;
    }
    expect(isVmsError(err, 'VMS_ERR_CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toContain(message);
  });
});

describe('credentials', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'vms-gcp-key-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('a keyFile of a service account signs each request with the key, scoped to reading Compute', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyFile = path.join(dir, 'key.json');
    writeFileSync(
      keyFile,
      JSON.stringify({
        type: 'service_account',
        project_id: 'test-project',
        private_key_id: 'k-123',
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
        client_email: 'vm-mesh-sync@test-project.iam.gserviceaccount.com',
        client_id: '1234567890',
        token_uri: 'https://oauth2.googleapis.com/token',
      }),
    );
    compute.put({ id: '1', name: 'a', labels: { mesh: 'true' } });
    const p = createGcpProvider(gcpBlock(compute.url, { keyFile }), { selector: SELECTOR });
    providers.push(p);

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: true, instances: [{ id: '1' }] });
    const bearer = /^Bearer (.+)$/.exec(compute.listRequests[0]!.authorization ?? '')?.[1];
    expect(bearer).toBeDefined();
    const { payload, protectedHeader } = await jwtVerify(bearer!, publicKey);
    expect(protectedHeader).toMatchObject({ alg: 'RS256', kid: 'k-123' });
    expect(payload).toMatchObject({ iss: 'vm-mesh-sync@test-project.iam.gserviceaccount.com', sub: 'vm-mesh-sync@test-project.iam.gserviceaccount.com', scope: COMPUTE_READ_SCOPE });
  });

  it.each([
    ['missing', null, 'key file {dir}/key.json cannot be read (ENOENT)'],
    ['not JSON', 'not json', 'key file {dir}/key.json is not JSON'],
    ['not a service account key', JSON.stringify({ type: 'external_account', credential_source: { executable: { command: '/bin/true' } } }), 'is not a service account key'],
  ])('a keyFile that is %s fails the listing with the reason, without a request', async (_, content, message) => {
    const keyFile = path.join(dir, 'key.json');
    if (content !== null) writeFileSync(keyFile, content);
    const p = createGcpProvider(gcpBlock(compute.url, { keyFile }), { selector: SELECTOR, sleep: recordingSleep().sleep });
    providers.push(p);

    const listing = await p.list(scopeOf(p));

    expect(listing).toMatchObject({ complete: false, problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: expect.stringContaining(message.replace('{dir}', dir)) }] });
    expect(compute.requests).toHaveLength(0);
  });

  it('a client whose start failed is replaced: a key file that appears later is used', async () => {
    const keyFile = path.join(dir, 'key.json');
    compute.put({ id: '1', name: 'a', labels: { mesh: 'true' } });
    const p = createGcpProvider(gcpBlock(compute.url, { keyFile }), { selector: SELECTOR });
    providers.push(p);
    expect((await p.list(scopeOf(p))).complete).toBe(false);

    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(keyFile, JSON.stringify({ type: 'service_account', private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }), client_email: 'a@test-project.iam.gserviceaccount.com' }));

    expect(await p.list(scopeOf(p))).toMatchObject({ complete: true, instances: [{ id: '1' }] });
  });
});
