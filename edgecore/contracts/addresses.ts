// edgecore's modules. A module's name is its folder, its bus address and its log binding (`module` field).

export const EdgeModule = {
  edgeHub: 'edgehub',
  metaManager: 'metamanager',
  edged: 'edged',
  deviceTwin: 'devicetwin',
  eventBus: 'eventbus',
  serviceBus: 'servicebus',
} as const;
