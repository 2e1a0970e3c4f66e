// What edgecore's modules say to each other, by receiving module. Each inbox is a union on `operation`, so a
// handler switches on what a message is; who sent it never matters.

import type { Bus } from '../../shared/bus.js';
import type { InventoryItem } from '../../shared/channel/frame.js';
import type { Message, Operation, ReportOperation, Request } from '../../shared/message.js';
import { EdgeModule } from './addresses.js';
import type { ApplyResult, ObjectChange } from './object-change.js';
import type { ServiceAnswer } from '../../shared/service-call.js';

type Op = typeof Operation;

/** EdgeHub → MetaManager: commit the batch in one transaction; the answer comes after the commit. */
export type ApplyMessage = Request<ObjectChange[], Op['apply'], ApplyResult[]>;
/** EdgeHub → MetaManager at every connect: what the store holds (key → uid, resourceVersion). */
export type InventoryMessage = Request<null, Op['inventory'], InventoryItem[]>;
/**
 * An object (`<ns>/<type>/<name>`) or a list (`<ns>/<type>`, `*` for every namespace): to MetaManager from
 * the store, to EdgeHub from the cloud. The answer is the object or the list (Kubernetes JSON).
 */
export type QueryMessage = Request<null, Op['query'], unknown>;

/** EdgeHub → listeners: the link to the cloud came up or went down (KubeEdge's content strings). */
export type ConnectionNotice = Message<'cloud_connected' | 'cloud_disconnected', Op['connect']>;

/**
 * MetaManager → the module that owns the type: the store committed this object (its JSON bytes as stored,
 * parsed only by the module that reads it) or removed it (`null`).
 */
export type StoredNotice = Message<Uint8Array | null, Op['update'] | Op['delete']>;

/**
 * To EdgeHub: a report for the cloud (status, event, mirror pod), queued durably; or a query to the cloud.
 * Sent, or asked with `request` by a sender that must know it is on disk: the answer (`queued`) comes after
 * the commit.
 */
export type ReportMessage = Request<unknown, ReportOperation, 'queued'>;

/** To EventBus: publish the payload on the topic (resource). */
export type PublishMessage = Message<Buffer, Op['publish']>;
/** From EventBus: a client published the payload on the topic (resource). */
export type ReceivedMessage = Message<Buffer, Op['received']>;

/** Cloud → ServiceBus (rest → servicebus rules): an HTTP call to an app on this host; the answer is its response. */
export type ServiceCallMessage = Request<unknown, Op['call'], ServiceAnswer>;

/** Cloud → EventBus (rest → eventbus rules): publish, answering `OK` once the broker has taken the message. */
export type DeliverMessage = Request<unknown, Op['deliver'], string>;

export type EdgeInboxes = {
  [EdgeModule.metaManager]: ApplyMessage | InventoryMessage | QueryMessage | ConnectionNotice;
  [EdgeModule.edgeHub]: ReportMessage | QueryMessage;
  [EdgeModule.edged]: StoredNotice | ConnectionNotice;
  [EdgeModule.deviceTwin]: StoredNotice | ReceivedMessage;
  [EdgeModule.eventBus]: PublishMessage | DeliverMessage | StoredNotice;
  [EdgeModule.serviceBus]: ServiceCallMessage | StoredNotice;
};

export type EdgeBus = Bus<EdgeInboxes>;

/** A stored object's JSON bytes as the object. */
export function parseStored<T>(bytes: Uint8Array): T {
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')) as T;
}
