// A fake STS endpoint on 127.0.0.1 for assumed roles: `AssumeRole` over the Query protocol, with
// the trust policy reduced to "this role exists and demands this ExternalId". It records what the
// caller sent and remembers which temporary key it issued for which account, so the EC2 fake can
// tell who is calling.
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { el, listen, readQueryRequest, requestId, sendXml, type XmlReply, xmlEscape } from './query-protocol.ts';

/** What a role's trust policy demands. */
export interface FakeRole {
  /** The ExternalId the caller must send; absent: none may be required. */
  externalId?: string;
}

/** One AssumeRole request as the fake received it. */
export interface RecordedStsRequest {
  action: string;
  roleArn: string | undefined;
  roleSessionName: string | undefined;
  externalId: string | undefined;
  /** The key that signed the request (the caller's own credentials). */
  callerAccessKeyId: string | undefined;
  region: string | undefined;
  status: number;
}

/** Temporary credentials the fake handed out. */
export interface IssuedCredentials {
  account: string;
  roleArn: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

/** How a fake STS is started. */
export interface FakeStsOptions {
  /** Role ARN → trust conditions; any other role is AccessDenied. */
  roles: Record<string, FakeRole>;
  /** Lifetime of issued credentials; default one hour. */
  durationSeconds?: number;
  /** The account of a key this fake did not issue (GetCallerIdentity); default 123456789012. */
  accountOf?: (accessKeyId: string) => string | undefined;
}

/** A running fake STS endpoint. */
export class FakeSts {
  readonly url: string;
  readonly requests: RecordedStsRequest[] = [];
  /** Access key id → what it was issued for. */
  readonly issued = new Map<string, IssuedCredentials>();
  readonly #roles: Record<string, FakeRole>;
  readonly #durationSeconds: number;
  readonly #accountOfKey: (accessKeyId: string) => string | undefined;
  readonly #close: () => Promise<void>;
  #counter = 0;

  constructor(url: string, close: () => Promise<void>, options: FakeStsOptions) {
    this.url = url;
    this.#close = close;
    this.#roles = options.roles;
    this.#durationSeconds = options.durationSeconds ?? 3600;
    this.#accountOfKey = options.accountOf ?? (() => '123456789012');
  }

  /** The account of an issued key, for the EC2 fake's `accountOf`. */
  accountOf(accessKeyId: string): string | undefined {
    return this.issued.get(accessKeyId)?.account;
  }

  /** Stops the server. */
  close(): Promise<void> {
    return this.#close();
  }

  /** Serves one HTTP request. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const q = await readQueryRequest(req);
    const record: RecordedStsRequest = {
      action: q.params.Action ?? '',
      roleArn: q.params.RoleArn,
      roleSessionName: q.params.RoleSessionName,
      externalId: q.params.ExternalId,
      callerAccessKeyId: q.accessKeyId,
      region: q.region,
      status: 0,
    };
    this.requests.push(record);
    const reply = this.#reply(record);
    record.status = reply.status;
    sendXml(res, reply);
  }

  /** Who a key belongs to: the role it was issued for, or the account `accountOf` names. */
  #callerIdentity(accessKeyId: string): XmlReply {
    const issued = this.issued.get(accessKeyId);
    const account = issued?.account ?? this.#accountOfKey(accessKeyId);
    if (account === undefined) return stsError(403, 'InvalidClientTokenId', 'The security token included in the request is invalid.');
    const arn = issued ? `arn:aws:sts::${account}:assumed-role/${issued.roleArn.split('/').pop()}/session` : `arn:aws:iam::${account}:user/caller`;
    return {
      status: 200,
      body:
        `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>` +
        `${el('Arn', arn)}${el('UserId', accessKeyId)}${el('Account', account)}` +
        `</GetCallerIdentityResult><ResponseMetadata>${el('RequestId', requestId())}</ResponseMetadata></GetCallerIdentityResponse>`,
    };
  }

  #reply(r: RecordedStsRequest): XmlReply {
    if (r.callerAccessKeyId === undefined) return stsError(403, 'MissingAuthenticationToken', 'Request is missing Authentication Token');
    if (r.action === 'GetCallerIdentity') return this.#callerIdentity(r.callerAccessKeyId);
    if (r.action !== 'AssumeRole') return stsError(400, 'InvalidAction', `Could not find operation ${r.action} for version 2011-06-15`);
    const denied = `User: arn:aws:iam::000000000000:user/caller is not authorized to perform: sts:AssumeRole on resource: ${r.roleArn ?? ''}`;
    const role = r.roleArn === undefined ? undefined : this.#roles[r.roleArn];
    if (!role) return stsError(403, 'AccessDenied', denied);
    if (role.externalId !== r.externalId) return stsError(403, 'AccessDenied', denied);
    if (!r.roleSessionName || !/^[\w+=,.@-]{2,64}$/.test(r.roleSessionName)) {
      return stsError(400, 'ValidationError', `1 validation error detected: Value '${r.roleSessionName ?? ''}' at 'roleSessionName' failed to satisfy constraint`);
    }
    const account = /^arn:aws[^:]*:iam::(\d{12}):role\/(.+)$/.exec(r.roleArn!);
    const accessKeyId = `ASIA${String(++this.#counter).padStart(4, '0')}${randomBytes(6).toString('hex').toUpperCase()}`;
    const issued: IssuedCredentials = {
      account: account![1]!,
      roleArn: r.roleArn!,
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: `FwoGZXIvYXdzE${randomBytes(48).toString('base64')}`,
      expiration: new Date(Date.now() + this.#durationSeconds * 1000),
    };
    this.issued.set(accessKeyId, issued);
    const roleName = account![2]!;
    return {
      status: 200,
      body:
        `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>` +
        `<AssumedRoleUser>${el('Arn', `arn:aws:sts::${issued.account}:assumed-role/${roleName}/${r.roleSessionName}`)}` +
        `${el('AssumedRoleId', `AROA3XFRBF535PLBIFPI4:${r.roleSessionName}`)}</AssumedRoleUser>` +
        `<Credentials>${el('AccessKeyId', accessKeyId)}${el('SecretAccessKey', issued.secretAccessKey)}` +
        `${el('SessionToken', issued.sessionToken)}${el('Expiration', issued.expiration.toISOString().replace(/\.\d{3}Z$/, 'Z'))}</Credentials>` +
        `${el('PackedPolicySize', 6)}</AssumeRoleResult><ResponseMetadata>${el('RequestId', requestId())}</ResponseMetadata></AssumeRoleResponse>`,
    };
  }
}

/** Starts a fake STS endpoint on 127.0.0.1. */
export async function startFakeSts(options: FakeStsOptions): Promise<FakeSts> {
  let fake: FakeSts | undefined;
  const { url, close } = await listen((req, res) => {
    fake!.handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  fake = new FakeSts(url, close, options);
  return fake;
}

function stsError(status: number, code: string, message: string): XmlReply {
  return {
    status,
    body:
      `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>` +
      `<Code>${xmlEscape(code)}</Code><Message>${xmlEscape(message)}</Message></Error>` +
      `<RequestId>${requestId()}</RequestId></ErrorResponse>`,
  };
}
