/**
 * The kubelet's restart back-off, per container: the first restart is immediate, then each waits twice as
 * long after the last exit (10 s, 20 s … up to 5 min by default). A container that ran long enough before it
 * exited starts over.
 */
export class CrashBackoff {
  private readonly delays = new Map<string, number>();

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** 0 when the container may be restarted now (and the next delay grows), else how long to wait. */
  waitMs(key: string, startedAtMs: number, finishedAtMs: number): number {
    if (finishedAtMs - startedAtMs > 2 * this.maxMs) this.delays.delete(key);
    const delay = this.delays.get(key);
    if (delay === undefined) {
      this.delays.set(key, this.initialMs);
      return 0;
    }
    const wait = finishedAtMs + delay - this.now();
    if (wait > 0) return wait;
    this.delays.set(key, Math.min(delay * 2, this.maxMs));
    return 0;
  }

  /** The delay the next restart will wait, for messages ("back-off 20s restarting failed container"). */
  currentMs(key: string): number {
    return this.delays.get(key) ?? this.initialMs;
  }

  forget(prefix: string): void {
    for (const key of this.delays.keys()) if (key.startsWith(prefix)) this.delays.delete(key);
  }
}
