import type { WebSocket } from 'ws';
import type { ChannelStream } from '../../shared/channel/channel-stream.js';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import type { SqliteDatabase } from '../../shared/sqlite.js';
import { Backoff } from '../../shared/backoff.js';
import { GoAwayCode, PROTOCOL_VERSION, goAwayName, type Settings } from '../../shared/channel/frame.js';
import { encodeMessage } from '../../shared/channel/codec.js';
import { bindWebSocket, webSocketTransport } from '../../shared/channel/ws-transport.js';
import { ConnectionError, asError } from '../../shared/errors.js';
import { Group, Operation, errorResponseTo, newMessage, responseTo } from '../../shared/message.js';
import { EdgeModule } from '../contracts/addresses.js';
import { EdgeMetrics } from '../metrics/edge-metrics.js';
import type { ConnectionNotice, EdgeBus, EdgeInboxes, ReportMessage } from '../contracts/messages.js';
import { softwareVersion } from '../../shared/version.js';
import type { EdgeHubConfig } from './edgehub-config.js';
import { CertManager } from './cert-manager.js';
import { EdgeSession, type SessionEnd } from './edge-session.js';
import { CONNECTION_LISTENERS } from './routes.js';
import { UpstreamOutbox, type OutboxEntry } from './upstream-outbox.js';
import { dialCloudHub } from './dial.js';
import { ServerPicker, type LookupAll, type ServerCandidate } from './server-picker.js';

/** A session that lived this long resets the reconnect backoff. */
const STABLE_SESSION_MS = 30_000;

/** `server` is the entry dialed (host:port as configured or named by a GOAWAY), `address` the IP:port it went to. */
export type EdgeHubStatus =
  | { type: 'connecting'; server: string; address: string; attempt: number }
  | { type: 'connected'; server: string; address: string; since: number; synced: boolean }
  | { type: 'disconnected'; since: number; lastError?: string }
  | { type: 'stopped' };

export interface EdgeHubDeps {
  config: EdgeHubConfig;
  nodeName: string;
  database: SqliteDatabase;
  bus: EdgeBus;
  logger: Logger;
  random?: () => number;
  /** Injected for tests; defaults to dns.promises.lookup(name, { all: true }). */
  lookup?: LookupAll;
  metrics?: EdgeMetrics;
  /** How long a cloud request to ServiceBus may take on the bus (the app's timeout plus a margin). */
  serviceCallTimeoutMs?: number;
  /** Streams the cloud opens (issue 13: kubelet connections, served by edged); absent, they are refused. */
  onStream?(stream: ChannelStream, header: Uint8Array): void;
}

/**
 * The edge's end of the channel: obtains and renews the node certificate, dials CloudHub and keeps
 * reconnecting (to a random replica of the configured list, full-jitter backoff, GOAWAY honoured), and moves messages between the bus and
 * the session. Reports to the cloud go through the durable outbox, so nothing is lost while offline.
 */
export class EdgeHub implements Module {
  readonly name = EdgeModule.edgeHub;
  status: EdgeHubStatus = { type: 'disconnected', since: Date.now() };
  private readonly certs: CertManager;
  private readonly backoff: Backoff;
  private readonly servers: ServerPicker;
  private readonly metrics: EdgeMetrics;
  private outbox: UpstreamOutbox | undefined;
  /** Reports taken this event-loop turn, committed together at its end. */
  private unqueued: Array<OutboxEntry & { report: ReportMessage }> = [];
  private session: EdgeSession | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private renewalTimer: NodeJS.Timeout | undefined;
  private readonly renewalBackoff = new Backoff({ initialDelayMs: 2_000, maxDelayMs: 32_000 });
  private reconnectNow = false;
  /** Drawn once per certificate, so the date does not move between checks. */
  private renewAt: Date | undefined;

  constructor(private readonly deps: EdgeHubDeps) {
    const c = deps.config;
    this.certs = new CertManager({
      nodeName: deps.nodeName,
      certServer: c.certServer,
      token: c.token,
      caFile: c.caFile,
      certFile: c.certFile,
      keyFile: c.keyFile,
      requestTimeoutMs: c.handshakeTimeoutMs,
      logger: deps.logger,
      random: deps.random,
    });
    this.backoff = new Backoff({ initialDelayMs: c.reconnectInitialDelayMs, maxDelayMs: c.reconnectMaxDelayMs, jitter: 'full', random: deps.random });
    this.servers = new ServerPicker({ servers: c.server, lookup: deps.lookup, random: deps.random });
    this.metrics = deps.metrics ?? new EdgeMetrics();
  }

  /** Fails (and with it edgecore's start) when the node has no certificate and cannot get one. */
  async start(): Promise<void> {
    await this.certs.ensure();
    const outbox = (this.outbox = new UpstreamOutbox(this.deps.database));
    this.metrics.provide('linkConnected', () => this.status.type === 'connected');
    this.metrics.provide('upstreamOutbox', () => outbox.stats());
    this.deps.bus.register(this.name, (m) => this.handle(m));
    if (this.deps.config.rotateCertificates) this.scheduleRenewal();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.renewalTimer);
    this.session?.leave(GoAwayCode.SHUTDOWN, 'edgecore shutting down');
    this.wake?.();
    await this.loop;
    if (this.deps.bus.has(this.name)) this.deps.bus.unregister(this.name);
    // Reports already taken are kept: committed now, before the database closes, rather than at the next turn.
    this.queueReports();
    this.status = { type: 'stopped' };
  }

  pendingUpstream(): number {
    return this.outbox?.count() ?? 0;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      attempt++;
      let target: ServerCandidate | undefined;
      let ws: WebSocket;
      try {
        target = await this.servers.next();
        this.status = { type: 'connecting', server: target.server, address: target.address, attempt };
        this.deps.logger.info({ server: target.server, address: target.address, attempt }, 'dialing cloudcore');
        ws = await this.dial(target);
      } catch (err) {
        if (target) this.servers.failed(target);
        const delay = this.backoff.next();
        this.deps.logger.warn({ err: asError(err), server: target?.server, address: target?.address, attempt, retryInMs: delay }, 'cannot reach cloudcore');
        this.status = { type: 'disconnected', since: Date.now(), lastError: asError(err).message };
        await this.sleep(delay);
        continue;
      }
      attempt = 0;
      const startedAt = Date.now();
      const end = await this.runSession(ws, target);
      this.status = { type: 'disconnected', since: Date.now(), lastError: end.error?.message };
      this.publishConnection(false);
      if (this.stopped) break;
      await this.sleep(this.delayAfter(end, target, Date.now() - startedAt));
    }
  }

  /** How long to wait after a session ended, and where not to go next. */
  private delayAfter(end: SessionEnd, from: ServerCandidate, livedMs: number): number {
    if (livedMs >= STABLE_SESSION_MS) this.backoff.reset();
    if (this.reconnectNow) {
      this.reconnectNow = false;
      return 0;
    }
    const g = end.goAway;
    if (!g) {
      if (end.error) this.deps.logger.warn({ err: end.error, server: from.server, address: from.address }, 'session to cloudcore lost');
      // Unplanned: every edge of this replica lost it at the same moment; full jitter spreads their return.
      this.servers.failed(from);
      return this.backoff.next();
    }
    if (g.code === GoAwayCode.REPLACED) {
      this.deps.logger.error({ reason: g.reason }, 'another connection for this node replaced ours; is a second edgecore running with this node name?');
      return this.backoff.next();
    }
    if (g.code === GoAwayCode.REBALANCE) this.servers.shed(from);
    if (g.code === GoAwayCode.SHUTDOWN) this.servers.failed(from);
    if (g.address) {
      // The cloud named a hub with room for this edge: go there now.
      this.servers.redirectTo(g.address);
      return 0;
    }
    // Planned moves (rebalance, renewed certificate) go almost at once; a shutting-down cloud gets a fresh backoff;
    // a protocol error keeps backing off so a broken edge cannot hammer the cloud.
    const planned = g.code === GoAwayCode.REBALANCE || g.code === GoAwayCode.RECONNECT || g.code === GoAwayCode.CERTIFICATE_EXPIRED;
    if (planned) return Math.round((this.deps.random ?? Math.random)() * 250);
    if (g.code === GoAwayCode.SHUTDOWN) this.backoff.reset();
    return this.backoff.next();
  }

  private async runSession(ws: WebSocket, target: ServerCandidate): Promise<SessionEnd> {
    const c = this.deps.config;
    const settings: Settings = {
      streamWindowBytes: c.streamWindowBytes,
      maxMessageBytes: c.maxMessageBytes,
      heartbeatIntervalMs: c.heartbeatIntervalMs,
      sessionTimeoutMs: c.sessionTimeoutMs,
    };
    let opened = false;
    const session = new EdgeSession({
      nodeName: this.deps.nodeName,
      hello: { protocolVersion: PROTOCOL_VERSION, nodeName: this.deps.nodeName, settings, softwareVersion: softwareVersion(), sessionId: '' },
      settings,
      transport: webSocketTransport(ws),
      bus: this.deps.bus,
      outbox: this.outbox!,
      upstreamResendMs: c.upstreamResendMs,
      requestTimeoutMs: c.requestTimeoutMs,
      serviceCallTimeoutMs: this.deps.serviceCallTimeoutMs ?? 65_000,
      logger: this.deps.logger,
      onStream: this.deps.onStream,
      onOpen: () => {
        opened = true;
        this.metrics.linkConnects.inc();
        this.servers.connected();
        this.status = { type: 'connected', server: target.server, address: target.address, since: Date.now(), synced: false };
        this.publishConnection(true);
      },
      onSynced: (queued) => {
        if (this.status.type === 'connected') this.status = { ...this.status, synced: true };
        this.deps.logger.info({ received: queued }, 'resynced with cloud');
      },
    });
    bindWebSocket(ws, session.channel);
    this.session = session;
    session.start();
    const end = await session.done;
    this.session = undefined;
    // Only sessions that opened count: a failed handshake shows in the log and in link_connected staying 0.
    if (opened) this.metrics.linkDisconnected(disconnectReason(end));
    return end;
  }

  private dial(target: ServerCandidate): Promise<WebSocket> {
    const tls = this.certs.current;
    return dialCloudHub(target, {
      nodeName: this.deps.nodeName,
      caPem: tls.caPem,
      certPem: tls.certPem,
      keyPem: tls.keyPem,
      handshakeTimeoutMs: this.deps.config.handshakeTimeoutMs,
    });
  }

  /** Messages from edge modules: queries go to the cloud now or fail fast; everything else goes up durably. */
  private async handle(message: EdgeInboxes['edgehub']): Promise<void> {
    if (message.operation === Operation.query) {
      const session = this.session;
      try {
        if (!session?.open) throw new ConnectionError('cloud not connected');
        this.deps.bus.respond(message, await session.request(message));
      } catch (err) {
        this.deps.bus.respond(message, errorResponseTo(message, this.name, { code: 'ERR_CONNECTION', message: asError(err).message }));
      }
      return;
    }
    // A full status update replaces the one still waiting; patches and events all go up, in order.
    const coalesceKey = message.operation === Operation.update ? message.resource : undefined;
    this.unqueued.push({ report: message, message: encodeMessage(message), coalesceKey });
    if (this.unqueued.length === 1) setImmediate(() => this.queueReports());
  }

  /**
   * Commits the reports of one event-loop turn in one transaction (a commit costs as much as 6–10 rows), then
   * answers the senders that wait and puts them on the wire. Order is kept: reports are taken as they came.
   */
  private queueReports(): void {
    const batch = this.unqueued;
    if (batch.length === 0) return;
    this.unqueued = [];
    const { bus, logger } = this.deps;
    try {
      this.outbox!.putAll(batch);
    } catch (err) {
      logger.error({ err, reports: batch.length }, 'reports not queued for the cloud');
      const error = { code: 'ERR_UNAVAILABLE', message: `cannot queue the report: ${asError(err).message}` };
      for (const { report } of batch) if (bus.waiting(report)) bus.respond(report, errorResponseTo(report, this.name, error));
      return;
    }
    for (const { report } of batch) if (bus.waiting(report)) bus.respond(report, responseTo(report, this.name, 'queued' as const));
    this.session?.pumpUpstream();
  }

  private publishConnection(connected: boolean): void {
    const notice: ConnectionNotice = newMessage({
      source: this.name,
      group: Group.resource,
      operation: Operation.connect,
      resource: 'node/connection',
      content: connected ? 'cloud_connected' : 'cloud_disconnected',
    });
    for (const listener of CONNECTION_LISTENERS) {
      if (this.deps.bus.has(listener)) void this.deps.bus.send(listener, notice).catch(() => undefined);
    }
  }

  private scheduleRenewal(): void {
    this.renewAt ??= this.certs.renewalDueAt();
    const dueMs = this.renewAt.getTime() - Date.now();
    // setTimeout cannot wait longer than ~24.8 days; check back daily until the date comes.
    this.renewalTimer = setTimeout(() => void this.renewIfDue(), Math.max(0, Math.min(dueMs, 86_400_000))).unref();
  }

  private async renewIfDue(): Promise<void> {
    if (this.stopped) return;
    if (this.renewAt && Date.now() < this.renewAt.getTime()) return this.scheduleRenewal();
    try {
      await this.certs.renew();
      this.renewalBackoff.reset();
      this.renewAt = undefined;
      // Reconnect with the new certificate now rather than at the old one's expiry; nothing is lost.
      if (this.session) {
        this.reconnectNow = true;
        this.session.leave(GoAwayCode.RECONNECT, 'reconnecting with renewed certificate');
      }
      this.scheduleRenewal();
    } catch (err) {
      const retryMs = this.renewalBackoff.next();
      this.deps.logger.warn({ err, retryInMs: retryMs }, 'certificate renewal failed');
      this.renewalTimer = setTimeout(() => void this.renewIfDue(), retryMs).unref();
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** Why a session ended, as a bounded label: the GOAWAY the cloud sent, the error's code, or a plain close. */
function disconnectReason(end: SessionEnd): string {
  if (end.goAway) return goAwayName(end.goAway.code);
  return end.error?.code ?? 'closed';
}
