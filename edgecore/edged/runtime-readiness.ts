import type { CriRuntime } from './cri/cri-types.js';

export interface RuntimeReadinessOptions {
  cri: Pick<CriRuntime, 'status'>;
  /** Named in the reason, e.g. `unix:///run/containerd/containerd.sock`. */
  endpoint: string;
  /** The runtime's name once known (`containerd`), for the reason. */
  runtimeName(): string;
  /** A verdict is reused this long: probes come every few seconds and must not each cost a CRI call. */
  cacheMs?: number;
  /** A Status call that takes longer counts as no answer. */
  timeoutMs?: number;
  now?: () => number;
}

/**
 * edgecore's `cri` readiness condition: the runtime answered a CRI Status call recently and says RuntimeReady.
 * Probes in the same cache window share one verdict, and concurrent probes share one call.
 */
export class RuntimeReadiness {
  private verdict: { at: number; why: string | undefined } | undefined;
  private inflight: Promise<string | undefined> | undefined;
  private readonly cacheMs: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(private readonly options: RuntimeReadinessOptions) {
    this.cacheMs = options.cacheMs ?? 5_000;
    this.timeoutMs = options.timeoutMs ?? 2_000;
    this.now = options.now ?? Date.now;
  }

  /** undefined when ready, otherwise why not. */
  check(): Promise<string | undefined> {
    if (this.verdict && this.now() - this.verdict.at < this.cacheMs) return Promise.resolve(this.verdict.why);
    this.inflight ??= this.ask().then((why) => {
      this.verdict = { at: this.now(), why };
      this.inflight = undefined;
      return why;
    });
    return this.inflight;
  }

  private async ask(): Promise<string | undefined> {
    const runtime = `${this.options.runtimeName() || 'the container runtime'} at ${this.options.endpoint}`;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.timeoutMs)));
    try {
      const answer = await Promise.race([this.options.cri.status(), timeout]);
      if (answer === 'timeout') return `${runtime} did not answer within ${this.timeoutMs} ms`;
      const condition = answer.find((c) => c.type === 'RuntimeReady');
      if (condition && !condition.status) return `${runtime} is not ready: ${condition.reason} ${condition.message}`.trim();
      return undefined;
    } catch (err) {
      return `${runtime} did not answer: ${(err as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
  }
}
