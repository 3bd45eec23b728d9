// Shared webhook secrets (API key, Basic password, query secret) are compared with
// crypto.timingSafeEqual, on inputs of equal length whatever was presented, so that neither the
// content nor the length of a guess changes the time the comparison takes. The test watches the
// calls; it does not measure time. Token schemes (GCP, Entra) verify signatures instead and
// compare no shared secret.
import * as crypto from 'node:crypto';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../config/load.ts';
import { createProviders } from '../../providers/index.ts';
import type { WebhookReceiver, WebhookRequest } from '../../providers/provider.ts';
import { isVmsError } from '../../services/errors.ts';

vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

const SECRET = 'correct-horse-battery-staple';

/** A shared-secret scheme: the receiver, and a request presenting `value` as the secret. */
interface Scheme {
  name: string;
  receiver: () => Promise<WebhookReceiver>;
  present: (value: string) => WebhookRequest;
}

async function receiverOf(block: Record<string, unknown>): Promise<WebhookReceiver> {
  const config = parseConfig({ providers: [block] });
  const [provider] = await createProviders(config.providers, { mapping: config.mapping });
  return (provider as unknown as { webhook: WebhookReceiver }).webhook;
}

const request = (headers: Record<string, string>, query: Record<string, string> = {}): WebhookRequest => ({
  method: 'POST',
  headers,
  query,
  body: undefined,
  rawBody: '',
});

const schemes: Scheme[] = [
  {
    name: 'aws API key',
    receiver: () => receiverOf({ type: 'aws', name: 'p', regions: ['us-east-1'], accounts: [{ id: '123456789012' }], webhook: { apiKey: { value: SECRET } } }),
    present: (value) => request({ 'x-api-key': value }),
  },
  {
    name: 'aws Basic password',
    receiver: () => receiverOf({ type: 'aws', name: 'p', regions: ['us-east-1'], accounts: [{ id: '123456789012' }], webhook: { basic: { username: 'eb', password: SECRET } } }),
    present: (value) => request({ authorization: `Basic ${Buffer.from(`eb:${value}`).toString('base64')}` }),
  },
  {
    name: 'azure query secret',
    receiver: () => receiverOf({ type: 'azure', name: 'p', subscriptions: ['1f7a6c2e-5d3b-4e8a-9c01-2b3d4e5f6a7b'], webhook: { querySecret: { value: SECRET } } }),
    present: (value) => request({}, { code: value }),
  },
];

const spy = vi.mocked(crypto.timingSafeEqual);

describe.each(schemes)('$name', (scheme) => {
  beforeEach(() => {
    spy.mockClear();
  });

  it.each([
    ['the secret', SECRET, true],
    ['a guess of the same length', SECRET.replace(/.$/, '!'), false],
    ['a guess one character short', SECRET.slice(0, -1), false],
    ['a much longer guess', SECRET.repeat(40), false],
    ['an empty value', '', false],
  ])('%s: decided by timingSafeEqual on inputs of equal length', async (_what, value, accepted) => {
    const outcome = await (await scheme.receiver()).authenticate(scheme.present(value)).then(
      () => true,
      (err: unknown) => {
        if (!isVmsError(err, 'VMS_ERR_WEBHOOK_UNAUTHORIZED')) throw err;
        return false;
      },
    );
    expect(outcome).toBe(accepted);
    expect(spy).toHaveBeenCalled();
    for (const [a, b] of spy.mock.calls) {
      expect((a as Buffer).length).toBe((b as Buffer).length);
      // The length is fixed (a digest), so it says nothing of the secret's or the guess's length.
      expect((a as Buffer).length).toBe(32);
    }
    // The verdict is timingSafeEqual's: every comparison (user and password for Basic) said equal
    // exactly when the secret was presented.
    expect(spy.mock.results.every((r) => r.type === 'return' && r.value === true)).toBe(accepted);
  });
});
