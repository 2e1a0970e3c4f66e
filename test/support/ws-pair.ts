import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';
import { PROTOCOL_VERSION, type Hello } from '../../shared/channel/frame.js';
import { ChannelSession, type SessionHandlers, type SessionOptions } from '../../shared/channel/session.js';
import { bindWebSocket, webSocketTransport } from '../../shared/channel/ws-transport.js';
import { testSettings, waitFor } from './memory-pair.js';

const hello: Hello = { protocolVersion: PROTOCOL_VERSION, nodeName: 'node-ws', settings: testSettings, softwareVersion: 'test', sessionId: '' };

export interface WebSocketPair {
  cloud: ChannelSession;
  edge: ChannelSession;
  /** Closes both sessions, the socket and the server. */
  close(): Promise<void>;
}

/** A cloud and an edge session over a real `ws` WebSocket on 127.0.0.1, port 0 (plain ws: no TLS to measure). */
export async function webSocketPair(
  edgeHandlers: Partial<SessionHandlers> = {},
  options: Partial<Pick<SessionOptions, 'dynamicStreamWindowBytes' | 'maxDynamicStreams'>> = {},
): Promise<WebSocketPair> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const cloudReady = new Promise<ChannelSession>((resolve) =>
    server.once('connection', (ws) => {
      const cloud = new ChannelSession({
        ...options,
        role: 'server',
        settings: testSettings,
        transport: webSocketTransport(ws),
        handlers: { onHello: (peer) => ({ ...hello, nodeName: peer.nodeName, sessionId: 'ws-1' }), onMessage: () => undefined, onClose: () => undefined },
      });
      bindWebSocket(ws, cloud);
      cloud.start();
      resolve(cloud);
    }),
  );
  const { port } = server.address() as { port: number };
  const ws = new WebSocket(`ws://127.0.0.1:${port}/events`);
  await once(ws, 'open');
  const edge = new ChannelSession({
    ...options,
    role: 'client',
    settings: testSettings,
    hello,
    transport: webSocketTransport(ws),
    handlers: { onHello: () => undefined, onMessage: () => undefined, onClose: () => undefined, ...edgeHandlers },
  });
  bindWebSocket(ws, edge);
  edge.start();
  const cloud = await cloudReady;
  await waitFor(() => cloud.status === 'open' && edge.status === 'open', 5000, 'websocket handshake');
  return {
    cloud,
    edge,
    async close() {
      cloud.close('done');
      edge.close('done');
      ws.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
