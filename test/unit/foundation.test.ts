import { describe, expect, it, vi } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Bus } from '../../shared/bus.js';
import { ModuleRuntime, type Module } from '../../shared/module-runtime.js';
import { loadConfig } from '../../shared/config/loader.js';
import { int, oneOf, str } from '../../shared/config/schema.js';
import { Backoff } from '../../shared/backoff.js';
import { KeyedWorkQueue } from '../../cloudcore/cloudhub/keyed-queue.js';
import { silentLogger } from '../../shared/logger.js';
import { tempDir } from '../support/harness.js';
import { newMessage, responseTo, compareResourceVersions, parseEdgeResource } from '../../shared/message.js';

const msg = (operation: string, content: unknown = null) => newMessage({ source: 'test', group: 'g', operation, resource: 'default/pod/p', content });

describe('bus', () => {
  it('delivers to each module in order', async () => {
    const bus = new Bus({ logger: silentLogger() });
    const seen: string[] = [];
    bus.register('a', (m) => void seen.push(`a:${m.operation}`));
    bus.register('b', (m) => void seen.push(`b:${m.operation}`));
    await bus.send('a', msg('1'));
    await bus.send('b', msg('2'));
    await bus.send('a', msg('3'));
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['a:1', 'b:2', 'a:3']);
    expect(() => bus.register('a', () => undefined)).toThrow(/already registered/);
  });

  it('answers a request through respond, and times out without one', async () => {
    const bus = new Bus({ logger: silentLogger() });
    bus.register('echo', (m) => void bus.respond(m, responseTo(m, 'echo', { got: m.content })));
    bus.register('mute', () => undefined);
    const reply = await bus.request('echo', msg('q', 42));
    expect(reply.content).toEqual({ got: 42 });
    await expect(bus.request('mute', msg('q'), 30)).rejects.toMatchObject({ code: 'ERR_TIMEOUT' });
    await expect(bus.send('nobody', msg('q'))).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
  });

  it('makes senders wait while a mailbox is full, then lets them through in order', async () => {
    const bus = new Bus({ logger: silentLogger(), mailboxCapacity: 2 });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const seen: string[] = [];
    bus.register('slow', async (m) => {
      await gate;
      seen.push(m.operation);
    });
    const sends = ['1', '2', '3', '4'].map((op) => bus.send('slow', msg(op)));
    let settled = 0;
    sends.forEach((p) => void p.then(() => settled++));
    await new Promise((r) => setTimeout(r, 10));
    expect(settled).toBeLessThan(4);
    release();
    await Promise.all(sends);
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['1', '2', '3', '4']);
  });

  it('keeps serving after a handler throws', async () => {
    const bus = new Bus({ logger: silentLogger() });
    const seen: string[] = [];
    bus.register('m', (m) => {
      if (m.operation === 'bad') throw new Error('boom');
      seen.push(m.operation);
    });
    await bus.send('m', msg('bad'));
    await bus.send('m', msg('good'));
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['good']);
  });
});

describe('module runtime', () => {
  const module = (name: string, log: string[], opts: { failStart?: boolean; hangStop?: boolean } = {}): Module => ({
    name,
    async start() {
      if (opts.failStart) throw new Error(`${name} cannot start`);
      log.push(`start ${name}`);
    },
    async stop() {
      if (opts.hangStop) await new Promise(() => undefined);
      log.push(`stop ${name}`);
    },
  });

  it('starts in order and stops in reverse, once', async () => {
    const log: string[] = [];
    const runtime = new ModuleRuntime({ modules: [module('a', log), module('b', log), module('c', log)], logger: silentLogger() });
    await runtime.start();
    await Promise.all([runtime.stop(), runtime.stop()]);
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
  });

  it('stops what started when a later module fails, and rethrows', async () => {
    const log: string[] = [];
    const runtime = new ModuleRuntime({ modules: [module('a', log), module('b', log, { failStart: true }), module('c', log)], logger: silentLogger() });
    await expect(runtime.start()).rejects.toThrow('b cannot start');
    expect(log).toEqual(['start a', 'stop a']);
  });

  it('moves on from a module that does not stop within the deadline', async () => {
    const log: string[] = [];
    const runtime = new ModuleRuntime({ modules: [module('a', log), module('b', log, { hangStop: true })], logger: silentLogger(), stopDeadlineMs: 50 });
    await runtime.start();
    await runtime.stop();
    expect(log).toEqual(['start a', 'start b', 'stop a']);
  });
});

describe('config loader', () => {
  const schema = { level: oneOf(['a', 'b'] as const, 'a', 'level'), server: { port: int(10, 'port', { min: 1, max: 100 }), host: str('h', 'host') } };
  const file = (text: string): string => {
    const path = join(tempDir('cfg-'), 'c.yaml');
    writeFileSync(path, text);
    return path;
  };

  it('layers defaults, file and overrides, and freezes the result', () => {
    const config = loadConfig(schema, { file: file('server:\n  port: 20\n'), overrides: { level: 'b' } });
    expect(config).toEqual({ level: 'b', server: { port: 20, host: 'h' } });
    expect(Object.isFrozen(config.server)).toBe(true);
  });

  it('reports every problem together', () => {
    try {
      loadConfig(schema, { file: file('level: c\nserver:\n  port: 500\n  hots: x\nextra: 1\n') });
      expect.unreachable();
    } catch (err) {
      expect((err as { code: string }).code).toBe('ERR_CONFIG');
      expect((err as { problems: string[] }).problems).toEqual([
        'unknown key "extra"',
        'level: must be one of a, b, got "c"',
        'unknown key "server.hots" (did you mean "host"?)',
        'server.port: must be at most 100, got 500',
      ]);
    }
  });

  it('names the file and the YAML error', () => {
    expect(() => loadConfig(schema, { file: file('server: [1,\n') })).toThrow(/c\.yaml/);
  });
});

describe('backoff and keyed queue', () => {
  it('doubles within [50%, 100%] of the ceiling and caps', () => {
    const b = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, random: () => 1 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([100, 200, 400, 800, 1000, 1000]);
    b.reset();
    expect(new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, random: () => 0 }).next()).toBe(50);
  });

  it('runs items of one key in order, one at a time, and keys in parallel up to the limit', async () => {
    let running = 0;
    let peak = 0;
    const order: string[] = [];
    const q = new KeyedWorkQueue<{ key: string; n: number }>({
      concurrency: 3,
      logger: silentLogger(),
      worker: async (item) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        order.push(`${item.key}${item.n}`);
        running--;
      },
    });
    for (let n = 0; n < 3; n++) for (const key of ['a', 'b', 'c', 'd']) q.push(key, { key, n });
    await q.idle();
    expect(peak).toBe(3);
    for (const key of ['a', 'b', 'c', 'd']) expect(order.filter((o) => o.startsWith(key))).toEqual([`${key}0`, `${key}1`, `${key}2`]);
  });
});

describe('resources and versions', () => {
  it('parses KubeEdge resources and orders resourceVersions like KubeEdge', () => {
    expect(parseEdgeResource('default/pod/web')).toEqual({ namespace: 'default', type: 'pod', name: 'web' });
    expect(parseEdgeResource('null/node')).toEqual({ namespace: 'null', type: 'node' });
    expect(() => parseEdgeResource('a//b')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_MESSAGE' }));
    expect(compareResourceVersions('10', '9')).toBeGreaterThan(0);
    expect(compareResourceVersions('abc', 'abc')).toBe(0);
    expect(compareResourceVersions('abc', '9')).toBeNaN();
  });
});

vi.useRealTimers();
