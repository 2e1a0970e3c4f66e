import { randomUUID } from 'node:crypto';
import { ProtocolError } from './errors.js';

/**
 * The envelope used on the in-process bus and on the cloud–edge channel (KubeEdge's model.Message, flattened).
 * Resources follow KubeEdge: `<namespace>/<type>/<name>`, cluster-scoped objects use the namespace `null`.
 * Inside cloudcore the node a message is for or from travels beside it (cloudcore/contracts), never in the
 * resource. `O` narrows the operation, so a module's inbox is a union its handler can switch on.
 */
export interface Message<C = unknown, O extends string = string> {
  readonly id: string;
  /** Id of the request this message answers; empty when it answers nothing. */
  readonly parentId: string;
  readonly timestampMs: number;
  /** Kubernetes resourceVersion of the object carried, when there is one. */
  readonly resourceVersion: string;
  readonly source: string;
  readonly group: string;
  readonly operation: O;
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
  /** CloudHub → controllers: an edge's session ended. */
  disconnect: 'disconnect',
  /** CloudHub → controllers: the messages that bring a node's inventory up to date. */
  sync: 'sync',
  /** To EventBus: publish the content (payload) on the topic (resource). */
  publish: 'publish',
  /** From EventBus: a client published the content on the topic. */
  received: 'received',
  /** Cloud → edge (Router → ServiceBus): make this HTTP call to an app on the edge host; the reply is its answer. */
  call: 'call',
  /** Cloud → edge (Router → EventBus): publish on the topic, answering once the broker has taken the message. */
  deliver: 'deliver',
} as const;

/** Operations an edge reports with (edged, DeviceTwin); CloudHub refuses any other on the upstream stream. */
export const REPORT_OPERATIONS = [Operation.insert, Operation.update, Operation.patch, Operation.delete] as const;
export type ReportOperation = (typeof REPORT_OPERATIONS)[number];

export function isReportOperation(operation: string): operation is ReportOperation {
  return (REPORT_OPERATIONS as readonly string[]).includes(operation);
}

/** Groups of the wire format (KubeEdge's router group): what kind of thing a message is about. */
export const Group = {
  resource: 'resource',
  twin: 'twin',
  user: 'user',
} as const;

/**
 * A request whose answer carries `R`: the type exists only for the compiler (`Bus.request` returns a
 * `Reply<R>`), so a module's contract states what comes back and callers need no cast.
 */
export interface Request<C, O extends string, R> extends Message<C, O> {
  readonly replyType?: R;
}

/** An answer: the content asked for, or an error. Narrow on `operation`. */
export type Reply<R> = Message<R, typeof Operation.response> | Message<ErrorContent, typeof Operation.error>;

export type ReplyOf<M> = M extends Request<unknown, string, infer R> ? R : unknown;

/** Cluster-scoped objects carry this namespace segment, as in KubeEdge. */
export const NULL_NAMESPACE = 'null';

export interface MessageInit<C, O extends string = string> {
  source: string;
  group: string;
  operation: O;
  resource: string;
  content: C;
  resourceVersion?: string;
  parentId?: string;
}

export function newMessage<C, O extends string = string>(init: MessageInit<C, O>, nowMs: number = Date.now()): Message<C, O> {
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
export function responseTo<C>(request: Message, source: string, content: C): Message<C, typeof Operation.response> {
  return newMessage({
    source,
    group: request.group,
    operation: Operation.response,
    resource: request.resource,
    content,
    parentId: request.id,
  });
}

export function errorResponseTo(request: Message, source: string, error: { code?: string; message: string }): Message<ErrorContent, typeof Operation.error> {
  return newMessage({
    source,
    group: request.group,
    operation: Operation.error,
    resource: request.resource,
    content: { code: error.code ?? 'ERR_UNKNOWN', message: error.message },
    parentId: request.id,
  });
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
