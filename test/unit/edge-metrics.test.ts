import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { CriClient } from '../../edgecore/edged/cri/cri-client.js';
import type { RuntimeCondition } from '../../edgecore/edged/cri/cri-types.js';
import { RuntimeReadiness } from '../../edgecore/edged/runtime-readiness.js';
import { EdgeMetrics, grpcStatusName } from '../../edgecore/metrics/edge-metrics.js';

const EDGE_METRICS = [
  'edgecore_link_connected',
  'edgecore_link_connects_total',
  'edgecore_link_disconnects_total',
  'edgecore_upstream_outbox_messages',
  'edgecore_upstream_outbox_oldest_age_seconds',
  'edgecore_store_commit_duration_seconds',
  'edgecore_store_objects',
  'edgecore_pods',
  'edgecore_container_restarts_total',
  'edgecore_cri_request_duration_seconds',
  'edgecore_cri_request_errors_total',
  'edgecore_mqtt_messages_received_total',
  'edgecore_mqtt_messages_published_total',
  'edgecore_device_reports_total',
  'edgecore_twin_updates_total',
  'edgecore_kubelet_requests_total',
  'edgecore_kubelet_streaming_sessions',
];

const text = (m: EdgeMetrics): Promise<string> => m.registry.metrics();

describe('EdgeMetrics', () => {
  it('defines each edgecore metric once, with help text', async () => {
    const metrics = new EdgeMetrics(new Registry());
    const defined = (await metrics.registry.getMetricsAsJSON()).filter((m) => m.name.startsWith('edgecore_'));
    expect(defined.map((m) => m.name).sort()).toEqual([...EDGE_METRICS].sort());
    for (const m of defined) expect(m.help.length, m.name).toBeGreaterThan(10);
  });

  it('reads zero from the state gauges until a module gives their source, then reads the source at scrape time', async () => {
    const metrics = new EdgeMetrics(new Registry());
    let body = await text(metrics);
    expect(body).toMatch(/^edgecore_link_connected 0$/m);
    expect(body).toMatch(/^edgecore_upstream_outbox_oldest_age_seconds 0$/m);
    expect(body).toMatch(/^edgecore_pods\{phase="Unknown"\} 0$/m);
    expect(body).toMatch(/^edgecore_store_objects\{type="pod"\} 0$/m);

    let connected = true;
    metrics.provide('linkConnected', () => connected);
    metrics.provide('upstreamOutbox', () => ({ messages: 3, oldestCreatedMs: Date.now() - 4_000 }));
    metrics.provide('storeObjects', () => [{ type: 'configmap', objects: 2 }]);
    metrics.provide('pods', () => ({ Pending: 1, Running: 2, Succeeded: 0, Failed: 0, Unknown: 0 }));
    body = await text(metrics);
    expect(body).toMatch(/^edgecore_link_connected 1$/m);
    expect(body).toMatch(/^edgecore_upstream_outbox_messages 3$/m);
    expect(Number(/^edgecore_upstream_outbox_oldest_age_seconds (\S+)$/m.exec(body)![1])).toBeGreaterThanOrEqual(4);
    expect(body).toMatch(/^edgecore_store_objects\{type="configmap"\} 2$/m);
    expect(body).toMatch(/^edgecore_store_objects\{type="pod"\} 0$/m);
    expect(body).toMatch(/^edgecore_pods\{phase="Running"\} 2$/m);
    connected = false;
    expect(await text(metrics)).toMatch(/^edgecore_link_connected 0$/m);
  });

  it('counts CRI calls by method and failures by gRPC status name', async () => {
    const metrics = new EdgeMetrics(new Registry());
    expect(metrics.criMethod('Version')).toBe(metrics.criMethod('Version'));
    const client = new CriClient({ endpoint: 'unix:///nonexistent-kc-metrics/containerd.sock', callTimeoutMs: 5_000, metrics });
    await expect(client.version()).rejects.toMatchObject({ code: 'ERR_UNAVAILABLE' });
    client.close();
    const body = await text(metrics);
    expect(body).toMatch(/^edgecore_cri_request_errors_total\{method="Version",code="UNAVAILABLE"\} 1$/m);
    expect(body).toMatch(/^edgecore_cri_request_duration_seconds_count\{method="Version"\} 1$/m);
    expect(grpcStatusName(4)).toBe('DEADLINE_EXCEEDED');
    expect(grpcStatusName(99)).toBe('UNKNOWN');
  });
});

describe('RuntimeReadiness', () => {
  const ready: RuntimeCondition[] = [{ type: 'RuntimeReady', status: true, reason: '', message: '' }];

  it('asks the runtime once per cache window, and shares one call between concurrent probes', async () => {
    let now = 0;
    let calls = 0;
    const readiness = new RuntimeReadiness({
      cri: { status: async () => (calls++, ready) },
      endpoint: 'unix:///run/containerd/containerd.sock',
      runtimeName: () => 'containerd',
      now: () => now,
    });
    expect(await Promise.all([readiness.check(), readiness.check()])).toEqual([undefined, undefined]);
    now = 4_999;
    await readiness.check();
    expect(calls).toBe(1);
    now = 5_000;
    await readiness.check();
    expect(calls).toBe(2);
  });

  it('names the runtime and its endpoint when it does not answer in time, fails, or is not ready', async () => {
    const endpoint = 'unix:///run/containerd/containerd.sock';
    const silent = new RuntimeReadiness({ cri: { status: () => new Promise(() => undefined) }, endpoint, runtimeName: () => 'containerd', timeoutMs: 20 });
    expect(await silent.check()).toBe(`containerd at ${endpoint} did not answer within 20 ms`);
    const failing = new RuntimeReadiness({ cri: { status: () => Promise.reject(new Error('connect ENOENT')) }, endpoint, runtimeName: () => '' });
    expect(await failing.check()).toBe(`the container runtime at ${endpoint} did not answer: connect ENOENT`);
    const down: RuntimeCondition[] = [{ type: 'RuntimeReady', status: false, reason: 'Starting', message: 'loading plugins' }];
    const notReady = new RuntimeReadiness({ cri: { status: async () => down }, endpoint, runtimeName: () => 'containerd' });
    expect(await notReady.check()).toBe(`containerd at ${endpoint} is not ready: Starting loading plugins`);
  });
});
