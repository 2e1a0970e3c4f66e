import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd } from '../support/containerd.js';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { cloudSetup, edgeSetup, startCloud, startEdge, type Cloud, type Daemon } from '../support/daemons.js';
import { expectLogsNamingOfflineNode, kubectlEventually } from '../support/edge-kubectl.js';
import { busyboxPod, kubeletApiserverFlags, writeHubCa } from '../support/kubelet-setup.js';
import { eventually, freePort } from '../support/harness.js';
import { startMetricsServer } from '../support/metrics-server.js';
import { startNetns } from '../support/netns.js';

// Issue 13: kubectl against edge pods through the edge's own channel. The real kube-apiserver sends every kubelet
// call through its egress selector to cloudcore's CONNECT listener (mutual TLS), cloudcore ends the kubelet TLS
// with a certificate the apiserver checks against the hub CA, and relays the connection as one dynamic stream on
// the node's channel; edged serves it from containerd. The edge runs in its own network namespace (its Node address
// on 203.0.113.0/24, inbound connections dropped) and nothing on it listens: the only way in is the channel.

const NODE = 'kubectl-edge';
/** test/support/session-ping-probe.ts as built, preloaded into edgecore. */
const PING_PROBE = join(fileURLToPath(new URL('../..', import.meta.url)), 'dist', 'test', 'support', 'session-ping-probe.js');

describe('kubectl logs and node stats of an edge pod, through the channel', () => {
  let dir: string;
  let cp: ControlPlane;
  let cloud: Cloud;
  let edge: Daemon;
  let streamsPort: number;
  let kubeletClient: { ca: string; cert: string; key: string };
  let cloudMonitorPort: number;
  const pingFile = (): string => join(dir, 'pings.jsonl');
  /** The cached kubectl (ControlPlane.kubectl): {code, stdout, stderr}, given up after 60 s. */
  const kubectl = (args: string[]): ReturnType<ControlPlane['kubectl']> => cp.kubectl(args);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-kubectl-edge-'));
    // The hub CA exists before the apiserver starts: it is the apiserver's --kubelet-certificate-authority and the
    // egress proxy's CA. cloudcore finds it in its CA files and stores it in Secret kubeedge/casecret.
    streamsPort = await freePort();
    const flags = kubeletApiserverFlags(dir, await writeHubCa(dir), streamsPort);
    kubeletClient = flags.kubeletClient;
    cp = startControlPlane({ apiserverArgs: flags.apiserverArgs });
  }, 300_000);

  /**
   * The edge in its own network namespace, as behind a NAT: edgecore and its containerd run there, its Node address
   * is the namespace's 203.0.113.x, and the namespace drops every connection from outside. The edge dials cloudcore's
   * hub on the host side of the veth; the apiserver reaches the edge only through cloudcore.
   */
  async function startDaemons(): Promise<void> {
    const ns = await startNetns();
    cloudMonitorPort = await freePort();
    const setup = await cloudSetup(dir, {
      kubeconfig: await cp.cloudcoreKubeconfig(),
      monitorServer: { port: cloudMonitorPort },
      cloudHub: { address: ns.hostAddress, certServerAddress: ns.hostAddress, advertiseAddresses: [ns.hostAddress, '127.0.0.1'] },
      streams: { enable: true, connect: { address: '127.0.0.1', port: streamsPort }, clientCAFile: kubeletClient.ca },
    });
    cloud = await startCloud(setup);
    const c = await startContainerd({ command: ns.command });
    edge = startEdge(
      edgeSetup(dir, NODE, setup, {
        edgeHub: { server: `${ns.hostAddress}:${setup.hubPort}`, certServer: `https://${ns.hostAddress}:${setup.certPort}` },
        edged: {
          enable: true,
          nodeIP: ns.edgeAddress,
          runtimeEndpoint: c.endpoint,
          rootDirectory: join(dir, 'pods'),
          podLogsDirectory: join(dir, 'logs'),
          cgroupParent: c.cgroupParent,
          relistIntervalMs: 300,
          crashLoopBackOffMs: 500,
          crashLoopBackOffMaxMs: 2_000,
        },
      }),
      await cloud.token(),
      // A probe sends a channel PING every 20 ms and records each round trip (bigLog reads them).
      { command: ns.command, nodeArgs: ['--import', PING_PROBE], env: { KE_PING_PROBE_FILE: pingFile() } },
    );
    await eventually(async () => expect(await cp.kubectlOk(['get', 'node', NODE, '--no-headers'])).toMatch(/\sReady\s/), 60_000, 250);
    const addresses = JSON.parse(await cp.kubectlOk(['get', 'node', NODE, '-o', 'json'])).status.addresses;
    expect(addresses).toContainEqual({ type: 'InternalIP', address: ns.edgeAddress });
  }

  afterAll(async () => {
    cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const pod = (name: string, command: string) => cp.kubectlOk(['apply', '-f', '-'], busyboxPod(name, NODE, command));

  // One test: the daemons are the test's (stopped when it ends), and each step builds on the last.
  it('serves kubectl logs (every option), exec, attach, port-forward, node stats and kubectl top, and fails at once naming an offline node', async () => {
    await startDaemons();
    await logs();
    await previous();
    await exec();
    await attach();
    await portForward();
    await stats();
    await top();
    await bigLog();
    // The edge offline: kubectl logs fails at once, naming the node.
    await crashMidStream();
    await expectLogsNamingOfflineNode(cp, edge, 'talker', NODE);
  });

  /**
   * edgecore dies (SIGKILL: its sockets close at once, as in a crash) while `kubectl logs -f` and `kubectl exec -i`
   * are streaming: both kubectl processes end instead of hanging. (A link cut without a FIN is noticed at the
   * session timeout, modules.cloudHub.sessionTimeoutMs.)
   */
  async function crashMidStream(): Promise<void> {
    const run = (args: string[]) => {
      const child = spawn(join(cp.binDir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, ...args]);
      const out = { stdout: '', stderr: '' };
      child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      return { child, out, exited };
    };
    const follow = run(['logs', '-f', 'talker', '--tail=1']);
    const cat = run(['exec', '-i', 'talker', '--', 'cat']);
    try {
      await eventually(() => expect(follow.out.stdout).toMatch(/tick-\d+\n/), 60_000);
      cat.child.stdin.write('before the crash\n');
      await eventually(() => expect(cat.out.stdout).toBe('before the crash\n'), 60_000);
      edge.child.kill('SIGKILL');
      const [followCode, catCode] = await Promise.all([
        Promise.race([follow.exited, new Promise((r) => setTimeout(r, 60_000, 'still running'))]),
        Promise.race([cat.exited, new Promise((r) => setTimeout(r, 60_000, 'still running'))]),
      ]);
      console.log(`after the crash: kubectl logs -f exited ${followCode} (${follow.out.stderr.trim()}), exec exited ${catCode} (${cat.out.stderr.trim()})`);
      expect(followCode).not.toBe('still running');
      expect(catCode).not.toBe('still running');
    } finally {
      follow.child.kill();
      cat.child.kill();
    }
  }

  async function logs(): Promise<void> {
    await pod('talker', 'for i in 1 2 3 4 5; do echo line-$i; done; i=0; while true; do i=$((i+1)); echo tick-$i; sleep 1; done');
    const all = await eventually(
      async () => {
        const r = await kubectl(['logs', 'talker']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/^line-1\nline-2\nline-3\nline-4\nline-5\ntick-1\ntick-2\n/);
        return r.stdout;
      },
      90_000,
      500,
    );
    expect(all).toContain('line-5');

    const tail = await kubectl(['logs', 'talker', '--tail=2']);
    expect(tail.stdout.split('\n').filter(Boolean)).toHaveLength(2);
    expect(tail.stdout).toMatch(/^tick-\d+\ntick-\d+\n$/);
    expect((await kubectl(['logs', 'talker', '--limit-bytes=7'])).stdout).toBe('line-1\n');
    expect((await kubectl(['logs', 'talker', '--timestamps', '--tail=1'])).stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z tick-\d+\n$/);
    expect((await kubectl(['logs', 'talker', '--since=1h'])).stdout).toMatch(/^line-1\n/);

    // -f: a tick printed after the request reaches kubectl while it follows.
    const follow = spawn(join(cp.binDir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, 'logs', '-f', 'talker', '--tail=1']);
    let followed = '';
    follow.stdout.on('data', (d: Buffer) => (followed += d.toString()));
    try {
      const first = await eventually(() => {
        const n = /tick-(\d+)/.exec(followed)?.[1];
        expect(n).toBeDefined();
        return Number(n);
      }, 60_000);
      await eventually(() => expect(followed).toContain(`tick-${first + 2}\n`), 60_000);
    } finally {
      follow.kill();
    }
  }

  /** kubectl logs --previous after a crash. */
  async function previous(): Promise<void> {
    await pod('crasher', 'echo "run at $(date +%s)"; sleep 1; exit 3');
    await eventually(
      async () => {
        const p = JSON.parse(await cp.kubectlOk(['get', 'pod', 'crasher', '-o', 'json']));
        expect(p.status.containerStatuses?.[0]?.restartCount).toBeGreaterThanOrEqual(1);
      },
      90_000,
      500,
    );
    const previous = await eventually(
      async () => {
        const r = await kubectl(['logs', 'crasher', '--previous']);
        expect(r.code, r.stderr).toBe(0);
        return r.stdout;
      },
      30_000,
      500,
    );
    expect(previous).toMatch(/^run at \d+\n$/);
  }

  /** kubectl exec: the command's exit code, stdin with -i, and a terminal with -t (driven through a pty by script(1)). */
  async function exec(): Promise<void> {
    const failed = await kubectl(['exec', 'talker', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(failed).toMatchObject({ code: 7, stdout: 'out\n' });
    expect(failed.stderr).toContain('err\n');
    const echoed = await new Promise<string>((resolve) => {
      const child = spawn(join(cp.binDir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, 'exec', '-i', 'talker', '--', 'sh', '-c', 'cat; echo end']);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', () => resolve(out));
      child.stdin.end('from stdin\n');
    });
    expect(echoed).toBe('from stdin\nend\n');
    const inPod = `sh -c '[ -t 0 ] && [ -t 1 ] && echo terminal: $(tty)'`;
    const kubectlCommand = `${join(cp.binDir, 'kubectl')} --kubeconfig ${cp.kubeconfig} exec -it talker -- ${inPod}`;
    const tty = await new Promise<string>((resolve) => {
      const child = spawn('script', ['-qec', kubectlCommand, '/dev/null']);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('close', () => resolve(out));
      child.stdin.end();
    });
    expect(tty).toMatch(/terminal: \/dev\/pts\/\d+/);
  }

  /** kubectl attach: the running container's output as it prints it. */
  async function attach(): Promise<void> {
    const child = spawn(join(cp.binDir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, 'attach', 'talker']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await eventually(() => expect(out).toMatch(/tick-\d+\n.*tick-\d+\n/s), 60_000);
    } finally {
      child.kill();
    }
  }

  /** kubectl port-forward to busybox httpd in a pod on the pod network, and an HTTP request through it. */
  async function portForward(): Promise<void> {
    await pod('web', 'mkdir -p /www && echo "served in the pod" > /www/index.html && exec busybox httpd -f -p 8080 -h /www');
    await eventually(async () => expect(await cp.kubectlOk(['get', 'pod', 'web', '-o', 'jsonpath={.status.phase}'])).toBe('Running'), 60_000, 500);
    const child = spawn(join(cp.binDir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, 'port-forward', 'pod/web', ':8080']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const port = await eventually(() => {
        const m = /Forwarding from 127\.0\.0\.1:(\d+) -> 8080/.exec(out);
        expect(m).not.toBeNull();
        return Number(m![1]);
      }, 60_000);
      const body = await eventually(
        async () => {
          const r = await fetch(`http://127.0.0.1:${port}/`);
          expect(r.status).toBe(200);
          return r.text();
        },
        30_000,
        500,
      );
      expect(body).toBe('served in the pod\n');
    } finally {
      child.kill();
    }
  }

  /** The node stats and resource metrics, through the API server's node proxy. */
  async function stats(): Promise<void> {
    const summary = await eventually(
      async () => {
        const r = await kubectl(['get', '--raw', `/api/v1/nodes/${NODE}/proxy/stats/summary`]);
        expect(r.code, r.stderr).toBe(0);
        const s = JSON.parse(r.stdout);
        expect(s.pods.some((p: { podRef: { name: string } }) => p.podRef.name === 'talker')).toBe(true);
        return s;
      },
      60_000,
      1_000,
    );
    expect(summary.node.nodeName).toBe(NODE);
    expect(summary.node.memory.workingSetBytes).toBeGreaterThan(0);
    const metrics = await eventually(
      async () => {
        const r = await kubectl(['get', '--raw', `/api/v1/nodes/${NODE}/proxy/metrics/resource`]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/^container_memory_working_set_bytes\{container="main",namespace="default",pod="talker"\} \d+/m);
        return r.stdout;
      },
      60_000,
      1_000,
    );
    expect(metrics).toMatch(/^node_cpu_usage_seconds_total \d/m);
  }

  /**
   * kubectl top with metrics-server (built from its Go module, test/support/metrics-server.ts), which reaches the
   * edge's /metrics/resource through cloudcore's CONNECT listener (HTTPS_PROXY) as the apiserver does, with the
   * apiserver's kubelet client certificate, and checks the minted serving certificate against the hub CA.
   */
  async function top(): Promise<void> {
    const ms = await startMetricsServer(cp, {
      preferredAddressTypes: 'InternalIP',
      kubeletCAFile: join(dir, 'cloud', 'ca.crt'),
      kubeletClientCert: { certFile: kubeletClient.cert, keyFile: kubeletClient.key },
      httpsProxy: `https://127.0.0.1:${streamsPort}`,
    });
    try {
      await ms.register();
      const pods = await kubectlEventually(cp, ['top', 'pod', 'talker', '--no-headers'], 90_000, 2_000);
      expect(pods).toMatch(/^talker\s+\d+m\s+\d+Mi\s*$/);
      const node = await kubectlEventually(cp, ['top', 'node', NODE, '--no-headers'], 60_000, 2_000);
      expect(node).toMatch(new RegExp(`^${NODE}\\s+\\d+m\\s+`));
    } finally {
      await ms.stop();
    }
  }

  /**
   * A 100 MiB log through kubectl, whole, while the channel's PINGs keep being answered: the probe in edgecore pings
   * every 20 ms, and some round trip must complete while the log is crossing the same channel (none waits behind
   * it; the bench measures how long they take). The stream metrics count it on both sides.
   */
  async function bigLog(): Promise<void> {
    const bytes = 100 * 1024 * 1024;
    const done = 'big-log-done\n';
    await pod('big', `yes ${'0123456789abcdef'.repeat(8).slice(0, 127)} | head -c ${bytes}; printf '${done.trim()}\\n'; exec sleep 100000`);
    await eventually(async () => expect((await kubectl(['logs', 'big', '--tail=1'])).stdout).toBe(done), 180_000, 1_000);
    const from = Date.now();
    const counted = await new Promise<string>((resolve, reject) => {
      const child = spawn('sh', ['-c', '"$0" --kubeconfig "$1" logs big | wc -c', join(cp.binDir, 'kubectl'), cp.kubeconfig]);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject);
      child.on('close', () => resolve(out.trim()));
    });
    const to = Date.now();
    expect(Number(counted)).toBe(bytes + done.length);
    // The probe writes its lines every 250 ms.
    await new Promise((r) => setTimeout(r, 500));
    const pings = readFileSync(pingFile(), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { at: number; rttMs: number });
    const during = pings.filter((p) => p.at >= from && p.at + p.rttMs <= to).map((p) => p.rttMs);
    console.log(`100 MiB log in ${to - from} ms; ${during.length} PING round trips during it, the slowest ${Math.max(...during).toFixed(1)} ms`);
    expect(during.length).toBeGreaterThan(0);
    const metrics = await (await fetch(`http://127.0.0.1:${cloudMonitorPort}/metrics`)).text();
    const fromEdge = Number(/^cloudcore_kubelet_stream_bytes_total\{direction="from_edge"\} (\S+)$/m.exec(metrics)?.[1]);
    expect(fromEdge).toBeGreaterThan(bytes);
    expect(Number(/^cloudcore_kubelet_streams_total\{result="opened"\} (\S+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(metrics).toMatch(/^cloudcore_kubelet_streams_open \d+$/m);
    await slowReader(bytes);
  }

  /**
   * A kubectl that reads nothing: the log stops flowing instead of piling up in cloudcore or edgecore. What leaves the
   * edge (cloudcore's from_edge byte counter) levels off at the windows and socket buffers on the way, far below the
   * 100 MiB log, and stays there while kubectl is stalled.
   */
  async function slowReader(logBytes: number): Promise<void> {
    const fromEdge = async (): Promise<number> => {
      const text = await (await fetch(`http://127.0.0.1:${cloudMonitorPort}/metrics`)).text();
      return Number(/^cloudcore_kubelet_stream_bytes_total\{direction="from_edge"\} (\S+)$/m.exec(text)?.[1]);
    };
    const before = await fromEdge();
    // stdout is a pipe nobody reads: once its 64 KiB are full, kubectl blocks on its write.
    const stalled = spawn(join(cp.binDir, 'kubectl'), ['--kubeconfig', cp.kubeconfig, 'logs', 'big'], { stdio: ['ignore', 'pipe', 'ignore'] });
    stalled.stdout.pause();
    try {
      const levelled = await eventually(
        async () => {
          const a = (await fromEdge()) - before;
          await new Promise((r) => setTimeout(r, 2_000));
          const b = (await fromEdge()) - before;
          expect(a).toBeGreaterThan(0);
          expect(b).toBe(a);
          return b;
        },
        60_000,
        0,
      );
      console.log(`a stalled kubectl logs: ${(levelled / 1048576).toFixed(1)} MiB left the edge, then nothing`);
      expect(levelled).toBeLessThan(logBytes / 3);
    } finally {
      stalled.kill();
    }
  }
});
