import type { WebSocket, RawData } from 'ws';
import { ProtocolError } from '../errors.js';
import { CloseCode, type ChannelSession, type Transport } from './session.js';

/** Transport over a `ws` WebSocket: one binary WebSocket message per frame batch. */
export function webSocketTransport(ws: WebSocket): Transport {
  return {
    send(data, done) {
      ws.send(data, { binary: true }, done);
    },
    close(code, reason) {
      // `ws` closes gracefully with a close frame; fall back to terminate if the peer never answers.
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(code, reason);
      setTimeout(() => ws.terminate(), 5_000).unref();
    },
    terminate() {
      ws.terminate();
    },
  };
}

/** Routes the socket's events into the session. */
export function bindWebSocket(ws: WebSocket, session: ChannelSession): void {
  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (!isBinary) {
      session.fail(new ProtocolError('text websocket message; the channel speaks binary frames only', 'ERR_FRAME_MALFORMED'));
      return;
    }
    session.receive(Array.isArray(data) ? Buffer.concat(data) : (data as Buffer));
  });
  ws.on('close', (code: number, reason: Buffer) => session.transportClosed(code, reason.toString()));
  ws.on('error', (err: Error & { code?: string }) => {
    // `ws` reports oversized and malformed WebSocket framing here before closing the socket itself.
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      session.fail(new ProtocolError(`websocket message too large: ${err.message}`, 'ERR_FRAME_TOO_LARGE'));
    } else if (err.code?.startsWith('WS_ERR_')) {
      session.fail(new ProtocolError(`invalid websocket framing: ${err.message}`, 'ERR_FRAME_MALFORMED'));
    } else {
      session.transportClosed(CloseCode.internal, err.message);
    }
  });
}
