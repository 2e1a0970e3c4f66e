import * as k8s from '@kubernetes/client-node';
import { ConfigError, CoreError } from '../../shared/errors.js';
import type { CloudMetrics } from '../metrics/cloud-metrics.js';
import { KeepAliveHttp } from './keep-alive-http.js';

export interface KubeClients {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  admission: k8s.AdmissionregistrationV1Api;
  custom: k8s.CustomObjectsApi;
  /** TokenReview: the Router authenticates callers of its REST listener by their bearer token. */
  authn: k8s.AuthenticationV1Api;
  /**
   * A list as the API server wrote it. The typed list calls deserialize into client-node's model classes
   * (key order, Date objects, fields the model does not know dropped) while watch events are plain JSON: an
   * informer fed by both would hand edges two shapes of one object, and edged restarts a container whose
   * spec looks changed. Informers list with this instead. Fetched in pages of LIST_PAGE_SIZE, returned whole.
   */
  rawList<T>(path: string, labelSelector?: string): Promise<k8s.KubernetesListObject<T & k8s.KubernetesObject>>;
  /**
   * Clients that act as the kubelet of `node` (user `system:node:<node>`, group `system:nodes`): what cloudcore
   * writes on an edge's behalf goes through these, so the cluster's Node authorizer and NodeRestriction
   * admission give it exactly a kubelet's limits. Cached per node.
   */
  asNode(node: string): NodeClients;
  /** The API server URL, for logs. */
  server: string;
  /** Where API requests and informers are counted, when the daemon keeps metrics. */
  metrics?: CloudMetrics;
}

/** The API groups an edge writes to through cloudcore. */
export interface NodeClients {
  core: k8s.CoreV1Api;
  coordination: k8s.CoordinationV1Api;
}

export const NODE_USER_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';

/** Items per list request (client-go's pager default). */
export const LIST_PAGE_SIZE = 500;

/** A list page as the API server writes it (client-node's model calls the continue token `_continue`). */
type RawList<T extends k8s.KubernetesObject> = k8s.KubernetesListObject<T> & { metadata?: { continue?: string } };

/**
 * Clients for the cluster: from a kubeconfig file, or in-cluster (service account) when none is given and
 * cloudcore runs in a pod.
 */
export function createKubeClients(opts: { kubeconfig: string; metrics?: CloudMetrics }): KubeClients {
  const kc = new k8s.KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else throw new Error('no kubeconfig given and not running in a cluster');
  } catch (err) {
    throw new ConfigError([`kubeAPI: cannot load Kubernetes credentials: ${(err as Error).message}`], { cause: err });
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError(['kubeAPI: the kubeconfig has no current cluster']);
  const server = new k8s.ServerConfiguration(cluster.server, {});
  const http = new KeepAliveHttp(opts.metrics);
  const httpApi = k8s.wrapHttpLibrary(http);
  const config = k8s.createConfiguration({ baseServer: server, authMethods: { default: kc }, httpApi });
  const rawPage = async <T extends k8s.KubernetesObject>(
    path: string,
    labelSelector: string | undefined,
    continueToken: string | undefined,
  ): Promise<RawList<T>> => {
    const request = server.makeRequestContext(path, k8s.HttpMethod.GET);
    if (labelSelector) request.setQueryParam('labelSelector', labelSelector);
    request.setQueryParam('limit', String(LIST_PAGE_SIZE));
    if (continueToken) request.setQueryParam('continue', continueToken);
    request.setHeaderParam('Accept', 'application/json');
    await kc.applySecurityAuthentication(request);
    const response = await http.send(request);
    const text = await response.body.text();
    if (response.httpStatusCode !== 200) throw new k8s.ApiException(response.httpStatusCode, `list ${path}`, text, response.headers);
    return JSON.parse(text) as RawList<T>;
  };
  const rawList = async <T>(path: string, labelSelector?: string): Promise<k8s.KubernetesListObject<T & k8s.KubernetesObject>> => {
    // In pages, as client-go's pager does: one response for 10,000 pods is ~50 MB of body, text and parsed
    // garbage at once (a replica's RSS peaked at ~400 MiB). Every page belongs to the first page's snapshot
    // and carries its resourceVersion, which the watch starts from; an expired continue token (410) fails
    // the list and the informer lists again.
    const items: Array<T & k8s.KubernetesObject> = [];
    let page: RawList<T & k8s.KubernetesObject> | undefined;
    do {
      page = await rawPage<T & k8s.KubernetesObject>(path, labelSelector, page?.metadata?.continue);
      for (const item of page.items) items.push(item);
    } while (page.metadata?.continue);
    return { ...page, items };
  };
  const nodeClients = new Map<string, NodeClients>();
  const asNode = (node: string): NodeClients => {
    let clients = nodeClients.get(node);
    if (!clients) {
      // Per-call options (a patch's Content-Type) are appended to these middlewares, not put in their place.
      const nodeConfig = k8s.createConfiguration({ baseServer: server, authMethods: { default: kc }, httpApi, promiseMiddleware: impersonating(node) });
      clients = { core: new k8s.CoreV1Api(nodeConfig), coordination: new k8s.CoordinationV1Api(nodeConfig) };
      nodeClients.set(node, clients);
    }
    return clients;
  };
  return {
    kc,
    core: new k8s.CoreV1Api(config),
    admission: new k8s.AdmissionregistrationV1Api(config),
    custom: new k8s.CustomObjectsApi(config),
    authn: new k8s.AuthenticationV1Api(config),
    rawList,
    asNode,
    server: cluster.server,
    metrics: opts.metrics,
  };
}

/**
 * Whether the API server serves a custom resource (its CRD is installed): false on 404, true otherwise (another
 * error is left to the informer, which retries).
 */
export async function crdServed(clients: KubeClients, group: string, version: string, plural: string): Promise<boolean> {
  try {
    await clients.custom.listClusterCustomObject({ group, version, plural, limit: 1 });
    return true;
  } catch (err) {
    return kubeError(err).code !== 'ERR_NOT_FOUND';
  }
}

/**
 * Impersonation headers for a node's kubelet identity. Only `system:nodes` is named: for any user but
 * system:anonymous the API server adds `system:authenticated` itself, without an authorization check
 * (k8s.io/apiserver pkg/endpoints/filters/impersonation.go), so cloudcore's RBAC needs no grant for it.
 */
export function impersonating(node: string): k8s.Middleware[] {
  return [
    {
      pre: async (request) => {
        request.setHeaderParam('Impersonate-User', `${NODE_USER_PREFIX}${node}`);
        request.setHeaderParam('Impersonate-Group', NODES_GROUP);
        return request;
      },
      post: async (response) => response,
    },
  ];
}

/** HTTP status of a failed API call (404, 409, 410 …), or undefined for transport errors. */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown; statusCode?: unknown })?.code ?? (err as { statusCode?: unknown })?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

export const MERGE_PATCH = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
export const STRATEGIC_MERGE_PATCH = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch);

/** Maps an API failure to a stable code: 404 not found, 403 forbidden, 5xx/429/transport unavailable. */
export function kubeError(err: unknown): CoreError {
  const status = apiStatus(err);
  const body = (err as { body?: unknown }).body;
  const detail = typeof body === 'string' ? body.slice(0, 300) : (err as Error).message;
  if (status === 404) return new CoreError('ERR_NOT_FOUND', detail, { cause: err });
  if (status === 403) return new CoreError('ERR_FORBIDDEN', detail, { cause: err });
  if (status === undefined || status === 429 || status >= 500)
    return new CoreError('ERR_UNAVAILABLE', `API server unavailable (${status ?? 'no response'}): ${detail}`, { cause: err });
  // The API machinery refuses with a Status object. A bare 4xx (Go's HTTP server answering a request it could
  // not even parse, on a connection it then closes) is transport trouble: the report is tried again, not dropped.
  if (!isStatusBody(body)) return new CoreError('ERR_UNAVAILABLE', `API server connection failed (${status}): ${detail}`, { cause: err });
  return new CoreError('ERR_INVALID_MESSAGE', `API server refused (${status}): ${detail}`, { cause: err });
}

function isStatusBody(body: unknown): boolean {
  if (body && typeof body === 'object') return (body as { kind?: unknown }).kind === 'Status';
  if (typeof body !== 'string') return false;
  try {
    return (JSON.parse(body) as { kind?: unknown }).kind === 'Status';
  } catch {
    return false;
  }
}
