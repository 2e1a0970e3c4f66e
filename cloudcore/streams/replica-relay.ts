import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, createServer, type Server, type TLSSocket } from 'node:tls';
import { ConfigError, CoreError } from '../../shared/errors.js';
import { decodeKubeletStreamOpen } from '../../shared/kubelet-stream.js';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import type { CertificateAuthority, PemPair } from '../../shared/pki/certificate-authority.js';
import { checkReplicaServer, isReplicaCertificate, replicaOf } from '../../shared/pki/replica-peers.js';
import { SERVER_TLS_OPTIONS } from '../../shared/pki/server-tls.js';
import { CloudModule } from '../contracts/addresses.js';
import { CloudMetrics } from '../metrics/cloud-metrics.js';
import { RelayedStream, relayResponse } from './relayed-stream.js';
import { replyAndClose, splice } from './splice.js';
import type { StreamsConfig } from './streams-config.js';

export interface ReplicaRelayDeps {
  config: StreamsConfig;
  /** The hub CA (CloudHub's, once started): it signs the replicas' client certificates and serving certificates. */
  hubCa: () => CertificateAuthority;
  /** This replica's client certificate for the others: one per process, shared with the Router. */
  replicaCert: () => Promise<PemPair>;
  /** The relay's serving certificate: the hub's (CN=cloudcore, from the hub CA), which the other replicas check. */
  tls: { certFile: string; keyFile: string };
  /** CloudHub: the node's session on this replica. */
  hub: { holds(node: string): boolean; openStream(node: string, header: Uint8Array): Duplex };
  /** The daemon's metrics; a private set when absent (tests). */
  metrics?: CloudMetrics;
  logger: Logger;
}

/** The replica holding a node's session, and its relay's address from its report. */
export interface NodeOwner {
  replica: string;
  address: string;
}

/** The first line on a relay connection: `{"node":…,"header":<base64 KubeletStreamOpen>}\n`. */
interface RelayHead {
  node: string;
  header: string;
}

/** Far more than a node name and a KubeletStreamOpen (4 KiB at most) need. */
const MAX_HEAD_BYTES = 16_384;
/** How long a refused caller may take to read the refusal. */
const REFUSAL_GRACE_MS = 5_000;

/**
 * The kubelet front across replicas (docs/kubelet-front.md "Several replicas"). The front of a replica without
 * the node's session opens the stream here instead of on its channel: `open` dials the relay of the replica
 * holding the session, with this replica's client certificate, and sends one head line naming the node and the
 * stream's header. That relay checks the caller is a replica, opens the stream on the node's session and splices
 * it to the connection. The tunnel's plaintext then crosses this link as it would a channel stream, so a refusal
 * on the far side is an HTTP response the API server reads as the kubelet's. A relay never passes a stream on.
 */
export class ReplicaRelay implements Module {
  readonly name = CloudModule.streams;
  /** The listener's port once started. */
  port = 0;
  private server: Server | undefined;
  private own: PemPair | undefined;
  private caPem = '';
  private readonly connections = new Set<Duplex>();
  private readonly logger: Logger;
  private readonly metrics: CloudMetrics;
  /** Streams open here for other replicas. */
  private served = 0;

  constructor(private readonly deps: ReplicaRelayDeps) {
    this.logger = deps.logger;
    this.metrics = deps.metrics ?? new CloudMetrics();
    this.metrics.observeKubeletStreams(() => this.served);
  }

  async start(): Promise<void> {
    const { replica } = this.deps.config;
    const ca = this.deps.hubCa();
    this.caPem = ca.certPem;
    const hubCa = new X509Certificate(ca.certPem);
    this.own = await this.deps.replicaCert();
    const server = createServer(
      {
        ...SERVER_TLS_OPTIONS,
        cert: readFileSync(this.deps.tls.certFile),
        key: readFileSync(this.deps.tls.keyFile),
        // Only the hub CA: anyone else fails the handshake. Edges' certificates pass it and are refused below.
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: this.deps.config.headTimeoutMs,
      },
      (socket) => this.serve(socket, hubCa),
    );
    server.on('tlsClientError', (err, socket) => this.logger.warn({ err, remote: socket.remoteAddress }, 'replica relay refused a client'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new ConfigError([`modules.streams.replica: cannot listen on ${replica.address}:${replica.port}: ${err.code ?? err.message}`])),
      );
      server.listen(replica.port, replica.address, () => resolve());
    });
    this.server = server;
    this.port = (server.address() as { port: number }).port;
    this.logger.info({ address: `${replica.address}:${this.port}` }, 'kubelet replica relay up');
  }

  /** Stops listening and ends every relayed stream, both the ones served here and the ones opened to others. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    for (const socket of this.connections) socket.destroy();
    await closed;
  }

  /**
   * A stream to `node` through the relay of the replica holding it. Returned at once: the head is buffered until
   * the connection is up, and a connection that fails before that reads as a 502 naming the replica.
   */
  open(node: string, header: Uint8Array, owner: NodeOwner): Duplex {
    if (!this.own) throw new CoreError('ERR_UNAVAILABLE', 'the kubelet replica relay has not started');
    const { host, port } = splitAddress(owner.address);
    const socket = tlsConnect({ host, port, ca: this.caPem, cert: this.own.certPem, key: this.own.keyPem, checkServerIdentity: checkReplicaServer });
    this.track(socket);
    const head: RelayHead = { node, header: Buffer.from(header).toString('base64') };
    socket.write(`${JSON.stringify(head)}\n`);
    const log = this.logger.child({ nodeId: node, replica: owner.replica });
    log.debug({ address: owner.address }, 'kubelet stream passed to the replica holding the node');
    return new RelayedStream(socket, {
      connectTimeoutMs: this.deps.config.headTimeoutMs,
      failure: (err) => {
        log.warn({ err, address: owner.address }, 'kubelet replica relay not reached');
        return `node ${node} is held by replica ${owner.replica}, which did not answer at ${owner.address}: ${err.message}`;
      },
    });
  }

  /** One connection from another replica: its certificate, then the head, then the node's stream. */
  private serve(socket: TLSSocket, hubCa: X509Certificate): void {
    this.track(socket);
    socket.on('error', (err) => this.logger.debug({ err }, 'replica relay connection error'));
    const peer = socket.getPeerCertificate();
    if (!isReplicaCertificate(peer, hubCa)) {
      this.logger.warn({ caller: peer?.subject?.CN, remote: socket.remoteAddress }, 'replica relay refused a caller that is no replica');
      return replyAndClose(socket, relayResponse(403, 'the replica relay takes other cloudcore replicas only'), REFUSAL_GRACE_MS);
    }
    const from = replicaOf(peer);
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.off('data', onData);
      this.refuse(socket, 400, 'relay head not received in time', { from });
    }, this.deps.config.headTimeoutMs);
    socket.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(0x0a);
      if (end < 0 && buffered.length <= MAX_HEAD_BYTES) return;
      socket.off('data', onData);
      socket.pause();
      clearTimeout(timer);
      if (end < 0 || end > MAX_HEAD_BYTES) return this.refuse(socket, 400, `relay head exceeds ${MAX_HEAD_BYTES} bytes`, { from });
      // Bytes after the head are the tunnel's first (the API server's request): read again by the splice.
      if (end + 1 < buffered.length) socket.unshift(buffered.subarray(end + 1));
      this.relay(socket, buffered.subarray(0, end), from);
    };
    socket.on('data', onData);
  }

  private relay(socket: TLSSocket, line: Buffer, from: string): void {
    const head = parseHead(line);
    if ('error' in head) return this.refuse(socket, 400, head.error, { from });
    const { node, header, open } = head;
    const log = this.logger.child({ nodeId: node });
    // Never passed on again: the replica that sent it found no session on its side, so a stale owner record
    // would only bounce it back.
    if (!this.deps.hub.holds(node)) {
      this.metrics.kubeletStreams.labels('not_connected').inc();
      return this.refuse(socket, 502, `node ${node} is not connected to any cloudcore replica`, { from, nodeId: node });
    }
    let stream: Duplex;
    try {
      stream = this.deps.hub.openStream(node, header);
    } catch (err) {
      this.metrics.kubeletStreams.labels('failed').inc();
      return this.refuse(socket, 502, (err as Error).message, { from, nodeId: node });
    }
    log.info({ from, target: open.target, caller: open.caller }, 'kubelet stream relayed for another replica');
    this.metrics.kubeletStreams.labels('served_for_replica').inc();
    this.served++;
    stream.once('close', () => this.served--);
    stream.on('error', (err) => log.debug({ err }, 'relayed kubelet stream ended by the edge'));
    // The replica that took the tunnel watches it for idleness too; this one ends with it either way.
    const { idleTimeoutMs } = this.deps.config;
    splice(socket, stream, { idleTimeoutMs, onIdle: () => log.info({ from, idleTimeoutMs }, 'relayed kubelet stream closed: idle') });
  }

  private refuse(socket: TLSSocket, status: 400 | 502, reason: string, fields: Record<string, unknown>): void {
    this.logger.info({ ...fields, status, reason }, 'kubelet stream not relayed');
    if (!socket.destroyed) replyAndClose(socket, relayResponse(status, reason), REFUSAL_GRACE_MS);
  }

  private track(socket: Duplex): void {
    this.connections.add(socket);
    socket.once('close', () => this.connections.delete(socket));
  }
}

/** The head line, or what is wrong with it. */
function parseHead(line: Buffer): { node: string; header: Uint8Array; open: { target: string; caller: string } } | { error: string } {
  let value: Partial<RelayHead> | null;
  try {
    value = JSON.parse(line.toString('utf8')) as Partial<RelayHead> | null;
  } catch (err) {
    return { error: `relay head is not JSON: ${(err as Error).message}` };
  }
  if (typeof value?.node !== 'string' || value.node.length === 0 || value.node.length > 253) return { error: 'relay head has no node name' };
  if (typeof value.header !== 'string') return { error: 'relay head has no stream header' };
  const header = Buffer.from(value.header, 'base64');
  const open = decodeKubeletStreamOpen(header);
  if ('error' in open) return { error: `relay head: ${open.error}` };
  return { node: value.node, header, open };
}

/** `host:port` or `[v6]:port` as reported. */
function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(address.slice(at + 1)) };
}
