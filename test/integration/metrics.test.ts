import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse, stringify } from 'yaml';
import { Operation, newMessage } from '../../shared/message.js';
import { CLOUDCORE_BIN, cloudSetup, edgeSetup, runCli, spawnDaemon, startCloud, startEdgeInProcess } from '../support/daemons.js';
import { eventually, freePort, tcpProxy, tempDir, useControlPlane } from '../support/harness.js';
import { startPrometheus } from '../support/prometheus.js';

// Issue 15: both daemons serve /metrics, /healthz and /readyz; a real Prometheus (Debian's) scrapes them.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DASHBOARD = join(ROOT, 'build', 'monitoring', 'grafana-dashboard.json');
const ALERTS = join(ROOT, 'build', 'monitoring', 'alerts.yml');

/** Metric families a PromQL text names (histogram series reduced to their family). */
const familiesIn = (text: string): string[] => [
  ...new Set([...text.matchAll(/\b(?:cloudcore|edgecore|KubeEdge|process|nodejs)_[A-Za-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|count|sum)$/, ''))),
];

const get = async (port: number, path: string): Promise<{ status: number; body: string }> => {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
};

describe('metrics: a real Prometheus scrapes cloudcore and edgecore', () => {
  it('counts the connected edge, fills the delivery histogram, and shows the edge outbox rising while the link is cut and draining after', async () => {
    const dir = tempDir();
    const cloudMonitor = await freePort();
    const cloud = await startCloud(await cloudSetup(dir, { monitorServer: { port: cloudMonitor } }));
    const proxy = await tcpProxy(cloud.setup.hubPort);
    const edgeMonitor = await freePort();
    const edge = await startEdgeInProcess(
      edgeSetup(dir, 'edge-metrics', cloud.setup, { hubPort: proxy.port, monitorServer: { port: edgeMonitor } }),
      await cloud.token(),
    );
    onTestFinished(() => edge.stop());
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    const prom = await startPrometheus(join(dir, 'prometheus'), { cloudcore: [`127.0.0.1:${cloudMonitor}`], edgecore: [`127.0.0.1:${edgeMonitor}`] }, [ALERTS]);
    const eventuallyValue = (promql: string, check: (v: number | undefined) => void, timeoutMs = 30_000): Promise<void> =>
      eventually(async () => check(await prom.value(promql)), timeoutMs, 250);

    await eventuallyValue('cloudcore_connected_edges', (v) => expect(v).toBe(1));
    await eventuallyValue('KubeEdge_CloudHub_connected_nodes', (v) => expect(v).toBe(1));
    await eventuallyValue('edgecore_link_connected', (v) => expect(v).toBe(1));

    // Objects flow down: each ACK lands in the delivery histogram.
    for (let i = 0; i < 10; i++) cloud.store.put('edge-metrics', `default/configmap/cfg-${i}`, { data: { i: String(i) } });
    await eventuallyValue('cloudcore_delivery_duration_seconds_count', (v) => expect(v).toBeGreaterThanOrEqual(10));
    await eventuallyValue('cloudcore_outbox_objects', (v) => expect(v).toBe(0));
    await eventuallyValue('edgecore_store_objects{type="configmap"}', (v) => expect(v).toBe(10));

    // The link is cut: what the edge reports waits in its durable outbox, and the gauge shows it.
    proxy.block();
    proxy.cut();
    await eventually(() => expect(edge.edgeHub.status.type).not.toBe('connected'));
    for (let i = 0; i < 5; i++) {
      await edge.bus.send(
        'edgehub',
        newMessage({ source: 'edged', group: 'resource', operation: Operation.update, resource: `default/podstatus/p${i}`, content: { phase: 'Running' } }),
      );
    }
    await edge.bus.send(
      'edgehub',
      newMessage({ source: 'edged', group: 'resource', operation: Operation.insert, resource: 'default/event/e1', content: { reason: 'Started' } }),
    );
    await eventuallyValue('edgecore_upstream_outbox_messages', (v) => expect(v).toBe(6));
    await eventuallyValue('edgecore_upstream_outbox_oldest_age_seconds', (v) => expect(v).toBeGreaterThan(0));
    await eventuallyValue('edgecore_link_connected', (v) => expect(v).toBe(0));
    await eventuallyValue('cloudcore_connected_edges', (v) => expect(v).toBe(0));

    // The link is back: the outbox drains to 0 and the edge counts one more connect.
    proxy.unblock();
    await eventuallyValue('edgecore_upstream_outbox_messages', (v) => expect(v).toBe(0), 60_000);
    await eventuallyValue('edgecore_link_connects_total', (v) => expect(v).toBeGreaterThanOrEqual(2));
    await eventuallyValue('cloudcore_connected_edges', (v) => expect(v).toBe(1));
    expect(cloud.store.getStatus('edge-metrics', 'default/event/e1')).toEqual({ reason: 'Started' });
    await eventuallyValue('sum(cloudcore_sessions_closed_total)', (v) => expect(v).toBeGreaterThanOrEqual(1));
    await eventuallyValue('cloudcore_sessions_opened_total', (v) => expect(v).toBeGreaterThanOrEqual(2));

    // No series names a node: 100,000 edges must not mean 100,000 series.
    const text = (await get(cloudMonitor, '/metrics')).body;
    expect(text).not.toContain('edge-metrics');
    expect(text).toMatch(/# HELP cloudcore_delivery_duration_seconds /);

    // build/monitoring: every family the dashboard and the alerts use is one the daemons export, and Prometheus
    // loaded and evaluated every alert rule.
    const exported = `${text}\n${(await get(edgeMonitor, '/metrics')).body}`;
    const used = familiesIn(`${readFileSync(DASHBOARD, 'utf8')}\n${readFileSync(ALERTS, 'utf8')}`);
    expect(used.length).toBeGreaterThan(20);
    expect(used.filter((family) => !exported.includes(`# TYPE ${family} `))).toEqual([]);
    await eventually(
      async () => {
        const res = (await (await fetch(`${prom.url}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string }> }> } };
        const rules = res.data.groups.flatMap((g) => g.rules);
        expect(rules).toHaveLength(6);
        expect(rules.filter((r) => r.health !== 'ok')).toEqual([]);
      },
      20_000,
      250,
    );
  });

  it('answers 503 on /readyz while draining after SIGTERM, then stops', async () => {
    const dir = tempDir();
    const port = await freePort();
    const setup = await cloudSetup(dir, { monitorServer: { port, shutdownDelaySeconds: 3 } });
    const cloud = await startCloud(setup);
    expect(await get(port, '/readyz')).toEqual({ status: 200, body: 'ok\n' });
    expect((await get(port, '/healthz')).status).toBe(200);
    cloud.child.kill('SIGTERM');
    await eventually(async () => expect(await get(port, '/readyz')).toEqual({ status: 503, body: 'not ready: draining: shutting down\n' }), 10_000, 50);
    // Still alive and serving metrics while the load balancer takes it out.
    expect((await get(port, '/healthz')).status).toBe(200);
    expect(cloud.child.exitCode).toBeNull();
    expect(await cloud.exited).toEqual({ code: 0, signal: null });
  });

  it('refuses a taken metrics port or an address that is not an IP with a config error and exit code 2', async () => {
    const dir = tempDir();
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void taken.close());
    const takenPort = (taken.address() as net.AddressInfo).port;
    const busy = await cloudSetup(join(dir, 'busy'), { monitorServer: { port: takenPort } });
    const result = await runCli(CLOUDCORE_BIN, ['--config', busy.configPath]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`monitorServer: cannot listen on 127.0.0.1:${takenPort}: the port is in use`);

    const bad = await cloudSetup(join(dir, 'bad'), { monitorServer: { address: 'metrics.local' } });
    const badResult = await runCli(CLOUDCORE_BIN, ['--config', bad.configPath]);
    expect(badResult.code).toBe(2);
    expect(badResult.stderr).toContain('monitorServer.address "metrics.local" is not an IP address');

    // An IP address that is not on this host (RFC 5737 documentation range).
    const away = await cloudSetup(join(dir, 'away'), { monitorServer: { address: '192.0.2.10' } });
    const awayResult = await runCli(CLOUDCORE_BIN, ['--config', away.configPath]);
    expect(awayResult.code).toBe(2);
    expect(awayResult.stderr).toContain('monitorServer: cannot listen on 192.0.2.10');
  });
});

describe('metrics: cloudcore readiness follows its informers', () => {
  const controlPlane = useControlPlane();

  it('answers 503 until the informers have listed the cluster, then 200, and counts its API requests', async () => {
    const cp = controlPlane();
    const dir = tempDir();
    // The API server behind a relay that refuses connections at first, as if it were still starting.
    const apiPort = Number(new URL(cp.server).port);
    const relay = await tcpProxy(apiPort);
    relay.block();
    const kubeconfig = parse(readFileSync(await cp.cloudcoreKubeconfig(), 'utf8')) as { clusters: Array<{ cluster: { server: string } }> };
    for (const c of kubeconfig.clusters) c.cluster.server = `https://127.0.0.1:${relay.port}`;
    const relayed = join(dir, 'relayed.kubeconfig');
    writeFileSync(relayed, stringify(kubeconfig));
    const port = await freePort();
    const setup = await cloudSetup(dir, { kubeconfig: relayed, monitorServer: { port } });
    const cloud = spawnDaemon(CLOUDCORE_BIN, ['--config', setup.configPath], 'cloudcore');
    await cloud.waitForLog((l) => l.msg === 'monitor server listening', 30_000, 'monitor server');
    await eventually(async () => expect(await get(port, '/readyz')).toMatchObject({ status: 503, body: expect.stringContaining('informers') }), 10_000, 100);
    // Still not ready a moment later: nothing answers yet.
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await get(port, '/readyz')).status).toBe(503);
    relay.unblock();
    await cloud.waitForLog((l) => l.msg === 'cloudcore ready', 60_000, 'ready');
    expect(await get(port, '/readyz')).toEqual({ status: 200, body: 'ok\n' });
    const text = (await get(port, '/metrics')).body;
    expect(text).toMatch(/^cloudcore_apiserver_requests_total\{verb="list",resource="pods",code="200"\} [1-9]/m);
    expect(text).toMatch(/^cloudcore_informer_relists_total\{resource="pods"\} [1-9]/m);
    expect(text).toMatch(/^cloudcore_apiserver_request_duration_seconds_count\{verb="list",resource="nodes"\} [1-9]/m);
  });
});
