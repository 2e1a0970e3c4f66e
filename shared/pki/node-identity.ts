// How a node is named in its certificate (KubeEdge and the kubelet: CN=system:node:<name>, O=system:nodes).
// Apart from certificate-authority.ts, so an edge reads it without loading the X.509 library.
export const NODE_CN_PREFIX = 'system:node:';
export const NODE_ORGANIZATION = 'system:nodes';

/** A Kubernetes node name: a lower-case DNS subdomain (RFC 1123), at most 253 characters. */
export const isValidNodeName = (name: string): boolean => /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name);
