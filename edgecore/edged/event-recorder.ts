import { randomBytes } from 'node:crypto';
import type { Pod } from './pod-types.js';

/** A Kubernetes Event as edged sends it up (`<namespace>/event/<name>`, operation insert). */
export interface KubeEvent {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: { name: string; namespace: string };
  involvedObject: { apiVersion: 'v1'; kind: 'Pod' | 'Node'; name: string; namespace?: string; uid: string; fieldPath?: string };
  reason: string;
  message: string;
  type: 'Normal' | 'Warning';
  source: { component: 'kubelet'; host: string };
  firstTimestamp: string;
  lastTimestamp: string;
  count: number;
  reportingComponent: 'kubelet';
  reportingInstance: string;
}

/** The same event for the same object is sent once per this long; a crash loop makes one line, not hundreds. */
const REPEAT_WINDOW_MS = 60_000;

/** The kubelet's events for pods (Pulled, Created, Started, Killing, BackOff, Failed, FailedMount, Unhealthy …). */
export class EventRecorder {
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly nodeName: string,
    private readonly send: (event: KubeEvent) => void,
    private readonly now: () => number = Date.now,
  ) {}

  pod(pod: Pod, container: string | undefined, type: KubeEvent['type'], reason: string, message: string): void {
    const key = `${pod.metadata.uid}|${container ?? ''}|${reason}|${message}`;
    const now = this.now();
    if (now - (this.recent.get(key) ?? -Infinity) < REPEAT_WINDOW_MS) return;
    this.recent.set(key, now);
    if (this.recent.size > 10_000) for (const [k, t] of this.recent) if (now - t >= REPEAT_WINDOW_MS) this.recent.delete(k);
    const ns = pod.metadata.namespace ?? 'default';
    const at = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
    this.send({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${pod.metadata.name}.${now.toString(16)}${randomBytes(3).toString('hex')}`, namespace: ns },
      involvedObject: {
        apiVersion: 'v1',
        kind: 'Pod',
        name: pod.metadata.name,
        namespace: ns,
        uid: pod.metadata.uid,
        ...(container ? { fieldPath: `spec.containers{${container}}` } : {}),
      },
      reason,
      message,
      type,
      source: { component: 'kubelet', host: this.nodeName },
      firstTimestamp: at,
      lastTimestamp: at,
      count: 1,
      reportingComponent: 'kubelet',
      reportingInstance: this.nodeName,
    });
  }
}
