import { lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { ConfigError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { SERVER_TLS_OPTIONS } from '../../shared/pki/server-tls.js';
import { CloudModule } from '../contracts/addresses.js';
import { CloudMetrics } from '../metrics/cloud-metrics.js';
import { KubeletCerts } from './kubelet-certs.js';
import { createKubeletDirectServer, type KubeletDirectDeps } from './kubelet-direct.js';
import { KubeletFront, type KubeletFrontDeps } from './kubelet-front.js';
import { KubeletTunnels, type KubeletTunnelsDeps } from './kubelet-tunnels.js';
import type { StreamsConfig } from './streams-config.js';

export interface StreamsDeps extends Pick<KubeletFrontDeps, 'targets' | 'dial'>, Pick<KubeletTunnelsDeps, 'isNodeConnected' | 'openStream'> {
  config: StreamsConfig;
  /** The hub CA (CloudHub's, once started): it signs kubelet serving certificates unless servingCaCertFile is set. */
  hubCa: () => CertificateAuthority;
  /** The CONNECT listener's certificate unless connect.certFile is set: the hub's serving certificate. */
  tls: { certFile: string; keyFile: string };
  /** The daemon's metrics; a private set when absent (tests). */
  metrics?: CloudMetrics;
  logger: Logger;
}

/**
 * Streams (issue 13; KubeEdge's cloudStream): the kubelet API of edge nodes for kube-apiserver. Listens for the
 * egress selector's HTTP CONNECTs (mutual TLS over TCP, and optionally a unix socket) and hands each connection
 * to the KubeletFront; with `direct.enable`, also for direct TLS by node host name (createKubeletDirectServer).
 * Both share one KubeletTunnels: one stream count per node, one client check. Starts after CloudHub, whose CA and
 * serving certificate it uses by default.
 *
 * Several replicas: for a node held by another live replica, the `openStream` cloudcore.ts gives returns a
 * connection to that replica's relay (replica-relay.ts), so both listeners serve it (docs/kubelet-front.md).
 */
export class Streams implements Module {
  readonly name = CloudModule.streams;
  /** The CONNECT listener's port once started. */
  port = 0;
  /** The direct TLS listener's port once started (0: not enabled). */
  directPort = 0;
  private tunnelSet: KubeletTunnels | undefined;
  private readonly servers: Array<TlsServer | NetServer> = [];
  private readonly logger: Logger;

  constructor(private readonly deps: StreamsDeps) {
    this.logger = deps.logger;
  }

  /** The tunnels of both listeners, once started (tests read their counts). */
  get tunnels(): KubeletTunnels | undefined {
    return this.tunnelSet;
  }

  async start(): Promise<void> {
    const { config } = this.deps;
    const clientCaPem = this.read(config.clientCAFile, 'clientCAFile');
    const servingCa = config.servingCaCertFile
      ? await CertificateAuthority.fromPem(this.read(config.servingCaCertFile, 'servingCaCertFile'), this.read(config.servingCaKeyFile, 'servingCaKeyFile'))
      : this.deps.hubCa();
    const certs = new KubeletCerts({ ca: servingCa, clientCaPem, validityMs: config.servingCertValidityDays * 86_400_000 });
    const contextFor = (host: string, node: string) => certs.contextFor(host, node);
    const tunnels = (this.tunnelSet = new KubeletTunnels({
      isNodeConnected: this.deps.isNodeConnected,
      openStream: this.deps.openStream,
      maxStreamsPerNode: config.maxStreamsPerNode,
      clientCommonNames: config.clientCommonNames,
      idleTimeoutMs: config.idleTimeoutMs,
      metrics: this.deps.metrics ?? new CloudMetrics(),
      logger: this.logger,
    }));
    const front = new KubeletFront({
      targets: this.deps.targets,
      tunnels,
      dial: this.deps.dial,
      contextFor,
      limits: { headTimeoutMs: config.headTimeoutMs, maxHeadBytes: config.maxHeadBytes, dialTimeoutMs: config.dialTimeoutMs, directDial: config.directDial },
      logger: this.logger,
    });
    const server = createTlsServer(
      {
        ...SERVER_TLS_OPTIONS,
        // Interactive streams (exec, attach) write small SPDY frames: without this a frame written in two pieces
        // waits for the apiserver's delayed ACK (40 ms). HTTP servers default to noDelay; a TLS server does not.
        noDelay: true,
        cert: this.read(config.connect.certFile || this.deps.tls.certFile, 'connect.certFile'),
        key: this.read(config.connect.keyFile || this.deps.tls.keyFile, 'connect.keyFile'),
        ca: config.connect.clientCAFile ? this.read(config.connect.clientCAFile, 'connect.clientCAFile') : clientCaPem,
        // The egress dialer's client certificate is required (it always sends one with https://, §2).
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: config.headTimeoutMs,
      },
      (socket) => front.handle(socket, String(socket.getPeerCertificate().subject?.CN ?? '')),
    );
    server.on('tlsClientError', (err, socket) => this.logger.warn({ err, remote: socket.remoteAddress }, 'connect listener refused a client'));
    await this.listen(server, () => server.listen(config.connect.port, config.connect.address), `${config.connect.address}:${config.connect.port}`);
    this.port = (server.address() as { port: number }).port;
    if (config.connect.socketPath) {
      removeStaleSocket(config.connect.socketPath);
      const uds = createNetServer((socket) => front.handle(socket, 'unix socket'));
      await this.listen(uds, () => uds.listen(config.connect.socketPath), config.connect.socketPath);
    }
    this.logger.info(
      {
        address: `${config.connect.address}:${this.port}`,
        socketPath: config.connect.socketPath || undefined,
        servingCa: config.servingCaCertFile || 'hub CA',
      },
      'kubelet connect listener up',
    );
    if (config.direct.enable) await this.startDirect({ tunnels, contextFor, clientCaPem });
  }

  private async startDirect(shared: Pick<KubeletDirectDeps, 'tunnels' | 'contextFor' | 'clientCaPem'>): Promise<void> {
    const { config } = this.deps;
    const { address, port } = config.direct;
    const server = createKubeletDirectServer({
      ...shared,
      targets: this.deps.targets,
      port: () => this.directPort,
      handshakeTimeoutMs: config.headTimeoutMs,
      logger: this.logger,
    });
    await this.listen(server, () => server.listen(port, address), `${address}:${port}`);
    this.directPort = (server.address() as { port: number }).port;
    this.logger.info({ address: `${address}:${this.directPort}` }, 'kubelet direct listener up');
  }

  /** Stops listening and ends every tunnel: the API server sees its kubelet connections close, never hang. */
  async stop(): Promise<void> {
    const servers = this.servers.splice(0);
    const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    this.tunnelSet?.destroyAll();
    await Promise.all(closed);
  }

  private read(path: string, field: string): string {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new ConfigError([`modules.streams.${field}: cannot read ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? err}`]);
    }
  }

  private listen(server: TlsServer | NetServer, listen: () => void, where: string): Promise<void> {
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new ConfigError([`modules.streams: cannot listen on ${where}: ${err.code ?? err.message}`])));
      server.once('listening', () => {
        this.servers.push(server);
        resolve();
      });
      listen();
    });
  }
}

/** A socket file left by an earlier run would make listen fail with EADDRINUSE; anything else there is kept. */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // absent: nothing to remove
  }
}
