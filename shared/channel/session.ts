import { ConnectionError, CoreError, IllegalStateError, ProtocolError, asError } from '../errors.js';
import { decodeFrames, decodeHello, decodeMessage, encodeFrames, encodeHello } from './codec.js';
import type { Message } from '../message.js';
import { FIRST_DYNAMIC_STREAM, FrameType, GoAwayCode, STREAM_PRIORITY, StreamId, type Frame, type FrameInit, type Hello, type Settings } from './frame.js';
import { ReceiveStream, SendStream, type ReceivedMessage } from './streams.js';
import type { ChannelStream } from './channel-stream.js';
import { DynamicStreams } from './dynamic-streams.js';

/** Byte transport under a session (a WebSocket, or an in-memory pair in tests). */
export interface Transport {
  /** Writes one message; `done` fires once the bytes left the process (or failed). */
  send(data: Uint8Array, done: (err?: Error) => void): void;
  /** Graceful close with a WebSocket close code. */
  close(code: number, reason: string): void;
  /** Abort at once. */
  terminate(): void;
}

export interface SessionHandlers {
  /** Server: checks the client's hello and returns its own (throw to refuse). Client: sees the server's. */
  onHello(hello: Hello): Hello | void;
  /** Call `release` once the message is processed: it returns the stream credit to the sender. */
  onMessage(stream: number, message: ReceivedMessage, release: () => void): void;
  onAck?(stream: number, cumulative: number, selective: readonly number[]): void;
  /** The stream's send queue fell below its high-water mark again. */
  onDrain?(stream: number): void;
  onGoAway?(code: number, reason: string, address: string): void;
  /**
   * The peer opened a dynamic stream with `header`. Return to accept (the peer may then send), throw to refuse
   * (RESET REFUSED with the error's message). Without this handler every OPEN is refused, as an older peer does.
   */
  onStreamOpen?(stream: ChannelStream, header: Uint8Array): void;
  /** This side queued a GOAWAY (asked by its owner, or on a protocol error). */
  onGoAwaySent?(code: GoAwayCode): void;
  /** Exactly once; `error` is undefined for a clean close. */
  onClose(error: CoreError | undefined): void;
}

export interface SessionOptions {
  role: 'client' | 'server';
  transport: Transport;
  handlers: SessionHandlers;
  settings: Settings;
  /** Client only: the hello sent as the connection preface. */
  hello?: Hello;
  /**
   * When set, the session runs no timer of its own and its owner calls `checkLiveness()` at least every
   * quarter heartbeat (a server with thousands of sessions sweeps them all with one timer).
   */
  externalTimer?: boolean;
  now?: () => number;
  chunkBytes?: number;
  batchBytes?: number;
  maxInflightBytes?: number;
  sendHighWaterBytes?: number;
  /** Receive window of each dynamic stream (256 KiB): the bytes a peer may send ahead of the reader. */
  dynamicStreamWindowBytes?: number;
  /** Dynamic streams the peer may have open at once (128); its next OPEN is RESET with STREAM_LIMIT. */
  maxDynamicStreams?: number;
}

export type SessionStatus = 'handshaking' | 'open' | 'closed';

/** WebSocket close codes used by the channel. */
export const CloseCode = { normal: 1000, protocol: 1002, policy: 1008, tooBig: 1009, internal: 1011, timeout: 4000 } as const;

const MAX_CONTROL_PAYLOAD = 64 * 1024;

/**
 * The multiplexer over one connection: streams with their own order and credit, priorities (control first),
 * chunking, ACKs, keepalive and GOAWAY. Frames queued in one event-loop turn go out as one transport message.
 */
export class ChannelSession {
  status: SessionStatus = 'handshaking';
  /** The peer announced its departure (GOAWAY): however its transport then ends, that is a clean close. */
  private peerLeaving = false;
  peerHello: Hello | undefined;
  rttMs: number | undefined;
  // Indexed by stream id: the fixed streams are 1..4, and arrays cost less than Maps per connection.
  private readonly send: Array<SendStream | undefined> = [];
  private readonly recv: Array<ReceiveStream | undefined> = [];
  private readonly control: FrameInit[] = [];
  private acks: Array<{ cumulative: number; selective: number[] } | undefined> | undefined;
  private flushScheduled = false;
  private inflightBytes = 0;
  private lastReceivedAt: number;
  private lastSentAt: number;
  private pingNonce = 0;
  private pingSentAt = 0;
  private pongWaiters: Array<(rttMs: number) => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly chunkBytes: number;
  private readonly batchBytes: number;
  private readonly maxInflightBytes: number;
  private readonly highWater: number;
  private readonly maxFramePayload: number;
  private readonly dynamic: DynamicStreams;

  constructor(private readonly options: SessionOptions) {
    this.now = options.now ?? (() => performance.now());
    this.chunkBytes = options.chunkBytes ?? 16 * 1024;
    this.batchBytes = options.batchBytes ?? 64 * 1024;
    this.maxInflightBytes = options.maxInflightBytes ?? 128 * 1024;
    this.highWater = options.sendHighWaterBytes ?? 1024 * 1024;
    this.maxFramePayload = Math.max(this.chunkBytes, MAX_CONTROL_PAYLOAD);
    this.lastReceivedAt = this.lastSentAt = this.now();
    this.dynamic = new DynamicStreams({
      role: options.role,
      windowBytes: options.dynamicStreamWindowBytes ?? 256 * 1024,
      maxStreams: options.maxDynamicStreams ?? 128,
      chunkBytes: this.chunkBytes,
      now: this.now,
      openHandler: () => {
        const handlers = this.options.handlers;
        return handlers.onStreamOpen && ((stream, header) => handlers.onStreamOpen!(stream, header));
      },
      queueControl: (frame) => this.status !== 'closed' && this.queueControl(frame),
      scheduleFlush: () => this.scheduleFlush(),
    });
  }

  isClosed(): boolean {
    return this.status === 'closed';
  }

  get settings(): Settings {
    return this.options.settings;
  }

  /** Sends the preface (client) and arms the handshake deadline. */
  start(): void {
    if (this.options.role === 'client') {
      if (!this.options.hello) throw new IllegalStateError('a client session needs a hello');
      this.queueControl({ type: FrameType.OPEN, stream: StreamId.control, payload: encodeHello(this.options.hello) });
    }
    if (!this.options.externalTimer) this.armTimer();
  }

  /**
   * Feeds one transport message. Every frame is handled first (a PING is answered at once) and completed
   * messages are delivered after, so a keepalive never waits behind the processing of a large message.
   * Protocol violations close the session with a ProtocolError.
   */
  receive(data: Uint8Array): void {
    if (this.status === 'closed') return;
    this.lastReceivedAt = this.now();
    const completed: Array<() => void> = [];
    try {
      for (const frame of decodeFrames(data, this.maxFramePayload)) {
        this.handleFrame(frame, completed);
        if (this.isClosed()) return;
      }
    } catch (err) {
      this.fail(err instanceof CoreError ? err : new ProtocolError(asError(err).message, 'ERR_PROTOCOL', { cause: err }));
      return;
    }
    for (const deliver of completed) {
      if (this.isClosed()) return;
      deliver();
    }
  }

  /** The transport closed under us. */
  transportClosed(code: number, reason: string): void {
    if (this.status === 'closed') return;
    const clean = code === CloseCode.normal || code === 1001 || this.peerLeaving;
    this.finish(clean ? undefined : new ConnectionError(`connection closed by peer (code ${code}${reason ? `: ${reason}` : ''})`));
  }

  /** Decodes a received envelope; a malformed one fails the session (the peer broke the protocol). */
  decodeOrFail(data: Uint8Array): Message | undefined {
    try {
      return decodeMessage(data);
    } catch (err) {
      this.fail(err instanceof CoreError ? err : new ProtocolError(asError(err).message, 'ERR_INVALID_MESSAGE', { cause: err }));
      return undefined;
    }
  }

  /** Queues a message; returns its seq. Check `writable()` to respect the high-water mark. */
  write(stream: number, data: Uint8Array): number {
    if (this.status !== 'open') throw new IllegalStateError(`cannot write on a ${this.status} session`);
    const max = this.peerHello!.settings.maxMessageBytes;
    if (data.length > max) throw new ProtocolError(`message of ${data.length} bytes exceeds the peer's limit of ${max}`, 'ERR_MESSAGE_TOO_LARGE');
    const s = this.sendStream(stream);
    const seq = s.enqueue(data);
    if (s.queuedBytes >= this.highWater) s.needDrain = true;
    this.scheduleFlush();
    return seq;
  }

  writable(stream: number): boolean {
    return this.status === 'open' && (this.send[stream]?.queuedBytes ?? 0) < this.highWater;
  }

  /** Acknowledges every message up to `seq` on the stream (cumulative). */
  ack(stream: number, seq: number): void {
    const pending = this.pendingAck(stream);
    pending.cumulative = Math.max(pending.cumulative, seq);
    this.scheduleFlush();
  }

  /** Acknowledges single messages (processed out of order). */
  ackSelective(stream: number, seqs: readonly number[]): void {
    this.pendingAck(stream).selective.push(...seqs);
    this.scheduleFlush();
  }

  /**
   * Opens a dynamic stream; `header` (at most 64 KiB) tells the peer what it is for. The stream sends nothing
   * until the peer accepts (its 'accepted' event); a refusal destroys it with a StreamResetError naming the
   * peer's reason.
   */
  openStream(header: Uint8Array): ChannelStream {
    if (this.status !== 'open') throw new IllegalStateError(`cannot open a stream on a ${this.status} session`);
    if (header.length > MAX_CONTROL_PAYLOAD) {
      throw new ProtocolError(`stream header of ${header.length} bytes exceeds ${MAX_CONTROL_PAYLOAD}`, 'ERR_MESSAGE_TOO_LARGE');
    }
    return this.dynamic.open(header);
  }

  /** The open dynamic streams (for an idle timeout above the channel: see `lastActivityMs`). */
  dynamicStreams(): IterableIterator<ChannelStream> {
    return this.dynamic.values();
  }

  /** Sends a PING now; resolves with the round-trip time when its PONG arrives (never, if the session dies). */
  ping(): Promise<number> {
    return new Promise((resolve) => {
      this.pongWaiters.push(resolve);
      this.sendPing();
    });
  }

  goAway(code: GoAwayCode, reason: string, address = ''): void {
    if (this.status === 'closed') return;
    this.options.handlers.onGoAwaySent?.(code);
    this.queueControl({ type: FrameType.GOAWAY, code, reason, address });
  }

  /** Graceful: sends what is queued for control, then closes. */
  close(reason = 'closing'): void {
    if (this.status === 'closed') return;
    this.flushNow();
    this.options.transport.close(CloseCode.normal, reason);
    this.finish(undefined);
  }

  /** Aborts with an error: the peer sees the close code, the handler sees the error. */
  fail(error: CoreError): void {
    if (this.status === 'closed') return;
    const tooBig = error.code === 'ERR_MESSAGE_TOO_LARGE' || error.code === 'ERR_FRAME_TOO_LARGE';
    const code =
      error instanceof ProtocolError
        ? tooBig
          ? CloseCode.tooBig
          : CloseCode.protocol
        : error.code === 'ERR_SESSION_TIMEOUT'
          ? CloseCode.timeout
          : CloseCode.internal;
    if (error instanceof ProtocolError) this.goAway(GoAwayCode.PROTOCOL_ERROR, error.message.slice(0, 200));
    this.flushNow();
    this.options.transport.close(code, error.message.slice(0, 120));
    this.finish(error);
  }

  private finish(error: CoreError | undefined): void {
    if (this.status === 'closed') return;
    this.status = 'closed';
    clearInterval(this.timer);
    this.send.length = 0;
    this.recv.length = 0;
    this.acks = undefined;
    const peer = this.options.role === 'server' ? (this.peerHello?.nodeName ?? 'edge') : 'cloudcore';
    this.dynamic.cutAll(new ConnectionError(`channel to ${peer} closed: ${error?.message ?? 'session closed'}`, 'ERR_CONNECTION', { cause: error }));
    this.options.handlers.onClose(error);
  }

  private handleFrame(frame: Frame, completed: Array<() => void>): void {
    if (this.status === 'handshaking') return this.handleHandshake(frame);
    if (frame.stream >= FIRST_DYNAMIC_STREAM && frame.type !== FrameType.PING && frame.type !== FrameType.PONG && frame.type !== FrameType.GOAWAY) {
      return this.dynamic.handle(frame, completed);
    }
    switch (frame.type) {
      case FrameType.DATA:
        return this.handleData(frame, completed);
      case FrameType.ACK:
        this.knownStream(frame.stream);
        this.options.handlers.onAck?.(frame.stream, frame.seq, frame.acks);
        return;
      case FrameType.CREDIT:
        this.sendStream(this.knownStream(frame.stream)).credit += frame.credit;
        this.scheduleFlush();
        return;
      case FrameType.PING:
        this.control.push({ type: FrameType.PONG, seq: frame.seq });
        this.flushNow();
        return;
      case FrameType.PONG:
        if (frame.seq === this.pingNonce && this.pingSentAt > 0) {
          this.rttMs = this.now() - this.pingSentAt;
          for (const resolve of this.pongWaiters.splice(0)) resolve(this.rttMs);
        }
        return;
      case FrameType.GOAWAY:
        this.peerLeaving = frame.code !== GoAwayCode.PROTOCOL_ERROR;
        this.options.handlers.onGoAway?.(frame.code, frame.reason, frame.address);
        return;
      case FrameType.OPEN:
      case FrameType.CLOSE:
      case FrameType.RESET:
        return this.handleStreamControl(frame);
    }
  }

  private handleHandshake(frame: Frame): void {
    if (frame.type === FrameType.PING || frame.type === FrameType.PONG) return;
    if (frame.type === FrameType.GOAWAY) return this.options.handlers.onGoAway?.(frame.code, frame.reason, frame.address);
    if (frame.type !== FrameType.OPEN || frame.stream !== StreamId.control) {
      throw new ProtocolError(`expected the hello (OPEN on stream 0) first, got frame type ${frame.type} on stream ${frame.stream}`);
    }
    const hello = decodeHello(frame.payload);
    const s = hello.settings;
    if (s.streamWindowBytes < 1024 || s.maxMessageBytes < 1024) {
      throw new ProtocolError(`hello settings out of range (window ${s.streamWindowBytes}, max message ${s.maxMessageBytes})`);
    }
    const reply = this.options.handlers.onHello(hello);
    this.peerHello = hello;
    if (this.options.role === 'server') {
      if (!reply) throw new IllegalStateError('server session needs a hello to reply with');
      this.queueControl({ type: FrameType.OPEN, stream: StreamId.control, payload: encodeHello(reply) });
    }
    this.status = 'open';
  }

  private handleData(frame: Frame, completed: Array<() => void>): void {
    const id = this.knownStream(frame.stream);
    let stream = this.recv[id];
    if (!stream) {
      stream = new ReceiveStream(id, this.options.settings.streamWindowBytes, this.options.settings.maxMessageBytes);
      this.recv[id] = stream;
    }
    const message = stream.accept(frame);
    if (!message) return;
    let released = false;
    const receiver = stream;
    completed.push(() =>
      this.options.handlers.onMessage(id, message, () => {
        if (released || this.status === 'closed') return;
        released = true;
        if (receiver.release(message.data.length)) {
          this.queueControl({ type: FrameType.CREDIT, stream: id, credit: receiver.takeCredit() });
        }
      }),
    );
  }

  private handleStreamControl(frame: Frame): void {
    if (frame.type === FrameType.RESET) {
      throw new ProtocolError(`peer reset fixed stream ${frame.stream}: ${frame.reason || `code ${frame.code}`}`);
    }
    throw new ProtocolError(`frame type ${frame.type} is not allowed on fixed stream ${frame.stream}`);
  }

  private knownStream(id: number): number {
    if (id === StreamId.control || !(id in STREAM_PRIORITY)) {
      throw new ProtocolError(`frame for unknown stream ${id}`, 'ERR_UNKNOWN_STREAM');
    }
    return id;
  }

  private sendStream(id: number): SendStream {
    let stream = this.send[id];
    if (!stream) {
      const credit = this.peerHello?.settings.streamWindowBytes ?? 0;
      stream = new SendStream(id, STREAM_PRIORITY[id] ?? 9, credit);
      this.send[id] = stream;
    }
    return stream;
  }

  private pendingAck(stream: number): { cumulative: number; selective: number[] } {
    this.acks ??= [];
    return (this.acks[stream] ??= { cumulative: 0, selective: [] });
  }

  private queueControl(frame: FrameInit): void {
    this.control.push(frame);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.status === 'closed') return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushNow();
    });
  }

  /** Builds batches (control first, then streams by priority) while the transport has room. */
  private flushNow(): void {
    while (this.inflightBytes < this.maxInflightBytes) {
      const frames = this.control.splice(0);
      if (this.acks) {
        this.acks.forEach((pending, stream) => pending && frames.push({ type: FrameType.ACK, stream, seq: pending.cumulative, acks: pending.selective }));
        this.acks = undefined;
      }
      let budget = this.batchBytes;
      if (this.status === 'open') {
        for (const stream of this.streamsByPriority()) {
          budget -= stream.takeChunks(frames, budget, this.chunkBytes);
          if (budget <= 0) break;
        }
        // Dynamic streams (tunnels) only fill what the fixed streams left of the batch.
        if (budget > 0) this.dynamic.takeChunks(frames, budget);
      }
      if (frames.length === 0) break;
      this.writeBatch(encodeFrames(frames));
    }
    this.notifyDrained();
  }

  private writeBatch(data: Uint8Array): void {
    this.inflightBytes += data.length;
    this.lastSentAt = this.now();
    this.options.transport.send(data, (err) => {
      this.inflightBytes -= data.length;
      if (err) this.fail(new ConnectionError(`write failed: ${err.message}`, 'ERR_CONNECTION', { cause: err }));
      else if (this.hasPending()) this.scheduleFlush();
    });
  }

  private streamsByPriority(): SendStream[] {
    const streams = this.send.filter((s): s is SendStream => s !== undefined && s.hasSendable());
    return streams.length > 1 ? streams.sort((a, b) => a.priority - b.priority) : streams;
  }

  private hasPending(): boolean {
    if (this.control.length > 0 || this.acks !== undefined) return true;
    for (const s of this.send) if (s?.hasSendable()) return true;
    return this.dynamic.hasSendable();
  }

  private notifyDrained(): void {
    for (const s of this.send) {
      if (s?.needDrain && s.queuedBytes < this.highWater / 2) {
        s.needDrain = false;
        this.options.handlers.onDrain?.(s.id);
      }
    }
  }

  /**
   * Keepalive: the client pings when it has not heard from or written to the server for a heartbeat interval;
   * the server only probes after 1.5 intervals of silence, so an idle link carries one ping and one pong per
   * interval. Either side closes after the session timeout without a frame.
   */
  private armTimer(): void {
    const { heartbeatIntervalMs, sessionTimeoutMs } = this.options.settings;
    this.timer = setInterval(() => this.checkLiveness(), Math.max(50, Math.min(heartbeatIntervalMs, sessionTimeoutMs) / 4));
    this.timer.unref();
  }

  /** Sends a due keepalive or closes a silent session; called by the session's timer or by its owner. */
  checkLiveness(): void {
    if (this.status === 'closed') return;
    const { heartbeatIntervalMs: heartbeatMs, sessionTimeoutMs: timeoutMs } = this.options.settings;
    const now = this.now();
    const silentMs = now - this.lastReceivedAt;
    if (silentMs >= timeoutMs) {
      const what = this.status === 'handshaking' ? 'no hello' : 'no frame';
      this.fail(new ConnectionError(`${what} from peer for ${Math.round(silentMs)} ms (session timeout ${timeoutMs} ms)`, 'ERR_SESSION_TIMEOUT'));
      return;
    }
    if (this.status !== 'open') return;
    const due = this.options.role === 'client' ? silentMs >= heartbeatMs || now - this.lastSentAt >= heartbeatMs : silentMs >= heartbeatMs * 1.5;
    if (due) this.sendPing();
  }

  /** Nonces stay below 128 so a PING costs a one-byte varint on the wire. */
  private sendPing(): void {
    this.pingNonce = (this.pingNonce + 1) % 128;
    this.pingSentAt = this.now();
    this.queueControl({ type: FrameType.PING, seq: this.pingNonce });
  }
}
