import { connect } from 'node:net';
import type { Duplex } from 'node:stream';
import { CLOSE_GRACE_MS, endThenDestroy, writeRawAnswer, type HttpAnswer } from './http-answer.js';

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
  let status = 0;
  let shuttingDown = false;
  let timer: NodeJS.Timeout | undefined;
  const destroy = (): void => {
    client.destroy();
    upstream.destroy();
  };
  const arm = (ms: number, onTimeout = destroy): void => {
    clearTimeout(timer);
    timer = setTimeout(onTimeout, ms).unref();
  };
  const answer = (a: HttpAnswer): void => {
    if (shuttingDown) return;
    clearTimeout(timer);
    status = a.status;
    shuttingDown = true;
    upstream.destroy();
    writeRawAnswer(client, a);
  };
  // Once either direction has ended, the other is flushed and closed; otherwise a connection that goes
  // away takes the other with it.
  const shutdown = (): void => {
    if (shuttingDown) return;
    shuttingDown = true;
    arm(CLOSE_GRACE_MS);
    client.unpipe(upstream);
    upstream.unpipe(client);
    endThenDestroy(client);
    endThenDestroy(upstream);
  };
  const done = Promise.all([closed(client), closed(upstream)]).then(() => {
    clearTimeout(timer);
    return { status };
  });
  for (const s of [client, upstream]) {
    s.on('error', () => undefined); // reported by 'close'; the session's outcome is what the client got
    s.once('close', () => !shuttingDown && destroy());
  }
  if (client.destroyed) {
    destroy();
    return { done, destroy };
  }
  arm(options.responseTimeoutMs, () => answer({ status: 500, body: `no answer from ${request.target.host} within ${options.responseTimeoutMs} ms\n` }));
  upstream.once('error', (err: Error) => status === 0 && answer({ status: 500, body: `${err.message}\n` }));
  upstream.write(requestHead(request));
  if (request.head.length > 0) upstream.write(request.head);

  let received = Buffer.alloc(0);
  const onHead = (chunk: Buffer): void => {
    received = Buffer.concat([received, chunk]);
    const end = received.indexOf('\r\n\r\n');
    if (end < 0) {
      if (received.length > MAX_RESPONSE_HEAD_BYTES) answer({ status: 500, body: 'malformed HTTP response: head too large\n' });
      return;
    }
    upstream.off('data', onHead);
    upstream.pause();
    const code = /^HTTP\/1\.[01] (\d{3})/.exec(received.toString('latin1', 0, Math.min(end, 64)))?.[1];
    if (!code) return answer({ status: 500, body: `malformed HTTP response ${JSON.stringify(received.toString('latin1', 0, 40))}\n` });
    if (Number(code) !== 101 && Number(code) < 400) return answer({ status: 500, body: `invalid upgrade response: status code ${code}\n` });
    status = Number(code);
    client.write(received);
    upstream.once('end', shutdown);
    if (status === 101) {
      arm(options.idleTimeoutMs);
      const refresh = (): void => void timer?.refresh();
      client.on('data', refresh);
      upstream.on('data', refresh);
      client.once('end', shutdown);
      client.pipe(upstream);
    } else {
      // The runtime's refusal goes to the client as it is; then both close (the kubelet allows 10 s for that).
      arm(CLOSE_GRACE_MS);
      upstream.end();
    }
    upstream.pipe(client);
  };
  upstream.on('data', onHead);
  upstream.once('end', () => status === 0 && answer({ status: 500, body: 'unexpected EOF\n' }));
  return { done, destroy };
}

// containerd's streaming server is plain HTTP on loopback by default (`enable_tls_streaming = false`, facts §3).
function dialHttp(target: URL): Duplex {
  if (target.protocol !== 'http:') throw new Error(`streaming URL ${target.origin} is not plain http`);
  return connect({ host: target.hostname.replace(/^\[|\]$/g, ''), port: Number(target.port || 80) });
}

function requestHead(request: RelayRequest): Buffer {
  const lines = [`${request.method} ${request.target.pathname}${request.target.search} HTTP/1.1`, `Host: ${request.target.host}`];
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

function closed(stream: Duplex): Promise<void> {
  return stream.closed ? Promise.resolve() : new Promise((resolve) => stream.once('close', () => resolve()));
}
