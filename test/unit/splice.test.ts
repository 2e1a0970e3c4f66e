import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { splice } from '../../cloudcore/streams/splice.js';

/** A Duplex whose writes are collected and acknowledged only when `flush` is called (a slow reader behind it). */
function slowSink() {
  const written: Buffer[] = [];
  const pending: Array<() => void> = [];
  const sink = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, callback) {
      written.push(chunk);
      pending.push(callback);
    },
    final(callback) {
      callback();
    },
  });
  return { sink, written, flush: () => pending.splice(0).forEach((f) => f()) };
}

/** The channel stream's side; its errors are expected here (the relay logs them). */
function source(): Duplex {
  const stream = new Duplex({ read() {}, write: (_c, _e, cb) => cb(), final: (cb) => cb() });
  stream.on('error', () => {});
  return stream;
}

describe('splice', () => {
  it('keeps delivering what a side sent before its end when that side errors after it (a RESET after END)', async () => {
    const edge = source();
    const { sink: tunnel, written, flush } = slowSink();
    splice(tunnel, edge);
    edge.push(Buffer.from('answer'));
    edge.push(null);
    await new Promise<void>((resolve) => edge.once('end', () => resolve()));
    edge.destroy(new Error('stream 3 reset by peer'));
    await new Promise<void>((resolve) => edge.once('close', () => resolve()));
    expect(tunnel.destroyed).toBe(false);
    flush();
    expect(Buffer.concat(written).toString()).toBe('answer');
    expect(tunnel.writableEnded).toBe(true);
  });

  it('destroys the other side when a side fails before its end', async () => {
    const edge = source();
    const { sink: tunnel } = slowSink();
    splice(tunnel, edge);
    edge.push(Buffer.from('part'));
    edge.destroy(new Error('link lost'));
    await new Promise<void>((resolve) => tunnel.once('close', () => resolve()));
    expect(tunnel.destroyed).toBe(true);
  });
});
