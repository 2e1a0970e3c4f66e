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
