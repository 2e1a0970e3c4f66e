// A light edge simulator for benchmarks: many edge nodes in one process, each speaking the real channel
// protocol (the shared ChannelSession over mutually authenticated WebSocket), with an in-memory store instead
// of SQLite. Driven over IPC by the benchmark: receives a `start` message, sends `status` messages.
import { createSecureContext } from 'node:tls';
import { WebSocket } from 'ws';
import { ChannelSession } from '../../shared/channel/session.js';
import { decodeMessage, encodeInventory, encodeMessage } from '../../shared/channel/codec.js';
import { PROTOCOL_VERSION, StreamId, type Settings } from '../../shared/channel/frame.js';
import { bindWebSocket, webSocketTransport } from '../../shared/channel/ws-transport.js';
import { NULL_NAMESPACE, Operation, newMessage } from '../../shared/message.js';
import { uidOf } from '../../cloudcore/contracts/object-sync.js';
import { nodeFacts } from '../../edgecore/edged/node-facts.js';

export interface SimStart {
  type: 'start';
  url: string;
  /** Hubs to pick from at random on each connect (replicas); `url` alone when absent. */
  urls?: string[];
  caPem: string;
  keyPem: string;
  nodes: Array<{ name: string; certPem: string }>;
  connectConcurrency: number;
  settings: Settings;
  reconnect: { initialDelayMs: number; maxDelayMs: number };
  /** Report a node status on every connect, as edged does (a cluster then registers the node). */
  reportNodeStatus?: boolean;
  /**
   * Also report a new node status this often, numbered in `nodeInfo.bootID` (`sim-<n>`), keeping the newest
   * until the cloud ACKs it and sending it again on the next session, as edgecore's outbox does: the cluster
   * must end up with every edge's newest report (lost_reports).
   */
  reportEveryMs?: number;
}

/** Answer to `{type: 'reports'}`: per node, the newest report made and the newest the cloud acknowledged. */
export interface SimReports {
  type: 'reports';
  nodes: Record<string, { made: number; acked: number }>;
}

export interface SimStatus {
  type: 'status';
  connected: number;
  synced: number;
  /** Latest time (epoch ms) at which an edge finished its resync. */
  lastSyncedAtMs: number;
  /** Objects held, summed over all edges. */
  objects: number;
  reconnects: number;
  failedConnects: number;
  rssKiB: number;
}

let connecting = 0;
const waitingToConnect: Array<() => void> = [];
let reconnects = 0;
let failedConnects = 0;
let lastSyncedAtMs = 0;
const edges: SimEdge[] = [];

class SimEdge {
  readonly store = new Map<string, { uid: string; resourceVersion: string }>();
  session: ChannelSession | undefined;
  synced = false;
  private pendingAck = 0;
  /** Where a GOAWAY told this edge to go: dialled next, at once. */
  private redirect: string | undefined;
  /** Hubs that failed since the last session, skipped while others are left (as edgecore's EdgeHub does). */
  private readonly tried = new Set<string>();
  private attempt = 0;
  /** Newest report made, and newest acknowledged (reportEveryMs). */
  made = 0;
  acked = 0;
  /** Upstream seq of this session → report number. */
  private inflight = new Map<number, number>();

  constructor(
    readonly name: string,
    private readonly context: ReturnType<typeof createSecureContext>,
    private readonly cfg: SimStart,
  ) {}

  connect(): void {
    acquire(() => {
      const all = urls ?? this.cfg.urls ?? [this.cfg.url];
      let untried = all.filter((u) => !this.tried.has(u));
      if (untried.length === 0) {
        this.tried.clear();
        untried = all;
      }
      const url = this.redirect ?? pick(untried);
      this.redirect = undefined;
      const ws = new WebSocket(`${url}/sim/${this.name}/events`, {
        secureContext: this.context,
        perMessageDeflate: false,
        handshakeTimeout: 30_000,
        maxPayload: 1 << 20,
      } as never);
      let opened = false;
      ws.on('error', () => undefined);
      ws.once('open', () => {
        opened = true;
        release();
        this.tried.clear();
        this.attempt = 0;
        this.attach(ws);
      });
      ws.once('close', () => {
        if (opened) return;
        release();
        failedConnects++;
        this.tried.add(url);
        setTimeout(() => this.connect(), this.fullJitter());
      });
    });
  }

  /** uniform(0, min(max, initial × 2^attempt)): the edges of a dead replica spread out instead of returning in a wave. */
  private fullJitter(): number {
    const { initialDelayMs, maxDelayMs } = this.cfg.reconnect;
    return Math.random() * Math.min(maxDelayMs, initialDelayMs * 2 ** this.attempt++);
  }

  private attach(ws: WebSocket): void {
    const settings = this.cfg.settings;
    const session = new ChannelSession({
      role: 'client',
      transport: webSocketTransport(ws),
      settings,
      hello: { protocolVersion: PROTOCOL_VERSION, nodeName: this.name, settings, softwareVersion: 'sim', sessionId: '' },
      handlers: {
        onHello: () =>
          void setImmediate(() => {
            this.sendInventory();
            if (this.cfg.reportNodeStatus) this.sendNodeStatus();
          }),
        onAck: (stream, cumulative, selective) => {
          if (stream !== StreamId.upstream) return;
          for (const [seq, n] of this.inflight)
            if (seq <= cumulative || selective.includes(seq)) {
              this.inflight.delete(seq);
              this.acked = Math.max(this.acked, n);
            }
        },
        onGoAway: (_code, _reason, address) => {
          if (address) this.redirect = `wss://${address}`;
        },
        onMessage: (stream, received, done) => {
          done();
          if (stream !== StreamId.objects) return;
          const message = decodeMessage(received.data);
          if (message.operation === Operation.synced) {
            this.synced = true;
            lastSyncedAtMs = Date.now();
          } else if (message.operation === Operation.delete) this.store.delete(message.resource);
          else this.store.set(message.resource, { uid: uidOf(message.content), resourceVersion: message.resourceVersion });
          // One cumulative ACK per event-loop turn, like edgecore's batched commits.
          if (this.pendingAck === 0)
            setImmediate(() => {
              session.ack(StreamId.objects, this.pendingAck);
              this.pendingAck = 0;
            });
          this.pendingAck = received.seq;
        },
        onClose: () => {
          this.session = undefined;
          this.inflight = new Map();
          this.synced = false;
          reconnects++;
          // Named by a GOAWAY: dial it now. Otherwise back off (the edge's own full jitter is not modelled).
          setTimeout(() => this.connect(), this.redirect ? 0 : this.fullJitter());
        },
      },
    });
    bindWebSocket(ws, session);
    this.session = session;
    session.start();
  }

  private sendInventory(): void {
    const session = this.session;
    if (!session || session.status !== 'open') return;
    const items = [...this.store].map(([key, v]) => ({ key, uid: v.uid, resourceVersion: v.resourceVersion }));
    session.write(
      StreamId.objects,
      encodeMessage(
        newMessage({ source: 'sim', group: 'resource', operation: Operation.inventory, resource: `null/node/${this.name}`, content: encodeInventory(items) }),
      ),
    );
  }

  /** A new numbered report (reportEveryMs): sent now if a session is open, else on the next one. */
  report(): void {
    this.made++;
    this.sendNodeStatus();
  }

  private sendNodeStatus(): void {
    if (this.session?.status !== 'open') return;
    const content = this.cfg.reportEveryMs ? { ...facts, nodeInfo: { ...facts.nodeInfo, bootID: `sim-${this.made}` } } : facts;
    const seq = this.session.write(
      StreamId.upstream,
      encodeMessage(
        newMessage({ source: 'edged', group: 'resource', operation: Operation.update, resource: `${NULL_NAMESPACE}/nodestatus/${this.name}`, content }),
      ),
    );
    this.inflight.set(seq, this.made);
  }
}

const facts = nodeFacts({ nodeIP: '192.0.2.1', hostnameOverride: '', kubeletPort: 10350, maxPods: 110, kubeletVersion: 'v1.33.13-sim', labels: {} });

function acquire(fn: () => void): void {
  if (connecting < currentConcurrency) {
    connecting++;
    fn();
  } else waitingToConnect.push(fn);
}

function release(): void {
  connecting--;
  const next = waitingToConnect.shift();
  if (next) {
    connecting++;
    next();
  }
}

let currentConcurrency = 100;
/** Replaced by a `urls` message (the benchmark tells the fleet where the replicas are). */
let urls: string[] | undefined;

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!;
}

function status(): SimStatus {
  let connected = 0;
  let synced = 0;
  let objects = 0;
  for (const e of edges) {
    if (e.session?.status === 'open') connected++;
    if (e.synced) synced++;
    objects += e.store.size;
  }
  return { type: 'status', connected, synced, lastSyncedAtMs, objects, reconnects, failedConnects, rssKiB: Math.round(process.memoryUsage().rss / 1024) };
}

let reporting: NodeJS.Timeout | undefined;

process.on('message', (msg: SimStart | { type: 'status' } | { type: 'urls'; urls: string[] } | { type: 'reports'; stop?: boolean }) => {
  if (msg.type === 'status') return process.send!(status());
  if (msg.type === 'reports') {
    if (msg.stop) clearInterval(reporting);
    const nodes = Object.fromEntries(edges.map((e) => [e.name, { made: e.made, acked: e.acked }]));
    return process.send!({ type: 'reports', nodes } satisfies SimReports);
  }
  if (msg.type === 'urls') {
    urls = msg.urls;
    return;
  }
  currentConcurrency = msg.connectConcurrency;
  for (const node of msg.nodes) {
    const context = createSecureContext({ ca: msg.caPem, cert: node.certPem, key: msg.keyPem });
    const edge = new SimEdge(node.name, context, msg);
    edges.push(edge);
    edge.connect();
  }
  if (msg.reportEveryMs && !reporting) {
    // One timer; each tick reports for the edges whose turn it is, so reports are spread over the interval.
    const tickMs = 250;
    const perTick = Math.max(1, Math.ceil((edges.length * tickMs) / msg.reportEveryMs));
    let next = 0;
    reporting = setInterval(() => {
      for (let i = 0; i < perTick && edges.length > 0; i++, next++) edges[next % edges.length]!.report();
    }, tickMs);
  }
});
process.on('disconnect', () => process.exit(0));
