#!/usr/bin/env node
// `npm run up`: a whole system on one machine. A real Kubernetes control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler; built from source once and cached, see docs/control-plane.md),
// the project's CRDs, cloudcore watching it, one edgecore joined with a token, a demo pod with the
// ConfigMap it mounts delivered to the edge, and a demo device: the virtual mapper on the edge's MQTT broker
// reporting a simulated sensor into `kubectl get device`. As root, a private containerd (build/cri) runs the
// pods for real; otherwise edged only reports the node. Prints KUBECONFIG and kubectl commands to try, then a line with
// `ready`; Ctrl-C (or SIGTERM) stops everything. State lives in .tmp/up (or $KE_UP_DIR) and survives
// restarts like a real installation: etcd data, CA, certificates and the edge store are reused.
//
//   KUBECONFIG=<file> npm run up   use that cluster instead of starting one (needs cluster-admin)
//   npm run up -- --local          no Kubernetes: cloudcore serves objects from its local store
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import net from 'node:net';
import { stringify } from 'yaml';
import { LocalObjectStore } from '../cloudcore/edgecontroller/local-object-store.js';
import { CertificateAuthority } from '../shared/pki/certificate-authority.js';

const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../..' : '..', import.meta.url));
const DIR = process.env.KE_UP_DIR ?? join(ROOT, '.tmp', 'up');
const CLOUDCORE = join(ROOT, 'dist', 'cloudcore', 'main.js');
const EDGECORE = join(ROOT, 'dist', 'edgecore', 'main.js');
const CONTROL_PLANE = join(ROOT, 'build', 'control-plane');
const CRDS = join(ROOT, 'build', 'crds');
const DEMO_DEVICE = join(CRDS, 'examples', 'virtual-device.yaml');
const VIRTUAL_MAPPER = join(ROOT, 'dist', 'mappers', 'virtual', 'main.js');
const NODE_NAME = 'edge-1';
/**
 * The edge's InternalIP, which the API server prefers here. Not 127.0.0.1: kube-apiserver refuses to proxy to a
 * loopback address (`nodes/proxy`: "address not allowed"), while `kubectl logs` would still work. An RFC 5737
 * address routes nowhere; the API server reaches the edge through its egress selector and cloudcore, which knows the
 * node by it.
 */
const EDGE_NODE_IP = '203.0.113.10';
const CRI_SCRIPTS = join(ROOT, 'build', 'cri');

interface Runtime {
  endpoint: string;
  cgroupParent: string;
  stop(): void;
}

/**
 * A private containerd with the offline images, as root (mounts, namespaces, cgroups); undefined otherwise.
 * Its workdir is short (unix socket paths are limited to 108 bytes) and fresh per run.
 */
function startRuntime(): Runtime | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const workdir = mkdtempSync('/tmp/ke-up-');
  const cgroupParent = `/${workdir.slice('/tmp/'.length)}`;
  const env = { ...process.env, KE_CRI_CGROUP_PARENT: cgroupParent, KE_CNI_BRIDGE: 'ke-up0' };
  say('starting containerd (pods on 198.51.100.0/24)');
  execFileSync(join(CRI_SCRIPTS, 'start-containerd.sh'), [workdir], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  return {
    endpoint: `unix://${workdir}/containerd.sock`,
    cgroupParent,
    stop: () => execFileSync(join(CRI_SCRIPTS, 'stop-containerd.sh'), ['--purge', workdir], { env, stdio: 'ignore' }),
  };
}

interface Daemon {
  name: string;
  child: ChildProcess;
  waitFor(msg: string, timeoutMs: number): Promise<Record<string, unknown>>;
}

/** Where the objects come from: a cluster (ours or the user's) or cloudcore's local store. */
type Cluster = { kind: 'local' } | { kind: 'kubernetes'; kubeconfig: string; kubectl: string; ours: boolean };

async function portOrFree(preferred: number): Promise<number> {
  const tryListen = (port: number): Promise<number | undefined> =>
    new Promise((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(undefined));
      server.listen(port, '127.0.0.1', () => {
        const got = (server.address() as net.AddressInfo).port;
        server.close(() => resolve(got));
      });
    });
  return (await tryListen(preferred)) ?? (await tryListen(0))!;
}

const say = (text: string): boolean => process.stdout.write(`[up] ${text}\n`);

/** Starts a daemon; prints its log lines in short form, prefixed with its name. */
function startDaemon(name: string, args: string[]): Daemon {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const seen: Array<Record<string, unknown>> = [];
  const waiters: Array<{ msg: string; resolve: (l: Record<string, unknown>) => void }> = [];
  const print = (text: string): void => {
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      process.stdout.write(`[${name}] ${text}\n`);
      return;
    }
    seen.push(line);
    const { level, time, pid, name: _n, msg, ...rest } = line;
    const fields = Object.entries(rest)
      .filter(([k]) => k !== 'hostname')
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    const tag = Number(level) >= 50 ? 'ERROR ' : Number(level) >= 40 ? 'WARN ' : '';
    process.stdout.write(`[${name}] ${tag}${String(msg)} ${fields.join(' ')}`.trimEnd().slice(0, 300) + '\n');
    for (const w of waiters.splice(0)) w.msg === msg ? w.resolve(line) : waiters.push(w);
  };
  createInterface({ input: child.stdout! }).on('line', print);
  createInterface({ input: child.stderr! }).on('line', (t) => process.stdout.write(`[${name}] ${t}\n`));
  return {
    name,
    child,
    waitFor(msg, timeoutMs) {
      const found = seen.find((l) => l.msg === msg);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        waiters.push({ msg, resolve });
        setTimeout(() => reject(new Error(`${name}: no "${msg}" within ${timeoutMs} ms`)), timeoutMs).unref();
        child.once('exit', (code) => reject(new Error(`${name} exited with code ${code} before "${msg}"`)));
      });
    },
  };
}

/** Runs a script of build/control-plane, its progress shown; returns the last stdout line. */
function controlPlaneScript(script: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const out = execFileSync(join(CONTROL_PLANE, script), args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return out.trim().split('\n').pop() ?? '';
}

/** Our own control plane in DIR/control-plane (its etcd data kept across runs), or the user's cluster. */
function prepareCluster(tunnel: KubeletTunnel): Cluster {
  if (process.argv.includes('--local')) return { kind: 'local' };
  const external = process.env.KUBECONFIG;
  if (external) {
    if (!existsSync(external)) throw new Error(`KUBECONFIG=${external} does not exist`);
    const kubectl =
      spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0
        ? 'kubectl'
        : join(controlPlaneScript('build-binaries.sh', []), 'kubectl');
    say(`using the cluster of KUBECONFIG=${external}`);
    return { kind: 'kubernetes', kubeconfig: external, kubectl, ours: false };
  }
  say('building the control-plane binaries if they are not cached (first time only: ~12 min, ~3 GB of RAM)');
  const bin = controlPlaneScript('build-binaries.sh', []);
  const dir = join(DIR, 'control-plane');
  // Whatever a killed earlier `up` left running in this folder goes first (no-op otherwise).
  controlPlaneScript('stop.sh', [dir]);
  say('starting etcd, kube-apiserver, kube-controller-manager and kube-scheduler');
  const kubeconfig = controlPlaneScript('start.sh', [dir], { ...process.env, KE_CP_BIN_DIR: bin, KE_CP_APISERVER_ARGS: tunnel.apiserverArgs.join(' ') });
  return { kind: 'kubernetes', kubeconfig, kubectl: join(bin, 'kubectl'), ours: true };
}

/** What kube-apiserver and cloudcore need so kubectl logs/exec/attach/port-forward reach the edge through cloudcore. */
interface KubeletTunnel {
  apiserverArgs: string[];
  /** cloudcore's modules.streams */
  streams: Record<string, unknown>;
}

/**
 * Issue 13 on our control plane, as README "kubectl logs and exec for edge pods" describes: the apiserver's egress
 * selector sends kubelet calls to cloudcore's CONNECT listener, over mutual TLS with the kubelet client
 * certificate (made here by openssl, as kubeadm makes apiserver-kubelet-client); cloudcore mints kubelet serving
 * certificates from the hub CA, which must therefore exist before the apiserver starts (cloudcore reads its files).
 */
async function kubeletTunnel(port: number): Promise<KubeletTunnel> {
  const caDir = join(DIR, 'cloud', 'ca');
  const [caCert, caKey] = [join(caDir, 'rootCA.crt'), join(caDir, 'rootCA.key')];
  if (!existsSync(caCert) || !existsSync(caKey)) {
    mkdirSync(caDir, { recursive: true });
    const ca = await CertificateAuthority.create();
    writeFileSync(caKey, ca.keyPem, { mode: 0o600 });
    writeFileSync(caCert, ca.certPem);
    // An edge joined under an earlier CA (kept in the cluster's Secret by older versions of up) joins again.
    rmSync(join(DIR, 'edge', 'certs'), { recursive: true, force: true });
    rmSync(join(DIR, 'edge', 'ca'), { recursive: true, force: true });
  }
  const pki = join(DIR, 'kubelet-client');
  const [clientCa, clientCert, clientKey] = [join(pki, 'ca.crt'), join(pki, 'client.crt'), join(pki, 'client.key')];
  if (!existsSync(clientCert)) {
    mkdirSync(pki, { recursive: true });
    const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: pki, stdio: 'ignore' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=kubelet-client-ca']);
    openssl(['req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client']);
    writeFileSync(join(pki, 'client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
    openssl([
      'x509',
      '-req',
      '-in',
      'client.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '3650',
      '-extfile',
      'client.ext',
      '-out',
      'client.crt',
    ]);
  }
  const egress = join(DIR, 'egress-selector.yaml');
  writeFileSync(
    egress,
    stringify({
      apiVersion: 'apiserver.k8s.io/v1beta1',
      kind: 'EgressSelectorConfiguration',
      egressSelections: [
        {
          name: 'cluster',
          connection: {
            proxyProtocol: 'HTTPConnect',
            transport: { tcp: { url: `https://127.0.0.1:${port}`, tlsConfig: { caBundle: caCert, clientCert, clientKey } } },
          },
        },
      ],
    }),
  );
  return {
    apiserverArgs: [
      `--egress-selector-config-file=${egress}`,
      `--kubelet-client-certificate=${clientCert}`,
      `--kubelet-client-key=${clientKey}`,
      `--kubelet-certificate-authority=${caCert}`,
      // The node's InternalIP (EDGE_NODE_IP) first: its Hostname is this machine's name, which resolves to a
      // loopback address the API server's node proxy refuses ("address not allowed").
      '--kubelet-preferred-address-types=InternalIP,Hostname',
    ],
    streams: { enable: true, connect: { address: '127.0.0.1', port }, clientCAFile: clientCa },
  };
}

function kubectl(cluster: Extract<Cluster, { kind: 'kubernetes' }>, args: string[], input?: string): string {
  const r = spawnSync(cluster.kubectl, ['--kubeconfig', cluster.kubeconfig, ...args], { input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim() || r.error?.message}`);
  return r.stdout;
}

/** Every YAML in build/crds, applied and established before cloudcore starts. */
function installCrds(cluster: Extract<Cluster, { kind: 'kubernetes' }>): void {
  const files = existsSync(CRDS) ? readdirSync(CRDS).filter((f) => /\.ya?ml$/.test(f)) : [];
  if (files.length === 0) return;
  kubectl(cluster, ['apply', '--server-side', '-f', CRDS]);
  // Not recursive: build/crds/examples holds objects, not definitions (kubectl wait -f recurses by default).
  kubectl(cluster, ['wait', '--for=condition=Established', '--timeout=60s', '--recursive=false', '-f', CRDS]);
  say(`installed CRDs from ${relative(process.cwd(), CRDS)} (${files.join(', ')})`);
}

function writeConfigs(
  cluster: Cluster,
  ports: { hub: number; cert: number; webhook: number; mqtt: number; cloudMonitor: number; edgeMonitor: number; router: number; serviceBus: number },
  runtime: Runtime | undefined,
  streams?: Record<string, unknown>,
): { cloudConfig: string; edgeConfig: string } {
  const cloudConfig = join(DIR, 'cloudcore.yaml');
  const edgeConfig = join(DIR, 'edgecore.yaml');
  const edgeController =
    cluster.kind === 'local'
      ? { source: 'local', localStorePath: join(DIR, 'cloud', 'objects.db') }
      : { source: 'kubernetes', webhookAddress: '127.0.0.1', webhookPort: ports.webhook };
  writeFileSync(
    cloudConfig,
    stringify({
      logLevel: 'info',
      ...(cluster.kind === 'kubernetes' ? { kubeAPI: { kubeconfig: cluster.kubeconfig } } : {}),
      monitorServer: { port: ports.cloudMonitor },
      modules: {
        cloudHub: {
          address: '127.0.0.1',
          port: ports.hub,
          certServerAddress: '127.0.0.1',
          certServerPort: ports.cert,
          advertiseAddresses: ['127.0.0.1'],
          caCertFile: join(DIR, 'cloud', 'ca', 'rootCA.crt'),
          caKeyFile: join(DIR, 'cloud', 'ca', 'rootCA.key'),
          serverCertFile: join(DIR, 'cloud', 'certs', 'server.crt'),
          serverKeyFile: join(DIR, 'cloud', 'certs', 'server.key'),
        },
        edgeController,
        // KubeEdge's Router (rules.kubeedge.io), on a cluster: cloud apps call edge apps at https://127.0.0.1:<router>.
        ...(cluster.kind === 'kubernetes' ? { router: { enable: true, address: '127.0.0.1', port: ports.router } } : {}),
        ...(streams ? { streams } : {}),
      },
    }),
  );
  writeFileSync(
    edgeConfig,
    stringify({
      logLevel: 'info',
      nodeName: NODE_NAME,
      database: { path: join(DIR, 'edge', 'edgecore.db') },
      monitorServer: { port: ports.edgeMonitor },
      modules: {
        edged: runtime
          ? {
              nodeIP: EDGE_NODE_IP,
              runtimeEndpoint: runtime.endpoint,
              cgroupParent: runtime.cgroupParent,
              rootDirectory: join(DIR, 'edge', 'pods'),
              podLogsDirectory: join(DIR, 'edge', 'logs'),
              staticPodPath: join(DIR, 'edge', 'manifests'),
            }
          : { nodeIP: EDGE_NODE_IP, runtimeEndpoint: '' },
        eventBus: { internal: { port: ports.mqtt } },
        serviceBus: { enable: cluster.kind === 'kubernetes', port: ports.serviceBus },
        edgeHub: {
          server: `127.0.0.1:${ports.hub}`,
          certServer: `https://127.0.0.1:${ports.cert}`,
          caFile: join(DIR, 'edge', 'ca', 'rootCA.crt'),
          certFile: join(DIR, 'edge', 'certs', 'node.crt'),
          keyFile: join(DIR, 'edge', 'certs', 'node.key'),
        },
      },
    }),
  );
  return { cloudConfig, edgeConfig };
}

/** Waits until the edge store holds `key` (at `resourceVersion` when given). */
async function onEdge(edgeConfig: string, key: string, resourceVersion?: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const listed = spawnSync(process.execPath, [EDGECORE, '--config', edgeConfig, 'objects', 'list'], { encoding: 'utf8' }).stdout;
    if (listed.split('\n').some((l) => l.startsWith(`${key}\t${resourceVersion ?? ''}`))) return;
    if (Date.now() > deadline) throw new Error(`${key} did not reach the edge within 20 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const DEMO = `apiVersion: v1
kind: ConfigMap
metadata: {name: hello, namespace: default}
data: {greeting: hello from the cloud}
---
apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: default}
spec:
  nodeSelector: {node-role.kubernetes.io/edge: ""}
  containers:
  - name: hello
    image: localhost/lite/busybox:latest
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'cat /etc/hello/greeting; echo; sleep 3600']
    volumeMounts: [{name: greeting, mountPath: /etc/hello}]
  volumes:
  - name: greeting
    configMap: {name: hello}
`;

/** The demo: a pod scheduled to the edge node by the real scheduler, with the ConfigMap it mounts. */
async function demoOnCluster(cluster: Extract<Cluster, { kind: 'kubernetes' }>, edgeConfig: string): Promise<string> {
  const deadline = Date.now() + 60_000;
  while (
    !/True/.test(
      spawnSync(
        cluster.kubectl,
        ['--kubeconfig', cluster.kubeconfig, 'get', 'node', NODE_NAME, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'],
        { encoding: 'utf8' },
      ).stdout,
    )
  ) {
    if (Date.now() > deadline) throw new Error(`node ${NODE_NAME} did not turn Ready within 60 s`);
    await new Promise((r) => setTimeout(r, 500));
  }
  say(`node ${NODE_NAME} is Ready`);
  kubectl(cluster, ['apply', '-f', '-'], DEMO);
  await onEdge(edgeConfig, 'default/pod/hello');
  await onEdge(edgeConfig, 'default/configmap/hello');
  say(`${NODE_NAME} holds default/pod/hello and the ConfigMap it mounts`);
  const ec = `node ${relative(process.cwd(), EDGECORE)} --config ${relative(process.cwd(), edgeConfig)}`;
  const alias = cluster.kubectl === 'kubectl' ? '' : `\n  alias kubectl=${cluster.kubectl}`;
  return `
Try (in another terminal, from ${process.cwd()}):
  export KUBECONFIG=${cluster.kubeconfig}${alias}
  kubectl get nodes -o wide                 # ${NODE_NAME}: an edge node, Ready
  kubectl get lease -n kube-node-lease      # renewed by cloudcore while the edge is connected
  kubectl get pod hello -o wide             # scheduled to ${NODE_NAME}; Running there when up runs as root (containerd)
  kubectl logs hello                        # what it printed, through cloudcore and the edge's channel
  kubectl exec hello -- cat /etc/hello/greeting
  kubectl get --raw /api/v1/nodes/${NODE_NAME}/proxy/stats/summary
  ${ec} objects list    # what the edge holds
  kubectl patch configmap hello -p '{"data":{"greeting":"changed"}}'
  ${ec} objects get default/configmap/hello
  kubectl delete pod hello                  # ...and it leaves the edge
`;
}

/** The demo device: a simulated sensor whose values the virtual mapper reports into the Device status. */
async function demoDevice(cluster: Extract<Cluster, { kind: 'kubernetes' }>, mqttPort: number): Promise<string> {
  kubectl(cluster, ['apply', '-f', DEMO_DEVICE]);
  const deadline = Date.now() + 60_000;
  const reported = (): string =>
    spawnSync(
      cluster.kubectl,
      [
        '--kubeconfig',
        cluster.kubeconfig,
        'get',
        'device',
        'virtual-sensor-1',
        '-o',
        'jsonpath={.status.twins[?(@.propertyName=="temperature")].reported.value}',
      ],
      { encoding: 'utf8' },
    ).stdout;
  while (!reported()) {
    if (Date.now() > deadline) throw new Error('virtual-sensor-1 reported no temperature within 60 s');
    await new Promise((r) => setTimeout(r, 500));
  }
  say(`device virtual-sensor-1 reports temperature ${reported()} °C through the virtual mapper`);
  return `  kubectl get devices                       # virtual-sensor-1 on ${NODE_NAME}, online; its values move every 2 s
  kubectl get device virtual-sensor-1 -o jsonpath='{.status.twins}'
  kubectl patch device virtual-sensor-1 --type=json -p '[{"op":"add","path":"/spec/properties/2/desired","value":{"value":"3"}}]'
                                            # the mapper writes fan-speed 3; it shows as reported a moment later
  MQTT broker of the edge: mqtt://127.0.0.1:${mqttPort} (KubeEdge topics $hw/events/device/<namespace>/<name>/...)
`;
}

/**
 * The Router demo: KubeEdge's documented rest → servicebus YAML, unchanged, and an "edge app" on 127.0.0.1:6666
 * (its service_port; this host is the edge), called once through cloudcore's listener, as a cloud app would.
 */
async function demoRouter(cluster: Extract<Cluster, { kind: 'kubernetes' }>, routerPort: number): Promise<string> {
  const example = join(CRDS, 'examples', 'router-rest-to-servicebus.yaml');
  kubectl(cluster, ['apply', '-f', example]);
  const app = http.createServer((req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`edge app on ${NODE_NAME}: ${req.method} ${req.url}\n`));
  const listening = await new Promise<boolean>((resolve) => {
    app.once('error', () => resolve(false));
    app.listen(6666, '127.0.0.1', () => resolve(true));
  });
  app.unref();
  // The listener's certificate comes from the edge CA: its files (our control plane: up made them, kubeletTunnel),
  // or Secret kubeedge/casecret (KubeEdge's: DER in cadata).
  let caFile = join(DIR, 'cloud', 'ca', 'rootCA.crt');
  if (!existsSync(caFile)) {
    caFile = join(DIR, 'cloud', 'edge-ca.crt');
    const secret = JSON.parse(kubectl(cluster, ['get', 'secret', '-n', 'kubeedge', 'casecret', '-o', 'json'])) as { data: { cadata: string } };
    writeFileSync(caFile, new X509Certificate(Buffer.from(secret.data.cadata, 'base64')).toString());
  }
  const url = `https://127.0.0.1:${routerPort}/${NODE_NAME}/default/source/hello`;
  const curl = `curl --cacert ${caFile} -H "Authorization: Bearer $(kubectl create token default)" ${url}`;
  if (!listening) return `  ${curl}    # KubeEdge's rest → servicebus example (port 6666 was taken here: no edge app)\n`;
  const token = kubectl(cluster, ['create', 'token', 'default', '--duration=1h']).trim();
  const deadline = Date.now() + 30_000;
  for (;;) {
    const answer = await routerCall(url, token, caFile).catch((err: Error) => err.message);
    if (answer.startsWith('200 ')) {
      say(`router: a cloud app's call reached the edge app through the channel (${answer.trim()})`);
      break;
    }
    if (Date.now() > deadline) throw new Error(`the router demo call did not succeed within 30 s: ${answer}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  return `  ${curl}
                                            # KubeEdge's rest → servicebus example (build/crds/examples): cloudcore →
                                            # channel → ServiceBus → the edge app on 127.0.0.1:6666 (docs/router.md)
`;
}

function routerCall(url: string, token: string, caFile: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: readFileSync(caFile), headers: { authorization: `Bearer ${token}` }, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    });
    req.on('error', reject).on('timeout', () => req.destroy(new Error('timed out')));
  });
}

/** The demo without Kubernetes: an object put into cloudcore's local store. */
async function demoLocal(cloudConfig: string, edgeConfig: string): Promise<string> {
  const store = new LocalObjectStore(join(DIR, 'cloud', 'objects.db'));
  const { resourceVersion } = store.put(NODE_NAME, 'default/configmap/hello', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    data: { greeting: 'hello from the cloud', at: new Date().toISOString() },
  });
  store.close();
  await onEdge(edgeConfig, 'default/configmap/hello', String(resourceVersion));
  say(`${NODE_NAME} committed default/configmap/hello (resourceVersion ${resourceVersion})`);
  const ec = `node ${relative(process.cwd(), EDGECORE)} --config ${relative(process.cwd(), edgeConfig)}`;
  const cc = `node ${relative(process.cwd(), CLOUDCORE)} --config ${relative(process.cwd(), cloudConfig)}`;
  return `
Try (in another terminal, from ${process.cwd()}):
  ${ec} objects get default/configmap/hello            # what the edge holds
  echo '{"data":{"k":"v"}}' | ${cc} objects put ${NODE_NAME} default/configmap/mine
  ${ec} objects list                                    # ...and it is on the edge
  ${cc} objects delete ${NODE_NAME} default/configmap/mine
  ${cc} objects list ${NODE_NAME}                       # what the cloud wants the edge to hold
`;
}

async function main(): Promise<void> {
  mkdirSync(DIR, { recursive: true });
  const daemons: Daemon[] = [];
  let cluster: Cluster | undefined;
  let runtime: Runtime | undefined;
  let stopping = false;
  const stop = async (code: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping...\n');
    for (const d of [...daemons].reverse()) {
      if (d.child.exitCode !== null) continue;
      d.child.kill('SIGTERM');
      await new Promise((resolve) => {
        const t = setTimeout(() => (d.child.kill('SIGKILL'), resolve(undefined)), 15_000);
        d.child.once('exit', () => (clearTimeout(t), resolve(undefined)));
      });
    }
    // Containers outlive edgecore (edge autonomy): the demo's containerd and its pods go explicitly.
    try {
      runtime?.stop();
    } catch (err) {
      process.stdout.write(`containerd stop failed: ${(err as Error).message}\n`);
      code = 1;
    }
    if (cluster?.kind === 'kubernetes' && cluster.ours) {
      try {
        controlPlaneScript('stop.sh', [join(DIR, 'control-plane')]);
      } catch (err) {
        process.stdout.write(`control plane stop failed: ${(err as Error).message}\n`);
        code = 1;
      }
    }
    process.stdout.write('stopped\n');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    // Before the control plane: its apiserver's egress selector names this port.
    const streamsPort = await portOrFree(10003);
    const tunnel = await kubeletTunnel(streamsPort);
    cluster = prepareCluster(tunnel);
    if (cluster.kind === 'kubernetes') installCrds(cluster);
    const ports = {
      hub: await portOrFree(10000),
      cert: await portOrFree(10002),
      webhook: await portOrFree(10010),
      mqtt: await portOrFree(1884),
      cloudMonitor: await portOrFree(9091),
      edgeMonitor: await portOrFree(10248),
      router: await portOrFree(9443),
      serviceBus: await portOrFree(9060),
    };
    runtime = cluster.kind === 'kubernetes' ? startRuntime() : undefined;
    if (cluster.kind === 'kubernetes' && !runtime) say('not root: edged reports the node but runs no pods (containerd needs root)');
    // The user's own cluster keeps its apiserver flags: no kubelet front there (docs/kubelet-front.md has the ways).
    const { cloudConfig, edgeConfig } = writeConfigs(cluster, ports, runtime, cluster.kind === 'kubernetes' && cluster.ours ? tunnel.streams : undefined);
    if (stopping) return;

    // As installed (build/install.sh): OpenSSL told to send no TLS 1.3 session tickets (docs/channel.md), a 32 MiB
    // semi-space (docs/performance.md, streams).
    const openssl = `--openssl-config=${join(dirname(CLOUDCORE), 'openssl.cnf')}`;
    const cloud = startDaemon('cloudcore', [openssl, '--max-semi-space-size=32', CLOUDCORE, '--config', cloudConfig]);
    daemons.push(cloud);
    await cloud.waitFor('cloudcore ready', 60_000);
    const joined = existsSync(join(DIR, 'edge', 'certs', 'node.crt'));
    const token = spawnSync(process.execPath, [CLOUDCORE, '--config', cloudConfig, 'token', 'create', '--ttl', '1h'], { encoding: 'utf8' }).stdout.trim();
    const edge = startDaemon('edgecore', [EDGECORE, '--config', edgeConfig, ...(joined ? [] : ['--token', token])]);
    daemons.push(edge);
    cloud.child.once('exit', (code) => !stopping && (process.stdout.write(`cloudcore exited (${code})\n`), void stop(1)));
    edge.child.once('exit', (code) => !stopping && (process.stdout.write(`edgecore exited (${code})\n`), void stop(1)));
    await edge.waitFor('resynced with cloud', 30_000);

    let tryThis = cluster.kind === 'kubernetes' ? await demoOnCluster(cluster, edgeConfig) : await demoLocal(cloudConfig, edgeConfig);
    if (cluster.kind === 'kubernetes') {
      const mapper = startDaemon('virtual-mapper', [VIRTUAL_MAPPER, '--broker', `mqtt://127.0.0.1:${ports.mqtt}`, '--node-name', NODE_NAME]);
      daemons.push(mapper);
      mapper.child.once('exit', (code) => !stopping && (process.stdout.write(`virtual-mapper exited (${code})\n`), void stop(1)));
      tryThis += await demoDevice(cluster, ports.mqtt);
      tryThis += await demoRouter(cluster, ports.router);
    }
    const cc = `node ${relative(process.cwd(), CLOUDCORE)} --config ${relative(process.cwd(), cloudConfig)}`;
    const controlPlane = cluster.kind === 'kubernetes' && cluster.ours ? `   (control plane in ${join(DIR, 'control-plane')}, logs in its logs/)` : '';
    const clusterLine = cluster.kind === 'kubernetes' ? `cluster:    KUBECONFIG=${cluster.kubeconfig}${controlPlane}\n` : '';
    process.stdout.write(`
cloudcore:  hub wss://127.0.0.1:${ports.hub}   certificates https://127.0.0.1:${ports.cert}   config ${cloudConfig}
            metrics http://127.0.0.1:${ports.cloudMonitor}/metrics   readiness http://127.0.0.1:${ports.cloudMonitor}/readyz
edgecore:   node ${NODE_NAME}   store ${join(DIR, 'edge', 'edgecore.db')}   config ${edgeConfig}
            metrics http://127.0.0.1:${ports.edgeMonitor}/metrics   readiness http://127.0.0.1:${ports.edgeMonitor}/readyz
${clusterLine}join token: ${token.slice(0, 24)}...  (another: ${cc} token create)
${tryThis}
ready (Ctrl-C stops everything)
`);
  } catch (err) {
    process.stdout.write(`up failed: ${(err as Error).message}\n`);
    await stop(1);
  }
}

void main();
