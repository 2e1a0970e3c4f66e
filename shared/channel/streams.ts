import { ProtocolError } from '../errors.js';
import { FLAG_FIN, FrameType, type Frame, type FrameInit } from './frame.js';

interface OutgoingMessage {
  seq: number;
  data: Uint8Array;
  offset: number;
}

/**
 * Sending half of a stream: a queue of messages cut into chunks as credit allows. A message may start only
 * while credit is positive and then runs to its end (credit may go negative), so a message larger than the
 * window still goes through and the receiver holds at most window + one message.
 */
export class SendStream {
  private readonly queue: OutgoingMessage[] = [];
  private nextSeq = 1;
  /** Bytes accepted by write() and not yet cut into frames. */
  queuedBytes = 0;
  credit: number;
  needDrain = false;

  constructor(
    readonly id: number,
    readonly priority: number,
    initialCredit: number,
  ) {
    this.credit = initialCredit;
  }

  enqueue(data: Uint8Array): number {
    const seq = this.nextSeq++;
    this.queue.push({ seq, data, offset: 0 });
    this.queuedBytes += data.length;
    return seq;
  }

  hasSendable(): boolean {
    const head = this.queue[0];
    return head !== undefined && (head.offset > 0 || this.credit > 0);
  }

  /** Appends chunks to `frames` until `budget` bytes are used or the stream is blocked; returns bytes used. */
  takeChunks(frames: FrameInit[], budget: number, chunkBytes: number): number {
    let used = 0;
    while (used < budget) {
      const head = this.queue[0];
      if (!head || (head.offset === 0 && this.credit <= 0)) break;
      const length = Math.min(chunkBytes, head.data.length - head.offset);
      const fin = head.offset + length === head.data.length;
      frames.push({
        type: FrameType.DATA,
        stream: this.id,
        seq: head.seq,
        flags: fin ? FLAG_FIN : 0,
        payload: head.data.subarray(head.offset, head.offset + length),
      });
      head.offset += length;
      this.credit -= length;
      this.queuedBytes -= length;
      used += length + 16;
      if (fin) this.queue.shift();
    }
    return used;
  }
}

export interface ReceivedMessage {
  seq: number;
  data: Uint8Array;
}

/** Receiving half: checks sequence and flow control, reassembles chunks, counts credit to give back. */
export class ReceiveStream {
  private expectedSeq = 1;
  private partial: Uint8Array[] | undefined;
  private partialBytes = 0;
  /** Bytes received and not yet released by the application. */
  private outstanding = 0;
  /** Bytes released and not yet granted back in a CREDIT frame. */
  pendingCredit = 0;

  constructor(
    readonly id: number,
    private readonly windowBytes: number,
    private readonly maxMessageBytes: number,
  ) {}

  /** Returns the message when `frame` completes one. Throws ProtocolError on any violation. */
  accept(frame: Frame): ReceivedMessage | undefined {
    const length = frame.payload.length;
    if (this.partial === undefined) {
      if (frame.seq !== this.expectedSeq) {
        throw new ProtocolError(`stream ${this.id}: message seq ${frame.seq} arrived, expected ${this.expectedSeq}`);
      }
      if (this.outstanding >= this.windowBytes) {
        throw new ProtocolError(
          `stream ${this.id}: peer started a message with no credit left (${this.outstanding} bytes unconsumed, window ${this.windowBytes})`,
          'ERR_FLOW_CONTROL',
        );
      }
      this.partial = [];
      this.partialBytes = 0;
    } else if (frame.seq !== this.expectedSeq) {
      throw new ProtocolError(`stream ${this.id}: chunk of message ${frame.seq} interleaved into message ${this.expectedSeq}`);
    }
    this.partialBytes += length;
    this.outstanding += length;
    if (this.partialBytes > this.maxMessageBytes) {
      throw new ProtocolError(`stream ${this.id}: message ${frame.seq} exceeds ${this.maxMessageBytes} bytes`, 'ERR_MESSAGE_TOO_LARGE');
    }
    this.partial.push(frame.payload);
    if ((frame.flags & FLAG_FIN) === 0) return undefined;
    const chunks = this.partial;
    const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.partialBytes);
    this.partial = undefined;
    this.expectedSeq++;
    return { seq: frame.seq, data };
  }

  /** The application is done with `bytes`; returns true when enough credit piled up to be worth a frame. */
  release(bytes: number): boolean {
    this.outstanding -= bytes;
    this.pendingCredit += bytes;
    return this.pendingCredit >= this.windowBytes / 4;
  }

  takeCredit(): number {
    const credit = this.pendingCredit;
    this.pendingCredit = 0;
    return credit;
  }
}
