// The `type: aws` provider block. Checked once at start, so that a wrong region, account or role
// is an error naming the key rather than a listing that fails every resync.
import { z } from 'zod';
import { blockName, blockNamespaces } from '../../config/block.ts';
import { duration } from '../../config/duration.ts';
import { secretRef } from '../../config/secret.ts';

/** AWS region names: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`, `eusc-de-east-1`. */
export const AWS_REGION = /^[a-z]{2,4}(-[a-z]+){1,3}-\d{1,2}$/;
/** An AWS account id: exactly twelve digits, leading zeros included. */
export const AWS_ACCOUNT_ID = /^\d{12}$/;
const ROLE_ARN = /^arn:aws(-[a-z]+)*:iam::(\d{12}):role\/[\w+=,.@/-]{1,512}$/;
// STS's own constraint on RoleSessionName.
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
// RFC 7230 token: what an HTTP header name may be.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** An endpoint override; `{region}` in it is replaced by each scope's region (VPC endpoints are regional). */
const endpointUrl = z.string().refine((value) => {
  try {
    const url = new URL(value.replaceAll('{region}', 'us-east-1'));
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}, 'must be an http(s) URL; {region} in it is replaced by the region');

const accountSchema = z
  .strictObject({
    /** The account's id; it appears in scope keys and in every entry's source annotation. */
    id: z.string().regex(AWS_ACCOUNT_ID, 'must be a 12-digit AWS account id (quote it in YAML to keep leading zeros)'),
    /** The role to assume in this account; absent: the default credentials, which must belong to this account. */
    roleArn: z.string().regex(ROLE_ARN, 'must be an IAM role ARN, arn:aws:iam::<account id>:role/<name>').optional(),
    /** The ExternalId the role's trust policy demands. */
    externalId: secretRef.optional(),
    /** RoleSessionName, as it shows in the account's CloudTrail. */
    sessionName: z.string().regex(SESSION_NAME, 'must be 2-64 letters, digits or +=,.@_-').optional(),
  })
  .superRefine((account, ctx) => {
    const arnAccount = account.roleArn ? ROLE_ARN.exec(account.roleArn)?.[2] : undefined;
    if (arnAccount !== undefined && arnAccount !== account.id) {
      ctx.addIssue({ code: 'custom', path: ['roleArn'], message: `names account ${arnAccount}, not ${account.id}` });
    }
    for (const key of ['externalId', 'sessionName'] as const) {
      if (account[key] !== undefined && account.roleArn === undefined) {
        ctx.addIssue({ code: 'custom', path: [key], message: 'is only used with roleArn' });
      }
    }
  });

const filterSchema = z.strictObject({
  /** A DescribeInstances filter name, e.g. `vpc-id`, `tag:team`, `availability-zone`. */
  name: z.string().min(1).max(255),
  /** Matching values (any of them); `*` and `?` are wildcards. */
  values: z.array(z.string().min(1).max(255)).min(1, 'must list at least one value'),
});

const webhookSchema = z
  .strictObject({
    /** API key authorization, as an EventBridge connection of type API_KEY sends it. */
    apiKey: z
      .strictObject({
        header: z.string().regex(HEADER_NAME, 'must be an HTTP header name').default('x-api-key'),
        value: secretRef,
      })
      .optional(),
    /** Basic authorization, as an EventBridge connection of type BASIC sends it. */
    basic: z
      .strictObject({
        username: z.string().min(1).refine((u) => !u.includes(':'), 'must not contain ":"'),
        password: secretRef,
      })
      .optional(),
  })
  .refine((w) => w.apiKey !== undefined || w.basic !== undefined, 'must configure apiKey or basic (or both)');

/** The config block of AWS EC2 discovery: accounts × regions, each a scope. */
export const awsProviderSchema = z.strictObject({
  type: z.literal('aws'),
  /** Names this block; appears in scope keys (`aws:<name>:<account>:<region>`) and in metrics. */
  name: blockName,
  /** Namespaces this block's instances may be put in (narrows mapping.namespace.allowed). */
  namespaces: blockNamespaces,
  regions: z
    .array(z.string().regex(AWS_REGION, 'must be an AWS region name such as us-east-1'))
    .min(1, 'must list at least one region')
    .refine((r) => new Set(r).size === r.length, 'must not list a region twice'),
  accounts: z
    .array(accountSchema)
    .min(1, 'must list at least one account (for the default credentials: just its id)')
    .refine((a) => new Set(a.map((x) => x.id)).size === a.length, 'must not list an account twice'),
  /** Extra DescribeInstances filters, sent to EC2 and combined (AND) with the selector and state filters. */
  filters: z.array(filterSchema).default([]),
  /** Endpoint overrides (VPC interface endpoints, tests). */
  endpoint: z
    .strictObject({
      ec2: endpointUrl.optional(),
      sts: endpointUrl.optional(),
    })
    .default({}),
  /** The SDK's retry mode; `adaptive` also slows down client-side after throttling. */
  retryMode: z.enum(['standard', 'adaptive']).default('standard'),
  /** Attempts per API call (throttling, 5xx, network errors) before the scope counts as failed. */
  maxAttempts: z.number().int().min(1).max(20).default(5),
  /** Instances per DescribeInstances page (EC2 accepts 5-1000). */
  pageSize: z.number().int().min(5).max(1000).default(1000),
  /** The longest one API request may take before it is abandoned and retried. */
  timeout: duration.pipe(z.number().min(1, 'must be more than 0')).default(30_000),
  /** Credentials an EventBridge API destination must present. Without it, every webhook request is refused. */
  webhook: webhookSchema.optional(),
});

/** An AWS provider block after validation. */
export type AwsProviderConfig = z.infer<typeof awsProviderSchema>;
/** One account of an AWS provider block. */
export type AwsAccountConfig = AwsProviderConfig['accounts'][number];
/** The webhook credentials of an AWS provider block. */
export type AwsWebhookConfig = NonNullable<AwsProviderConfig['webhook']>;
