import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeOutbox, type OutboxItem } from '../../cloudcore/cloudhub/node-outbox.js';
import { MetaStore } from '../../edgecore/metamanager/meta-store.js';
import { openDatabase } from '../../shared/sqlite.js';
import { newMessage } from '../../shared/message.js';
import type { ObjectChange } from '../../edgecore/contracts/object-change.js';

const item = (key: string, uid: string, rv: number, deleted = false): OutboxItem => ({
  key,
  message: newMessage({
    source: 't',
    group: 'resource',
    operation: deleted ? 'delete' : 'update',
    resource: key,
    resourceVersion: String(rv),
    content: { metadata: { uid } },
  }),
  version: { uid, resourceVersion: String(rv), deleted },
  enqueuedAtMs: 0,
});

describe('node outbox', () => {
  it('keeps only the newest waiting version of a key, in its first place in line', () => {
    const o = new NodeOutbox();
    expect(o.offer(item('ns/pod/a', 'u', 5))).toBe(true);
    expect(o.offer(item('ns/pod/b', 'u', 6))).toBe(true);
    expect(o.offer(item('ns/pod/a', 'u', 7))).toBe(true);
    expect(o.offer(item('ns/pod/a', 'u', 3))).toBe(false);
    expect([o.next()!.version!.resourceVersion, o.next()!.key]).toEqual(['7', 'ns/pod/b']);
    expect(o.next()).toBeUndefined();
  });

  it('drops versions the edge already has or will get, and deletes of objects it does not hold', () => {
    const o = new NodeOutbox();
    o.known.set('ns/pod/a', { uid: 'u', resourceVersion: '10' });
    expect(o.offer(item('ns/pod/a', 'u', 10))).toBe(false);
    expect(o.offer(item('ns/pod/a', 'u', 9))).toBe(false);
    expect(o.offer(item('ns/pod/zzz', 'u', 11, true))).toBe(false);
    expect(o.offer(item('ns/pod/a', 'u', 11))).toBe(true);
    o.sent(o.next()!);
    // In flight: an older version arriving now is stale, a newer one waits behind it.
    expect(o.offer(item('ns/pod/a', 'u', 11))).toBe(false);
    expect(o.offer(item('ns/pod/a', 'u', 12, true))).toBe(true);
  });

  it('records in known what the edge ACKed, deletes included, and frees idle maps', () => {
    const o = new NodeOutbox();
    o.offer(item('ns/pod/a', 'u1', 1));
    o.offer(item('ns/pod/b', 'u2', 2));
    const a = o.next()!;
    o.sent(a);
    o.sent(o.next()!);
    o.acked([a]);
    expect(o.known.get('ns/pod/a')).toEqual({ uid: 'u1', resourceVersion: '1' });
    o.offer(item('ns/pod/a', 'u1', 3, true));
    const del = o.next()!;
    o.sent(del);
    o.acked([del]);
    expect(o.known.has('ns/pod/a')).toBe(false);
    expect([o.pendingCount, o.inflightKeys]).toEqual([0, 1]);
    // A recreated object (new uid) with a newer version goes out even though the key was deleted.
    expect(o.offer(item('ns/pod/a', 'u9', 4))).toBe(true);
  });
});

describe('edge meta store', () => {
  const store = (): MetaStore => new MetaStore(openDatabase(join(mkdtempSync(join(tmpdir(), 'meta-')), 'edge.db'), { synchronous: 'normal' }));
  const change = (key: string, uid: string, rv: string, deleted = false): ObjectChange => ({
    key,
    type: key.split('/')[1]!,
    uid,
    resourceVersion: rv,
    deleted,
    value: Buffer.from(JSON.stringify({ metadata: { uid, resourceVersion: rv } })),
  });

  it('applies only newer versions, so nothing ever goes back in time', () => {
    const s = store();
    expect(s.apply([change('d/pod/a', 'u', '5'), change('d/pod/a', 'u', '4'), change('d/pod/a', 'u', '5'), change('d/pod/a', 'u', '6')])).toEqual([
      'applied',
      'stale',
      'stale',
      'applied',
    ]);
    expect(s.get('d/pod/a')!.resourceVersion).toBe('6');
  });

  it('deletes only the incarnation it names or an older one', () => {
    const s = store();
    s.apply([change('d/pod/a', 'new', '10')]);
    expect(s.apply([change('d/pod/a', 'old', '8', true)])).toEqual(['stale']);
    expect(s.apply([change('d/pod/a', 'new', '10', true)])).toEqual(['applied']);
    expect(s.get('d/pod/a')).toBeUndefined();
    expect(s.apply([change('d/pod/a', 'x', '1', true)])).toEqual(['stale']);
  });

  it('orders non-numeric versions by difference only', () => {
    const s = store();
    expect(s.apply([change('d/cm/c', 'u', 'abc'), change('d/cm/c', 'u', 'abc'), change('d/cm/c', 'u', 'abd')])).toEqual(['applied', 'stale', 'applied']);
    expect(s.inventory()).toEqual([{ key: 'd/cm/c', uid: 'u', resourceVersion: 'abd' }]);
  });
});
