import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ProtocolError } from '../errors.js';
import type { Message } from '../message.js';
import { FrameType, type Frame, type FrameInit, type Hello, type InventoryItem } from './frame.js';
import { writeEnvelope, writeFrames } from './wire-writer.js';

// Loaded lazily (no work at import time). uint64 fields decode to plain numbers: sequence numbers and credits
// stay far below 2^53, and Long objects on the hot path would cost an allocation per field.
let types: { frame: protobuf.Type; message: protobuf.Type; hello: protobuf.Type; inventory: protobuf.Type } | undefined;

function load(): NonNullable<typeof types> {
  if (types) return types;
  protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
  protobuf.configure();
  const root = protobuf.loadSync(fileURLToPath(new URL('../../proto/channel.proto', import.meta.url)));
  types = {
    frame: root.lookupType('kubeedge.channel.v1.Frame'),
    message: root.lookupType('kubeedge.channel.v1.Message'),
    hello: root.lookupType('kubeedge.channel.v1.Hello'),
    inventory: root.lookupType('kubeedge.channel.v1.Inventory'),
  };
  return types;
}

const MAX_FRAME_TYPE = FrameType.GOAWAY;
const EMPTY = new Uint8Array(0);

/** protobufjs leaves an absent `bytes` field as its default, a plain empty array. */
const asBytes = (value: Uint8Array | number[] | undefined): Uint8Array => (value instanceof Uint8Array ? value : EMPTY);

/** Encodes frames as one WebSocket message: each frame prefixed by its varint length. */
export function encodeFrames(frames: readonly FrameInit[]): Uint8Array {
  return writeFrames(frames);
}

/**
 * Decodes one WebSocket message into frames. Anything that is not a well-formed frame sequence is a
 * ProtocolError naming what was wrong; it never returns a partial result.
 */
export function decodeFrames(data: Uint8Array, maxPayloadBytes: number): Frame[] {
  const { frame } = load();
  if (data.length === 0) throw new ProtocolError('empty websocket message carries no frame', 'ERR_FRAME_MALFORMED');
  const reader = protobuf.Reader.create(data);
  const frames: Frame[] = [];
  while (reader.pos < reader.len) {
    let decoded: Frame;
    try {
      decoded = frame.decodeDelimited(reader) as unknown as Frame;
    } catch (err) {
      throw new ProtocolError(`malformed frame at byte ${reader.pos}: ${(err as Error).message}`, 'ERR_FRAME_MALFORMED', { cause: err });
    }
    validateFrame(decoded, maxPayloadBytes);
    frames.push(decoded);
  }
  return frames;
}

function validateFrame(f: Frame, maxPayloadBytes: number): void {
  f.payload = asBytes(f.payload);
  if (!Number.isInteger(f.type) || f.type < FrameType.OPEN || f.type > MAX_FRAME_TYPE) {
    throw new ProtocolError(`unknown frame type ${f.type}`, 'ERR_FRAME_MALFORMED');
  }
  if (f.payload.length > maxPayloadBytes) {
    throw new ProtocolError(`frame payload of ${f.payload.length} bytes exceeds ${maxPayloadBytes}`, 'ERR_FRAME_TOO_LARGE');
  }
  if (!Number.isSafeInteger(f.seq) || !Number.isSafeInteger(f.credit)) {
    throw new ProtocolError('frame sequence or credit out of range', 'ERR_FRAME_MALFORMED');
  }
}

export function encodeMessage(message: Message): Uint8Array {
  const raw = message.content instanceof Uint8Array;
  return writeEnvelope(message, raw ? (message.content as Uint8Array) : message.content === undefined ? '' : JSON.stringify(message.content), raw);
}

interface WireMessage {
  id: string;
  parentId: string;
  timestampMs: number;
  resourceVersion: string;
  source: string;
  group: string;
  operation: string;
  resource: string;
  content: Uint8Array;
  encoding: number;
}

export function decodeMessage(bytes: Uint8Array): Message {
  const { message, content, raw } = decodeEnvelopeRaw(bytes);
  if (raw) return { ...message, content };
  if (content.length === 0) return message;
  try {
    return { ...message, content: JSON.parse(Buffer.from(content.buffer, content.byteOffset, content.length).toString('utf8')) as unknown };
  } catch (err) {
    throw new ProtocolError(`message ${message.id} (${message.operation} ${message.resource}) has content that is not JSON`, 'ERR_INVALID_MESSAGE', {
      cause: err,
    });
  }
}

/**
 * The envelope without parsing its content: `content` is left undefined and the content bytes (JSON text, or
 * raw when `raw`) are returned as they arrived. For the edge's object path, which stores them as they are.
 */
export function decodeEnvelopeRaw(bytes: Uint8Array): { message: Message<undefined>; content: Uint8Array; raw: boolean } {
  const { message: type } = load();
  let wire: WireMessage;
  try {
    wire = type.decode(bytes) as unknown as WireMessage;
  } catch (err) {
    throw new ProtocolError(`malformed message envelope: ${(err as Error).message}`, 'ERR_INVALID_MESSAGE', { cause: err });
  }
  if (!wire.id) throw new ProtocolError('message without id', 'ERR_INVALID_MESSAGE');
  const message: Message<undefined> = {
    id: wire.id,
    parentId: wire.parentId,
    timestampMs: Number(wire.timestampMs),
    resourceVersion: wire.resourceVersion,
    source: wire.source,
    group: wire.group,
    operation: wire.operation,
    resource: wire.resource,
    content: undefined,
  };
  return { message, content: asBytes(wire.content), raw: wire.encoding === 1 };
}

export function encodeHello(hello: Hello): Uint8Array {
  return load().hello.encode(hello).finish();
}

export function decodeHello(bytes: Uint8Array): Hello {
  try {
    const h = load().hello.decode(bytes) as unknown as Hello;
    const s = h.settings;
    return {
      protocolVersion: h.protocolVersion,
      nodeName: h.nodeName,
      softwareVersion: h.softwareVersion,
      sessionId: h.sessionId,
      settings: {
        streamWindowBytes: s?.streamWindowBytes ?? 0,
        maxMessageBytes: s?.maxMessageBytes ?? 0,
        heartbeatIntervalMs: s?.heartbeatIntervalMs ?? 0,
        sessionTimeoutMs: s?.sessionTimeoutMs ?? 0,
      },
    };
  } catch (err) {
    throw new ProtocolError(`malformed hello: ${(err as Error).message}`, 'ERR_FRAME_MALFORMED', { cause: err });
  }
}

export function encodeInventory(items: readonly InventoryItem[]): Uint8Array {
  return load().inventory.encode({ items }).finish();
}

export function decodeInventory(bytes: Uint8Array): InventoryItem[] {
  try {
    const inv = load().inventory.decode(bytes) as unknown as { items: InventoryItem[] };
    return inv.items.map((i) => ({ key: i.key, uid: i.uid, resourceVersion: i.resourceVersion }));
  } catch (err) {
    throw new ProtocolError(`malformed inventory: ${(err as Error).message}`, 'ERR_INVALID_MESSAGE', { cause: err });
  }
}
