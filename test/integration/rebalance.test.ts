import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { EdgeCore } from '../../edgecore/edgecore.js';
import { cloudSetup, edgeSetup, startCloud, startEdgeInProcess, type Cloud, type CloudSetup } from '../support/daemons.js';
import { eventually, freePort, tcpProxy, tempDir, useControlPlane } from '../support/harness.js';

// Issue 12: replicas publish their connection counts and shed edges above their share to replicas with room.

const metric = async (port: number, name: string, absent?: number): Promise<number> => {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line && absent !== undefined) return absent;
  if (!line) throw new Error(`${name} not exported`);
  return Number(line.slice(name.length + 1));
};
const readyz = async (port: number): Promise<{ status: number; body: string }> => {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: await res.text() };
};

/** Fast cycles for tests; the defaults are 10 s reports, 30 s observation, 20 GOAWAYs a second. */
const REBALANCE = { reportIntervalMs: 1_000, observeMs: 4_000, shedPerSecond: 4 };

interface Replica {
  cloud: Cloud;
  setup: CloudSetup;
  monitor: number;
}

/** A replica of the local source sharing `first`'s CA and object store (replicas share the source of truth). */
async function replica(dir: string, id: string, first?: CloudSetup): Promise<Replica> {
  const monitor = await freePort();
  const setup = await cloudSetup(join(dir, id), {
    monitorServer: { port: monitor },
    cloudHub: {
      rebalance: { ...REBALANCE, replicaId: id },
      ...(first ? { caCertFile: join(first.dir, 'cloud', 'ca.crt'), caKeyFile: join(first.dir, 'cloud', 'ca.key') } : {}),
    },
    edgeController: first ? { localStorePath: first.storePath } : {},
  });
  return { cloud: await startCloud(setup, `cloudcore-${id}`), setup, monitor };
}

describe('rebalancing across replicas', () => {
  it('sends the excess of a loaded replica to a new one with GOAWAY REBALANCE, failing readiness while it sheds, and never back', async () => {
    const dir = tempDir();
    const a = await replica(dir, 'replica-a');
    const token = await a.cloud.token();
    const EDGES = 24;
    for (let i = 0; i < EDGES; i++) a.cloud.store.put(`edge-${i}`, 'default/configmap/cfg', { data: { i: String(i) } });
    const edges: EdgeCore[] = [];
    for (let i = 0; i < EDGES; i++) edges.push(await startEdgeInProcess(edgeSetup(dir, `edge-${i}`, a.setup), token));
    await eventually(() => expect(edges.filter((e) => e.edgeHub.status.type === 'connected')).toHaveLength(EDGES), 60_000);
    await eventually(async () => expect(await metric(a.monitor, 'cloudcore_connected_edges')).toBe(EDGES));
    expect(await metric(a.monitor, 'cloudcore_replicas')).toBe(1);

    const b = await replica(dir, 'replica-b', a.setup);
    const bAddress = `127.0.0.1:${b.setup.hubPort}`;
    // E = 12: a sheds 12 at 4 a second, so it is unready for about 3 s, and says why.
    await eventually(
      async () => expect(await readyz(a.monitor)).toEqual({ status: 503, body: expect.stringContaining('not ready: rebalance: rebalancing') }),
      20_000,
      50,
    );
    await eventually(
      async () => {
        expect(await metric(a.monitor, 'cloudcore_connected_edges')).toBe(EDGES / 2);
        expect(await metric(b.monitor, 'cloudcore_connected_edges')).toBe(EDGES / 2);
      },
      30_000,
      100,
    );
    expect((await readyz(a.monitor)).status).toBe(200);
    expect(edges.filter((e) => e.edgeHub.status.type === 'connected' && e.edgeHub.status.server === bAddress)).toHaveLength(EDGES / 2);
    // One GOAWAY per moved edge; both see two replicas and expect 12 each.
    const goaways = async (port: number): Promise<number> => metric(port, 'cloudcore_goaways_sent_total{reason="REBALANCE"}');
    expect(await goaways(a.monitor)).toBe(EDGES / 2);
    expect(await metric(a.monitor, 'cloudcore_replicas')).toBe(2);
    // b computes E from a's report, which follows a's count within a second: an edge in flight may count twice.
    await eventually(async () => expect(await metric(b.monitor, 'cloudcore_rebalance_expected_edges')).toBe(EDGES / 2), 10_000, 100);
    // Every moved edge resynced from b: it still holds its object.
    for (const e of edges) expect(e.metaManager.metaStore.get('default/configmap/cfg')).toBeDefined();

    // Two more observation periods: nobody sheds again (no ping-pong).
    await new Promise((r) => setTimeout(r, 2 * REBALANCE.observeMs + 2 * REBALANCE.reportIntervalMs));
    expect(await goaways(a.monitor)).toBe(EDGES / 2);
    expect(await goaways(b.monitor)).toBe(0);
    expect(await metric(a.monitor, 'cloudcore_connected_edges')).toBe(EDGES / 2);

    // b stops cleanly: its report goes, and each of its edges is told to dial a (the replica with room).
    b.cloud.child.kill('SIGTERM');
    expect(await b.cloud.exited).toEqual({ code: 0, signal: null });
    await eventually(async () => expect(await metric(a.monitor, 'cloudcore_connected_edges')).toBe(EDGES), 30_000, 100);
    await eventually(async () => expect(await metric(a.monitor, 'cloudcore_replicas')).toBe(1), 10_000, 100);
  });

  it('ignores garbage and dead replicas in the reports, logging each once, and goes on balancing', async () => {
    const dir = tempDir();
    const a = await replica(dir, 'replica-a');
    await a.cloud.waitForLog((l) => l.msg === 'cloudhub listening');
    const reportsFile = join(a.setup.dir, 'cloud', 'replicas.db');
    await eventually(() => expect(readFileSync(reportsFile).length).toBeGreaterThan(0));
    const db = new Database(reportsFile);
    const put = db.prepare('INSERT OR REPLACE INTO replica_reports (id, report) VALUES (?, ?)');
    put.run('bad-json', '{"id": "x",');
    put.run('absurd', JSON.stringify({ id: 'absurd', address: '127.0.0.1:1', connections: 1e12, nodeLimit: 5, draining: false, reportedAtMs: Date.now() }));
    // A replica that died an hour ago without removing its report.
    put.run(
      'dead',
      JSON.stringify({ id: 'dead', address: '127.0.0.1:2', connections: 0, nodeLimit: 5, draining: false, reportedAtMs: Date.now() - 3_600_000 }),
    );
    // A replica that reports once and then never again: live at first, dead after three intervals.
    put.run('ghost', JSON.stringify({ id: 'ghost', address: '127.0.0.1:3', connections: 0, nodeLimit: 5, draining: false, reportedAtMs: Date.now() }));
    db.close();
    await eventually(async () => expect(await metric(a.monitor, 'cloudcore_replicas')).toBe(2), 10_000, 50);
    await eventually(async () => expect(await metric(a.monitor, 'cloudcore_replicas')).toBe(1), 10_000, 100);
    const ignored = a.cloud.logs.filter((l) => l.msg === 'replica report ignored');
    expect(ignored.map((l) => l.origin).sort()).toEqual([`file ${reportsFile} row absurd`, `file ${reportsFile} row bad-json`]);
    expect(String(ignored.find((l) => String(l.origin).endsWith('absurd'))!.reason)).toContain('connections 1000000000000 is not an integer');
    expect((await readyz(a.monitor)).status).toBe(200);
  });
});

describe('replica reports in the cluster', () => {
  const controlPlane = useControlPlane();

  it('keeps one ConfigMap per replica in kubeedge with cloudcore’s own RBAC, ignores a garbage one, and removes its own on a clean stop', async () => {
    const cp = controlPlane();
    const dir = tempDir();
    const monitor = await freePort();
    const setup = await cloudSetup(dir, {
      kubeconfig: await cp.cloudcoreKubeconfig(),
      monitorServer: { port: monitor },
      cloudHub: { rebalance: { ...REBALANCE, replicaId: 'in-cluster-a', address: 'cloudcore-a.example:10000' } },
    });
    const cloud = await startCloud(setup);
    const reports = async (): Promise<Array<{ name: string; report: Record<string, unknown> | string }>> => {
      const list = JSON.parse(await cp.kubectlOk(['get', 'configmaps', '-n', 'kubeedge', '-l', 'kubeedge-ts.io/cloudcore-replica-report=true', '-o', 'json']));
      return list.items.map((cm: { metadata: { name: string }; data?: { report?: string } }) => {
        try {
          return { name: cm.metadata.name, report: JSON.parse(cm.data?.report ?? '') };
        } catch {
          return { name: cm.metadata.name, report: cm.data?.report ?? '' };
        }
      });
    };
    await eventually(
      async () =>
        expect(await reports()).toContainEqual({
          name: 'cloudcore-replica-in-cluster-a',
          report: expect.objectContaining({ id: 'in-cluster-a', address: 'cloudcore-a.example:10000', connections: 0, nodeLimit: 20_000, draining: false }),
        }),
      20_000,
      250,
    );
    await cp.kubectlOk(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'cloudcore-replica-garbage', namespace: 'kubeedge', labels: { 'kubeedge-ts.io/cloudcore-replica-report': 'true' } },
        data: { report: 'not json at all' },
      }),
    );
    await cloud.waitForLog((l) => l.msg === 'replica report ignored' && l.origin === 'configmap kubeedge/cloudcore-replica-garbage', 20_000, 'garbage logged');
    expect((await readyz(monitor)).status).toBe(200);
    cloud.child.kill('SIGTERM');
    expect(await cloud.exited).toEqual({ code: 0, signal: null });
    expect((await reports()).map((r) => r.name)).toEqual(['cloudcore-replica-garbage']);
    await cp.kubectlOk(['delete', 'configmap', '-n', 'kubeedge', 'cloudcore-replica-garbage']);
  });

  it('gives a node one owner: a newer session on another replica takes it over, and the stale half-open one is closed at once', async () => {
    const cp = controlPlane();
    const dir = tempDir();
    const kubeconfig = await cp.cloudcoreKubeconfig();
    const [monA, monB] = [await freePort(), await freePort()];
    const setupA = await cloudSetup(join(dir, 'a'), { kubeconfig, monitorServer: { port: monA }, cloudHub: { rebalance: { replicaId: 'owner-a' } } });
    const a = await startCloud(setupA, 'cloudcore-a');
    const ca = { caCertFile: join(setupA.dir, 'cloud', 'ca.crt'), caKeyFile: join(setupA.dir, 'cloud', 'ca.key') };
    const setupB = await cloudSetup(join(dir, 'b'), { kubeconfig, monitorServer: { port: monB }, cloudHub: { rebalance: { replicaId: 'owner-b' }, ...ca } });
    // The edge reaches a through a relay that can freeze; b is in its list but not started yet.
    const relay = await tcpProxy(setupA.hubPort);
    const node = 'owner-edge';
    const edge = await startEdgeInProcess(
      edgeSetup(dir, node, setupA, {
        edged: { enable: true },
        edgeHub: { server: [`127.0.0.1:${relay.port}`, `127.0.0.1:${setupB.hubPort}`], heartbeatIntervalMs: 500, sessionTimeoutMs: 2_000 },
      }),
      await a.token(),
    );
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', server: `127.0.0.1:${relay.port}`, synced: true }), 30_000);
    const owner = async (): Promise<string | undefined> =>
      JSON.parse(await cp.kubectlOk(['get', 'node', node, '-o', 'json'])).metadata.annotations?.['kubeedge-ts.io/owner'];
    await eventually(async () => expect(await owner()).toBe('owner-a/1'), 20_000, 250);
    const b = await startCloud(setupB, 'cloudcore-b');

    // The link to a freezes: a keeps a half-open session (its own timeout is 90 s); the edge gives up after
    // 2 s and dials b.
    relay.block();
    relay.freeze();
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', server: `127.0.0.1:${setupB.hubPort}` }), 30_000);
    await eventually(async () => expect(await owner()).toBe('owner-b/2'), 20_000, 250);
    // a sees the new owner in its informer and closes its stale session long before it would time out.
    await a.waitForLog((l) => l.msg === 'node taken over by another replica; closing its session here' && l.nodeId === node, 20_000, 'takeover');
    await eventually(async () => expect(await metric(monA, 'cloudcore_connected_edges')).toBe(0), 10_000, 100);
    expect(await metric(monA, 'cloudcore_goaways_sent_total{reason="REPLACED"}')).toBe(1);
    // From then on only b renews the node's Lease. A label set a has not used yet is not exported: a may have
    // created the Lease and never renewed it before the link froze, which counts as no patch.
    const leasePatches = (): Promise<number> => metric(monA, 'cloudcore_apiserver_requests_total{verb="patch",resource="leases",code="200"}', 0);
    const before = await leasePatches();
    const renewTime = async (): Promise<string> => JSON.parse(await cp.kubectlOk(['get', 'lease', '-n', 'kube-node-lease', node, '-o', 'json'])).spec.renewTime;
    const renewed = await renewTime();
    await eventually(async () => expect(await renewTime()).not.toBe(renewed), 20_000, 250);
    expect(await leasePatches()).toBe(before);
    expect(JSON.parse(await cp.kubectlOk(['get', 'node', node, '-o', 'json'])).status.conditions.find((c: { type: string }) => c.type === 'Ready').status).toBe(
      'True',
    );
    await edge.stop();
    b.child.kill('SIGTERM');
    await b.exited;
    await cp.kubectl(['delete', 'node', node, '--ignore-not-found', '--wait=false']);
  });
});
