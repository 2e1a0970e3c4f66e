import type { Logger } from '../../shared/logger.js';

/** How many errors a Rule's status keeps (KubeEdge keeps only the last). */
export const KEPT_ERRORS = 10;

/** What happened to one Rule here since its status was last written. */
interface Pending {
  namespace: string;
  name: string;
  success: number;
  fail: number;
  /** `<RFC 3339 time> <reason>`, newest last. */
  errors: string[];
}

export interface StoredStatus {
  successMessages?: number;
  failMessages?: number;
  errors?: string[];
}

export interface RuleStatusDeps {
  /**
   * Merge-patches the Rule with this status, only if it is still at `resourceVersion`: false when it is not (the
   * API server's 409), true when written or when the Rule is gone.
   */
  patch(namespace: string, name: string, status: Required<StoredStatus>, resourceVersion: string): Promise<boolean>;
  logger: Logger;
  intervalMs: number;
  /** The Rule as the informer has it: its status and resourceVersion; undefined once deleted. */
  current(namespace: string, name: string): { status?: StoredStatus; resourceVersion?: string } | undefined;
}

/**
 * Rule status, counted in memory and written at most every `intervalMs` per Rule (KubeEdge writes it once per
 * message, an API write each, and keeps only the last error). Each write adds what happened here since the last
 * one to the status the Rule has, on the condition that it still has it: several replicas each add their share
 * and none overwrites another's (a conflict is tried again at the next interval, with the informer's newer copy).
 */
export class RuleStatus {
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;
  private flushing = false;

  constructor(private readonly deps: RuleStatusDeps) {}

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.deps.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  success(namespace: string, name: string): void {
    this.of(namespace, name).success++;
  }

  failure(namespace: string, name: string, reason: string): void {
    const p = this.of(namespace, name);
    p.fail++;
    addError(p, reason);
  }

  /** Why a Rule does not act (not a message): kept with the errors, without counting a failure. */
  problem(namespace: string, name: string, reason: string): void {
    addError(this.of(namespace, name), reason);
  }

  /** A deleted Rule: nothing more to write for it. */
  forget(namespace: string, name: string): void {
    this.pending.delete(`${namespace}/${name}`);
  }

  private of(namespace: string, name: string): Pending {
    const k = `${namespace}/${name}`;
    let p = this.pending.get(k);
    if (!p) this.pending.set(k, (p = { namespace, name, success: 0, fail: 0, errors: [] }));
    return p;
  }

  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (const [k, p] of [...this.pending]) {
        const current = this.deps.current(p.namespace, p.name);
        if (!current?.resourceVersion) {
          this.pending.delete(k);
          continue;
        }
        // What is written now; counts arriving during the write stay pending.
        const taken = { success: p.success, fail: p.fail, errors: p.errors.length };
        const was = current.status ?? {};
        const status = {
          successMessages: (was.successMessages ?? 0) + taken.success,
          failMessages: (was.failMessages ?? 0) + taken.fail,
          errors: [...(was.errors ?? []), ...p.errors].slice(-KEPT_ERRORS),
        };
        try {
          if (!(await this.deps.patch(p.namespace, p.name, status, current.resourceVersion))) {
            // Written by another replica (or our last write not seen yet): the informer's next copy has it.
            this.deps.logger.debug({ rule: k }, 'rule status changed meanwhile; adding to it at the next interval');
            continue;
          }
        } catch (err) {
          this.deps.logger.warn({ err, rule: k }, 'rule status not written; trying again');
          continue;
        }
        p.success -= taken.success;
        p.fail -= taken.fail;
        p.errors.splice(0, taken.errors);
        if (p.success === 0 && p.fail === 0 && p.errors.length === 0 && this.pending.get(k) === p) this.pending.delete(k);
      }
    } finally {
      this.flushing = false;
    }
  }
}

function addError(p: Pending, reason: string): void {
  p.errors.push(`${new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')} ${reason}`);
  if (p.errors.length > KEPT_ERRORS) p.errors.splice(0, p.errors.length - KEPT_ERRORS);
}
