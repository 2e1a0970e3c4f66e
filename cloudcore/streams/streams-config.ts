import { bool, int, str, strList, type ConfigOf } from '../../shared/config/schema.js';

/**
 * Streams' slice of the cloudcore config (`modules.streams`, issue 13): the front that kube-apiserver reaches edge
 * kubelets through. KubeEdge's cloudStream takes the API server's calls on `streamPort` 10003 (behind an iptables
 * DNAT of <nodeIP>:10350) and edges on a second `tunnelPort` 10004; here edges use their existing channel, so
 * the API server reaches them through one listener, on KubeEdge's stream port, as its egress selector's HTTPConnect
 * proxy (docs/kubeedge-stream-facts.md §2), or, where its flags cannot change, through a second one that takes
 * direct TLS by node host name (docs/kubelet-front.md).
 */
export function streamsConfigSchema() {
  return {
    enable: bool(
      false,
      "Serve edge nodes' kubelet API (kubectl logs/exec/attach/port-forward, node proxy) through their channel (KubeEdge cloudStream). " +
        'Needs clientCAFile and kube-apiserver started with an egress selector pointing at the connect listener.',
    ),
    connect: {
      address: str('0.0.0.0', 'Address of the HTTP CONNECT listener for the API server (egress selection `cluster`, proxyProtocol HTTPConnect).'),
      port: int(10003, "Port of the CONNECT listener (KubeEdge's streamPort).", { min: 0, max: 65535 }),
      socketPath: str('', 'A unix socket to take CONNECTs on as well (egress `transport.uds`), without TLS: file permissions guard it.', {
        allowEmpty: true,
      }),
      certFile: str('', "Serving certificate of the CONNECT listener (the egress file's caBundle verifies it). Default: the hub's.", {
        allowEmpty: true,
      }),
      keyFile: str('', 'Key of certFile. Default: the hub serving key.', { allowEmpty: true }),
      clientCAFile: str(
        '',
        "CA of the API server's egress client certificate (the egress file's tlsConfig.clientCert), required on the TCP listener. " +
          'Default: clientCAFile, as an API server usually presents its kubelet client certificate there too.',
        { allowEmpty: true },
      ),
    },
    direct: {
      enable: bool(
        false,
        'Also take TLS straight from the API server (or metrics-server) by node host name, for clusters with no egress selector: ' +
          "each edge's Hostname (edged hostnameOverride) must resolve to cloudcore and kube-apiserver prefer Hostname.",
      ),
      address: str('0.0.0.0', 'Address of the direct TLS listener.'),
      port: int(10350, "Port of the direct TLS listener: the kubeletPort the edges report (edged's default).", { min: 0, max: 65535 }),
    },
    clientCAFile: str(
      '',
      "CA of kube-apiserver's --kubelet-client-certificate. Inside each tunnel a caller whose certificate does not chain to it is " +
        'refused and logged (KubeEdge requests a certificate but verifies none). Required when enabled.',
      { allowEmpty: true },
    ),
    clientCommonNames: strList(
      [],
      'When not empty, only kubelet client certificates with one of these subject CNs are let in (e.g. kube-apiserver-kubelet-client).',
    ),
    servingCaCertFile: str(
      '',
      'CA that signs the per-node kubelet serving certificates, minted on demand; kube-apiserver gets it as ' +
        '--kubelet-certificate-authority. Default: the hub CA (Secret kubeedge/casecret or modules.cloudHub.caCertFile).',
      { allowEmpty: true },
    ),
    servingCaKeyFile: str('', 'Key of servingCaCertFile.', { allowEmpty: true }),
    servingCertValidityDays: int(365, 'Lifetime of a minted kubelet serving certificate; one is minted again when 90% of it has passed.', {
      min: 1,
    }),
    maxStreamsPerNode: int(
      64,
      'Tunnels open to one node at once through this replica; the next CONNECT for it is answered 429. The edge bounds its own ' +
        '(modules.edged.maxStreamingSessions for exec/attach/port-forward, 128 channel streams in all), whichever replica they come through.',
      { min: 1 },
    ),
    idleTimeoutMs: int(
      4 * 60 * 60 * 1000,
      "A tunnel with no byte either way for this long is closed (0: never). 4 h, the kubelet's streamingConnectionIdleTimeout; " +
        'a quiet `kubectl logs -f` counts as idle.',
      { min: 0 },
    ),
    directDial: bool(
      true,
      'Dial a CONNECT target that is no edge kubelet directly and splice it (cloud kubelets, service webhooks, aggregated APIs: ' +
        'the API server sends all of egress `cluster` here). Off: such targets are answered 403.',
    ),
    headTimeoutMs: int(10_000, 'Time a caller has to send its CONNECT head, and again to finish the TLS handshake inside the tunnel (408).', {
      min: 100,
    }),
    maxHeadBytes: int(8192, 'Largest CONNECT head accepted (400 beyond).', { min: 256 }),
    dialTimeoutMs: int(10_000, 'Time a direct dial may take before the CONNECT is answered 504.', { min: 100 }),
    // Several replicas (docs/kubelet-front.md): the relay that takes kubelet streams for this replica's nodes from
    // the others. It listens when modules.cloudHub.rebalance is enabled (the reports carry its address).
    replica: {
      address: str('0.0.0.0', 'Address of the replica relay, where the other cloudcore replicas pass kubelet streams for nodes held here.'),
      port: int(10005, 'Port of the replica relay (0: any free port; the replica report carries the one chosen).', { min: 0, max: 65535 }),
      peerAddress: str(
        '',
        'host:port the other replicas dial for the relay. Default: POD_IP, else the host of rebalance.address or of the first ' +
          'advertise address, with the relay port (as modules.router.peerAddress).',
        { allowEmpty: true },
      ),
    },
  };
}

export type StreamsConfig = ConfigOf<ReturnType<typeof streamsConfigSchema>>;

/** Cross-field problems, named by their path. */
export function streamsConfigProblems(c: StreamsConfig, at: string): string[] {
  const problems: string[] = [];
  if (c.enable && !c.clientCAFile) problems.push(`${at}.clientCAFile: required when ${at}.enable is true`);
  if (!c.servingCaCertFile !== !c.servingCaKeyFile) problems.push(`${at}.servingCaCertFile and servingCaKeyFile: set both or neither`);
  if (c.direct.enable && !c.enable) problems.push(`${at}.direct.enable: needs ${at}.enable`);
  if (!c.connect.certFile !== !c.connect.keyFile) problems.push(`${at}.connect.certFile and keyFile: set both or neither`);
  return problems;
}
