import type { Logger } from '../../shared/logger.js';
import { GoAwayCode } from '../../shared/channel/frame.js';
import type { Admission } from './hub-server.js';
import type { NodeSession } from './node-session.js';

const CERT_SWEEP_INTERVAL_MS = 30_000;

export interface SessionRegistryOptions {
  nodeLimit: number;
  heartbeatIntervalMs: number;
  sessionTimeoutMs: number;
  logger: Logger;
}

/**
 * The node sessions this cloudcore holds, one per node: admission against the node limit, last connection
 * wins, one liveness timer for all of them, and the sweep that sends edges with expired certificates away.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, NodeSession>();
  private livenessTimer: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly options: SessionRegistryOptions) {}

  get size(): number {
    return this.sessions.size;
  }

  get(nodeName: string): NodeSession | undefined {
    return this.sessions.get(nodeName);
  }

  values(): IterableIterator<NodeSession> {
    return this.sessions.values();
  }

  start(): void {
    const { heartbeatIntervalMs, sessionTimeoutMs } = this.options;
    // One timer drives every session's keepalive and timeout (a timer per session costs memory at 10k edges).
    const livenessMs = Math.max(50, Math.min(1_000, Math.min(heartbeatIntervalMs, sessionTimeoutMs) / 4));
    this.livenessTimer = setInterval(() => {
      for (const session of this.sessions.values()) session.channel.checkLiveness();
    }, livenessMs).unref();
    this.sweeper = setInterval(() => this.sweepExpiredCertificates(), CERT_SWEEP_INTERVAL_MS).unref();
  }

  stop(): void {
    clearInterval(this.livenessTimer);
    clearInterval(this.sweeper);
  }

  admit(nodeName: string): Admission {
    const { nodeLimit } = this.options;
    if (this.sessions.size >= nodeLimit && !this.sessions.has(nodeName)) {
      return { ok: false, status: 503, reason: `node limit ${nodeLimit} reached on this cloudcore` };
    }
    return { ok: true };
  }

  /**
   * Last connection wins (as in KubeEdge): a reconnecting edge must not wait for its half-open old session to
   * time out, and the old one's unACKed work is resent through the new session's resync.
   */
  add(session: NodeSession): void {
    const previous = this.sessions.get(session.nodeName);
    this.sessions.set(session.nodeName, session);
    if (previous) previous.goAway(GoAwayCode.REPLACED, 'a newer connection for this node replaced this session', '', 0);
  }

  /** Forgets the session; false when a newer one holds the node already. */
  remove(session: NodeSession): boolean {
    if (this.sessions.get(session.nodeName) !== session) return false;
    this.sessions.delete(session.nodeName);
    return true;
  }

  /**
   * Tells every edge to go elsewhere before the sockets close, so none waits for a session timeout; the i-th
   * session is told `addresses[i]` when given (another replica with room).
   */
  goAwayAll(code: GoAwayCode, reason: string, addresses: readonly string[] = []): void {
    let i = 0;
    for (const session of this.sessions.values()) session.goAway(code, reason, addresses[i++] ?? '', 0);
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
