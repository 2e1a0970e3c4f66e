// CloudHub's route table: which module takes what an edge sends, and which stream carries what goes down.
// The only place in cloudcore that maps messages to modules.

import { StreamId } from '../../shared/channel/frame.js';
import { Group, Operation, type Message } from '../../shared/message.js';
import { CloudModule } from '../contracts/addresses.js';

export type ControllerName = typeof CloudModule.edgeController | typeof CloudModule.deviceController | typeof CloudModule.router;

/** Asked for a node's objects at every resync, and told when its session opens and closes. */
export const SYNC_PROVIDERS: readonly ControllerName[] = [CloudModule.edgeController, CloudModule.deviceController, CloudModule.router];

/** Reports, queries and twin messages from an edge go by their group: device twins to DeviceController, app messages (eventbus → rest rules) to the Router. */
export function controllerFor(message: Message): ControllerName {
  if (message.group === Group.user) return CloudModule.router;
  return message.group === Group.twin ? CloudModule.deviceController : CloudModule.edgeController;
}

/** Objects go on the reliable, resynced object stream; anything else on twin or rpc, unACKed. */
export function streamFor(message: Message): StreamId {
  const op = message.operation;
  if (message.group === Group.resource && (op === Operation.insert || op === Operation.update || op === Operation.delete)) return StreamId.objects;
  return message.group === Group.twin ? StreamId.twin : StreamId.rpc;
}
