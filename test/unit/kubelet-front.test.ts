import { createSecureContext } from 'node:tls';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { KubeletFront, type KubeletFrontDeps } from '../../cloudcore/streams/kubelet-front.js';
import { KubeletTargets } from '../../cloudcore/streams/kubelet-targets.js';
import { CloudMetrics } from '../../cloudcore/metrics/cloud-metrics.js';
import { KubeletTunnels } from '../../cloudcore/streams/kubelet-tunnels.js';
import { silentLogger } from '../../shared/logger.js';
import { duplexPair } from '../support/duplex-pair.js';
import { eventually } from '../support/harness.js';

// The front's answers before any TLS, over in-memory connections. The whole path (TLS, streams, kubectl) is in
// test/integration/kubelet-front.test.ts against the real kube-apiserver.

type Limits = Partial<KubeletFrontDeps['limits'] & { maxStreamsPerNode: number }>;

function front(limits: Limits = {}, isNodeConnected?: (node: string) => boolean): { front: KubeletFront; tunnels: KubeletTunnels; opened: string[] } {
  const targets = new KubeletTargets();
  targets.upsert({
    metadata: { name: 'edge-1' },
    status: { addresses: [{ type: 'InternalIP', address: '203.0.113.2' }], daemonEndpoints: { kubeletEndpoint: { Port: 10350 } } },
  });
  for (const name of ['edge-a', 'edge-b']) {
    targets.upsert({
      metadata: { name },
      status: { addresses: [{ type: 'Hostname', address: 'gateway' }], daemonEndpoints: { kubeletEndpoint: { Port: 10350 } } },
    });
  }
  const opened: string[] = [];
  const { maxStreamsPerNode = 64, ...rest } = limits;
  const tunnels = new KubeletTunnels({
    isNodeConnected,
    openStream: (node) => {
      opened.push(node);
      return duplexPair()[0];
    },
    maxStreamsPerNode,
    clientCommonNames: [],
    idleTimeoutMs: 0,
    metrics: new CloudMetrics(),
    logger: silentLogger(),
  });
  const f = new KubeletFront({
    targets,
    tunnels,
    // Never used for a handshake here: the tunnel stays at its TLS stage.
    contextFor: async () => createSecureContext({}),
    limits: { headTimeoutMs: 60_000, maxHeadBytes: 8192, dialTimeoutMs: 60_000, directDial: true, ...rest },
    logger: silentLogger(),
  });
  return { front: f, tunnels, opened };
}

/** One connection to the front; resolves with the first answer. */
async function ask(f: KubeletFront, text: string): Promise<{ reply: string; client: Duplex }> {
  const [client, server] = duplexPair();
  f.handle(server, 'test');
  let reply = '';
  client.on('data', (chunk: Buffer) => (reply += chunk.toString('latin1')));
  client.write(text);
  await eventually(() => expect(reply).toContain('\r\n\r\n'));
  return { reply, client };
}

const connect = (target: string): string => `CONNECT ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

describe('KubeletFront before TLS', () => {
  it('answers 200 for an edge kubelet and counts the tunnel until its connection closes', async () => {
    const { front: f, tunnels } = front();
    const { reply, client } = await ask(f, connect('203.0.113.2:10350'));
    expect(reply).toBe('HTTP/1.1 200 Connection established\r\n\r\n');
    expect(tunnels.streamsOf('edge-1')).toBe(1);
    client.destroy();
    await eventually(() => expect(tunnels.streamsOf('edge-1')).toBe(0));
  });

  it('answers 429 past maxStreamsPerNode', async () => {
    const { front: f } = front({ maxStreamsPerNode: 1 });
    await ask(f, connect('203.0.113.2:10350'));
    expect((await ask(f, connect('203.0.113.2:10350'))).reply).toMatch(/^HTTP\/1\.1 429 node edge-1 has 1 kubelet streams open \(maxStreamsPerNode\)\r\n/);
  });

  it('answers 409 for an address several edge nodes report, 403 for a non-edge target with directDial off', async () => {
    const { front: f } = front({ directDial: false });
    expect((await ask(f, connect('gateway:10350'))).reply).toMatch(/^HTTP\/1\.1 409 .*edge-a, edge-b/);
    expect((await ask(f, connect('10.0.0.1:443'))).reply).toMatch(/^HTTP\/1\.1 403 /);
  });

  it('answers 408 when the head does not come in time, 400 when it is too long, 400 for bytes before the 200', async () => {
    expect((await ask(front({ headTimeoutMs: 100 }).front, 'CONNECT 203.0.113.2:10350 HTTP/1.1\r\n')).reply).toMatch(/^HTTP\/1\.1 408 /);
    expect((await ask(front({ maxHeadBytes: 256 }).front, `CONNECT a:1 HTTP/1.1\r\nX: ${'y'.repeat(300)}`)).reply).toMatch(/^HTTP\/1\.1 400 /);
    expect((await ask(front().front, `${connect('203.0.113.2:10350')}\x16\x03\x01`)).reply).toMatch(/^HTTP\/1\.1 400 data sent before/);
  });

  it('answers 503 naming the node when it is not connected, without opening a stream', async () => {
    const { front: f, tunnels, opened } = front({}, (node) => node !== 'edge-1');
    expect((await ask(f, connect('203.0.113.2:10350'))).reply).toMatch(/^HTTP\/1\.1 503 node edge-1 is not connected\r\n/);
    expect(opened).toEqual([]);
    expect(tunnels.streamsOf('edge-1')).toBe(0);
  });
});
