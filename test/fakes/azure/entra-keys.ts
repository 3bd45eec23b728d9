// A stand-in for Microsoft Entra's signing keys: a JSON Web Key Set served on 127.0.0.1 (the
// receiver's configurable `jwksUri`) and tokens signed with its keys, shaped like the ones Event
// Grid sends to a webhook with Entra authentication. Requests for the key set are counted.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';

/** Event Grid's client id, as tokens it requests carry in `azp` (v2) or `appid` (v1). */
export const EVENT_GRID_APP_ID = '4962773b-9cdb-44cf-a8bf-237846a00ab7';

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/** How a token differs from a valid v2.0 one. */
export interface TokenOptions {
  tenantId: string;
  audience: string;
  /** `v2` (default): login.microsoftonline.com/<tenant>/v2.0 and `azp`; `v1`: sts.windows.net/<tenant>/ and `appid`. */
  version?: 'v1' | 'v2';
  /** Seconds since the epoch; default: now. */
  issuedAt?: number;
  /** Lifetime in seconds; default one hour. */
  lifetime?: number;
  /** The calling client; default Event Grid's. */
  clientId?: string;
  /** Sign with a key that is not in the served set. */
  unknownKey?: boolean;
  /** Extra or replaced claims. */
  claims?: JWTPayload;
}

/** A running key set server with its signing key. */
export class FakeEntraKeys {
  readonly jwksUri: string;
  /** How many times the key set was fetched. */
  fetches = 0;
  readonly #key: SigningKey;
  readonly #strayKey: SigningKey;
  readonly #kid: string;
  readonly #close: () => Promise<void>;

  constructor(jwksUri: string, key: SigningKey, strayKey: SigningKey, kid: string, close: () => Promise<void>) {
    this.jwksUri = jwksUri;
    this.#key = key;
    this.#strayKey = strayKey;
    this.#kid = kid;
    this.#close = close;
  }

  /** A signed token as Event Grid would present it (without the `Bearer ` prefix). */
  async token(options: TokenOptions): Promise<string> {
    const version = options.version ?? 'v2';
    const issuedAt = options.issuedAt ?? Math.floor(Date.now() / 1000);
    const client = options.clientId ?? EVENT_GRID_APP_ID;
    const payload: JWTPayload = {
      tid: options.tenantId,
      oid: '6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b',
      sub: '6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b',
      ...(version === 'v2' ? { azp: client, ver: '2.0' } : { appid: client, ver: '1.0' }),
      ...options.claims,
    };
    const issuer = version === 'v2' ? `https://login.microsoftonline.com/${options.tenantId}/v2.0` : `https://sts.windows.net/${options.tenantId}/`;
    return new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: options.unknownKey ? 'stray' : this.#kid })
      .setIssuer(issuer)
      .setAudience(options.audience)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(issuedAt + (options.lifetime ?? 3600))
      .sign(options.unknownKey ? this.#strayKey : this.#key);
  }

  /** Stops the server. */
  close(): Promise<void> {
    return this.#close();
  }
}

/** Starts a key set server on 127.0.0.1 with a fresh RSA key. */
export async function startFakeEntraKeys(): Promise<FakeEntraKeys> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const stray = await generateKeyPair('RS256');
  const kid = 'test-key-1';
  const jwk = { ...(await exportJWK(publicKey)), kid, use: 'sig', kty: 'RSA' };
  let fake: FakeEntraKeys | undefined;
  const server = http.createServer((req, res) => {
    fake!.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });
  fake = new FakeEntraKeys(`http://127.0.0.1:${port}/common/discovery/v2.0/keys`, privateKey, stray.privateKey, kid, close);
  return fake;
}
