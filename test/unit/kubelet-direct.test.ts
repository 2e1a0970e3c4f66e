import { once } from 'node:events';
import type { Server } from 'node:tls';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeletCerts } from '../../cloudcore/streams/kubelet-certs.js';
import { createKubeletDirectServer } from '../../cloudcore/streams/kubelet-direct.js';
import { KubeletTargets } from '../../cloudcore/streams/kubelet-targets.js';
import { KubeletTunnels } from '../../cloudcore/streams/kubelet-tunnels.js';
import { CloudMetrics } from '../../cloudcore/metrics/cloud-metrics.js';
import { createLogger } from '../../shared/logger.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { duplexPair } from '../support/duplex-pair.js';
import { eventually } from '../support/harness.js';

// The direct listener over real TLS on 127.0.0.1: the node comes from SNI alone. The whole path behind the real
// kube-apiserver and an edge is test/integration/kubelet-direct.test.ts.

describe('kubelet direct listener', () => {
  const logLines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ name: 'cloudcore', level: 'debug', destination: { write: (line: string) => void logLines.push(JSON.parse(line)) } });
  const opened: string[] = [];
  let serving: CertificateAuthority;
  let client: { certPem: string; keyPem: string };
  let intruder: { certPem: string; keyPem: string };
  let server: Server;
  const metrics = new CloudMetrics();
  /** The idle timeout of every tunnel here: far longer than any answered request takes. */
  const IDLE_MS = 1_500;
  let port = 0;

  beforeAll(async () => {
    serving = await CertificateAuthority.create({ commonName: 'serving' });
    const clientCa = await CertificateAuthority.create({ commonName: 'kubelet-client-ca' });
    client = await clientCa.issueReplicaCert('apiserver', 3_600_000);
    intruder = await (await CertificateAuthority.create({ commonName: 'other' })).issueReplicaCert('x', 3_600_000);
    const targets = new KubeletTargets();
    const certs = new KubeletCerts({ ca: serving, clientCaPem: clientCa.certPem, validityMs: 3_600_000 });
    const tunnels = new KubeletTunnels({
      isNodeConnected: (node) => node !== 'edge-away',
      openStream: (node) => {
        opened.push(node);
        // The "edge": answers whatever comes with one HTTP response, except edge-quiet, which never answers.
        const [cloudEnd, edgeEnd] = duplexPair();
        if (node !== 'edge-quiet') edgeEnd.once('data', () => edgeEnd.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
        return cloudEnd;
      },
      maxStreamsPerNode: 8,
      clientCommonNames: [],
      idleTimeoutMs: IDLE_MS,
      metrics,
      logger,
    });
    server = createKubeletDirectServer({
      targets,
      port: () => port,
      contextFor: (host, node) => certs.contextFor(host, node),
      tunnels,
      clientCaPem: clientCa.certPem,
      handshakeTimeoutMs: 10_000,
      logger,
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
    for (const [name, host] of [
      ['edge-1', 'edge-1.edge.test'],
      ['edge-away', 'edge-away.edge.test'],
      ['edge-quiet', 'edge-quiet.edge.test'],
    ]) {
      targets.upsert({
        metadata: { name },
        status: { addresses: [{ type: 'Hostname', address: host! }], daemonEndpoints: { kubeletEndpoint: { Port: port } } },
      });
    }
  });

  afterAll(() => server?.close());

  /** Connects as the API server would (SNI = the host name dialled, unless `servername` says otherwise). */
  async function dial(servername: string | undefined, cert = client): Promise<{ socket?: TLSSocket; error?: Error }> {
    const socket = tlsConnect({
      host: '127.0.0.1',
      port,
      servername,
      ca: serving.certPem,
      cert: cert.certPem,
      key: cert.keyPem,
      checkServerIdentity: () => undefined,
    });
    return new Promise((resolve) => {
      socket.once('secureConnect', () => resolve({ socket }));
      socket.once('error', (error) => resolve({ error }));
    });
  }

  async function get(socket: TLSSocket): Promise<string> {
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.write('GET /containerLogs/default/p/c HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(socket, 'end');
    return text;
  }

  it("presents the node's minted certificate for its host name and relays to its stream", async () => {
    const { socket } = await dial('edge-1.edge.test');
    expect(socket!.getPeerCertificate().subjectaltname).toBe('DNS:edge-1.edge.test');
    expect(await get(socket!)).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok$/);
    expect(opened).toEqual(['edge-1']);
  });

  it('refuses the handshake without SNI or for a name no edge node reports, and logs why', async () => {
    expect((await dial('')).error).toBeDefined();
    expect((await dial('nobody.edge.test')).error).toBeDefined();
    await eventually(() => {
      const refused = logLines.filter((l) => l.msg === 'kubelet direct handshake refused');
      expect(refused.map((l) => l.servername)).toEqual([undefined, 'nobody.edge.test']);
      expect(refused[0]!.reason).toMatch(/^no server name \(SNI\)/);
    });
  });

  it('answers 401 to a client certificate from another CA, and 502 naming a node that is not connected', async () => {
    const { socket } = await dial('edge-1.edge.test', intruder);
    expect(await get(socket!)).toMatch(/^HTTP\/1\.1 401 /);
    expect(logLines.some((l) => l.msg === 'kubelet caller refused' && l.reason === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')).toBe(true);
    const away = await dial('edge-away.edge.test');
    expect(await get(away.socket!)).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n[^]*\r\n\r\nnode edge-away is not connected$/);
    expect(opened).not.toContain('edge-away');
  });

  it('counts streams by how they began, and the bytes relayed each way', async () => {
    const text = await metrics.registry.metrics();
    const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    // From the tests above: edge-1 opened once, one intruder, one node not connected.
    expect(value('cloudcore_kubelet_streams_total{result="opened"}')).toBeGreaterThanOrEqual(1);
    expect(value('cloudcore_kubelet_streams_total{result="unauthorized"}')).toBe(1);
    expect(value('cloudcore_kubelet_streams_total{result="not_connected"}')).toBe(1);
    expect(value('cloudcore_kubelet_stream_bytes_total{direction="from_edge"}')).toBeGreaterThanOrEqual(Buffer.byteLength('HTTP/1.1 200 OK\r\n'));
    expect(value('cloudcore_kubelet_stream_bytes_total{direction="to_edge"}')).toBeGreaterThan(0);
  });

  it('closes a tunnel with no byte either way for idleTimeoutMs, and counts it', async () => {
    const { socket } = await dial('edge-quiet.edge.test');
    socket!.write('GET /containerLogs/default/p/c?follow=true HTTP/1.1\r\nHost: x\r\n\r\n');
    socket!.resume();
    await once(socket!, 'close');
    expect(opened).toContain('edge-quiet');
    expect((await metrics.kubeletStreamsIdleClosed.get()).values[0]?.value).toBe(1);
    expect(logLines.some((l) => l.msg === 'kubelet stream closed: idle' && l.idleTimeoutMs === IDLE_MS)).toBe(true);
  });
});
