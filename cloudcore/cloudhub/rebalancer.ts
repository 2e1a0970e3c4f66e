import { GoAwayCode } from '../../shared/channel/frame.js';
import { asError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { parseReport, type ReplicaReport, type ReplicaReportStore } from '../contracts/replica-reports.js';
import type { CloudMetrics } from '../metrics/cloud-metrics.js';
import type { NodeSession } from './node-session.js';
import { assignTargets, planRebalance, type Plan } from './rebalance-plan.js';
import type { SessionRegistry } from './session-registry.js';

export interface RebalanceSettings {
  reportIntervalMs: number;
  tolerancePercent: number;
  minExcess: number;
  shedPerSecond: number;
  observeMs: number;
}

export interface RebalancerDeps {
  store: ReplicaReportStore;
  /** This replica in the reports. */
  id: string;
  address: string;
  /** host:port of this replica's Router listener, once it listens (published so other replicas can forward to it). */
  router?: () => string | undefined;
  /** host:port of this replica's kubelet relay, once it listens (the others pass kubelet streams for its nodes there). */
  streams?: () => string | undefined;
  nodeLimit: number;
  settings: RebalanceSettings;
  sessions: SessionRegistry;
  logger: Logger;
  metrics: CloudMetrics;
}

/** Reports changing this quickly are published at most once a second (a reconnect storm changes them constantly). */
const PUBLISH_DEBOUNCE_MS = 1_000;
/** A report unchanged for this many intervals belongs to a dead replica. */
const DEAD_AFTER_INTERVALS = 3;
/** A report unchanged for longer than this many intervals is late: counted, but no edge is sent there. */
const LATE_AFTER_INTERVALS = 1.5;

/**
 * Connection balancing across replicas (docs/replicas.md). Every interval, and soon after its count changes,
 * the replica publishes its report and reads the others'. When it holds more than its share E by both the
 * tolerance and the minimum excess, it fails readiness (the load balancer stops sending it edges), sends
 * GOAWAY REBALANCE to the excess at a bounded rate, each naming the replica with the most room, then
 * observes before it decides again.
 */
export class Rebalancer {
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private shedTimer: NodeJS.Timeout | undefined;
  private state: 'balanced' | 'shedding' | 'observing' = 'balanced';
  private observeUntil = 0;
  private shedding = 0;
  private draining = false;
  private cycling = false;
  /** When each replica's report last changed, by this replica's clock: skew between hosts does not matter. */
  private readonly seen = new Map<string, { reportedAtMs: number; changedAtMs: number }>();
  /** The last bad text logged per origin, so garbage is logged once, not every cycle. */
  private readonly badLogged = new Map<string, string>();
  private failing = false;
  private live: ReplicaReport[] = [];
  /** Live replicas whose report is late (see LATE_AFTER_INTERVALS). */
  private late = new Set<string>();

  constructor(private readonly deps: RebalancerDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.cycle(), this.deps.settings.reportIntervalMs).unref();
    void this.cycle();
  }

  /** The session count changed: publish it soon. */
  changed(): void {
    if (this.debounce || this.draining) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.publish().catch(() => undefined);
    }, PUBLISH_DEBOUNCE_MS).unref();
  }

  /** Why /readyz should fail: while shedding, so the load balancer sends new edges elsewhere. */
  notReady(): string | undefined {
    return this.state === 'shedding' ? `rebalancing: sending ${this.shedding} edges to other replicas` : undefined;
  }

  /**
   * Addresses of other replicas for `count` edges leaving on shutdown, most room first ('' when none is live):
   * they dial a replica that has room instead of all coming back through the load balancer at once.
   */
  shutdownAddresses(count: number): string[] {
    const others = this.live.map((r) => (r.id === this.deps.id ? { ...r, draining: true } : r));
    const addresses = assignTargets(planRebalance(this.deps.id, others, this.planOptions()).targets, count);
    return Array.from({ length: count }, (_, i) => addresses[i] ?? '');
  }

  /** Stops balancing and removes this replica's report: the others stop counting it at once. */
  async stop(): Promise<void> {
    this.draining = true;
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    clearInterval(this.shedTimer);
    try {
      await this.deps.store.remove(this.deps.id);
    } catch (err) {
      this.deps.logger.warn({ err: asError(err), store: this.deps.store.description }, 'replica report not removed; the others drop it after three intervals');
    }
    this.deps.store.close?.();
  }

  private planOptions() {
    return { tolerance: this.deps.settings.tolerancePercent / 100, minExcess: this.deps.settings.minExcess, notTargets: this.late };
  }

  private ownReport(): ReplicaReport {
    const { id, address, nodeLimit } = this.deps;
    const router = this.deps.router?.();
    const streams = this.deps.streams?.();
    return {
      id,
      address,
      nodeLimit,
      connections: this.deps.sessions.size,
      draining: this.draining,
      reportedAtMs: Date.now(),
      ...(router ? { router } : {}),
      ...(streams ? { streams } : {}),
    };
  }

  /** Another live replica's latest report (undefined when it is not live, or is this replica). */
  replica(id: string): ReplicaReport | undefined {
    return id === this.deps.id ? undefined : this.live.find((r) => r.id === id);
  }

  private async publish(): Promise<void> {
    if (this.draining) return;
    await this.deps.store.publish(this.ownReport());
  }

  /** One balancing cycle; a cycle still running makes the next one skip. */
  private async cycle(): Promise<void> {
    if (this.cycling || this.draining) return;
    this.cycling = true;
    try {
      await this.publish();
      this.live = await this.readLive();
      if (this.failing) this.deps.logger.info({ store: this.deps.store.description }, 'replica reports readable again');
      this.failing = false;
      this.deps.metrics.replicas.set(this.live.length);
      if (this.state === 'shedding' || (this.state === 'observing' && Date.now() < this.observeUntil)) return;
      this.state = 'balanced';
      const plan = planRebalance(this.deps.id, this.live, this.planOptions());
      this.deps.metrics.expectedEdges.set(plan.expected.get(this.deps.id) ?? 0);
      if (plan.shed > 0) this.shed(plan);
    } catch (err) {
      if (!this.failing)
        this.deps.logger.warn({ err: asError(err), store: this.deps.store.description }, 'replica reports unavailable; not balancing until they are');
      this.failing = true;
    } finally {
      this.cycling = false;
    }
  }

  /** Every trustworthy report of a live replica, this one's fresh report included. */
  private async readLive(): Promise<ReplicaReport[]> {
    const { id, settings, logger } = this.deps;
    const now = Date.now();
    const deadAfterMs = DEAD_AFTER_INTERVALS * settings.reportIntervalMs;
    const live: ReplicaReport[] = [this.ownReport()];
    const present = new Set<string>();
    const late = new Set<string>();
    for (const stored of await this.deps.store.list()) {
      const report = parseReport(stored.text);
      if ('error' in report) {
        if (this.badLogged.get(stored.origin) !== stored.text) {
          this.badLogged.set(stored.origin, stored.text);
          logger.warn({ origin: stored.origin, reason: report.error, text: stored.text.slice(0, 300) }, 'replica report ignored');
        }
        continue;
      }
      if (report.id === id) continue;
      present.add(report.id);
      const seen = this.seen.get(report.id);
      if (!seen) {
        // First sight: trust the writer's clock once; from then on only whether the report changes.
        this.seen.set(report.id, { reportedAtMs: report.reportedAtMs, changedAtMs: Math.min(now, report.reportedAtMs) });
      } else if (seen.reportedAtMs !== report.reportedAtMs) {
        seen.reportedAtMs = report.reportedAtMs;
        seen.changedAtMs = now;
      }
      const age = now - this.seen.get(report.id)!.changedAtMs;
      if (age > deadAfterMs) continue;
      live.push(report);
      if (age > LATE_AFTER_INTERVALS * settings.reportIntervalMs) late.add(report.id);
    }
    this.late = late;
    for (const known of this.seen.keys()) if (!present.has(known)) this.seen.delete(known);
    return live;
  }

  private shed(plan: Plan): void {
    const { id, settings, logger } = this.deps;
    const addresses = assignTargets(plan.targets, plan.shed);
    const victims: NodeSession[] = [];
    for (const session of this.deps.sessions.values()) {
      if (victims.length >= addresses.length) break;
      if (session.state !== 'closed' && session.goneAway === undefined) victims.push(session);
    }
    if (victims.length === 0) return;
    const expected = plan.expected.get(id) ?? 0;
    this.state = 'shedding';
    this.shedding = victims.length;
    logger.info(
      { connections: this.deps.sessions.size, expected, shed: victims.length, replicas: plan.expected.size, total: plan.total, targets: plan.targets },
      'rebalancing: sending edges to replicas with room',
    );
    // At most shedPerSecond GOAWAYs a second, in ticks of at least 100 ms.
    const tickMs = Math.max(100, Math.floor(1_000 / settings.shedPerSecond));
    const perTick = Math.max(1, Math.round((settings.shedPerSecond * tickMs) / 1_000));
    let next = 0;
    this.shedTimer = setInterval(() => {
      for (let k = 0; k < perTick && next < victims.length; k++, next++) {
        const session = victims[next]!;
        if (session.state !== 'closed')
          session.goAway(GoAwayCode.REBALANCE, `rebalancing: replica ${id} is above its share of ${expected} edges`, addresses[next]);
        this.shedding = victims.length - next - 1;
      }
      if (next >= victims.length) {
        clearInterval(this.shedTimer);
        this.state = 'observing';
        this.observeUntil = Date.now() + settings.observeMs;
        this.shedding = 0;
        logger.info({ shed: victims.length, observeMs: settings.observeMs }, 'rebalancing done; observing before deciding again');
        this.changed();
      }
    }, tickMs).unref();
  }
}
