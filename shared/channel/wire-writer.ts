// A byte-exact protobuf encoder for the channel's two hot messages (Frame, Message). protobufjs allocates a
// writer op per field and every frame batch was copied three times; this sizes the output first and writes
// each payload once. Field order and default-omission match protobufjs, so the bytes are identical (a test
// checks it against protobufjs on random input). Decoding stays with protobufjs.
import type { Message } from '../message.js';
import type { FrameInit } from './frame.js';

const WIRE_VARINT = 0;
const WIRE_BYTES = 2;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

class ByteWriter {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(n: number): void {
    // Division instead of shifts: JavaScript bit operators truncate to 32 bits, sequence numbers may not.
    while (n >= 128) {
      this.buf[this.pos++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  uint(field: number, n: number): void {
    if (n === 0) return;
    this.tag(field, WIRE_VARINT);
    this.varint(n);
  }

  bytes(field: number, data: Uint8Array): void {
    if (data.length === 0) return;
    this.tag(field, WIRE_BYTES);
    this.varint(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  string(field: number, s: string, byteLength: number): void {
    if (byteLength === 0) return;
    this.tag(field, WIRE_BYTES);
    this.varint(byteLength);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }
}

const uintSize = (field: number, n: number): number => (n === 0 ? 0 : varintSize(field * 8) + varintSize(n));
const lenSize = (field: number, len: number): number => (len === 0 ? 0 : varintSize(field * 8 + 2) + varintSize(len) + len);

interface FramePlan {
  frame: FrameInit;
  size: number;
  reasonBytes: number;
  addressBytes: number;
  acksBytes: number;
}

function planFrame(f: FrameInit): FramePlan {
  const reasonBytes = f.reason ? Buffer.byteLength(f.reason) : 0;
  const addressBytes = f.address ? Buffer.byteLength(f.address) : 0;
  let acksBytes = 0;
  for (const a of f.acks ?? []) acksBytes += varintSize(a);
  const size =
    uintSize(1, f.type) +
    uintSize(2, f.stream ?? 0) +
    uintSize(3, f.seq ?? 0) +
    uintSize(4, f.flags ?? 0) +
    lenSize(5, f.payload?.length ?? 0) +
    uintSize(6, f.credit ?? 0) +
    lenSize(7, acksBytes) +
    uintSize(8, f.code ?? 0) +
    lenSize(9, reasonBytes) +
    lenSize(10, addressBytes);
  return { frame: f, size, reasonBytes, addressBytes, acksBytes };
}

/** Frames as one buffer, each prefixed by its varint length (protobuf delimited encoding). */
export function writeFrames(frames: readonly FrameInit[]): Buffer {
  const plans = frames.map(planFrame);
  let total = 0;
  for (const p of plans) total += varintSize(p.size) + p.size;
  const w = new ByteWriter(Buffer.allocUnsafe(total));
  for (const { frame: f, size, reasonBytes, addressBytes, acksBytes } of plans) {
    w.varint(size);
    w.uint(1, f.type);
    w.uint(2, f.stream ?? 0);
    w.uint(3, f.seq ?? 0);
    w.uint(4, f.flags ?? 0);
    if (f.payload) w.bytes(5, f.payload);
    w.uint(6, f.credit ?? 0);
    if (acksBytes > 0) {
      w.tag(7, WIRE_BYTES);
      w.varint(acksBytes);
      for (const a of f.acks!) w.varint(a);
    }
    w.uint(8, f.code ?? 0);
    if (f.reason) w.string(9, f.reason, reasonBytes);
    if (f.address) w.string(10, f.address, addressBytes);
  }
  return w.buf;
}

/** The Message envelope (proto/channel.proto); `content` is the JSON text or the raw bytes, written once. */
export function writeEnvelope(m: Omit<Message, 'content'>, content: string | Uint8Array, raw: boolean): Buffer {
  const timestampMs = Math.max(0, Math.trunc(m.timestampMs));
  const strings = [m.id, m.parentId, m.resourceVersion, m.source, m.group, m.operation, m.resource];
  const lengths = strings.map((s) => Buffer.byteLength(s));
  const contentBytes = typeof content === 'string' ? Buffer.byteLength(content) : content.length;
  const size =
    lenSize(1, lengths[0]!) +
    lenSize(2, lengths[1]!) +
    uintSize(3, timestampMs) +
    lenSize(4, lengths[2]!) +
    lenSize(5, lengths[3]!) +
    lenSize(6, lengths[4]!) +
    lenSize(7, lengths[5]!) +
    lenSize(8, lengths[6]!) +
    lenSize(9, contentBytes) +
    uintSize(10, raw ? 1 : 0);
  const w = new ByteWriter(Buffer.allocUnsafe(size));
  w.string(1, m.id, lengths[0]!);
  w.string(2, m.parentId, lengths[1]!);
  w.uint(3, timestampMs);
  w.string(4, m.resourceVersion, lengths[2]!);
  w.string(5, m.source, lengths[3]!);
  w.string(6, m.group, lengths[4]!);
  w.string(7, m.operation, lengths[5]!);
  w.string(8, m.resource, lengths[6]!);
  if (typeof content === 'string') w.string(9, content, contentBytes);
  else w.bytes(9, content);
  w.uint(10, raw ? 1 : 0);
  return w.buf;
}
