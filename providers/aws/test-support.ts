// Shared by the AWS provider's tests: a config block as a user would write it, and a clock.
import { awsProviderSchema, type AwsProviderConfig } from './config.ts';

/** Credentials of the tests' base identity (the one that lists directly and calls AssumeRole). */
export const BASE_CREDENTIALS = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };

/** The default selector of the mapping rules. */
export const SELECTOR = { tag: 'mesh', value: 'true' };

/** A validated aws block pointing at a fake EC2 endpoint (and STS, when given). */
export function awsBlock(ec2Url: string, overrides: Record<string, unknown> = {}, stsUrl?: string): AwsProviderConfig {
  return awsProviderSchema.parse({
    type: 'aws',
    name: 'test',
    regions: ['us-east-1'],
    accounts: [{ id: '123456789012' }],
    endpoint: { ec2: ec2Url, ...(stsUrl === undefined ? {} : { sts: stsUrl }) },
    maxAttempts: 3,
    ...overrides,
  });
}

/** A clock that moves one second per reading, so each page gets its own observation time. */
export function steppingClock(start = Date.parse('2025-01-01T00:00:00.000Z')): { now: () => Date; readings: () => number } {
  let n = 0;
  return { now: () => new Date(start + 1000 * n++), readings: () => n };
}
