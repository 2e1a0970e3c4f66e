// What each cloudcore replica tells the others (issue 12): who it is, where edges reach it, how many edges
// it holds. CloudHub's rebalancer publishes and reads them; where they are kept (one ConfigMap per replica
// on a cluster, a SQLite file on the local source) is a ReplicaReportStore.

export interface ReplicaReport {
  /** Unique among replicas (`modules.cloudHub.rebalance.replicaId`, default host name and hub port). */
  id: string;
  /** host:port of this replica's own hub: what a GOAWAY REBALANCE names so an edge dials it directly. */
  address: string;
  /** Edge sessions open on this replica. */
  connections: number;
  nodeLimit: number;
  /** Shutting down: takes no more edges and is expected to hold none. */
  draining: boolean;
  /** The reporter's clock, ms since the epoch; only compared with its own earlier reports. */
  reportedAtMs: number;
  /** host:port of this replica's Router REST listener, where the others forward requests for its nodes. */
  router?: string;
  /** host:port of this replica's kubelet relay, where the others pass kubelet streams for its nodes (modules.streams.replica). */
  streams?: string;
}

/** A report as found in the store, before it is trusted: where it came from and its text. */
export interface StoredReport {
  /** Where it was read, for logs (`configmap kubeedge/cloudcore-replica-a`, `file /x/replicas.db row a`). */
  origin: string;
  text: string;
}

export interface ReplicaReportStore {
  readonly description: string;
  /** Writes (creates or replaces) this replica's own report. */
  publish(report: ReplicaReport): Promise<void>;
  /** Every report there is, this replica's own included. */
  list(): Promise<StoredReport[]>;
  /** Removes this replica's report (a clean stop). */
  remove(id: string): Promise<void>;
  close?(): void;
}

/** More edges than any replica could hold: a count beyond this is garbage, not load. */
const MAX_COUNT = 10_000_000;
const ID = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;
const ADDRESS = /^(\[[0-9a-fA-F:]+\]|[^\s:/[\]]+):\d{1,5}$/;

/** The report in `text`, or why it cannot be trusted. Never throws: garbage from another writer is expected. */
export function parseReport(text: string): ReplicaReport | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: `not JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'not a JSON object' };
  const r = value as Record<string, unknown>;
  const count = (key: string, min: number): string | undefined =>
    typeof r[key] === 'number' && Number.isSafeInteger(r[key]) && (r[key] as number) >= min && (r[key] as number) <= MAX_COUNT
      ? undefined
      : `${key} ${JSON.stringify(r[key])} is not an integer from ${min} to ${MAX_COUNT}`;
  const problems = [
    typeof r.id === 'string' && ID.test(r.id) ? undefined : `id ${JSON.stringify(r.id)} is not a lower-case DNS label`,
    typeof r.address === 'string' && ADDRESS.test(r.address) ? undefined : `address ${JSON.stringify(r.address)} is not host:port`,
    count('connections', 0),
    count('nodeLimit', 1),
    typeof r.draining === 'boolean' ? undefined : `draining ${JSON.stringify(r.draining)} is not true or false`,
    typeof r.reportedAtMs === 'number' && Number.isFinite(r.reportedAtMs) && r.reportedAtMs > 0
      ? undefined
      : `reportedAtMs ${JSON.stringify(r.reportedAtMs)} is not a time`,
    optionalAddress(r, 'router'),
    optionalAddress(r, 'streams'),
  ].filter((p): p is string => p !== undefined);
  if (problems.length > 0) return { error: problems.join('; ') };
  return {
    id: r.id as string,
    address: r.address as string,
    connections: r.connections as number,
    nodeLimit: r.nodeLimit as number,
    draining: r.draining as boolean,
    reportedAtMs: r.reportedAtMs as number,
    ...(r.router === undefined ? {} : { router: r.router as string }),
    ...(r.streams === undefined ? {} : { streams: r.streams as string }),
  };
}

export function formatReport(report: ReplicaReport): string {
  const { id, address, connections, nodeLimit, draining, reportedAtMs, router, streams } = report;
  return JSON.stringify({ id, address, connections, nodeLimit, draining, reportedAtMs, router, streams });
}

/** Why an optional host:port field is wrong, if it is. */
function optionalAddress(r: Record<string, unknown>, key: 'router' | 'streams'): string | undefined {
  return r[key] === undefined || (typeof r[key] === 'string' && ADDRESS.test(r[key])) ? undefined : `${key} ${JSON.stringify(r[key])} is not host:port`;
}
