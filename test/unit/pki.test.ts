import { describe, expect, it } from 'vitest';
import { X509Certificate, createHash, createHmac } from 'node:crypto';
import { join } from 'node:path';
import tls from 'node:tls';
import { once } from 'node:events';
import { CertificateAuthority, createNodeCsr, nodeNameFromCommonName } from '../../shared/pki/certificate-authority.js';
import { createBootstrapToken, splitBootstrapToken, verifyBootstrapJwt } from '../../shared/pki/bootstrap-token.js';
import { MemoryTokenUses } from '../../shared/pki/token-uses.js';
import { FileTokenUses } from '../../cloudcore/cloudhub/token-uses-file.js';
import { tempDir } from '../support/harness.js';

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

  it('issues a kubelet serving certificate naming exactly one address, for server use only', async () => {
    const ca = await CertificateAuthority.create();
    const byIp = new X509Certificate((await ca.issueKubeletServingCert({ host: '203.0.113.2', node: 'edge-1', validityMs: 86_400_000 })).certPem);
    const byName = new X509Certificate((await ca.issueKubeletServingCert({ host: 'edge-1', node: 'edge-1', validityMs: 86_400_000 })).certPem);
    expect(byIp.subjectAltName).toBe('IP Address:203.0.113.2');
    expect(byName.subjectAltName).toBe('DNS:edge-1');
    expect(byIp.checkIP('203.0.113.2')).toBe('203.0.113.2');
    expect(byIp.checkIP('203.0.113.3')).toBeUndefined();
    expect(byIp.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(byIp.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
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
    expect(verifyBootstrapJwt(jwt, secret, now).expiresAt.getTime()).toBe(Math.floor((now + 3_600_000) / 1000) * 1000);
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

describe('scoped join tokens', () => {
  const secret = Buffer.from('a-secret');
  const hash = 'ab'.repeat(32);
  const sign = (claims: object): string => {
    const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
  };

  it('keeps the unscoped form byte-compatible: exp is the only claim', () => {
    const { jwt } = splitBootstrapToken(createBootstrapToken(hash, secret, 60_000));
    expect(Object.keys(JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()))).toEqual(['exp']);
    expect(verifyBootstrapJwt(jwt, secret)).not.toHaveProperty('nodeName');
  });

  it('carries the node as sub and a use limit as jti + uses', () => {
    const { jwt } = splitBootstrapToken(createBootstrapToken(hash, secret, 60_000, Date.now(), { nodeName: 'edge-7', uses: 1 }));
    const claims = verifyBootstrapJwt(jwt, secret);
    expect(claims.nodeName).toBe('edge-7');
    expect(claims.limit).toMatchObject({ uses: 1, jti: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/) });
    expect(JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString())).toMatchObject({ sub: 'system:node:edge-7', uses: 1 });
  });

  it('refuses a signed but malformed scope instead of ignoring it', () => {
    const exp = Math.floor(Date.now() / 1000) + 60;
    for (const claims of [
      { exp, sub: 'edge-7' },
      { exp, sub: 7 },
      { exp, uses: 1 },
      { exp, jti: 'x' },
      { exp, jti: 'x', uses: 0 },
      { exp, jti: 'a b', uses: 1 },
    ]) {
      expect(() => verifyBootstrapJwt(sign(claims), secret), JSON.stringify(claims)).toThrow(expect.objectContaining({ code: 'ERR_TOKEN_MALFORMED' }));
    }
  });

  it('counts uses up to the limit, in memory and in a file two cloudcores share', async () => {
    const expiresAt = new Date(Date.now() + 60_000);
    const memory = new MemoryTokenUses();
    await expect(memory.consume('t1', 2, expiresAt)).resolves.toBe(1);
    await expect(memory.consume('t1', 2, expiresAt)).resolves.toBe(2);
    await expect(memory.consume('t1', 2, expiresAt)).rejects.toMatchObject({ code: 'ERR_TOKEN_USED_UP' });
    const path = join(tempDir(), 'ca', 'token-uses.db');
    const [a, b] = [new FileTokenUses(path), new FileTokenUses(path)];
    try {
      const results = await Promise.allSettled([a, b, a, b].map((r) => r.consume('t2', 3, expiresAt)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
      expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'ERR_TOKEN_USED_UP' } });
      // An expired entry is forgotten (the token itself is refused as expired by then).
      await expect(a.consume('old', 1, new Date(Date.now() - 1))).resolves.toBe(1);
      await expect(b.consume('t3', 1, expiresAt)).resolves.toBe(1);
      await expect(b.consume('old', 1, expiresAt)).resolves.toBe(1);
    } finally {
      a.close();
      b.close();
    }
  });
});
