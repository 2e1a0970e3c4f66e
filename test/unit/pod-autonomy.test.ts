import { describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import { silentLogger } from '../../shared/logger.js';
import { PodAutonomyWebhook } from '../../cloudcore/edgecontroller/pod-autonomy.js';

const webhook = new PodAutonomyWebhook({
  ca: undefined as never,
  host: '127.0.0.1',
  address: '127.0.0.1',
  port: 0,
  admission: undefined as never,
  isEdgeNode: (name) => name.startsWith('edge-'),
  logger: silentLogger(),
});

const defaults = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
];
const forever = [
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
];
const pod = (spec: Partial<NonNullable<V1Pod['spec']>>, annotations?: Record<string, string>): V1Pod => ({
  metadata: { name: 'p', annotations },
  spec: { containers: [], ...spec },
});

describe('pod autonomy webhook patch', () => {
  it('replaces the default eviction tolerations of a pod bound to an edge node and keeps the others', () => {
    const own = { key: 'dedicated', operator: 'Equal', value: 'x', effect: 'NoSchedule' };
    expect(webhook.patchFor(pod({ nodeName: 'edge-1', tolerations: [own, ...defaults] }))).toEqual([
      { op: 'replace', path: '/spec/tolerations', value: [own, ...forever] },
    ]);
    expect(webhook.patchFor(pod({ nodeName: 'edge-1' }))).toEqual([{ op: 'add', path: '/spec/tolerations', value: forever }]);
  });

  it('recognises pods that can only be scheduled to edge nodes', () => {
    expect(webhook.patchFor(pod({ nodeSelector: { 'node-role.kubernetes.io/edge': '' } }))).toBeDefined();
    const term = (key: string) => ({ matchExpressions: [{ key, operator: 'Exists' }] });
    const affinity = (...terms: ReturnType<typeof term>[]) => ({
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } },
    });
    expect(webhook.patchFor(pod({ affinity: affinity(term('node-role.kubernetes.io/edge')) }))).toBeDefined();
    // One term allows cloud nodes: the pod might not land on an edge, so it keeps normal eviction.
    expect(webhook.patchFor(pod({ affinity: affinity(term('node-role.kubernetes.io/edge'), term('zone')) }))).toBeUndefined();
  });

  it('leaves cloud pods and pods that opted out alone', () => {
    expect(webhook.patchFor(pod({ nodeName: 'cloud-1', tolerations: defaults }))).toBeUndefined();
    expect(webhook.patchFor(pod({}))).toBeUndefined();
    expect(webhook.patchFor(pod({ nodeName: 'edge-1', tolerations: defaults }, { 'kubeedge-ts.io/evict-when-unreachable': 'true' }))).toBeUndefined();
  });
});
