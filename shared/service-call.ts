// What the cloud's Router and the edge say to each other over the channel: one HTTP call to an app listening on
// the edge host and its answer (rest → servicebus), or one MQTT message to publish on the edge broker
// (rest → eventbus). Bodies travel base64-encoded in the JSON message; their size is bounded by both sides'
// body limits and the channel's maxMessageBytes.

import { CoreError } from './errors.js';

export interface ServiceCall {
  /** The app's port on the edge host (the servicebus RuleEndpoint's `service_port`). */
  port: number;
  method: string;
  /** Path and query, starting with `/`. */
  path: string;
  headers: Record<string, string>;
  /** base64 */
  body: string;
}

export interface ServiceAnswer {
  status: number;
  headers: Record<string, string>;
  /** base64 */
  body: string;
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Checks a call that came over the wire; throws ERR_INVALID_MESSAGE naming the field. */
export function parseServiceCall(content: unknown): ServiceCall {
  const c = content as Partial<ServiceCall> | null;
  const bad = (field: string, why: string): never => {
    throw new CoreError('ERR_INVALID_MESSAGE', `service call: ${field} ${why}`);
  };
  if (typeof c !== 'object' || c === null) return bad('content', 'is not an object');
  if (!Number.isInteger(c.port) || c.port! < 1 || c.port! > 65535) bad('port', 'is not a port number');
  if (typeof c.method !== 'string' || !METHODS.has(c.method)) bad('method', `is not one of ${[...METHODS].join(', ')}`);
  if (typeof c.path !== 'string' || !c.path.startsWith('/') || /[\s]/.test(c.path)) bad('path', 'is not an absolute path');
  if (typeof c.headers !== 'object' || c.headers === null || Object.values(c.headers).some((v) => typeof v !== 'string'))
    bad('headers', 'is not a map of strings');
  if (typeof c.body !== 'string') bad('body', 'is not base64 text');
  return c as ServiceCall;
}

/** Headers that belong to one hop (RFC 9110 7.6.1) and are not passed on. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'content-length']);

/** rest → eventbus: publish `payload` on `topic` at the edge broker (Operation.deliver). */
export interface EventPublish {
  topic: string;
  /** base64 */
  payload: string;
}

/** Checks a publish that came over the wire; throws ERR_INVALID_MESSAGE naming the field. */
export function parseEventPublish(content: unknown): EventPublish {
  const c = content as Partial<EventPublish> | null;
  if (typeof c !== 'object' || c === null) throw new CoreError('ERR_INVALID_MESSAGE', 'event publish: content is not an object');
  // MQTT: a topic name is non-empty UTF-8 without wildcards or NUL (MQTT 3.1.1, 4.7).
  if (typeof c.topic !== 'string' || c.topic === '' || /[#+\u0000]/.test(c.topic))
    throw new CoreError('ERR_INVALID_MESSAGE', `event publish: topic ${JSON.stringify(c.topic)} is not a topic name`);
  if (typeof c.payload !== 'string') throw new CoreError('ERR_INVALID_MESSAGE', 'event publish: payload is not base64 text');
  return c as EventPublish;
}

/** Edge store type of the Rules whose source is on that edge (eventbus or servicebus source). */
export const RULE_TYPE = 'rule';
/** Report type of a message an app published on an eventbus-source Rule's topic (eventbus → rest). */
export const RULE_EVENT_TYPE = 'ruleevent';

/** What an edge holds of a Rule: the Rule, and the type of its source endpoint, which the edge cannot see. */
export interface EdgeRule {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string };
  spec: { source?: string; sourceResource?: Record<string, string>; target?: string; targetResource?: Record<string, string> };
  sourceType: 'eventbus' | 'servicebus';
}

/** eventbus → rest: one message received on the Rule's topic, kept in the edge's outbox until the cloud takes it. */
export interface RuleEvent {
  topic: string;
  /** base64 */
  payload: string;
}

/** Query type of an edge app's call through ServiceBus to a cloud URL (servicebus → rest). */
export const SERVICE_CALL_TYPE = 'servicecall';

/**
 * servicebus → rest: what an app on the edge host POSTs to ServiceBus (KubeEdge's request), and what it gets
 * back. The edge sends the request to the cloud as a query; the cloud's answer is the response.
 */
export interface ServiceBusRequest {
  method: string;
  targetURL: string;
  payload?: unknown;
}

export interface ServiceBusResponse {
  code: number;
  msg: string;
  body: string;
}
