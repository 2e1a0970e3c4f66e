import { isIP } from 'node:net';
import { bool, int, str, type ConfigOf } from '../config/schema.js';

/**
 * The monitor server's slice (`monitorServer`), composed by both daemons with their own default port. KubeEdge's
 * cloudcore has the same server as `commonConfig.monitorServer.bindAddress` (127.0.0.1:9091).
 */
export function monitorServerConfigSchema(defaultPort: number, program: string) {
  return {
    enable: bool(true, `Serve /metrics (Prometheus), /healthz and /readyz over HTTP. A port taken or an address not on this host stops ${program} (exit 2).`),
    address: str('127.0.0.1', 'Address of the monitor server: loopback by default; 0.0.0.0 for a Prometheus on another host. An IP address, not a name.'),
    port: int(defaultPort, 'Port of the monitor server; 0 picks a free port (logged as "monitor server listening").', { min: 0, max: 65535 }),
    shutdownDelaySeconds: int(
      0,
      `On SIGTERM, /readyz answers 503 this long before ${program} stops serving, so a load balancer stops sending it new connections first.`,
      { min: 0, max: 600 },
    ),
  };
}

export type MonitorServerConfig = ConfigOf<ReturnType<typeof monitorServerConfigSchema>>;

export function monitorServerConfigProblems(c: MonitorServerConfig, path: string): string[] {
  return c.enable && isIP(c.address) === 0 ? [`${path}.address "${c.address}" is not an IP address (for example 127.0.0.1, 0.0.0.0 or ::1)`] : [];
}
