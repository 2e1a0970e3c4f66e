// The system of test/integration/kubectl-edge.test.ts as a benchmark rig, without vitest hooks: a control plane
// whose apiserver reaches kubelets through cloudcore's CONNECT listener, cloudcore, and edgecore with its
// containerd in a network namespace. Everything started is stopped by `stop()`, and by the exit hooks of
// bench-support if the process is interrupted first.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { launchContainerd, type Containerd } from '../support/containerd.js';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { createNetns, type EdgeNetns } from '../support/netns.js';
import { busyboxPod, kubeletApiserverFlags, writeHubCa } from '../support/kubelet-setup.js';
import {
  CLOUDCORE_BIN,
  CLOUDCORE_V8_FLAGS,
  nodeArgsFrom,
  EDGECORE_BIN,
  ROOT,
  benchDir,
  cpuSeconds,
  freePort,
  note,
  onExit,
  sleep,
  start,
  type Proc,
} from './bench-support.js';

const NODE = 'streams-edge';
const PROBE = join(ROOT, 'dist', 'test', 'support', 'session-ping-probe.js');

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A long-running kubectl (exec -i … cat) driven byte by byte. */
export interface KubectlChild {
  /** Writes `byte` and resolves when it comes back on stdout. */
  echo(byte: string, timeoutMs: number): Promise<void>;
  /** Ends stdin and waits (at most 30 s, then SIGKILL) for kubectl to exit. */
  close(): Promise<void>;
}

type Step = { what: string; run: () => Promise<unknown> | unknown };

export class StreamsRig {
  private readonly steps: Step[] = [];
  private readonly children = new Set<ChildProcess>();
  private cp!: ControlPlane;
  private cloud!: Proc;
  private edge!: Proc;
  readonly dir = benchDir();
  readonly logsDir = join(this.dir, 'logs');
  private readonly probeFile = join(this.dir, 'pings.jsonl');
  /** The unix socket the API server's egress uses (`uds`), else undefined (mutual TLS on streamsPort). */
  private egressSocket: string | undefined;

  private constructor() {
    onExit(() => this.children.forEach((c) => c.kill('SIGKILL')));
  }

  /**
   * `egress`: how the API server reaches cloudcore's CONNECT listener: `tcp` (mutual TLS, the default and what a
   * separate control plane host needs) or `uds` (a unix socket, for an API server on cloudcore's host).
   */
  static async start(egress: 'tcp' | 'uds' = 'tcp'): Promise<StreamsRig> {
    if (process.getuid?.() !== 0) throw new Error('the streams benchmark runs containerd in a network namespace: run it as root');
    const rig = new StreamsRig();
    try {
      await rig.startAll(egress);
    } catch (err) {
      await rig.stop();
      throw err;
    }
    return rig;
  }

  private async startAll(egress: 'tcp' | 'uds'): Promise<void> {
    const streamsPort = await freePort();
    const socketPath = (this.egressSocket = egress === 'uds' ? join(this.dir, 'konnectivity.sock') : undefined);
    const { kubeletClient, apiserverArgs } = kubeletApiserverFlags(this.dir, await writeHubCa(this.dir), socketPath ? { socketPath } : streamsPort);
    note('starting the control plane');
    this.cp = startControlPlane({ apiserverArgs });
    this.defer(
      'control plane',
      () => this.cp.stop(),
      () => this.cp.stop(),
    );
    const ns = await createNetns();
    this.defer(
      'network namespace',
      () => ns.remove(),
      () => removeNetnsSync(ns),
    );
    const containerd = await launchContainerd({ command: ns.command });
    this.defer(
      'containerd',
      () => containerd.stop(),
      () => stopContainerdSync(containerd, ns),
    );
    await this.startDaemons(ns, containerd, streamsPort, kubeletClient.ca);
  }

  private async startDaemons(ns: EdgeNetns, containerd: Containerd, streamsPort: number, kubeletClientCA: string): Promise<void> {
    const [hubPort, certPort] = [await freePort(), await freePort()];
    const cloudConfig = join(this.dir, 'cloudcore.yaml');
    writeFileSync(
      cloudConfig,
      stringify(
        cloudConfigFor(this.dir, await this.cp.cloudcoreKubeconfig(), ns, { hubPort, certPort, streamsPort, kubeletClientCA, socketPath: this.egressSocket }),
      ),
    );
    this.cloud = start(CLOUDCORE_BIN, ['--config', cloudConfig], { nodeArgs: nodeArgsFrom('KE_BENCH_CLOUD_NODE_ARGS', CLOUDCORE_V8_FLAGS) });
    this.defer('cloudcore', () => terminate(this.cloud));
    await this.cloud.waitForLog((l) => l.msg === 'cloudcore ready', 60_000);
    const token = execFileSync(process.execPath, [CLOUDCORE_BIN, '--config', cloudConfig, 'token', 'create'], { encoding: 'utf8' }).trim();
    const edgeConfig = join(this.dir, 'edgecore.yaml');
    writeFileSync(edgeConfig, stringify(edgeConfigFor(this.dir, ns, containerd, { hubPort, certPort })));
    // The probe reads its file from the environment the edge inherits.
    process.env.KE_PING_PROBE_FILE = this.probeFile;
    // The V8 flag build/install.sh gives edgecore, unless KE_BENCH_EDGE_NODE_ARGS says otherwise.
    const edgeArgs = ['--import', PROBE, ...nodeArgsFrom('KE_BENCH_EDGE_NODE_ARGS', '--max-semi-space-size=1')];
    this.edge = start(EDGECORE_BIN, ['--config', edgeConfig, '--token', token], { wrapper: ns.command([]), nodeArgs: edgeArgs });
    delete process.env.KE_PING_PROBE_FILE;
    this.defer('edgecore', () => terminate(this.edge));
    await this.until(
      async () => / Ready /.test((await this.kubectl(['get', 'node', NODE, '--no-headers'])).stdout.replace(/\s+/g, ' ')),
      120_000,
      'the edge node Ready',
    );
    note(`edge ${NODE} Ready at ${ns.edgeAddress}, edgecore pid ${this.edge.child.pid}`);
  }

  /** Registers a teardown step; `sync` is the fallback the exit hooks run if the process ends before `stop()`. */
  private defer(what: string, run: Step['run'], sync?: () => void): void {
    const step: Step = { what, run };
    this.steps.push(step);
    if (sync)
      onExit(() => {
        if (this.steps.includes(step)) sync();
      });
  }

  /** Stops everything in reverse order; each step is bounded to 2 minutes and a failure does not stop the rest. */
  async stop(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      const s = step;
      await Promise.race([Promise.resolve().then(s.run), sleep(120_000).then(() => Promise.reject(new Error('timed out')))]).catch((err: unknown) =>
        note(`stopping ${s.what} failed: ${String(err)}`),
      );
    }
  }

  edgePid(): number {
    return this.edge.child.pid!;
  }

  /** CPU seconds used so far by cloudcore, edgecore and kube-apiserver; `machineBusy` sums every core (/proc/stat). */
  cpuSeconds(): { cloud: number; edge: number; apiserver: number; machineBusy: number } {
    const apiserver = Number(/^kube-apiserver (\d+)$/m.exec(readFileSync(join(this.cp.dir, 'pids'), 'utf8'))?.[1]);
    const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
    return {
      cloud: cpuSeconds(this.cloud.child.pid!),
      edge: cpuSeconds(this.edge.child.pid!),
      apiserver: Number.isNaN(apiserver) ? Number.NaN : cpuSeconds(apiserver),
      machineBusy: (user! + nice! + system! + irq! + softirq! + steal!) / 100,
    };
  }

  /** The edge's PING round trips so far (written by the probe every 250 ms). */
  async pings(): Promise<Array<{ at: number; rttMs: number }>> {
    await sleep(600);
    return readFileSync(this.probeFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { at: number; rttMs: number });
  }

  async pod(name: string, command: string): Promise<void> {
    const pod = busyboxPod(name, NODE, command, { spec: { automountServiceAccountToken: false } });
    const r = await this.kubectl(['apply', '-f', '-'], 60_000, pod);
    if (r.code !== 0) throw new Error(`kubectl apply ${name}: ${r.stderr}`);
    await this.until(async () => (await this.kubectl(['get', 'pod', name, '-o', 'jsonpath={.status.phase}'])).stdout === 'Running', 120_000, `${name} Running`);
  }

  kubectl(args: string[], timeoutMs = 60_000, input = ''): Promise<KubectlResult> {
    return this.run(join(this.cp.binDir, 'kubectl'), ['--kubeconfig', this.cp.kubeconfig, ...args], timeoutMs, input);
  }

  /** `script` run by sh with $0 = kubectl and $1 = the kubeconfig. */
  shell(script: string, timeoutMs: number): Promise<KubectlResult> {
    return this.run('/bin/sh', ['-c', script, join(this.cp.binDir, 'kubectl'), this.cp.kubeconfig], timeoutMs, '');
  }

  private run(program: string, args: string[], timeoutMs: number, input: string): Promise<KubectlResult> {
    return new Promise((resolve) => {
      const t0 = performance.now();
      const child = this.track(spawn(program, args));
      let [stdout, stderr] = ['', ''];
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr, ms: performance.now() - t0 });
      });
      child.stdin!.end(input);
    });
  }

  spawnKubectl(args: string[]): KubectlChild {
    const child = this.track(spawn(join(this.cp.binDir, 'kubectl'), ['--kubeconfig', this.cp.kubeconfig, ...args]));
    let received = '';
    let stderr = '';
    let waiter: (() => void) | undefined;
    child.stdout!.on('data', (d: Buffer) => {
      received += d.toString();
      waiter?.();
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    return {
      echo: async (byte, timeoutMs) => {
        const want = received.length + 1;
        const arrived = new Promise<void>((resolve) => (waiter = () => received.length >= want && resolve()));
        child.stdin!.write(byte);
        const ok = await Promise.race([arrived.then(() => true), closed.then(() => false), sleep(timeoutMs).then(() => false)]);
        waiter = undefined;
        if (!ok) throw new Error(`kubectl ${args.join(' ')}: no echo within ${timeoutMs} ms (${stderr.trim()})`);
      },
      close: async () => {
        child.stdin!.end();
        if (!(await Promise.race([closed.then(() => true), sleep(30_000).then(() => false)]))) child.kill('SIGKILL');
        await closed;
      },
    };
  }

  private track(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.once('close', () => this.children.delete(child));
    return child;
  }

  async until<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await Promise.resolve()
        .then(check)
        .catch(() => undefined);
      if (value !== undefined && value !== false) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(250);
    }
  }
}

/** SIGTERM (so --cpu-prof writes its profile), SIGKILL after 15 s. */
async function terminate(proc: Proc): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  if (!(await Promise.race([proc.exited.then(() => true), sleep(15_000).then(() => false)]))) proc.child.kill('SIGKILL');
  await proc.exited;
}

function cloudConfigFor(
  dir: string,
  kubeconfig: string,
  ns: EdgeNetns,
  p: { hubPort: number; certPort: number; streamsPort: number; kubeletClientCA: string; socketPath: string | undefined },
): Record<string, unknown> {
  return {
    logLevel: 'info',
    kubeAPI: { kubeconfig, qps: 200, burst: 400 },
    monitorServer: { port: 0 },
    modules: {
      cloudHub: {
        address: ns.hostAddress,
        port: p.hubPort,
        certServerAddress: ns.hostAddress,
        certServerPort: p.certPort,
        advertiseAddresses: [ns.hostAddress, '127.0.0.1'],
        caCertFile: join(dir, 'cloud', 'ca.crt'),
        caKeyFile: join(dir, 'cloud', 'ca.key'),
        serverCertFile: join(dir, 'cloud', 'server.crt'),
        serverKeyFile: join(dir, 'cloud', 'server.key'),
      },
      edgeController: { source: 'kubernetes', webhookAddress: '127.0.0.1', webhookHost: '127.0.0.1', webhookPort: 0 },
      // The replica relay on a free port: its default (10005) would keep two benches from running at once.
      streams: {
        enable: true,
        connect: { address: '127.0.0.1', port: p.streamsPort, ...(p.socketPath ? { socketPath: p.socketPath } : {}) },
        replica: { address: '127.0.0.1', port: 0 },
        clientCAFile: p.kubeletClientCA,
      },
    },
  };
}

function edgeConfigFor(dir: string, ns: EdgeNetns, c: Containerd, p: { hubPort: number; certPort: number }): Record<string, unknown> {
  return {
    logLevel: 'info',
    nodeName: NODE,
    database: { path: join(dir, 'edge', 'edgecore.db') },
    monitorServer: { port: 0 },
    modules: {
      edged: {
        enable: true,
        nodeIP: ns.edgeAddress,
        runtimeEndpoint: c.endpoint,
        rootDirectory: join(dir, 'pods'),
        podLogsDirectory: join(dir, 'logs'),
        cgroupParent: c.cgroupParent,
      },
      eventBus: { enable: false },
      deviceTwin: { enable: false },
      edgeHub: {
        server: `${ns.hostAddress}:${p.hubPort}`,
        certServer: `https://${ns.hostAddress}:${p.certPort}`,
        caFile: join(dir, 'edge', 'ca.crt'),
        certFile: join(dir, 'edge', 'node.crt'),
        keyFile: join(dir, 'edge', 'node.key'),
      },
    },
  };
}

/** What `EdgeNetns.remove` does, synchronously, for an interrupted run (the slot file is swept as stale later). */
function removeNetnsSync(ns: EdgeNetns): void {
  for (const argv of [
    ['/usr/sbin/ip', 'link', 'del', ns.hostLink],
    ['/usr/sbin/ip', 'netns', 'del', ns.name],
  ])
    try {
      execFileSync(argv[0]!, argv.slice(1), { stdio: 'ignore', timeout: 30_000 });
    } catch {
      /* already gone */
    }
  rmSync(`/tmp/kets-netns-slot-${ns.slot}`, { force: true });
}

function stopContainerdSync(c: Containerd, ns: EdgeNetns): void {
  const [program, ...rest] = ns.command([join(ROOT, 'build', 'cri', 'stop-containerd.sh'), '--purge', c.workdir]);
  const env = { ...process.env, KE_CRI_CGROUP_PARENT: c.cgroupParent, KE_CNI_SUBNET: c.podSubnet, KE_CNI_BRIDGE: c.podBridge };
  execFileSync(program!, rest, { env, stdio: 'ignore', timeout: 60_000 });
}
