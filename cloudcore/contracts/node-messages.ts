// What CloudHub and the controllers say to each other. The node a message is for or from travels beside it
// (`node`), never inside the resource: the resource is exactly what the edge sees (`<ns>/<type>/<name>`).

import type { Bus } from '../../shared/bus.js';
import type { EdgeResource, Message, Operation, ReportOperation, Request } from '../../shared/message.js';
import { CloudModule } from './addresses.js';
import type { ConnectionEvent, SyncRequest, SyncResponse } from './object-sync.js';

export type NodeMessage<C = unknown, O extends string = string> = Message<C, O> & { readonly node: string };

/** At every (re)connect: the node's inventory; the answer brings it up to date for the provider's types. */
export type SyncMessage = Request<SyncRequest, typeof Operation.sync, SyncResponse> & { readonly node: string };

/** The edge's session was accepted (before any of its reports) or ended. */
export type ConnectionMessage = NodeMessage<ConnectionEvent, typeof Operation.connect | typeof Operation.disconnect>;

/** An edge asks for one object it may read; the answer is the object (Kubernetes JSON). */
export type QueryMessage = Request<unknown, typeof Operation.query, unknown> & { readonly node: string; readonly object: EdgeResource };

/**
 * A report from an edge (status, event, mirror pod …), parsed once at CloudHub. The answer is `OK`, or an
 * error: `ERR_UNAVAILABLE` leaves it on the edge to be sent again, any other code drops it as refused.
 */
export type ReportMessage = Request<unknown, ReportOperation, string> & { readonly node: string; readonly object: EdgeResource };

export type ControllerMessage = SyncMessage | ConnectionMessage | QueryMessage | ReportMessage;

export type CloudInboxes = {
  [CloudModule.edgeController]: ControllerMessage;
  [CloudModule.deviceController]: ControllerMessage;
  [CloudModule.router]: ControllerMessage;
};

export type CloudBus = Bus<CloudInboxes>;

/** How controllers hand CloudHub a message for one node: objects go through its reliable outbox. */
export interface NodeDelivery {
  deliver(node: string, message: Message): void;
}
