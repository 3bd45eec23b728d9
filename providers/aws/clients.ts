// One EC2Client per (account, region), made on first use and kept: the SDK caches credentials and
// keeps connections per client, so reusing it spares an AssumeRole and a TLS handshake per resync.
import { EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { resolveSecret } from '../../config/secret.ts';
import type { AwsAccountConfig, AwsProviderConfig } from './config.ts';

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

/** The EC2 clients of one provider block. */
export class Ec2ClientPool {
  readonly #config: AwsProviderConfig;
  readonly #options: Ec2ClientPoolOptions;
  readonly #clients = new Map<string, EC2Client>();

  constructor(config: AwsProviderConfig, options: Ec2ClientPoolOptions = {}) {
    this.#config = config;
    this.#options = options;
  }

  /** The client for one account and region; throws when the account's externalId cannot be read. */
  get(account: AwsAccountConfig, region: string): EC2Client {
    const key = `${account.id}:${region}`;
    let client = this.#clients.get(key);
    if (!client) {
      const endpoint = this.#config.endpoint.ec2?.replaceAll('{region}', region);
      client = new EC2Client({
        ...this.#sdkSettings(),
        region,
        ...(endpoint === undefined ? {} : { endpoint }),
        ...this.#credentialsFor(account, region),
      });
      this.#clients.set(key, client);
    }
    return client;
  }

  /** Closes every client's sockets. */
  destroy(): void {
    for (const client of this.#clients.values()) client.destroy();
    this.#clients.clear();
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
    const credentials: CredentialProvider = async (properties) => {
      try {
        return await assume(properties);
      } catch (err) {
        throw new AssumeRoleError(roleArn, err);
      }
    };
    return { credentials };
  }
}
