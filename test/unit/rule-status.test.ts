import { describe, expect, it } from 'vitest';
import { KEPT_ERRORS, RuleStatus, type StoredStatus } from '../../cloudcore/router/rule-status.js';
import { silentLogger } from '../../shared/logger.js';

/** One Rule as the API server keeps it: a conditional write succeeds only at the current resourceVersion. */
class FakeRule {
  version = 1;
  status: Required<StoredStatus> = { successMessages: 0, failMessages: 0, errors: [] };
  writes = 0;
  conflicts = 0;
  deleted = false;

  patch(status: Required<StoredStatus>, resourceVersion: string): boolean {
    if (this.deleted) return true;
    if (resourceVersion !== String(this.version)) {
      this.conflicts++;
      return false;
    }
    this.status = structuredClone(status);
    this.version++;
    this.writes++;
    return true;
  }
}

/** A replica's RuleStatus over an informer copy of the rule that the test refreshes when it chooses. */
function replica(rule: FakeRule) {
  let seen = { status: structuredClone(rule.status), resourceVersion: String(rule.version) };
  const status = new RuleStatus({
    intervalMs: 60_000,
    logger: silentLogger(),
    current: () => (rule.deleted ? undefined : seen),
    patch: async (_ns, _name, s, rv) => rule.patch(s, rv),
  });
  return {
    status,
    /** The informer catches up with the API server. */
    sync: () => (seen = { status: structuredClone(rule.status), resourceVersion: String(rule.version) }),
  };
}

describe('rule status', () => {
  it('adds each replica’s counts to the stored status, never overwriting another replica’s', async () => {
    const rule = new FakeRule();
    const [a, b] = [replica(rule), replica(rule)];
    for (let i = 0; i < 5; i++) a.status.success('default', 'r');
    for (let i = 0; i < 3; i++) b.status.success('default', 'r');
    b.status.failure('default', 'r', '502 edge app down');

    await a.status.flush();
    // b's informer copy is behind a's write: its conditional write is refused and kept for later.
    await b.status.flush();
    expect(rule.conflicts).toBe(1);
    expect(rule.status).toMatchObject({ successMessages: 5, failMessages: 0 });

    b.sync();
    await b.status.flush();
    expect(rule.status.successMessages).toBe(8);
    expect(rule.status.failMessages).toBe(1);
    expect(rule.status.errors).toEqual([expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ 502 edge app down$/)]);

    // Nothing new: nothing written.
    const writes = rule.writes;
    a.sync();
    await a.status.flush();
    await b.status.flush();
    expect(rule.writes).toBe(writes);
  });

  it('keeps the last ten errors, older stored ones first out', async () => {
    const rule = new FakeRule();
    rule.status.errors = Array.from({ length: 8 }, (_, i) => `old-${i}`);
    const a = replica(rule);
    a.sync();
    for (let i = 0; i < 4; i++) a.status.failure('default', 'r', `new-${i}`);
    await a.status.flush();
    expect(rule.status.errors).toHaveLength(KEPT_ERRORS);
    expect(rule.status.errors.slice(0, 6)).toEqual(['old-2', 'old-3', 'old-4', 'old-5', 'old-6', 'old-7']);
    expect(rule.status.errors.slice(6).map((e) => e.split(' ')[1])).toEqual(['new-0', 'new-1', 'new-2', 'new-3']);
    expect(rule.status.failMessages).toBe(4);
  });

  it('drops the counts of a deleted rule', async () => {
    const rule = new FakeRule();
    const a = replica(rule);
    a.status.success('default', 'r');
    rule.deleted = true;
    await a.status.flush();
    expect(rule.writes).toBe(0);
    rule.deleted = false;
    await a.status.flush();
    expect(rule.writes).toBe(0);
  });
});
