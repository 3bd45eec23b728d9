// Shared by the GCP provider's tests: a config block as a user would write it, a clock, and a sleep
// that records the backoff it was asked for instead of waiting.
import { PassThroughClient } from 'google-auth-library';
import { gcpProviderSchema, type GcpProviderConfig } from './config.ts';
import { createGcpProvider, type GcpProvider, type GcpProviderOptions } from './gcp-provider.ts';

/** The default selector of the mapping rules. */
export const SELECTOR = { tag: 'mesh', value: 'true' };

/** A validated gcp block pointing at a fake Compute endpoint. */
export function gcpBlock(computeUrl: string, overrides: Record<string, unknown> = {}): GcpProviderConfig {
  return gcpProviderSchema.parse({
    type: 'gcp',
    name: 'test',
    projects: ['test-project'],
    endpoint: computeUrl,
    maxAttempts: 3,
    ...overrides,
  });
}

/** A sleep that returns at once and remembers each requested delay. */
export function recordingSleep(): { sleep: (ms: number) => Promise<void>; delays: number[] } {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}

/** A clock that moves one second per reading, so each page gets its own observation time. */
export function steppingClock(start = Date.parse('2025-01-01T00:00:00.000Z')): { now: () => Date } {
  let n = 0;
  return { now: () => new Date(start + 1000 * n++) };
}

/** A provider on the fake, credentials passed through (the fake wants none), retries without waiting. */
export function testProvider(computeUrl: string, overrides: Record<string, unknown> = {}, options: Partial<GcpProviderOptions> = {}): GcpProvider {
  return createGcpProvider(gcpBlock(computeUrl, overrides), {
    selector: SELECTOR,
    authClient: new PassThroughClient(),
    sleep: recordingSleep().sleep,
    random: () => 0.5,
    ...options,
  });
}
