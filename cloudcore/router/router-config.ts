import { bool, int, str, type ConfigOf } from '../../shared/config/schema.js';

/** Router's slice of the cloudcore config (`modules.router`, KubeEdge's names and defaults); cloudcore's schema composes it. */
export function routerConfigSchema() {
  return {
    enable: bool(
      false,
      'Serve rules.kubeedge.io Rules between cloud apps and edge apps (KubeEdge Router): a REST listener for rest sources (needs ' +
        'edgeController.source kubernetes and the CRDs in build/crds/router).',
    ),
    address: str('0.0.0.0', 'Address of the REST listener (KubeEdge `address`).'),
    port: int(9443, 'Port of the REST listener (KubeEdge `port`). It speaks HTTPS with the hub serving certificate.', { min: 0, max: 65535 }),
    restTimeout: int(60, 'Seconds a request may wait for the edge before it is answered 408 (KubeEdge `restTimeout`).', { min: 1 }),
    maxBodyBytes: int(12 * 1024 * 1024, "Largest request body the listener takes; larger ones are answered 413 (KubeEdge's 12 MiB).", { min: 1024 }),
    clientCAFile: str('', 'When set, a client certificate chaining to this CA authenticates a caller too (besides a bearer token).', {
      allowEmpty: true,
    }),
    statusIntervalMs: int(10_000, "How often each Rule's status (message counts, last errors) is written at most.", { min: 1_000 }),
    peerAddress: str(
      '',
      'host:port where the other cloudcore replicas reach this REST listener, to pass on requests for nodes connected here. ' +
        'Default: $POD_IP, else the host of modules.cloudHub.rebalance.address or the first advertise address, with `port`.',
      { allowEmpty: true },
    ),
  };
}

export type RouterConfig = ConfigOf<ReturnType<typeof routerConfigSchema>>;
