import { appendFileSync, closeSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { formatLogTime, isLogTime, parseCriLine, parseLogTime } from '../../edgecore/edged/kubelet-api/cri-log-format.js';
import { readContainerLogs, type LogReadDeps } from '../../edgecore/edged/kubelet-api/container-log-reader.js';
import { serveContainerLogs, type ContainerLogsDeps, type LogTarget } from '../../edgecore/edged/kubelet-api/container-logs.js';
import { containerIdFor, logPathResolver } from '../../edgecore/edged/kubelet-api/log-path-resolver.js';
import { parseLogOptions, type LogOptions } from '../../edgecore/edged/kubelet-api/log-options.js';
import { RuntimeError } from '../../edgecore/edged/cri/runtime-error.js';
import type { ContainerStatus as CriContainerStatus } from '../../edgecore/edged/cri/cri-types.js';
import type { ContainerStatus, Pod } from '../../edgecore/edged/pod-types.js';
import { eventually, tempDir } from '../support/harness.js';

const T0 = '2026-12-04T21:40:43.865985922Z';
const cri = (content: string, { time = T0, stream = 'stdout', tag = 'F' } = {}): string => `${time} ${stream} ${tag} ${content}\n`;
const at = (second: number): string => `2026-12-04T21:40:${String(second).padStart(2, '0')}.000000001Z`;
const opts = (o: Partial<LogOptions> = {}): LogOptions => ({ follow: false, previous: false, timestamps: false, ...o });
const query = (q: string): ReturnType<typeof parseLogOptions> => parseLogOptions(new URLSearchParams(q));

/** A Writable that keeps what it got. */
function sink(): Writable & { text(): string } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  return Object.assign(w, { text: () => Buffer.concat(chunks).toString('utf8') });
}

function logFile(content: string): string {
  const path = join(tempDir('ke-logs-'), '0.log');
  writeFileSync(path, content);
  return path;
}

async function read(path: string, options: Partial<LogOptions>, deps: Partial<LogReadDeps> = {}): Promise<string> {
  const out = sink();
  await readContainerLogs(path, opts(options), out, { isRunning: async () => false, ...deps }, new AbortController().signal);
  return out.text();
}

describe('containerLogs query (kubelet parsing and validation)', () => {
  it('defaults to everything, once, without timestamps', () => {
    expect(query('')).toEqual({ follow: false, previous: false, timestamps: false });
  });

  it('reads booleans as the kubelet: only absent, 0 and false (any case) are false', () => {
    for (const v of ['true', '1', '', 'yes', 'TRUE']) expect(query(`follow=${v}`)).toMatchObject({ follow: true });
    for (const v of ['0', 'false', 'False'])
      expect(query(`follow=${v}&previous=${v}&timestamps=${v}`)).toMatchObject({ follow: false, previous: false, timestamps: false });
    expect(query('previous=true&timestamps=1')).toMatchObject({ previous: true, timestamps: true });
  });

  it('takes tail as the old name of tailLines, and tail=all as no tail at all', () => {
    expect(query('tail=5')).toMatchObject({ tailLines: 5 });
    expect(query('tail=5&tailLines=3')).toMatchObject({ tailLines: 5 });
    expect(query('tail=all&tailLines=3')).not.toHaveProperty('tailLines');
    expect(query('tailLines=0')).toMatchObject({ tailLines: 0 });
  });

  it('parses numbers and sinceTime', () => {
    expect(query('sinceSeconds=30&limitBytes=%2B100&tailLines=7')).toMatchObject({ sinceSeconds: 30, limitBytes: 100, tailLines: 7 });
    expect(query('sinceTime=2026-12-04T21:40:43Z')).toMatchObject({ sinceTimeNs: BigInt(Date.parse('2026-12-04T21:40:43Z')) * 1_000_000n });
    expect(query('sinceTime=2026-12-04T22:40:43.5%2B01:00')).toMatchObject({ sinceTimeNs: BigInt(Date.parse('2026-12-04T21:40:43.5Z')) * 1_000_000n });
  });

  it('answers 400 with the kubelet body when the query does not decode', () => {
    for (const q of [
      'tailLines=abc',
      'limitBytes=1.5',
      'sinceSeconds=',
      'sinceTime=yesterday',
      'tailLines=9223372036854775808',
      'sinceTime=2026-02-30T00:00:00Z',
    ]) {
      expect(query(q), q).toMatchObject({ status: 400, error: '{"message": "Unable to decode query."}' });
    }
  });

  it('answers 422 with the kubelet body when the options are invalid', () => {
    for (const q of [
      'tailLines=-1',
      'limitBytes=0',
      'sinceSeconds=0',
      'sinceSeconds=10&sinceTime=2026-12-04T21:40:43Z',
      'sinceSeconds=5&sinceTime=',
      'stream=Both',
      'stream=Stdout&tailLines=1',
    ]) {
      expect(query(q), q).toMatchObject({ status: 422, error: '{"message": "Invalid request."}' });
    }
    expect(query('stream=All&tailLines=1')).toMatchObject({ stream: 'All', tailLines: 1 });
    // Empty or null sinceTime is Go's zero time: allowed alone, filtering nothing.
    expect(query('sinceTime=')).toEqual({ follow: false, previous: false, timestamps: false });
  });
});

describe('CRI log line format', () => {
  it('parses timestamps leniently and prints them with 9 fixed digits in their own zone', () => {
    expect(formatLogTime(parseLogTime('2026-12-04T21:40:43.5Z'))).toBe('2026-12-04T21:40:43.500000000Z');
    expect(formatLogTime(parseLogTime('2026-12-04T21:40:43+02:00'))).toBe('2026-12-04T21:40:43.000000000+02:00');
    expect(formatLogTime(parseLogTime('2026-12-04T21:40:43-00:00'))).toBe('2026-12-04T21:40:43.000000000Z');
    expect(parseLogTime('2026-12-04T21:40:43.1234567890Z')).toBeUndefined();
    expect(parseLogTime('2026-12-04 21:40:43Z')).toBeUndefined();
  });

  it('checks a timestamp on its bytes exactly as parseLogTime accepts it', () => {
    const valid = [
      '2026-12-04T21:40:43.865985922Z',
      '2024-02-29t00:00:00z',
      '0000-02-29T23:59:59,1+24:59',
      '2026-12-04T21:40:43-00:00',
      '9999-12-31T23:59:59.123456789+05:30',
    ];
    const invalid = [
      '2026-12-04 21:40:43Z',
      '2026-12-04T21:40:43.1234567890Z',
      '2026-12-04T21:40:43.Z',
      '2026-12-04T21:40:43',
      '2026-02-30T00:00:00Z',
      '2023-02-29T00:00:00Z',
      '1900-02-29T00:00:00Z',
      '2026-04-31T00:00:00Z',
      '2026-00-10T00:00:00Z',
      '2026-13-10T00:00:00Z',
      '2026-12-00T00:00:00Z',
      '2026-12-04T24:00:00Z',
      '2026-12-04T21:60:00Z',
      '2026-12-04T21:40:60Z',
      '2026-12-04T21:40:43+25:00',
      '2026-12-04T21:40:43+01:60',
      '2026-12-04T21:40:43+0100',
      '2026-12-04T21:40:43ZZ',
      '2026-1a-04T21:40:43Z',
    ];
    const check = (text: string): boolean => isLogTime(Buffer.from(` ${text} `, 'latin1'), 1, text.length + 1);
    for (const text of valid) expect([check(text), parseLogTime(text) !== undefined], text).toEqual([true, true]);
    for (const text of invalid) expect([check(text), parseLogTime(text) !== undefined], text).toEqual([false, false]);
    // Every one-character change of a few timestamps: both agree.
    const alphabet = '0123456789-:.,+TtZz x';
    for (const base of [valid[0]!, valid[2]!, valid[3]!]) {
      for (let i = 0; i < base.length; i++) {
        for (const c of alphabet) {
          for (const text of [base.slice(0, i) + c + base.slice(i + 1), base.slice(0, i) + c + base.slice(i), base.slice(0, i) + base.slice(i + 1)]) {
            expect(check(text), text).toBe(parseLogTime(text) !== undefined);
          }
        }
      }
    }
  });

  it('ignores tags after the colon and keeps the newline only of full lines', () => {
    const p = parseCriLine(Buffer.from(cri('part', { tag: 'P:future' })));
    expect(p).toMatchObject({ stream: 'stdout' });
    expect('content' in p && p.content.toString()).toBe('part');
    const f = parseCriLine(Buffer.from(cri('full', { stream: 'stderr' })));
    expect('content' in f && f.content.toString()).toBe('full\n');
    expect(parseCriLine(Buffer.from(cri('x', { stream: 'stdin' })))).toEqual({ error: 'unexpected stream type "stdin"' });
  });
});

describe('reading a CRI log file (cri-client ReadLogs)', () => {
  const file = (): string =>
    logFile(
      cri('one', { time: at(1) }) +
        cri('two-a', { time: at(2), tag: 'P' }) +
        cri('two-b', { time: at(3), tag: 'P' }) +
        cri('two-c', { time: at(4) }) +
        cri('err', { time: at(5), stream: 'stderr' }) +
        cri('four', { time: at(6) }),
    );

  it('joins partial lines and interleaves stdout and stderr as written', async () => {
    expect(await read(file(), {})).toBe('one\ntwo-atwo-btwo-c\nerr\nfour\n');
  });

  it('prefixes the timestamp once per logical line', async () => {
    expect(await read(file(), { timestamps: true })).toBe(
      '2026-12-04T21:40:01.000000001Z one\n' +
        '2026-12-04T21:40:02.000000001Z two-atwo-btwo-c\n' +
        '2026-12-04T21:40:05.000000001Z err\n2026-12-04T21:40:06.000000001Z four\n',
    );
  });

  it('tails lines counting partial fragments as lines', async () => {
    expect(await read(file(), { tailLines: 2 })).toBe('err\nfour\n');
    expect(await read(file(), { tailLines: 4 })).toBe('two-btwo-c\nerr\nfour\n');
    expect(await read(file(), { tailLines: 0 })).toBe('');
    expect(await read(file(), { tailLines: 100 })).toBe('one\ntwo-atwo-btwo-c\nerr\nfour\n');
  });

  it('writes an incomplete last line when not following, without counting it for the tail', async () => {
    const path = logFile(cri('a') + cri('b') + `${T0} stdout F no-newline`);
    expect(await read(path, {})).toBe('a\nb\nno-newline');
    expect(await read(path, { tailLines: 1 })).toBe('b\n');
  });

  it('skips lines before since (sinceSeconds from the injected clock, or sinceTime), skipped lines still count for the tail', async () => {
    const now = (): Date => new Date('2026-12-04T21:40:10Z');
    expect(await read(file(), { sinceSeconds: 5 }, { now })).toBe('err\nfour\n');
    expect(await read(file(), { sinceTimeNs: parseLogTime(at(4))!.epochNs })).toBe('two-c\nerr\nfour\n');
    expect(await read(file(), { sinceSeconds: 5, tailLines: 3 }, { now })).toBe('err\nfour\n');
  });

  it('cuts the output at limitBytes, timestamp prefixes included', async () => {
    expect(await read(file(), { limitBytes: 7 })).toBe('one\ntwo');
    expect(await read(file(), { limitBytes: 35, timestamps: true })).toBe('2026-12-04T21:40:01.000000001Z one\n');
    expect(await read(file(), { limitBytes: 33, timestamps: true })).toBe('2026-12-04T21:40:01.000000001Z on');
    expect(await read(file(), { limitBytes: 9, tailLines: 2 })).toBe('err\nfour\n');
  });

  it('reads the Docker JSON format too', async () => {
    const line = (log: string, stream: string, time: string): string => `${JSON.stringify({ log, stream, time })}\n`;
    const path = logFile(line('hello\n', 'stdout', at(1)) + line('oops\n', 'stderr', at(2)));
    expect(await read(path, { timestamps: true, tailLines: 1 })).toBe('2026-12-04T21:40:02.000000001Z oops\n');
  });

  it('skips a line it cannot parse, but refuses a file whose first line is in no known format', async () => {
    expect(await read(logFile(cri('a') + 'garbage\n' + cri('b')), {})).toBe('a\nb\n');
    await expect(read(logFile('garbage\n' + cri('a')), {})).rejects.toMatchObject({ code: 'ERR_ILLEGAL_STATE' });
  });

  it('skips a line with an impossible timestamp even when no option needs the time', async () => {
    const path = logFile(cri('a') + cri('bad', { time: '2026-02-30T00:00:00Z' }) + cri('b'));
    expect(await read(path, {})).toBe('a\nb\n');
    expect(await read(path, { timestamps: true })).toBe(`${T0} a\n${T0} b\n`);
  });

  it('reads lines longer than its buffers whole, partial fragments joined', async () => {
    const long = 'L'.repeat(300 * 1024);
    const path = logFile(cri('a') + cri(long.slice(0, 100_000), { tag: 'P' }) + cri(long.slice(100_000)) + cri('b'));
    expect(await read(path, {})).toBe(`a\n${long}\nb\n`);
    expect(await read(path, { limitBytes: 200_000 })).toBe(`a\n${long}`.slice(0, 200_000));
  });

  it('fails with ERR_NOT_FOUND when there is no log file', async () => {
    await expect(read(join(tempDir(), 'missing.log'), {})).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
  });

  it('tails a 50 MiB file reading a few KiB, never the file', async () => {
    const path = join(tempDir('ke-logs-'), '0.log');
    const block = Buffer.from(cri('x'.repeat(100)).repeat(1 << 13)); // ~1 MiB
    const fd = openSync(path, 'w');
    for (let i = 0; i < 50; i++) writeSync(fd, block);
    writeSync(fd, cri('last'));
    closeSync(fd);
    const out = sink();
    const stats = await readContainerLogs(path, opts({ tailLines: 10 }), out, { isRunning: async () => false }, new AbortController().signal);
    expect(out.text().split('\n').slice(-3)).toEqual(['x'.repeat(100), 'last', '']);
    expect(stats.bytesRead).toBeLessThan(128 * 1024);
    const limited = await readContainerLogs(path, opts({ limitBytes: 10 }), sink(), { isRunning: async () => false }, new AbortController().signal);
    expect(limited.bytesRead).toBeLessThanOrEqual(64 * 1024);
  });

  it('never queues more than one chunk above the high-water mark of a slow consumer, and writes 64 KiB at a time', async () => {
    const path = logFile(cri('y'.repeat(200)).repeat(20_000)); // ~4.7 MiB
    let maxQueued = 0;
    let received = 0;
    let writes = 0;
    const slow = new Writable({
      highWaterMark: 16 * 1024,
      write(chunk: Buffer, _enc, cb) {
        received += chunk.length;
        writes++;
        setTimeout(cb, 1);
      },
    });
    const origWrite = slow.write.bind(slow);
    slow.write = ((chunk: Buffer) => {
      const ok = origWrite(chunk);
      maxQueued = Math.max(maxQueued, slow.writableLength);
      return ok;
    }) as typeof slow.write;
    const stats = await readContainerLogs(path, opts(), slow, { isRunning: async () => false }, new AbortController().signal);
    await new Promise((r) => slow.end(r));
    expect(received).toBe(201 * 20_000);
    expect(stats.bytesWritten).toBe(received);
    expect(maxQueued).toBeLessThanOrEqual(16 * 1024 + 64 * 1024);
    expect(writes).toBe(Math.ceil(received / (64 * 1024)));
  });
});

describe('following a CRI log file', () => {
  function follow(path: string, options: Partial<LogOptions>, deps: Partial<LogReadDeps> = {}) {
    const out = sink();
    const aborted = new AbortController();
    let running = true;
    const done = readContainerLogs(path, opts({ follow: true, ...options }), out, { isRunning: async () => running, ...deps }, aborted.signal);
    return { out, done, abort: () => aborted.abort(), stop: () => (running = false) };
  }
  const sees = (f: { out: { text(): string } }, text: string) => eventually(() => expect(f.out.text()).toBe(text), 5000);

  it('writes lines appended later, holding an incomplete line back until its newline (woken by fs.watch alone)', async () => {
    const path = logFile(cri('a'));
    const f = follow(path, {}, { pollIntervalMs: 60_000 });
    await sees(f, 'a\n');
    appendFileSync(path, cri('b'));
    await sees(f, 'a\nb\n');
    appendFileSync(path, `${T0} stdout F c`);
    appendFileSync(path, '\n' + cri('d'));
    await sees(f, 'a\nb\nc\nd\n');
    f.abort();
    await f.done;
  });

  it('starts at the tail and keeps going past tailLines', async () => {
    const path = logFile(cri('a') + cri('b') + cri('c'));
    const f = follow(path, { tailLines: 1 }, { pollIntervalMs: 50 });
    await sees(f, 'c\n');
    appendFileSync(path, cri('d'));
    await sees(f, 'c\nd\n');
    f.abort();
    await f.done;
  });

  for (const how of ['fs.watch', 'polling only'] as const) {
    it(`reads the rest of a rotated file, then the new one (${how})`, async () => {
      const path = logFile('');
      const writer = openSync(path, 'a'); // the runtime's descriptor, as containerd holds it
      writeSync(writer, cri('a'));
      const deps: Partial<LogReadDeps> =
        how === 'fs.watch'
          ? { pollIntervalMs: 60_000 }
          : {
              pollIntervalMs: 20,
              watch: () => {
                throw new Error('ENOSPC');
              },
            };
      const f = follow(path, {}, deps);
      await sees(f, 'a\n');
      // container_log_manager.go: rename to 0.log.<timestamp>, then ReopenContainerLog creates a new 0.log.
      renameSync(path, `${path}.20261204-214043`);
      writeSync(writer, cri('b'));
      closeSync(writer);
      writeFileSync(path, cri('c'));
      await sees(f, 'a\nb\nc\n');
      appendFileSync(path, cri('d'));
      await sees(f, 'a\nb\nc\nd\n');
      f.abort();
      await f.done;
    });
  }

  it('reads what the runtime wrote to the old file before the new file appeared', async () => {
    const path = logFile('');
    const writer = openSync(path, 'a');
    writeSync(writer, cri('a'));
    let rotateNow = false;
    const isRunning = async (): Promise<boolean> => {
      // Between the reader's end of file and its look at the path: the worst moment for a rotation.
      if (rotateNow) {
        rotateNow = false;
        renameSync(path, `${path}.20261204-214043`);
        writeSync(writer, cri('b'));
        closeSync(writer);
        writeFileSync(path, cri('c'));
      }
      return true;
    };
    const f = follow(path, {}, { pollIntervalMs: 20, isRunning });
    await sees(f, 'a\n');
    rotateNow = true;
    await sees(f, 'a\nb\nc\n');
    f.abort();
    await f.done;
  });

  it('ends once the container stopped, after what it wrote last', async () => {
    const path = logFile(cri('a'));
    const f = follow(path, {}, { pollIntervalMs: 50 });
    await sees(f, 'a\n');
    appendFileSync(path, cri('b') + `${T0} stdout F never-finished`);
    f.stop();
    await f.done;
    expect(f.out.text()).toBe('a\nb\n');
  });

  it('ends when the consumer goes away', async () => {
    const path = logFile(cri('a'));
    const f = follow(path, {}, { pollIntervalMs: 60_000 });
    await sees(f, 'a\n');
    f.out.destroy();
    await f.done;
  });
});

describe('GET /containerLogs (kubelet handler)', () => {
  async function kubelet(resolve: ContainerLogsDeps['resolve'], extra: Partial<ContainerLogsDeps> = {}) {
    const served = { count: 0 };
    const server: Server = createServer((req, res) => void serveContainerLogs(req, res, { resolve, ...extra }).then(() => served.count++));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = async (path: string, init: RequestInit = {}) => {
      const res = await fetch(base + path, init);
      return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
    };
    return { base, get, served };
  }
  const found = (logPath: string, running = false): LogTarget => ({ logPath, isRunning: async () => running });

  it('streams the log as text/plain with the options applied', async () => {
    const path = logFile(cri('a', { time: at(1) }) + cri('b', { time: at(2) }) + cri('c', { time: at(3) }));
    const asked: unknown[] = [];
    const { get } = await kubelet(async (...args) => (asked.push(args), found(path)));
    expect(await get('/containerLogs/ns/p1/web?tailLines=2&timestamps=true')).toEqual({
      status: 200,
      type: 'text/plain',
      body: '2026-12-04T21:40:02.000000001Z b\n2026-12-04T21:40:03.000000001Z c\n',
    });
    expect((await get('/containerLogs/ns/p1/web?previous=1&limitBytes=3')).body).toBe('a\nb');
    expect(asked).toEqual([
      ['ns', 'p1', 'web', false],
      ['ns', 'p1', 'web', true],
    ]);
  });

  it("answers the kubelet's status and text when the query, the pod or the container is wrong", async () => {
    const { get } = await kubelet(async (_ns, pod, container, previous) =>
      pod !== 'p1'
        ? { status: 404, message: `pod "${pod}" does not exist` }
        : previous
          ? { status: 400, message: `previous terminated container "${container}" in pod "p1" not found` }
          : found(logFile(cri('a'))),
    );
    expect(await get('/containerLogs/ns/p1/web?tailLines=x')).toMatchObject({ status: 400, body: '{"message": "Unable to decode query."}' });
    expect(await get('/containerLogs/ns/p1/web?limitBytes=0')).toMatchObject({ status: 422, body: '{"message": "Invalid request."}' });
    expect(await get('/containerLogs/ns/p2/web')).toMatchObject({ status: 404, body: 'pod "p2" does not exist' });
    expect(await get('/containerLogs/ns/p1/web?previous=true')).toMatchObject({
      status: 400,
      body: 'previous terminated container "web" in pod "p1" not found',
    });
    expect(await get('/containerLogs/ns/p1/web?stream=Stderr')).toMatchObject({ status: 400, body: expect.stringContaining('PodLogsQuerySplitStreams') });
    expect(await get('/containerLogs/ns/p2/web?stream=Stderr')).toMatchObject({ status: 404 });
    expect(await get('/containerLogs/ns/p1/web?stream=All')).toMatchObject({ status: 200, body: 'a\n' });
    expect(await get('/containerLogs/ns/p1')).toMatchObject({ status: 404 });
    expect(await get('/containerLogs/ns/p1/web', { method: 'POST' })).toMatchObject({ status: 405 });
  });

  it('appends the read error to a 200 body, as the kubelet does once it has flushed its headers', async () => {
    const { get } = await kubelet(async () => found(join(tempDir(), 'gone.log')));
    const res = await get('/containerLogs/ns/p1/web');
    expect(res.status).toBe(200);
    expect(res.body).toMatch(/^failed to try resolving symlinks in path ".*gone\.log"/);
  });

  it('follows until the client goes away', async () => {
    const path = logFile(cri('a'));
    const { base, served } = await kubelet(async () => found(path, true), { pollIntervalMs: 60_000 });
    const aborted = new AbortController();
    const res = await fetch(`${base}/containerLogs/ns/p1/web?follow=true`, { signal: aborted.signal });
    const reader = res.body!.getReader();
    let text = '';
    appendFileSync(path, cri('b'));
    while (text !== 'a\nb\n') text += Buffer.from((await reader.read()).value!).toString();
    aborted.abort();
    await eventually(() => expect(served.count).toBe(1), 5000);
  });
});

describe('which log file edged serves (kubelet validateContainerLogStatus)', () => {
  const status = (s: Partial<ContainerStatus>): ContainerStatus => ({
    name: 'web',
    state: {},
    lastState: {},
    ready: false,
    restartCount: 0,
    image: 'img',
    imageID: '',
    ...s,
  });
  const pod: Pod = {
    metadata: { name: 'p1', namespace: 'ns', uid: 'u1' },
    spec: { containers: [{ name: 'web', image: 'img' }], initContainers: [{ name: 'init', image: 'img' }] },
  };

  it('chooses the running, terminated or previous instance, or says why there is none', () => {
    const id = (s: Partial<ContainerStatus>, previous = false) => containerIdFor('p1', 'web', { containerStatuses: [status(s)] }, previous);
    const exited = { terminated: { exitCode: 1, containerID: 'containerd://old' } };
    expect(id({ state: { running: {} }, containerID: 'containerd://new', lastState: exited })).toEqual({ id: 'containerd://new' });
    expect(id({ state: { running: {} }, containerID: 'containerd://new', lastState: exited }, true)).toEqual({ id: 'containerd://old' });
    expect(id({ state: { running: {} }, containerID: 'containerd://new' }, true)).toEqual({
      error: 'previous terminated container "web" in pod "p1" not found',
    });
    expect(id({ state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: exited })).toEqual({ id: 'containerd://old' });
    expect(id({ state: { terminated: { exitCode: 0 } }, lastState: exited })).toEqual({ id: 'containerd://old' });
    expect(id({ state: { terminated: { exitCode: 0 } } })).toEqual({ error: 'container "web" in pod "p1" is terminated' });
    expect(id({ state: { waiting: { reason: 'ErrImagePull' } } })).toEqual({ error: `container "web" in pod "p1" is waiting to start: image can't be pulled` });
    expect(id({ state: { waiting: { reason: 'ImagePullBackOff' } } })).toEqual({
      error: 'container "web" in pod "p1" is waiting to start: trying and failing to pull image',
    });
    expect(id({ state: { waiting: { reason: 'ContainerCreating' } } })).toEqual({
      error: 'container "web" in pod "p1" is waiting to start: ContainerCreating',
    });
    expect(containerIdFor('p1', 'web', { containerStatuses: [] }, false)).toEqual({ error: 'container "web" in pod "p1" is not available' });
  });

  it("resolves the path from CRI's log_path and asks CRI whether the container still runs (an unreachable runtime counts as running)", async () => {
    let state: CriContainerStatus['state'] | 'down' = 'CONTAINER_RUNNING';
    const cri = {
      containerStatus: async (cid: string) => {
        if (state === 'down') throw new RuntimeError('ContainerStatus', 14, 'connection refused');
        if (cid !== 'abc') throw new RuntimeError('ContainerStatus', 5, 'not found');
        return { id: cid, state, log_path: '/var/log/pods/ns_p1_u1/web/0.log' } as CriContainerStatus;
      },
    };
    const resolve = logPathResolver({
      pod: (ns, name) => (ns === 'ns' && name === 'p1' ? pod : undefined),
      status: () => ({ containerStatuses: [status({ state: { running: {} }, containerID: 'containerd://abc' })] }) as Pod['status'],
      cri,
    });
    expect(await resolve('ns', 'p2', 'web', false)).toEqual({ status: 404, message: 'pod "p2" does not exist' });
    expect(await resolve('ns', 'p1', 'db', false)).toEqual({ status: 404, message: 'container "db" not found in pod "p1"' });
    expect(await resolve('ns', 'p1', 'init', false)).toEqual({ status: 400, message: 'container "init" in pod "p1" is not available' });
    const target = await resolve('ns', 'p1', 'web', false);
    expect(target).toMatchObject({ logPath: '/var/log/pods/ns_p1_u1/web/0.log' });
    if (!('isRunning' in target)) throw new Error('no target');
    expect(await target.isRunning()).toBe(true);
    state = 'CONTAINER_EXITED';
    expect(await target.isRunning()).toBe(false);
    state = 'down';
    expect(await target.isRunning()).toBe(true);
    expect(await resolve('ns', 'p1', 'web', false)).toEqual({ status: 400, message: 'unable to retrieve container logs for containerd://abc' });
  });
});
