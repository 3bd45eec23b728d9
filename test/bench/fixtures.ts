// Deterministic inputs of the benchmark: instance i is the same in every process (the bench, the
// fake API server's host, a `serve` reading an inventory), so a seeded cluster holds exactly what
// mapping would produce and a resync of it is a true no-op.
import { writeFileSync } from 'node:fs';
import { type Config, configSchema } from '../../config/schema.ts';
import { mapInstances, plainEntry } from '../../services/mapping/index.ts';
import type { Instance, WorkloadEntry } from '../../services/model.ts';
import type { FakeVm } from '../fakes/azure/arm-server.ts';
import type { FakeInstance } from '../fakes/ec2/ec2-server.ts';
import type { FakeGceInstance } from '../fakes/gcp/compute-server.ts';

/** The owner id of every benchmark installation. */
export const BENCH_OWNER = 'bench';
/** The static provider block's name, which is also the account of its instances. */
export const STATIC_NAME = 'bench';
/** The one scope of that block. */
export const STATIC_SCOPE = `static:${STATIC_NAME}`;
/** The account of every fake EC2 instance. */
export const AWS_ACCOUNT = '123456789012';
/** The region of every instance, static or EC2. */
export const AWS_REGION = 'us-east-1';
/** The observation time of seeded entries; an old one, as after a resync of long ago. */
export const SEED_OBSERVED_AT = '2025-01-01T00:00:00.000Z';

const ZONES = ['a', 'b', 'c'];
const APPS = 50;

/** The tags of instance i: selected, an app label out of 50, one port, one of three versions. */
export function benchTags(i: number): Record<string, string> {
  return { mesh: 'true', 'mesh-app': `app-${i % APPS}`, 'mesh-ports': 'http:8080', 'mesh-version': `v${i % 3}` };
}

/** A private IPv4, unique for i below 8 million; `variant` 1 sets the top bit of the second octet (a moved instance). */
export function benchIp(i: number, variant = 0): string {
  return `10.${((i >> 16) & 127) | (variant << 7)}.${(i >> 8) & 255}.${i & 255}`;
}

/** The id of instance i in a static inventory. */
export function staticId(i: number): string {
  return `vm-${i}`;
}

/** An EC2 instance id (17 hex digits) for instance i. */
export function awsId(i: number): string {
  return `i-${i.toString(16).padStart(17, '0')}`;
}

/** Instance i as the static provider yields it. `variant` 1 moves it to another address (a changed instance). */
export function benchInstance(i: number, observedAt: string, variant = 0): Instance {
  return {
    provider: 'static',
    account: STATIC_NAME,
    region: AWS_REGION,
    zone: `${AWS_REGION}${ZONES[i % ZONES.length]}`,
    id: staticId(i),
    name: staticId(i),
    state: 'running',
    privateIPv4s: [benchIp(i, variant)],
    publicIPv4s: [],
    ipv6s: [],
    tags: benchTags(i),
    observedAt,
  };
}

/** The first n instances. */
export function benchInstances(n: number, observedAt: string): Instance[] {
  return Array.from({ length: n }, (_, i) => benchInstance(i, observedAt));
}

/** Writes a static inventory of the first n machines as JSON (which the provider reads as YAML). */
export function writeStaticInventory(file: string, n: number, from = 0): void {
  const machines = Array.from({ length: n }, (_, k) => from + k).map((i) => ({
    id: staticId(i),
    region: AWS_REGION,
    zone: `${AWS_REGION}${ZONES[i % ZONES.length]}`,
    privateIPv4: benchIp(i),
    tags: benchTags(i),
  }));
  writeFileSync(file, JSON.stringify({ machines }));
}

/** Instance i as the fake EC2 serves it; `tagged` false leaves out the selector tag. */
export function benchEc2Instance(i: number, tagged: boolean, region = AWS_REGION): FakeInstance {
  const { mesh: _mesh, ...rest } = benchTags(i);
  return {
    id: awsId(i),
    region,
    zone: `${region}${ZONES[i % ZONES.length]}`,
    privateIp: benchIp(i),
    vpcId: 'vpc-0bench',
    subnetId: 'subnet-0bench',
    tags: tagged ? { mesh: 'true', ...rest } : rest,
  };
}

/** The validated config of a benchmark installation (defaults everywhere else). */
export function benchConfig(overrides: Record<string, unknown> = {}): Config {
  return configSchema.parse({
    ownerId: BENCH_OWNER,
    providers: [{ type: 'static', name: STATIC_NAME, inventory: '/dev/null' }],
    ...overrides,
  });
}

/** Which provider's instances a seeded cluster holds. */
export type BenchFlavor = 'static' | 'aws' | 'gcp' | 'azure';

/** The flavors whose entries are computed here (benchEntriesOf); the others are seeded from their real listing. */
export type SeedFlavor = 'static' | 'aws';

/** The GCP provider block's name. */
export const GCP_NAME = 'bench';
/** The project of the one-scope GCP runs. */
export const GCP_PROJECT = 'bench-project';
/** The zones of GCP instances. */
const GCP_ZONES = ['us-central1-a', 'us-central1-b', 'us-central1-c'];

/**
 * Instance i as the fake Compute serves it: the tags of benchTags as labels (a label value cannot
 * hold `:`, so the port is written `http-8080`), a numeric id and a name of its own.
 */
export function benchGceInstance(i: number, project = GCP_PROJECT): FakeGceInstance {
  return {
    id: String(4_000_000_000_000 + i),
    name: `vm-${i}`,
    project,
    zone: GCP_ZONES[i % GCP_ZONES.length],
    labels: { ...benchTags(i), 'mesh-ports': 'http-8080' },
    privateIp: benchIp(i),
  };
}

/** The Azure provider block's name. */
export const AZURE_NAME = 'bench';
/** The subscription of the one-scope Azure runs. */
export const AZURE_SUBSCRIPTION = '5e1f0c2a-7b3d-4c8e-9a10-b2c3d4e5f6a7';

/** A subscription id of its own for scope k of a run with several. */
export function benchSubscription(k: number): string {
  return `5e1f0c2a-7b3d-4c8e-9a10-${k.toString(16).padStart(12, '0')}`;
}

/** VM i as the fake ARM serves it: one interface with one private address, in one of three zones. */
export function benchAzureVm(i: number, subscription = AZURE_SUBSCRIPTION): FakeVm {
  return { name: `vm-${i}`, subscription, location: 'westeurope', zones: [String((i % 3) + 1)], tags: benchTags(i), privateIp: benchIp(i) };
}

/** Regions of an AWS block with several scopes. */
export const BENCH_REGIONS: readonly string[] = ['us-east-1', 'us-east-2', 'us-west-2', 'eu-west-1', 'eu-central-1'];

/** The AWS provider block's name. */
export const AWS_NAME = 'bench';
/** The one scope of that block (one account, one region). */
export const AWS_SCOPE = `aws:${AWS_NAME}:${AWS_ACCOUNT}:${AWS_REGION}`;

/** Instance i as the AWS provider yields it from the fake EC2 (benchEc2Instance, tagged). */
export function benchAwsInstance(i: number, observedAt: string): Instance {
  const ec2 = benchEc2Instance(i, true);
  return {
    provider: 'aws',
    account: AWS_ACCOUNT,
    region: AWS_REGION,
    zone: ec2.zone ?? '',
    id: ec2.id,
    name: ec2.id,
    state: 'running',
    privateIPv4s: [ec2.privateIp ?? ''],
    publicIPv4s: [],
    ipv6s: [],
    networkId: ec2.vpcId ?? '',
    subnetId: ec2.subnetId ?? '',
    tags: ec2.tags ?? {},
    observedAt,
  };
}

/**
 * The entries mapping makes of instances from..from+n of a flavor, as the cluster holds them after
 * a sync: what a seeded fake API server stores.
 */
export function benchEntriesOf(flavor: SeedFlavor, n: number, from = 0): WorkloadEntry[] {
  const config = benchConfig();
  const make = flavor === 'aws' ? benchAwsInstance : (i: number, at: string) => benchInstance(i, at);
  const instances = Array.from({ length: n }, (_, k) => make(from + k, SEED_OBSERVED_AT));
  const scopeKey = flavor === 'aws' ? AWS_SCOPE : STATIC_SCOPE;
  // Plain, as the cluster holds them (mapping gives them in compact form).
  return mapInstances(instances, config.mapping, { ownerId: BENCH_OWNER, scopeKey, observedAt: SEED_OBSERVED_AT }).entries.map(plainEntry);
}
