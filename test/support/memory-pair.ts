import { ChannelSession, type SessionHandlers, type SessionOptions, type Transport } from '../../shared/channel/session.js';
import { PROTOCOL_VERSION, type Hello, type Settings } from '../../shared/channel/frame.js';
import type { ReceivedMessage } from '../../shared/channel/streams.js';
import type { CoreError } from '../../shared/errors.js';

export const testSettings: Settings = {
  streamWindowBytes: 256 * 1024,
  maxMessageBytes: 16 * 1024 * 1024,
  heartbeatIntervalMs: 1_000,
  sessionTimeoutMs: 3_000,
};

export interface Endpoint {
  session: ChannelSession;
  received: Array<{ stream: number; message: ReceivedMessage; release: () => void }>;
  acks: Array<{ stream: number; cumulative: number; selective: readonly number[] }>;
  closed: { error: CoreError | undefined } | undefined;
  /** Every transport message this endpoint wrote, in order. */
  written: Uint8Array[];
  /** Release each message as soon as it arrives (default true). */
  autoRelease: boolean;
}

/** Two sessions joined by an in-memory transport that delivers asynchronously, like a socket. */
export function memoryPair(
  opts: {
    client?: Partial<Settings>;
    server?: Partial<Settings>;
    serverHandlers?: Partial<SessionHandlers>;
    clientHandlers?: Partial<SessionHandlers>;
    /** Session options for both sides (dynamic stream window and limit, chunk sizes …). */
    session?: Partial<Pick<SessionOptions, 'dynamicStreamWindowBytes' | 'maxDynamicStreams' | 'chunkBytes'>>;
  } = {},
): {
  client: Endpoint;
  server: Endpoint;
  deliver: (from: 'client' | 'server', data: Uint8Array) => void;
} {
  const endpoints: Record<'client' | 'server', Endpoint> = {} as never;
  const transportFor = (self: 'client' | 'server'): Transport => {
    const peer = self === 'client' ? 'server' : 'client';
    return {
      send(data, done) {
        endpoints[self].written.push(data);
        setImmediate(() => {
          done();
          endpoints[peer].session.receive(data);
        });
      },
      close(code, reason) {
        setImmediate(() => endpoints[peer].session.transportClosed(code, reason));
      },
      terminate() {
        setImmediate(() => endpoints[peer].session.transportClosed(1006, ''));
      },
    };
  };
  const make = (role: 'client' | 'server', settings: Settings, extra: Partial<SessionHandlers> = {}): Endpoint => {
    const endpoint = { received: [], acks: [], closed: undefined, written: [], autoRelease: true } as unknown as Endpoint;
    const hello: Hello = { protocolVersion: PROTOCOL_VERSION, nodeName: 'node-a', settings, softwareVersion: 'test', sessionId: '' };
    endpoint.session = new ChannelSession({
      ...opts.session,
      role,
      settings,
      hello: role === 'client' ? hello : undefined,
      transport: transportFor(role),
      handlers: {
        onHello: (peer) => (role === 'server' ? { ...hello, nodeName: peer.nodeName, sessionId: 's1' } : undefined),
        onMessage: (stream, message, release) => {
          endpoint.received.push({ stream, message, release });
          if (endpoint.autoRelease) release();
        },
        onAck: (stream, cumulative, selective) => endpoint.acks.push({ stream, cumulative, selective }),
        onClose: (error) => (endpoint.closed = { error }),
        ...extra,
      },
    });
    return endpoint;
  };
  endpoints.client = make('client', { ...testSettings, ...opts.client }, opts.clientHandlers);
  endpoints.server = make('server', { ...testSettings, ...opts.server }, opts.serverHandlers);
  return {
    client: endpoints.client,
    server: endpoints.server,
    deliver: (from, data) => endpoints[from === 'client' ? 'server' : 'client'].session.receive(data),
  };
}

/** Polls `predicate` until it holds or `timeoutMs` passes (no sleeps-and-hope). */
export async function waitFor(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
