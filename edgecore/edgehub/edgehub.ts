import { WebSocket } from 'ws';
import type { Logger } from '../../shared/logger.js';
import type { Module } from '../../shared/module-runtime.js';
import type { SqliteDatabase } from '../../shared/sqlite.js';
import { Backoff } from '../../shared/backoff.js';
import { GoAwayCode, PROTOCOL_VERSION, type Settings } from '../../shared/channel/frame.js';
import { encodeMessage } from '../../shared/channel/codec.js';
import { bindWebSocket, webSocketTransport } from '../../shared/channel/ws-transport.js';
import { ConnectionError, asError } from '../../shared/errors.js';
import { Group, Operation, errorResponseTo, newMessage } from '../../shared/message.js';
import { EdgeModule } from '../contracts/addresses.js';
import { EdgeMetrics } from '../metrics/edge-metrics.js';
import type { ConnectionNotice, EdgeBus, EdgeInboxes } from '../contracts/messages.js';
import { softwareVersion } from '../../shared/version.js';
import type { EdgeHubConfig } from './edgehub-config.js';
import { CertManager } from './cert-manager.js';
import { EdgeSession, type SessionEnd } from './edge-session.js';
import { CONNECTION_LISTENERS } from './routes.js';
import { UpstreamOutbox } from './upstream-outbox.js';

/** KubeEdge's default project id; kept in the URL path for compatibility with its hub. */
const PROJECT_ID = 'e632aba927ea4ac2b575ec1603d56f10';
/** GOAWAY code → its name, the `reason` of a link disconnect the cloud announced. */
const GOAWAY_NAMES = new Map<number, string>(Object.entries(GoAwayCode).map(([name, code]) => [code, name]));
/** A session that lived this long resets the reconnect backoff. */
const STABLE_SESSION_MS = 30_000;

export type EdgeHubStatus =
  | { type: 'connecting'; server: string; attempt: number }
  | { type: 'connected'; server: string; since: number; synced: boolean }
  | { type: 'disconnected'; since: number; lastError?: string }
  | { type: 'stopped' };

export interface EdgeHubDeps {
  config: EdgeHubConfig;
  nodeName: string;
  database: SqliteDatabase;
  bus: EdgeBus;
  logger: Logger;
  random?: () => number;
  metrics?: EdgeMetrics;
}

/**
 * The edge's end of the channel: obtains and renews the node certificate, dials CloudHub and keeps
 * reconnecting (exponential backoff with jitter, GOAWAY honoured), and moves messages between the bus and
 * the session. Reports to the cloud go through the durable outbox, so nothing is lost while offline.
 */
export class EdgeHub implements Module {
  readonly name = EdgeModule.edgeHub;
  status: EdgeHubStatus = { type: 'disconnected', since: Date.now() };
  private readonly certs: CertManager;
  private readonly backoff: Backoff;
  private readonly metrics: EdgeMetrics;
  private outbox: UpstreamOutbox | undefined;
  private session: EdgeSession | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private renewalTimer: NodeJS.Timeout | undefined;
  private readonly renewalBackoff = new Backoff({ initialDelayMs: 2_000, maxDelayMs: 32_000 });
  private nextServer: string | undefined;
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
    this.backoff = new Backoff({ initialDelayMs: c.reconnectInitialDelayMs, maxDelayMs: c.reconnectMaxDelayMs, random: deps.random });
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
    this.status = { type: 'stopped' };
  }

  pendingUpstream(): number {
    return this.outbox?.count() ?? 0;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const server = this.nextServer ?? this.deps.config.server;
      this.nextServer = undefined;
      this.status = { type: 'connecting', server, attempt: ++attempt };
      let ws: WebSocket;
      try {
        ws = await this.dial(server);
      } catch (err) {
        const delay = this.backoff.next();
        this.deps.logger.warn({ err: asError(err), server, attempt, retryInMs: delay }, 'cannot reach cloudcore');
        this.status = { type: 'disconnected', since: Date.now(), lastError: asError(err).message };
        await this.sleep(delay);
        continue;
      }
      attempt = 0;
      const startedAt = Date.now();
      const end = await this.runSession(ws, server);
      this.status = { type: 'disconnected', since: Date.now(), lastError: end.error?.message };
      this.publishConnection(false);
      if (this.stopped) break;
      await this.sleep(this.delayAfter(end, Date.now() - startedAt));
    }
  }

  private delayAfter(end: SessionEnd, livedMs: number): number {
    if (livedMs >= STABLE_SESSION_MS) this.backoff.reset();
    if (this.reconnectNow) {
      this.reconnectNow = false;
      return 0;
    }
    const g = end.goAway;
    if (g) {
      this.nextServer = g.address || undefined;
      if (g.code === GoAwayCode.REPLACED) {
        this.deps.logger.error({ reason: g.reason }, 'another connection for this node replaced ours; is a second edgecore running with this node name?');
        return this.backoff.next();
      }
      // Planned moves (rebalance, renewed certificate) go at once; a shutting-down cloud gets a fresh backoff;
      // a protocol error keeps backing off so a broken edge cannot hammer the cloud.
      const planned = g.code === GoAwayCode.REBALANCE || g.code === GoAwayCode.RECONNECT || g.code === GoAwayCode.CERTIFICATE_EXPIRED;
      if (planned) return Math.round((this.deps.random ?? Math.random)() * 250);
      if (g.code === GoAwayCode.SHUTDOWN) this.backoff.reset();
      return this.backoff.next();
    }
    if (end.error) this.deps.logger.warn({ err: end.error }, 'session to cloudcore lost');
    return this.backoff.next();
  }

  private async runSession(ws: WebSocket, server: string): Promise<SessionEnd> {
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
      logger: this.deps.logger,
      onOpen: () => {
        opened = true;
        this.metrics.linkConnects.inc();
        this.status = { type: 'connected', server, since: Date.now(), synced: false };
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

  private dial(server: string): Promise<WebSocket> {
    const tls = this.certs.current;
    const base = server.startsWith('wss://') ? server.replace(/\/$/, '') : `wss://${server}`;
    const c = this.deps.config;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${base}/${PROJECT_ID}/${this.deps.nodeName}/events`, {
        ca: tls.caPem,
        cert: tls.certPem,
        key: tls.keyPem,
        handshakeTimeout: c.handshakeTimeoutMs,
        perMessageDeflate: false,
        maxPayload: 1024 * 1024,
        headers: { node_id: this.deps.nodeName, project_id: PROJECT_ID },
      });
      const fail = (err: Error): void => {
        ws.removeAllListeners();
        ws.on('error', () => undefined);
        ws.terminate();
        reject(err);
      };
      ws.once('open', () => {
        ws.removeAllListeners();
        resolve(ws);
      });
      ws.once('error', (err) => fail(new ConnectionError(err.message, 'ERR_CONNECTION', { cause: err })));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => fail(new ConnectionError(`cloudcore refused the connection: ${res.statusCode} ${body.trim()}`)));
      });
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
    this.outbox!.put(encodeMessage(message), coalesceKey);
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
  if (end.goAway) return GOAWAY_NAMES.get(end.goAway.code) ?? 'GOAWAY';
  return end.error?.code ?? 'closed';
}
