import { Duplex } from 'node:stream';
import { ProtocolError, StreamResetError } from '../errors.js';
import { FrameType, ResetCode, type FrameInit } from './frame.js';

/** What a dynamic stream needs from the streams table of its session. */
export interface StreamLink {
  readonly chunkBytes: number;
  now(): number;
  /** Queues a frame ahead of all data (CREDIT, RESET); dropped once the session is closed. */
  sendControl(frame: FrameInit): void;
  /** The stream has DATA or a CLOSE ready to go. */
  wake(stream: ChannelStream): void;
  /** The stream is finished both ways or reset: it leaves the table and stops counting against the limit. */
  forget(stream: ChannelStream): void;
}

export interface ChannelStreamInit {
  id: number;
  header: Uint8Array;
  initiator: 'local' | 'remote';
  /** Bytes this side lets the peer have in flight unread. */
  windowBytes: number;
  /** Credit the peer gave up front: its window in the OPEN of a stream it opened; 0 until it accepts ours. */
  initialCredit: number;
  link: StreamLink;
}

/**
 * A dynamic channel stream as a Node Duplex: plain bytes both ways, no messages and no ACKs.
 *
 * Writes become DATA frames as the peer's credit allows; `write()` returns false once the credit and a queue
 * of about one chunk are used up, and 'drain' follows when CREDIT returns. The peer gets credit back only for
 * bytes pushed into this Duplex while it asked for more (`_read`), so a consumer that stops reading stops the
 * sender, and at most window + one chunk is buffered here. `end()` sends CLOSE after the queued data
 * (half-close); `destroy(err)` sends RESET; a RESET from the peer destroys the stream with a StreamResetError.
 */
export class ChannelStream extends Duplex {
  readonly id: number;
  /** The opaque header of the OPEN (the layer above decides what it means). */
  readonly header: Uint8Array;
  readonly initiator: 'local' | 'remote';
  /** The peer accepted the stream (its first CREDIT); always true for a stream the peer opened. */
  accepted: boolean;
  /** When bytes last moved either way, on the session's clock: for an idle timeout above the channel. */
  lastActivityMs: number;
  bytesSent = 0;
  bytesReceived = 0;
  /** Queued in the session's round-robin of streams with something to send. */
  scheduled = false;
  /** A pump is queued for after the current transport message's frames are handled. */
  pumpPending = false;
  /**
   * The application has the stream (always, for one opened here; after `onStreamOpen` ran, for one the peer
   * opened). Before that nobody can listen for 'error', so an end is silent.
   */
  handedOver: boolean;

  private readonly link: StreamLink;
  private readonly windowBytes: number;
  // Sending half.
  private credit: number;
  private readonly outgoing: Buffer[] = [];
  private outgoingOffset = 0;
  private outgoingBytes = 0;
  private writeCallback: ((err?: Error | null) => void) | undefined;
  private heldWriteBytes = 0;
  private finalCallback: ((err?: Error | null) => void) | undefined;
  private sendState: 'open' | 'closing' | 'closed' = 'open';
  // Receiving half.
  private readonly incoming: Buffer[] = [];
  private incomingBytes = 0;
  /** Credit given to the peer so far, the initial window included. */
  private grantedBytes: number;
  /** Bytes handed to the application and not yet granted back. */
  private ungrantedBytes = 0;
  private wantRead = false;
  private peerClosed = false;
  private endPushed = false;
  /** Reset either way or cut by the session: no frame may be sent for it any more. */
  private gone = false;

  constructor(init: ChannelStreamInit) {
    // A readable high-water mark of one byte: push() refuses more as soon as one chunk waits unread, so the
    // Duplex's own buffer adds at most one chunk to the window. Two chunks of writable buffer let a writer
    // of chunk-sized writes keep one in the queue and one waiting.
    super({ readableHighWaterMark: 1, writableHighWaterMark: 2 * init.link.chunkBytes, allowHalfOpen: true });
    this.id = init.id;
    this.header = init.header;
    this.initiator = init.initiator;
    this.accepted = init.initiator === 'remote';
    this.handedOver = init.initiator === 'local';
    this.link = init.link;
    this.windowBytes = init.windowBytes;
    this.grantedBytes = init.windowBytes;
    this.credit = init.initialCredit;
    this.lastActivityMs = init.link.now();
  }

  /** Bytes received and not yet read by the application (this side's queue plus the Duplex buffer). */
  get bufferedBytes(): number {
    return this.incomingBytes + this.readableLength;
  }

  /** Bytes accepted by write() and not yet sent (waiting for credit). */
  get queuedBytes(): number {
    // writableLength still counts the write whose callback is held, which is already in `outgoing`.
    return this.outgoingBytes + this.writableLength - this.heldWriteBytes;
  }

  /**
   * Aborts the stream with a chosen RESET code and reason for the peer (destroy() sends CANCEL). This side's
   * stream is destroyed with `error`, or without one: the caller knows why it gave up.
   */
  reset(code: ResetCode, reason: string, error?: Error): void {
    if (this.gone) return;
    this.gone = true;
    this.link.sendControl({ type: FrameType.RESET, stream: this.id, code, reason: reason.slice(0, 200) });
    this.destroy(this.handedOver ? error : undefined);
  }

  // ----- frames from the peer (called by the streams table) -----

  /** DATA: throws ProtocolError on a violation, which resets this stream only. */
  onData(payload: Uint8Array): void {
    if (this.peerClosed) throw new ProtocolError(`stream ${this.id}: DATA after CLOSE`);
    const received = this.bytesReceived + payload.length;
    if (received > this.grantedBytes) {
      throw new ProtocolError(`stream ${this.id}: peer sent ${received - this.grantedBytes} bytes beyond its credit`, 'ERR_FLOW_CONTROL');
    }
    this.bytesReceived = received;
    this.lastActivityMs = this.link.now();
    const chunk = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.length);
    this.incoming.push(chunk);
    this.incomingBytes += chunk.length;
  }

  /** The first CREDIT on a stream opened here is the peer's acceptance. */
  onCredit(credit: number): void {
    const first = !this.accepted;
    this.accepted = true;
    this.credit += credit;
    if (this.hasSendable()) this.link.wake(this);
    if (first) this.emit('accepted');
  }

  onPeerClose(): void {
    if (this.peerClosed) throw new ProtocolError(`stream ${this.id}: CLOSE twice`);
    this.peerClosed = true;
    if (this.sendState === 'closed') this.link.forget(this);
  }

  onPeerReset(code: number, reason: string): void {
    if (this.gone) return;
    this.gone = true;
    this.destroy(this.handedOver ? new StreamResetError(`stream ${this.id} reset by peer: ${reason || `code ${code}`}`, code, reason) : undefined);
  }

  /** The session ended: no frame can go out any more. */
  cut(error: Error): void {
    this.gone = true;
    this.destroy(this.handedOver ? error : undefined);
  }

  /** Moves received bytes into the Duplex while the application wants them, and grants credit for them. */
  pump(): void {
    this.pumpPending = false;
    while (this.wantRead && this.incoming.length > 0 && !this.destroyed) {
      const chunk = this.incoming.shift()!;
      this.incomingBytes -= chunk.length;
      this.ungrantedBytes += chunk.length;
      this.wantRead = this.push(chunk);
    }
    if (this.destroyed || this.gone) return;
    if (this.peerClosed) {
      if (this.incoming.length === 0 && !this.endPushed) {
        this.endPushed = true;
        this.push(null);
      }
      return;
    }
    // A quarter window per CREDIT frame. No stall: if the peer is out of credit and the queue here is empty,
    // the whole window is ungranted and goes back at once.
    if (this.ungrantedBytes >= this.windowBytes / 4) {
      this.grantedBytes += this.ungrantedBytes;
      this.link.sendControl({ type: FrameType.CREDIT, stream: this.id, credit: this.ungrantedBytes });
      this.ungrantedBytes = 0;
    }
  }

  // ----- frames to the peer (called by the session's scheduler) -----

  hasSendable(): boolean {
    return !this.gone && ((this.outgoingBytes > 0 && this.credit > 0) || (this.sendState === 'closing' && this.outgoingBytes === 0));
  }

  /** Appends at most one DATA chunk (and the CLOSE once everything is out); returns the bytes used. */
  takeChunk(frames: FrameInit[], chunkBytes: number): number {
    if (this.gone) return 0;
    let used = 0;
    if (this.outgoingBytes > 0 && this.credit > 0) {
      const length = Math.min(chunkBytes, this.credit, this.outgoingBytes);
      frames.push({ type: FrameType.DATA, stream: this.id, payload: this.takeOutgoing(length) });
      this.credit -= length;
      this.bytesSent += length;
      this.lastActivityMs = this.link.now();
      used += length + 8;
      if (this.writeCallback && this.outgoingBytes <= chunkBytes) {
        // Not from inside the scheduler: the callback lets Writable call _write again at once.
        process.nextTick(this.writeCallback);
        this.writeCallback = undefined;
        this.heldWriteBytes = 0;
      }
    }
    if (this.sendState === 'closing' && this.outgoingBytes === 0) {
      frames.push({ type: FrameType.CLOSE, stream: this.id });
      this.sendState = 'closed';
      used += 8;
      if (this.finalCallback) process.nextTick(this.finalCallback);
      this.finalCallback = undefined;
      if (this.peerClosed) this.link.forget(this);
    }
    return used;
  }

  private takeOutgoing(length: number): Buffer {
    const head = this.outgoing[0]!;
    this.outgoingBytes -= length;
    if (head.length - this.outgoingOffset >= length) {
      const piece = head.subarray(this.outgoingOffset, this.outgoingOffset + length);
      this.outgoingOffset += length;
      if (this.outgoingOffset === head.length) {
        this.outgoing.shift();
        this.outgoingOffset = 0;
      }
      return piece;
    }
    // Small writes (keystrokes) are joined into one frame.
    const joined = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const buf = this.outgoing[0]!;
      const n = Math.min(length - filled, buf.length - this.outgoingOffset);
      buf.copy(joined, filled, this.outgoingOffset, this.outgoingOffset + n);
      filled += n;
      this.outgoingOffset += n;
      if (this.outgoingOffset === buf.length) {
        this.outgoing.shift();
        this.outgoingOffset = 0;
      }
    }
    return joined;
  }

  // ----- Duplex implementation -----

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (chunk.length === 0) return callback();
    this.outgoing.push(chunk);
    this.outgoingBytes += chunk.length;
    if (this.hasSendable()) this.link.wake(this);
    // A queue of about one chunk beyond the credit; past it the callback waits, so write() returns false.
    if (this.outgoingBytes <= this.link.chunkBytes) return callback();
    this.writeCallback = callback;
    this.heldWriteBytes = chunk.length;
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.sendState = 'closing';
    this.finalCallback = callback;
    this.link.wake(this);
  }

  override _read(): void {
    this.wantRead = true;
    this.pump();
  }

  override _destroy(error: Error | null, callback: (err?: Error | null) => void): void {
    if (!this.gone && !(this.sendState === 'closed' && this.peerClosed)) {
      this.gone = true;
      const reason = error ? error.message : 'stream destroyed';
      this.link.sendControl({ type: FrameType.RESET, stream: this.id, code: ResetCode.CANCEL, reason: reason.slice(0, 200) });
    }
    this.gone = true;
    this.outgoing.length = 0;
    this.outgoingBytes = 0;
    this.incoming.length = 0;
    this.incomingBytes = 0;
    // A write still waiting for credit fails with the stream's error rather than never calling back.
    const pending = this.writeCallback;
    this.writeCallback = undefined;
    this.heldWriteBytes = 0;
    this.finalCallback = undefined;
    if (pending) process.nextTick(pending, error ?? new StreamResetError(`stream ${this.id} destroyed`, ResetCode.CANCEL, 'stream destroyed'));
    this.link.forget(this);
    callback(error);
  }
}
