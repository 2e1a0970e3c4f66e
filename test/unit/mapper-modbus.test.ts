import { describe, expect, it } from 'vitest';
import { parseModbusDevice, parseModbusVisitor, type ModbusVisitor } from '../../mappers/modbus/modbus-config.js';
import { coilOf, dataTypeOf, decodeRegisters, encodeRegisters, swapBytes } from '../../mappers/modbus/register-codec.js';

const visitor = (v: Partial<ModbusVisitor> = {}): ModbusVisitor => ({
  register: 'HoldingRegister',
  offset: 0,
  limit: 1,
  scale: 1,
  isSwap: false,
  isRegisterSwap: false,
  ...v,
});

describe('modbus configData', () => {
  it('reads the device config with defaults, accepting slaveID, slaveId and numeric strings', () => {
    expect(parseModbusDevice({ ip: '10.0.0.5' }, [])).toEqual({ ip: '10.0.0.5', port: 502, slaveId: 1, timeoutMs: 1000 });
    expect(parseModbusDevice({ ip: 'plc', port: '5020', slaveId: 7 }, [])).toMatchObject({ port: 5020, slaveId: 7 });
    expect(parseModbusDevice({ ip: 'plc', slaveID: 3 }, [])?.slaveId).toBe(3);
  });

  it('reports every problem of a device config at once', () => {
    const problems: string[] = [];
    expect(parseModbusDevice({ port: 70000, slaveID: -1 }, problems)).toBeUndefined();
    expect(problems).toEqual([
      expect.stringContaining('protocol.configData.ip'),
      expect.stringContaining('protocol.configData.port'),
      expect.stringContaining('protocol.configData.slaveID'),
    ]);
  });

  it('reads visitors with defaults and refuses inconsistent ones', () => {
    expect(parseModbusVisitor({ register: 'InputRegister', offset: 3 }, 'v', [])).toEqual(visitor({ register: 'InputRegister', offset: 3 }));
    expect(parseModbusVisitor({ register: 'HoldingRegister', offset: 0, limit: 2, dataType: 'float32', isRegisterSwap: true }, 'v', [])).toEqual(
      visitor({ limit: 2, dataType: 'float32', isRegisterSwap: true }),
    );
    const problems: string[] = [];
    parseModbusVisitor({ register: 'CoilRegister', offset: 1, limit: 2 }, 'a', problems);
    parseModbusVisitor({ register: 'Holding', scale: 0, isSwap: 'yes' }, 'b', problems);
    parseModbusVisitor({ register: 'HoldingRegister', offset: 0, limit: 1, dataType: 'float32' }, 'c', problems);
    expect(problems).toEqual([
      'a.limit: must be an integer from 1 to 1, got 2',
      expect.stringContaining('b.register: must be one of'),
      'b.offset: required',
      'b.scale: must be a non-zero number, got 0',
      'b.isSwap: must be true or false, got "yes"',
      'c.dataType: float32 needs limit 2, got limit 1',
    ]);
  });
});

describe('modbus register codec', () => {
  it('reads INT as signed and every other type as unsigned unless dataType says otherwise', () => {
    expect(dataTypeOf(visitor(), 'int')).toBe('int16');
    expect(dataTypeOf(visitor({ limit: 2 }), 'int')).toBe('int32');
    expect(dataTypeOf(visitor(), 'float')).toBe('uint16');
    expect(dataTypeOf(visitor({ limit: 2 }), 'double')).toBe('uint32');
    expect(dataTypeOf(visitor({ dataType: 'uint16' }), 'int')).toBe('uint16');
    expect(decodeRegisters([0xfffe], visitor(), 'int')).toBe(-2);
    expect(decodeRegisters([0xfffe], visitor(), 'float')).toBe(65534);
    expect(decodeRegisters([0xfffe], visitor({ dataType: 'int16' }), 'float')).toBe(-2);
  });

  it('applies the scale, rounding INT results', () => {
    expect(decodeRegisters([235], visitor({ scale: 0.1 }), 'float')).toBeCloseTo(23.5);
    expect(decodeRegisters([236], visitor({ scale: 0.5 }), 'int')).toBe(118);
    expect(decodeRegisters([3], visitor({ scale: 0.5 }), 'int')).toBe(2);
    expect(decodeRegisters([0], visitor(), 'boolean')).toBe(false);
    expect(decodeRegisters([7], visitor(), 'boolean')).toBe(true);
  });

  it('combines two registers high word first, or low word first with isRegisterSwap', () => {
    expect(decodeRegisters([0x0001, 0x0002], visitor({ limit: 2 }), 'double')).toBe(0x00010002);
    expect(decodeRegisters([0x0001, 0x0002], visitor({ limit: 2, isRegisterSwap: true }), 'double')).toBe(0x00020001);
    expect(decodeRegisters([0xffff, 0xfff6], visitor({ limit: 2 }), 'int')).toBe(-10);
  });

  it('swaps the bytes within each register with isSwap', () => {
    expect(swapBytes(0x1234)).toBe(0x3412);
    expect(decodeRegisters([0x3412], visitor({ isSwap: true }), 'int')).toBe(0x1234);
    expect(decodeRegisters([0x3412, 0x7856], visitor({ limit: 2, isSwap: true }), 'double')).toBe(0x12345678);
  });

  it('reads float32 as IEEE 754 in either word order', () => {
    // 23.5f = 0x41BC0000
    expect(decodeRegisters([0x41bc, 0x0000], visitor({ limit: 2, dataType: 'float32' }), 'float')).toBe(23.5);
    expect(decodeRegisters([0x0000, 0x41bc], visitor({ limit: 2, dataType: 'float32', isRegisterSwap: true }), 'float')).toBe(23.5);
    expect(decodeRegisters([0x41bc, 0x0000], visitor({ limit: 2, dataType: 'float32', scale: 2 }), 'float')).toBe(47);
  });

  it('returns the raw register bytes for BYTES properties', () => {
    expect(decodeRegisters([0x0102, 0x0304], visitor({ limit: 2, isRegisterSwap: true }), 'bytes')).toEqual(new Uint8Array([3, 4, 1, 2]));
  });

  it('encodes writes as value ÷ scale, the inverse of reading', () => {
    expect(encodeRegisters(30, visitor(), 'int')).toEqual([30]);
    expect(encodeRegisters(-2, visitor(), 'int')).toEqual([0xfffe]);
    expect(encodeRegisters(23.5, visitor({ scale: 0.1 }), 'float')).toEqual([235]);
    expect(encodeRegisters(true, visitor(), 'boolean')).toEqual([1]);
    expect(encodeRegisters(-10, visitor({ limit: 2 }), 'int')).toEqual([0xffff, 0xfff6]);
    expect(encodeRegisters(0x12345678, visitor({ limit: 2, isSwap: true, isRegisterSwap: true }), 'double')).toEqual([0x7856, 0x3412]);
    expect(encodeRegisters(23.5, visitor({ limit: 2, dataType: 'float32', isRegisterSwap: true }), 'float')).toEqual([0x0000, 0x41bc]);
    expect(encodeRegisters(new Uint8Array([1, 2]), visitor(), 'bytes')).toEqual([0x0102]);
    for (const [value, v, type] of [
      [7, visitor({ limit: 2, isSwap: true }), 'int'],
      [-123456, visitor({ limit: 2 }), 'int'],
      [1.5, visitor({ limit: 2, dataType: 'float32' }), 'float'],
    ] as const) {
      expect(decodeRegisters(encodeRegisters(value, v, type), v, type)).toBe(value);
    }
  });

  it('refuses values that do not fit the register data type', () => {
    const cases = [
      () => encodeRegisters(40000, visitor(), 'int'),
      () => encodeRegisters(-1, visitor(), 'float'),
      () => encodeRegisters(7000, visitor({ scale: 0.1 }), 'float'),
      () => encodeRegisters('abc', visitor(), 'string'),
      () => encodeRegisters(new Uint8Array([1]), visitor(), 'bytes'),
    ];
    for (const encode of cases) expect(encode).toThrow(expect.objectContaining({ code: 'ERR_INVALID_MESSAGE' }));
  });

  it('turns property values into coil states', () => {
    expect([coilOf(true), coilOf(0), coilOf(3), coilOf('true'), coilOf('0')]).toEqual([true, false, true, true, false]);
    expect(() => coilOf('maybe')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_MESSAGE' }));
  });
});
