import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { CLOSE_GRACE_MS, endThenDestroy, writeRawAnswer } from './http-answer.js';

/** The upgrade request to send to the runtime's streaming server. */
export interface RelayRequest {
  method: string;
  /** The one-time URL CRI answered (`http://127.0.0.1:<port>/exec/<token>`). */
  target: URL;
  /** Headers to pass on, as received; `Host` is written from `target`. */
  headers: ReadonlyArray<readonly [name: string, value: string]>;
  /** Bytes the client sent after its request head (normally none: SPDY clients wait for the 101). */
  head: Buffer;
}

export interface RelayOptions {
  /** Ends a session when no byte went either way for this long. */
  idleTimeoutMs: number;
  /** Ends the attempt when the runtime has not answered the upgrade within this long. */
  responseTimeoutMs: number;
  /** Opens the connection to the runtime's streaming server; a TCP connection to `target` by default. */
  connect?: (target: URL) => Duplex;
}

export interface RelaySession {
  /** Settles once both connections are closed, with the status the client got (0 if it got none). */
  readonly done: Promise<{ status: number }>;
  /** Ends the session at once (both connections destroyed). Idempotent. */
  destroy(): void;
}

const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;

/**
 * Relays one upgrade request to the runtime's streaming server and, after its answer, the bytes both ways,
 * unparsed: the kubelet does the same (`K8S:pkg/kubelet/server/server.go` `proxyStream`, an UpgradeAwareHandler,
 * `APIMACHINERY:pkg/util/proxy/upgradeaware.go` `tryUpgrade`). As there, a 101 starts the byte relay, a 4xx/5xx
 * answer is passed on and the connection closed, any other answer becomes 500 "invalid upgrade response", and
 * when either direction ends both connections close.
 */
export function relayUpgrade(client: Duplex, request: RelayRequest, options: RelayOptions): RelaySession {
  let upstream: Duplex;
  try {
    upstream = (options.connect ?? dialHttp)(request.target);
  } catch (err) {
    client.on('error', () => undefined);
    writeRawAnswer(client, { status: 500, body: `${(err as Error).message}\n` });
    return { done: closed(client).then(() => ({ status: 500 })), destroy: () => client.destroy() };
  }
  const relay = new StreamRelay(client, upstream, request, options);
  relay.start();
  return relay;
}

/** One session: the upgrade request, the runtime's answer, then the raw bytes. */
export class StreamRelay implements RelaySession {
  readonly done: Promise<{ status: number }>;
  /** The status the client got; 0 until it got one. */
  private status = 0;
  private shuttingDown = false;
  private timer: NodeJS.Timeout | undefined;
  private received = Buffer.alloc(0);
  private readonly onHeadData = (chunk: Buffer): void => this.onHead(chunk);

  constructor(
    private readonly client: Duplex,
    private readonly upstream: Duplex,
    private readonly request: RelayRequest,
    private readonly options: RelayOptions,
  ) {
    this.done = Promise.all([closed(client), closed(upstream)]).then(() => {
      clearTimeout(this.timer);
      return { status: this.status };
    });
    for (const s of [client, upstream]) {
      s.on('error', () => undefined); // shows as 'close'; the session's outcome is what the client got
      // A connection that goes away, other than by the shutdown below, takes the other with it.
      s.once('close', () => !this.shuttingDown && this.destroy());
    }
  }

  start(): void {
    const { client, upstream, request, options } = this;
    if (client.destroyed) return this.destroy();
    this.arm(options.responseTimeoutMs, () => this.answer(500, `no answer from ${request.target.host} within ${options.responseTimeoutMs} ms`));
    upstream.once('error', (err: Error) => this.status === 0 && this.answer(500, err.message));
    upstream.once('end', () => this.status === 0 && this.answer(500, 'unexpected EOF'));
    upstream.on('data', this.onHeadData);
    upstream.write(requestHead(request));
    if (request.head.length > 0) upstream.write(request.head);
  }

  destroy(): void {
    this.client.destroy();
    this.upstream.destroy();
  }

  private onHead(chunk: Buffer): void {
    this.received = Buffer.concat([this.received, chunk]);
    const end = this.received.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.received.length > MAX_RESPONSE_HEAD_BYTES) this.answer(500, 'malformed HTTP response: head too large');
      return;
    }
    this.upstream.off('data', this.onHeadData);
    this.upstream.pause();
    const statusLine = this.received.toString('latin1', 0, Math.min(end, 64));
    const code = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
    if (!code) return this.answer(500, `malformed HTTP response ${JSON.stringify(statusLine.slice(0, 40))}`);
    if (code !== 101 && code < 400) return this.answer(500, `invalid upgrade response: status code ${code}`);
    this.status = code;
    this.client.write(this.received);
    this.upstream.once('end', () => this.shutdown());
    if (code === 101) this.relayBytes();
    else this.passRefusal();
  }

  /** After the 101: bytes both ways until either side ends or nothing moves for idleTimeoutMs. */
  private relayBytes(): void {
    const { client, upstream } = this;
    this.arm(this.options.idleTimeoutMs);
    const refresh = (): void => void this.timer?.refresh();
    client.on('data', refresh);
    upstream.on('data', refresh);
    client.once('end', () => this.shutdown());
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** The runtime's refusal goes to the client as it is; then both close (the kubelet allows 10 s for that). */
  private passRefusal(): void {
    this.arm(CLOSE_GRACE_MS);
    this.upstream.end();
    this.upstream.pipe(this.client);
  }

  /** Once either direction has ended, the other is flushed and both close. */
  private shutdown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    this.arm(CLOSE_GRACE_MS);
    this.client.unpipe(this.upstream);
    this.upstream.unpipe(this.client);
    endThenDestroy(this.client);
    endThenDestroy(this.upstream);
  }

  /** An answer of our own (Go's http.Error text, with its newline) before any from the runtime. */
  private answer(status: number, text: string): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    clearTimeout(this.timer);
    this.status = status;
    this.upstream.destroy();
    writeRawAnswer(this.client, { status, body: `${text}\n` });
  }

  private arm(ms: number, onTimeout = (): void => this.destroy()): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(onTimeout, ms).unref();
  }
}

// containerd's streaming server is plain HTTP on loopback by default (`enable_tls_streaming = false`, facts §3).
// noDelay: keystrokes relayed to the runtime must not wait for its delayed ACK (docs/performance.md, streams).
function dialHttp(target: URL): Duplex {
  if (target.protocol !== 'http:') throw new Error(`streaming URL ${target.origin} is not plain http`);
  return connect({ host: target.hostname.replace(/^\[|\]$/g, ''), port: Number(target.port || 80), noDelay: true });
}

function requestHead(request: RelayRequest): Buffer {
  const lines = [`${request.method} ${request.target.pathname}${request.target.search} HTTP/1.1`, `Host: ${request.target.host}`];
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

function closed(stream: Duplex): Promise<void> {
  return stream.closed ? Promise.resolve() : new Promise((resolve) => stream.once('close', () => resolve()));
}
