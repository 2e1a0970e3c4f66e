import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { KUBELET_STREAM_KIND, encodeKubeletStreamOpen } from '../../shared/kubelet-stream.js';
import type { Logger } from '../../shared/logger.js';
import type { CloudMetrics } from '../metrics/cloud-metrics.js';
import { replyAndClose, splice } from './splice.js';

export interface KubeletTunnelsDeps {
  /**
   * Whether this replica holds a session of the node now, asked before a tunnel is let in so that a refusal can
   * name the node at once. Absent, only openStream decides.
   */
  isNodeConnected?(node: string): boolean;
  /**
   * One dynamic channel stream to the node carrying the tunnel's plaintext (shared/kubelet-stream.ts). Throws
   * (code ERR_UNAVAILABLE, with `owner` when another replica holds the node) when it cannot be opened.
   */
  openStream(node: string, header: Uint8Array): Duplex;
  /** Tunnels open to one node at once. */
  maxStreamsPerNode: number;
  /** When not empty, the only kubelet client certificate CNs let in. */
  clientCommonNames: readonly string[];
  /** A tunnel with no byte either way for this long is closed (0: never). */
  idleTimeoutMs: number;
  metrics: CloudMetrics;
  logger: Logger;
}

/** A tunnel let in (call `release` once it ends), or why not. */
export type Admission = { release: () => void } | { status: 429 | 503; reason: string };

/** How long a refused caller may take to read the refusal before its connection is destroyed. */
export const REFUSAL_GRACE_MS = 5_000;

/**
 * What both ways in (the CONNECT listener and the direct TLS listener) do with a tunnel to an edge kubelet: admit
 * it against the node's session and stream limit, check the API server's kubelet client certificate once the
 * tunnel's TLS is up, then relay the plaintext over one channel stream to the node. Counts tunnels per node and
 * keeps every connection, so stop can end them all.
 */
export class KubeletTunnels {
  private readonly streamsPerNode = new Map<string, number>();
  private readonly connections = new Set<Duplex>();
  private total = 0;

  constructor(private readonly deps: KubeletTunnelsDeps) {
    deps.metrics.observeKubeletStreams(() => this.total);
  }

  /** Tunnels open to each node now. */
  streamsOf(node: string): number {
    return this.streamsPerNode.get(node) ?? 0;
  }

  /** Takes one of the node's stream slots unless it is not connected here (503) or has none left (429). */
  admit(node: string): Admission {
    const { metrics } = this.deps;
    if (this.deps.isNodeConnected?.(node) === false) {
      metrics.kubeletStreams.labels('not_connected').inc();
      return { status: 503, reason: `node ${node} is not connected` };
    }
    const open = this.streamsOf(node);
    if (open >= this.deps.maxStreamsPerNode) {
      metrics.kubeletStreams.labels('too_many').inc();
      return { status: 429, reason: `node ${node} has ${open} kubelet streams open (maxStreamsPerNode)` };
    }
    this.streamsPerNode.set(node, open + 1);
    this.total++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = this.streamsOf(node) - 1;
        if (left > 0) this.streamsPerNode.set(node, left);
        else this.streamsPerNode.delete(node);
      },
    };
  }

  /** Keeps `socket` until it closes, for destroyAll. */
  track(socket: Duplex): void {
    this.connections.add(socket);
    socket.once('close', () => this.connections.delete(socket));
  }

  /** Destroys every connection (stop); their streams to the edges go with them. */
  destroyAll(): void {
    for (const socket of this.connections) socket.destroy();
  }

  /**
   * The caller's CN when its client certificate chains to clientCAFile (the context's CA) and passes
   * clientCommonNames. Otherwise answers 401, the kubelet's own answer to a caller it cannot authenticate, logs
   * why, and returns undefined.
   */
  authenticate(tls: TLSSocket, log: Logger): string | undefined {
    const cert = tls.getPeerCertificate();
    const caller = String(cert?.subject?.CN ?? '');
    const names = this.deps.clientCommonNames;
    const refusal = !cert?.raw
      ? 'no client certificate'
      : (peerVerifyError(tls) ?? (names.length > 0 && !names.includes(caller) ? `CN ${JSON.stringify(caller)} is not in clientCommonNames` : undefined));
    if (!refusal) return caller;
    log.warn({ caller, issuer: cert?.issuer?.CN, reason: refusal }, 'kubelet caller refused');
    this.deps.metrics.kubeletStreams.labels('unauthorized').inc();
    this.answer(tls, 401, 'Unauthorized');
    return undefined;
  }

  /** Opens the node's stream and splices the tunnel's plaintext to it; answers 502 with the reason when it cannot. */
  relay(tls: TLSSocket, t: { node: string; target: string; caller: string }, log: Logger): void {
    let stream: Duplex;
    try {
      stream = this.deps.openStream(t.node, encodeKubeletStreamOpen({ kind: KUBELET_STREAM_KIND, target: t.target, caller: t.caller }));
    } catch (err) {
      const e = err as Error & { code?: string; owner?: string };
      log.info({ err: e, caller: t.caller, owner: e.owner }, 'kubelet stream not opened');
      this.deps.metrics.kubeletStreams.labels('failed').inc();
      return this.answer(tls, 502, e.message);
    }
    const { metrics, idleTimeoutMs } = this.deps;
    metrics.kubeletStreams.labels('opened').inc();
    log.debug({ caller: t.caller }, 'kubelet stream open');
    stream.on('error', (err) => log.debug({ err }, 'kubelet stream ended by the edge'));
    stream.once('close', () => log.debug({ caller: t.caller }, 'kubelet stream closed'));
    const { to_edge, from_edge } = metrics.kubeletStreamBytes;
    splice(tls, stream, {
      idleTimeoutMs,
      onIdle: () => {
        metrics.kubeletStreamsIdleClosed.inc();
        log.info({ caller: t.caller, idleTimeoutMs }, 'kubelet stream closed: idle');
      },
      onBytes: (direction, bytes) => (direction === 'ab' ? to_edge : from_edge).inc(bytes),
    });
  }

  /**
   * A complete HTTP/1.1 answer on the tunnel's plaintext, then its end. Past the TLS, only the status and body reach
   * kubectl, through the API server's GenericHttpResponseChecker: it shows the body of a 5xx, except a 503's (then
   * "the server is currently unable to handle the request") and a 429's (a fixed "too many requests"); so a refusal
   * whose text matters is a 502.
   */
  answer(tls: TLSSocket, status: 401 | 429 | 502, text: string): void {
    const reason = { 401: 'Unauthorized', 429: 'Too Many Requests', 502: 'Bad Gateway' }[status];
    const head = `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close`;
    replyAndClose(tls, `${head}\r\n\r\n${text}`, REFUSAL_GRACE_MS);
  }
}

/**
 * OpenSSL's verdict on the peer's chain. tls.Server computes `authorized` only for its own sockets, from this same
 * method (`_tls_wrap.js` onServerSocketSecure), and the CONNECT path wraps a `new TLSSocket`; reading it here serves
 * both. Were it ever missing, every caller would be refused: this fails closed.
 */
function peerVerifyError(socket: TLSSocket): string | undefined {
  const handle = (socket as unknown as { ssl?: { verifyError?: () => (Error & { code?: string }) | null } }).ssl;
  if (typeof handle?.verifyError !== 'function') return 'certificate verification is unavailable in this Node version';
  const err = handle.verifyError();
  return err ? (err.code ?? err.message) : undefined;
}
