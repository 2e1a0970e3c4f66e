import { randomUUID } from 'node:crypto';
import { ProtocolError } from './errors.js';

/**
 * The envelope used on the in-process bus and on the cloud–edge channel (KubeEdge's model.Message, flattened).
 * Resources follow KubeEdge: `<namespace>/<type>/<name>` at the edge, `node/<node>/<namespace>/<type>/<name>`
 * inside cloudcore; cluster-scoped objects use the namespace `null`.
 */
export interface Message<C = unknown> {
  readonly id: string;
  /** Id of the request this message answers; empty when it answers nothing. */
  readonly parentId: string;
  readonly timestampMs: number;
  /** Kubernetes resourceVersion of the object carried, when there is one. */
  readonly resourceVersion: string;
  readonly source: string;
  readonly group: string;
  readonly operation: string;
  readonly resource: string;
  readonly content: C;
}

export const Operation = {
  insert: 'insert',
  update: 'update',
  patch: 'patch',
  delete: 'delete',
  query: 'query',
  response: 'response',
  error: 'error',
  upload: 'upload',
  connect: 'connect',
  /** Edge → cloud at every (re)connect: what the edge store holds. */
  inventory: 'inventory',
  /** Cloud → edge: everything the resync found missing or stale has been sent before this marker. */
  synced: 'synced',
  /** EdgeHub → MetaManager: commit this batch of object messages in one transaction. */
  apply: 'apply',
} as const;

/** Cluster-scoped objects carry this namespace segment, as in KubeEdge. */
export const NULL_NAMESPACE = 'null';

export interface MessageInit<C> {
  source: string;
  group: string;
  operation: string;
  resource: string;
  content: C;
  resourceVersion?: string;
  parentId?: string;
}

export function newMessage<C>(init: MessageInit<C>, nowMs: number = Date.now()): Message<C> {
  return {
    id: randomUUID(),
    parentId: init.parentId ?? '',
    timestampMs: nowMs,
    resourceVersion: init.resourceVersion ?? '',
    source: init.source,
    group: init.group,
    operation: init.operation,
    resource: init.resource,
    content: init.content,
  };
}

/** KubeEdge's NewRespByMessage: same resource and group, operation `response`, parentId = request id. */
export function responseTo<C>(request: Message, source: string, content: C, operation: string = Operation.response): Message<C> {
  return newMessage({
    source,
    group: request.group,
    operation,
    resource: request.resource,
    content,
    parentId: request.id,
  });
}

export function errorResponseTo(request: Message, source: string, error: { code?: string; message: string }): Message<ErrorContent> {
  return responseTo(request, source, { code: error.code ?? 'ERR_UNKNOWN', message: error.message }, Operation.error);
}

export interface ErrorContent {
  code: string;
  message: string;
}

export interface EdgeResource {
  namespace: string;
  type: string;
  /** Absent for list resources such as `default/pod`. */
  name?: string;
}

/** Parses `<namespace>/<type>[/<name>]`; names may not contain `/`. */
export function parseEdgeResource(resource: string): EdgeResource {
  const parts = resource.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p.length === 0)) {
    throw new ProtocolError(`resource "${resource}" is not <namespace>/<type>[/<name>]`, 'ERR_INVALID_MESSAGE');
  }
  const [namespace, type, name] = parts as [string, string, string?];
  return name === undefined ? { namespace, type } : { namespace, type, name };
}


/** `node/<node>/<edge resource>`: how cloud modules address a node's object. */
export function toCloudResource(nodeName: string, edgeResource: string): string {
  return `node/${nodeName}/${edgeResource}`;
}

export interface CloudResource {
  nodeName: string;
  /** The part the edge sees (`<namespace>/<type>/<name>`), possibly empty for node-level resources. */
  edgeResource: string;
}

export function parseCloudResource(resource: string): CloudResource {
  const match = /^node\/([^/]+)(?:\/(.*))?$/.exec(resource);
  if (!match) {
    throw new ProtocolError(`resource "${resource}" is not node/<node>/...`, 'ERR_INVALID_MESSAGE');
  }
  return { nodeName: match[1]!, edgeResource: match[2] ?? '' };
}

/**
 * Compares Kubernetes resourceVersions. They are formally opaque, but every apiserver backed by etcd issues
 * increasing integers and KubeEdge compares them as uint64; non-numeric versions only compare equal or not.
 * Returns <0, 0 or >0, or NaN when the two cannot be ordered.
 */
export function compareResourceVersions(a: string, b: string): number {
  if (a === b) return 0;
  const na = Number(a);
  const nb = Number(b);
  if (a === '' || b === '' || !Number.isSafeInteger(na) || !Number.isSafeInteger(nb)) return Number.NaN;
  return na - nb;
}
