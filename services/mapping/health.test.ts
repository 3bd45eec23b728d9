import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadCrdFile } from '../../test/fakes/kube/resources.ts';
import { parseHealthCheck, type HealthCheck, type ReadinessProbe } from './index.ts';

const WHERE = 'tag mesh-health';
const WORKLOADGROUP_CRD = fileURLToPath(new URL('../../test/fixtures/istio-crds/workloadgroup-crd.yaml', import.meta.url));

const WORKLOADGROUP_V1 = loadCrdFile(WORKLOADGROUP_CRD)[0]!.schemas!.get('v1')!;

function parsed(value: string): HealthCheck | undefined {
  const step = parseHealthCheck(value, WHERE);
  if (!step.ok) throw new Error(`expected a probe, got ${step.code}: ${step.reason}`);
  return step.value;
}

/** What the WorkloadGroup CRD (schema and CEL rules, v1) says of `spec.probe: probe`: pruned fields and errors. */
function againstCrd(probe: ReadinessProbe): { pruned: string[]; errors: string[] } {
  const schema = WORKLOADGROUP_V1;
  const obj = { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadGroup', metadata: { name: 'g', namespace: 'vms' }, spec: { template: {}, probe } };
  const { pruned, errors } = schema.process(obj, undefined);
  return { pruned, errors: errors.map((e) => `${e.field}: ${e.body}`) };
}

describe('parseHealthCheck: probes', () => {
  const http = (port: number, path: string, scheme: 'HTTP' | 'HTTPS' = 'HTTP'): ReadinessProbe => ({ httpGet: { path, port, scheme } });
  it.each<[string, ReadinessProbe, string]>([
    ['http:8080/healthz', http(8080, '/healthz'), 'http:8080/healthz'],
    ['https:8443/ready', http(8443, '/ready', 'HTTPS'), 'https:8443/ready'],
    ['http:8080', http(8080, '/'), 'http:8080/'],
    ['http:80/', http(80, '/'), 'http:80/'],
    ['http:8080/api/v1/Health?full=1&x=%20', http(8080, '/api/v1/Health?full=1&x=%20'), 'http:8080/api/v1/Health?full=1&x=%20'],
    ['HTTP:8080/Ready', http(8080, '/Ready'), 'http:8080/Ready'],
    ['  tcp:5432  ', { tcpSocket: { port: 5432 } }, 'tcp:5432'],
    ['tcp:65535', { tcpSocket: { port: 65535 } }, 'tcp:65535'],
    ['tcp:1', { tcpSocket: { port: 1 } }, 'tcp:1'],
    // The dash form, for GCP labels: `_` is `/`, `-` after the port is kept.
    ['http-8080-healthz', http(8080, '/healthz'), 'http:8080/healthz'],
    ['http-8080-api_v1_health', http(8080, '/api/v1/health'), 'http:8080/api/v1/health'],
    ['http-8080-health-check', http(8080, '/health-check'), 'http:8080/health-check'],
    ['https-8443-ready', http(8443, '/ready', 'HTTPS'), 'https:8443/ready'],
    ['http-8080', http(8080, '/'), 'http:8080/'],
    ['tcp-5432', { tcpSocket: { port: 5432 } }, 'tcp:5432'],
  ])('%s', (value, probe, text) => {
    expect(parsed(value)).toEqual({ probe, text });
  });

  it.each(['', '   ', '\t'])('a blank value %j means no health check', (value) => {
    expect(parsed(value)).toBeUndefined();
  });
});

describe('parseHealthCheck: values that are not probes', () => {
  it.each<[string, string]>([
    ['true', "'true' names no probe; the Istio agent on the VM needs one to report health"],
    ['enabled', 'names no probe'],
    ['8080', "'8080' is not a probe"],
    ['/healthz', 'is not a probe'],
    ['http:', 'has no port'],
    ['http:/healthz', 'has no port'],
    ['http:0/x', "has '0' where a port from 1 to 65535 belongs"],
    ['http:65536', "has '65536' where a port"],
    ['http:8o80/x', "has '8o80' where a port"],
    ['http:8080healthz', "has '8080healthz' where a port"],
    ['http:-1/x', "has '-1' where a port"],
    ['http:8080/health check', "has the path '/health check', which is not a URL path"],
    ['http:8080/a#b', 'which is not a URL path'],
    ['http-8080-Health', "has the path 'Health'; in the dash form a path is lowercase letters"],
    ['http-8080-', "has the path ''"],
    ['http-8080-a.b', "has the path 'a.b'"],
    ['tcp:5432/x', 'gives a path to a tcp probe, which only connects'],
    ['tcp-5432-x', 'gives a path to a tcp probe'],
    ['tcp:', 'has no port'],
    ['ftp:21', "has the unknown probe kind 'ftp'"],
    ['exec:/bin/true', 'asks for an exec probe, which a tag may not set (every VM of the WorkloadGroup would run it)'],
    ['exec-true', 'asks for an exec probe'],
    ['grpc:9090', 'asks for a grpc probe, which the Istio agent on a VM does not run'],
    ['grpc-9090', 'asks for a grpc probe'],
  ])('%j', (value, reason) => {
    const step = parseHealthCheck(value, WHERE);
    expect(step.ok).toBe(false);
    if (step.ok) return;
    expect(step.code).toBe('VMS_SKIP_BAD_HEALTH');
    expect(step.reason).toContain(`${WHERE}: `);
    expect(step.reason).toContain(reason);
    // Every reason says how to write a probe.
    expect(step.reason).toContain('e.g. http:8080/healthz');
  });
});

describe('parseHealthCheck: properties', () => {
  const port = fc.integer({ min: 1, max: 65535 });
  const gcpPath = fc.stringMatching(/^[a-z0-9_-]{1,40}$/);
  const urlPath = fc.stringMatching(/^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]{0,40}$/);
  const probeValue = fc.oneof(
    fc.tuple(fc.constantFrom('http', 'https', 'HTTP'), port, fc.option(urlPath, { nil: undefined })).map(([k, p, path]) => `${k}:${p}${path ?? ''}`),
    fc.tuple(fc.constantFrom('http', 'https'), port, fc.option(gcpPath, { nil: undefined })).map(([k, p, path]) => `${k}-${p}${path === undefined ? '' : `-${path}`}`),
    port.map((p) => `tcp:${p}`),
    port.map((p) => `tcp-${p}`),
  );

  it('every probe it gives is valid for the WorkloadGroup CRD, and its text parses back to it', () => {
    fc.assert(
      fc.property(probeValue, (value) => {
        const check = parsed(value)!;
        expect(againstCrd(check.probe)).toEqual({ pruned: [], errors: [] });
        expect(parsed(check.text)).toEqual(check);
      }),
      { numRuns: 300 },
    );
  });

  it('the dash form is a GCP label value whenever it is short enough to be one', () => {
    fc.assert(
      fc.property(fc.constantFrom('http', 'https'), port, gcpPath, (kind, p, path) => {
        const value = `${kind}-${p}-${path}`;
        expect(value).toMatch(/^[a-z0-9_-]*$/);
        expect(parsed(value)!.probe).toEqual({ httpGet: { port: p, path: `/${path.replaceAll('_', '/')}`, scheme: kind === 'https' ? 'HTTPS' : 'HTTP' } });
      }),
      { numRuns: 300 },
    );
  });

  it('never throws, and answers a probe, nothing or a one-line VMS_SKIP_BAD_HEALTH', () => {
    const anyValue = fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.stringMatching(/^[a-zA-Z0-9:/_\- ?#.]{0,30}$/), probeValue);
    fc.assert(
      fc.property(anyValue, (value) => {
        const step = parseHealthCheck(value, WHERE);
        if (step.ok) {
          if (step.value !== undefined) expect(againstCrd(step.value.probe).errors).toEqual([]);
          else expect(value.trim()).toBe('');
        } else {
          expect(step.code).toBe('VMS_SKIP_BAD_HEALTH');
          expect(step.reason).not.toMatch(/[\n\r]/);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('the CRD check itself', () => {
  it('refuses what the WorkloadGroup CRD refuses', () => {
    expect(againstCrd({ httpGet: { path: '/', port: 0, scheme: 'HTTP' } }).errors.join('\n')).toContain('port must be between 1-65535');
    expect(againstCrd({ httpGet: { path: '/', port: 80, scheme: 'FTP' as 'HTTP' } }).errors.join('\n')).toContain('scheme must be one of [HTTP, HTTPS]');
    expect(againstCrd({ tcpSocket: { port: 80 }, httpGet: { path: '/', port: 80, scheme: 'HTTP' } } as unknown as ReadinessProbe).errors.length).toBeGreaterThan(0);
  });
});
