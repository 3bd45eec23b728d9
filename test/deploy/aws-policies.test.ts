// The AWS policies in deploy/aws/ and what the README and the manifests tell a user to configure
// must agree: a role the README has vm-mesh-sync assume is one the IAM policy lets it assume, and
// the role the ServiceAccount is annotated with is the one the cross-account trust policy trusts.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './deploy-files.ts';

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource?: string | string[];
  Principal?: { AWS?: string | string[] };
}

const policy = (file: string): Statement[] => (JSON.parse(readFileSync(path.join(ROOT, 'deploy/aws', file), 'utf8')) as { Statement: Statement[] }).Statement;
const list = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** The roles deploy/aws/iam-policy.json lets vm-mesh-sync assume. */
const assumable = (): string[] =>
  policy('iam-policy.json')
    .filter((s) => s.Effect === 'Allow' && list(s.Action).includes('sts:AssumeRole'))
    .flatMap((s) => list(s.Resource));

/** IAM's wildcard match: `*` any run of characters, `?` one. */
function iamMatches(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(value);
}

const ARN = /arn:aws:iam::\d{12}:role\/[\w+=,.@/-]+/g;

describe('deploy/aws policies', () => {
  it('let vm-mesh-sync assume every role the README configures as roleArn', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const roles = [...readme.matchAll(/roleArn:\s*(arn:aws:iam::\d{12}:role\/[\w+=,.@/-]+)/g)].map((m) => m[1]!);
    expect(roles.length).toBeGreaterThan(0);
    for (const role of roles) expect(assumable().some((p) => iamMatches(p, role)), `${role} is not in the sts:AssumeRole resources of deploy/aws/iam-policy.json`).toBe(true);
  });

  it('trust the role the ServiceAccount runs as (IRSA), the one the README and manifests name', () => {
    const serviceAccount = readFileSync(path.join(ROOT, 'deploy/base/serviceaccount.yaml'), 'utf8');
    const irsa = /eks\.amazonaws\.com\/role-arn:\s*(\S+)/.exec(serviceAccount)?.[1];
    expect(irsa).toMatch(ARN);
    const trusted = policy('cross-account-trust-policy.json')
      .filter((s) => s.Effect === 'Allow' && list(s.Action).includes('sts:AssumeRole'))
      .flatMap((s) => list(s.Principal?.AWS));
    expect(trusted).toContain(irsa);
    // The role being trusted is not the role being assumed: the README's roleArn names the reader.
    expect(assumable().some((p) => iamMatches(p, irsa!))).toBe(false);
  });
});
