import { describe, expect, it } from 'vitest';
import { decodeFrames, encodeFrames, encodeMessage, decodeMessage } from '../../shared/channel/codec.js';
import { FLAG_FIN, FrameType, StreamId, type FrameInit } from '../../shared/channel/frame.js';
import { ProtocolError } from '../../shared/errors.js';
import { newMessage } from '../../shared/message.js';
import { memoryPair, waitFor } from '../support/memory-pair.js';

/** Small seeded PRNG (mulberry32) so a failure can be replayed from the printed seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function validBatch(rand: () => number): Uint8Array {
  const frames: FrameInit[] = [];
  const n = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < n; i++) {
    const type = (1 + Math.floor(rand() * 9)) as FrameInit['type'];
    const payload = Buffer.from(
      encodeMessage(newMessage({ source: 's', group: 'resource', operation: 'update', resource: 'default/pod/x', content: { a: rand() } })),
    );
    frames.push({
      type,
      stream: Math.floor(rand() * 6),
      seq: Math.floor(rand() * 1000),
      flags: rand() < 0.5 ? FLAG_FIN : 0,
      payload,
      credit: Math.floor(rand() * 1e6),
      acks: [1, 2],
    });
  }
  return encodeFrames(frames);
}

function mutate(data: Uint8Array, rand: () => number): Uint8Array {
  const out = Buffer.from(data);
  const edits = 1 + Math.floor(rand() * 8);
  for (let i = 0; i < edits; i++) {
    const kind = rand();
    const pos = Math.floor(rand() * out.length);
    if (kind < 0.6) out[pos] = Math.floor(rand() * 256);
    else if (kind < 0.8) out[pos] = out[pos]! ^ (1 << Math.floor(rand() * 8));
    else return out.subarray(0, pos);
  }
  return out;
}

describe('frame decoder fuzz', () => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1e9);

  it(`either decodes or throws ProtocolError for random and mutated input (seed ${seed})`, () => {
    const rand = prng(seed);
    let decoded = 0;
    let rejected = 0;
    for (let i = 0; i < 20_000; i++) {
      const input =
        i % 2 === 0 ? Buffer.from(Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256))) : mutate(validBatch(rand), rand);
      try {
        const frames = decodeFrames(input, 64 * 1024);
        decoded++;
        for (const f of frames) expect(f.type).toBeGreaterThanOrEqual(1);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`seed ${seed} iteration ${i}: non-protocol error ${String(err)}`);
        rejected++;
      }
    }
    expect(decoded).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
  });

  it(`message envelopes from mutated bytes decode or throw ProtocolError (seed ${seed})`, () => {
    const rand = prng(seed + 1);
    const valid = encodeMessage(
      newMessage({ source: 'edgecontroller', group: 'resource', operation: 'insert', resource: 'default/pod/p', content: { metadata: { uid: 'u' } } }),
    );
    for (let i = 0; i < 20_000; i++) {
      try {
        decodeMessage(mutate(valid, rand));
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw new Error(`seed ${seed} iteration ${i}: non-protocol error ${String(err)}`);
      }
    }
  });

  it(`a session fed fuzzed frames stays usable or closes with a protocol error (seed ${seed})`, async () => {
    const rand = prng(seed + 2);
    for (let round = 0; round < 200; round++) {
      const pair = memoryPair();
      pair.server.session.start();
      pair.client.session.start();
      await waitFor(() => pair.server.session.status === 'open');
      for (let k = 0; k < 5 && !pair.server.closed; k++) {
        expect(() => pair.deliver('client', rand() < 0.5 ? mutate(validBatch(rand), rand) : Buffer.from([Math.floor(rand() * 256)]))).not.toThrow();
      }
      if (pair.server.closed) {
        expect(pair.server.closed.error).toBeInstanceOf(ProtocolError);
      } else {
        // Still serving: a well-formed message on a fresh stream state must go through.
        expect(['open']).toContain(pair.server.session.status);
      }
      pair.client.session.close();
      pair.server.session.close();
    }
  });

  it('decodes absent bytes fields as empty byte arrays', () => {
    const [frame] = decodeFrames(encodeFrames([{ type: FrameType.DATA, stream: StreamId.objects, seq: 1, flags: FLAG_FIN }]), 1024);
    expect(frame!.payload).toBeInstanceOf(Uint8Array);
    expect(frame!.payload.length).toBe(0);
    const message = decodeMessage(encodeMessage(newMessage({ source: 's', group: 'g', operation: 'inventory', resource: 'r', content: new Uint8Array(0) })));
    expect(message.content).toBeInstanceOf(Uint8Array);
  });

  it(`the fast encoder writes exactly the bytes protobufjs writes (seed ${seed})`, async () => {
    const { default: protobuf } = await import('protobufjs');
    const root = protobuf.loadSync(new URL('../../proto/channel.proto', import.meta.url).pathname);
    const FrameT = root.lookupType('kubeedge.channel.v1.Frame');
    const MessageT = root.lookupType('kubeedge.channel.v1.Message');
    const rand = prng(seed + 3);
    const str = (): string => (rand() < 0.2 ? '' : `s-${Math.floor(rand() * 1e9).toString(36)}-ünï-${'x'.repeat(Math.floor(rand() * 200))}`);
    const num = (): number => (rand() < 0.3 ? 0 : Math.floor(rand() * 2 ** (rand() * 53)));
    for (let i = 0; i < 2_000; i++) {
      const frame: FrameInit = {
        type: (1 + Math.floor(rand() * 9)) as FrameInit['type'],
        stream: num() % 2 ** 32,
        seq: num(),
        flags: num() % 2 ** 32,
        payload: Buffer.from(str()),
        credit: num(),
        acks: Array.from({ length: Math.floor(rand() * 4) }, num),
        code: num() % 2 ** 32,
        reason: str(),
        address: str(),
      };
      expect(Buffer.from(encodeFrames([frame])).equals(Buffer.from(FrameT.encodeDelimited(frame).finish())), `frame ${i}`).toBe(true);
      const m = newMessage(
        {
          source: str(),
          group: str(),
          operation: str(),
          resource: str(),
          content: rand() < 0.5 ? { v: str() } : Buffer.from(str()),
          resourceVersion: str(),
          parentId: str(),
        },
        num(),
      );
      const reference = MessageT.encode({
        ...m,
        content: m.content instanceof Uint8Array ? m.content : Buffer.from(JSON.stringify(m.content)),
        encoding: m.content instanceof Uint8Array ? 1 : 0,
      }).finish();
      expect(Buffer.from(encodeMessage(m)).equals(Buffer.from(reference)), `message ${i}`).toBe(true);
    }
  });

  it('round-trips a frame batch exactly', () => {
    const frames: FrameInit[] = [
      { type: FrameType.DATA, stream: StreamId.objects, seq: 2 ** 40, flags: FLAG_FIN, payload: Buffer.from('abc') },
      { type: FrameType.ACK, stream: StreamId.upstream, seq: 7, acks: [1, 2 ** 35] },
      { type: FrameType.GOAWAY, code: 1, reason: 'rebalance', address: 'wss://x' },
    ];
    const out = decodeFrames(encodeFrames(frames), 1024);
    expect(out.map((f) => [f.type, f.stream, f.seq, f.acks, f.reason, f.address, Buffer.from(f.payload).toString()])).toEqual([
      [FrameType.DATA, 1, 2 ** 40, [], '', '', 'abc'],
      [FrameType.ACK, 2, 7, [1, 2 ** 35], '', '', ''],
      [FrameType.GOAWAY, 0, 0, [], 'rebalance', 'wss://x', ''],
    ]);
  });
});
