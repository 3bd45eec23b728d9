import { describe, expect, it } from 'vitest';
import type { Described, Instance, InstanceRef, Problem, Scope } from '../services/model.ts';
import { BrokenListing, CloudProvider, cloudScope, ListingStepFailure, type ScopeReading } from './cloud-provider.ts';
import type { WebhookReceiver } from './provider.ts';

const NOW = new Date('2025-01-01T00:00:00.000Z');

function instance(id: string): Instance {
  return {
    provider: 'gcp',
    account: 'p1',
    region: 'europe-west1',
    zone: 'europe-west1-b',
    id,
    name: id,
    state: 'running',
    privateIPv4s: ['10.0.0.1'],
    publicIPv4s: [],
    ipv6s: [],
    tags: {},
    observedAt: NOW.toISOString(),
  };
}

/** A cloud as small as one can be: its pages and its failure come from the test. */
class TinyCloud extends CloudProvider {
  readonly kind = 'gcp' as const;
  readonly webhook = {} as WebhookReceiver;
  readonly #read: (reading: ScopeReading) => Promise<Problem[]>;

  constructor(read: (reading: ScopeReading) => Promise<Problem[]>) {
    super('tiny', [cloudScope('gcp', 'tiny', 'p1')], () => NOW);
    this.#read = read;
  }

  protected listingCall(scope: Scope, step?: string): string {
    return `${step ?? 'reading'} of ${scope.account}`;
  }

  protected readScope(_scope: Scope, reading: ScopeReading): Promise<Problem[]> {
    return this.#read(reading);
  }

  protected explain(err: unknown): string {
    return `explained ${(err as Error).message}`;
  }

  async describe(refs: InstanceRef[]): Promise<Described[]> {
    if (refs.some((r) => r.account !== 'p1')) throw this.outside(refs[0]!, `gcp:${refs[0]!.account}:${refs[0]!.id}`);
    return refs.map((ref) => ({ ref, instance: null }));
  }

  async close(): Promise<void> {}
}

const SCOPE = cloudScope('gcp', 'tiny', 'p1');
const aborted = (): AbortSignal => AbortSignal.abort(new Error('deadline'));

describe('cloudScope', () => {
  it.each([
    [cloudScope('aws', 'prod', '123456789012', 'eu-west-1'), { key: 'aws:prod:123456789012:eu-west-1', provider: 'aws', source: 'prod', account: '123456789012', region: 'eu-west-1' }],
    [cloudScope('azure', 'corp', 'sub-1'), { key: 'azure:corp:sub-1', provider: 'azure', source: 'corp', account: 'sub-1' }],
  ])('%o', (scope, expected) => expect(scope).toEqual(expected));
});

describe('CloudProvider.listPages', () => {
  const problem: Problem = { code: 'VMS_ERR_PROVIDER_ANSWER', message: 'vm-2 cannot be read', at: 'vm-2' };

  it.each([
    {
      name: 'a whole listing',
      read: async ({ onPage, progress }: ScopeReading) => {
        progress.pages++;
        await onPage([instance('vm-1')]);
        return [];
      },
      signal: undefined,
      expected: { scope: SCOPE, complete: true, problems: [], failed: false },
    },
    {
      name: 'a listing with problems is incomplete',
      read: async () => [problem],
      signal: undefined,
      expected: { scope: SCOPE, complete: false, problems: [problem], failed: false },
    },
    {
      name: 'a failed call',
      read: async ({ progress }: ScopeReading) => {
        progress.pages = 2;
        throw new Error('503');
      },
      signal: undefined,
      expected: { scope: SCOPE, complete: false, failed: true, problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: 'reading of p1 failed: explained 503', at: 'page 3' }] },
    },
    {
      name: 'a failed step',
      read: async () => {
        throw new ListingStepFailure('listing disks', 'group g', new Error('403'));
      },
      signal: undefined,
      expected: { scope: SCOPE, complete: false, failed: true, problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: 'listing disks of p1 failed: explained 403', at: 'group g' }] },
    },
    {
      name: 'an answer that cannot be trusted',
      read: async () => {
        throw new BrokenListing('instances of another account', 'page 1', 'VMS_ERR_ACCOUNT_MISMATCH');
      },
      signal: undefined,
      expected: { scope: SCOPE, complete: false, failed: true, problems: [{ code: 'VMS_ERR_ACCOUNT_MISMATCH', message: 'instances of another account', at: 'page 1' }] },
    },
    {
      name: 'an abandoned listing',
      read: async () => [],
      signal: aborted(),
      expected: { scope: SCOPE, complete: false, failed: true, problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: 'reading of p1 was abandoned after 0 page(s): deadline', at: 'page 1' }] },
    },
  ])('$name', async ({ read, signal, expected }) => {
    const pages: Instance[][] = [];
    const listing = await new TinyCloud(read).listPages(SCOPE, signal, async (page) => void pages.push(page));
    expect(listing).toEqual(expected);
  });

  it('lists no scope of another block, and gives no instances for a broken listing', async () => {
    const cloud = new TinyCloud(async ({ onPage }) => {
      await onPage([instance('vm-1')]);
      throw new Error('page 2 failed');
    });
    const other = cloudScope('gcp', 'other', 'p1');
    expect(await cloud.list(other)).toEqual({
      scope: other,
      complete: false,
      instances: [],
      problems: [{ code: 'VMS_ERR_PROVIDER_FAILED', message: 'scope gcp:other:p1 does not belong to gcp provider "tiny"', at: 'gcp:other:p1' }],
    });
    expect((await cloud.list(SCOPE)).instances).toEqual([]);
  });

  it('hands out copies of its scopes and refuses references outside the block', async () => {
    const cloud = new TinyCloud(async () => []);
    cloud.scopes()[0]!.account = 'changed';
    expect(cloud.scopes()).toEqual([SCOPE]);
    await expect(cloud.describe([{ provider: 'gcp', account: 'p9', id: 'vm-1' }])).rejects.toThrow('reference gcp:p9:vm-1 is outside gcp provider "tiny"');
  });
});
