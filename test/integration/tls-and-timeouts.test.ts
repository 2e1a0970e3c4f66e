import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { CloudMetrics } from '../../cloudcore/metrics/cloud-metrics.js';
import { CertServer } from '../../cloudcore/cloudhub/cert-server.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { silentLogger } from '../../shared/logger.js';
import { eventually, tempDir } from '../support/harness.js';
import { cloudSetup, edgeSetup, startCloud, startEdgeInProcess, type Cloud, type CloudSetup } from '../support/daemons.js';

const OPENSSL_CNF = fileURLToPath(new URL('../../dist/cloudcore/openssl.cnf', import.meta.url));

/** cloudcore as installed: node started with dist/cloudcore/openssl.cnf (what build/install.sh's command does). */
async function startInstalledCloud(setup: CloudSetup): Promise<Cloud> {
  const saved = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = `${saved ?? ''} --openssl-config=${OPENSSL_CNF}`.trim();
  try {
    // spawn() copies the environment synchronously, before startCloud's first await.
    return await startCloud(setup);
  } finally {
    if (saved === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = saved;
  }
}

/** Runs `openssl s_client` (a TLS client nobody here wrote), types `request`, returns all it printed. */
function sClient(port: number, args: string[], request?: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-msg', '-crlf', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    // With a request, stdin stays open until the server answers and closes (Connection: close); any ticket the
    // server sends precedes its response on the wire, so none can arrive after we stop listening.
    if (request) child.stdin.write(request);
    else child.stdin.end();
    const timer = setTimeout(() => child.kill(), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

async function nodeCredentials(cloud: Cloud, dir: string, nodeName: string): Promise<{ certFile: string; keyFile: string; ca: CertificateAuthority }> {
  const ca = await CertificateAuthority.fromPem(
    readFileSync(join(cloud.setup.dir, 'cloud', 'ca.crt'), 'utf8'),
    readFileSync(join(cloud.setup.dir, 'cloud', 'ca.key'), 'utf8'),
  );
  const pair = await ca.issueNodeCert(nodeName, 3_600_000);
  const certFile = join(dir, `${nodeName}.crt`);
  const keyFile = join(dir, `${nodeName}.key`);
  writeFileSync(certFile, pair.certPem);
  writeFileSync(keyFile, pair.keyPem);
  return { certFile, keyFile, ca };
}

/** Resolves when the server closes the socket; `feed` may keep writing to it meanwhile. */
function closedBy(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server kept the connection open for 20 s')), 20_000);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const HUB_REQUEST = 'GET / HTTP/1.1\nHost: hub\nConnection: close\n\n';

describe('TLS policy of the hub and the certificate server (openssl s_client)', () => {
  it('sends no TLS 1.3 session ticket when started as installed, and accepts only AEAD suites on TLS 1.2', async () => {
    const dir = tempDir();
    const cloud = await startInstalledCloud(await cloudSetup(dir));
    const { certFile, keyFile } = await nodeCredentials(cloud, dir, 'probe');
    const client = ['-cert', certFile, '-key', keyFile];

    const tls13 = await sClient(cloud.setup.hubPort, [...client, '-tls1_3'], HUB_REQUEST);
    expect(tls13.output).toMatch(/HTTP\/1\.1 426/);
    expect(tls13.output).not.toMatch(/NewSessionTicket/);
    const certServer = await sClient(cloud.setup.certPort, ['-tls1_3'], 'GET /healthz HTTP/1.1\nHost: c\nConnection: close\n\n');
    expect(certServer.output).toMatch(/HTTP\/1\.1 200/);
    expect(certServer.output).not.toMatch(/NewSessionTicket/);

    for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
      const r = await sClient(cloud.setup.hubPort, [...client, '-tls1_2', '-cipher', cipher], HUB_REQUEST);
      expect(r.output, cipher).toMatch(/HTTP\/1\.1 426/);
      expect(r.output, cipher).not.toMatch(/NewSessionTicket/);
    }
    // OpenSSL's default list (and Node's before this) also accepted these four CBC-mode suites.
    for (const cipher of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA384']) {
      for (const port of [cloud.setup.hubPort, cloud.setup.certPort]) {
        const r = await sClient(port, [...client, '-tls1_2', '-cipher', cipher]);
        expect(r.code, `${cipher} on ${port}`).not.toBe(0);
        expect(r.output, `${cipher} on ${port}`).toMatch(/handshake failure|no shared cipher/i);
      }
    }
  });
});

describe('clients that hold a connection without finishing', () => {
  it('closes a hub connection that finished TLS but never upgrades, or never finishes TLS, at handshakeTimeoutMs', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir, { cloudHub: { handshakeTimeoutMs: 1_500 } }));
    const healthy = await startEdgeInProcess(edgeSetup(dir, 'healthy', cloud.setup), await cloud.token());
    await eventually(() => expect(healthy.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    const since = (healthy.edgeHub.status as { since: number }).since;
    const { ca } = await nodeCredentials(cloud, dir, 'silent');
    const pair = await ca.issueNodeCert('silent', 3_600_000);

    const silentTls = tls.connect({
      host: '127.0.0.1',
      port: cloud.setup.hubPort,
      ca: ca.certPem,
      cert: pair.certPem,
      key: pair.keyPem,
      servername: 'localhost',
    });
    const tlsClosed = closedBy(silentTls);
    const rawTcp = net.connect(cloud.setup.hubPort, '127.0.0.1');
    const tcpClosed = closedBy(rawTcp);
    let secured = false;
    silentTls.once('secureConnect', () => (secured = true));
    await Promise.all([tlsClosed, tcpClosed]);
    expect(secured).toBe(true);

    await eventually(() => expect(cloud.logs.some((l) => l.msg === 'edge handshake timed out' && l.stage === 'websocket upgrade')).toBe(true));
    // The deadline ends at the upgrade: the edge that upgraded before keeps its session.
    expect(healthy.edgeHub.status).toMatchObject({ type: 'connected', since });
  });

  it('closes a certificate-server client that drips headers or sends nothing, at its request deadline', async () => {
    const ca = await CertificateAuthority.create();
    const server = new CertServer({
      ca,
      serving: await ca.issueServerCert({ hosts: ['127.0.0.1', 'localhost'] }),
      address: '127.0.0.1',
      port: 0,
      edgeCertValidityMs: 3_600_000,
      requestTimeoutMs: 1_000,
      logger: silentLogger(),
      metrics: new CloudMetrics(),
    });
    const { port } = await server.listen();
    try {
      const dripping = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost' });
      const drippingClosed = closedBy(dripping);
      let drip: NodeJS.Timeout | undefined;
      dripping.once('secureConnect', () => {
        dripping.write('GET /ca.crt HTTP/1.1\r\nHost: c\r\n');
        drip = setInterval(() => dripping.write('X-Slow: a\r\n'), 200);
      });
      const silent = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost' });
      const silentClosed = closedBy(silent);
      const noTls = net.connect(port, '127.0.0.1');
      const noTlsClosed = closedBy(noTls);
      await Promise.all([drippingClosed, silentClosed, noTlsClosed]).finally(() => clearInterval(drip));

      // Everyone else is still served.
      const status = await new Promise<number | undefined>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port, path: '/healthz', ca: ca.certPem, servername: 'localhost' }, (res) => resolve(res.resume().statusCode))
          .on('error', reject);
      });
      expect(status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

describe('bad input at the certificate server', () => {
  it('logs a refused NodeName header with what was wrong and keeps signing for valid nodes', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    const caPem = readFileSync(join(dir, 'cloud', 'ca.crt'), 'utf8');
    const jwt = (await cloud.token()).split('.').slice(1).join('.');
    const request = (nodeName: string): Promise<{ status: number | undefined; body: string }> =>
      new Promise((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port: cloud.setup.certPort,
            path: '/edge.crt',
            method: 'POST',
            ca: caPem,
            servername: 'localhost',
            headers: { NodeName: nodeName, Authorization: `Bearer ${jwt}` },
          },
          (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d));
            res.on('end', () => resolve({ status: res.statusCode, body }));
          },
        );
        req.on('error', reject);
        req.end(Buffer.from('not a csr'));
      });
    const bad = await request('Bad_Name');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatch(/NodeName "Bad_Name" is not a valid node name/);
    const logged = await cloud.waitForLog((l) => l.msg === 'certificate request refused' && l.nodeNameHeader === 'Bad_Name', 10_000, 'refusal log');
    expect(logged).toMatchObject({ status: 400, err: { code: 'ERR_CERTIFICATE' } });

    const edge = await startEdgeInProcess(edgeSetup(dir, 'good-node', cloud.setup), await cloud.token());
    await eventually(() => expect(edge.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
  });
});
