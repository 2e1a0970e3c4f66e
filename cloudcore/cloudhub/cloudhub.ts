import { randomUUID } from 'node:crypto';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import { GoAwayCode, StreamId, goAwayName, type InventoryItem, type Settings } from '../../shared/channel/frame.js';
import { Operation, type Message } from '../../shared/message.js';
import { CoreError } from '../../shared/errors.js';
import type { ChannelStream } from '../../shared/channel/channel-stream.js';
import type { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import type { CaSource } from '../../shared/pki/ca-source.js';
import { CloudModule } from '../contracts/addresses.js';
import { CloudMetrics, type HubSnapshot } from '../metrics/cloud-metrics.js';
import type { CloudBus, NodeDelivery } from '../contracts/node-messages.js';
import type { ConnectionEvent, SyncResponse } from '../contracts/object-sync.js';
import type { ReplicaReport, ReplicaReportStore } from '../contracts/replica-reports.js';
import type { CloudHubConfig } from './cloudhub-config.js';
import { loadOrIssueServerCert, serverCertHosts } from './ca-files.js';
import { CertServer } from './cert-server.js';
import { HubServer, type EdgeConnection } from './hub-server.js';
import { NodeSession, type SessionHost } from './node-session.js';
import type { OutboxItem } from './node-outbox.js';
import { Rebalancer } from './rebalancer.js';
import { askProviders } from './resync.js';
import { streamFor } from './routes.js';
import { SessionRegistry } from './session-registry.js';
import { UpstreamRouter } from './upstream-router.js';

export interface CloudHubObserver {
  /** Objects the edge committed and ACKed (latency = now - item.enqueuedAtMs). */
  delivered?(nodeName: string, items: OutboxItem[]): void;
}

export interface CloudHubDeps {
  config: CloudHubConfig;
  /** Where the edge CA lives (files, or a Secret shared by replicas); the serving certificate stays in files. */
  caSource: CaSource;
  bus: CloudBus;
  logger: Logger;
  softwareVersion: string;
  observer?: CloudHubObserver;
  /** The daemon's metrics; a private set when absent (tests, benches). */
  metrics?: CloudMetrics;
  /** Where replicas publish their connection counts; without it (or with rebalance off) no balancing. */
  replicaReports?: ReplicaReportStore;
  /** This replica in the reports and the node owner records (cloudcore.ts: `replicaIdOf`). */
  replicaId: string;
  /** host:port of this replica's Router listener once it listens, for the replica reports. */
  routerAddress?: () => string | undefined;
  /** host:port of this replica's kubelet relay once it listens, for the replica reports. */
  streamsAddress?: () => string | undefined;
}

/**
 * The edge-facing side of cloudcore: the certificate server, the WebSocket hub, the registry of node
 * sessions, and the router of what edges send. Controllers hand it messages for a node with `deliver`.
 */
export class CloudHub implements Module, SessionHost, NodeDelivery {
  readonly name = CloudModule.cloudHub;
  readonly sessions: SessionRegistry;
  readonly upstream: UpstreamRouter;
  readonly metrics: CloudMetrics;
  private readonly settings: Settings;
  private ca: CertificateAuthority | undefined;
  private certServer: CertServer | undefined;
  private hubServer: HubServer | undefined;
  private rebalancer: Rebalancer | undefined;
  /** Where the servers listen once started. */
  hubPort = 0;
  certServerPort = 0;

  constructor(private readonly deps: CloudHubDeps) {
    const c = deps.config;
    this.settings = {
      streamWindowBytes: c.streamWindowBytes,
      maxMessageBytes: c.maxMessageBytes,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      sessionTimeoutMs: c.sessionTimeoutMs,
    };
    this.sessions = new SessionRegistry({
      nodeLimit: c.nodeLimit,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      sessionTimeoutMs: c.sessionTimeoutMs,
      logger: deps.logger,
    });
    this.metrics = deps.metrics ?? new CloudMetrics();
    this.upstream = new UpstreamRouter({
      bus: deps.bus,
      workers: c.upstreamWorkers,
      timeoutMs: c.upstreamTimeoutMs,
      logger: deps.logger,
      metrics: this.metrics,
    });
    this.metrics.observeHub(() => this.snapshot());
  }

  get certificateAuthority(): CertificateAuthority {
    if (!this.ca) throw new Error('cloudhub not started');
    return this.ca;
  }

  session(nodeName: string): NodeSession | undefined {
    return this.sessions.get(nodeName);
  }

  async start(): Promise<void> {
    const c = this.deps.config;
    const files = { caCertFile: c.caCertFile, caKeyFile: c.caKeyFile, serverCertFile: c.serverCertFile, serverKeyFile: c.serverKeyFile };
    this.ca = await this.deps.caSource.obtain();
    const serving = await loadOrIssueServerCert(this.ca, files, serverCertHosts(c.advertiseAddresses, c.dnsNames), this.deps.logger);
    this.certServer = new CertServer({
      ca: this.ca,
      serving,
      address: c.certServerAddress,
      port: c.certServerPort,
      edgeCertValidityMs: c.edgeCertValiditySeconds * 1000,
      requestTimeoutMs: c.handshakeTimeoutMs,
      logger: this.deps.logger,
      metrics: this.metrics,
    });
    this.certServerPort = (await this.certServer.listen()).port;
    this.hubServer = new HubServer({
      serving,
      caPem: this.ca.certPem,
      address: c.address,
      port: c.port,
      maxPayloadBytes: 1024 * 1024,
      handshakeTimeoutMs: c.handshakeTimeoutMs,
      logger: this.deps.logger,
      admit: (nodeName) => this.sessions.admit(nodeName),
      onConnection: (conn) => this.accept(conn),
      onRefused: (reason) => this.metrics.connectionsRefused.labels(reason).inc(),
    });
    this.hubPort = (await this.hubServer.listen()).port;
    this.sessions.start();
    const r = c.rebalance;
    if (r.enable && this.deps.replicaReports) {
      const host = c.advertiseAddresses[0] ?? '127.0.0.1';
      this.rebalancer = new Rebalancer({
        store: this.deps.replicaReports,
        id: this.deps.replicaId,
        address: r.address || `${host.includes(':') ? `[${host}]` : host}:${this.hubPort}`,
        router: this.deps.routerAddress,
        streams: this.deps.streamsAddress,
        nodeLimit: c.nodeLimit,
        settings: r,
        sessions: this.sessions,
        logger: this.deps.logger.child({ component: 'rebalancer' }),
        metrics: this.metrics,
      });
      this.rebalancer.start();
    }
    this.deps.logger.info(
      {
        hub: `wss://${c.address}:${this.hubPort}`,
        certServer: `https://${c.certServerAddress}:${this.certServerPort}`,
        caHash: this.ca.hash,
        ca: this.deps.caSource.description,
      },
      'cloudhub listening',
    );
  }

  async stop(): Promise<void> {
    this.sessions.stop();
    // Off the reports first, so the others stop naming this replica; each edge is told a replica with room.
    await this.rebalancer?.stop();
    const addresses = this.rebalancer?.shutdownAddresses(this.sessions.size) ?? [];
    this.sessions.goAwayAll(GoAwayCode.SHUTDOWN, 'cloudcore shutting down', addresses);
    await this.hubServer?.close();
    await this.certServer?.close();
    await Promise.race([this.upstream.idle(), new Promise((r) => setTimeout(r, 2_000).unref())]);
  }

  /** A message for one node: objects through its reliable outbox, the rest as is. Without a session the resync brings objects later. */
  deliver(node: string, message: Message): void {
    const session = this.sessions.get(node);
    if (!session) return;
    const stream = streamFor(message);
    if (stream === StreamId.objects) session.offerObject(message);
    else session.sendUnreliable(stream, message);
  }

  /**
   * A request answered by the node's edgecore (rpc stream). A node without a session here fails at once with
   * ERR_UNAVAILABLE: the caller answers 503 rather than wait for a timeout.
   */
  /**
   * A dynamic stream to the node's edgecore (issue 13's kubelet connections); ERR_UNAVAILABLE at once when the
   * node has no open session on this replica.
   */
  openStream(node: string, header: Uint8Array): ChannelStream {
    const session = this.sessions.get(node);
    if (!session || session.state === 'closed') throw new CoreError('ERR_UNAVAILABLE', `node ${node} is not connected to this cloudcore`);
    return session.openStream(header);
  }

  /** Whether an open session of the node is on this replica. */
  holds(node: string): boolean {
    const session = this.sessions.get(node);
    return session !== undefined && session.state !== 'closed';
  }

  request(node: string, message: Message, timeoutMs: number): Promise<Message> {
    const session = this.sessions.get(node);
    if (!session || session.state === 'closed') return Promise.reject(new CoreError('ERR_UNAVAILABLE', `node ${node} is not connected to this cloudcore`));
    return session.request(message, timeoutMs);
  }

  resync(node: string, inventory: InventoryItem[]): Promise<SyncResponse[]> {
    return askProviders(this.deps.bus, node, inventory, this.deps.config.upstreamTimeoutMs);
  }

  /** Another replica holds a newer session for the node: this one's ends (a half-open socket would linger). */
  replaced(node: string): void {
    this.sessions.get(node)?.goAway(GoAwayCode.REPLACED, 'another cloudcore replica holds a newer session for this node', '', 0);
  }

  /** Another live replica's report, by id: its hub and Router addresses (undefined if not live or unknown). */
  replica(id: string): ReplicaReport | undefined {
    return this.rebalancer?.replica(id);
  }

  /** This replica's report changed otherwise than by its sessions (the Router listens now): publish it soon. */
  reportChanged(): void {
    this.rebalancer?.changed();
  }

  /** Why /readyz should fail on CloudHub's account (shedding edges to other replicas); undefined when ready. */
  notReady(): string | undefined {
    return this.rebalancer?.notReady();
  }

  sessionOpened(session: NodeSession): void {
    this.metrics.sessionsOpened.inc();
    this.rebalancer?.changed();
    this.upstream.notify(Operation.connect, this.connectionEvent(session));
  }

  sessionClosed(session: NodeSession, error: CoreError | undefined): void {
    const log = session.logger;
    if (error) log.warn({ err: error, peer: session.options.peer }, 'edge session closed with error');
    else log.info({ peer: session.options.peer }, 'edge session closed');
    if (session.opened) {
      const reason = error?.code ?? (session.goneAway === undefined ? 'closed' : `goaway_${goAwayName(session.goneAway)}`);
      this.metrics.sessionsClosed.labels(reason).inc();
    }
    if (this.sessions.remove(session)) {
      this.upstream.notify(Operation.disconnect, this.connectionEvent(session));
      this.rebalancer?.changed();
    }
  }

  delivered(session: NodeSession, items: OutboxItem[]): void {
    const now = performance.now();
    for (const item of items) this.metrics.delivery.observe((now - item.enqueuedAtMs) / 1000);
    this.deps.observer?.delivered?.(session.nodeName, items);
  }

  wentAway(_session: NodeSession, code: GoAwayCode): void {
    this.metrics.goAways.labels(goAwayName(code)).inc();
  }

  /** What the metrics read when Prometheus scrapes: one pass over the sessions. */
  private snapshot(): HubSnapshot {
    let outboxObjects = 0;
    let oldestEnqueuedAtMs: number | undefined;
    for (const session of this.sessions.values()) {
      const outbox = session.outbox;
      outboxObjects += outbox.pendingCount + outbox.inflightKeys;
      const oldest = outbox.oldestEnqueuedAtMs();
      if (oldest !== undefined && (oldestEnqueuedAtMs === undefined || oldest < oldestEnqueuedAtMs)) oldestEnqueuedAtMs = oldest;
    }
    return { connectedEdges: this.sessions.size, outboxObjects, oldestEnqueuedAtMs, upstreamQueued: this.upstream.queued };
  }

  private accept(conn: EdgeConnection): void {
    const session = new NodeSession({
      nodeName: conn.nodeName,
      sessionId: randomUUID().slice(0, 8),
      peer: conn.peer,
      certNotAfterMs: conn.certNotAfterMs,
      transport: conn.ws,
      settings: this.settings,
      softwareVersion: this.deps.softwareVersion,
      host: this,
      logger: this.deps.logger,
    });
    conn.ws.events = session;
    this.sessions.add(session);
    session.start();
  }

  private connectionEvent(session: NodeSession): ConnectionEvent {
    return { nodeName: session.nodeName, sessionId: session.options.sessionId, peer: session.options.peer };
  }
}
