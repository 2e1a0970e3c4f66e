// `npm run bench -- streams [--log-mib=100] [--rtt-samples=300] [--sessions=50] [--egress=tcp|uds]` (as root: a
// network namespace and a private containerd). `--egress=uds`: the API server reaches cloudcore's CONNECT listener on
// a unix socket instead of mutual TLS over TCP (an API server on cloudcore's host; docs/kubelet-front.md).
// Issue 13's figures on the setup of test/integration/kubectl-edge.test.ts: a real kube-apiserver whose egress
// selector sends kubelet calls to cloudcore's CONNECT listener, and the edge (edgecore and its containerd) in its own
// network namespace, reachable only through the channel. kubectl is the control plane's (`ControlPlane.binDir`).
//
// Figures (one JSON line each):
//   logs_mib_per_s                a busybox pod writes --log-mib MiB of 128-byte lines; once its log file holds
//                                 them all, `kubectl logs` of it, piped to wc -c (kubectl's start included)
//   heartbeat_delay_max_ms        the worst channel PING round trip seen by edgecore while that log streams
//                                 (test/support/session-ping-probe.ts pings every 20 ms from the edge)
//   exec_rtt_p50_ms / _p99_ms     one byte written to `kubectl exec -i pod -- cat` until it comes back
//   concurrent_exec_sessions_ok   --sessions parallel `kubectl exec pod -- sh -c 'echo <id>'`, each output checked
//   edgecore_rss_delta_mb         edgecore's VmRSS with --sessions idle `kubectl exec -i ... cat` open, minus before
//
// KE_BENCH_EDGE_NODE_ARGS / KE_BENCH_CLOUD_NODE_ARGS add node flags (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`;
// the daemons get SIGTERM at the end, so the profiles are written).
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { StreamsRig, type KubectlChild } from './streams-rig-support.js';
import { note, percentile, report, rssKiB, runBench, sleep } from './bench-support.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const LOG_MIB = Number(args.get('log-mib') ?? 100);
const RTT_SAMPLES = Number(args.get('rtt-samples') ?? 300);
const SESSIONS = Number(args.get('sessions') ?? 50);
const EGRESS = args.get('egress') ?? 'tcp';
if (EGRESS !== 'tcp' && EGRESS !== 'uds') throw new Error(`--egress: tcp or uds, not ${EGRESS}`);
const LOG_DONE = 'streams-bench-log-done\n';
// 127 characters and a newline: the log is a whole number of lines.
const LINE = `${'0123456789abcdef'.repeat(8).slice(0, 127)}`;

runBench(async () => {
  const rig = await StreamsRig.start(EGRESS);
  try {
    const logBytes = LOG_MIB * 1024 * 1024;
    await rig.pod('streams-log', `yes ${LINE} | head -c ${logBytes}; printf '${LOG_DONE.trim()}\\n'; exec sleep 100000`);
    await rig.pod('streams-shell', 'exec sleep 100000');
    await logsAndHeartbeat(rig, logBytes + LOG_DONE.length);
    await execRtt(rig);
    await concurrentExecs(rig);
    await execRss(rig);
  } finally {
    await rig.stop();
  }
});

/** The log through kubectl, with the edge's PING round trips during it (and for 3 s before, idle, to compare). */
async function logsAndHeartbeat(rig: StreamsRig, expectedBytes: number): Promise<void> {
  const file = await logFile(rig, 'streams-log');
  await rig.until(() => tail(file).endsWith(LOG_DONE), 300_000, 'the whole log in the log file');
  const small = await rig.kubectl(['logs', 'streams-log', '--limit-bytes=1']);
  const smallMs = small.ms;
  const idleFrom = Date.now();
  await sleep(3_000);
  const cpu0 = rig.cpuSeconds();
  const from = Date.now();
  const r = await rig.shell(`"$0" --kubeconfig "$1" logs streams-log | wc -c`, 300_000);
  const to = Date.now();
  const cpu1 = rig.cpuSeconds();
  const received = Number(r.stdout.trim());
  if (r.code !== 0 || received !== expectedBytes) throw new Error(`kubectl logs: ${received} of ${expectedBytes} bytes (exit ${r.code}): ${r.stderr}`);
  const pings = await rig.pings();
  const idle = pings.filter((p) => p.at >= idleFrom && p.at < from).map((p) => p.rttMs);
  const busy = pings.filter((p) => p.at >= from && p.at + p.rttMs <= to).map((p) => p.rttMs);
  idle.sort((a, b) => a - b);
  busy.sort((a, b) => a - b);
  report('logs_mib_per_s', expectedBytes / 1024 / 1024 / (r.ms / 1000), 'MiB/s', {
    egress: EGRESS,
    bytes: received,
    ms: Math.round(r.ms),
    logFileBytes: statSync(file).size,
    kubectlLimitBytes1Ms: Math.round(smallMs),
    cpuSeconds: {
      cloudcore: round(cpu1.cloud - cpu0.cloud),
      edgecore: round(cpu1.edge - cpu0.edge),
      kubeApiserver: round(cpu1.apiserver - cpu0.apiserver),
      wholeMachine: round(cpu1.machineBusy - cpu0.machineBusy),
      cores: availableParallelism(),
    },
  });
  if (busy.length === 0) throw new Error('no PING round trip completed while the log streamed');
  report('heartbeat_delay_max_ms', busy.at(-1)!, 'ms', {
    what: 'edge → cloud channel PING round trip during the log transfer',
    samples: busy.length,
    p50: round(percentile(busy, 50)),
    p99: round(percentile(busy, 99)),
    over50ms: busy.filter((r) => r > 50).length,
    idleMax: round(idle.at(-1) ?? Number.NaN),
    idleP50: round(percentile(idle, 50)),
    idleSamples: idle.length,
  });
}

/** One byte through `kubectl exec -i ... cat` and back, RTT_SAMPLES times, 10 ms apart. */
async function execRtt(rig: StreamsRig): Promise<void> {
  const cat = rig.spawnKubectl(['exec', '-i', 'streams-shell', '--', 'cat']);
  try {
    await cat.echo('w', 60_000); // the session is up
    const rtts: number[] = [];
    const deadline = Date.now() + 120_000;
    while (rtts.length < RTT_SAMPLES && Date.now() < deadline) {
      const t0 = performance.now();
      await cat.echo('x', 10_000);
      rtts.push(performance.now() - t0);
      await sleep(10);
    }
    rtts.sort((a, b) => a - b);
    const extra = {
      samples: rtts.length,
      p50: round(percentile(rtts, 50)),
      max: round(rtts.at(-1) ?? Number.NaN),
      over20ms: rtts.filter((r) => r > 20).length,
    };
    report('exec_rtt_p50_ms', percentile(rtts, 50), 'ms', extra);
    report('exec_rtt_p99_ms', percentile(rtts, 99), 'ms', extra);
  } finally {
    await cat.close();
  }
}

/** SESSIONS `kubectl exec` at once, each printing its own id. */
async function concurrentExecs(rig: StreamsRig): Promise<void> {
  const ids = Array.from({ length: SESSIONS }, (_, i) => `streams-${i}-${randomBytes(4).toString('hex')}`);
  const t0 = performance.now();
  const results = await Promise.all(ids.map((id) => rig.kubectl(['exec', 'streams-shell', '--', 'sh', '-c', `echo ${id}`], 120_000)));
  const ms = performance.now() - t0;
  const ok = results.filter((r, i) => r.code === 0 && r.stdout === `${ids[i]}\n`);
  const times = results.map((r) => r.ms).sort((a, b) => a - b);
  const failures = results.filter((r, i) => !(r.code === 0 && r.stdout === `${ids[i]}\n`)).slice(0, 3);
  report('concurrent_exec_sessions_ok', ok.length, 'sessions', {
    sessions: SESSIONS,
    allMs: Math.round(ms),
    eachP50Ms: Math.round(percentile(times, 50)),
    eachMaxMs: Math.round(times.at(-1) ?? 0),
    failures: failures.map((f) => ({ code: f.code, stdout: f.stdout.slice(0, 80), stderr: f.stderr.slice(0, 200) })),
  });
}

/** edgecore's RSS before and while SESSIONS `kubectl exec -i ... cat` sessions sit open and idle. */
async function execRss(rig: StreamsRig): Promise<void> {
  const pid = rig.edgePid();
  const before = await settledRssMiB(pid);
  const cats: KubectlChild[] = [];
  try {
    for (let i = 0; i < SESSIONS; i++) cats.push(rig.spawnKubectl(['exec', '-i', 'streams-shell', '--', 'cat']));
    // Each session proves it is open by echoing a byte.
    await Promise.all(cats.map((c) => c.echo('o', 120_000)));
    const open = await settledRssMiB(pid);
    report('edgecore_rss_delta_mb', open.median - before.median, 'MiB', {
      sessions: SESSIONS,
      beforeMiB: round(before.median),
      openMiB: round(open.median),
      openMaxMiB: round(open.max),
      how: 'median of 5 VmRSS samples, 1 s apart, after 5 s of quiet',
    });
  } finally {
    await Promise.all(cats.map((c) => c.close()));
  }
  note(`edgecore RSS after the sessions closed: ${round((await settledRssMiB(pid)).median)} MiB`);
}

async function settledRssMiB(pid: number): Promise<{ median: number; max: number }> {
  await sleep(5_000);
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssKiB(pid) / 1024);
    await sleep(1_000);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[2]!, max: samples[4]! };
}

/** The pod's container log file under edged's podLogsDirectory (`<ns>_<name>_<uid>/<container>/0.log`). */
async function logFile(rig: StreamsRig, pod: string): Promise<string> {
  const dir = await rig.until(() => readdirSync(rig.logsDir).find((d) => d.startsWith(`default_${pod}_`)), 60_000, `${pod}'s log directory`);
  return join(rig.logsDir, dir, 'main', '0.log');
}

/** The last bytes of a CRI log file, without the CRI prefix of the last line. */
function tail(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = statSync(file).size;
    const buf = Buffer.alloc(Math.min(size, 256));
    readSync(fd, buf, 0, buf.length, size - buf.length);
    const last = buf.toString('utf8').split('\n').at(-2) ?? '';
    // `<time> stdout F <content>`
    return `${last.split(' ').slice(3).join(' ')}\n`;
  } finally {
    closeSync(fd);
  }
}

const round = (n: number): number => Math.round(n * 100) / 100;
