import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd } from '../support/containerd.js';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { cloudSetup, edgeSetup, startCloud, startEdge, type Cloud, type Daemon } from '../support/daemons.js';
import { expectLogsNamingOfflineNode, kubectlEventually } from '../support/edge-kubectl.js';
import { busyboxPod, kubeletApiserverFlags, writeHubCa } from '../support/kubelet-setup.js';
import { eventually, freePort } from '../support/harness.js';
import { writeHostsFile } from '../support/hosts-file.js';
import { startMetricsServer } from '../support/metrics-server.js';
import { clientPki } from '../support/pki.js';

// Issue 13, the second way in, for API servers whose flags the user cannot change beyond the usual kubelet ones (no
// egress selector): the edge's Hostname (edged hostnameOverride) resolves to cloudcore, kube-apiserver prefers
// Hostname and dials `<hostname>:<kubeletPort>`, which is cloudcore's direct TLS listener. cloudcore picks the node
// by SNI, presents its minted certificate (checked against the hub CA), checks the kubelet client certificate and
// relays over the node's channel. Per-node DNS is a hosts file for the control plane's processes alone (a mount
// namespace, test/support/hosts-file.ts), so the machine's /etc/hosts is never touched.

const NODE = 'kd-edge-1';
const HOST = 'kd-edge-1.edge.kubeedge-ts.test';

describe('kubectl for an edge pod through the direct listener (per-node DNS, no egress selector)', () => {
  let dir: string;
  let hostsFile: string;
  let cp: ControlPlane;
  let cloud: Cloud;
  let edge: Daemon;
  let directPort: number;
  let kubeletClient: { ca: string; cert: string; key: string };
  let hubCaFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-kubelet-direct-'));
    hubCaFile = await writeHubCa(dir);
    const flags = kubeletApiserverFlags(dir, hubCaFile, undefined);
    kubeletClient = flags.kubeletClient;
    directPort = await freePort();
    hostsFile = writeHostsFile(join(dir, 'hosts'), { [HOST]: '127.0.0.1' });
    // Only the flags a managed cluster already sets for its kubelets; no --egress-selector-config-file.
    cp = startControlPlane({
      hostsFile,
      apiserverArgs: [...flags.apiserverArgs, '--kubelet-preferred-address-types=Hostname'],
    });
  }, 300_000);

  afterAll(() => {
    cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function startDaemons(): Promise<void> {
    const setup = await cloudSetup(dir, {
      kubeconfig: await cp.cloudcoreKubeconfig(),
      streams: {
        enable: true,
        connect: { address: '127.0.0.1', port: 0 },
        direct: { enable: true, address: '127.0.0.1', port: directPort },
        clientCAFile: kubeletClient.ca,
      },
    });
    cloud = await startCloud(setup);
    await cloud.waitForLog((l) => l.msg === 'kubelet direct listener up', 60_000);
    const c = await startContainerd();
    edge = startEdge(
      edgeSetup(dir, NODE, setup, {
        edged: {
          enable: true,
          hostnameOverride: HOST,
          kubeletPort: directPort,
          runtimeEndpoint: c.endpoint,
          rootDirectory: join(dir, 'pods'),
          podLogsDirectory: join(dir, 'logs'),
          cgroupParent: c.cgroupParent,
          relistIntervalMs: 300,
        },
      }),
      await cloud.token(),
    );
    await eventually(async () => expect(await cp.kubectlOk(['get', 'node', NODE, '--no-headers'])).toMatch(/\sReady\s/), 60_000, 250);
    const status = JSON.parse(await cp.kubectlOk(['get', 'node', NODE, '-o', 'json'])).status;
    expect(status.addresses).toContainEqual({ type: 'Hostname', address: HOST });
    expect(status.daemonEndpoints.kubeletEndpoint.Port).toBe(directPort);
  }

  // One test: the daemons are the test's (stopped when it ends), and each step builds on the last.
  it('serves kubectl logs and kubectl top by host name, refuses a foreign client certificate, and fails at once naming an offline node', async () => {
    await startDaemons();
    await logs();
    await refusals();
    await top();
    // The edge offline: kubectl logs fails at once, naming the node.
    await expectLogsNamingOfflineNode(cp, edge, 'talker', NODE);
  });

  async function logs(): Promise<void> {
    await cp.kubectlOk(['apply', '-f', '-'], busyboxPod('talker', NODE, 'echo hello-direct; while true; do sleep 1; done'));
    expect(await kubectlEventually(cp, ['logs', 'talker'])).toBe('hello-direct\n');
    // The API server dialled the host name: the tunnel was named by SNI on the direct listener.
    expect(cloud.logs.some((l) => l.msg === 'kubelet stream open' && l.target === `${HOST}:${directPort}` && l.nodeId === NODE)).toBe(true);
  }

  /** A caller with a certificate from another CA gets 401 and is logged; one that sends no SNI is refused at TLS. */
  async function refusals(): Promise<void> {
    const intruder = clientPki(dir, 'intruder', 'intruder');
    const inner = tlsConnect({
      host: '127.0.0.1',
      port: directPort,
      servername: HOST,
      ca: readFileSync(hubCaFile),
      cert: readFileSync(intruder.cert),
      key: readFileSync(intruder.key),
    });
    await once(inner, 'secureConnect');
    let answer = '';
    inner.on('data', (d: Buffer) => (answer += d.toString()));
    inner.write('GET /containerLogs/default/talker/main HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(inner, 'end');
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    const refused = await cloud.waitForLog((l) => l.msg === 'kubelet caller refused', 30_000);
    expect(refused).toMatchObject({ caller: 'intruder', issuer: 'intruder-ca', nodeId: NODE });

    const bare = tlsConnect({ host: '127.0.0.1', port: directPort, ca: readFileSync(hubCaFile) });
    const [err] = (await once(bare, 'error').catch((e: unknown) => [e])) as [Error];
    expect(err).toBeInstanceOf(Error);
    const noSni = await cloud.waitForLog((l) => l.msg === 'kubelet direct handshake refused', 30_000);
    expect(noSni.reason).toMatch(/^no server name \(SNI\)/);
  }

  /** metrics-server without HTTPS_PROXY: it resolves the node's host name to cloudcore as the API server does. */
  async function top(): Promise<void> {
    const ms = await startMetricsServer(cp, {
      preferredAddressTypes: 'Hostname',
      kubeletCAFile: hubCaFile,
      kubeletClientCert: { certFile: kubeletClient.cert, keyFile: kubeletClient.key },
      hostsFile,
    });
    try {
      await ms.register();
      expect(await kubectlEventually(cp, ['top', 'pod', 'talker', '--no-headers'], 90_000, 2_000)).toMatch(/^talker\s+\d+m\s+\d+Mi\s*$/);
    } finally {
      await ms.stop();
    }
  }
});
