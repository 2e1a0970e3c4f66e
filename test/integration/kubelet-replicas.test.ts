import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd } from '../support/containerd.js';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { cloudSetup, edgeSetup, startCloud, startEdge, type Cloud } from '../support/daemons.js';
import { eventually, freePort } from '../support/harness.js';
import { busyboxPod, kubeletApiserverFlags, writeHubCa } from '../support/kubelet-setup.js';

// Issue 13 with several replicas: a kubelet request reaching a replica that does not hold the node is passed to
// the one that does. The API server's egress selector points at replica b's CONNECT listener; the edge is connected
// to replica a only. b ends the kubelet TLS, finds a as the node's owner (Node annotation) and a's relay in a's
// report, and passes the stream there with its replica certificate; a opens it on the edge's channel.

const NODE = 'kubelet-replicas';

describe('kubectl through a replica that does not hold the node', () => {
  let dir: string;
  let cp: ControlPlane;
  let connectPortB: number;
  let kubeletClient: { ca: string; cert: string; key: string };
  const caFiles = (): { caCertFile: string; caKeyFile: string } => ({ caCertFile: join(dir, 'ca', 'ca.crt'), caKeyFile: join(dir, 'ca', 'ca.key') });
  /** The cached kubectl (ControlPlane.kubectl): {code, stdout, stderr}, given up after 60 s. */
  const kubectl = (args: string[]): ReturnType<ControlPlane['kubectl']> => cp.kubectl(args);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-kubelet-replicas-'));
    // The hub CA both replicas share exists before the API server starts: it is its --kubelet-certificate-authority
    // and the egress proxy's CA (kubectl-edge.test.ts).
    connectPortB = await freePort();
    const flags = kubeletApiserverFlags(dir, await writeHubCa(dir, join(dir, 'ca')), connectPortB);
    kubeletClient = flags.kubeletClient;
    cp = startControlPlane({ apiserverArgs: flags.apiserverArgs });
  }, 300_000);

  afterAll(() => {
    cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A replica sharing the CA, with the kubelet front on its own CONNECT and relay ports, reporting every second. */
  async function replica(id: string, connectPort: number, relayPort: number): Promise<Cloud> {
    const setup = await cloudSetup(join(dir, id), {
      kubeconfig: await cp.cloudcoreKubeconfig(),
      cloudHub: { rebalance: { replicaId: id, reportIntervalMs: 1_000 }, ...caFiles() },
      streams: {
        enable: true,
        connect: { address: '127.0.0.1', port: connectPort },
        clientCAFile: kubeletClient.ca,
        replica: { address: '127.0.0.1', port: relayPort },
      },
    });
    return startCloud(setup, `cloudcore-${id}`);
  }

  it('serves kubectl logs and exec through the other replica, refuses an edge at the relay, and fails at once naming an offline node', async () => {
    const relayPortA = await freePort();
    const a = await replica('kubelet-a', await freePort(), relayPortA);
    const b = await replica('kubelet-b', connectPortB, await freePort());

    const c = await startContainerd();
    const edge = startEdge(
      edgeSetup(dir, NODE, a.setup, {
        edged: {
          enable: true,
          // An address nothing listens on: the API server reaches the kubelet only through the replicas.
          nodeIP: '203.0.113.77',
          runtimeEndpoint: c.endpoint,
          rootDirectory: join(dir, 'pods'),
          podLogsDirectory: join(dir, 'logs'),
          cgroupParent: c.cgroupParent,
          relistIntervalMs: 300,
        },
      }),
      await a.token(),
    );
    await eventually(async () => expect(await cp.kubectlOk(['get', 'node', NODE, '--no-headers'])).toMatch(/\sReady\s/), 60_000, 250);
    await eventually(
      async () =>
        expect(await cp.kubectlOk(['get', 'node', NODE, '-o', 'jsonpath={.metadata.annotations.kubeedge-ts\\.io/owner}'])).toMatch(/^kubelet-a\/\d+$/),
      30_000,
      250,
    );

    await cp.kubectlOk(['apply', '-f', '-'], busyboxPod('talker', NODE, 'echo line-1; echo line-2; exec sleep 3600'));

    // kubectl logs: apiserver → b's CONNECT listener → b's relay link → a's relay → the edge's channel.
    const logs = await eventually(
      async () => {
        const r = await kubectl(['logs', 'talker']);
        expect(r.code, r.stderr).toBe(0);
        return r.stdout;
      },
      120_000,
      500,
    );
    expect(logs).toBe('line-1\nline-2\n');
    await a.waitForLog((l) => l.msg === 'kubelet stream relayed for another replica' && l.nodeId === NODE && l.from === 'kubelet-b', 10_000, 'a relayed');
    // b holds no session of the node: it passed the stream on rather than opening one.
    await b.waitForLog((l) => l.msg === 'kubelet stream passed to the replica holding the node' && l.nodeId === NODE, 10_000, 'b passed it on');

    // kubectl exec: the command's output and exit code come back the same way (SPDY after a 101, unparsed).
    const exec = await kubectl(['exec', 'talker', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(exec).toMatchObject({ code: 7, stdout: 'out\n' });
    expect(exec.stderr).toContain('err\n');

    // The relay takes replicas only: an edge's certificate from the same CA passes the handshake and is refused.
    const refused = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port: relayPortA,
        ca: readFileSync(caFiles().caCertFile),
        cert: readFileSync(join(dir, NODE, 'node.crt')),
        key: readFileSync(join(dir, NODE, 'node.key')),
        checkServerIdentity: () => undefined,
      });
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString()));
      socket.on('error', reject);
      socket.on('close', () => resolve(answer));
      socket.end(`${JSON.stringify({ node: NODE, header: '' })}\n`);
    });
    expect(refused).toMatch(/^HTTP\/1\.1 403 /);
    await a.waitForLog((l) => l.msg === 'replica relay refused a caller that is no replica' && l.caller === `system:node:${NODE}`, 10_000, 'edge refused');

    // The edge goes away: kubectl logs fails at once (kubectl's own limit is 30 s), naming the node.
    edge.child.kill('SIGTERM');
    await edge.exited;
    await eventually(async () => expect((await kubectl(['logs', 'talker'])).stderr).toContain(NODE), 30_000, 500);
    const gone = await kubectl(['logs', 'talker']);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain(`node ${NODE} is not connected`);
  });
});
