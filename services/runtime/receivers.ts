// One webhook route per provider kind (`/webhooks/aws`), whatever the number of provider blocks
// of that kind: a request belongs to the block whose credentials it carries.
import type { Provider, WebhookOutcome, WebhookReceiver, WebhookRequest } from '../../providers/provider.ts';
import { VmsError } from '../errors.ts';

/** Tries each block's receiver in config order; the first that authenticates the request handles it. */
export class CompositeReceiver implements WebhookReceiver {
  readonly #receivers: readonly WebhookReceiver[];
  readonly #chosen = new WeakMap<WebhookRequest, WebhookReceiver>();

  constructor(receivers: readonly WebhookReceiver[]) {
    this.#receivers = receivers;
  }

  async authenticate(req: WebhookRequest): Promise<void> {
    let last: unknown = new VmsError('VMS_ERR_WEBHOOK_UNAUTHORIZED', 'no webhook credentials are configured for this provider');
    for (const receiver of this.#receivers) {
      try {
        await receiver.authenticate(req);
        this.#chosen.set(req, receiver);
        return;
      } catch (err) {
        last = err;
      }
    }
    throw last;
  }

  handle(req: WebhookRequest): WebhookOutcome {
    const receiver = this.#chosen.get(req);
    if (!receiver) throw new VmsError('VMS_ERR_WEBHOOK_UNAUTHORIZED', 'the request was not authenticated');
    return receiver.handle(req);
  }
}

/** The webhook receivers of the configured providers, one per provider kind. */
export function webhookReceivers(providers: readonly Provider[]): Map<string, WebhookReceiver> {
  const byKind = new Map<string, WebhookReceiver[]>();
  for (const p of providers) {
    const webhook = (p as Partial<{ webhook: WebhookReceiver }>).webhook;
    if (!webhook) continue;
    const list = byKind.get(p.kind) ?? [];
    list.push(webhook);
    byKind.set(p.kind, list);
  }
  return new Map([...byKind].map(([kind, list]) => [kind, list.length === 1 ? list[0]! : new CompositeReceiver(list)]));
}
