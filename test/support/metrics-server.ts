import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { ControlPlane } from './control-plane.js';
import { withHostsFile } from './hosts-file.js';
import { freePort } from './ports.js';

const ROOT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../..' : '../..', import.meta.url));
const BUILD = join(ROOT, 'build', 'metrics-server', 'build.sh');
export const METRICS_API_SERVICE = 'v1beta1.metrics.k8s.io';

/**
 * The metrics-server binary, built from the Go module proxy on first use and cached by version
 * (build/metrics-server/build.sh; 2–6 min cold on 2 cores, instant afterwards).
 */
export function metricsServerBinary(): string {
  try {
    return lastLine(execFileSync(BUILD, ['--check'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    process.stderr.write('metrics-server: building it from the Go module proxy (first run only, 2-6 min)\n');
    return lastLine(execFileSync(BUILD, [], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 30 * 60_000 }));
  }
}

const lastLine = (out: string): string => out.trim().split('\n').pop()!;

export interface MetricsServerOptions {
  /** Order in which a node's status.addresses are tried (metrics-server's default starts with Hostname). */
  preferredAddressTypes?: string;
  /**
   * Verifies the kubelets' serving certificates with this CA (cloudcore's kubelet-serving CA once it relays).
   * Default: `--kubelet-insecure-tls`.
   */
  kubeletCAFile?: string;
  /** Client certificate for the kubelet API (metrics-server also sends its bearer token, docs §5.1). */
  kubeletClientCert?: { certFile: string; keyFile: string };
  /**
   * Scrape kubelets through this HTTP CONNECT proxy (`HTTPS_PROXY`, honoured by metrics-server's kubelet client;
   * the apiserver on 127.0.0.1 is bypassed as loopback). Default: direct dials.
   */
  httpsProxy?: string;
  /** Runs metrics-server with this file as /etc/hosts (hosts-file.ts), so node host names resolve as the test says. */
  hostsFile?: string;
  /** At least 10 s (metrics-server's minimum). Default 10 s. */
  metricResolutionS?: number;
  extraArgs?: string[];
}

export interface MetricsServer {
  port: number;
  /** `https://127.0.0.1:<port>`, a self-signed certificate from `--cert-dir`. */
  url: string;
  child: ChildProcess;
  /** metrics-server's log (klog on stderr). */
  logs: string[];
  /**
   * Registers `v1beta1.metrics.k8s.io` with the control plane's aggregator and resolves once it is Available,
   * i.e. `kubectl top` and `kubectl get --raw /apis/metrics.k8s.io/...` reach this metrics-server.
   */
  register(): Promise<void>;
  /** Unregisters the APIService (a dead one breaks discovery for every kubectl) and stops the process. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The aggregator dials an APIService's Service: its ClusterIP (nothing routes it here, no kube-proxy) or, with
 * --enable-aggregator-routing, an endpoint address, and Endpoints/EndpointSlices may not hold loopback addresses
 * (K8S:pkg/apis/core/validation ValidateEndpointIP). An ExternalName Service is resolved to
 * `https://<externalName>:<APIService port>` (APISERVER:pkg/util/proxy ResolveCluster) and skips the endpoints
 * check of the availability controller, so it can name 127.0.0.1.
 */
function apiServiceManifests(port: number): string {
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'metrics-server', namespace: 'kube-system', labels: { 'k8s-app': 'metrics-server' } },
    spec: { type: 'ExternalName', externalName: '127.0.0.1' },
  };
  const apiService = {
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name: METRICS_API_SERVICE, labels: { 'k8s-app': 'metrics-server' } },
    spec: {
      service: { name: 'metrics-server', namespace: 'kube-system', port },
      group: 'metrics.k8s.io',
      version: 'v1beta1',
      // Its certificate is self-signed in --cert-dir, as in metrics-server's own manifests.
      insecureSkipTLSVerify: true,
      groupPriorityMinimum: 100,
      versionPriority: 100,
    },
  };
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [service, apiService] });
}

function args(cp: ControlPlane, port: number, certDir: string, options: MetricsServerOptions): string[] {
  const tls = options.kubeletCAFile ? [`--kubelet-certificate-authority=${options.kubeletCAFile}`] : ['--kubelet-insecure-tls'];
  const client = options.kubeletClientCert
    ? [`--kubelet-client-certificate=${options.kubeletClientCert.certFile}`, `--kubelet-client-key=${options.kubeletClientCert.keyFile}`]
    : [];
  const resolutionS = Math.max(10, options.metricResolutionS ?? 10);
  return [
    `--kubeconfig=${cp.kubeconfig}`,
    `--authentication-kubeconfig=${cp.kubeconfig}`,
    `--authorization-kubeconfig=${cp.kubeconfig}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    `--cert-dir=${certDir}`,
    `--kubelet-preferred-address-types=${options.preferredAddressTypes ?? 'Hostname,InternalIP'}`,
    // The port each node reports (edged: kubeletPort, 10350), not a fixed --kubelet-port.
    '--kubelet-use-node-status-port',
    ...tls,
    ...client,
    `--metric-resolution=${resolutionS}s`,
    // metrics-server refuses a request timeout above 9/10 of the resolution (its default timeout is 10 s).
    `--kubelet-request-timeout=${Math.floor(resolutionS / 2)}s`,
    '-v=2',
    ...(options.extraArgs ?? []),
  ];
}

/** Starts metrics-server against `cp` on a free loopback port; resolves once it serves /livez. No vitest hooks. */
export async function startMetricsServer(cp: ControlPlane, options: MetricsServerOptions = {}): Promise<MetricsServer> {
  const binary = metricsServerBinary();
  const port = await freePort();
  const certDir = mkdtempSync(join(tmpdir(), 'ke-ms-'));
  const env = { ...process.env, ...(options.httpsProxy ? { HTTPS_PROXY: options.httpsProxy, NO_PROXY: '127.0.0.1,localhost' } : {}) };
  const argv = [binary, ...args(cp, port, certDir, options)];
  const [program, ...rest] = options.hostsFile ? withHostsFile(options.hostsFile, argv) : argv;
  const child = spawn(program!, rest, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const logs: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => logs.push(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `https://127.0.0.1:${port}`;
  let registered = false;
  let stopping: Promise<void> | undefined;
  const server: MetricsServer = {
    port,
    url,
    child,
    logs,
    async register() {
      registered = true;
      await cp.kubectlOk(['apply', '-f', '-'], apiServiceManifests(port));
      await cp.kubectlOk(['wait', '--for=condition=Available', `apiservice/${METRICS_API_SERVICE}`, '--timeout=120s']);
    },
    stop() {
      stopping ??= (async () => {
        if (registered) await cp.kubectl(['delete', 'apiservice', METRICS_API_SERVICE, '--ignore-not-found']);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
        rmSync(certDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
  try {
    await waitLive(url, exited, logs);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

async function waitLive(url: string, exited: Promise<void>, logs: string[]): Promise<void> {
  let dead = false;
  void exited.then(() => (dead = true));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (dead) throw new Error(`metrics-server exited:\n${logs.slice(-20).join('\n')}`);
    // /livez answers anonymous requests (metrics-server's default always-allow paths include it).
    if ((await statusOf(`${url}/livez`)) === 200) return;
    if (Date.now() > deadline) throw new Error(`metrics-server not live on ${url} within 60 s:\n${logs.slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Status of a GET to metrics-server's self-signed endpoint; 0 when it does not answer. */
function statusOf(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = https.get(url, { rejectUnauthorized: false, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}
