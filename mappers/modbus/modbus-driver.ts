import ModbusSerial from 'modbus-serial';
import { ConfigError, ConnectionError, CoreError, ProtocolError, TimeoutError, asError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import type { DeviceConfig, PropertyConfig } from '../framework/device-config.js';
import type { Driver, DriverContext } from '../framework/driver.js';
import type { PropertyValue } from '../framework/value-codec.js';
import { parseModbusDevice, parseModbusVisitor, type ModbusDeviceConfig, type ModbusVisitor } from './modbus-config.js';
import { coilOf, decodeRegisters, encodeRegisters } from './register-codec.js';

// modbus-serial is CommonJS: under NodeNext its default import is module.exports, which holds the class as `default`.
const ModbusRTU = ModbusSerial.default;
type ModbusClient = InstanceType<typeof ModbusRTU>;

/**
 * A Modbus TCP device: one TCP connection (ip:port, unit id slaveID) per device, every request bounded by the
 * device's timeoutMs (default 1 s). modbus-serial stays inside this file.
 */
export class ModbusDriver implements Driver {
  private client: ModbusClient | undefined;
  private config: ModbusDeviceConfig | undefined;
  private readonly visitors = new Map<string, ModbusVisitor>();
  private readonly logger: Logger;

  constructor(context: DriverContext) {
    this.logger = context.logger;
  }

  async connect(device: DeviceConfig): Promise<void> {
    const config = this.configure(device);
    await this.close();
    const client = new ModbusRTU();
    // modbus-serial re-emits socket errors; without a listener they would crash the process.
    client.on('error', (err: unknown) => this.logger.debug({ err: asError(err) }, 'modbus socket error'));
    client.on('close', () => this.logger.debug('modbus connection closed'));
    this.client = client;
    const address = `${config.ip}:${config.port}`;
    try {
      await withTimeout(client.connectTCP(config.ip, { port: config.port }), config.timeoutMs, `connect to ${address}`);
    } catch (err) {
      throw new ConnectionError(`cannot connect to modbus device at ${address}: ${asError(err).message}`, 'ERR_CONNECTION', { cause: err });
    }
    client.setID(config.slaveId);
    client.setTimeout(config.timeoutMs);
    this.logger.debug({ address, slaveId: config.slaveId }, 'modbus connected');
  }

  async read(property: PropertyConfig): Promise<PropertyValue> {
    const client = this.openClient();
    const v = this.visitorOf(property);
    try {
      switch (v.register) {
        case 'CoilRegister':
          return (await client.readCoils(v.offset, 1)).data[0] === true;
        case 'DiscreteInputRegister':
          return (await client.readDiscreteInputs(v.offset, 1)).data[0] === true;
        case 'HoldingRegister':
          return decodeRegisters((await client.readHoldingRegisters(v.offset, v.limit)).data, v, property.type);
        case 'InputRegister':
          return decodeRegisters((await client.readInputRegisters(v.offset, v.limit)).data, v, property.type);
      }
    } catch (err) {
      throw classify(err, `read ${v.register} ${v.offset}`);
    }
  }

  async write(property: PropertyConfig, value: PropertyValue): Promise<void> {
    const v = this.visitorOf(property);
    if (v.register === 'InputRegister' || v.register === 'DiscreteInputRegister') {
      throw new ProtocolError(`${property.name} is on a read-only ${v.register}`);
    }
    // Encode before touching the connection: a value that does not fit is the caller's problem, not the device's.
    const words = v.register === 'HoldingRegister' ? encodeRegisters(value, v, property.type) : undefined;
    const client = this.openClient();
    try {
      if (!words) await client.writeCoil(v.offset, coilOf(value));
      else if (words.length === 1) await client.writeRegister(v.offset, words[0]!);
      else await client.writeRegisters(v.offset, words);
    } catch (err) {
      throw classify(err, `write ${v.register} ${v.offset}`);
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    // destroy, not close: close waits for a FIN that a dead peer never sends, and pending requests are void anyway.
    await new Promise<void>((resolve) => client.destroy(() => resolve()));
  }

  /** Parses the device and every visitor; all problems at once. */
  private configure(device: DeviceConfig): ModbusDeviceConfig {
    const problems: string[] = [];
    const config = parseModbusDevice(device.protocolConfig, problems);
    this.visitors.clear();
    for (const property of device.properties) {
      const visitor = parseModbusVisitor(property.visitor, `properties.${property.name}.visitors.configData`, problems);
      if (visitor) this.visitors.set(property.name, visitor);
    }
    if (!config || problems.length > 0) throw new ConfigError(problems);
    this.config = config;
    return config;
  }

  private openClient(): ModbusClient {
    if (!this.client?.isOpen) {
      const address = this.config ? `${this.config.ip}:${this.config.port}` : 'modbus device';
      throw new ConnectionError(`connection to ${address} is not open`);
    }
    return this.client;
  }

  private visitorOf(property: PropertyConfig): ModbusVisitor {
    const visitor = this.visitors.get(property.name);
    if (!visitor) throw new ProtocolError(`no modbus visitor for property ${property.name}`);
    return visitor;
  }
}

export function createModbusDriver(context: DriverContext): Driver {
  return new ModbusDriver(context);
}

/** modbus-serial's errors → ours: an exception response means the device answered; anything else that it did not. */
function classify(err: unknown, what: string): Error {
  if (err instanceof CoreError) return err;
  const e = err as { name?: string; message?: string; modbusCode?: number };
  if (typeof e.modbusCode === 'number')
    return new ProtocolError(`${what}: modbus exception ${e.modbusCode} (${e.message ?? ''})`, 'ERR_PROTOCOL', { cause: err });
  if (e.name === 'TransactionTimedOutError') return new TimeoutError(`${what}: no answer in time`, { cause: err });
  return new ConnectionError(`${what}: ${e.message ?? String(err)}`, 'ERR_CONNECTION', { cause: err });
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
