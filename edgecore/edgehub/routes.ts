// EdgeHub's route table: which module takes what the cloud sends, and who hears of the link. The only place
// in edgecore that maps channel traffic to modules.

import { Operation } from '../../shared/message.js';
import { EdgeModule } from '../contracts/addresses.js';

/** Objects from the cloud are committed, inventories read and cloud requests answered by MetaManager. */
export const STORE = EdgeModule.metaManager;
/** Twin messages from the cloud. */
export const TWIN = EdgeModule.deviceTwin;
/**
 * Told when the link to the cloud comes up or goes down: edged reports its node in full then (the cloud may
 * have marked it Unknown meanwhile), MetaManager logs it. KubeEdge also tells twin and bus, which ignore it.
 */
export const CONNECTION_LISTENERS = [EdgeModule.metaManager, EdgeModule.edged] as const;

/** Requests from the cloud on the rpc stream, by operation: queries to the store, service calls to ServiceBus, publishes to EventBus. */
export const CLOUD_REQUESTS = {
  [Operation.query]: STORE,
  [Operation.call]: EdgeModule.serviceBus,
  [Operation.deliver]: EdgeModule.eventBus,
} as const;
