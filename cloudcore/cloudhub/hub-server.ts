import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../../shared/logger.js';
import { closeServer, listen } from './listening.js';
import { nodeNameFromCommonName, type PemPair } from '../../shared/pki/certificate-authority.js';
import { SERVER_TLS_OPTIONS } from '../../shared/pki/server-tls.js';
import { WebSocketConnection, acceptUpgrade } from './websocket-connection.js';
import { ConnectionDeadlines, peerOf } from './connection-deadline.js';
import type { RefusedReason } from '../metrics/cloud-metrics.js';

export interface EdgeConnection {
  ws: WebSocketConnection;
  nodeName: string;
  peer: string;
  certNotAfterMs: number;
}

export type Admission = { ok: true } | { ok: false; status: number; reason: string };

export interface HubServerOptions {
  serving: PemPair;
  caPem: string;
  address: string;
  port: number;
  /** Largest WebSocket message; the channel batches at most ~64 KiB, so anything far beyond is hostile. */
  maxPayloadBytes: number;
  /** From TCP accept to a valid upgrade request: TLS and the HTTP upgrade share this one deadline. */
  handshakeTimeoutMs: number;
  logger: Logger;
  admit(nodeName: string): Admission;
  onConnection(connection: EdgeConnection): void;
  onRefused?(reason: RefusedReason): void;
}

/**
 * The edge-facing WebSocket endpoint. TLS requires a client certificate from the edge CA (a missing, foreign
 * or expired one fails the handshake and is logged with the peer); the node name comes from the certificate
 * CN `system:node:<name>`, never from a header the client could choose.
 */
export class HubServer {
  private readonly server: https.Server;
  private readonly deadlines: ConnectionDeadlines;

  constructor(private readonly options: HubServerOptions) {
    this.deadlines = new ConnectionDeadlines(options.handshakeTimeoutMs, (peer, stage) => {
      options.logger.warn(
        { peer, stage: stage === 'request' ? 'websocket upgrade' : stage, handshakeTimeoutMs: options.handshakeTimeoutMs },
        'edge handshake timed out',
      );
      options.onRefused?.('handshake_timeout');
    });
    this.server = https.createServer({
      cert: options.serving.certPem,
      key: options.serving.keyPem,
      ca: options.caPem,
      requestCert: true,
      // Verified below instead: with automatic rejection Node drops the reason and logs only "socket hang up".
      rejectUnauthorized: false,
      ...SERVER_TLS_OPTIONS,
      handshakeTimeout: options.handshakeTimeoutMs,
    });
    this.server.prependListener('connection', (socket: Socket) => this.deadlines.arm(socket));
    // Runs before the HTTP machinery reads a byte: an unverified client never gets a request parsed.
    this.server.prependListener('secureConnection', (socket: TLSSocket) => {
      this.deadlines.secured(socket);
      if (socket.authorized) return;
      options.logger.warn(
        { peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: String(socket.authorizationError ?? 'no client certificate') },
        'edge tls handshake refused',
      );
      options.onRefused?.('certificate');
      socket.destroy();
    });
    this.server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
      options.logger.warn({ peer: socket.remoteAddress, reason: err.code ?? err.message, err }, 'edge tls handshake failed');
      options.onRefused?.('tls_handshake');
    });
    this.server.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('this endpoint speaks WebSocket only\n');
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket as TLSSocket, head));
  }

  listen(): Promise<AddressInfo> {
    return listen(this.server, this.options.port, this.options.address, 4096);
  }

  close(): Promise<void> {
    this.deadlines.destroyAll();
    return closeServer(this.server);
  }

  private upgrade(req: IncomingMessage, socket: TLSSocket, head: Buffer): void {
    const peer = peerOf(socket);
    this.deadlines.settle(socket);
    // Measured: the first read of a peer certificate costs ~120 us with getPeerCertificate() and ~200 us with
    // getPeerX509Certificate() (OpenSSL 3 does lazy per-certificate work); read it once, keep two fields.
    const cert = socket.getPeerCertificate();
    const cn = String(cert?.subject?.CN ?? '');
    const nodeName = nodeNameFromCommonName(cn);
    if (!socket.authorized || !nodeName) {
      this.options.logger.warn({ peer, cn, authorizationError: socket.authorizationError }, 'edge refused: not a node certificate');
      this.options.onRefused?.('certificate');
      return refuse(socket, 403, 'client certificate is not a node certificate (CN system:node:<name>)');
    }
    const admission = this.options.admit(nodeName);
    if (!admission.ok) {
      this.options.logger.warn({ peer, nodeId: nodeName, reason: admission.reason }, 'edge refused');
      this.options.onRefused?.('node_limit');
      return refuse(socket, admission.status, admission.reason);
    }
    const accepted = acceptUpgrade(req);
    if ('error' in accepted) {
      this.options.logger.warn({ peer, nodeId: nodeName, reason: accepted.error }, 'edge refused: bad websocket upgrade');
      this.options.onRefused?.('bad_upgrade');
      return refuse(socket, 400, accepted.error);
    }
    const certNotAfterMs = new Date(cert.valid_to).getTime();
    socket.write(accepted.response);
    const ws = new WebSocketConnection(socket, this.options.maxPayloadBytes);
    this.options.onConnection({ ws, nodeName, peer, certNotAfterMs });
    ws.push(head);
  }
}

function refuse(socket: Duplex, status: number, reason: string): void {
  const body = `${reason}\n`;
  const text = status === 403 ? 'Forbidden' : status === 400 ? 'Bad Request' : 'Service Unavailable';
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
