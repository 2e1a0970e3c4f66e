// cloudcore's modules. A module's name is its folder, its bus address and its log binding (`module` field).

export const CloudModule = {
  cloudHub: 'cloudhub',
  edgeController: 'edgecontroller',
  deviceController: 'devicecontroller',
  router: 'router',
  streams: 'streams',
} as const;
