import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../shared/logger.js';
import { closeServer, listen } from './listening.js';
import { AuthError, EdgeError } from '../../shared/errors.js';
import { CertificateAuthority, nodeNameFromCommonName, type PemPair } from '../../shared/pki/certificate-authority.js';
import { verifyBootstrapJwt } from '../../shared/pki/bootstrap-token.js';

const MAX_CSR_BYTES = 16 * 1024;
const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export interface CertServerOptions {
  ca: CertificateAuthority;
  serving: PemPair;
  address: string;
  port: number;
  edgeCertValidityMs: number;
  logger: Logger;
}

/**
 * KubeEdge's certificate endpoint (cloudhub port 10002): `GET /ca.crt` returns the CA as DER; `GET|POST
 * /edge.crt` with header `NodeName` and a DER CSR body returns the signed certificate as DER. A new edge
 * authenticates with `Authorization: Bearer <JWT of a join token>`; an edge renewing presents its current
 * client certificate instead.
 */
export class CertServer {
  private readonly server: https.Server;
  private readonly tokenSecret: Buffer;

  constructor(private readonly options: CertServerOptions) {
    this.tokenSecret = options.ca.tokenSecret();
    this.server = https.createServer(
      {
        cert: options.serving.certPem,
        key: options.serving.keyPem,
        ca: options.ca.certPem,
        // Asked for, not required: first contact has no certificate yet, renewal does.
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      },
      (req, res) => void this.handle(req, res),
    );
    this.server.on('tlsClientError', (err, socket) => {
      options.logger.warn({ err, peer: socket.remoteAddress }, 'certificate server tls handshake failed');
    });
  }

  listen(): Promise<AddressInfo> {
    return listen(this.server, this.options.port, this.options.address);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const peer = req.socket.remoteAddress;
    const path = (req.url ?? '').split('?')[0];
    try {
      if (req.method === 'GET' && path === '/ca.crt') return reply(res, 200, this.options.ca.certDer);
      if (req.method === 'GET' && path === '/healthz') return reply(res, 200, 'ok');
      if ((req.method === 'GET' || req.method === 'POST') && path === '/edge.crt') {
        const nodeName = String(req.headers.nodename ?? '');
        if (!NODE_NAME.test(nodeName)) return reply(res, 400, `header NodeName "${nodeName}" is not a valid node name`);
        const csr = await readBody(req, MAX_CSR_BYTES);
        const how = this.authenticate(req, nodeName);
        const cert = await this.options.ca.signNodeCsr(csr, nodeName, this.options.edgeCertValidityMs);
        this.options.logger.info({ nodeId: nodeName, peer, how }, 'signed node certificate');
        return reply(res, 200, cert);
      }
      return reply(res, 404, `no route ${req.method} ${path}`);
    } catch (err) {
      const status = err instanceof AuthError ? (err.code === 'ERR_CERTIFICATE' ? 400 : 401) : err instanceof EdgeError && err.code === 'ERR_INVALID_MESSAGE' ? 413 : 500;
      this.options.logger.warn({ err, peer, path, nodeId: req.headers.nodename }, 'certificate request refused');
      return reply(res, status, err instanceof Error ? err.message : String(err));
    }
  }

  /** Renewal by a valid node certificate for the same node, else the join token's JWT. */
  private authenticate(req: IncomingMessage, nodeName: string): 'certificate' | 'token' {
    const socket = req.socket as TLSSocket;
    const peerCert = socket.getPeerCertificate();
    if (peerCert && Object.keys(peerCert).length > 0) {
      if (!socket.authorized) throw new AuthError(`client certificate rejected: ${String(socket.authorizationError)}`, 'ERR_AUTH');
      const certNode = nodeNameFromCommonName(String(peerCert.subject?.CN ?? ''));
      if (certNode !== nodeName) throw new AuthError(`client certificate belongs to "${certNode ?? peerCert.subject?.CN}", not node "${nodeName}"`, 'ERR_AUTH');
      return 'certificate';
    }
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer ')) throw new AuthError('missing "Authorization: Bearer <token>" and no client certificate', 'ERR_AUTH');
    verifyBootstrapJwt(header.slice('Bearer '.length).trim(), this.tokenSecret);
    return 'token';
  }
}

function reply(res: ServerResponse, status: number, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new EdgeError('ERR_INVALID_MESSAGE', `request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
