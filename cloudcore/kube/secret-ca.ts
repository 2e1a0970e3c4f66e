import { createPrivateKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../shared/logger.js';
import { AuthError } from '../../shared/errors.js';
import type { CaSource } from '../../shared/pki/ca-source.js';
import { CertificateAuthority, derToPem } from '../../shared/pki/certificate-authority.js';
import { apiStatus } from './kube-client.js';
import { ConfigMapTokenUses } from './token-uses-configmap.js';

const NAMESPACE = 'kubeedge';
const SECRET = 'casecret';

export interface SecretCaOptions {
  core: CoreV1Api;
  logger: Logger;
  /** CA files that, when present, win (KubeEdge's order: files, then the Secret, then a new CA). */
  files: { certFile: string; keyFile: string; load(): Promise<CertificateAuthority> };
}

/**
 * The edge CA in Secret `kubeedge/casecret` (KubeEdge's name and keys: `cadata` = certificate DER,
 * `cakeydata` = EC private key SEC1 DER), so every cloudcore replica signs with the same CA and verifies the
 * same tokens. The first replica to start creates it; a replica that loses the create race adopts the winner.
 */
export class SecretCa implements CaSource {
  readonly description = `secret ${NAMESPACE}/${SECRET}`;

  constructor(private readonly options: SecretCaOptions) {}

  /** The CA, with token uses counted in the cluster, where every replica sees them. */
  async obtain(): Promise<CertificateAuthority> {
    const ca = await this.load();
    ca.tokenUses = new ConfigMapTokenUses({ core: this.options.core });
    return ca;
  }

  private async load(): Promise<CertificateAuthority> {
    const { files } = this.options;
    if (existsSync(files.certFile) && existsSync(files.keyFile)) return files.load();
    const stored = await this.read();
    if (stored) return stored;
    await this.ensureNamespace();
    const ca = await CertificateAuthority.create();
    const der = createPrivateKey(ca.keyPem).export({ format: 'der', type: 'sec1' });
    try {
      await this.options.core.createNamespacedSecret({
        namespace: NAMESPACE,
        body: {
          metadata: { name: SECRET, namespace: NAMESPACE },
          type: 'Opaque',
          data: { cadata: ca.certDer.toString('base64'), cakeydata: der.toString('base64') },
        },
      });
      this.options.logger.info({ secret: this.description, caHash: ca.hash }, 'created edge CA');
      return ca;
    } catch (err) {
      if (apiStatus(err) !== 409) throw err;
      const winner = await this.read();
      if (!winner) throw new AuthError(`${this.description} was created concurrently but cannot be read`, 'ERR_CERTIFICATE');
      return winner;
    }
  }

  private async read(): Promise<CertificateAuthority | undefined> {
    let secret: V1Secret;
    try {
      secret = await this.options.core.readNamespacedSecret({ name: SECRET, namespace: NAMESPACE });
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
    const cert = secret.data?.cadata;
    const key = secret.data?.cakeydata;
    if (!cert || !key) throw new AuthError(`${this.description} lacks cadata or cakeydata`, 'ERR_CERTIFICATE');
    const keyPem = createPrivateKey({ key: Buffer.from(key, 'base64'), format: 'der', type: 'sec1' }).export({ format: 'pem', type: 'pkcs8' }) as string;
    return CertificateAuthority.fromPem(derToPem(Buffer.from(cert, 'base64')), keyPem);
  }

  /**
   * build/rbac/cloudcore.yaml creates the namespace and grants cloudcore no namespace creation (403): then the
   * Secret's own create says whether the namespace is there.
   */
  private async ensureNamespace(): Promise<void> {
    try {
      await this.options.core.createNamespace({ body: { metadata: { name: NAMESPACE } } });
    } catch (err) {
      const status = apiStatus(err);
      if (status !== 409 && status !== 403) throw err;
    }
  }
}
