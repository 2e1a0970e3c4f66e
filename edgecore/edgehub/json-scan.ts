// Reads `metadata.uid` from a Kubernetes object's JSON bytes without parsing the object. The edge stores
// objects as the bytes it received; a full JSON.parse per object only to learn its uid cost most of the
// edge's garbage (and its GC pauses) at 20,000 objects a second. The scan walks the top-level keys that
// precede `metadata` (apiVersion and kind, in practice), then the keys of metadata up to `uid`.
import { ProtocolError } from '../../shared/errors.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

const malformed = (why: string): ProtocolError => new ProtocolError(`object content is not valid JSON: ${why}`, 'ERR_INVALID_MESSAGE');

function skipSpace(b: Uint8Array, i: number): number {
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  return i;
}

/** Index just past the string starting at `i` (which must be a quote). */
function endOfString(b: Uint8Array, i: number): number {
  for (let j = i + 1; j < b.length; j++) {
    if (b[j] === BACKSLASH) j++;
    else if (b[j] === QUOTE) return j + 1;
  }
  throw malformed('unterminated string');
}

/** Index just past the JSON value starting at `i`. */
function endOfValue(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c === QUOTE) return endOfString(b, i);
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    for (let j = i; j < b.length; j++) {
      const d = b[j];
      if (d === QUOTE) j = endOfString(b, j) - 1;
      else if (d === OPEN_BRACE || d === OPEN_BRACKET) depth++;
      else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
        if (--depth === 0) return j + 1;
      }
    }
    throw malformed('unterminated object or array');
  }
  let j = i;
  while (j < b.length && b[j] !== COMMA && b[j] !== CLOSE_BRACE && b[j] !== CLOSE_BRACKET) j++;
  if (j === i) throw malformed(`unexpected byte at ${i}`);
  return j;
}

/** The span of the value of `key` in the object starting at `start`, or undefined when absent. */
function member(b: Uint8Array, start: number, key: string): [number, number] | undefined {
  let i = skipSpace(b, start);
  if (b[i] !== OPEN_BRACE) throw malformed('expected an object');
  i = skipSpace(b, i + 1);
  if (b[i] === CLOSE_BRACE) return undefined;
  for (;;) {
    if (b[i] !== QUOTE) throw malformed(`expected a key at ${i}`);
    const keyEnd = endOfString(b, i);
    const matches = keyEquals(b, i, keyEnd, key);
    i = skipSpace(b, keyEnd);
    if (b[i] !== COLON) throw malformed(`expected ":" at ${i}`);
    const valueStart = skipSpace(b, i + 1);
    const valueEnd = endOfValue(b, valueStart);
    if (matches) return [valueStart, valueEnd];
    i = skipSpace(b, valueEnd);
    if (b[i] === CLOSE_BRACE) return undefined;
    if (b[i] !== COMMA) throw malformed(`expected "," at ${i}`);
    i = skipSpace(b, i + 1);
  }
}

/** Whether the JSON string at [start, end) (quotes included) is `key`; escaped keys are decoded first. */
function keyEquals(b: Uint8Array, start: number, end: number, key: string): boolean {
  let escaped = false;
  for (let j = start + 1; j < end - 1; j++) if (b[j] === BACKSLASH) escaped = true;
  if (escaped) return JSON.parse(Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('utf8')) === key;
  if (end - start - 2 !== key.length) return false;
  for (let k = 0; k < key.length; k++) if (b[start + 1 + k] !== key.charCodeAt(k)) return false;
  return true;
}

/** `metadata.uid` of the JSON object in `bytes`; '' when the object has none. */
export function metadataUid(bytes: Uint8Array): string {
  const metadata = member(bytes, 0, 'metadata');
  if (!metadata || bytes[metadata[0]] !== OPEN_BRACE) return '';
  const uid = member(bytes, metadata[0], 'uid');
  if (!uid) return '';
  const value: unknown = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + uid[0], uid[1] - uid[0]).toString('utf8'));
  return typeof value === 'string' ? value : '';
}
