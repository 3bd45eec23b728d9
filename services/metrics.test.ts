import { describe, expect, it } from 'vitest';
import { Metrics, type ScopeGauges } from './metrics.ts';
import { sampleValue } from './server/metrics-sample.test-helper.ts';

const SCOPE = 'aws:prod:123456789012:eu-west-1';

describe('Metrics', () => {
  it('shows the scope gauges as the shared status says, whichever replica ran the scope', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.setScopeSource(async (): Promise<ScopeGauges[]> => [
      {
        scope: SCOPE,
        provider: 'aws',
        lastSuccessAt: Date.UTC(2025, 0, 1, 0, 0, 0, 900),
        instances: 12,
        desired: 9,
        heldDeletes: 3,
        skipCodes: { VMS_SKIP_NOT_RUNNING: 2, VMS_SKIP_BAD_PORTS: 1 },
        conflicts: 1,
      },
      { scope: 'static:never', provider: '', lastSuccessAt: undefined, instances: 0, desired: 0, heldDeletes: 0, skipCodes: {}, conflicts: 0 },
    ]);
    metrics.recordResync(SCOPE, { ok: true, durationMs: 1500 });
    const text = await metrics.text();
    expect(sampleValue(text, 'vms_instances_seen', { provider: 'aws', scope: SCOPE })).toBe(12);
    expect(sampleValue(text, 'vms_entries_desired', { scope: SCOPE })).toBe(9);
    expect(sampleValue(text, 'vms_skips', { scope: SCOPE, code: 'VMS_SKIP_NOT_RUNNING' })).toBe(2);
    expect(sampleValue(text, 'vms_skips', { scope: SCOPE, code: 'VMS_SKIP_BAD_PORTS' })).toBe(1);
    expect(sampleValue(text, 'vms_deletes_held', { scope: SCOPE })).toBe(3);
    expect(sampleValue(text, 'vms_conflicts', { scope: SCOPE })).toBe(1);
    expect(sampleValue(text, 'vms_resync_last_success_timestamp_seconds', { scope: SCOPE })).toBe(Date.UTC(2025, 0, 1) / 1000);
    // A scope that never resynced completely shows 0, so a staleness alert fires for it too.
    expect(sampleValue(text, 'vms_resync_last_success_timestamp_seconds', { scope: 'static:never' })).toBe(0);
    expect(sampleValue(text, 'vms_instances_seen', { provider: '', scope: 'static:never' })).toBeUndefined();
    expect(sampleValue(text, 'vms_resync_duration_seconds_count', { scope: SCOPE })).toBe(1);
    expect(sampleValue(text, 'vms_resync_duration_seconds_sum', { scope: SCOPE })).toBe(1.5);
    expect(sampleValue(text, 'vms_resync_duration_seconds_bucket', { scope: SCOPE, le: '1' })).toBe(0);
    expect(sampleValue(text, 'vms_resync_duration_seconds_bucket', { scope: SCOPE, le: '2.5' })).toBe(1);
    expect(sampleValue(text, 'vms_resync_failures_total', { scope: SCOPE })).toBe(0);
  });

  it('drops skip series the shared status no longer has', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    let codes: Record<string, number> = { VMS_SKIP_BAD_PORTS: 1, VMS_SKIP_NOT_SELECTED: 1 };
    metrics.setScopeSource(async () => [{ scope: 'static:a', provider: 'static', lastSuccessAt: 1000, instances: 3, desired: 1, heldDeletes: 0, skipCodes: codes, conflicts: 0 }]);
    expect(sampleValue(await metrics.text(), 'vms_skips', { scope: 'static:a', code: 'VMS_SKIP_BAD_PORTS' })).toBe(1);
    codes = { VMS_SKIP_NOT_SELECTED: 2 };
    const text = await metrics.text();
    expect(sampleValue(text, 'vms_skips', { scope: 'static:a', code: 'VMS_SKIP_BAD_PORTS' })).toBeUndefined();
    expect(sampleValue(text, 'vms_skips', { scope: 'static:a', code: 'VMS_SKIP_NOT_SELECTED' })).toBe(2);
  });

  it('counts failed and incomplete resyncs of this process', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.recordResync(SCOPE, { ok: true, durationMs: 100 });
    metrics.recordResync(SCOPE, { ok: false, durationMs: 120_000 });
    metrics.recordResync(SCOPE, { ok: false, durationMs: 120_000 });
    const text = await metrics.text();
    expect(sampleValue(text, 'vms_resync_failures_total', { scope: SCOPE })).toBe(2);
    expect(sampleValue(text, 'vms_resync_duration_seconds_count', { scope: SCOPE })).toBe(3);
  });

  it('counts changes enqueued and applied, starting from 0 for every op and result', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    expect(sampleValue(await metrics.text(), 'vms_changes_applied_total', { result: 'stale' })).toBe(0);
    metrics.recordEnqueued('create', 3);
    metrics.recordEnqueued('delete');
    metrics.recordApply('created');
    metrics.recordApply('created');
    metrics.recordApply('absent');
    metrics.recordWriteFailure('VMS_ERR_KUBE_REJECTED');
    metrics.setOwnedEntries(42);
    const text = await metrics.text();
    expect(sampleValue(text, 'vms_changes_enqueued_total', { op: 'create' })).toBe(3);
    expect(sampleValue(text, 'vms_changes_enqueued_total', { op: 'update' })).toBe(0);
    expect(sampleValue(text, 'vms_changes_enqueued_total', { op: 'delete' })).toBe(1);
    expect(sampleValue(text, 'vms_changes_applied_total', { result: 'created' })).toBe(2);
    expect(sampleValue(text, 'vms_changes_applied_total', { result: 'absent' })).toBe(1);
    expect(sampleValue(text, 'vms_write_failures_total', { code: 'VMS_ERR_KUBE_REJECTED' })).toBe(1);
    expect(sampleValue(text, 'vms_entries_owned')).toBe(42);
  });

  it('counts webhooks by provider and outcome, and rejections by code', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.recordWebhook('azure', 'reply');
    metrics.recordWebhook('azure', 'refresh');
    metrics.recordWebhook('azure', 'refresh');
    metrics.recordWebhookRejected('azure', 'VMS_ERR_WEBHOOK_UNAUTHORIZED');
    const text = await metrics.text();
    expect(sampleValue(text, 'vms_webhook_events_total', { provider: 'azure', outcome: 'refresh' })).toBe(2);
    expect(sampleValue(text, 'vms_webhook_events_total', { provider: 'azure', outcome: 'reply' })).toBe(1);
    expect(sampleValue(text, 'vms_webhook_rejected_total', { provider: 'azure', code: 'VMS_ERR_WEBHOOK_UNAUTHORIZED' })).toBe(1);
  });

  it('reads the queue depth from its source at each scrape', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    expect(sampleValue(await metrics.text(), 'vms_queue_depth', { state: 'waiting' })).toBeUndefined();
    let depths: Record<string, number> = { waiting: 4, active: 2, failed: 1 };
    metrics.setQueueDepthSource(async () => depths);
    let text = await metrics.text();
    expect(sampleValue(text, 'vms_queue_depth', { state: 'waiting' })).toBe(4);
    expect(sampleValue(text, 'vms_queue_depth', { state: 'active' })).toBe(2);
    depths = { waiting: 0 };
    text = await metrics.text();
    expect(sampleValue(text, 'vms_queue_depth', { state: 'waiting' })).toBe(0);
    expect(sampleValue(text, 'vms_queue_depth', { state: 'active' })).toBeUndefined();
  });

  it('still answers a scrape when the queue depth fails or hangs, and counts it', async () => {
    const metrics = new Metrics({ defaultMetrics: false, queueDepthTimeoutMs: 50 });
    metrics.setQueueDepthSource(async () => ({ waiting: 1 }));
    await metrics.text();
    metrics.setQueueDepthSource(() => Promise.reject(new Error('ECONNREFUSED')));
    let text = await metrics.text();
    expect(sampleValue(text, 'vms_queue_depth', { state: 'waiting' })).toBeUndefined();
    expect(sampleValue(text, 'vms_queue_depth_errors_total')).toBe(1);
    metrics.setQueueDepthSource(() => new Promise(() => {}));
    text = await metrics.text();
    expect(sampleValue(text, 'vms_queue_depth_errors_total')).toBe(2);
  });

  it('reads the refresh depth from its own source, and counts its failure with the queue depth\'s', async () => {
    const metrics = new Metrics({ defaultMetrics: false, queueDepthTimeoutMs: 50 });
    metrics.setQueueDepthSource(async () => ({ waiting: 1 }));
    metrics.setRefreshDepthSource(async () => ({ waiting: 3, delayed: 7, active: 100 }));
    let text = await metrics.text();
    expect(sampleValue(text, 'vms_refresh_depth', { state: 'delayed' })).toBe(7);
    expect(sampleValue(text, 'vms_refresh_depth', { state: 'active' })).toBe(100);
    expect(sampleValue(text, 'vms_queue_depth', { state: 'waiting' })).toBe(1);
    metrics.setRefreshDepthSource(() => Promise.reject(new Error('ECONNREFUSED')));
    text = await metrics.text();
    expect(sampleValue(text, 'vms_refresh_depth', { state: 'delayed' })).toBeUndefined();
    expect(sampleValue(text, 'vms_queue_depth', { state: 'waiting' })).toBe(1);
    expect(sampleValue(text, 'vms_queue_depth_errors_total')).toBe(1);
  });

  it('keeps each instance in its own registry, process metrics included', async () => {
    const one = new Metrics();
    const two = new Metrics();
    one.recordApply('updated');
    expect(sampleValue(await one.text(), 'vms_changes_applied_total', { result: 'updated' })).toBe(1);
    const other = await two.text();
    expect(sampleValue(other, 'vms_changes_applied_total', { result: 'updated' })).toBe(0);
    expect(sampleValue(other, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(one.contentType).toMatch(/^text\/plain/);
  });
});
