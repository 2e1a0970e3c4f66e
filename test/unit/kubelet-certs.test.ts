import { once } from 'node:events';
import { connect, createServer, type SecureContext } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { KubeletCerts } from '../../cloudcore/streams/kubelet-certs.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';

/** The certificate a server with `context` presents, read over a real handshake on loopback. */
async function presented(context: SecureContext): Promise<{ serialNumber: string; validTo: number; subjectaltname: string }> {
  // The context is picked by SNI, as the direct listener picks a node's.
  const server = createServer({ SNICallback: (_name, callback) => callback(null, context) });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const socket = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, servername: 'edge-1.test', rejectUnauthorized: false });
    await once(socket, 'secureConnect');
    const cert = socket.getPeerCertificate();
    socket.destroy();
    return { serialNumber: cert.serialNumber, validTo: Date.parse(cert.valid_to), subjectaltname: cert.subjectaltname ?? '' };
  } finally {
    server.close();
  }
}

describe('kubelet serving certificates', () => {
  it('mints a new certificate for a host once 90% of the last one has passed, and keeps it until then', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'KubeEdge' });
    let now = Date.now();
    const validityMs = 10 * 60_000;
    const certs = new KubeletCerts({ ca, clientCaPem: ca.certPem, validityMs, now: () => now });
    const first = await certs.contextFor('203.0.113.2', 'edge-1');
    now += validityMs * 0.89;
    expect(await certs.contextFor('203.0.113.2', 'edge-1')).toBe(first);
    now += validityMs * 0.02;
    const second = await certs.contextFor('203.0.113.2', 'edge-1');
    expect(second).not.toBe(first);
    const [a, b] = [await presented(first), await presented(second)];
    expect(b.serialNumber).not.toBe(a.serialNumber);
    expect(b.validTo).toBeGreaterThan(a.validTo);
    expect(b.subjectaltname).toBe('IP Address:203.0.113.2');
  });
});
