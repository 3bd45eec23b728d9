// The WorkloadEntry requests (kube-http.ts) over TLS with a bearer token, as in a cluster: an HTTPS
// front with its own certificate authority, in front of the fake API server, which requires the token.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCertificate } from '../../test/fakes/azure/tls.ts';
import { FakeKubeApiServer } from '../../test/fakes/kube-api-server.ts';
import { VmsError } from '../errors.ts';
import type { WorkloadEntry } from '../model.ts';
import { createKubeApi } from './kube-api.ts';

const TOKEN = 'tls-test-token';
let backend: FakeKubeApiServer;
let front: https.Server;
let frontUrl: string;
let ca: string;
/** TLS connections the front accepted, and the Authorization header of each request. */
let tlsConnections = 0;
const authorizations: Array<string | undefined> = [];
const userAgents: Array<string | undefined> = [];

beforeAll(async () => {
  backend = new FakeKubeApiServer({ token: TOKEN });
  const backendUrl = new URL(await backend.start());
  const cert = await createTestCertificate();
  ca = cert.cert;
  front = https.createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    authorizations.push(req.headers.authorization);
    userAgents.push(req.headers['user-agent']);
    const upstream = http.request(
      { host: backendUrl.hostname, port: backendUrl.port, path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  front.on('secureConnection', () => tlsConnections++);
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  frontUrl = `https://127.0.0.1:${(front.address() as AddressInfo).port}`;
});

afterAll(async () => {
  front.closeAllConnections();
  await new Promise((resolve) => front.close(resolve));
  await backend.close();
});

function kubeconfig(token: string, user: Record<string, unknown> = { token }): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: frontUrl, caData: Buffer.from(ca).toString('base64'), skipTLSVerify: false }],
    users: [{ name: 'u', ...user }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

function entry(name: string, address: string): WorkloadEntry {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadEntry',
    metadata: { name, namespace: 'default', labels: { app: 'web', 'vm-mesh-sync.io/owner': 'o' }, annotations: {} },
    spec: { address, labels: { app: 'web' } },
  };
}

describe('WorkloadEntry requests over TLS with a bearer token', () => {
  it('create, get, list, apply, merge patch and delete verify the cluster CA, carry the token and reuse their connections', async () => {
    const api = createKubeApi(kubeconfig(TOKEN));
    const before = tlsConnections;
    authorizations.length = 0;

    await api.createEntry(entry('vm-1', '10.0.0.1'), { fieldManager: 'vm-mesh-sync' });
    const created = await api.getEntry('default', 'vm-1');
    expect(created?.metadata.uid).toBeTruthy();
    expect(created?.spec.address).toBe('10.0.0.1');
    expect(await api.getEntry('default', 'vm-404')).toBeNull();
    const listed = await api.listOwnedEntries('vm-mesh-sync.io/owner=o', 10);
    expect(listed.map((e) => e.metadata.name)).toEqual(['vm-1']);
    await api.applyEntry(entry('vm-1', '10.0.0.2'), { fieldManager: 'vm-mesh-sync' });
    expect((await api.getEntry('default', 'vm-1'))?.spec.address).toBe('10.0.0.2');
    await api.mergePatchEntry('default', 'vm-1', { metadata: { labels: { app: null } } }, { fieldManager: 'vm-mesh-sync' });
    expect((await api.getEntry('default', 'vm-1'))?.metadata.labels).toEqual({ 'vm-mesh-sync.io/owner': 'o' });
    expect(await api.deleteEntry('default', 'vm-1', { uid: created!.metadata.uid! })).toBe(true);
    expect(await api.deleteEntry('default', 'vm-1', {})).toBe(false);

    expect(authorizations).toHaveLength(10);
    expect(new Set(authorizations)).toEqual(new Set([`Bearer ${TOKEN}`]));
    expect(new Set(userAgents)).toEqual(new Set(['vm-mesh-sync']));
    // Kept-alive connections: undici may open a second one while the first is being released,
    // never one per request (the client library's default without reuseConnections).
    expect(tlsConnections - before).toBeLessThanOrEqual(2);
  });

  it('a token file ending in a newline (as files are written) is sent without it, as fetch would', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vms-token-'));
    try {
      const file = path.join(dir, 'token');
      fs.writeFileSync(file, `${TOKEN}\n`);
      const api = createKubeApi(kubeconfig(TOKEN, { authProvider: { name: 'tokenFile', config: { tokenFile: file } } }));
      authorizations.length = 0;
      expect(await api.getEntry('default', 'vm-none')).toBeNull();
      expect(authorizations).toEqual([`Bearer ${TOKEN}`]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a wrong token is VMS_ERR_KUBE_UNAUTHORIZED naming the call', async () => {
    const api = createKubeApi(kubeconfig('wrong-token'));
    const err = await api.createEntry(entry('vm-2', '10.0.0.3')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VmsError);
    expect((err as VmsError).code).toBe('VMS_ERR_KUBE_UNAUTHORIZED');
    expect((err as Error).message).toMatch(/^create WorkloadEntry default\/vm-2: 401 Unauthorized/);
  });
});

describe('an API server that stops answering', () => {
  let silent: http.Server;
  let url: string;
  /** What the server does with a request: never answer, or send the headers and then nothing. */
  let behaviour: 'no answer' | 'stalled body' = 'no answer';

  beforeAll(async () => {
    silent = http.createServer((_req, res) => {
      if (behaviour === 'stalled body') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"apiVersion":');
      }
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    silent.closeAllConnections();
    await new Promise((resolve) => silent.close(resolve));
  });

  for (const stall of ['no answer', 'stalled body'] as const) {
    it(`${stall}: the request is abandoned after the request timeout, as an unreachable API server (retried)`, async () => {
      behaviour = stall;
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: url, skipTLSVerify: true }],
        users: [{ name: 'u', token: TOKEN }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      const api = createKubeApi(kc, { requestTimeoutMs: 300 });
      const err = await api.getEntry('default', 'web-1').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(VmsError);
      expect((err as VmsError).code).toBe('VMS_ERR_KUBE_UNREACHABLE');
      expect((err as { reason?: string }).reason).toBe(stall === 'no answer' ? 'UND_ERR_HEADERS_TIMEOUT' : 'UND_ERR_BODY_TIMEOUT');
    });
  }
});

describe("a write's answer", () => {
  let server: http.Server;
  let connections = 0;
  /** The body of the next answers: text that is not JSON, short or over a megabyte. */
  let body = 'not JSON {';
  /** The next answers send their status and the start of their body, and then nothing. */
  let stall = false;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(201, { 'content-type': 'application/json' });
        if (stall) res.write('{"apiVersion":');
        else res.end(body);
      });
    });
    server.on('connection', () => connections++);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function api(options: { requestTimeoutMs?: number } = {}) {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: TOKEN }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return createKubeApi(kc, options);
  }

  /** The connections that `count` creates one after the other open. */
  async function connectionsOfCreates(count: number): Promise<number> {
    const kube = api();
    const before = connections;
    for (let i = 0; i < count; i++) await kube.createEntry(entry(`vm-${i}`, '10.0.0.1'), { fieldManager: 'vm-mesh-sync' });
    return connections - before;
  }

  it('is read to its end and not parsed: the writes succeed and keep their connection, a read of the same answer fails', async () => {
    body = 'not JSON {';
    const kube = api();
    const before = connections;
    for (let i = 0; i < 2; i++) {
      await kube.createEntry(entry('vm-1', '10.0.0.1'), { fieldManager: 'vm-mesh-sync' });
      await kube.applyEntry(entry('vm-1', '10.0.0.2'), { fieldManager: 'vm-mesh-sync' });
      await kube.mergePatchEntry('default', 'vm-1', { metadata: { labels: { app: null } } }, { fieldManager: 'vm-mesh-sync' });
    }
    // Six writes: undici may open a second connection while the first is being released, never one a write.
    expect(connections - before).toBeLessThanOrEqual(2);
    await expect(kube.getEntry('default', 'vm-1')).rejects.toThrow();
  });

  it('of a few hundred kilobytes is drained: the writes keep their connection', async () => {
    // Longer than a stream's buffer: an answer left unread would hold its connection, and every write open another.
    body = 'x'.repeat(256 << 10);
    expect(await connectionsOfCreates(4)).toBeLessThanOrEqual(2);
  });

  it('that breaks off after a success status leaves the write done: the call resolves once the body times out', async () => {
    stall = true;
    try {
      await expect(api({ requestTimeoutMs: 300 }).createEntry(entry('vm-1', '10.0.0.1'), { fieldManager: 'vm-mesh-sync' })).resolves.toBeUndefined();
    } finally {
      stall = false;
      server.closeAllConnections();
    }
  });

  it('over a megabyte closes its connection instead of being read: each such write opens one', async () => {
    body = 'x'.repeat(2 << 20);
    expect(await connectionsOfCreates(3)).toBe(3);
  });
});
