// One EC2Client per (account, region), made on first use and kept: the SDK caches credentials and
// keeps connections per client, so reusing it spares an AssumeRole and a TLS handshake per resync.
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { STSClient } from '@aws-sdk/client-sts';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { resolveSecret } from '../../config/secret.ts';
import type { AwsAccountConfig, AwsProviderConfig } from './config.ts';
import { readInstancesAnswers } from './describe-answer.ts';

/** Credentials as the SDK accepts them: fixed keys or a provider function. */
export type AwsCredentials = NonNullable<EC2ClientConfig['credentials']>;
type CredentialProvider = ReturnType<typeof fromTemporaryCredentials>;

/** What the client pool needs beyond the config block. */
export interface Ec2ClientPoolOptions {
  /**
   * The credentials used directly for accounts without roleArn and to call AssumeRole for the
   * others. Absent: the SDK's default chain (environment, web identity/IRSA, EKS Pod Identity,
   * ECS and instance metadata), which is what runs in a cluster.
   */
  credentials?: AwsCredentials;
  /** Where secret references (externalId) are looked up. */
  env?: NodeJS.ProcessEnv;
}

/** Failing to assume an account's role, told apart from EC2 failing so that the message names the role. */
export class AssumeRoleError extends Error {
  readonly roleArn: string;

  constructor(roleArn: string, cause: unknown) {
    const why = cause instanceof Error ? `${cause.name !== 'Error' ? `${cause.name}: ` : ''}${cause.message}` : String(cause);
    super(`assuming role ${roleArn} failed: ${why}`, { cause });
    this.name = 'AssumeRoleError';
    this.roleArn = roleArn;
  }
}

/** Assumed-role credentials are renewed this long before they expire. */
const CREDENTIALS_REFRESH_MS = 5 * 60_000;

/** The EC2 clients of one provider block. */
export class Ec2ClientPool {
  readonly #config: AwsProviderConfig;
  readonly #options: Ec2ClientPoolOptions;
  readonly #clients = new Map<string, EC2Client>();
  readonly #sts = new Map<string, STSClient>();
  /** Per account and region: one assumed role, shared by its EC2 and STS clients. */
  readonly #assumed = new Map<string, { credentials?: AwsCredentials }>();

  constructor(config: AwsProviderConfig, options: Ec2ClientPoolOptions = {}) {
    this.#config = config;
    this.#options = options;
  }

  /** The client for one account and region; throws when the account's externalId cannot be read. */
  get(account: AwsAccountConfig, region: string): EC2Client {
    return this.#client(this.#clients, account, region, this.#config.endpoint.ec2, (settings) => {
      const client = new EC2Client(settings);
      readInstancesAnswers(client);
      return client;
    });
  }

  /**
   * An STS client with the same credentials as the account's EC2 clients in `region`, to ask who
   * they are (GetCallerIdentity, which needs no permission).
   */
  sts(account: AwsAccountConfig, region: string): STSClient {
    return this.#client(this.#sts, account, region, this.#config.endpoint.sts, (settings) => new STSClient(settings));
  }

  /** One client per account and region in `cache`, made with the shared settings and credentials. */
  #client<C>(
    cache: Map<string, C>,
    account: AwsAccountConfig,
    region: string,
    endpointTemplate: string | undefined,
    make: (settings: ReturnType<Ec2ClientPool['clientSettings']>) => C,
  ): C {
    const key = `${account.id}:${region}`;
    let client = cache.get(key);
    if (!client) {
      client = make(this.clientSettings(account, region, endpointTemplate?.replaceAll('{region}', region)));
      cache.set(key, client);
    }
    return client;
  }

  /** What every client of an account and region is made with. */
  clientSettings(account: AwsAccountConfig, region: string, endpoint: string | undefined) {
    return { ...this.#sdkSettings(), region, ...(endpoint === undefined ? {} : { endpoint }), ...this.#credentialsFor(account, region) };
  }

  /** Closes every client's sockets. */
  destroy(): void {
    for (const client of [...this.#clients.values(), ...this.#sts.values()]) client.destroy();
    this.#clients.clear();
    this.#sts.clear();
  }

  // Shared by the EC2 clients and the STS clients behind assumed roles.
  #sdkSettings() {
    const { timeout, maxAttempts, retryMode } = this.#config;
    return {
      maxAttempts,
      retryMode,
      userAgentAppId: 'vm-mesh-sync',
      // Without a request timeout a stalled connection would hold a listing until the resync gives up.
      requestHandler: { requestTimeout: timeout, connectionTimeout: timeout, throwOnRequestTimeout: true },
    };
  }

  #credentialsFor(account: AwsAccountConfig, region: string): { credentials?: AwsCredentials } {
    const key = `${account.id}:${region}`;
    let made = this.#assumed.get(key);
    if (!made) {
      made = this.#makeCredentials(account, region);
      this.#assumed.set(key, made);
    }
    return made;
  }

  #makeCredentials(account: AwsAccountConfig, region: string): { credentials?: AwsCredentials } {
    const base = this.#options.credentials;
    if (account.roleArn === undefined) return base === undefined ? {} : { credentials: base };
    const roleArn = account.roleArn;
    const stsEndpoint = this.#config.endpoint.sts?.replaceAll('{region}', region);
    const assume = fromTemporaryCredentials({
      params: {
        RoleArn: roleArn,
        RoleSessionName: account.sessionName ?? `vm-mesh-sync-${this.#config.name}`,
        ...(account.externalId === undefined ? {} : { ExternalId: resolveSecret(account.externalId, this.#options.env) }),
      },
      ...(base === undefined ? {} : { masterCredentials: base }),
      // Regional STS in the client's own region: no dependency on us-east-1 being reachable.
      clientConfig: { ...this.#sdkSettings(), region, ...(stsEndpoint === undefined ? {} : { endpoint: stsEndpoint }) },
    });
    // Shared by the account's EC2 and STS clients, which each keep their own cache: the role is
    // assumed once, and again only when the temporary credentials near their expiry.
    let held: Promise<Awaited<ReturnType<CredentialProvider>>> | undefined;
    const fresh = (c: Awaited<ReturnType<CredentialProvider>>): boolean => c.expiration === undefined || c.expiration.getTime() - Date.now() > CREDENTIALS_REFRESH_MS;
    const credentials: CredentialProvider = async (properties) => {
      const current = held ? await held.catch(() => undefined) : undefined;
      if (current && fresh(current)) return current;
      const next = assume(properties).catch((err: unknown) => {
        throw new AssumeRoleError(roleArn, err);
      });
      held = next;
      next.catch(() => {
        if (held === next) held = undefined;
      });
      return next;
    };
    return { credentials };
  }
}
