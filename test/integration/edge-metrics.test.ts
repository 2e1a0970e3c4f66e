import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { eventually, freePort, tempDir } from '../support/harness.js';
import { startContainerd } from '../support/containerd.js';
import { cloudSetup, edgeSetup, startCloud, startEdge, type CloudSetup, type Daemon } from '../support/daemons.js';

/** The value of one sample in Prometheus text format (`name{labels} value`), undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function monitorUrl(daemon: Daemon): Promise<string> {
  const line = await daemon.waitForLog((l) => l.msg === 'monitor server listening', 30_000, 'monitor server');
  return line.url as string;
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

/** A TCP port held open by this test until it ends. */
async function takenPort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as { port: number }).port;
}

/** A cloud nobody answers on: the monitor server starts (and fails) before edgecore dials it. */
async function noCloud(dir: string): Promise<CloudSetup> {
  return { dir, hubPort: await freePort(), certPort: await freePort(), configPath: '', storePath: '' };
}

describe('edgecore monitor server (real cloudcore and edgecore processes)', () => {
  it('serves the link, outbox and store metrics, and /healthz and /readyz once running', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    const edge = edgeSetup(dir, 'edge-1', cloud.setup, { monitorServer: { shutdownDelaySeconds: 2 } });
    const daemon = startEdge(edge, await cloud.token());
    const url = await monitorUrl(daemon);
    await daemon.waitForLog((l) => l.msg === 'resynced with cloud', 30_000, 'resync');

    cloud.store.put('edge-1', 'default/configmap/one', { data: { a: '1' } });
    cloud.store.put('edge-1', 'default/configmap/two', { data: { b: '2' } });
    cloud.store.put('edge-1', 'default/pod/web', { spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    const text = await eventually(async () => {
      const { status, body } = await get(`${url}/metrics`);
      expect(status).toBe(200);
      expect(sample(body, 'edgecore_store_objects{type="configmap"}')).toBe(2);
      expect(sample(body, 'edgecore_store_objects{type="pod"}')).toBe(1);
      return body;
    }, 30_000);
    expect(sample(text, 'edgecore_link_connected')).toBe(1);
    expect(sample(text, 'edgecore_link_connects_total')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'edgecore_store_objects{type="secret"}')).toBe(0);
    expect(sample(text, 'edgecore_store_commit_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'edgecore_upstream_outbox_messages')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'edgecore_upstream_outbox_oldest_age_seconds')).toBeGreaterThanOrEqual(0);
    for (const phase of ['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown']) expect(sample(text, `edgecore_pods{phase="${phase}"}`)).toBe(0);
    expect(text).toContain('process_resident_memory_bytes');

    expect(await get(`${url}/healthz`)).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(`${url}/readyz`)).toEqual({ status: 200, body: 'ok\n' });

    // The cloud goes away: the link gauge drops and the session end is counted by its reason.
    await cloud.kill('SIGKILL');
    await eventually(async () => {
      const { body } = await get(`${url}/metrics`);
      expect(sample(body, 'edgecore_link_connected')).toBe(0);
      expect(body).toMatch(/^edgecore_link_disconnects_total\{reason="[A-Z_a-z]+"\} 1$/m);
    }, 30_000);

    // SIGTERM: /readyz says draining for shutdownDelaySeconds while the rest keeps answering, then a clean exit.
    daemon.child.kill('SIGTERM');
    await eventually(async () => expect(await get(`${url}/readyz`)).toEqual({ status: 503, body: 'not ready: draining: shutting down\n' }), 10_000);
    expect((await get(`${url}/healthz`)).status).toBe(200);
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
  });

  it('exits 2 naming monitorServer when its port is taken', async () => {
    const dir = tempDir();
    const port = await takenPort();
    const daemon = startEdge(edgeSetup(dir, 'edge-1', await noCloud(dir), { monitorServer: { port } }), 'unused-token');
    const { code } = await daemon.exited;
    expect(code).toBe(2);
    expect(daemon.stderr.join('\n')).toMatch(new RegExp(`monitorServer: cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use`));
  });

  it('exits 2 naming monitorServer.address when it is not an IP address', async () => {
    const dir = tempDir();
    const daemon = startEdge(edgeSetup(dir, 'edge-1', await noCloud(dir), { monitorServer: { address: 'not-an-ip' } }));
    const { code } = await daemon.exited;
    expect(code).toBe(2);
    expect(daemon.stderr.join('\n')).toContain('monitorServer.address "not-an-ip" is not an IP address');
  });

  it('is ready while the container runtime answers, and says which runtime stopped answering', async () => {
    const containerd = await startContainerd();
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    const edged = {
      enable: true,
      nodeIP: '127.0.0.1',
      runtimeEndpoint: containerd.endpoint,
      rootDirectory: join(dir, 'pods'),
      podLogsDirectory: join(dir, 'logs'),
      cgroupParent: containerd.cgroupParent,
      staticPodPath: join(dir, 'manifests'),
      relistIntervalMs: 300,
    };
    const daemon = startEdge(edgeSetup(dir, 'edge-1', cloud.setup, { edged }), await cloud.token());
    const url = await monitorUrl(daemon);
    await daemon.waitForLog((l) => l.msg === 'edged running pods', 30_000, 'edged');
    await eventually(async () => expect(await get(`${url}/readyz`)).toEqual({ status: 200, body: 'ok\n' }), 30_000);
    const { body } = await get(`${url}/metrics`);
    expect(sample(body, 'edgecore_cri_request_duration_seconds_count{method="ListPodSandbox"}')).toBeGreaterThanOrEqual(1);

    // The verdict is cached 5 s, so the 503 may take that long to show; then the relist errors are counted too.
    await containerd.restart('SIGTERM', async () => {
      await eventually(
        async () => {
          const readyz = await get(`${url}/readyz`);
          expect(readyz.status).toBe(503);
          expect(readyz.body).toContain(`not ready: cri: containerd at ${containerd.endpoint} did not answer`);
        },
        20_000,
        200,
      );
      const metrics = await get(`${url}/metrics`);
      expect(sample(metrics.body, 'edgecore_cri_request_errors_total{method="ListPodSandbox",code="UNAVAILABLE"}')).toBeGreaterThanOrEqual(1);
    });
    await eventually(async () => expect((await get(`${url}/readyz`)).status).toBe(200), 30_000, 200);
  });
});
