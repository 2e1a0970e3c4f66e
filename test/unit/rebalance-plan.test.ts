import { describe, expect, it } from 'vitest';
import { formatReport, parseReport, type ReplicaReport } from '../../cloudcore/contracts/replica-reports.js';
import { assignTargets, expectedCounts, planRebalance } from '../../cloudcore/cloudhub/rebalance-plan.js';

const replica = (id: string, connections: number, extra: Partial<ReplicaReport> = {}): ReplicaReport => ({
  id,
  address: `${id}.example:10000`,
  connections,
  nodeLimit: 20_000,
  draining: false,
  reportedAtMs: 1_700_000_000_000,
  ...extra,
});
const options = { tolerance: 0.1, minExcess: 5 };

describe('replica reports', () => {
  it('round-trips a report and refuses garbage naming what is wrong', () => {
    const r = replica('a', 3);
    expect(parseReport(formatReport(r))).toEqual(r);
    expect(parseReport('{nope')).toMatchObject({ error: expect.stringContaining('not JSON') });
    expect(parseReport('[1]')).toEqual({ error: 'not a JSON object' });
    expect(parseReport(JSON.stringify({ ...r, connections: -1 }))).toMatchObject({ error: expect.stringContaining('connections -1') });
    expect(parseReport(JSON.stringify({ ...r, connections: 1e12 }))).toMatchObject({ error: expect.stringContaining('connections') });
    expect(parseReport(JSON.stringify({ ...r, nodeLimit: 0 }))).toMatchObject({ error: expect.stringContaining('nodeLimit 0') });
    expect(parseReport(JSON.stringify({ ...r, id: 'Not A Label' }))).toMatchObject({ error: expect.stringContaining('id') });
    expect(parseReport(JSON.stringify({ ...r, address: 'no-port' }))).toMatchObject({ error: expect.stringContaining('address') });
    expect(parseReport(JSON.stringify({ ...r, draining: 'yes' }))).toMatchObject({ error: expect.stringContaining('draining') });
    expect(parseReport(JSON.stringify({ ...r, address: '[::1]:10000' }))).toEqual({ ...r, address: '[::1]:10000' });
    // The Router's address, where other replicas forward requests for this one's nodes: optional, host:port.
    expect(parseReport(formatReport({ ...r, router: '10.0.0.11:9443' }))).toEqual({ ...r, router: '10.0.0.11:9443' });
    expect(parseReport(JSON.stringify({ ...r, router: 'https://x' }))).toMatchObject({ error: expect.stringContaining('router') });
    // The kubelet relay's address, where other replicas pass kubelet streams for this one's nodes: the same rules.
    expect(parseReport(formatReport({ ...r, streams: '10.0.0.11:10005' }))).toEqual({ ...r, streams: '10.0.0.11:10005' });
    expect(parseReport(formatReport({ ...r, router: '[fd00::1]:9443', streams: '[fd00::1]:10005' }))).toEqual({
      ...r,
      router: '[fd00::1]:9443',
      streams: '[fd00::1]:10005',
    });
    expect(parseReport(JSON.stringify({ ...r, streams: 10005 }))).toMatchObject({ error: expect.stringContaining('streams 10005 is not host:port') });
  });
});

describe('the balancing rule', () => {
  it('expects ceil(total / replicas) of each, draining replicas none, within node limits', () => {
    expect(expectedCounts([replica('a', 300), replica('b', 0), replica('c', 0)])).toEqual(
      new Map([
        ['a', 100],
        ['b', 100],
        ['c', 100],
      ]),
    );
    expect(expectedCounts([replica('a', 10), replica('b', 0, { draining: true }), replica('c', 1)])).toEqual(
      new Map([
        ['b', 0],
        ['a', 6],
        ['c', 5],
      ]),
    );
    // b can hold only 20: the rest goes to the others.
    const capped = expectedCounts([replica('a', 300), replica('b', 0, { nodeLimit: 20 }), replica('c', 0)]);
    expect(capped.get('b')).toBe(20);
    expect(capped.get('a')! + capped.get('c')!).toBeGreaterThanOrEqual(280);
  });

  it('sheds down to E only above both the tolerance and the minimum excess, to replicas with room', () => {
    const three = [replica('a', 300), replica('b', 0), replica('c', 0)];
    const plan = planRebalance('a', three, options);
    expect(plan.shed).toBe(200);
    expect(plan.targets.map((t) => [t.id, t.room])).toEqual([
      ['b', 100],
      ['c', 100],
    ]);
    // Receivers and balanced replicas never shed.
    expect(planRebalance('b', three, options).shed).toBe(0);
    // Within 10%: 108 vs E 100 stays.
    expect(planRebalance('a', [replica('a', 108), replica('b', 92)], options).shed).toBe(0);
    // Above 10% but not by 5 edges: 6 vs E 4 stays.
    expect(planRebalance('a', [replica('a', 6), replica('b', 2)], options).shed).toBe(0);
    // Above both: 120 vs E 100.
    expect(planRebalance('a', [replica('a', 120), replica('b', 80)], options).shed).toBe(20);
  });

  it('never ping-pongs: after a shed the same reports ask nothing more of anyone', () => {
    const before = [replica('a', 300), replica('b', 0), replica('c', 0)];
    const shed = planRebalance('a', before, options).shed;
    const after = [replica('a', 300 - shed), replica('b', 100), replica('c', 100)];
    for (const id of ['a', 'b', 'c']) expect(planRebalance(id, after, options).shed).toBe(0);
  });

  it('sheds no more than the others can take, and a draining replica sheds nothing by this rule', () => {
    const full = [replica('a', 300), replica('b', 100, { nodeLimit: 100 })];
    expect(planRebalance('a', full, options).shed).toBe(0);
    expect(planRebalance('a', [replica('a', 300, { draining: true }), replica('b', 0)], options).shed).toBe(0);
  });

  it('names the replica with the most room for each edge', () => {
    const targets = [
      { id: 'b', address: 'b:1', room: 3 },
      { id: 'c', address: 'c:1', room: 1 },
    ];
    expect(assignTargets(targets, 5)).toEqual(['b:1', 'b:1', 'b:1', 'c:1']);
    expect(targets[0]!.room).toBe(3);
  });
});

describe('late replicas', () => {
  it('counts a replica whose report is late but names no edge to it', () => {
    const reports = [replica('a', 300), replica('b', 0), replica('c', 0)];
    const plan = planRebalance('a', reports, { ...options, notTargets: new Set(['c']) });
    expect(plan.expected.get('a')).toBe(100);
    expect(plan.targets.map((t) => t.id)).toEqual(['b']);
    expect(plan.shed).toBe(100);
  });
});
