import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { ReplicaRelay, type ReplicaRelayDeps } from '../../cloudcore/streams/replica-relay.js';
import { streamsConfigSchema } from '../../cloudcore/streams/streams-config.js';
import { loadConfig } from '../../shared/config/loader.js';
import { encodeKubeletStreamOpen } from '../../shared/kubelet-stream.js';
import { silentLogger } from '../../shared/logger.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { duplexPair } from '../support/duplex-pair.js';
import { freePort } from '../support/ports.js';

// The kubelet relay between replicas, both ends in process on 127.0.0.1: replica b opens a stream to a node held by
// replica a; a's CloudHub is a fake whose "edge" is the far side of a duplex pair.

const HEADER = encodeKubeletStreamOpen({ kind: 'kubelet', target: '203.0.113.5:10250', caller: 'kube-apiserver-kubelet-client' });
const DAY_MS = 86_400_000;

function readAll(stream: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (d: Buffer) => (text += d.toString()));
    stream.once('end', () => resolve(text));
    stream.once('error', reject);
  });
}

describe('replica relay', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let tls: ReplicaRelayDeps['tls'];
  const opened: Array<{ node: string; header: Uint8Array; edge: Duplex }> = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-relay-'));
    ca = await CertificateAuthority.create({ commonName: 'KubeEdge' });
    const serving = await ca.issueServerCert({ hosts: ['127.0.0.1'] });
    tls = { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
    writeFileSync(tls.certFile, serving.certPem);
    writeFileSync(tls.keyFile, serving.keyPem);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function relay(id: string, held: readonly string[]): Promise<ReplicaRelay> {
    const r = new ReplicaRelay({
      config: loadConfig(streamsConfigSchema(), { overrides: { headTimeoutMs: 2_000, replica: { address: '127.0.0.1', port: 0 } } }),
      hubCa: () => ca,
      replicaCert: () => ca.issueReplicaCert(id, DAY_MS),
      tls,
      hub: {
        holds: (node) => held.includes(node),
        openStream: (node, header) => {
          const [cloud, edge] = duplexPair();
          opened.push({ node, header, edge });
          return cloud;
        },
      },
      logger: silentLogger(),
    });
    await r.start();
    onTestFinished(() => r.stop());
    return r;
  }

  it("carries a stream to a node held by the other replica both ways, with the stream's header", async () => {
    const a = await relay('a', ['edge-1']);
    const b = await relay('b', []);
    const stream = b.open('edge-1', HEADER, { replica: 'a', address: `127.0.0.1:${a.port}` });
    stream.write('GET /containerLogs/default/p/c HTTP/1.1\r\n\r\n');
    await vi.waitFor(() => expect(opened.at(-1)?.node).toBe('edge-1'), 5_000);
    const { header, edge } = opened.at(-1)!;
    expect(Buffer.from(header)).toEqual(Buffer.from(HEADER));
    const request = await new Promise<string>((resolve) => edge.once('data', (d: Buffer) => resolve(d.toString())));
    expect(request).toBe('GET /containerLogs/default/p/c HTTP/1.1\r\n\r\n');
    const answer = readAll(stream);
    edge.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    expect(await answer).toBe('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });

  it('answers 502 naming the node when it does not hold it, and never passes the stream on', async () => {
    const a = await relay('a', []);
    const b = await relay('b', ['edge-2']);
    const before = opened.length;
    const answer = await readAll(b.open('edge-2', HEADER, { replica: 'a', address: `127.0.0.1:${a.port}` }));
    expect(answer).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    expect(answer).toContain('\r\n\r\nnode edge-2 is not connected to any cloudcore replica');
    expect(opened.length).toBe(before);
  });

  it('reads as a 502 naming the replica when its relay cannot be reached', async () => {
    const b = await relay('b', []);
    const port = await freePort();
    const answer = await readAll(b.open('edge-3', HEADER, { replica: 'a', address: `127.0.0.1:${port}` }));
    expect(answer).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n/);
    expect(answer).toContain(`node edge-3 is held by replica a, which did not answer at 127.0.0.1:${port}: `);
  });

  it("refuses an edge's certificate from the same CA with 403, and a bad head with 400", async () => {
    const a = await relay('a', ['edge-1']);
    const ask = (cert: { certPem: string; keyPem: string }, line: string): Promise<string> => {
      const socket = tlsConnect({
        host: '127.0.0.1',
        port: a.port,
        ca: ca.certPem,
        cert: cert.certPem,
        key: cert.keyPem,
        checkServerIdentity: () => undefined,
      });
      socket.end(line);
      return readAll(socket);
    };
    const before = opened.length;
    const edge = await ca.issueNodeCert('edge-1', DAY_MS);
    expect(await ask(edge, `${JSON.stringify({ node: 'edge-1', header: Buffer.from(HEADER).toString('base64') })}\n`)).toMatch(/^HTTP\/1\.1 403 /);
    const replica = await ca.issueReplicaCert('b', DAY_MS);
    expect(await ask(replica, 'not json\n')).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[^]*relay head is not JSON/);
    expect(await ask(replica, `${JSON.stringify({ node: 'edge-1', header: 'e30=' })}\n`)).toMatch(/^HTTP\/1\.1 400 [^]*stream kind/);
    expect(opened.length).toBe(before);
  });
});
