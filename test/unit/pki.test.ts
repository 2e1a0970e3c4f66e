import { describe, expect, it } from 'vitest';
import { X509Certificate, createHash } from 'node:crypto';
import tls from 'node:tls';
import { once } from 'node:events';
import { CertificateAuthority, createNodeCsr, nodeNameFromCommonName } from '../../shared/pki/certificate-authority.js';
import { createBootstrapToken, splitBootstrapToken, verifyBootstrapJwt } from '../../shared/pki/bootstrap-token.js';

describe('certificate authority', () => {
  it('signs a node CSR into a client certificate chained to the CA', async () => {
    const ca = await CertificateAuthority.create();
    const { csrDer } = await createNodeCsr('edge-1');
    const der = await ca.signNodeCsr(csrDer, 'edge-1', 3_600_000);
    const cert = new X509Certificate(der);
    expect(cert.subject).toContain('CN=system:node:edge-1');
    expect(cert.subject).toContain('O=system:nodes');
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    expect(ca.hash).toBe(createHash('sha256').update(ca.certDer).digest('hex'));
  });

  it('refuses a CSR for another node and bytes that are not a CSR', async () => {
    const ca = await CertificateAuthority.create();
    const { csrDer } = await createNodeCsr('edge-1');
    await expect(ca.signNodeCsr(csrDer, 'edge-2', 1000)).rejects.toMatchObject({ code: 'ERR_CERTIFICATE' });
    await expect(ca.signNodeCsr(Buffer.from('garbage'), 'edge-1', 1000)).rejects.toMatchObject({ code: 'ERR_CERTIFICATE' });
    const tampered = Buffer.from(csrDer);
    tampered[tampered.length - 5] = tampered[tampered.length - 5]! ^ 0xff;
    await expect(ca.signNodeCsr(tampered, 'edge-1', 1000)).rejects.toMatchObject({ code: 'ERR_CERTIFICATE' });
  });

  it('reloads from PEM with the same hash and token secret', async () => {
    const ca = await CertificateAuthority.create();
    const again = await CertificateAuthority.fromPem(ca.certPem, ca.keyPem);
    expect(again.hash).toBe(ca.hash);
    expect(again.tokenSecret().equals(ca.tokenSecret())).toBe(true);
  });

  it('completes a mutual TLS handshake with the issued certificates', async () => {
    const ca = await CertificateAuthority.create();
    const server = await ca.issueServerCert({ hosts: ['127.0.0.1', 'localhost'] });
    const node = await ca.issueNodeCert('edge-7', 60_000);
    const srv = tls.createServer({ cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true }, (s) => {
      s.end(String(s.getPeerCertificate().subject.CN));
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const { port } = srv.address() as { port: number };
    const client = tls.connect({ port, host: '127.0.0.1', ca: ca.certPem, cert: node.certPem, key: node.keyPem });
    let text = '';
    client.on('data', (d) => (text += d));
    await once(client, 'end');
    srv.close();
    expect(text).toBe('system:node:edge-7');
  });

  it('accepts only well-formed node names from a CN', () => {
    expect(nodeNameFromCommonName('system:node:edge-1')).toBe('edge-1');
    expect(nodeNameFromCommonName('system:node:')).toBeUndefined();
    expect(nodeNameFromCommonName('system:node:Bad_Name')).toBeUndefined();
    expect(nodeNameFromCommonName('KubeEdge')).toBeUndefined();
  });
});

describe('bootstrap token', () => {
  const secret = Buffer.from('a-secret');
  const hash = 'ab'.repeat(32);

  it('round-trips and reports its expiry', () => {
    const now = Date.now();
    const token = createBootstrapToken(hash, secret, 3_600_000, now);
    const { caHash, jwt } = splitBootstrapToken(token);
    expect(caHash).toBe(hash);
    expect(verifyBootstrapJwt(jwt, secret, now).getTime()).toBe(Math.floor((now + 3_600_000) / 1000) * 1000);
  });

  it('rejects expired, forged, malformed and alg=none tokens with distinct codes', () => {
    const now = Date.now();
    const expired = splitBootstrapToken(createBootstrapToken(hash, secret, 1000, now - 10_000)).jwt;
    expect(() => verifyBootstrapJwt(expired, secret, now)).toThrow(expect.objectContaining({ code: 'ERR_TOKEN_EXPIRED' }));
    const forged = splitBootstrapToken(createBootstrapToken(hash, Buffer.from('other'), 60_000, now)).jwt;
    expect(() => verifyBootstrapJwt(forged, secret, now)).toThrow(expect.objectContaining({ code: 'ERR_TOKEN_SIGNATURE' }));
    expect(() => splitBootstrapToken('abc.def')).toThrow(expect.objectContaining({ code: 'ERR_TOKEN_MALFORMED' }));
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"exp":9999999999}').toString('base64url')}.`;
    expect(() => verifyBootstrapJwt(none, secret, now)).toThrow(expect.objectContaining({ code: 'ERR_TOKEN_SIGNATURE' }));
  });
});
