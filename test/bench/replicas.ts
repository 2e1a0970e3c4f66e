// `npm run bench -- replicas [--edges=1000] [--sims=1]`: several cloudcore processes on the local source,
// sharing one CA and object store, with simulated edges (test/bench/edge-simulator.ts) that follow GOAWAY
// addresses. Default balancing settings (10 s reports, 30 s observation, 100 GOAWAYs a second).
//   rebalance_s             two replicas join one holding every edge → all three within tolerance
//   imbalance_pct_after     max |count − E| / E one observation period later
//   goaways_per_moved_edge  GOAWAY REBALANCE sent / edges that left the first replica
//   failover_s              kill -9 of one of three → every edge connected and resynced
// With --edges=10000 the first figure is rebalance_10000_s. Not measured here (they need a cluster):
// notready_transitions and lost_reports.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalObjectStore } from '../../cloudcore/edgecontroller/local-object-store.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { issueCerts, simStart, startFleet, waitSynced } from './simulator-fleet.js';
import { CLOUDCORE_BIN, benchDir, freePort, note, report, runBench, sleep, start, writeCloudConfig, type CloudFiles, type Proc } from './bench-support.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const EDGES = Number(args.get('edges') ?? 1_000);
const SIMS = Number(args.get('sims') ?? 1);
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
  const replicas: Replica[] = [];
  for (const id of ['replica-a', 'replica-b', 'replica-c']) {
    const first = replicas[0]?.files;
    const monitor = await freePort();
    const files = await writeCloudConfig(join(dir, id), {
      monitorServer: { port: monitor },
      cloudHub: { nodeLimit: 20_000, rebalance: { replicaId: id }, ...(first ? { caCertFile: first.caCertFile, caKeyFile: first.caKeyFile } : {}) },
      edgeController: first ? { localStorePath: first.storePath } : {},
    });
    replicas.push({ id, files, monitor, url: `wss://127.0.0.1:${files.hubPort}` });
  }
  const [a, b, c] = replicas as [Replica, Replica, Replica];
  await startReplica(a);
  const names = Array.from({ length: EDGES }, (_, i) => `sim-${i}`);
  const store = new LocalObjectStore(a.files.storePath);
  for (const name of names) store.put(name, 'default/configmap/c0', { data: { k: '0' } });
  store.close();
  const ca = await CertificateAuthority.fromPem(readFileSync(a.files.caCertFile, 'utf8'), readFileSync(a.files.caKeyFile, 'utf8'));
  const certs = await issueCerts(ca, names);
  const fleet = startFleet(SIMS);
  fleet.send(simStart(a.url, certs, certs.nodes));
  await waitSynced(fleet, EDGES, 300_000);
  note(`${EDGES} edges synced on ${a.id}`);

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
  note(`after failover: ${(await counts([a, b])).join(' / ')}`);
  fleet.kill();
});
