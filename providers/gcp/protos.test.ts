// The instances client gets the protos of its own service only: the types its methods reach, each
// under the name protobufjs would resolve, and nothing of the rest of Compute.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { INSTANCES_SERVICE, loadInstancesClient, protosForService } from './protos.ts';

const require = createRequire(import.meta.url);
const SHIPPED = JSON.parse(readFileSync(require.resolve('@google-cloud/compute/build/protos/protos.json'), 'utf8'));

function names(node: { nested?: Record<string, unknown> }, prefix = ''): string[] {
  return Object.entries(node.nested ?? {}).flatMap(([name, child]) => [`${prefix}${name}`, ...names(child as { nested?: Record<string, unknown> }, `${prefix}${name}.`)]);
}

describe('protosForService', () => {
  it('keeps the Instances service and what its methods reach, and none of the other services of Compute', () => {
    const kept = new Set(names(protosForService(SHIPPED, INSTANCES_SERVICE)));
    for (const name of ['Instances', 'Instance', 'AggregatedListInstancesRequest', 'InstanceAggregatedList', 'InstancesScopedList', 'Operation', 'NetworkInterface', 'AccessConfig']) {
      expect(kept.has(`google.cloud.compute.v1.${name}`)).toBe(true);
    }
    for (const name of ['Firewalls', 'Disks', 'Disk', 'BackendService', 'Router', 'Subnetwork']) expect(kept.has(`google.cloud.compute.v1.${name}`)).toBe(false);
    expect(kept.size * 10).toBeLessThan(names(SHIPPED).length);
  });

  it.each([
    ['a sibling in the package', 'Item', 'pkg.Item'],
    ['a type nested in the message, kept with it', 'Box.Inner', 'pkg.Box'],
    ['a name relative to an outer namespace', 'other.Thing', 'other.Thing'],
    ['an absolute name', '.other.Thing', 'other.Thing'],
  ])('resolves %s as protobufjs does', (_, type, expected) => {
    const root = {
      nested: {
        pkg: {
          options: { java_package: 'x' },
          nested: {
            Svc: { methods: { Get: { requestType: 'Req', responseType: 'Req' } } },
            Req: { fields: { f: { type, id: 1 } } },
            Item: { fields: { n: { type: 'string', id: 1 } } },
            Box: { fields: { i: { type: 'Inner', id: 1 } }, nested: { Inner: { fields: { n: { type: 'int32', id: 1 } } } } },
            Unused: { fields: { n: { type: 'string', id: 1 } } },
          },
        },
        other: { nested: { Thing: { fields: { n: { type: 'bool', id: 1 } } } } },
      },
    };
    const kept = protosForService(root, 'pkg.Svc');
    expect(names(kept)).toEqual(expect.arrayContaining(['pkg.Svc', 'pkg.Req', expected]));
    expect(names(kept)).not.toContain('pkg.Unused');
    expect((kept.nested!.pkg as { options?: unknown }).options).toEqual({ java_package: 'x' });
  });

  it('refuses a service it cannot find, or a type its methods name that is not there', () => {
    expect(() => protosForService(SHIPPED, 'google.cloud.compute.v1.Nothing')).toThrow(/no service/);
    expect(() => protosForService({ nested: { S: { methods: { M: { requestType: 'Gone', responseType: 'Gone' } } } } }, 'S')).toThrow(/type Gone/);
  });
});

describe('loadInstancesClient', () => {
  it('builds clients whose protobuf root holds only the trimmed protos', () => {
    const Client = loadInstancesClient();
    const client = new Client({ fallback: true, apiEndpoint: '127.0.0.1', port: 9, protocol: 'http' });
    const root = (client as unknown as { _protos: { lookup(name: string): unknown } })._protos;
    expect(root.lookup('google.cloud.compute.v1.Instance')).not.toBeNull();
    expect(root.lookup('google.cloud.compute.v1.BackendService')).toBeNull();
  });
});
