// The scenarios in the order a full run takes them.
import type { Scenario } from '../scenario-types.ts';
import { coldSync } from './cold-sync.ts';
import { eventStorm } from './event-storm.ts';
import { noopResync } from './noop-resync.ts';
import { pureCore } from './pure-core.ts';
import { serveMemory } from './serve-memory.ts';
import { webhookAuth } from './webhook-auth.ts';

/** Every scenario, by `--only` name. */
export const SCENARIOS: readonly Scenario[] = [pureCore, coldSync, noopResync, eventStorm, webhookAuth, serveMemory];
