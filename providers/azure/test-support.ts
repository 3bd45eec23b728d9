// Shared by the Azure provider's tests: a config block as a user would write it, a credential that
// records what it was asked for, and a clock.
import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/identity';
import { azureProviderSchema, type AzureProviderConfig } from './config.ts';

/** The default selector of the mapping rules. */
export const SELECTOR = { tag: 'mesh', value: 'true' };

/** A validated azure block pointing at a fake ARM endpoint. */
export function azureBlock(endpoint: string, overrides: Record<string, unknown> = {}): AzureProviderConfig {
  return azureProviderSchema.parse({
    type: 'azure',
    name: 'test',
    subscriptions: ['1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b'],
    endpoint,
    maxRetries: 2,
    retryDelay: '1ms',
    maxRetryDelay: '5ms',
    ...overrides,
  });
}

/** A credential that hands out a fixed token and records the scopes it was asked for. */
export class RecordingCredential implements TokenCredential {
  readonly scopes: string[][] = [];
  readonly token: string;

  constructor(token = 'test-token') {
    this.token = token;
  }

  async getToken(scopes: string | string[], _options?: GetTokenOptions): Promise<AccessToken> {
    this.scopes.push(Array.isArray(scopes) ? [...scopes] : [scopes]);
    return { token: this.token, expiresOnTimestamp: Date.now() + 3_600_000 };
  }
}

/** A clock that moves one second per reading, so each page gets its own observation time. */
export function steppingClock(start = Date.parse('2025-01-01T00:00:00.000Z')): { now: () => Date; readings: () => number } {
  let n = 0;
  return { now: () => new Date(start + 1000 * n++), readings: () => n };
}
