import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resyncMessages } from '../../cloudcore/cloudhub/resync.js';
import { UpstreamCursor, UpstreamOutbox } from '../../edgecore/edgehub/upstream-outbox.js';
import { ReliableSender, type SendQueue } from '../../shared/channel/reliable-sender.js';
import type { ChannelSession } from '../../shared/channel/session.js';
import { PendingRequests } from '../../shared/pending-requests.js';
import { openDatabase } from '../../shared/sqlite.js';

/** A channel whose window takes `room` more messages; records what was written. */
function fakeChannel(room: number): ChannelSession & { written: string[]; room: number } {
  let seq = 0;
  const channel = {
    status: 'open',
    room,
    written: [] as string[],
    writable: () => channel.room > 0,
    write: (_stream: number, data: Uint8Array) => {
      channel.room--;
      channel.written.push(Buffer.from(data).toString());
      return ++seq;
    },
  };
  return channel as unknown as ChannelSession & { written: string[]; room: number };
}

function listQueue(items: string[]): SendQueue<string> & { pauses: number } {
  const queue = { pauses: 0, next: () => items.shift(), bytes: (i: string) => Buffer.from(i), paused: () => void queue.pauses++ };
  return queue;
}

describe('reliable sender', () => {
  it('sends only as far as the window allows and keeps every item until it is ACKed', () => {
    const channel = fakeChannel(2);
    const sender = new ReliableSender(channel, 1, listQueue(['a', 'b', 'c', 'd']));
    sender.pump();
    expect(channel.written).toEqual(['a', 'b']);
    expect(sender.inflightCount).toBe(2);
    channel.room = 10;
    sender.pump();
    expect(channel.written).toEqual(['a', 'b', 'c', 'd']);
    // Cumulative up to seq 2 plus the selective seq 4: a, b and d are done, c is still in flight.
    expect(sender.acked(2, [4])).toEqual(['a', 'b', 'd']);
    expect(sender.oldest()).toBe('c');
    expect(sender.acked(2)).toEqual([]);
    expect(sender.forget()).toBe(1);
    expect(sender.inflightCount).toBe(0);
  });

  it('sends nothing on a closed channel', () => {
    const channel = fakeChannel(5);
    (channel as { status: string }).status = 'closed';
    const queue = listQueue(['a']);
    new ReliableSender(channel, 1, queue).pump();
    expect(channel.written).toEqual([]);
    expect(queue.pauses).toBe(1);
  });
});

describe('upstream cursor', () => {
  const outbox = (): UpstreamOutbox => new UpstreamOutbox(openDatabase(join(mkdtempSync(join(tmpdir(), 'up-')), 'edge.db'), { synchronous: 'normal' }));

  it('reads a replaced status afresh after a pause instead of sending the read-ahead copy', () => {
    const o = outbox();
    o.put(Buffer.from('event 1'));
    o.put(Buffer.from('status v1'), 'default/podstatus/a');
    const channel = fakeChannel(1);
    const sender = new ReliableSender(channel, 2, new UpstreamCursor(o));
    sender.pump();
    expect(channel.written).toEqual(['event 1']);
    // status v1 was read ahead but not sent; v2 replaces it in the outbox.
    o.put(Buffer.from('status v2'), 'default/podstatus/a');
    channel.room = 10;
    sender.pump();
    expect(channel.written).toEqual(['event 1', 'status v2']);
  });

  it('sends everything still in the outbox again after a rewind, oldest first', () => {
    const o = outbox();
    for (const m of ['r1', 'r2', 'r3']) o.put(Buffer.from(m));
    const channel = fakeChannel(10);
    const cursor = new UpstreamCursor(o);
    const sender = new ReliableSender(channel, 2, cursor);
    sender.pump();
    o.remove(sender.acked(1).map((row) => row.id));
    sender.forget();
    cursor.rewind();
    sender.pump();
    expect(channel.written).toEqual(['r1', 'r2', 'r3', 'r2', 'r3']);
  });

  it('keeps the order of a batch, coalesces within it, and finds rows put after the cursor had read everything', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'up-')), 'edge.db');
    const o = new UpstreamOutbox(openDatabase(path, { synchronous: 'normal' }));
    const channel = fakeChannel(10);
    const sender = new ReliableSender(channel, 2, new UpstreamCursor(o));
    o.putAll([{ message: Buffer.from('e1') }, { message: Buffer.from('s1'), coalesceKey: 'default/podstatus/a' }, { message: Buffer.from('e2') }]);
    o.putAll([{ message: Buffer.from('s2'), coalesceKey: 'default/podstatus/a' }]);
    sender.pump();
    o.putAll([{ message: Buffer.from('e3') }]);
    sender.pump();
    expect(channel.written).toEqual(['e1', 'e2', 's2', 'e3']);
    // A new outbox on the same file (an edgecore restart) starts after the newest row, not at 0.
    expect(new UpstreamOutbox(openDatabase(path, { synchronous: 'normal' })).lastId).toBe(o.lastId);
  });
});

describe('resync messages', () => {
  const inventory = [
    { key: 'default/pod/p', uid: 'u1', resourceVersion: '5' },
    { key: 'default/gadget/g', uid: 'u2', resourceVersion: '6' },
  ];

  it('deletes what the edge holds of a type no provider owns, and nothing when one owns every type', () => {
    const deletes = resyncMessages(inventory, [{ ownedTypes: ['pod'], messages: [] }]);
    expect(deletes.map((m) => [m.operation, m.resource, (m.content as { metadata: { uid: string } }).metadata.uid])).toEqual([
      ['delete', 'default/gadget/g', 'u2'],
    ]);
    expect(resyncMessages(inventory, [{ ownedTypes: ['*'], messages: [] }])).toEqual([]);
  });
});

describe('pending requests', () => {
  it('settles a waiter once, and times out the one nobody answers', async () => {
    const pending = new PendingRequests<number>();
    const answered = pending.wait('a', 1_000, 'a timed out');
    expect(pending.settle('a', 7)).toBe(true);
    expect(pending.settle('a', 8)).toBe(false);
    await expect(answered).resolves.toBe(7);
    await expect(pending.wait('b', 20, 'b timed out')).rejects.toMatchObject({ code: 'ERR_TIMEOUT', message: 'b timed out' });
  });
});
