/**
 * The labels a kubelet may set on its own Node, as the NodeRestriction admission plugin decides
 * (kubernetes/kubernetes v1.33, plugin/pkg/admission/noderestriction/admission.go `getForbiddenLabels`, and
 * staging/src/k8s.io/kubelet/pkg/apis/well_known_labels.go `IsKubeletLabel`):
 * - anything under `node-restriction.kubernetes.io/` (or a subdomain of it) is forbidden: it is how an
 *   administrator marks nodes that workloads may trust, so a node must not grant it to itself;
 * - any other `kubernetes.io` / `k8s.io` label (domain or subdomain) is forbidden unless it is one of the
 *   well-known kubelet labels or lies under `kubelet.kubernetes.io` / `node.kubernetes.io` (or a subdomain).
 *   `node-role.kubernetes.io/*` is therefore forbidden: a node cannot steer control-plane workloads to itself;
 * - labels in other domains are the node's business.
 */
const KUBELET_LABELS = new Set([
  'kubernetes.io/hostname',
  'topology.kubernetes.io/zone',
  'topology.kubernetes.io/region',
  'failure-domain.beta.kubernetes.io/zone',
  'failure-domain.beta.kubernetes.io/region',
  'beta.kubernetes.io/instance-type',
  'node.kubernetes.io/instance-type',
  'kubernetes.io/os',
  'kubernetes.io/arch',
  'beta.kubernetes.io/os',
  'beta.kubernetes.io/arch',
]);
const KUBELET_LABEL_DOMAINS = ['kubelet.kubernetes.io', 'node.kubernetes.io'];
const NODE_RESTRICTION_DOMAIN = 'node-restriction.kubernetes.io';

const within = (domain: string, parent: string): boolean => domain === parent || domain.endsWith(`.${parent}`);
const domainOf = (key: string): string => (key.includes('/') ? key.slice(0, key.indexOf('/')) : '');

/** Whether a kubelet may set this label on its own Node. */
export function isKubeletAllowedLabel(key: string): boolean {
  const domain = domainOf(key);
  if (within(domain, NODE_RESTRICTION_DOMAIN)) return false;
  if (!within(domain, 'kubernetes.io') && !within(domain, 'k8s.io')) return true;
  return KUBELET_LABELS.has(key) || KUBELET_LABEL_DOMAINS.some((d) => within(domain, d));
}

/** Splits a node's own labels into those a kubelet may set and the keys it may not. */
export function kubeletLabels(labels: Record<string, string> | undefined): { allowed: Record<string, string>; refused: string[] } {
  const allowed: Record<string, string> = {};
  const refused: string[] = [];
  for (const [key, value] of Object.entries(labels ?? {})) {
    if (isKubeletAllowedLabel(key)) allowed[key] = value;
    else refused.push(key);
  }
  return { allowed, refused };
}
