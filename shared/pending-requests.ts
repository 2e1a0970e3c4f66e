import { TimeoutError } from './errors.js';

interface Pending<T> {
  resolve(value: T): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Requests waiting for their answer, by request id, each with a deadline: the bus's request/response and the
 * channel's rpc stream both correlate this way.
 */
export class PendingRequests<T> {
  private readonly pending = new Map<string, Pending<T>>();

  /** Waits for `settle(id)`; rejects with a TimeoutError carrying `timeoutMessage` after `timeoutMs`. */
  wait(id: string, timeoutMs: number, timeoutMessage: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError(timeoutMessage));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  has(id: string): boolean {
    return this.pending.has(id);
  }

  /** Resolves the waiter of `id`; false when nobody waits (it timed out, or never asked). */
  settle(id: string, value: T): boolean {
    const waiter = this.pending.get(id);
    if (!waiter) return false;
    this.pending.delete(id);
    clearTimeout(waiter.timer);
    waiter.resolve(value);
    return true;
  }

  fail(id: string, error: Error): void {
    const waiter = this.pending.get(id);
    if (!waiter) return;
    this.pending.delete(id);
    clearTimeout(waiter.timer);
    waiter.reject(error);
  }

  failAll(error: () => Error): void {
    for (const id of [...this.pending.keys()]) this.fail(id, error());
  }
}
