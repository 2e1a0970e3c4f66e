export interface BackoffOptions {
  initialDelayMs: number;
  maxDelayMs: number;
  multiplier?: number;
  /**
   * `equal` (the default): a delay in [50%, 100%] of the ceiling, never shorter than half of it. `full`: a delay
   * in [0, 100%] of the ceiling (AWS "full jitter"), which spreads a crowd that lost its server at the same moment
   * over the whole window instead of its second half.
   */
  jitter?: 'equal' | 'full';
  /** Injected for tests; defaults to Math.random. */
  random?: () => number;
}

/**
 * Exponential backoff with jitter: the ceiling is min(max, initial × multiplier^n) for the n-th delay since the
 * last reset, and each delay is drawn below it, so thousands of edges cut off together do not come back in lockstep.
 */
export class Backoff {
  private attempt = 0;

  constructor(private readonly options: BackoffOptions) {}

  next(): number {
    const { initialDelayMs, maxDelayMs, multiplier = 2, jitter = 'equal', random = Math.random } = this.options;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * multiplier ** this.attempt);
    if (ceiling < maxDelayMs) this.attempt++;
    const floor = jitter === 'full' ? 0 : 0.5;
    return Math.round(ceiling * (floor + random() * (1 - floor)));
  }

  reset(): void {
    this.attempt = 0;
  }
}
