// describe(): instances by reference, through the real InstancesClient against the fake Compute endpoint.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isVmsError } from '../../services/errors.ts';
import type { InstanceRef } from '../../services/model.ts';
import { DEFAULT_PROJECT, type FakeCompute, startFakeCompute } from '../../test/fakes/gcp/compute-server.ts';
import type { GcpProvider } from './gcp-provider.ts';
import { recordingSleep, testProvider } from './test-support.ts';

let compute: FakeCompute;
let p: GcpProvider;

/** A reference; `null` zone: one without a zone. */
function ref(id: string, zone: string | null = 'us-central1-a', account = DEFAULT_PROJECT): InstanceRef {
  return zone === null ? { provider: 'gcp', account, id } : { provider: 'gcp', account, region: zone.slice(0, zone.lastIndexOf('-')), zone, id };
}

beforeEach(async () => {
  compute = await startFakeCompute();
  p = testProvider(compute.url, { maxAttempts: 2 });
});

afterEach(async () => {
  await p.close();
  await compute.close();
});

describe('describe', () => {
  it('gets each referenced instance by numeric id, whatever its labels (a lost selector label must be seen)', async () => {
    compute.put({ id: '1001', name: 'web-1', labels: { mesh: 'true' }, privateIp: '10.0.0.1' });
    compute.put({ id: '1002', name: 'web-2', status: 'TERMINATED', privateIp: '10.0.0.2' });

    const described = await p.describe([ref('1001'), ref('1002')]);

    expect(described.map((d) => [d.ref.id, d.instance?.id, d.instance?.name, d.instance?.state, d.instance?.tags])).toEqual([
      ['1001', '1001', 'web-1', 'running', { mesh: 'true' }],
      ['1002', '1002', 'web-2', 'stopped', {}],
    ]);
    expect(compute.getRequests.map((r) => r.path).sort()).toEqual([
      '/compute/v1/projects/test-project/zones/us-central1-a/instances/1001',
      '/compute/v1/projects/test-project/zones/us-central1-a/instances/1002',
    ]);
    expect(compute.listRequests).toHaveLength(0);
  });

  it('a 404 is null (gone)', async () => {
    compute.put({ id: '1001', name: 'web-1' });

    const described = await p.describe([ref('1001'), ref('999')]);

    expect(described).toEqual([
      { ref: ref('1001'), instance: expect.objectContaining({ id: '1001' }) },
      { ref: ref('999'), instance: null },
    ]);
    expect(compute.getRequests.map((r) => r.status).sort()).toEqual([200, 404]);
  });

  it('a reference by name is answered with the numeric id, the id its entry is named by', async () => {
    compute.put({ id: '1001', name: 'web-1', labels: { mesh: 'true' } });

    const [found, gone] = await p.describe([ref('web-1'), ref('web-9')]);

    expect(found).toEqual({ ref: ref('1001'), instance: expect.objectContaining({ id: '1001', name: 'web-1' }) });
    expect(gone).toEqual({ ref: ref('web-9'), instance: null });
    expect(compute.getRequests.map((r) => r.instance).sort()).toEqual(['web-1', 'web-9']);
  });

  it('a reference without a zone is looked up with a filtered aggregatedList', async () => {
    compute.put({ id: '1001', name: 'web-1', zone: 'europe-west1-b' });
    compute.put({ id: '1002', name: 'web-2', zone: 'us-central1-a' });

    const [byId, byName, gone] = await p.describe([ref('1001', null), ref('web-2', null), ref('999', null)]);

    expect(byId!.instance).toMatchObject({ id: '1001', zone: 'europe-west1-b', region: 'europe-west1' });
    expect(byName).toEqual({ ref: ref('1002', null), instance: expect.objectContaining({ id: '1002', zone: 'us-central1-a' }) });
    expect(gone!.instance).toBeNull();
    expect(compute.listRequests.map((r) => r.filter).sort()).toEqual(['id = 1001', 'id = 999', 'name = "web-2"']);
    expect(compute.getRequests).toHaveLength(0);
  });

  it('without a zone, an unreachable zone means "unknown", not gone: it throws', async () => {
    compute.unreachable('europe-west1-b');

    const err = await p.describe([ref('1001', null)]).catch((e: unknown) => e);

    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect((err as Error).message).toContain('zones/europe-west1-b of project test-project could not be reached');
  });

  it('a name used in two zones cannot be resolved without a zone', async () => {
    compute.put({ id: '1', name: 'twin', zone: 'us-central1-a' });
    compute.put({ id: '2', name: 'twin', zone: 'us-central1-b' });

    const err = await p.describe([ref('twin', null)]).catch((e: unknown) => e);

    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect((err as Error).message).toBe('instance name twin is used in several zones of project test-project; the reference needs a zone');
  });

  it('asks once for duplicate references; a malformed id is null without a call', async () => {
    compute.put({ id: '1001', name: 'web-1' });

    const described = await p.describe([ref('1001'), ref('1001'), ref('Not_An-Id')]);

    expect(described.map((d) => d.instance?.id ?? null)).toEqual(['1001', '1001', null]);
    expect(compute.getRequests).toHaveLength(1);
  });

  it('a 429 is retried; a failure that persists throws VMS_ERR_PROVIDER_FAILED, so the caller retries instead of deleting', async () => {
    compute.put({ id: '1001', name: 'web-1' });
    compute.failNext(1, 429);
    expect((await p.describe([ref('1001')]))[0]!.instance).toMatchObject({ id: '1001' });
    expect(compute.getRequests.map((r) => r.status)).toEqual([429, 200]);

    compute.failAlways({ call: 'get' }, 503);
    const err = await p.describe([ref('1001')]).catch((e: unknown) => e);
    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect((err as Error).message).toBe('instances.get of 1001 in us-central1-a (project test-project) failed: HTTP 503: The service is currently unavailable. (after 2 attempts)');
  });

  it('a permission error is not retried and throws', async () => {
    compute.failAlways({ call: 'get' }, 403, "Required 'compute.instances.get' permission for 'projects/test-project/zones/us-central1-a/instances/1001'");
    const err = await p.describe([ref('1001')]).catch((e: unknown) => e);
    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect(compute.getRequests).toHaveLength(1);
  });

  it('a reference outside the block (another project or provider) or with a bad zone throws instead of saying gone', async () => {
    for (const outside of [ref('1001', 'us-central1-a', 'other-project'), { ...ref('1001'), provider: 'aws' as const }, ref('1001', 'not a zone')]) {
      const err = await p.describe([outside]).catch((e: unknown) => e);
      expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    }
    expect(compute.requests).toHaveLength(0);
  });

  it('an answer with an instance of another project (its selfLink) throws VMS_ERR_ACCOUNT_MISMATCH, by get and by aggregatedList', async () => {
    compute.put({ id: '1001', name: 'web-1', project: 'other-project' });
    compute.answerAs(DEFAULT_PROJECT, 'other-project');

    for (const reference of [ref('1001'), ref('1001', null)]) {
      const err = await p.describe([reference]).catch((e: unknown) => e);
      expect(isVmsError(err, 'VMS_ERR_ACCOUNT_MISMATCH'), String(err)).toBe(true);
      expect((err as Error).message).toMatch(/answered with instance web-1 of project other-project \(its selfLink is [^)]*\): the Compute endpoint .* does not serve project test-project as asked/);
    }
    expect(compute.getRequests.map((r) => r.status)).toEqual([200]);
    expect(compute.listRequests.map((r) => r.status)).toEqual([200]);
  });

  it('maps network tags into tags when configured, as the listing does', async () => {
    const tagged = testProvider(compute.url, { networkTagsAsTags: true }, { sleep: recordingSleep().sleep });
    try {
      compute.put({ id: '1001', name: 'web-1', networkTags: ['mesh'], labels: { team: 'a' } });
      const [d] = await tagged.describe([ref('1001')]);
      expect(d!.instance!.tags).toEqual({ team: 'a', mesh: 'true' });
    } finally {
      await tagged.close();
    }
  });

  it('an aborted signal throws', async () => {
    compute.put({ id: '1001', name: 'web-1' });
    const controller = new AbortController();
    controller.abort(new Error('request cancelled'));
    const err = await p.describe([ref('1001')], controller.signal).catch((e: unknown) => e);
    expect(isVmsError(err, 'VMS_ERR_PROVIDER_FAILED')).toBe(true);
    expect((err as Error).message).toContain('abandoned: request cancelled');
  });
});
