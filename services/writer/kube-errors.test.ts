import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiException } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { VmsError } from '../errors.ts';
import { createKubeApi } from './kube-api.ts';
import { loadKubeConfig } from './kubeconfig.ts';
import { parseRetryAfter, translateKubeError } from './kube-errors.ts';
import { TransientKubeError } from './transient-kube-error.ts';

const ctx = { verb: 'create', what: 'WorkloadEntry ns1/vm-1' } as const;

function apiException(code: number, body: unknown, headers: Record<string, string> = {}): ApiException<unknown> {
  return new ApiException(code, 'Unknown API Status Code!', typeof body === 'string' ? body : JSON.stringify(body), headers);
}

describe('translateKubeError', () => {
  it('429 is transient and carries Retry-After in milliseconds', () => {
    const err = translateKubeError(apiException(429, { kind: 'Status', reason: 'TooManyRequests', code: 429 }, { 'retry-after': '3' }), ctx);
    expect(err).toBeInstanceOf(TransientKubeError);
    expect((err as TransientKubeError).retryAfterMs).toBe(3000);
    expect((err as TransientKubeError).code).toBe('VMS_ERR_KUBE_TRANSIENT');
  });

  it('5xx and 409 are transient; 409 says so', () => {
    const e500 = translateKubeError(apiException(500, { reason: 'InternalError', message: 'Internal error occurred: boom' }), ctx);
    const e409 = translateKubeError(apiException(409, { reason: 'Conflict', message: 'the object has been modified' }), ctx);
    expect(e500).toBeInstanceOf(TransientKubeError);
    expect((e500 as TransientKubeError).retryAfterMs).toBeUndefined();
    expect((e409 as TransientKubeError).isConflict).toBe(true);
  });

  it('422 is VMS_ERR_KUBE_REJECTED with the server message and the causes', () => {
    const err = translateKubeError(
      apiException(422, {
        reason: 'Invalid',
        message: 'WorkloadEntry.networking.istio.io "vm-1" is invalid',
        details: { causes: [{ reason: 'FieldValueInvalid', field: 'spec.ports.http', message: 'Invalid value: 0' }] },
      }),
      ctx,
    );
    expect(err).toBeInstanceOf(VmsError);
    expect(err).not.toBeInstanceOf(TransientKubeError);
    expect((err as VmsError).code).toBe('VMS_ERR_KUBE_REJECTED');
    expect(err.message).toContain('"vm-1" is invalid');
    expect(err.message).toContain('spec.ports.http: Invalid value: 0');
  });

  it('404 about the namespace is VMS_ERR_KUBE_NAMESPACE_MISSING naming it', () => {
    const err = translateKubeError(
      apiException(404, { reason: 'NotFound', message: 'namespaces "nowhere" not found', details: { name: 'nowhere', kind: 'namespaces' } }),
      ctx,
    );
    expect((err as VmsError).code).toBe('VMS_ERR_KUBE_NAMESPACE_MISSING');
    expect(err.message).toContain('"nowhere"');
  });

  it('403 is forbidden, 401 unauthorized, both permanent', () => {
    expect((translateKubeError(apiException(403, { reason: 'Forbidden', message: 'no' }), ctx) as VmsError).code).toBe('VMS_ERR_KUBE_FORBIDDEN');
    expect((translateKubeError(new ApiException(401, 'Unauthorized', undefined, {}), ctx) as VmsError).code).toBe('VMS_ERR_KUBE_UNAUTHORIZED');
  });

  it('socket failures anywhere in the cause chain are transient and unreachable', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const err = translateKubeError(new TypeError('fetch failed', { cause: refused }), ctx);
    expect(err).toBeInstanceOf(TransientKubeError);
    expect((err as TransientKubeError).code).toBe('VMS_ERR_KUBE_UNREACHABLE');
    expect((err as TransientKubeError).reason).toBe('ECONNREFUSED');
    const hangUp = translateKubeError(new Error('socket hang up'), ctx);
    expect(hangUp).toBeInstanceOf(TransientKubeError);
  });

  it('a port fetch refuses ("bad port", no code) is VMS_ERR_KUBE_UNREACHABLE for good, naming the port and what to change', () => {
    const refused = new TypeError('fetch failed', { cause: new Error('bad port') });
    const err = translateKubeError(refused, ctx, 'https://127.0.0.1:6000');
    expect(err).toBeInstanceOf(VmsError);
    expect(err).not.toBeInstanceOf(TransientKubeError);
    expect((err as VmsError).code).toBe('VMS_ERR_KUBE_UNREACHABLE');
    expect(err.message).toBe(
      `create WorkloadEntry ns1/vm-1: Node's fetch refuses port 6000 of the API server https://127.0.0.1:6000: it is on the Fetch standard's list of blocked ("bad") ports, to which Node never connects; serve or forward the API server on another port (e.g. 6443) and change the kubeconfig's server`,
    );
    expect(translateKubeError(refused, ctx).message).toContain("Node's fetch refuses the API server's port:");
  });

  it('other errors (bugs) pass through untouched', () => {
    const bug = new RangeError('oops');
    expect(translateKubeError(bug, ctx)).toBe(bug);
  });

  it('a body that is not JSON still gives a readable message', () => {
    const err = translateKubeError(apiException(400, '<html>bad gateway</html>'), ctx);
    expect((err as VmsError).code).toBe('VMS_ERR_KUBE_REJECTED');
    expect(err.message).toContain('<html>bad gateway</html>');
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(5000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('loadKubeConfig', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  function writeKubeconfig(server: string, skipTls = true): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-kc-'));
    dirs.push(dir);
    const file = path.join(dir, 'config');
    fs.writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: a\n  cluster:\n    server: ${server}${skipTls ? '\n    insecure-skip-tls-verify: true' : ''}`,
        `- name: b\n  cluster:\n    server: ${server}/b\n    insecure-skip-tls-verify: true`,
        'users:',
        '- name: u\n  user:\n    token: t',
        'contexts:',
        '- name: ctx-a\n  context:\n    cluster: a\n    user: u',
        '- name: ctx-b\n  context:\n    cluster: b\n    user: u',
        'current-context: ctx-a',
      ].join('\n'),
    );
    return file;
  }

  it('an explicit path wins over $KUBECONFIG, and a context can be chosen', () => {
    const explicit = writeKubeconfig('http://127.0.0.1:1');
    const fromEnv = writeKubeconfig('http://127.0.0.1:2');
    const kc = loadKubeConfig({ kubeconfig: explicit, context: 'ctx-b', env: { KUBECONFIG: fromEnv } });
    expect(kc.getCurrentCluster()?.server).toBe('http://127.0.0.1:1/b');
  });

  it('uses $KUBECONFIG when no path is given', () => {
    const fromEnv = writeKubeconfig('http://127.0.0.1:2');
    const kc = loadKubeConfig({ env: { KUBECONFIG: fromEnv }, homeDir: '/nonexistent' });
    expect(kc.getCurrentCluster()?.server).toBe('http://127.0.0.1:2');
  });

  it('an http:// server without insecure-skip-tls-verify is VMS_ERR_KUBE_UNREACHABLE at once, saying what to change', () => {
    const file = writeKubeconfig('http://127.0.0.1:1', false);
    let caught: unknown;
    try {
      loadKubeConfig({ kubeconfig: file });
    } catch (err) {
      caught = err;
    }
    expect((caught as VmsError).code).toBe('VMS_ERR_KUBE_UNREACHABLE');
    expect((caught as Error).message).toMatch(/cluster "a" has an http:\/\/ server \(http:\/\/127\.0\.0\.1:1\).*insecure-skip-tls-verify/);
  });

  it.each([
    ['https://127.0.0.1:6000', '6000'],
    ['https://127.0.0.1:10080', '10080'],
  ])('a server on a port Node\'s fetch refuses (%s) fails its first call through the real client with VMS_ERR_KUBE_UNREACHABLE naming the port', async (server, port) => {
    const api = createKubeApi(loadKubeConfig({ kubeconfig: writeKubeconfig(server) }));
    const err = await api.getEntry('default', 'vm-1').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VmsError);
    expect((err as VmsError).code).toBe('VMS_ERR_KUBE_UNREACHABLE');
    expect((err as Error).message).toContain(`get WorkloadEntry default/vm-1: Node's fetch refuses port ${port} of the API server ${server}:`);
  });

  it('an unknown context and a missing kubeconfig are VMS_ERR_KUBE_UNREACHABLE, never localhost:8080', () => {
    const file = writeKubeconfig('http://127.0.0.1:1');
    expect(() => loadKubeConfig({ kubeconfig: file, context: 'nope' })).toThrow(/no context "nope"/);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-home-'));
    dirs.push(empty);
    let caught: unknown;
    try {
      loadKubeConfig({ env: {}, homeDir: empty });
    } catch (err) {
      caught = err;
    }
    expect((caught as VmsError).code).toBe('VMS_ERR_KUBE_UNREACHABLE');
  });
});
