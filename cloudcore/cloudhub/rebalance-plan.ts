import type { ReplicaReport } from '../contracts/replica-reports.js';

// The balancing rule (issue 12), pure so it can be tested alone. Every replica runs it on the same reports
// and comes to the same expectations, so only replicas above theirs shed and only those below receive: no
// two replicas shed to each other.

export interface PlanOptions {
  /** Shed only above E × (1 + tolerance) … */
  tolerance: number;
  /** … and above E + minExcess. */
  minExcess: number;
  /**
   * Replicas still counted but not to be named in a GOAWAY: their report is late (a replica that just died
   * is counted until its report is three intervals old, but edges sent to it would only bounce).
   */
  notTargets?: ReadonlySet<string>;
}

export interface Target {
  id: string;
  address: string;
  /** Edges it can take before reaching its expected count. */
  room: number;
}

export interface Plan {
  /** Edges on all live replicas, draining ones included (they need a home). */
  total: number;
  /** Expected count per live replica id; 0 for draining ones. */
  expected: Map<string, number>;
  /** Edges this replica should send away now (0: balanced within tolerance). */
  shed: number;
  /** Replicas below their expected count, most room first. */
  targets: Target[];
}

/**
 * E = ceil(total / replicas taking edges), capped by each replica's node limit; what a capped replica cannot
 * take is spread over the others (water-filling, smallest limits first).
 */
export function expectedCounts(replicas: readonly ReplicaReport[]): Map<string, number> {
  const expected = new Map<string, number>();
  let remaining = replicas.reduce((n, r) => n + r.connections, 0);
  const taking = replicas.filter((r) => !r.draining).sort((a, b) => a.nodeLimit - b.nodeLimit || a.id.localeCompare(b.id));
  for (const r of replicas) if (r.draining) expected.set(r.id, 0);
  taking.forEach((r, i) => {
    const share = Math.min(r.nodeLimit, Math.ceil(remaining / (taking.length - i)));
    expected.set(r.id, share);
    remaining = Math.max(0, remaining - share);
  });
  return expected;
}

/** What `self` should do, given every live replica's report (its own included). */
export function planRebalance(self: string, replicas: readonly ReplicaReport[], options: PlanOptions): Plan {
  const expected = expectedCounts(replicas);
  const total = replicas.reduce((n, r) => n + r.connections, 0);
  const targets = replicas
    .filter((r) => r.id !== self && !r.draining && !options.notTargets?.has(r.id))
    .map((r) => ({ id: r.id, address: r.address, room: (expected.get(r.id) ?? 0) - r.connections }))
    .filter((t) => t.room > 0)
    .sort((a, b) => b.room - a.room || a.id.localeCompare(b.id));
  const me = replicas.find((r) => r.id === self);
  let shed = 0;
  if (me && !me.draining) {
    const e = expected.get(self) ?? 0;
    if (me.connections > e * (1 + options.tolerance) && me.connections > e + options.minExcess) shed = me.connections - e;
  }
  // Never more than the others can take: the rest would only bounce back.
  shed = Math.min(
    shed,
    targets.reduce((n, t) => n + t.room, 0),
  );
  return { total, expected, shed, targets };
}

/** The addresses to name in `count` GOAWAYs: each to the target with the most room left. */
export function assignTargets(targets: readonly Target[], count: number): string[] {
  const rooms = targets.map((t) => ({ ...t }));
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let best: Target | undefined;
    for (const t of rooms) if (t.room > 0 && (!best || t.room > best.room)) best = t;
    if (!best) break;
    best.room--;
    out.push(best.address);
  }
  return out;
}
