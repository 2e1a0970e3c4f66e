import { ProtocolError } from '../../shared/errors.js';

/** DeviceModel property types, lower-case as they travel in twin `metadata.type`. */
export const PROPERTY_TYPES = ['int', 'float', 'double', 'string', 'boolean', 'bytes'] as const;
export type PropertyType = (typeof PROPERTY_TYPES)[number];

/** What drivers read and write; the framework owns the string form that travels over MQTT. */
export type PropertyValue = number | boolean | string | Uint8Array;

/** `INT`, `Float`, `boolean` → the lower-case type; undefined when it is not a DeviceModel type. */
export function normalizeType(raw: unknown): PropertyType | undefined {
  if (typeof raw !== 'string') return undefined;
  const lower = raw.toLowerCase();
  return (PROPERTY_TYPES as readonly string[]).includes(lower) ? (lower as PropertyType) : undefined;
}

// Go's strconv.ParseBool, which KubeEdge's mappers use for boolean twins.
const TRUE_WORDS = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE_WORDS = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/** The string a twin carries for `value` of a property of `type`. */
export function formatValue(type: PropertyType, value: PropertyValue): string {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  switch (type) {
    case 'boolean':
      return String(typeof value === 'string' ? parseBoolean(value) : Boolean(value));
    case 'int':
      if (typeof value === 'boolean') return value ? '1' : '0';
      return typeof value === 'number' ? String(Math.round(value)) : value;
    case 'float':
    case 'double':
      if (typeof value === 'boolean') return value ? '1' : '0';
      return typeof value === 'number' ? formatReal(value) : value;
    case 'bytes':
      return Buffer.from(String(value), 'utf8').toString('base64');
    case 'string':
      return typeof value === 'number' ? formatReal(value) : String(value);
  }
}

/** Drops binary floating-point noise (235 × 0.1 → "23.5", not "23.500000000000004"). */
function formatReal(value: number): string {
  return String(Number(value.toPrecision(12)));
}

/** A desired value from a delta, converted to the property's type; throws ERR_INVALID_MESSAGE when it does not fit. */
export function parseValue(type: PropertyType, text: string): PropertyValue {
  switch (type) {
    case 'int': {
      const n = text.trim() === '' ? NaN : Number(text);
      if (!Number.isSafeInteger(n)) throw invalid(type, text);
      return n;
    }
    case 'float':
    case 'double': {
      const n = text.trim() === '' ? NaN : Number(text);
      if (!Number.isFinite(n)) throw invalid(type, text);
      return n;
    }
    case 'boolean':
      return parseBoolean(text);
    case 'bytes':
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw invalid(type, text);
      return new Uint8Array(Buffer.from(text, 'base64'));
    case 'string':
      return text;
  }
}

function parseBoolean(text: string): boolean {
  if (TRUE_WORDS.has(text)) return true;
  if (FALSE_WORDS.has(text)) return false;
  throw invalid('boolean', text);
}

function invalid(type: PropertyType, text: string): ProtocolError {
  return new ProtocolError(`${JSON.stringify(text)} is not a valid ${type} value`, 'ERR_INVALID_MESSAGE');
}
