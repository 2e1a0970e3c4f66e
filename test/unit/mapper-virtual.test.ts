import { describe, expect, it } from 'vitest';
import type { DeviceConfig, PropertyConfig } from '../../mappers/framework/device-config.js';
import { silentLogger } from '../../shared/logger.js';
import { parseSignal, signalValue, type SignalConfig } from '../../mappers/virtual/signal.js';
import { VirtualDriver } from '../../mappers/virtual/virtual-driver.js';

const signal = (s: Partial<SignalConfig>): SignalConfig => ({ kind: 'constant', min: 0, max: 100, periodMs: 1000, ...s });
const prop = (name: string, type: PropertyConfig['type'], visitor: object, accessMode?: 'ReadWrite' | 'ReadOnly'): PropertyConfig => ({
  name,
  type,
  collectCycleMs: 1000,
  visitor: visitor as Record<string, unknown>,
  ...(accessMode && { accessMode }),
});
const device = (properties: PropertyConfig[]): DeviceConfig => ({
  id: 'default/v',
  name: 'v',
  namespace: 'default',
  protocolName: 'virtual',
  protocolConfig: {},
  properties,
});

describe('virtual signals', () => {
  it('follows a sine between min and max over periodMs', () => {
    const s = signal({ kind: 'sine', min: 20, max: 30, periodMs: 4000 });
    expect(signalValue(s, 0, Math.random)).toBeCloseTo(25);
    expect(signalValue(s, 1000, Math.random)).toBeCloseTo(30);
    expect(signalValue(s, 3000, Math.random)).toBeCloseTo(20);
  });

  it('draws random values in [min, max) and counts up by one per period, wrapping at max', () => {
    expect(signalValue(signal({ kind: 'random', min: 10, max: 20 }), 0, () => 0.5)).toBe(15);
    const counter = signal({ kind: 'counter', min: 0, max: 3, periodMs: 100 });
    expect([0, 99, 100, 350, 400, 650].map((t) => signalValue(counter, t, Math.random))).toEqual([0, 0, 1, 3, 0, 2]);
    expect(signalValue(signal({ kind: 'counter', initial: 5, max: 100 }), 2000, Math.random)).toBe(7);
  });

  it('parses visitors with defaults and reports every problem', () => {
    expect(parseSignal({}, 'v', [])).toEqual(signal({}));
    expect(parseSignal({ kind: 'sine' }, 'v', [])?.periodMs).toBe(10_000);
    const problems: string[] = [];
    expect(parseSignal({ kind: 'square', min: 5, max: 'x', periodMs: -1, initial: {} }, 'v', problems)).toBeUndefined();
    expect(problems).toEqual([
      expect.stringContaining('v.kind'),
      'v.max: must be a number, got "x"',
      'v.periodMs: must be positive, got -1',
      'v.initial: must be a string, number or boolean, got {}',
    ]);
  });
});

describe('virtual driver', () => {
  it('formats FLOAT to 2 decimals and INT to integers', async () => {
    let now = 0;
    const driver = new VirtualDriver({ logger: silentLogger(), now: () => now, random: () => 0.123456 });
    const wave = prop('wave', 'float', { kind: 'random', min: 0, max: 10 });
    const count = prop('count', 'int', { kind: 'sine', min: 0, max: 10, periodMs: 4000 });
    await driver.connect(device([wave, count]));
    now = 500;
    expect(await driver.read(wave)).toBe(1.23);
    expect(await driver.read(count)).toBe(9);
  });

  it('keeps written values: constants always, generated signals only when explicitly ReadWrite', async () => {
    const driver = new VirtualDriver({ logger: silentLogger() });
    const mode = prop('mode', 'string', { kind: 'constant', initial: 'auto' });
    const level = prop('level', 'int', { kind: 'constant', initial: 3 });
    const sensor = prop('sensor', 'float', { kind: 'sine' });
    const knob = prop('knob', 'float', { kind: 'random' }, 'ReadWrite');
    await driver.connect(device([mode, level, sensor, knob]));
    expect(await driver.read(mode)).toBe('auto');
    expect(await driver.read(level)).toBe(3);
    await driver.write(mode, 'manual');
    await driver.write(knob, 42.5);
    expect(await driver.read(mode)).toBe('manual');
    expect(await driver.read(knob)).toBe(42.5);
    await expect(driver.write(sensor, 1)).rejects.toMatchObject({ code: 'ERR_PROTOCOL' });
  });

  it('refuses a device whose visitors are invalid, with every problem', async () => {
    const driver = new VirtualDriver({ logger: silentLogger() });
    const bad = device([prop('a', 'int', { kind: 'nope' }), prop('b', 'int', { kind: 'constant', initial: 'x' })]);
    await expect(driver.connect(bad)).rejects.toMatchObject({
      code: 'ERR_CONFIG',
      problems: [expect.stringContaining('a.visitors.configData.kind'), expect.stringContaining('b.visitors.configData.initial')],
    });
  });
});
