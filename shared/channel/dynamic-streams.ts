import { IllegalStateError, ProtocolError, asError } from '../errors.js';
import { ChannelStream, type StreamLink } from './channel-stream.js';
import { FIRST_DYNAMIC_STREAM, FrameType, ResetCode, type Frame, type FrameInit } from './frame.js';

export interface DynamicStreamsOptions {
  role: 'client' | 'server';
  windowBytes: number;
  /** Streams the peer may have open here at once; its next OPEN is RESET with STREAM_LIMIT. */
  maxStreams: number;
  chunkBytes: number;
  now: () => number;
  /** The handler for OPENs from the peer, looked up at each OPEN; none: refused as an older peer does. */
  openHandler(): ((stream: ChannelStream, header: Uint8Array) => void) | undefined;
  queueControl(frame: FrameInit): void;
  scheduleFlush(): void;
}

const MAX_STREAM_ID = 0xffff_ffff;

/**
 * The session's table of dynamic streams: id allocation (server even, client odd), OPEN handling and the
 * stream limit, routing of frames for ids ≥ 16, and the round-robin the scheduler takes chunks from.
 * A broken rule on one stream resets that stream; the session goes on.
 */
export class DynamicStreams implements StreamLink {
  readonly chunkBytes: number;
  private readonly streams = new Map<number, ChannelStream>();
  /** Streams with something to send, in turn order. */
  private readonly ready: ChannelStream[] = [];
  private nextLocalId: number;
  private highestRemoteId = 0;
  private remoteOpen = 0;

  constructor(private readonly options: DynamicStreamsOptions) {
    this.chunkBytes = options.chunkBytes;
    this.nextLocalId = options.role === 'server' ? FIRST_DYNAMIC_STREAM : FIRST_DYNAMIC_STREAM + 1;
  }

  get size(): number {
    return this.streams.size;
  }

  values(): IterableIterator<ChannelStream> {
    return this.streams.values();
  }

  now(): number {
    return this.options.now();
  }

  open(header: Uint8Array): ChannelStream {
    const id = this.nextLocalId;
    if (id > MAX_STREAM_ID) throw new IllegalStateError('dynamic stream ids of this session are used up');
    this.nextLocalId += 2;
    const stream = this.create(id, 'local', Buffer.from(header), 0);
    this.options.queueControl({ type: FrameType.OPEN, stream: id, payload: stream.header, credit: this.options.windowBytes });
    return stream;
  }

  /** A frame for an id ≥ 16. Callbacks into the application go to `completed`, run after the whole batch. */
  handle(frame: Frame, completed: Array<() => void>): void {
    if (frame.type === FrameType.OPEN) return this.handleOpen(frame, completed);
    const stream = this.streams.get(frame.stream);
    if (frame.type === FrameType.RESET) return stream?.onPeerReset(frame.code, frame.reason);
    if (!stream) {
      // Frames still in flight for a stream that ended here are expected; for an id never used they are not.
      // A CREDIT is never answered, so two peers cannot bounce RESETs.
      if (frame.type !== FrameType.CREDIT && !this.wasUsed(frame.stream)) {
        this.refuse(frame.stream, ResetCode.PROTOCOL_ERROR, `frame type ${frame.type} for unknown stream ${frame.stream}`);
      }
      return;
    }
    try {
      switch (frame.type) {
        case FrameType.DATA:
          stream.onData(frame.payload);
          return this.pumpAfter(stream, completed);
        case FrameType.CREDIT:
          return stream.onCredit(frame.credit);
        case FrameType.CLOSE:
          stream.onPeerClose();
          return this.pumpAfter(stream, completed);
        default:
          throw new ProtocolError(`stream ${stream.id}: frame type ${frame.type} is not allowed on a dynamic stream`);
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      stream.reset(ResetCode.PROTOCOL_ERROR, err.message, err);
    }
  }

  private handleOpen(frame: Frame, completed: Array<() => void>): void {
    const id = frame.stream;
    if (this.isLocalId(id) || id <= this.highestRemoteId) {
      const existing = this.streams.get(id);
      const error = new ProtocolError(`OPEN for stream ${id}, which ${existing ? 'is already open' : 'the peer may not open'}`);
      if (existing) existing.reset(ResetCode.PROTOCOL_ERROR, error.message, error);
      else this.refuse(id, ResetCode.PROTOCOL_ERROR, error.message);
      return;
    }
    this.highestRemoteId = id;
    const onOpen = this.options.openHandler();
    // The same code and reason an older peer sends, so the opener sees one answer for both.
    if (!onOpen) return this.refuse(id, ResetCode.REFUSED, 'dynamic streams are not supported');
    if (this.remoteOpen >= this.options.maxStreams) {
      return this.refuse(id, ResetCode.STREAM_LIMIT, `too many open streams (limit ${this.options.maxStreams})`);
    }
    // The header is copied: the frame's payload is a view into the whole transport message.
    const stream = this.create(id, 'remote', Buffer.from(frame.payload), frame.credit);
    completed.push(() => {
      if (stream.destroyed) return;
      stream.handedOver = true;
      try {
        onOpen(stream, stream.header);
      } catch (err) {
        stream.reset(ResetCode.REFUSED, asError(err).message);
        return;
      }
      // Accepting is granting the window: the opener sends nothing before this CREDIT, so a peer that
      // refuses (an older one included) never sees DATA for a stream it does not know.
      if (!stream.destroyed) this.sendControl({ type: FrameType.CREDIT, stream: id, credit: this.options.windowBytes });
    });
  }

  private create(id: number, initiator: 'local' | 'remote', header: Uint8Array, initialCredit: number): ChannelStream {
    const stream = new ChannelStream({ id, header, initiator, windowBytes: this.options.windowBytes, initialCredit, link: this });
    this.streams.set(id, stream);
    if (initiator === 'remote') this.remoteOpen++;
    return stream;
  }

  private pumpAfter(stream: ChannelStream, completed: Array<() => void>): void {
    if (stream.pumpPending) return;
    stream.pumpPending = true;
    completed.push(() => stream.pump());
  }

  private isLocalId(id: number): boolean {
    return id % 2 === (this.options.role === 'server' ? 0 : 1);
  }

  private wasUsed(id: number): boolean {
    return this.isLocalId(id) ? id < this.nextLocalId : id <= this.highestRemoteId;
  }

  private refuse(id: number, code: ResetCode, reason: string): void {
    this.sendControl({ type: FrameType.RESET, stream: id, code, reason });
  }

  sendControl(frame: FrameInit): void {
    this.options.queueControl(frame);
  }

  wake(stream: ChannelStream): void {
    if (stream.scheduled || !stream.hasSendable()) return;
    stream.scheduled = true;
    this.ready.push(stream);
    this.options.scheduleFlush();
  }

  forget(stream: ChannelStream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    if (stream.initiator === 'remote') this.remoteOpen--;
  }

  /**
   * One chunk from each stream with something to send, in turn, until `budget` bytes are used: a batch never
   * carries two chunks of one dynamic stream, so control frames get a place between every chunk of a bulk
   * transfer, and many streams share the link evenly.
   */
  takeChunks(frames: FrameInit[], budget: number): number {
    let used = 0;
    for (let turns = this.ready.length; turns > 0 && used < budget; turns--) {
      const stream = this.ready.shift()!;
      used += stream.takeChunk(frames, this.chunkBytes);
      if (stream.hasSendable()) this.ready.push(stream);
      else stream.scheduled = false;
    }
    return used;
  }

  hasSendable(): boolean {
    return this.ready.some((s) => s.hasSendable());
  }

  /** The session ended: every stream errors with `error`, and no frame goes out for any of them. */
  cutAll(error: Error): void {
    const streams = [...this.streams.values()];
    this.streams.clear();
    this.ready.length = 0;
    this.remoteOpen = 0;
    for (const stream of streams) stream.cut(error);
  }
}
