import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EDGE_ROLE_LABEL } from '../../cloudcore/edgecontroller/node-keeper.js';
import { KubeletTargets, type KubeletNode } from '../../cloudcore/streams/kubelet-targets.js';
import { Streams } from '../../cloudcore/streams/streams.js';
import { streamsConfigSchema } from '../../cloudcore/streams/streams-config.js';
import { loadConfig } from '../../shared/config/loader.js';
import { CoreError } from '../../shared/errors.js';
import { decodeKubeletStreamOpen, type KubeletStreamOpen } from '../../shared/kubelet-stream.js';
import { createLogger } from '../../shared/logger.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { duplexPair } from '../support/duplex-pair.js';
import { eventually } from '../support/harness.js';
import { clientPki, egressSelectorConfig } from '../support/pki.js';

// Issue 13, the cloud half alone: the real kube-apiserver, started with an egress selector whose `cluster`
// traffic goes to our CONNECT listener, reaches a fake edge kubelet (an http.Server fed one end of a duplex
// pair, as edgecore will feed it a channel stream) through TLS the front terminated with a minted certificate.

const LOG_TEXT = 'hello from the fake edge\n';
/** Edge nodes: connected, not connected, and held by another replica (openStream refuses). */
const NODES = { 'edge-1': '203.0.113.2', 'edge-2': '203.0.113.3', 'edge-3': '203.0.113.4' } as const;
const KUBELET_PORT = 10350;

/** Reads from a socket until `predicate` holds on what came, or it closes. */
async function readUntil(socket: Duplex, predicate: (text: string) => boolean): Promise<string> {
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  await eventually(() => {
    if (!predicate(text) && !socket.readableEnded && !socket.destroyed) throw new Error(`waiting, got ${JSON.stringify(text)}`);
  }, 60_000);
  return text;
}

describe('kubelet front behind the real kube-apiserver egress selector', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kfront-'));
  const logLines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ name: 'cloudcore', level: 'debug', destination: { write: (line: string) => void logLines.push(JSON.parse(line)) } });
  const targets = new KubeletTargets();
  const opened: Array<{ node: string; open: KubeletStreamOpen | { error: string } }> = [];
  let edge: HttpServer;
  let streams: Streams;
  let cp: ControlPlane;
  let hubCaFile: string;
  let apiserverClient: { ca: string; cert: string; key: string };
  let echo: NetServer;

  beforeAll(async () => {
    const hub = await CertificateAuthority.create({ commonName: 'KubeEdge' });
    hubCaFile = join(dir, 'hub-ca.crt');
    writeFileSync(hubCaFile, hub.certPem);
    const listener = await hub.issueServerCert({ hosts: ['127.0.0.1'] });
    writeFileSync(join(dir, 'server.crt'), listener.certPem);
    writeFileSync(join(dir, 'server.key'), listener.keyPem, { mode: 0o600 });
    apiserverClient = clientPki(dir, 'kubelet-client', 'kube-apiserver-kubelet-client');

    // The fake edge: what edgecore's stream server will do with each stream (shared/kubelet-stream.ts).
    edge = createHttpServer((req, res) => {
      if (req.url?.startsWith('/containerLogs/default/')) {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        return res.end(LOG_TEXT);
      }
      res.writeHead(404).end('not found\n');
    });
    streams = new Streams({
      config: loadConfig(streamsConfigSchema(), {
        overrides: { enable: true, connect: { address: '127.0.0.1', port: 0 }, clientCAFile: apiserverClient.ca },
      }),
      hubCa: () => hub,
      tls: { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') },
      targets,
      isNodeConnected: (node) => node !== 'edge-2',
      openStream: (node, header) => {
        opened.push({ node, open: decodeKubeletStreamOpen(header) });
        if (node === 'edge-3') throw Object.assign(new CoreError('ERR_UNAVAILABLE', `node ${node} is held by replica cloudcore-b`), { owner: 'cloudcore-b' });
        const [cloudEnd, edgeEnd] = duplexPair();
        edge.emit('connection', edgeEnd);
        return cloudEnd;
      },
      logger: logger.child({ module: 'streams' }),
    });
    await streams.start();

    const egress = egressSelectorConfig(join(dir, 'egress.yaml'), {
      url: `https://127.0.0.1:${streams.port}`,
      caBundle: hubCaFile,
      clientCert: apiserverClient.cert,
      clientKey: apiserverClient.key,
    });
    cp = startControlPlane({
      apiserverArgs: [
        `--egress-selector-config-file=${egress}`,
        `--kubelet-client-certificate=${apiserverClient.cert}`,
        `--kubelet-client-key=${apiserverClient.key}`,
        `--kubelet-certificate-authority=${hubCaFile}`,
        '--kubelet-preferred-address-types=InternalIP,Hostname',
      ],
    });

    for (const [name, ip] of Object.entries(NODES)) {
      await cp.kubectlOk(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { [EDGE_ROLE_LABEL]: '' } } }));
      const status = {
        addresses: [
          { type: 'InternalIP', address: ip },
          { type: 'Hostname', address: name },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: KUBELET_PORT } },
      };
      await cp.kubectlOk(['patch', 'node', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
    }
    // The index is fed the Nodes as the API server has them, as the informer will feed it.
    const nodes = JSON.parse(await cp.kubectlOk(['get', 'nodes', '-l', EDGE_ROLE_LABEL, '-o', 'json'])) as { items: KubeletNode[] };
    for (const n of nodes.items) targets.upsert(n);
    for (const [i, name] of Object.keys(NODES).entries()) {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `p${i + 1}`, namespace: 'default' },
        spec: { nodeName: name, automountServiceAccountToken: false, containers: [{ name: 'c', image: 'busybox' }] },
      };
      // The default ServiceAccount appears a moment after the control plane; pods are refused until then.
      await eventually(() => cp.kubectlOk(['create', '-f', '-'], JSON.stringify(pod)), 120_000, 500);
    }
    echo = createNetServer((s) => s.pipe(s)).listen(0, '127.0.0.1');
    await once(echo, 'listening');
  }, 400_000);

  afterAll(async () => {
    cp?.stop();
    await streams?.stop();
    edge?.close();
    echo?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('kubectl logs reaches the edge through CONNECT, a minted certificate the API server verified, and one stream', async () => {
    const out = await cp.kubectlOk(['logs', 'p1', '-c', 'c']);
    expect(out).toBe(LOG_TEXT);
    expect(opened.at(-1)).toEqual({
      node: 'edge-1',
      open: { kind: 'kubelet', target: `${NODES['edge-1']}:${KUBELET_PORT}`, caller: 'kube-apiserver-kubelet-client' },
    });
    // A keep-alive tunnel may outlive the request; once the API server lets it go, nothing is counted.
    const again = await cp.kubectlOk(['logs', 'p1']);
    expect(again).toBe(LOG_TEXT);
  });

  it('a node that is not connected fails kubectl logs at once, naming the node', async () => {
    const r = await cp.kubectl(['logs', 'p2', '-c', 'c']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('node edge-2 is not connected');
    expect(opened.some((o) => o.node === 'edge-2')).toBe(false);
  });

  it('a stream the node cannot get here (held by another replica) fails kubectl logs with the reason', async () => {
    const r = await cp.kubectl(['logs', 'p3', '-c', 'c']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('node edge-3 is held by replica cloudcore-b');
    expect(logLines.some((l) => l.msg === 'kubelet stream not opened' && l.owner === 'cloudcore-b')).toBe(true);
    // The refused tunnel is closed (Connection: close), so it no longer counts against the node.
    await eventually(() => expect(streams.tunnels!.streamsOf('edge-3')).toBe(0), 60_000);
  });

  /** A CONNECT through the listener as the API server's egress dialer makes it; resolves once answered. */
  async function connectThrough(target: string): Promise<{ socket: TLSSocket; reply: string }> {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: streams.port,
      ca: readFileSync(hubCaFile),
      cert: readFileSync(apiserverClient.cert),
      key: readFileSync(apiserverClient.key),
    });
    await once(socket, 'secureConnect');
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    return { socket, reply: chunk.toString('latin1') };
  }

  it('refuses and logs a kubelet caller whose certificate chains to another CA', async () => {
    const other = clientPki(dir, 'intruder', 'intruder');
    const { socket, reply } = await connectThrough(`${NODES['edge-1']}:${KUBELET_PORT}`);
    expect(reply).toBe('HTTP/1.1 200 Connection established\r\n\r\n');
    socket.pause();
    // The tunnel's certificate is checked as the API server checks it: against the serving CA, for the IP dialled.
    const inner = tlsConnect({ socket, ca: readFileSync(hubCaFile), host: NODES['edge-1'], cert: readFileSync(other.cert), key: readFileSync(other.key) });
    await once(inner, 'secureConnect');
    inner.write('GET /containerLogs/default/p1/c HTTP/1.1\r\nHost: x\r\n\r\n');
    const answer = await readUntil(inner, (t) => t.includes('\r\n\r\n'));
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    const refused = await eventually(() => {
      const line = logLines.find((l) => l.msg === 'kubelet caller refused');
      if (!line) throw new Error('not logged yet');
      return line;
    });
    expect(refused).toMatchObject({ caller: 'intruder', issuer: 'intruder-ca', nodeId: 'edge-1', reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    inner.destroy();
  });

  it('dials a target that is no edge kubelet directly and splices it', async () => {
    const port = (echo.address() as { port: number }).port;
    const { socket, reply } = await connectThrough(`127.0.0.1:${port}`);
    expect(reply).toBe('HTTP/1.1 200 Connection established\r\n\r\n');
    socket.write('ping through the front');
    expect(await readUntil(socket, (t) => t.includes('ping through the front'))).toBe('ping through the front');
    socket.destroy();
  });

  it('answers an unknown closed target 502 and a malformed CONNECT 400', async () => {
    const closed = createNetServer().listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as { port: number }).port;
    closed.close();
    expect((await connectThrough(`127.0.0.1:${port}`)).reply).toMatch(/^HTTP\/1\.1 502 dialing 127\.0\.0\.1:\d+ failed: ECONNREFUSED\r\n/);
    expect((await connectThrough('no-port-here')).reply).toMatch(/^HTTP\/1\.1 400 /);
  });
});
