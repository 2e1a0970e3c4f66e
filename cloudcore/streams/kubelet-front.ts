import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket, type SecureContext } from 'node:tls';
import { asError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { connectReply, parseConnectHead, type ConnectTarget } from './connect-head.js';
import { REFUSAL_GRACE_MS, type KubeletTunnels } from './kubelet-tunnels.js';
import { replyAndClose, splice } from './splice.js';

export interface KubeletFrontDeps {
  /** Edge nodes by kubelet address (KubeletTargets over the edge Node informer). */
  targets: { nodesForTarget(host: string, port: number): readonly string[] };
  /**
   * Admission, the kubelet client check and the relay, shared with the direct listener. Its admission is asked
   * before the CONNECT is answered, so a refusal's reason phrase reaches kubectl
   * (`proxy error … code 503: 503 node edge-3 is not connected`, §1.5).
   */
  tunnels: KubeletTunnels;
  /** The TLS context naming `host`, with the kubelet client CA (KubeletCerts). */
  contextFor(host: string, node: string): Promise<SecureContext>;
  limits: {
    headTimeoutMs: number;
    maxHeadBytes: number;
    dialTimeoutMs: number;
    directDial: boolean;
  };
  logger: Logger;
  /** Opens a direct connection (tests may point it elsewhere). */
  dial?: (host: string, port: number) => Socket;
}

/**
 * The kubelet front: takes one connection from the API server's egress dialer (already authenticated as the
 * proxy's client), reads the CONNECT, and either splices it to a non-edge target or, for an edge kubelet,
 * answers 200, ends the tunnel's TLS itself with a certificate for exactly that address, checks the kubelet
 * client certificate, and relays the plaintext over one channel stream to the node. It parses no HTTP after the
 * CONNECT head: requests of a keep-alive connection, and the bytes after a 101, all pass unchanged.
 */
export class KubeletFront {
  private readonly logger: Logger;
  private readonly tunnels: KubeletTunnels;

  constructor(private readonly deps: KubeletFrontDeps) {
    this.logger = deps.logger;
    this.tunnels = deps.tunnels;
  }

  /** Serves one CONNECT connection; `proxyCaller` names who reached the listener (egress client CN), for logs. */
  handle(socket: Duplex, proxyCaller: string): void {
    this.tunnels.track(socket);
    socket.on('error', (err) => this.logger.debug({ err, proxyCaller }, 'kubelet front connection error'));
    const { headTimeoutMs, maxHeadBytes } = this.deps.limits;
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.off('data', onData);
      this.refuse(socket, 408, 'CONNECT head not received in time', { proxyCaller });
    }, headTimeoutMs);
    socket.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const head = parseConnectHead(buffered, maxHeadBytes);
      if (head.state === 'incomplete') return;
      socket.off('data', onData);
      socket.pause();
      clearTimeout(timer);
      if (head.state === 'refused') return this.refuse(socket, head.status, head.reason, { proxyCaller });
      // The egress dialer waits for the 200 before its ClientHello. Bytes sent earlier would be lost when the TLS
      // layer takes over the socket's handle, so they are refused rather than guessed at.
      if (head.rest.length > 0) return this.refuse(socket, 400, 'data sent before the CONNECT was answered', { proxyCaller, target: head.target });
      this.route(socket, head, proxyCaller).catch((err) => {
        this.logger.error({ err, target: head.target }, 'kubelet front failed');
        socket.destroy();
      });
    };
    socket.on('data', onData);
  }

  private async route(socket: Duplex, to: ConnectTarget, proxyCaller: string): Promise<void> {
    const { limits } = this.deps;
    const nodes = this.deps.targets.nodesForTarget(to.host, to.port);
    const at = { proxyCaller, target: to.target };
    if (nodes.length === 0) {
      if (limits.directDial) return this.dialDirect(socket, to, proxyCaller);
      return this.refuse(socket, 403, `${to.target} is no edge kubelet and directDial is off`, at);
    }
    if (nodes.length > 1) return this.refuse(socket, 409, `${to.target} is the kubelet address of several edge nodes: ${nodes.join(', ')}`, at);
    const node = nodes[0]!;
    const admitted = this.tunnels.admit(node);
    if ('status' in admitted) return this.refuse(socket, admitted.status, admitted.reason, { ...at, nodeId: node });
    const { release } = admitted;
    socket.once('close', release);
    let context: SecureContext;
    try {
      context = await this.deps.contextFor(to.host, node);
    } catch (err) {
      this.logger.error({ err, nodeId: node, target: to.target }, 'kubelet serving certificate not minted');
      return this.refuse(socket, 500, `no serving certificate for ${to.host}: ${asError(err).message}`, at);
    }
    if (socket.destroyed) return;
    socket.write(connectReply(200, 'Connection established'));
    this.terminate(socket, { ...to, node, context, proxyCaller, release });
  }

  /** TLS inside the tunnel, as the kubelet at that address would serve it (§1.4). */
  private terminate(socket: Duplex, t: ConnectTarget & { node: string; context: SecureContext; proxyCaller: string; release: () => void }): void {
    const log = this.logger.child({ nodeId: t.node, target: t.target, proxyCaller: t.proxyCaller });
    const tls = new TLSSocket(socket, {
      isServer: true,
      secureContext: t.context,
      requestCert: true,
      // Checked below, so a refusal is logged with the caller's name and the reason.
      rejectUnauthorized: false,
      // HTTP/1.1 only: the upgrades (SPDY) need it, and a plain request offered h2 then stays on HTTP/1.1 too.
      ALPNProtocols: ['http/1.1'],
    });
    this.tunnels.track(tls);
    const timer = setTimeout(() => {
      log.warn('kubelet tunnel handshake timed out');
      tls.destroy();
    }, this.deps.limits.headTimeoutMs);
    let secured = false;
    tls.on('error', (err) => {
      // A handshake the API server broke off is mostly our certificate not trusted (--kubelet-certificate-authority).
      if (secured) log.debug({ err }, 'kubelet tunnel error');
      else log.warn({ err }, 'kubelet tunnel handshake failed');
    });
    tls.once('close', () => {
      clearTimeout(timer);
      t.release();
      socket.destroy();
    });
    tls.once('secure', () => {
      secured = true;
      clearTimeout(timer);
      const caller = this.tunnels.authenticate(tls, log);
      if (caller !== undefined) this.tunnels.relay(tls, { node: t.node, target: t.target, caller }, log);
    });
  }

  private dialDirect(socket: Duplex, to: ConnectTarget, proxyCaller: string): void {
    const at = { proxyCaller, target: to.target };
    const upstream = (this.deps.dial ?? ((host, port) => netConnect({ host, port })))(to.host, to.port);
    let connected = false;
    const timer = setTimeout(() => {
      upstream.destroy();
      this.refuse(socket, 504, `dialing ${to.target} timed out`, at);
    }, this.deps.limits.dialTimeoutMs);
    const abandon = (): void => {
      clearTimeout(timer);
      upstream.destroy();
    };
    socket.once('close', abandon);
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) return this.logger.debug({ err, ...at }, 'direct tunnel error');
      clearTimeout(timer);
      this.refuse(socket, 502, `dialing ${to.target} failed: ${err.code ?? err.message}`, at);
    });
    upstream.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      socket.off('close', abandon);
      this.logger.debug(at, 'direct tunnel open');
      socket.write(connectReply(200, 'Connection established'));
      socket.resume();
      splice(socket, upstream);
    });
  }

  private refuse(socket: Duplex, status: number, reason: string, fields: Record<string, unknown>): void {
    // A node that is away or busy is routine; a bad target or head says something about the caller's setup.
    const level = status === 503 || status === 429 ? 'debug' : 'info';
    this.logger[level]({ ...fields, status, reason }, 'kubelet connect refused');
    if (socket.destroyed) return;
    replyAndClose(socket, connectReply(status, reason), REFUSAL_GRACE_MS);
  }
}
