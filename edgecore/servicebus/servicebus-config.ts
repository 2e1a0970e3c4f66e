import { bool, int, str, type ConfigOf } from '../../shared/config/schema.js';

/** ServiceBus's slice of the edgecore config (`modules.serviceBus`, KubeEdge's names and defaults); edgecore's schema composes it. */
export function serviceBusConfigSchema() {
  return {
    enable: bool(false, 'HTTP between apps on this host and the cloud (KubeEdge ServiceBus), for the Router rules of this node.'),
    server: str('127.0.0.1', 'Address apps on this host call ServiceBus on, and where the apps it calls listen; keep it on loopback.'),
    port: int(9060, 'Port of the local ServiceBus API (KubeEdge 9060).', { min: 0, max: 65535 }),
    timeout: int(60, 'Seconds a call to a local app may take before it is answered as timed out (KubeEdge `timeout`).', { min: 1 }),
    maxBodyBytes: int(
      5_000_000,
      "Largest body a local app may send to the ServiceBus API (larger: code 413) or answer a call with (larger: the cloud caller gets 502); KubeEdge's 5e6.",
      { min: 1024 },
    ),
  };
}

export type ServiceBusConfig = ConfigOf<ReturnType<typeof serviceBusConfigSchema>>;
