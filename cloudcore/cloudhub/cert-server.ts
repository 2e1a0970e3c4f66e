import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../../shared/logger.js';
import { closeServer, listen } from './listening.js';
import { ConnectionDeadlines } from './connection-deadline.js';
import { AuthError, CoreError } from '../../shared/errors.js';
import { CertificateAuthority, nodeNameFromCommonName, type PemPair } from '../../shared/pki/certificate-authority.js';
import { verifyBootstrapJwt, type JoinTokenClaims } from '../../shared/pki/bootstrap-token.js';
import { isValidNodeName } from '../../shared/pki/node-identity.js';
import { SERVER_TLS_OPTIONS } from '../../shared/pki/server-tls.js';
import type { CloudMetrics } from '../metrics/cloud-metrics.js';

const MAX_CSR_BYTES = 16 * 1024;

export interface CertServerOptions {
  ca: CertificateAuthority;
  serving: PemPair;
  address: string;
  port: number;
  edgeCertValidityMs: number;
  /**
   * Time from TCP accept to a complete request (TLS, headers, CSR body); default 15 s, like the hub's
   * handshakeTimeoutMs. Node's defaults (headers 60 s, checked every 30 s) let a client dripping headers hold
   * a connection for up to 90 s.
   */
  requestTimeoutMs?: number;
  logger: Logger;
  metrics: CloudMetrics;
}

type Authenticated = { how: 'certificate' } | { how: 'token'; claims: JoinTokenClaims };

/**
 * KubeEdge's certificate endpoint (cloudhub port 10002): `GET /ca.crt` returns the CA as DER; `GET|POST
 * /edge.crt` with header `NodeName` and a DER CSR body returns the signed certificate as DER. A new edge
 * authenticates with `Authorization: Bearer <JWT of a join token>`; an edge renewing presents its current
 * client certificate instead.
 */
export class CertServer {
  private readonly server: https.Server;
  private readonly tokenSecret: Buffer;
  private readonly deadlines: ConnectionDeadlines;

  constructor(private readonly options: CertServerOptions) {
    this.tokenSecret = options.ca.tokenSecret();
    const timeoutMs = options.requestTimeoutMs ?? 15_000;
    this.deadlines = new ConnectionDeadlines(timeoutMs, (peer, stage) => options.logger.warn({ peer, stage, timeoutMs }, 'certificate request timed out'));
    this.server = https.createServer(
      {
        ...SERVER_TLS_OPTIONS,
        cert: options.serving.certPem,
        key: options.serving.keyPem,
        ca: options.ca.certPem,
        // Asked for, not required: first contact has no certificate yet, renewal does.
        requestCert: true,
        rejectUnauthorized: false,
        handshakeTimeout: timeoutMs,
        headersTimeout: timeoutMs,
        requestTimeout: timeoutMs,
        connectionsCheckingInterval: Math.max(50, Math.min(1_000, timeoutMs / 4)),
      },
      (req, res) => {
        this.deadlines.settle(req.socket);
        void this.handle(req, res);
      },
    );
    // Until the headers are in: Node's headersTimeout starts at the first byte. From there, its header and
    // request timeouts (checked often enough to matter) bound a drip.
    this.server.prependListener('connection', (socket: Socket) => this.deadlines.arm(socket));
    this.server.prependListener('secureConnection', (socket: TLSSocket) => this.deadlines.secured(socket));
    this.server.on('tlsClientError', (err, socket) => {
      options.logger.warn({ err, peer: socket.remoteAddress }, 'certificate server tls handshake failed');
    });
  }

  listen(): Promise<AddressInfo> {
    return listen(this.server, this.options.port, this.options.address);
  }

  close(): Promise<void> {
    this.deadlines.destroyAll();
    return closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const peer = req.socket.remoteAddress;
    const path = (req.url ?? '').split('?')[0];
    try {
      if (req.method === 'GET' && path === '/ca.crt') return reply(res, 200, this.options.ca.certDer);
      if (req.method === 'GET' && path === '/healthz') return reply(res, 200, 'ok');
      if ((req.method === 'GET' || req.method === 'POST') && path === '/edge.crt') return await this.signEdgeCertificate(req, res);
      return reply(res, 404, `no route ${req.method} ${path}`);
    } catch (err) {
      const status = statusOf(err);
      const header = String(req.headers.nodename ?? '');
      const nodeId = isValidNodeName(header) ? header : undefined;
      this.options.logger.warn({ err, peer, path, nodeId, ...(nodeId ? {} : { nodeNameHeader: header.slice(0, 300) }), status }, 'certificate request refused');
      this.options.metrics.certificateRequestsRefused.labels(err instanceof CoreError ? err.code : 'ERR_UNKNOWN').inc();
      return reply(res, status, err instanceof Error ? err.message : String(err));
    }
  }

  private async signEdgeCertificate(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const nodeName = String(req.headers.nodename ?? '');
    if (!isValidNodeName(nodeName))
      throw new AuthError(`header NodeName "${nodeName.slice(0, 300)}" is not a valid node name (lower-case DNS subdomain)`, 'ERR_CERTIFICATE');
    const csr = await readBody(req, MAX_CSR_BYTES);
    const auth = this.authenticate(req, nodeName);
    const cert = await this.options.ca.signNodeCsr(csr, nodeName, this.options.edgeCertValidityMs);
    // Counted after signing, so a bad CSR wastes no use; a certificate signed but refused is never sent.
    const claims = auth.how === 'token' ? auth.claims : undefined;
    const limit = claims?.limit;
    const used = claims && limit ? await this.options.ca.tokenUses.consume(limit.jti, limit.uses, claims.expiresAt) : undefined;
    this.options.logger.info(
      { nodeId: nodeName, peer: req.socket.remoteAddress, how: auth.how, ...(limit ? { jti: limit.jti, use: `${used}/${limit.uses}` } : {}) },
      'signed node certificate',
    );
    this.options.metrics.certificatesIssued.labels(auth.how === 'token' ? 'join' : 'renewal').inc();
    reply(res, 200, cert);
  }

  /** Renewal by a valid node certificate for the same node, else the join token's JWT (and its scope). */
  private authenticate(req: IncomingMessage, nodeName: string): Authenticated {
    const socket = req.socket as TLSSocket;
    const peerCert = socket.getPeerCertificate();
    if (peerCert && Object.keys(peerCert).length > 0) {
      if (!socket.authorized) throw new AuthError(`client certificate rejected: ${String(socket.authorizationError)}`, 'ERR_AUTH');
      const certNode = nodeNameFromCommonName(String(peerCert.subject?.CN ?? ''));
      if (certNode !== nodeName) throw new AuthError(`client certificate belongs to "${certNode ?? peerCert.subject?.CN}", not node "${nodeName}"`, 'ERR_AUTH');
      return { how: 'certificate' };
    }
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer ')) throw new AuthError('missing "Authorization: Bearer <token>" and no client certificate', 'ERR_AUTH');
    const claims = verifyBootstrapJwt(header.slice('Bearer '.length).trim(), this.tokenSecret);
    if (claims.nodeName !== undefined && claims.nodeName !== nodeName) {
      throw new AuthError(`join token is bound to node "${claims.nodeName}", not "${nodeName}"`, 'ERR_TOKEN_WRONG_NODE');
    }
    return { how: 'token', claims };
  }
}

function statusOf(err: unknown): number {
  if (err instanceof AuthError) {
    if (err.code === 'ERR_CERTIFICATE') return 400;
    return err.code === 'ERR_TOKEN_WRONG_NODE' || err.code === 'ERR_TOKEN_USED_UP' ? 403 : 401;
  }
  return err instanceof CoreError && err.code === 'ERR_INVALID_MESSAGE' ? 413 : 500;
}

function reply(res: ServerResponse, status: number, body: string | Buffer): void {
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new CoreError('ERR_INVALID_MESSAGE', `request body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
