// `npm run bench -- channel [--only=throughput,latency,connections,storm,idle] [--edges=10000]`
//
// Figures (one JSON line each):
//   throughput_msgs_per_s       cloud→edge 1 KiB messages committed in the edge's SQLite and ACKed, one connection
//   latency_p50_ms/p99_ms       injection → ACK at half that rate
//   keepalive_rtt_10mib_ms      ping round trip while a 10 MiB object is being sent (must stay small)
//   rss_per_conn_kib_1000/10000 cloudcore RSS growth per held, synced edge connection
//   storm_10000_s               kill -9 of cloudcore → all 10,000 edges reconnected and resynced
//   idle_bytes_per_edge_per_min IP bytes per idle edge per minute, on a veth pair between two network namespaces
import { fork, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CloudCore } from '../../cloudcore/cloudcore.js';
import { loadCloudCoreConfig } from '../../cloudcore/config.js';
import { LocalObjectStore } from '../../cloudcore/edgecontroller/local-object-store.js';
import { silentLogger } from '../../shared/logger.js';
import { Operation, newMessage } from '../../shared/message.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { createBootstrapToken } from '../../shared/pki/bootstrap-token.js';
import { issueCerts, simOver, simStart, startFleet, waitSynced } from './simulator-fleet.js';
import {
  CLOUDCORE_BIN,
  EDGECORE_BIN,
  ROOT,
  benchDir,
  cpuSeconds,
  note,
  percentile,
  report,
  rssKiB,
  runBench,
  sleep,
  start,
  writeCloudConfig,
  type Proc,
} from './bench-support.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const only = args.get('only')?.split(',');
const want = (section: string): boolean => !only || only.includes(section);
const STORM_EDGES = Number(args.get('edges') ?? 10_000);
/** Simulator processes sharing the simulated fleet (on a 2-core machine they compete with cloudcore). */
const SIMS = Number(args.get('sims') ?? 1);
const NODE = 'bench-edge';

async function main(): Promise<void> {
  if (want('throughput') || want('latency')) await throughputAndLatency();
  if (want('connections') || want('storm')) await connectionsAndStorm();
  if (want('idle')) await idleBytes();
}

/** A ~1 KiB ConfigMap-shaped object. */
function object(key: string, rv: number): Record<string, unknown> {
  const [namespace, , name] = key.split('/');
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, uid: `uid-${name}`, resourceVersion: String(rv) },
    data: { payload: 'x'.repeat(860) },
  };
}

async function throughputAndLatency(): Promise<void> {
  const dir = benchDir();
  const files = await writeCloudConfig(dir, { edgeController: { enable: false } });
  const injectedAt = new Map<string, number>();
  let delivered = 0;
  // Preallocated so that recording does not itself feed the garbage collector being measured.
  let latencies: Float64Array | undefined;
  let latencyCount = 0;
  let bigDelivered = false;
  let onDelivered: (() => void) | undefined;
  const cloud = new CloudCore({
    config: loadCloudCoreConfig({ file: files.configPath }),
    logger: silentLogger(),
    observer: {
      delivered(_node, items) {
        const now = performance.now();
        for (const item of items) {
          if (!item.version) continue;
          delivered++;
          const t = injectedAt.get(item.key);
          if (item.key === 'default/configmap/big') bigDelivered = true;
          if (latencies && t !== undefined && latencyCount < latencies.length) latencies[latencyCount++] = now - t;
        }
        onDelivered?.();
      },
    },
  });
  await cloud.start();
  const ca = cloud.cloudHub.certificateAuthority;
  const edgeConfig = join(dir, 'edge.yaml');
  writeFileSync(
    edgeConfig,
    stringify({
      logLevel: 'info',
      nodeName: NODE,
      database: { path: join(process.env.KE_BENCH_EDGE_DB_DIR ?? join(dir, 'edge'), 'edgecore.db') },
      monitorServer: { port: 0 },
      modules: {
        eventBus: { enable: false },
        deviceTwin: { enable: false },
        edgeHub: {
          server: `127.0.0.1:${cloud.cloudHub.hubPort}`,
          certServer: `https://127.0.0.1:${cloud.cloudHub.certServerPort}`,
          caFile: join(dir, 'edge', 'ca.crt'),
          certFile: join(dir, 'edge', 'node.crt'),
          keyFile: join(dir, 'edge', 'node.key'),
        },
      },
    }),
  );
  const edge = start(EDGECORE_BIN, ['--config', edgeConfig, '--token', createBootstrapToken(ca.hash, ca.tokenSecret(), 3_600_000)], {
    nodeArgs: process.env.KE_BENCH_EDGE_NODE_ARGS?.split(' ') ?? [],
  });
  await edge.waitForLog((l) => l.msg === 'resynced with cloud');

  const KEYS = 20_000;
  let rv = 0;
  const inject = (i: number): Promise<void> => {
    const key = `default/configmap/k${i % KEYS}`;
    injectedAt.set(key, performance.now());
    rv++;
    // What a controller does with a change: hand it to CloudHub for the node.
    cloud.cloudHub.deliver(
      NODE,
      newMessage({ source: 'bench', group: 'resource', operation: Operation.update, resource: key, resourceVersion: String(rv), content: object(key, rv) }),
    );
    return Promise.resolve();
  };
  const deliveredChange = (): Promise<void> => new Promise((r) => (onDelivered = r));
  note(`encoded message size ${JSON.stringify(object('default/configmap/k1', 1)).length} bytes of JSON content`);

  // Throughput: keep a window of messages in flight (smaller than the key space, so nothing coalesces).
  const WINDOW = 4_000;
  let injected = 0;
  const runFor = async (ms: number): Promise<number> => {
    const startDelivered = delivered;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      const sends: Array<Promise<void>> = [];
      while (injected - delivered < WINDOW) sends.push(inject(injected++));
      await Promise.all(sends);
      await deliveredChange();
    }
    return ((delivered - startDelivered) / (performance.now() - t0)) * 1000;
  };
  await runFor(2_000); // warm-up: JIT, SQLite page cache
  const throughput = await runFor(10_000);
  while (delivered < injected) await deliveredChange();
  if (want('throughput')) report('throughput_msgs_per_s', throughput, 'msgs/s', { messageBytes: 1024, window: WINDOW });

  if (want('latency')) {
    // Latency at half the measured rate, paced in 5 ms ticks.
    const rate = throughput / 2;
    latencies = new Float64Array(Math.ceil(rate * 12));
    const t0 = performance.now();
    let sent = 0;
    while (performance.now() - t0 < 10_000) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate);
      const sends: Array<Promise<void>> = [];
      for (; sent < due; sent++) sends.push(inject(injected++));
      await Promise.all(sends);
      await sleep(5);
    }
    while (delivered < injected) await deliveredChange();
    // The first second is warm-up at the new rate.
    const sorted = [...latencies.subarray(Math.floor(latencyCount / 10), latencyCount)].sort((a, b) => a - b);
    note(`latency histogram (samples above n ms): ${JSON.stringify([1, 2, 5, 10, 20, 50].map((b) => [b, sorted.filter((l) => l > b).length]))}`);
    report('latency_p50_ms', percentile(sorted, 50), 'ms', { rateMsgsPerS: Math.round(rate), samples: sorted.length });
    report('latency_p99_ms', percentile(sorted, 99), 'ms', { rateMsgsPerS: Math.round(rate), samples: sorted.length });

    // A keepalive must not wait behind a 10 MiB object: ping every 5 ms until the object is committed.
    const session = cloud.cloudHub.session(NODE)!;
    const idleRtt = await session.channel.ping();
    const big = {
      metadata: { name: 'big', namespace: 'default', uid: 'uid-big', resourceVersion: String(++rv) },
      data: { blob: 'y'.repeat(10 * 1024 * 1024) },
    };
    cloud.cloudHub.deliver(
      NODE,
      newMessage({
        source: 'bench',
        group: 'resource',
        operation: Operation.update,
        resource: 'default/configmap/big',
        resourceVersion: String(rv),
        content: big,
      }),
    );
    const rtts: number[] = [];
    const sentAt = performance.now();
    while (!bigDelivered) {
      rtts.push(await session.channel.ping());
      await sleep(5);
    }
    rtts.sort((a, b) => a - b);
    report('keepalive_rtt_10mib_ms', rtts[rtts.length - 1]!, 'ms', {
      idleRttMs: Math.round(idleRtt * 100) / 100,
      medianMs: Math.round(percentile(rtts, 50) * 100) / 100,
      pings: rtts.length,
      transferMs: Math.round(performance.now() - sentAt),
    });
  }
  edge.child.kill('SIGTERM');
  await edge.exited;
  await cloud.stop();
}

const caFromFiles = (files: { caCertFile: string; caKeyFile: string }): Promise<CertificateAuthority> =>
  CertificateAuthority.fromPem(readFileSync(files.caCertFile, 'utf8'), readFileSync(files.caKeyFile, 'utf8'));

function threadCpu(pid: number): string {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const name = /\((.*)\)/.exec(stat)![1]!;
    const fields = stat.split(') ')[1]!.split(' ');
    byName.set(name, (byName.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100);
  }
  return [...byName].map(([n, s]) => `${n}: ${s.toFixed(1)}`).join(', ');
}

async function startCloudProcess(configPath: string, wrapper?: string[]): Promise<Proc> {
  const extra = process.env.KE_BENCH_CLOUD_NODE_ARGS?.split(' ') ?? [];
  const proc = start(CLOUDCORE_BIN, ['--config', configPath, '--log-level', 'info'], { wrapper, nodeArgs: ['--max-old-space-size=4096', ...extra] });
  await proc.waitForLog((l) => l.msg === 'cloudcore ready');
  return proc;
}

async function connectionsAndStorm(): Promise<void> {
  const dir = benchDir();
  const files = await writeCloudConfig(dir, { cloudHub: { nodeLimit: 20_000 } });
  let cloud = await startCloudProcess(files.configPath);
  const names = Array.from({ length: STORM_EDGES }, (_, i) => `sim-${i}`);
  const store = new LocalObjectStore(files.storePath);
  for (const name of names) for (let k = 0; k < 2; k++) store.put(name, `default/configmap/c${k}`, { data: { k: String(k) } });
  store.close();
  const t0 = performance.now();
  const certs = await issueCerts(await caFromFiles(files), names);
  note(`issued ${names.length} node certificates in ${Math.round(performance.now() - t0)} ms`);
  await sleep(2_000);
  const baseline = rssKiB(cloud.child.pid!);
  const sim = startFleet(SIMS);
  const url = `wss://127.0.0.1:${files.hubPort}`;

  const first = Math.min(1_000, STORM_EDGES);
  sim.send(simStart(url, certs, certs.nodes.slice(0, first)));
  await waitSynced(sim, first, 120_000);
  await sleep(3_000);
  const rss1000 = rssKiB(cloud.child.pid!);
  if (want('connections')) report('rss_per_conn_kib_1000', (rss1000 - baseline) / first, 'KiB', { baselineKiB: baseline, rssKiB: rss1000 });

  if (STORM_EDGES > first) {
    const t1 = performance.now();
    sim.send(simStart(url, certs, certs.nodes.slice(first)));
    await waitSynced(sim, STORM_EDGES, 600_000);
    note(`${STORM_EDGES} edges connected and synced from cold in ${Math.round((performance.now() - t1) / 100) / 10} s`);
    await sleep(5_000);
    const rssAll = rssKiB(cloud.child.pid!);
    if (want('connections'))
      report(`rss_per_conn_kib_${STORM_EDGES}`, (rssAll - baseline) / STORM_EDGES, 'KiB', {
        baselineKiB: baseline,
        rssKiB: rssAll,
        simRssKiB: (await sim.status()).rssKiB,
      });
  }

  if (want('storm')) {
    const before = await sim.status();
    const simCpuBefore = sim.cpuSeconds();
    const killedAt = Date.now();
    cloud.child.kill('SIGKILL');
    await cloud.exited;
    cloud = await startCloudProcess(files.configPath);
    const readyAt = Date.now();
    // Wait until every edge noticed the loss, reconnected and finished a resync after the restart.
    const deadline = Date.now() + 600_000;
    let status = await sim.status();
    let lastNote = 0;
    while (!(status.synced === STORM_EDGES && status.lastSyncedAtMs > readyAt && status.reconnects >= before.reconnects + STORM_EDGES)) {
      if (Date.now() > deadline) throw new Error(`storm did not converge: ${JSON.stringify(status)}`);
      if (Date.now() - lastNote > 2_000) {
        note(
          `storm +${((Date.now() - killedAt) / 1000).toFixed(1)} s: synced ${status.synced}, connected ` +
            `${status.connected}, failed connects ${status.failedConnects - before.failedConnects}`,
        );
        lastNote = Date.now();
      }
      await sleep(200);
      status = await sim.status();
    }
    // Where the time went: a storm on 2 cores is bound by TLS handshakes on both ends.
    const cloudCpuS = cpuSeconds(cloud.child.pid!);
    if (process.env.KE_BENCH_DEBUG) note(`cloudcore threads (name: cpu s): ${threadCpu(cloud.child.pid!)}`);
    const simCpuS = sim.cpuSeconds() - simCpuBefore;
    report(`storm_${STORM_EDGES}_s`, (status.lastSyncedAtMs - killedAt) / 1000, 's', {
      simulators: SIMS,
      cloudcoreStartS: (readyAt - killedAt) / 1000,
      failedConnects: status.failedConnects - before.failedConnects,
      cloudcoreCpuS: cloudCpuS,
      simulatorCpuS: Math.round(simCpuS * 10) / 10,
    });
  }
  sim.kill();
  // SIGTERM: a graceful stop lets a profiled cloudcore (KE_BENCH_CLOUD_NODE_ARGS=--cpu-prof) write its profile.
  cloud.child.kill('SIGTERM');
  await Promise.race([cloud.exited, sleep(10_000)]);
}

/**
 * Counts IP bytes between cloudcore and 500 idle edges, each side in its own network namespace, joined by a
 * veth pair: a real link, where loopback's shortcuts (no link header, ACK timing of a zero-delay path) do not
 * apply. The figure is every IP packet on the cloud's end (headers, TLS, WebSocket, pure TCP ACKs), without
 * the 14-byte Ethernet header the veth counters include.
 */
async function idleBytes(): Promise<void> {
  const [cloudNs, edgeNs] = [`kebenchc${process.pid}`, `kebenche${process.pid}`];
  const [cloudIf, edgeIf] = [`kebc${process.pid % 100_000}`, `kebe${process.pid % 100_000}`];
  const ip = (...args: string[]): void => void execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    for (const ns of [cloudNs, edgeNs]) (ip('netns', 'add', ns), ip('-n', ns, 'link', 'set', 'lo', 'up'));
    ip('link', 'add', cloudIf, 'netns', cloudNs, 'type', 'veth', 'peer', 'name', edgeIf, 'netns', edgeNs);
    ip('-n', cloudNs, 'addr', 'add', '10.254.0.1/30', 'dev', cloudIf);
    ip('-n', edgeNs, 'addr', 'add', '10.254.0.2/30', 'dev', edgeIf);
    for (const [ns, dev] of [
      [cloudNs, cloudIf],
      [edgeNs, edgeIf],
    ] as const)
      ip('-n', ns, 'link', 'set', dev, 'up');
  } catch (err) {
    note(`idle: cannot create network namespaces and a veth pair (needs root and iproute2): ${(err as Error).message}`);
    return;
  }
  process.on('exit', () => {
    for (const ns of [cloudNs, edgeNs]) execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  });
  /** IP bytes and packets through the cloud's veth end, both directions. */
  const counters = (): { bytes: number; packets: number } => {
    const dev = execFileSync('ip', ['netns', 'exec', cloudNs, 'cat', '/proc/net/dev'], { encoding: 'utf8' });
    const f = dev
      .split('\n')
      .find((l) => l.trim().startsWith(`${cloudIf}:`))!
      .split(':')[1]!
      .trim()
      .split(/\s+/)
      .map(Number);
    const packets = f[1]! + f[9]!;
    return { bytes: f[0]! + f[8]! - 14 * packets, packets };
  };
  const dir = benchDir();
  const files = await writeCloudConfig(dir, {}, '10.254.0.1');
  const cloud = await startCloudProcess(files.configPath, ['ip', 'netns', 'exec', cloudNs]);
  const EDGES = 500;
  const names = Array.from({ length: EDGES }, (_, i) => `idle-${i}`);
  const certs = await issueCerts(await caFromFiles(files), names);
  const bin = join(ROOT, 'dist/test/bench/edge-simulator.js');
  const proc = start(bin, [], { wrapper: ['ip', 'netns', 'exec', edgeNs], ipc: true, nodeArgs: [] });
  const sim = simOver(proc.child as ReturnType<typeof fork>);
  sim.proc.send(simStart(`wss://10.254.0.1:${files.hubPort}`, certs, certs.nodes));
  await waitSynced(sim, EDGES, 120_000);
  await sleep(5_000);
  const WINDOW_MS = 120_000;
  const before = counters();
  await sleep(WINDOW_MS);
  const after = counters();
  const perEdgeMin = (n: number): number => n / EDGES / (WINDOW_MS / 60_000);
  report('idle_bytes_per_edge_per_min', perEdgeMin(after.bytes - before.bytes), 'bytes', {
    edges: EDGES,
    windowS: WINDOW_MS / 1000,
    heartbeatS: 30,
    packetsPerEdgePerMin: perEdgeMin(after.packets - before.packets),
    link: 'veth',
  });
  sim.proc.kill('SIGKILL');
  cloud.child.kill('SIGKILL');
}

runBench(main);
