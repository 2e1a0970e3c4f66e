import { describe, expect, it } from 'vitest';
import { Duplex } from 'node:stream';
import { WebSocketConnection, parseFrame, unmask } from '../../cloudcore/cloudhub/websocket-connection.js';

/** A masked client frame, as a browser or `ws` client would send it. */
function clientFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!));
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len])
      : len < 65536
        ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, len >> 8, len & 255])
        : (() => {
            const h = Buffer.alloc(10);
            h[0] = (fin ? 0x80 : 0) | opcode;
            h[1] = 0x80 | 127;
            h.writeUInt32BE(len, 6);
            return h;
          })();
  return Buffer.concat([head, mask, masked]);
}

function harness(max = 1 << 20): { socket: Duplex; ws: WebSocketConnection; messages: Buffer[]; closes: number[]; violations: number[]; written: Buffer[] } {
  const written: Buffer[] = [];
  // What the server writes goes to `written`; what the test pushes is what the client sent.
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(Buffer.from(chunk));
      cb();
    },
  });
  const ws = new WebSocketConnection(socket, max);
  const out = { socket, ws, messages: [] as Buffer[], closes: [] as number[], violations: [] as number[], written };
  ws.events = {
    onSocketMessage: (d) => out.messages.push(Buffer.from(d)),
    onSocketViolation: (c) => out.violations.push(c),
    onSocketClose: (c) => out.closes.push(c),
  };
  return out;
}

describe('server websocket connection', () => {
  it('reassembles messages split across chunks and fragments', () => {
    const h = harness();
    const big = Buffer.alloc(70_000, 7);
    const stream = Buffer.concat([
      clientFrame(2, Buffer.from('one')),
      clientFrame(2, big),
      clientFrame(2, Buffer.from('par'), false),
      clientFrame(0, Buffer.from('ts')),
    ]);
    for (let i = 0; i < stream.length; i += 1000) h.ws.push(stream.subarray(i, i + 1000));
    expect(h.messages.map((m) => m.length)).toEqual([3, 70_000, 5]);
    expect(h.messages[2]!.toString()).toBe('parts');
    expect(h.violations).toEqual([]);
  });

  it('answers a ping with a pong and a close with a close', () => {
    const h = harness();
    h.ws.push(clientFrame(9, Buffer.from('hi')));
    expect(h.written.some((w) => w[0] === 0x8a && w.subarray(2).toString() === 'hi')).toBe(true);
    h.ws.push(clientFrame(8, Buffer.from([0x03, 0xe8])));
    expect(h.closes).toEqual([1000]);
  });

  it('fails unmasked, oversized, reserved-bit and unknown-opcode frames with the right close code', () => {
    const cases: Array<[Buffer, number]> = [
      [Buffer.from([0x82, 0x03, 1, 2, 3]), 1002],
      [clientFrame(2, Buffer.alloc(2000)), 1009],
      [Buffer.concat([Buffer.from([0xc2]), clientFrame(2, Buffer.from('x')).subarray(1)]), 1002],
      [clientFrame(3, Buffer.from('x')), 1002],
      [clientFrame(9, Buffer.alloc(200)), 1002],
      [clientFrame(0, Buffer.from('x')), 1002],
    ];
    for (const [bytes, code] of cases) {
      const h = harness(1024);
      h.ws.push(bytes);
      expect(h.violations).toEqual([code]);
      expect(h.closes).toEqual([code]);
    }
  });

  it('never throws on random or mutated input and stays consistent', () => {
    let seed = Number(process.env.FUZZ_SEED ?? 12345);
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 3_000; round++) {
      const h = harness(4096);
      const valid = Buffer.concat(
        Array.from({ length: 3 }, () => clientFrame([0, 1, 2, 8, 9, 10][Math.floor(rand() * 6)]!, Buffer.alloc(Math.floor(rand() * 300), 9), rand() < 0.8)),
      );
      const input = rand() < 0.5 ? Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))) : valid;
      for (let k = 0; k < 4; k++) input[Math.floor(rand() * input.length)] = Math.floor(rand() * 256);
      expect(() => {
        for (let i = 0; i < input.length; i += 1 + Math.floor(rand() * 50)) h.ws.push(input.subarray(i, i + 50));
      }).not.toThrow();
      expect(h.closes.length).toBeLessThanOrEqual(1);
    }
    expect(parseFrame(Buffer.from([0x82]), 10)).toBeUndefined();
  });

  it('unmasks as RFC 6455 does, at every alignment and length, and leaves a zero-keyed payload as sent', () => {
    const mask = Buffer.from([0x12, 0x34, 0xab, 0xcd]);
    const slab = Buffer.alloc(80);
    for (let i = 0; i < slab.length; i++) slab[i] = (i * 37 + 11) & 0xff;
    for (let start = 0; start < 8; start++) {
      for (let length = 0; length < 40; length++) {
        const payload = Buffer.from(slab).subarray(start, start + length);
        const expected = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!));
        unmask(payload, mask);
        expect(payload.equals(expected), `offset ${start}, length ${length}`).toBe(true);
      }
    }
    // A frame with a zero key parses to its payload bytes unchanged.
    const body = Buffer.from('bulk log bytes');
    const frame = Buffer.concat([Buffer.from([0x82, 0x80 | body.length, 0, 0, 0, 0]), body]);
    const parsed = parseFrame(frame, 1024);
    expect(parsed && 'payload' in parsed && parsed.payload.toString()).toBe('bulk log bytes');
  });
});
