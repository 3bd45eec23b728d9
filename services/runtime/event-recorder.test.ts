import { describe, expect, it } from 'vitest';
import { VmsError } from '../errors.ts';
import { TransientKubeError } from '../writer/transient-kube-error.ts';
import { EVENT_INTERVAL_MS, EventRecorder } from './event-recorder.ts';

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** An API whose createEvent fails with `failure()` (or succeeds when it returns undefined), and a logger that keeps its lines. */
function harness(failure: () => Error | undefined) {
  const sent: string[] = [];
  const lines: Array<{ level: 'warn' | 'debug'; fields: Record<string, unknown>; msg: string }> = [];
  let now = 1_000_000;
  const api = {
    createEvent: async (event: { involvedObject: { name: string }; reason: string }) => {
      sent.push(`${event.involvedObject.name}/${event.reason}`);
      const err = failure();
      if (err) throw err;
    },
  };
  const logger = {
    warn: (fields: Record<string, unknown>, msg: string) => lines.push({ level: 'warn', fields, msg }),
    debug: (fields: Record<string, unknown>, msg: string) => lines.push({ level: 'debug', fields, msg }),
  };
  const recorder = new EventRecorder(api as never, { logger: logger as never, now: () => now });
  return { recorder, sent, lines, advance: (ms: number) => (now += ms) };
}

describe('EventRecorder', () => {
  it('an Event the API server refuses is said once at warn with its code, and not posted again', async () => {
    const h = harness(() => new VmsError('VMS_ERR_KUBE_FORBIDDEN', 'events is forbidden'));
    h.recorder.writeFailed('default/a', 'VMS_ERR_KUBE_REJECTED', 'bad');
    await tick();
    h.recorder.writeFailed('default/b', 'VMS_ERR_KUBE_REJECTED', 'bad');
    await tick();
    // Well past the rate limit's interval: a refused one still is not asked again.
    h.advance(3 * EVENT_INTERVAL_MS);
    h.recorder.writeFailed('default/a', 'VMS_ERR_KUBE_REJECTED', 'bad');
    await tick();
    expect(h.sent).toEqual(['a/KubeRejected', 'b/KubeRejected']);
    const warnings = h.lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.fields).toMatchObject({ code: 'VMS_ERR_KUBE_FORBIDDEN', namespace: 'default', name: 'a' });
  });

  it('an Event lost on the way (a transient failure) is posted again at the next occasion', async () => {
    let fail = true;
    const h = harness(() => (fail ? new TransientKubeError('503', { status: 503, reason: 'ServiceUnavailable' }) : undefined));
    h.recorder.writeFailed('default/a', 'VMS_ERR_KUBE_REJECTED', 'bad');
    await tick();
    fail = false;
    h.advance(2000);
    h.recorder.writeFailed('default/a', 'VMS_ERR_KUBE_REJECTED', 'bad');
    await tick();
    // Sent once more; now it is recorded and the interval holds the next one back.
    h.recorder.writeFailed('default/a', 'VMS_ERR_KUBE_REJECTED', 'bad');
    await tick();
    expect(h.sent).toEqual(['a/KubeRejected', 'a/KubeRejected']);
    expect(h.lines.filter((l) => l.level === 'warn')).toEqual([]);
  });
});
