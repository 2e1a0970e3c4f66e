import type { CoreV1Event, V1Pod } from '@kubernetes/client-node';
import { CoreError } from '../../shared/errors.js';
import { STRATEGIC_MERGE_PATCH, kubeError, type NodeClients } from '../kube/kube-client.js';
import type { TokenBucket } from '../kube/rate-limiter.js';
import { MIRROR_ANNOTATION, mirrorPodReferences } from './pod-references.js';

export interface PodReportsDeps {
  /** Resolves when this replica acts for the node; ERR_UNAVAILABLE when another replica took it over. */
  mayWrite(node: string): Promise<void>;
  /** The node's kubelet identity: every write here is the node's own. */
  asNode(node: string): NodeClients;
  limiter: TokenBucket;
  /** The uid of an edge Node as the informer has it (a mirror pod is owned by its Node). */
  nodeUid(node: string): string | undefined;
  /** The edge node a pod (`<namespace>/<name>`) is bound to, and its uid, when it is on an edge node. */
  nodeOfPod(key: string): { node: string; uid: string } | undefined;
  /** The pod as the informer has it. */
  pod(name: string, namespace: string): V1Pod | undefined;
}

/**
 * What an edge writes about pods, as a kubelet would: status, deletion confirmations, events and mirror pods,
 * each only for the reporting node's own objects (anything else is refused with ERR_FORBIDDEN). The writes go
 * out as the node (`system:node:<name>`), so the cluster's Node authorizer and NodeRestriction admission judge
 * them as a kubelet's; the checks here come first, so a refusal names the rule and costs no API call.
 */
export class PodReports {
  constructor(private readonly deps: PodReportsDeps) {}

  /** Patches the status of a pod bound to the reporting node; any other pod is refused. */
  async status(node: string, namespace: string, name: string, content: { uid?: string; status?: unknown } | undefined): Promise<void> {
    const tracked = this.deps.nodeOfPod(`${namespace}/${name}`);
    if (!tracked || tracked.node !== node) throw new CoreError('ERR_FORBIDDEN', `pod ${namespace}/${name} is not bound to node ${node}`);
    if (!content?.status) throw new CoreError('ERR_INVALID_MESSAGE', `pod status report for ${namespace}/${name} has no status`);
    if (content.uid && content.uid !== tracked.uid)
      throw new CoreError('ERR_INVALID_MESSAGE', `pod ${namespace}/${name} was recreated (uid ${tracked.uid}, report for ${content.uid})`);
    await this.deps.mayWrite(node);
    await this.deps.limiter.acquire();
    try {
      await this.deps
        .asNode(node)
        .core.patchNamespacedPodStatus({ name, namespace, body: { status: replacingIPLists(content.status) } }, STRATEGIC_MERGE_PATCH);
    } catch (err) {
      throw kubeError(err);
    }
  }

  /**
   * The edge stopped a pod that is being deleted: the API object goes now (grace 0, as a kubelet confirms).
   * The uid precondition keeps a confirmation for an old pod from deleting a new one of the same name.
   */
  async confirmDeletion(node: string, namespace: string, name: string, uid: string | undefined): Promise<void> {
    const tracked = this.deps.nodeOfPod(`${namespace}/${name}`);
    if (!tracked || tracked.node !== node) throw new CoreError('ERR_FORBIDDEN', `pod ${namespace}/${name} is not bound to node ${node}`);
    if (!uid || uid !== tracked.uid)
      throw new CoreError('ERR_INVALID_MESSAGE', `deletion of pod ${namespace}/${name} confirmed for uid ${uid}, the pod is ${tracked.uid}`);
    await this.deps.mayWrite(node);
    await this.deps.limiter.acquire();
    try {
      await this.deps
        .asNode(node)
        .core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid } } });
    } catch (err) {
      const e = kubeError(err);
      if (e.code !== 'ERR_NOT_FOUND') throw e;
    }
  }

  /**
   * The API's copy of a static pod the node runs (as a kubelet creates it): only for this node, only marked
   * as a mirror, referencing no API object, owned by the node's Node. A mirror of an older manifest is replaced.
   */
  async mirrorPod(node: string, namespace: string, name: string, pod: V1Pod | null): Promise<void> {
    const hash = pod?.metadata?.annotations?.[MIRROR_ANNOTATION];
    if (!pod || pod.spec?.nodeName !== node || !hash || pod.metadata?.name !== name || (pod.metadata.namespace ?? namespace) !== namespace) {
      throw new CoreError('ERR_FORBIDDEN', `node ${node} may only create mirror pods of its own static pods (${namespace}/${name})`);
    }
    const references = mirrorPodReferences(pod);
    if (references.length > 0)
      throw new CoreError('ERR_FORBIDDEN', `node ${node} may not create mirror pod ${namespace}/${name}: it references ${references.join(', ')}`);
    const nodeUid = this.deps.nodeUid(node);
    // The node's report registers its Node before any pod report; a cache that has not seen it yet catches up.
    if (!nodeUid) throw new CoreError('ERR_UNAVAILABLE', `node ${node} is not in the cache yet`);
    const existing = this.deps.pod(name, namespace);
    // Already there; another node's pod of this name is refused by the delete below, whatever its hash.
    if (existing?.spec?.nodeName === node && existing.metadata?.annotations?.[MIRROR_ANNOTATION] === hash) return;
    if (existing) await this.deleteMirrorPod(node, namespace, name);
    // As a kubelet does (and NodeRestriction requires): the node's Node is the one controlling owner.
    const owner = { apiVersion: 'v1', kind: 'Node', name: node, uid: nodeUid, controller: true };
    await this.deps.mayWrite(node);
    await this.deps.limiter.acquire();
    try {
      await this.deps
        .asNode(node)
        .core.createNamespacedPod({ namespace, body: { ...pod, metadata: { ...pod.metadata, namespace, ownerReferences: [owner] } } });
    } catch (err) {
      const e = kubeError(err);
      if (!/already exists/.test(e.message)) throw e;
    }
  }

  async deleteMirrorPod(node: string, namespace: string, name: string): Promise<void> {
    const existing = this.deps.pod(name, namespace);
    if (!existing) return;
    if (existing.spec?.nodeName !== node || !existing.metadata?.annotations?.[MIRROR_ANNOTATION])
      throw new CoreError('ERR_FORBIDDEN', `pod ${namespace}/${name} is not a mirror pod of node ${node}`);
    await this.deps.mayWrite(node);
    await this.deps.limiter.acquire();
    try {
      await this.deps
        .asNode(node)
        .core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid: existing.metadata.uid } } });
    } catch (err) {
      const e = kubeError(err);
      if (e.code !== 'ERR_NOT_FOUND') throw e;
    }
  }

  /** An event about one of the node's pods or the node itself (what a kubelet may create). */
  async event(node: string, namespace: string, event: CoreV1Event | null): Promise<void> {
    const about = event?.involvedObject;
    const ownPod = about?.kind === 'Pod' && about.namespace === namespace && this.deps.nodeOfPod(`${namespace}/${about.name}`)?.node === node;
    const ownNode = about?.kind === 'Node' && about.name === node;
    if (!event || !(ownPod || ownNode) || event.metadata?.namespace !== namespace)
      throw new CoreError('ERR_FORBIDDEN', `node ${node} may not record an event about ${about?.kind ?? '?'} ${about?.namespace ?? ''}/${about?.name ?? '?'}`);
    await this.deps.mayWrite(node);
    await this.deps.limiter.acquire();
    try {
      await this.deps.asNode(node).core.createNamespacedEvent({ namespace, body: event });
    } catch (err) {
      const e = kubeError(err);
      // A resent event that was created before is done; a namespace being deleted takes no more events.
      if (!/already exists|being terminated/.test(e.message)) throw e;
    }
  }
}

/**
 * podIPs and hostIPs merge by `ip` under a strategic merge patch: a pod that got a new address (a sandbox
 * recreated after a reboot) would end up with both, which the API server refuses. The edge's lists replace.
 */
function replacingIPLists(status: unknown): unknown {
  const s = { ...(status as Record<string, unknown>) };
  for (const key of ['podIPs', 'hostIPs']) if (Array.isArray(s[key])) s[key] = [{ $patch: 'replace' }, ...(s[key] as unknown[])];
  return s;
}
