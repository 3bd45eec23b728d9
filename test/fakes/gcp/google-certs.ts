// Google's token-signing side, on 127.0.0.1: a certificate endpoint that serves public keys the way
// https://www.googleapis.com/oauth2/v1/certs does (a JSON map of key id → PEM, with a max-age), and
// a signer that issues ID tokens as Pub/Sub push subscriptions send them. Tokens are signed with
// this fake's own RSA key, so the real verifier in google-auth-library accepts them.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';

/** The claims of a push token; anything may be overridden or removed (undefined). */
export type PushClaims = Record<string, unknown>;

/** How a token is signed. */
export interface SignOptions {
  /** Sign with a key the endpoint does not publish, under the published key id. */
  foreignKey?: boolean;
  /** The key id in the header; default the published one. */
  kid?: string;
  /** `none`: an unsigned token (alg none, empty signature). */
  alg?: 'RS256' | 'none';
}

/** A running certificate endpoint with its signer. */
export interface FakeGoogleCerts {
  /** The certificate URL, for `webhook.certsUrl`. */
  url: string;
  kid: string;
  /** Requests the endpoint answered. */
  requests: number;
  /** When true, the endpoint answers 503. */
  failing: boolean;
  /** A signed push token for the audience and service account, valid now for an hour, with `claims` merged in. */
  sign(claims?: PushClaims, options?: SignOptions): Promise<string>;
  close(): Promise<void>;
}

/** The service account the tests' push subscription signs as. */
export const PUSH_SERVICE_ACCOUNT = 'pubsub-push@shop-prod.iam.gserviceaccount.com';
/** The audience the tests' push subscription puts into its tokens. */
export const PUSH_AUDIENCE = 'https://vms.example.com/webhooks/gcp';

/** Starts the certificate endpoint with a fresh RSA key. */
export async function startFakeGoogleCerts(): Promise<FakeGoogleCerts> {
  const own = await generateKeyPair('RS256', { extractable: true });
  const foreign = await generateKeyPair('RS256');
  const kid = 'f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0';
  const body = JSON.stringify({ [kid]: await exportSPKI(own.publicKey) });

  const state = { requests: 0, failing: false };
  const server = http.createServer((req, res) => {
    state.requests++;
    if (state.failing || req.url !== '/oauth2/v1/certs') {
      res.writeHead(state.failing ? 503 : 404, { 'content-type': 'text/plain' });
      res.end('unavailable');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8', 'cache-control': 'public, max-age=21600, must-revalidate, no-transform' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/oauth2/v1/certs`,
    kid,
    get requests() {
      return state.requests;
    },
    get failing() {
      return state.failing;
    },
    set failing(value: boolean) {
      state.failing = value;
    },
    async sign(claims: PushClaims = {}, options: SignOptions = {}) {
      const now = Math.floor(Date.now() / 1000);
      const merged: PushClaims = {
        aud: PUSH_AUDIENCE,
        azp: '110123456789012345678',
        email: PUSH_SERVICE_ACCOUNT,
        email_verified: true,
        iat: now,
        exp: now + 3600,
        iss: 'https://accounts.google.com',
        sub: '110123456789012345678',
        ...claims,
      };
      const payload = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined));
      if (options.alg === 'none') return new UnsecuredJWT(payload).encode();
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? kid, typ: 'JWT' })
        .sign(options.foreignKey ? foreign.privateKey : own.privateKey);
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
