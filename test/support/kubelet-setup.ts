import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { clientPki, egressSelectorConfig } from './pki.js';

// The setup the kubectl-for-edge-pods tests (kubectl-edge, kubelet-direct, kubelet-replicas, kubelet-rotation),
// the Router's pod test and the streams bench rig share. Nothing here imports vitest: benches run it too.

/** The image every pod of these tests runs (built offline by test/support/containerd.ts). */
export const BUSYBOX_IMAGE = 'localhost/lite/busybox:latest';

/**
 * The hub CA in `<folder>/ca.{crt,key}` (default `<dir>/cloud`, where cloudSetup's cloudcore finds it), made before
 * the API server starts: it is the API server's --kubelet-certificate-authority. Returns the certificate's path.
 */
export async function writeHubCa(dir: string, folder = join(dir, 'cloud')): Promise<string> {
  const hub = await CertificateAuthority.create({ commonName: 'KubeEdge' });
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'ca.crt'), hub.certPem);
  writeFileSync(join(folder, 'ca.key'), hub.keyPem, { mode: 0o600 });
  return join(folder, 'ca.crt');
}

/** The API server's kubelet client (a CA of its own, as kubeadm's apiserver-kubelet-client) and the flags for it. */
export interface KubeletClientFlags {
  /** `{ca, cert, key}`: `ca` is cloudcore's `modules.streams.clientCAFile`. */
  kubeletClient: { ca: string; cert: string; key: string };
  /** --kubelet-client-*, --kubelet-certificate-authority = the hub CA, and, with `connect`, the egress selector. */
  apiserverArgs: string[];
}

/**
 * The kube-apiserver flags of README's "kubectl logs/exec" section: its kubelet client certificate (made here in
 * `dir`), the hub CA as the kubelet serving CA, and unless `connect` is undefined an EgressSelectorConfiguration
 * sending `cluster` to cloudcore's CONNECT listener: on 127.0.0.1:`connect` over mutual TLS, or on the unix socket
 * `connect.socketPath` (modules.streams.connect.socketPath). Without it (direct by node host name), the caller adds
 * its own `--kubelet-preferred-address-types`.
 */
export function kubeletApiserverFlags(dir: string, hubCaFile: string, connect: number | { socketPath: string } | undefined): KubeletClientFlags {
  const kubeletClient = clientPki(dir, 'kubelet-client', 'kube-apiserver-kubelet-client');
  const apiserverArgs = [
    `--kubelet-client-certificate=${kubeletClient.cert}`,
    `--kubelet-client-key=${kubeletClient.key}`,
    `--kubelet-certificate-authority=${hubCaFile}`,
  ];
  if (connect !== undefined) {
    const proxy =
      typeof connect === 'number'
        ? { url: `https://127.0.0.1:${connect}`, caBundle: hubCaFile, clientCert: kubeletClient.cert, clientKey: kubeletClient.key }
        : { udsName: connect.socketPath };
    const egress = egressSelectorConfig(join(dir, 'egress.yaml'), proxy);
    apiserverArgs.push(`--egress-selector-config-file=${egress}`, '--kubelet-preferred-address-types=InternalIP,Hostname');
  }
  return { kubeletClient, apiserverArgs };
}

/**
 * A busybox pod bound to `node` running `sh -c command` in container `main` (or `options.container`), as JSON for
 * `kubectl apply -f -`; `options.spec` adds pod spec fields (hostNetwork, restartPolicy …).
 */
export function busyboxPod(name: string, node: string, command: string, options: { container?: string; spec?: Record<string, unknown> } = {}): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      ...options.spec,
      containers: [{ name: options.container ?? 'main', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sh', '-c', command] }],
    },
  });
}
