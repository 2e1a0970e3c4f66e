import { createServer, type SecureContext, type Server, type TLSSocket } from 'node:tls';
import { CoreError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { SERVER_TLS_OPTIONS } from '../../shared/pki/server-tls.js';
import type { KubeletTunnels } from './kubelet-tunnels.js';

export interface KubeletDirectDeps {
  /** Edge nodes by kubelet address (KubeletTargets): a node's Hostname at this listener's port names it. */
  targets: { nodesForTarget(host: string, port: number): readonly string[] };
  /** The listener's port once bound: the kubeletPort the edges report. */
  port: () => number;
  /** The TLS context naming `host`, with the kubelet client CA (KubeletCerts). */
  contextFor(host: string, node: string): Promise<SecureContext>;
  /** Admission, the kubelet client check and the relay, shared with the CONNECT listener. */
  tunnels: KubeletTunnels;
  /** PEM of clientCAFile, also in every minted context. */
  clientCaPem: string;
  handshakeTimeoutMs: number;
  logger: Logger;
}

/**
 * The direct way in (listener 2), for API servers whose flags cannot change (no egress selector): each edge node's
 * Hostname resolves to cloudcore (per-node DNS, e.g. a wildcard record) and the API server, preferring Hostname,
 * dials `<hostname>:<kubeletPort>` here. The name arrives as SNI only: Go sends SNI for a host name and none for an
 * IP (docs/kubeedge-stream-facts.md §1.4), and an IP would be cloudcore's own for every node anyway. So the
 * SNICallback maps the name to the one edge node reporting it and presents that node's minted certificate; no SNI,
 * or a name no single edge node reports, fails the handshake. After it, what the CONNECT path does after its TLS.
 */
export function createKubeletDirectServer(deps: KubeletDirectDeps): Server {
  const server = createServer(
    {
      ...SERVER_TLS_OPTIONS,
      // No certificate outside SNICallback: a ClientHello without SNI finds none and the handshake fails.
      ca: deps.clientCaPem,
      requestCert: true,
      // Checked after the handshake, so a refusal is logged with the caller's name and the reason.
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
      handshakeTimeout: deps.handshakeTimeoutMs,
      SNICallback: (servername, done) => {
        const found = nodeOf(deps, servername);
        if (typeof found !== 'string') return done(found, undefined);
        deps.contextFor(servername, found).then(
          (context) => done(null, context),
          (err) => done(new CoreError('ERR_CERTIFICATE', `no serving certificate for ${servername}`, { cause: err }), undefined),
        );
      },
    },
    (tls) => serve(deps, tls),
  );
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    const servername = socket.servername || undefined;
    const reason = servername ? err.message : 'no server name (SNI): the caller dialled an IP address, which cannot tell edge nodes apart here';
    deps.logger.info({ servername, remote: socket.remoteAddress, code: err.code, reason }, 'kubelet direct handshake refused');
  });
  return server;
}

/** The one edge node reporting `servername` at the listener's port, or the error that refuses the handshake. */
function nodeOf(deps: KubeletDirectDeps, servername: string): string | CoreError {
  const nodes = deps.targets.nodesForTarget(servername, deps.port());
  if (nodes.length === 1) return nodes[0]!;
  const at = `${servername}:${deps.port()}`;
  if (nodes.length === 0) return new CoreError('ERR_NOT_FOUND', `${at} is the kubelet address of no edge node`);
  return new CoreError('ERR_NOT_FOUND', `${at} is the kubelet address of several edge nodes: ${nodes.join(', ')}`);
}

function serve(deps: KubeletDirectDeps, tls: TLSSocket): void {
  const { tunnels } = deps;
  tunnels.track(tls);
  const servername = String(tls.servername);
  const target = `${servername}:${deps.port()}`;
  // Looked up again: the node may have gone (or its address changed) since the handshake.
  const node = nodeOf(deps, servername);
  const log = deps.logger.child(typeof node === 'string' ? { target, nodeId: node } : { target });
  tls.on('error', (err) => log.debug({ err }, 'kubelet tunnel error'));
  const caller = tunnels.authenticate(tls, log);
  if (caller === undefined) return;
  if (typeof node !== 'string') {
    log.info({ caller, reason: node.message }, 'kubelet direct tunnel refused');
    return tunnels.answer(tls, 502, node.message);
  }
  const admitted = tunnels.admit(node);
  if ('status' in admitted) {
    log.debug({ caller, status: admitted.status, reason: admitted.reason }, 'kubelet direct tunnel refused');
    // Without a CONNECT there is no reason phrase to carry "not connected": only a 502's body reaches kubectl.
    return tunnels.answer(tls, admitted.status === 503 ? 502 : admitted.status, admitted.reason);
  }
  tls.once('close', admitted.release);
  tunnels.relay(tls, { node, target, caller }, log);
}
