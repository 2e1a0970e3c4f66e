// `npm run bench -- replicas [--edges=1000] [--sims=1] [--source=kubernetes|local]`: three cloudcore processes
// sharing one CA, with simulated edges (test/bench/edge-simulator.ts) that follow GOAWAY addresses. Default
// balancing settings (10 s reports, 30 s observation, 100 GOAWAYs a second).
//   rebalance_s             two replicas join one holding every edge → all three within tolerance
//   imbalance_pct_after     max |count − E| / E one observation period later
//   goaways_per_moved_edge  GOAWAY REBALANCE sent / edges that left the first replica
//   failover_s              kill -9 of one of three → every edge connected and resynced
// On the kubernetes source (the default up to 1,000 edges: a real control plane, the controller-manager at its
// default node grace period, cloudcore under its own RBAC), the edges report a numbered node status every 30 s
// and the run goes on with the killed replica back and a rolling restart of all three (SIGTERM one at a time):
//   notready_transitions    edge nodes seen leaving Ready (sampled every second) over all of it
//   lost_reports            acknowledged reports missing from the cluster at the end
// With --edges=10000 (the local source: replicas share one object store) the first figure is rebalance_10000_s.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CoreV1Api } from '@kubernetes/client-node';
import { LocalObjectStore } from '../../cloudcore/edgecontroller/local-object-store.js';
import { createKubeClients } from '../../cloudcore/kube/kube-client.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { startControlPlane } from '../support/control-plane.js';
import { ReadySampler } from '../support/ready-sampler.js';
import { issueCerts, simStart, startFleet, waitSynced, type Fleet } from './simulator-fleet.js';
import {
  CLOUDCORE_BIN,
  benchDir,
  freePort,
  note,
  onExit,
  report,
  runBench,
  sleep,
  start,
  writeCloudConfig,
  type CloudFiles,
  type Proc,
} from './bench-support.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const EDGES = Number(args.get('edges') ?? 1_000);
const SIMS = Number(args.get('sims') ?? 1);
const SOURCE = args.get('source') ?? (EDGES > 1_000 ? 'local' : 'kubernetes');
const TOLERANCE = 0.1;
const MIN_EXCESS = 5;

interface Replica {
  id: string;
  files: CloudFiles;
  monitor: number;
  url: string;
  proc?: Proc;
}

async function metric(replica: Replica, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${replica.monitor}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : Number.NaN;
}

const counts = (replicas: Replica[]): Promise<number[]> => Promise.all(replicas.map((r) => metric(r, 'cloudcore_connected_edges')));

/** Largest distance from E as a fraction of E, and whether every replica is within tolerance. */
function imbalance(c: number[]): { pct: number; balanced: boolean } {
  const total = c.reduce((a, b) => a + b, 0);
  const e = Math.ceil(total / c.length);
  const worst = Math.max(...c.map((n) => Math.abs(n - e)));
  return { pct: (worst / e) * 100, balanced: total === EDGES && c.every((n) => n <= Math.max(e * (1 + TOLERANCE), e + MIN_EXCESS)) };
}

async function startReplica(r: Replica): Promise<void> {
  r.proc = start(CLOUDCORE_BIN, ['--config', r.files.configPath, '--log-level', 'info'], { nodeArgs: ['--max-old-space-size=4096'] });
  await r.proc.waitForLog((l) => l.msg === 'cloudcore ready', 60_000);
}

runBench(async () => {
  const dir = benchDir();
  // One CA for all three, in files (on a cluster too: files, when present, are used instead of the Secret).
  const ca = await CertificateAuthority.create();
  const caCertFile = join(dir, 'ca.crt');
  const caKeyFile = join(dir, 'ca.key');
  writeFileSync(caCertFile, ca.certPem);
  writeFileSync(caKeyFile, ca.keyPem, { mode: 0o600 });
  const cp = SOURCE === 'kubernetes' ? startControlPlane() : undefined;
  if (cp) onExit(() => cp.stop());
  const kubeconfig = cp && (await cp.cloudcoreKubeconfig());
  const replicas: Replica[] = [];
  for (const id of ['replica-a', 'replica-b', 'replica-c']) {
    const first = replicas[0]?.files;
    const monitor = await freePort();
    const files = await writeCloudConfig(join(dir, id), {
      ...(kubeconfig ? { kubeAPI: { kubeconfig, qps: 200, burst: 400 } } : {}),
      monitorServer: { port: monitor },
      cloudHub: { nodeLimit: 20_000, rebalance: { replicaId: id }, caCertFile, caKeyFile },
      edgeController: kubeconfig ? { source: 'kubernetes', webhookAddress: '127.0.0.1', webhookPort: 0 } : first ? { localStorePath: first.storePath } : {},
    });
    replicas.push({ id, files, monitor, url: `wss://127.0.0.1:${files.hubPort}` });
  }
  const [a, b, c] = replicas as [Replica, Replica, Replica];
  await startReplica(a);
  const names = Array.from({ length: EDGES }, (_, i) => `sim-${i}`);
  if (!cp) {
    const store = new LocalObjectStore(a.files.storePath);
    for (const name of names) store.put(name, 'default/configmap/c0', { data: { k: '0' } });
    store.close();
  }
  const certs = await issueCerts(ca, names);
  const fleet = startFleet(SIMS);
  onExit(() => fleet.kill());
  fleet.send(simStart(a.url, certs, certs.nodes, cp ? { reportNodeStatus: true, reportEveryMs: 30_000 } : {}));
  await waitSynced(fleet, EDGES, 300_000);
  note(`${EDGES} edges synced on ${a.id}`);
  const core = cp && createKubeClients({ kubeconfig: cp.kubeconfig }).core;
  const sampler = core && new ReadySampler(core, (name) => name.startsWith('sim-'));
  if (sampler) {
    await allReady(sampler);
    sampler.start();
  }

  // Two replicas join.
  await Promise.all([startReplica(b), startReplica(c)]);
  const joinedAt = Date.now();
  let balancedAt: number | undefined;
  let lastNote = 0;
  for (;;) {
    const now = await counts(replicas);
    if (imbalance(now).balanced) {
      balancedAt = Date.now();
      note(`balanced: ${now.join(' / ')}`);
      break;
    }
    if (Date.now() - joinedAt > 300_000) throw new Error(`not balanced within 300 s: ${now.join(' / ')}`);
    if (Date.now() - lastNote > 5_000) {
      note(`+${((Date.now() - joinedAt) / 1000).toFixed(0)} s: ${now.join(' / ')}`);
      lastNote = Date.now();
    }
    await sleep(250);
  }
  report(EDGES === 1_000 ? 'rebalance_s' : `rebalance_${EDGES}_s`, (balancedAt - joinedAt) / 1000, 's', { edges: EDGES });
  // One observation period later: did anything move back?
  await sleep(35_000);
  const after = await counts(replicas);
  report('imbalance_pct_after', imbalance(after).pct, '%', { counts: after });
  const goaways = (await Promise.all(replicas.map((r) => metric(r, 'cloudcore_goaways_sent_total{reason="REBALANCE"}')))).reduce((x, y) => x + y, 0);
  report('goaways_per_moved_edge', goaways / (EDGES - after[0]!), 'goaways', { goaways, moved: EDGES - after[0]! });

  // kill -9 of one of three: its edges find the others.
  fleet.setUrls(replicas.map((r) => r.url));
  const before = await fleet.status();
  const onC = after[2]!;
  const killedAt = Date.now();
  c.proc!.child.kill('SIGKILL');
  for (;;) {
    const s = await fleet.status();
    if (s.connected === EDGES && s.synced === EDGES && s.reconnects >= before.reconnects + onC && s.lastSyncedAtMs > killedAt) {
      report('failover_s', (s.lastSyncedAtMs - killedAt) / 1000, 's', { edgesMoved: onC, failedConnects: s.failedConnects - before.failedConnects });
      break;
    }
    if (Date.now() - killedAt > 300_000) throw new Error(`failover incomplete after 300 s: ${JSON.stringify(s)}`);
    await sleep(200);
  }
  note(`after failover: ${(await counts(replicas.filter((r) => r !== c))).join(' / ')}`);
  if (!core || !sampler) return;

  // The killed replica comes back, then all three restart one at a time (SIGTERM), as an upgrade does.
  await startReplica(c);
  for (const r of replicas) {
    const t0 = Date.now();
    r.proc!.child.kill('SIGTERM');
    await r.proc!.exited;
    await startReplica(r);
    await allConnected(fleet);
    note(`${r.id} restarted; all edges back in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${(await counts(replicas)).join(' / ')}`);
  }
  await sampler.stop();
  const events = await core.listEventForAllNamespaces({ fieldSelector: 'reason=NodeNotReady' });
  report('notready_transitions', sampler.transitions.length, 'transitions', {
    samples: sampler.samples,
    nodeNotReadyEvents: events.items.length,
    first: sampler.transitions.slice(0, 5),
  });
  const { lost, unacked } = await lostReports(fleet, core);
  report('lost_reports', lost, 'reports', { unacked });
});

/** Every simulated edge node Ready in the cluster (they register with their first report). */
async function allReady(sampler: ReadySampler): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const now = await sampler.sample();
    const ready = [...now.values()].filter((s) => s === 'True').length;
    if (ready === EDGES) return;
    if (Date.now() > deadline) throw new Error(`only ${ready}/${EDGES} edge nodes Ready after 300 s`);
    note(`${ready}/${EDGES} edge nodes Ready`);
    await sleep(2_000);
  }
}

async function allConnected(fleet: Fleet): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const s = await fleet.status();
    if (s.connected === EDGES && s.synced === EDGES) return;
    if (Date.now() > deadline) throw new Error(`edges not back after 300 s: ${JSON.stringify(s)}`);
    await sleep(200);
  }
}

/**
 * Stops the edges' reports, waits until each edge's newest one is acknowledged, and counts the nodes whose
 * status in the cluster is older than what the cloud acknowledged.
 */
async function lostReports(fleet: Fleet, core: CoreV1Api): Promise<{ lost: number; unacked: number }> {
  const deadline = Date.now() + 120_000;
  let reports = await fleet.reports(true);
  let unacked = Object.values(reports.nodes).filter((n) => n.acked < n.made).length;
  while (unacked > 0 && Date.now() < deadline) {
    await sleep(500);
    reports = await fleet.reports();
    unacked = Object.values(reports.nodes).filter((n) => n.acked < n.made).length;
  }
  // The last acknowledged patch may still be on its way into the informers of nobody: read the API server.
  await sleep(2_000);
  const nodes = await core.listNode();
  const inCluster = new Map(nodes.items.map((n) => [n.metadata!.name!, Number(/^sim-(\d+)$/.exec(n.status?.nodeInfo?.bootID ?? '')?.[1] ?? -1)]));
  const lost = Object.entries(reports.nodes).filter(([name, n]) => (inCluster.get(name) ?? -1) < n.acked).length;
  return { lost, unacked };
}
