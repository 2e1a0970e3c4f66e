import { randomUUID } from 'node:crypto';
import type { Bus } from '../../shared/bus.js';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import { GoAwayCode, StreamId, type Settings } from '../../shared/channel/frame.js';
import { KeyedWorkQueue } from '../../shared/keyed-queue.js';
import { Operation, newMessage, parseCloudResource, parseEdgeResource, toCloudResource, type Message } from '../../shared/message.js';
import { CONTROLLERS_GROUP, type ConnectionEvent } from '../../shared/object-sync.js';
import type { CoreError } from '../../shared/errors.js';
import type { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import type { CaSource } from '../../shared/pki/ca-source.js';
import type { CloudHubConfig } from './cloudhub-config.js';
import { loadOrIssueServerCert, serverCertHosts } from './ca-files.js';
import { CertServer } from './cert-server.js';
import { HubServer, type Admission, type EdgeConnection } from './hub-server.js';
import { NodeSession, type SessionHost, type UpstreamWork } from './node-session.js';
import type { OutboxItem } from './node-outbox.js';

export interface CloudHubObserver {
  /** Objects the edge committed and ACKed (latency = now - item.enqueuedAtMs). */
  delivered?(nodeName: string, items: OutboxItem[]): void;
}

export interface CloudHubDeps {
  config: CloudHubConfig;
  /** Where the edge CA lives (files, or a Secret shared by replicas); the serving certificate stays in files. */
  caSource: CaSource;
  bus: Bus;
  logger: Logger;
  softwareVersion: string;
  observer?: CloudHubObserver;
}

const CERT_SWEEP_INTERVAL_MS = 30_000;

/** The edge-facing side of cloudcore: the certificate server, the WebSocket hub and every node session. */
export class CloudHub implements Module, SessionHost {
  readonly name = 'cloudhub';
  readonly bus: Bus;
  private readonly sessions = new Map<string, NodeSession>();
  private readonly upstream: KeyedWorkQueue<UpstreamWork>;
  private readonly settings: Settings;
  private ca: CertificateAuthority | undefined;
  private certServer: CertServer | undefined;
  private hubServer: HubServer | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  /** Where the servers listen once started. */
  hubPort = 0;
  certServerPort = 0;

  constructor(private readonly deps: CloudHubDeps) {
    this.bus = deps.bus;
    const c = deps.config;
    this.settings = { streamWindowBytes: c.streamWindowBytes, maxMessageBytes: c.maxMessageBytes, heartbeatIntervalMs: c.heartbeatIntervalMs, sessionTimeoutMs: c.sessionTimeoutMs };
    this.upstream = new KeyedWorkQueue({ concurrency: c.upstreamWorkers, worker: (w) => this.processUpstream(w), logger: deps.logger });
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
    this.certServer = new CertServer({ ca: this.ca, serving, address: c.certServerAddress, port: c.certServerPort, edgeCertValidityMs: c.edgeCertValiditySeconds * 1000, requestTimeoutMs: c.handshakeTimeoutMs, logger: this.deps.logger });
    this.certServerPort = (await this.certServer.listen()).port;
    this.hubServer = new HubServer({
      serving,
      caPem: this.ca.certPem,
      address: c.address,
      port: c.port,
      maxPayloadBytes: 1024 * 1024,
      handshakeTimeoutMs: c.handshakeTimeoutMs,
      logger: this.deps.logger,
      admit: (nodeName) => this.admit(nodeName),
      onConnection: (conn) => this.accept(conn),
    });
    this.hubPort = (await this.hubServer.listen()).port;
    this.bus.register(this.name, this.name, (m) => this.handleDownstream(m));
    this.sweeper = setInterval(() => this.sweepExpiredCertificates(), CERT_SWEEP_INTERVAL_MS).unref();
    // One timer drives every session's keepalive and timeout (a timer per session costs memory at 10k edges).
    const livenessMs = Math.max(50, Math.min(1_000, Math.min(c.heartbeatIntervalMs, c.sessionTimeoutMs) / 4));
    this.livenessTimer = setInterval(() => {
      for (const session of this.sessions.values()) session.channel.checkLiveness();
    }, livenessMs).unref();
    this.deps.logger.info({ hub: `wss://${c.address}:${this.hubPort}`, certServer: `https://${c.certServerAddress}:${this.certServerPort}`, caHash: this.ca.hash, ca: this.deps.caSource.description }, 'cloudhub listening');
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    clearInterval(this.livenessTimer);
    if (this.bus.has(this.name)) this.bus.unregister(this.name);
    // Tell every edge to go elsewhere before the sockets close, so none waits for a session timeout.
    for (const session of this.sessions.values()) session.goAway(GoAwayCode.SHUTDOWN, 'cloudcore shutting down', '', 0);
    await this.hubServer?.close();
    await this.certServer?.close();
    await Promise.race([this.upstream.idle(), new Promise((r) => setTimeout(r, 2_000).unref())]);
  }

  private admit(nodeName: string): Admission {
    if (this.sessions.size >= this.deps.config.nodeLimit && !this.sessions.has(nodeName)) {
      return { ok: false, status: 503, reason: `node limit ${this.deps.config.nodeLimit} reached on this cloudcore` };
    }
    return { ok: true };
  }

  private accept(conn: EdgeConnection): void {
    const sessionId = randomUUID().slice(0, 8);
    const session = new NodeSession({
      nodeName: conn.nodeName,
      sessionId,
      peer: conn.peer,
      certNotAfterMs: conn.certNotAfterMs,
      transport: conn.ws,
      settings: this.settings,
      softwareVersion: this.deps.softwareVersion,
      requestTimeoutMs: this.deps.config.upstreamTimeoutMs,
      host: this,
      logger: this.deps.logger,
    });
    conn.ws.events = session;
    const previous = this.sessions.get(conn.nodeName);
    this.sessions.set(conn.nodeName, session);
    // Last connection wins (as in KubeEdge): a reconnecting edge must not wait for its half-open old
    // session to time out, and the old one's unACKed work is resent through the new session's resync.
    if (previous) previous.goAway(GoAwayCode.REPLACED, 'a newer connection for this node replaced this session', '', 0);
    session.start();
  }

  syncProviders(): string[] {
    return this.bus.members(CONTROLLERS_GROUP);
  }

  sessionOpened(session: NodeSession): void {
    this.notifyControllers(Operation.connect, session);
  }

  sessionClosed(session: NodeSession, error: CoreError | undefined): void {
    const log = session.logger;
    if (error) log.warn({ err: error, peer: session.options.peer }, 'edge session closed with error');
    else log.info({ peer: session.options.peer }, 'edge session closed');
    if (this.sessions.get(session.nodeName) !== session) return;
    this.sessions.delete(session.nodeName);
    this.notifyControllers('disconnect', session);
  }

  delivered(session: NodeSession, items: OutboxItem[]): void {
    this.deps.observer?.delivered?.(session.nodeName, items);
  }

  submitUpstream(work: UpstreamWork): void {
    this.upstream.push(`${work.session.nodeName}/${work.message.resource}`, work);
  }

  /** One edge report: handed to its controller; ACKed once processed or refused as bad, not on a timeout. */
  private async processUpstream(work: UpstreamWork): Promise<void> {
    const { session, message } = work;
    const ack = (): void => {
      if (session.channel.status === 'open') session.channel.ackSelective(StreamId.upstream, [work.seq]);
    };
    try {
      parseEdgeResource(message.resource);
    } catch (err) {
      session.logger.warn({ err, resource: message.resource }, 'edge report with a bad resource dropped');
      ack();
      return work.release();
    }
    const target = message.group === 'twin' ? 'devicecontroller' : 'edgecontroller';
    if (!this.bus.has(target)) {
      // Devices are off here (or no controller at all): nothing will ever take it, so it must not wait on the edge.
      session.logger.debug({ resource: message.resource, target }, 'edge report dropped, no module takes it');
      ack();
      return work.release();
    }
    try {
      const reply = await this.bus.request(target, { ...message, resource: toCloudResource(session.nodeName, message.resource) }, this.deps.config.upstreamTimeoutMs);
      if (reply.operation === Operation.error && (reply.content as { code?: string })?.code === 'ERR_UNAVAILABLE') {
        // The cluster could not take it now: leave it unACKed, the edge sends it again.
        session.logger.warn({ resource: message.resource, reason: reply.content }, 'edge report not stored, edge will resend');
        return;
      }
      if (reply.operation === Operation.error) session.logger.debug({ resource: message.resource, reason: reply.content }, 'edge report dropped after refusal');
      ack();
    } catch (err) {
      // Reports cut short by shutdown are resent to the next instance: one line per report would flood the log.
      const level = (err as { code?: string }).code === 'ERR_BUS_CLOSED' ? 'debug' : 'warn';
      session.logger[level]({ err, resource: message.resource, target }, 'edge report not processed, edge will resend');
    } finally {
      work.release();
    }
  }

  /** Messages from controllers for a node: objects go through the reliable outbox, the rest as is. */
  private handleDownstream(message: Message): void {
    let nodeName: string;
    try {
      nodeName = parseCloudResource(message.resource).nodeName;
    } catch (err) {
      this.deps.logger.error({ err, resource: message.resource }, 'downstream message without a node dropped');
      return;
    }
    const session = this.sessions.get(nodeName);
    if (!session) return; // Delivered by the resync when the node connects.
    const op = message.operation;
    if (message.group === 'resource' && (op === Operation.insert || op === Operation.update || op === Operation.delete)) {
      session.offerObject(message);
    } else {
      session.sendUnreliable(message.group === 'twin' ? StreamId.twin : StreamId.rpc, message);
    }
  }

  private notifyControllers(operation: string, session: NodeSession): void {
    const content: ConnectionEvent = { nodeName: session.nodeName, sessionId: session.options.sessionId, peer: session.options.peer };
    for (const member of this.bus.members(CONTROLLERS_GROUP)) {
      void this.bus.send(member, newMessage({ source: this.name, group: 'resource', operation, resource: `node/${session.nodeName}`, content })).catch(() => undefined);
    }
  }

  private sweepExpiredCertificates(): void {
    const now = Date.now();
    for (const session of this.sessions.values()) {
      if (session.options.certNotAfterMs <= now && session.state !== 'closed') {
        session.goAway(GoAwayCode.CERTIFICATE_EXPIRED, 'client certificate expired; reconnect with the renewed one');
      }
    }
  }
}
