import type { V1Container, V1Pod } from '@kubernetes/client-node';

/** `configmap/<namespace>/<name>` or `secret/<namespace>/<name>`. */
export type RefKey = string;

/**
 * The ConfigMaps and Secrets a pod needs on its node: volumes (plain and projected), env and envFrom of every
 * container (init and ephemeral included, unlike KubeEdge), and imagePullSecrets.
 */
export function podReferences(pod: V1Pod): Set<RefKey> {
  const ns = pod.metadata?.namespace ?? 'default';
  const refs = new Set<RefKey>();
  const cm = (name: string | undefined): void => void (name && refs.add(`configmap/${ns}/${name}`));
  const secret = (name: string | undefined): void => void (name && refs.add(`secret/${ns}/${name}`));
  const spec = pod.spec;
  for (const v of spec?.volumes ?? []) {
    cm(v.configMap?.name);
    secret(v.secret?.secretName);
    for (const source of v.projected?.sources ?? []) {
      cm(source.configMap?.name);
      secret(source.secret?.name);
    }
  }
  const containers: V1Container[] = [...(spec?.initContainers ?? []), ...(spec?.containers ?? []), ...((spec?.ephemeralContainers ?? []) as V1Container[])];
  for (const c of containers) {
    for (const e of c.env ?? []) {
      cm(e.valueFrom?.configMapKeyRef?.name);
      secret(e.valueFrom?.secretKeyRef?.name);
    }
    for (const e of c.envFrom ?? []) {
      cm(e.configMapRef?.name);
      secret(e.secretRef?.name);
    }
  }
  for (const s of spec?.imagePullSecrets ?? []) secret(s.name);
  return refs;
}

/** Marks a mirror pod: the API's copy of a static pod a node runs from a manifest. */
export const MIRROR_ANNOTATION = 'kubernetes.io/config.mirror';

export const isMirrorPod = (pod: V1Pod): boolean => pod.metadata?.annotations?.[MIRROR_ANNOTATION] !== undefined;

/**
 * The kinds of API objects a pod refers to that a node's mirror pod must not: a static pod comes from a file
 * on the node, and a reference would make the cluster hand the node that object. NodeRestriction refuses such
 * mirror pods from a node (plugin/pkg/admission/noderestriction/admission.go `admitPodCreate`: service
 * account, Secrets, ConfigMaps, ClusterTrustBundles, PVCs); cloudcore checks the same, plus generic ephemeral
 * volumes (a PVC made for the pod) and resource claims, before the write goes out as the node.
 */
export function mirrorPodReferences(pod: V1Pod): string[] {
  const found = new Set<string>();
  for (const ref of podReferences(pod)) found.add(ref.slice(0, ref.indexOf('/')));
  const spec = pod.spec;
  if (spec?.serviceAccountName || spec?.serviceAccount) found.add('serviceaccount');
  for (const v of spec?.volumes ?? []) {
    if (v.persistentVolumeClaim || v.ephemeral) found.add('persistentvolumeclaim');
    for (const source of v.projected?.sources ?? []) {
      if (source.clusterTrustBundle) found.add('clustertrustbundle');
      if (source.serviceAccountToken) found.add('serviceaccount');
    }
  }
  if (spec?.resourceClaims?.length) found.add('resourceclaim');
  return [...found].sort();
}
