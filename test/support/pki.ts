import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/**
 * A CA and a client certificate (clientAuth) signed by it, made by openssl as kubeadm makes
 * apiserver-kubelet-client: `<dir>/<name>-ca.crt`, `<dir>/<name>.crt`, `<dir>/<name>.key`.
 */
export function clientPki(dir: string, name: string, cn: string): { ca: string; cert: string; key: string } {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`, '-days', '2', '-subj', `/CN=${name}-ca`]);
  openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/O=kubeadm:cluster-admins/CN=${cn}`]);
  writeFileSync(join(dir, `${name}.ext`), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
  const sign = ['-CA', `${name}-ca.crt`, '-CAkey', `${name}-ca.key`, '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`];
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, ...sign, '-out', `${name}.crt`]);
  return { ca: join(dir, `${name}-ca.crt`), cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/**
 * An EgressSelectorConfiguration (apiserver.k8s.io/v1beta1) sending `cluster` traffic to an HTTP CONNECT proxy: over
 * mutual TLS to `url`, or over the unix socket `udsName` (no TLS: the file's permissions guard it).
 */
export function egressSelectorConfig(
  path: string,
  proxy: { url: string; caBundle: string; clientCert: string; clientKey: string } | { udsName: string },
): string {
  const transport =
    'udsName' in proxy
      ? ['      uds:', `        udsName: ${proxy.udsName}`]
      : [
          '      tcp:',
          `        url: ${proxy.url}`,
          '        tlsConfig:',
          `          caBundle: ${proxy.caBundle}`,
          `          clientCert: ${proxy.clientCert}`,
          `          clientKey: ${proxy.clientKey}`,
        ];
  writeFileSync(
    path,
    [
      'apiVersion: apiserver.k8s.io/v1beta1',
      'kind: EgressSelectorConfiguration',
      'egressSelections:',
      '- name: cluster',
      '  connection:',
      '    proxyProtocol: HTTPConnect',
      '    transport:',
      ...transport,
      '',
    ].join('\n'),
  );
  return path;
}
