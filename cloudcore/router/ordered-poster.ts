import { Pool } from 'undici';

/**
 * The POSTs of eventbus → rest Rules, in the order they are asked for, pipelined on one keep-alive connection
 * per origin (HTTP/1.1 pipelining, undici): the cloud URL gets them in order without a round trip between
 * each. undici is Node's own HTTP client, as a package: Node's fetch does not pipeline, and node:http sends a
 * request only once the one before it has been answered.
 */
export class OrderedPoster {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly pipelining = 32) {}

  /** The status the URL answered; rejects when it cannot be reached or does not answer within timeoutMs. */
  async post(url: string, headers: Record<string, string>, body: Buffer, timeoutMs: number): Promise<number> {
    const u = new URL(url);
    let pool = this.pools.get(u.origin);
    if (!pool) {
      pool = new Pool(u.origin, { connections: 1, pipelining: this.pipelining, keepAliveTimeout: 30_000 });
      this.pools.set(u.origin, pool);
    }
    // Enqueued now, before any await: requests go out in call order. `idempotent` lets undici pipeline a POST;
    // a message sent twice after a broken connection is what at-least-once delivery allows anyway. Without
    // `blocking: false` undici sends nothing behind a POST until its answer's headers are back (its default for
    // every method but HEAD): one round trip per message again, whatever `pipelining` says.
    const answer = pool.request({
      path: `${u.pathname}${u.search}`,
      method: 'POST',
      headers,
      body,
      idempotent: true,
      blocking: false,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const { statusCode, body: responseBody } = await answer;
    await responseBody.dump();
    return statusCode;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
    this.pools.clear();
  }
}
