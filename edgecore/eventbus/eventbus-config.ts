import { bool, int, oneOf, secretFile, str, type ConfigOf } from '../../shared/config/schema.js';

/** EventBus's slice of the edgecore config (`modules.eventBus`); edgecore's schema composes it. */
export function eventBusConfigSchema() {
  return {
    enable: bool(true, 'MQTT for devices and mappers (KubeEdge EventBus).'),
    mode: oneOf(
      ['internal', 'external', 'both'] as const,
      'internal',
      'internal: an embedded broker; external: a client of another broker (e.g. mosquitto); both: the two at once.',
    ),
    internal: {
      address: str('127.0.0.1', 'Address of the embedded broker; keep it on loopback unless mappers run on other hosts.'),
      port: int(1884, 'Port of the embedded broker (KubeEdge mqttServerInternal); 0 picks a free port.', { min: 0, max: 65535 }),
      username: str('', 'When set, clients of the embedded broker must log in with this username and the password.', { allowEmpty: true }),
      password: str('', 'Password for `username`.', { allowEmpty: true }),
      passwordFile: secretFile('password'),
    },
    external: {
      url: str('tcp://127.0.0.1:1883', 'URL of the external broker (KubeEdge mqttServerExternal).', {
        pattern: /^(tcp|mqtt|mqtts|tls|ssl|ws|wss):\/\/[^/\s]+$/,
        expected: 'a broker URL like tcp://127.0.0.1:1883',
      }),
      username: str('', 'Username at the external broker.', { allowEmpty: true }),
      password: str('', 'Password at the external broker.', { allowEmpty: true }),
      passwordFile: secretFile('password'),
    },
  };
}

export type EventBusConfig = ConfigOf<ReturnType<typeof eventBusConfigSchema>>;

/** Checks within the slice; `prefix` is where the slice sits in the daemon's config (`modules.eventBus`). */
export function eventBusConfigProblems(c: EventBusConfig, prefix: string): string[] {
  // The password may have come from passwordFile: the loader put it in `password` before the checks ran.
  return c.internal.password && !c.internal.username ? [`${prefix}.internal.password is set but username is empty`] : [];
}
