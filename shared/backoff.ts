export interface BackoffOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier?: number;
  /** Injected for tests; defaults to Math.random. */
  random?: () => number;
}

/**
 * Exponential backoff with jitter: each delay is drawn from [50%, 100%] of min(max, initial × multiplier^n),
 * so thousands of edges cut off together do not come back in lockstep.
 */
export class Backoff {
  private attempt = 0;

  constructor(private readonly options: BackoffOptions) {}

  next(): number {
    const { initialDelayMs, maxDelayMs, multiplier = 2, random = Math.random } = this.options;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * multiplier ** this.attempt);
    if (ceiling < maxDelayMs) this.attempt++;
    return Math.round(ceiling * (0.5 + random() * 0.5));
  }

  reset(): void {
    this.attempt = 0;
  }
}
