import type { KeyValue } from './cri/cri-types.js';
import type { ConfigMap, Container, Pod, Secret } from './pod-types.js';
import { parseQuantity } from './quantity.js';
import { CoreError } from '../../shared/errors.js';

/** Where edged finds the ConfigMaps and Secrets a pod uses: the edge store, so it works offline. */
export interface ConfigSource {
  configMap(namespace: string, name: string): ConfigMap | undefined;
  secret(namespace: string, name: string): Secret | undefined;
}

/** A container cannot be configured (kubelet's CreateContainerConfigError): a missing ConfigMap, key … */
export class ContainerConfigError extends CoreError {
  readonly reason = 'CreateContainerConfigError';

  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_CONTAINER_CONFIG', message, options);
  }
}

export interface PodAddresses {
  podIP: string;
  hostIP: string;
}

/**
 * The environment of a container as the kubelet builds it: envFrom sources in order, then env entries (later
 * ones win), each value with `$(VAR)` references to earlier variables expanded (`$$` escapes).
 */
export function containerEnv(pod: Pod, container: Container, source: ConfigSource, addresses: PodAddresses): KeyValue[] {
  const ns = pod.metadata.namespace ?? 'default';
  const vars = new Map<string, string>();
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.configMapRef) {
      const cm = lookup(from.configMapRef.name, from.configMapRef.optional, 'configmap', (n) => source.configMap(ns, n));
      for (const [k, v] of Object.entries(cm?.data ?? {})) vars.set(prefix + k, v);
    }
    if (from.secretRef) {
      const secret = lookup(from.secretRef.name, from.secretRef.optional, 'secret', (n) => source.secret(ns, n));
      for (const [k, v] of Object.entries(secretData(secret))) vars.set(prefix + k, v);
    }
  }
  for (const env of container.env ?? []) {
    const value = env.valueFrom ? valueFrom(pod, container, env.name, env.valueFrom, source, addresses) : expand(env.value ?? '', vars);
    if (value !== undefined) vars.set(env.name, value);
  }
  return [...vars].map(([key, value]) => ({ key, value }));
}

/** `$(NAME)` → the variable's value when defined (else left as is); `$$(NAME)` → `$(NAME)`. */
export function expand(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name?: string) => (match === '$$' ? '$' : (vars.get(name!) ?? match)));
}

/** A Secret's data decoded (stringData is merged by the API server, but a static pod's Secret may carry it). */
export function secretData(secret: Secret | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret?.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return { ...out, ...(secret?.stringData ?? {}) };
}

function valueFrom(
  pod: Pod,
  container: Container,
  name: string,
  from: NonNullable<Container['env']>[number]['valueFrom'] & object,
  source: ConfigSource,
  addresses: PodAddresses,
): string | undefined {
  const ns = pod.metadata.namespace ?? 'default';
  if (from.configMapKeyRef) {
    const ref = from.configMapKeyRef;
    const cm = lookup(ref.name, ref.optional, 'configmap', (n) => source.configMap(ns, n));
    return keyOf(cm?.data, ref.key, ref.optional, `configmap "${ref.name}"`, cm !== undefined);
  }
  if (from.secretKeyRef) {
    const ref = from.secretKeyRef;
    const secret = lookup(ref.name, ref.optional, 'secret', (n) => source.secret(ns, n));
    return keyOf(secret ? secretData(secret) : undefined, ref.key, ref.optional, `secret "${ref.name}"`, secret !== undefined);
  }
  if (from.fieldRef) return fieldValue(pod, from.fieldRef.fieldPath, addresses, name);
  if (from.resourceFieldRef)
    return resourceValue(pod, from.resourceFieldRef.containerName || container.name, from.resourceFieldRef.resource, from.resourceFieldRef.divisor);
  return undefined;
}

/** The downward API fields a kubelet resolves (env and downwardAPI volumes). */
export function fieldValue(pod: Pod, path: string, addresses: PodAddresses, what = path): string {
  const m = pod.metadata;
  const indexed = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(path);
  if (indexed) return (indexed[1] === 'labels' ? m.labels : m.annotations)?.[indexed[2]!] ?? '';
  switch (path) {
    case 'metadata.name':
      return m.name;
    case 'metadata.namespace':
      return m.namespace ?? 'default';
    case 'metadata.uid':
      return m.uid;
    case 'metadata.labels':
      return formatMap(m.labels);
    case 'metadata.annotations':
      return formatMap(m.annotations);
    case 'spec.nodeName':
      return pod.spec.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec.serviceAccountName ?? '';
    case 'status.podIP':
    case 'status.podIPs':
      return addresses.podIP;
    case 'status.hostIP':
    case 'status.hostIPs':
      return addresses.hostIP;
    default:
      throw new ContainerConfigError(`${what}: unsupported fieldRef ${path}`);
  }
}

function resourceValue(pod: Pod, containerName: string, resource: string, divisor?: string): string {
  const c = pod.spec.containers.find((x) => x.name === containerName) ?? pod.spec.initContainers?.find((x) => x.name === containerName);
  const [kind, key] = resource.split('.') as ['limits' | 'requests', string];
  const value = parseQuantity(c?.resources?.[kind]?.[key]) ?? 0;
  const unit = parseQuantity(divisor) ?? 1;
  // The kubelet rounds up (cpu in cores by default, memory in bytes).
  return String(Math.ceil(value / unit));
}

function lookup<T>(name: string | undefined, optional: boolean | undefined, kind: string, get: (name: string) => T | undefined): T | undefined {
  const found = name ? get(name) : undefined;
  if (!found && !optional) throw new ContainerConfigError(`${kind} "${name ?? ''}" not found`);
  return found;
}

function keyOf(data: Record<string, string> | undefined, key: string, optional: boolean | undefined, what: string, exists: boolean): string | undefined {
  const value = data?.[key];
  if (value === undefined && !optional && exists) throw new ContainerConfigError(`couldn't find key ${key} in ${what}`);
  return value;
}

function formatMap(map: Record<string, string> | undefined): string {
  return Object.entries(map ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}="${v}"`)
    .join('\n');
}
