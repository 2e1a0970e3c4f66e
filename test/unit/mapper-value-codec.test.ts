import { describe, expect, it } from 'vitest';
import { formatValue, normalizeType, parseValue } from '../../mappers/framework/value-codec.js';

describe('mapper value codec', () => {
  it('lower-cases DeviceModel types and rejects unknown ones', () => {
    expect(normalizeType('FLOAT')).toBe('float');
    expect(normalizeType('Boolean')).toBe('boolean');
    expect(normalizeType('BYTES')).toBe('bytes');
    expect(normalizeType('LONG')).toBeUndefined();
    expect(normalizeType(3)).toBeUndefined();
  });

  it('formats values as twin strings without floating-point noise', () => {
    expect(formatValue('float', 235 * 0.1)).toBe('23.5');
    expect(formatValue('double', 0.1 + 0.2)).toBe('0.3');
    expect(formatValue('float', 21)).toBe('21');
    expect(formatValue('int', 20.6)).toBe('21');
    expect(formatValue('int', true)).toBe('1');
    expect(formatValue('boolean', false)).toBe('false');
    expect(formatValue('boolean', 1)).toBe('true');
    expect(formatValue('string', 'auto')).toBe('auto');
    expect(formatValue('bytes', new Uint8Array([1, 2, 255]))).toBe('AQL/');
  });

  it('converts desired values to the property type', () => {
    expect(parseValue('int', '30')).toBe(30);
    expect(parseValue('int', '-2')).toBe(-2);
    expect(parseValue('float', '23.5')).toBe(23.5);
    expect(parseValue('double', '1e3')).toBe(1000);
    expect(parseValue('string', ' x ')).toBe(' x ');
    expect(parseValue('bytes', 'AQL/')).toEqual(new Uint8Array([1, 2, 255]));
  });

  it('accepts the boolean spellings of Go strconv.ParseBool', () => {
    for (const t of ['1', 't', 'T', 'true', 'TRUE', 'True']) expect(parseValue('boolean', t)).toBe(true);
    for (const f of ['0', 'f', 'F', 'false', 'FALSE', 'False']) expect(parseValue('boolean', f)).toBe(false);
  });

  it('refuses values that do not fit the type with ERR_INVALID_MESSAGE', () => {
    for (const [type, text] of [
      ['int', '1.5'],
      ['int', ''],
      ['int', 'abc'],
      ['float', 'NaN'],
      ['float', ' '],
      ['boolean', 'yes'],
      ['bytes', '***'],
    ] as const) {
      expect(() => parseValue(type, text), `${type} ${text}`).toThrow(expect.objectContaining({ code: 'ERR_INVALID_MESSAGE' }));
    }
  });
});
