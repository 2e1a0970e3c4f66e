import type { ReportMessage } from '../contracts/node-messages.js';
import type { DesiredObject, ObjectOperation } from '../contracts/object-sync.js';

export type { DesiredObject } from '../contracts/object-sync.js';

export interface SourceChange {
  node: string;
  operation: ObjectOperation;
  object: DesiredObject;
}

/**
 * Where EdgeController learns what each edge node should hold: the cluster (`kubernetes`) or the standalone
 * SQLite store (`local`).
 */
export interface ObjectSource {
  /** Resource types this source is the truth for (`*` for all). */
  readonly ownedTypes: string[];
  /** Loads current state, then calls `emit` for every later change. Resolves once the state is loaded. */
  start(emit: (change: SourceChange) => void): Promise<void>;
  stop(): Promise<void>;
  /** Everything the node should hold now. */
  desired(node: string): Iterable<DesiredObject>;
  /** One object the node may read, or undefined when it does not exist or is not the node's. */
  lookup(node: string, key: string): DesiredObject | undefined;
}

/**
 * Where edge reports go, and who hears that an edge came or went: for the cluster, the node's status, Lease,
 * pods and events written as the node; for the local store, the reports kept under the node.
 */
export interface NodeReports {
  /** Applies an edge report (status, event); throws an error naming why when refused. */
  report(report: ReportMessage): Promise<void>;
  connected(node: string): void;
  disconnected(node: string): void;
  /** Called once the source has loaded its state (a report may need what it loaded). */
  start?(): void;
  stop?(): void;
}
