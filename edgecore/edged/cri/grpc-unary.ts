import http2 from 'node:http2';
import net from 'node:net';
import { CoreError } from '../../../shared/errors.js';

/** gRPC status codes this client produces itself (grpc/doc/statuscodes.md). */
export const GrpcStatus = { CANCELLED: 1, UNKNOWN: 2, DEADLINE_EXCEEDED: 4, RESOURCE_EXHAUSTED: 8, INTERNAL: 13, UNAVAILABLE: 14 } as const;

/** A call that did not answer OK; the CRI client turns it into a RuntimeError by its `grpcCode`. */
export class GrpcCallError extends CoreError {
  constructor(
    readonly grpcCode: number,
    readonly details: string,
  ) {
    super('ERR_GRPC', details);
  }
}

/**
 * Unary gRPC calls over a unix socket: HTTP/2 with prior knowledge, one length-prefixed message each way,
 * the status in the trailers. All CRI needs, in Node's own http2 instead of @grpc/grpc-js, which costs
 * edgecore ~12 MB of its 60 MB budget (docs/performance.md). One session, reopened after the runtime restarts.
 */
export class GrpcUnaryChannel {
  private session: http2.ClientHttp2Session | undefined;

  constructor(
    private readonly socketPath: string,
    private readonly maxMessageBytes: number,
  ) {}

  call(path: string, request: Uint8Array, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (code: number, details: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new GrpcCallError(code, details));
      };
      const timer = setTimeout(() => {
        fail(GrpcStatus.DEADLINE_EXCEEDED, `deadline of ${timeoutMs} ms exceeded`);
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }, timeoutMs);
      const stream = this.connect().request({
        ':method': 'POST',
        ':path': path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${Math.max(1, Math.ceil(timeoutMs))}m`,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      let headers: http2.IncomingHttpHeaders | undefined;
      let trailers: http2.IncomingHttpHeaders | undefined;
      stream.on('response', (h) => (headers = h));
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.maxMessageBytes + 5) {
          fail(GrpcStatus.RESOURCE_EXHAUSTED, `response larger than ${this.maxMessageBytes} bytes`);
          stream.close(http2.constants.NGHTTP2_CANCEL);
        } else chunks.push(chunk);
      });
      stream.on('error', (err) => fail(GrpcStatus.UNAVAILABLE, `${this.socketPath}: ${err.message}`));
      stream.on('close', () => {
        // A trailers-only response (an error) carries the status in the headers.
        const status = trailers?.['grpc-status'] ?? headers?.['grpc-status'];
        if (status === undefined)
          return fail(GrpcStatus.UNAVAILABLE, `${this.socketPath}: the runtime closed the call without a status (HTTP ${headers?.[':status'] ?? 'none'})`);
        const code = Number(status);
        if (code !== 0) return fail(code, decodeURIComponent(String(trailers?.['grpc-message'] ?? headers?.['grpc-message'] ?? '')));
        const body = Buffer.concat(chunks);
        if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5 || body[0] !== 0)
          return fail(GrpcStatus.INTERNAL, 'malformed or compressed gRPC response message');
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(body.subarray(5));
      });
      const frame = Buffer.allocUnsafe(5 + request.length);
      frame[0] = 0;
      frame.writeUInt32BE(request.length, 1);
      frame.set(request, 5);
      stream.end(frame);
    });
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = http2.connect('http://localhost', { createConnection: () => net.connect(this.socketPath) });
    // Failures reach the calls as stream errors; the next call opens a new session.
    session.on('error', () => undefined);
    session.on('close', () => this.session === session && (this.session = undefined));
    session.on('goaway', () => this.session === session && (this.session = undefined));
    // An idle connection to the runtime must not keep edgecore alive on its own.
    session.unref();
    this.session = session;
    return session;
  }
}
