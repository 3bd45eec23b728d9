// One instance, one entry name, whichever way it is seen: listed, described after an event, or
// named by a deletion message. The refresh path deletes `entryName(ref)` when describe says gone,
// so a deletion message must yield the id the listing gave the instance.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mappingSchema } from '../../config/schema.ts';
import { entryName, mapInstance } from '../../services/mapping/index.ts';
import type { Instance } from '../../services/model.ts';
import { type FakeCompute, startFakeCompute } from '../../test/fakes/gcp/compute-server.ts';
import type { GcpProvider } from './gcp-provider.ts';
import { PubSubPushReceiver } from './pubsub.ts';
import { testProvider } from './test-support.ts';

const FIXTURES = path.join(import.meta.dirname, '../../test/fixtures/gcp');
const RULES = mappingSchema.parse({});

let compute: FakeCompute;
let p: GcpProvider;
const receiver = new PubSubPushReceiver({ name: 'test', projects: ['shop-prod'], webhook: undefined });

function push(name: string, change: (payload: Record<string, any>) => void = () => {}) {
  const payload = JSON.parse(readFileSync(path.join(FIXTURES, name), 'utf8')) as Record<string, any>;
  change(payload);
  const body = { message: { data: Buffer.from(JSON.stringify(payload)).toString('base64'), messageId: '1' }, subscription: 'projects/shop-prod/subscriptions/s' };
  const outcome = receiver.handle({ method: 'POST', headers: {}, query: {}, body, rawBody: JSON.stringify(body) });
  if (outcome.kind !== 'refresh') throw new Error(`expected a refresh, got ${JSON.stringify(outcome)}`);
  return outcome.refs;
}

function entryOf(instance: Instance): string {
  const result = mapInstance(instance, RULES, { ownerId: 'default', scopeKey: 'gcp:test:shop-prod', observedAt: instance.observedAt });
  if (result.kind !== 'entry') throw new Error(`expected an entry, got ${JSON.stringify(result)}`);
  return result.entry.metadata.name;
}

beforeEach(async () => {
  compute = await startFakeCompute();
  compute.put({ id: '5550123412341234567', name: 'db-1', project: 'shop-prod', zone: 'europe-west1-b', labels: { mesh: 'true' }, privateIp: '10.20.0.5' });
  p = testProvider(compute.url, { projects: ['shop-prod'] });
});

afterEach(async () => {
  await p.close();
  await compute.close();
});

describe('entry identity', () => {
  it('the listing names the entry by the numeric id', async () => {
    const [instance] = (await p.list(p.scopes()[0]!)).instances;
    expect(entryOf(instance!)).toBe('gcp-5550123412341234567');
  });

  it.each(['asset-feed-instance-deleted.json', 'audit-log-instances-delete.json'])('%s: describe says gone, and the ref names the listed entry', async (fixture) => {
    const [listed] = (await p.list(p.scopes()[0]!)).instances;
    compute.remove('5550123412341234567');

    const refs = push(fixture);
    const [described] = await p.describe(refs);

    expect(described!.instance).toBeNull();
    expect(entryName(described!.ref)).toBe(entryOf(listed!));
  });

  it('an event naming the instance only by name is described under its numeric id, so its entry is found', async () => {
    const [listed] = (await p.list(p.scopes()[0]!)).instances;
    compute.setStatus('5550123412341234567', 'TERMINATED');

    const refs = push('audit-log-instances-setlabels.json', (entry) => {
      entry.resource.labels = {};
    });
    expect(refs[0]!.id).toBe('db-1');
    const [described] = await p.describe(refs);

    expect(described!.instance).toMatchObject({ state: 'stopped' });
    expect(entryName(described!.ref)).toBe(entryOf(listed!));
  });
});
