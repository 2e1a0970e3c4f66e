import { ProtocolError } from '../../shared/errors.js';
import type { PropertyType, PropertyValue } from '../framework/value-codec.js';
import type { DataType, ModbusVisitor } from './modbus-config.js';

// Register words ⇄ property values. The rules (also in mappers/README.md):
// - Byte order: Modbus is big-endian. `isSwap` swaps the two bytes of each register; in a 32-bit value the
//   first register is the high word unless `isRegisterSwap`.
// - Data type: `dataType` when given; otherwise INT properties are signed (int16, or int32 with limit 2) and
//   every other type unsigned (uint16/uint32). float32 (limit 2) is an IEEE 754 single.
// - Reading: value = decoded × scale; INT rounds to an integer, BOOLEAN is value ≠ 0, BYTES are the raw
//   register bytes (after the swaps), unscaled.
// - Writing: raw = value ÷ scale, rounded for integer data types, and it must fit the data type.

const RANGES: Record<Exclude<DataType, 'float32'>, [number, number]> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x8000_0000, 0x7fff_ffff],
  uint32: [0, 0xffff_ffff],
};

/** The data type the registers are read as (see the rules above). */
export function dataTypeOf(visitor: ModbusVisitor, type: PropertyType): DataType {
  if (visitor.dataType) return visitor.dataType;
  const signed = type === 'int';
  if (visitor.limit === 2) return signed ? 'int32' : 'uint32';
  return signed ? 'int16' : 'uint16';
}

export function swapBytes(word: number): number {
  return ((word & 0xff) << 8) | ((word >> 8) & 0xff);
}

/** Register words as read → words in big-endian order (high word first, high byte first). */
function normalise(words: readonly number[], visitor: ModbusVisitor): number[] {
  const swapped = words.map((w) => (visitor.isSwap ? swapBytes(w & 0xffff) : w & 0xffff));
  return visitor.isRegisterSwap && swapped.length === 2 ? swapped.reverse() : swapped;
}

export function decodeRegisters(words: readonly number[], visitor: ModbusVisitor, type: PropertyType): PropertyValue {
  if (words.length !== visitor.limit) throw new ProtocolError(`expected ${visitor.limit} registers, got ${words.length}`);
  const bytes = Buffer.alloc(2 * words.length);
  normalise(words, visitor).forEach((w, i) => bytes.writeUInt16BE(w, 2 * i));
  if (type === 'bytes') return new Uint8Array(bytes);
  const dataType = dataTypeOf(visitor, type);
  const raw = readRaw(bytes, dataType);
  const value = raw * visitor.scale;
  if (type === 'boolean') return value !== 0;
  if (type === 'int') return Math.round(value);
  return value;
}

function readRaw(bytes: Buffer, dataType: DataType): number {
  switch (dataType) {
    case 'int16':
      return bytes.readInt16BE(0);
    case 'uint16':
      return bytes.readUInt16BE(0);
    case 'int32':
      return bytes.readInt32BE(0);
    case 'uint32':
      return bytes.readUInt32BE(0);
    case 'float32':
      return bytes.readFloatBE(0);
  }
}

/** A value to write → the register words to send (throws ERR_INVALID_MESSAGE when it does not fit). */
export function encodeRegisters(value: PropertyValue, visitor: ModbusVisitor, type: PropertyType): number[] {
  const bytes = Buffer.alloc(2 * visitor.limit);
  if (value instanceof Uint8Array) {
    if (value.length !== bytes.length) throw invalid(`${value.length} bytes do not fill ${visitor.limit} register(s)`);
    bytes.set(value);
  } else {
    writeRaw(bytes, dataTypeOf(visitor, type), numberOf(value) / visitor.scale, value);
  }
  const words = Array.from({ length: visitor.limit }, (_, i) => bytes.readUInt16BE(2 * i));
  // Both swaps are their own inverse, so applying them again turns big-endian words into device order.
  return normalise(words, visitor);
}

function writeRaw(bytes: Buffer, dataType: DataType, raw: number, original: PropertyValue): void {
  if (dataType === 'float32') {
    bytes.writeFloatBE(raw, 0);
    return;
  }
  const rounded = Math.round(raw);
  const [min, max] = RANGES[dataType];
  if (!Number.isFinite(rounded) || rounded < min || rounded > max) {
    throw invalid(`${String(original)} does not fit a ${dataType} register (raw ${rounded}, range ${min}..${max})`);
  }
  const width = dataType === 'int16' || dataType === 'uint16' ? 2 : 4;
  const unsigned = rounded < 0 ? rounded + 2 ** (8 * width) : rounded;
  if (width === 2) bytes.writeUInt16BE(unsigned, 0);
  else bytes.writeUInt32BE(unsigned, 0);
}

function numberOf(value: number | boolean | string): number {
  if (typeof value === 'boolean') return value ? 1 : 0;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n)) throw invalid(`${JSON.stringify(value)} is not a number`);
  return n;
}

/** A coil or discrete input value from a property value: non-zero numbers and "true"-like strings are on. */
export function coilOf(value: PropertyValue): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  if (typeof value === 'string' && /^(1|t|true)$/i.test(value)) return true;
  if (typeof value === 'string' && /^(0|f|false)$/i.test(value)) return false;
  throw invalid(`${typeof value === 'string' ? JSON.stringify(value) : 'bytes'} is not a coil value`);
}

function invalid(message: string): ProtocolError {
  return new ProtocolError(message, 'ERR_INVALID_MESSAGE');
}
