// The Modbus protocol's configData (docs/devices.md: `protocol.configData` and `visitors.configData`), parsed
// with every problem collected so the operator can fix a Device in one pass. Numbers may also arrive as
// numeric strings: CRD configData is free-form JSON and tools often quote them.

export const REGISTER_TYPES = ['HoldingRegister', 'InputRegister', 'CoilRegister', 'DiscreteInputRegister'] as const;
export type RegisterType = (typeof REGISTER_TYPES)[number];

export const DATA_TYPES = ['int16', 'uint16', 'int32', 'uint32', 'float32'] as const;
export type DataType = (typeof DATA_TYPES)[number];

export const DEFAULT_MODBUS_PORT = 502;
export const DEFAULT_TIMEOUT_MS = 1_000;

export interface ModbusDeviceConfig {
  ip: string;
  port: number;
  slaveId: number;
  /** Connect and per-request timeout. */
  timeoutMs: number;
}

export interface ModbusVisitor {
  register: RegisterType;
  offset: number;
  /** Registers read: 1 (16-bit) or 2 (32-bit); always 1 for coils and discrete inputs. */
  limit: 1 | 2;
  scale: number;
  /** Swap the two bytes within each register. */
  isSwap: boolean;
  /** Swap the two registers of a 32-bit value (first register = low word). */
  isRegisterSwap: boolean;
  dataType?: DataType;
}

type Data = Readonly<Record<string, unknown>>;

export function parseModbusDevice(data: Data, problems: string[]): ModbusDeviceConfig | undefined {
  const before = problems.length;
  const where = 'protocol.configData';
  const ip = data.ip;
  if (typeof ip !== 'string' || ip.trim() === '') problems.push(`${where}.ip: must be a host name or address, got ${show(ip)}`);
  const port = integer(data, 'port', DEFAULT_MODBUS_PORT, 1, 65_535, where, problems);
  // KubeEdge's mappers spell it slaveID; accept the Go-style slaveId too.
  const slaveKey = data.slaveID !== undefined ? 'slaveID' : 'slaveId';
  const slaveId = integer(data, slaveKey, 1, 0, 255, where, problems);
  const timeoutMs = integer(data, 'timeoutMs', DEFAULT_TIMEOUT_MS, 10, 60_000, where, problems);
  if (problems.length > before) return undefined;
  return { ip: (ip as string).trim(), port, slaveId, timeoutMs };
}

export function parseModbusVisitor(data: Data, where: string, problems: string[]): ModbusVisitor | undefined {
  const before = problems.length;
  const register = data.register;
  if (!REGISTER_TYPES.includes(register as RegisterType)) {
    problems.push(`${where}.register: must be one of ${REGISTER_TYPES.join(', ')}, got ${show(register)}`);
  }
  const isBit = register === 'CoilRegister' || register === 'DiscreteInputRegister';
  const offset = integer(data, 'offset', undefined, 0, 65_535, where, problems);
  const limit = integer(data, 'limit', 1, 1, isBit ? 1 : 2, where, problems) as 1 | 2;
  const scale = real(data, 'scale', 1, where, problems);
  const isSwap = flag(data, 'isSwap', where, problems);
  const isRegisterSwap = flag(data, 'isRegisterSwap', where, problems);
  const dataType = data.dataType;
  if (dataType !== undefined && !DATA_TYPES.includes(dataType as DataType)) {
    problems.push(`${where}.dataType: must be one of ${DATA_TYPES.join(', ')}, got ${show(dataType)}`);
  } else if (dataType !== undefined && !isBit && widthOf(dataType as DataType) !== limit) {
    problems.push(`${where}.dataType: ${String(dataType)} needs limit ${widthOf(dataType as DataType)}, got limit ${limit}`);
  }
  if (problems.length > before) return undefined;
  return {
    register: register as RegisterType,
    offset,
    limit,
    scale,
    isSwap,
    isRegisterSwap,
    ...(dataType !== undefined && !isBit && { dataType: dataType as DataType }),
  };
}

/** Registers a data type occupies. */
export function widthOf(dataType: DataType): 1 | 2 {
  return dataType === 'int16' || dataType === 'uint16' ? 1 : 2;
}

function integer(data: Data, key: string, fallback: number | undefined, min: number, max: number, where: string, problems: string[]): number {
  const raw = data[key];
  if (raw === undefined || raw === null || raw === '') {
    if (fallback === undefined) problems.push(`${where}.${key}: required`);
    return fallback ?? 0;
  }
  const n = typeof raw === 'string' ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    problems.push(`${where}.${key}: must be an integer from ${min} to ${max}, got ${show(raw)}`);
    return fallback ?? 0;
  }
  return n;
}

function real(data: Data, key: string, fallback: number, where: string, problems: string[]): number {
  const raw = data[key];
  if (raw === undefined || raw === null || raw === '') return fallback;
  const n = typeof raw === 'string' ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isFinite(n) || n === 0) {
    problems.push(`${where}.${key}: must be a non-zero number, got ${show(raw)}`);
    return fallback;
  }
  return n;
}

function flag(data: Data, key: string, where: string, problems: string[]): boolean {
  const raw = data[key];
  if (raw === undefined || raw === null || raw === false || raw === 'false') return false;
  if (raw === true || raw === 'true') return true;
  problems.push(`${where}.${key}: must be true or false, got ${show(raw)}`);
  return false;
}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);
