import type { Logger } from '../../shared/logger.js';

/** How many errors a Rule's status keeps (KubeEdge keeps only the last). */
export const KEPT_ERRORS = 10;

interface Counts {
  namespace: string;
  name: string;
  success: number;
  fail: number;
  /** `<RFC 3339 time> <reason>`, newest last. */
  errors: string[];
  dirty: boolean;
}

export interface RuleStatusDeps {
  /** Merge-patches the Rule's status subresource. */
  patch(namespace: string, name: string, status: { successMessages: number; failMessages: number; errors: string[] }): Promise<void>;
  logger: Logger;
  intervalMs: number;
  /** Counts a Rule had when this replica first saw it, so a restart goes on from them. */
  initial(namespace: string, name: string): { successMessages?: number; failMessages?: number; errors?: string[] } | undefined;
}

/**
 * Rule status, counted in memory and written at most every `intervalMs` per Rule (KubeEdge writes it once per
 * message, an API write each). Several replicas each count their own share on top of what they found; the
 * last writer's view wins, as in KubeEdge.
 */
export class RuleStatus {
  private readonly counts = new Map<string, Counts>();
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
    const c = this.of(namespace, name);
    c.success++;
    c.dirty = true;
  }

  failure(namespace: string, name: string, reason: string): void {
    const c = this.of(namespace, name);
    c.fail++;
    this.addError(c, reason);
  }

  private addError(c: Counts, reason: string): void {
    c.errors.push(`${new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')} ${reason}`);
    if (c.errors.length > KEPT_ERRORS) c.errors.splice(0, c.errors.length - KEPT_ERRORS);
    c.dirty = true;
  }

  /** Why a Rule does not act (not a message): kept with the errors, without counting a failure. */
  problem(namespace: string, name: string, reason: string): void {
    const c = this.of(namespace, name);
    this.addError(c, reason);
  }

  /** A deleted Rule: nothing more to write for it. */
  forget(namespace: string, name: string): void {
    this.counts.delete(`${namespace}/${name}`);
  }

  private of(namespace: string, name: string): Counts {
    const k = `${namespace}/${name}`;
    let c = this.counts.get(k);
    if (!c) {
      const found = this.deps.initial(namespace, name);
      c = {
        namespace,
        name,
        success: found?.successMessages ?? 0,
        fail: found?.failMessages ?? 0,
        errors: [...(found?.errors ?? [])].slice(-KEPT_ERRORS),
        dirty: false,
      };
      this.counts.set(k, c);
    }
    return c;
  }

  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (const c of this.counts.values()) {
        if (!c.dirty) continue;
        c.dirty = false;
        try {
          await this.deps.patch(c.namespace, c.name, { successMessages: c.success, failMessages: c.fail, errors: [...c.errors] });
        } catch (err) {
          c.dirty = true;
          this.deps.logger.warn({ err, rule: `${c.namespace}/${c.name}` }, 'rule status not written; trying again');
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}
