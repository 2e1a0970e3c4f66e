import https from 'node:https';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from '../../shared/logger.js';
import { AuthError, ConnectionError } from '../../shared/errors.js';
import { writeFileAtomic } from '../../shared/atomic-file.js';
import { NODE_CN_PREFIX } from '../../shared/pki/node-identity.js';
import { splitBootstrapToken } from '../../shared/pki/bootstrap-token.js';

export interface TlsMaterial {
  caPem: string;
  certPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CertManagerOptions {
  nodeName: string;
  certServer: string;
  token: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  requestTimeoutMs: number;
  logger: Logger;
  random?: () => number;
}

/**
 * The node's identity. First start: the join token's hash pins the CA fetched over HTTPS, then a CSR for
 * CN=system:node:<name> is signed with the token. Later: the stored certificate is used, and renewed with
 * itself (mutual TLS) at 70-90% of its lifetime, as KubeEdge does.
 */
export class CertManager {
  private material: TlsMaterial | undefined;

  constructor(private readonly options: CertManagerOptions) {}

  get current(): TlsMaterial {
    if (!this.material) throw new Error('certificates not loaded');
    return this.material;
  }

  /** Loads a usable certificate or obtains one with the token. */
  async ensure(): Promise<TlsMaterial> {
    const stored = this.loadStored();
    if (stored.material) return (this.material = stored.material);
    if (!this.options.token) {
      throw new AuthError(
        `no usable certificate (${stored.reason}) and no join token: start edgecore with --token <token from \`cloudcore token create\`>`,
        'ERR_CERTIFICATE',
      );
    }
    this.options.logger.info({ reason: stored.reason, certServer: this.options.certServer }, 'joining with token');
    return (this.material = await this.bootstrap(this.options.token));
  }

  /** When to renew: a random point in [70%, 90%] of the lifetime, so a fleet does not renew at once. */
  renewalDueAt(): Date {
    const { notBefore, notAfter } = this.current;
    const life = notAfter.getTime() - notBefore.getTime();
    return new Date(notBefore.getTime() + life * (0.7 + 0.2 * (this.options.random ?? Math.random)()));
  }

  /** Gets a fresh certificate by presenting the current one; the files are replaced only on success. */
  async renew(): Promise<TlsMaterial> {
    const old = this.current;
    const { csrDer, keyPem } = await createNodeCsr(this.options.nodeName);
    const certDer = await this.request('/edge.crt', { ca: old.caPem, cert: old.certPem, key: old.keyPem, body: csrDer });
    const material = this.store(old.caPem, derToPem(certDer), keyPem);
    this.options.logger.info({ notAfter: material.notAfter.toISOString() }, 'node certificate renewed');
    return material;
  }

  private loadStored(): { material?: TlsMaterial; reason: string } {
    const { caFile, certFile, keyFile, nodeName } = this.options;
    if (![caFile, certFile, keyFile].every((f) => existsSync(f))) return { reason: 'certificate files missing' };
    try {
      const material = parseMaterial(readFileSync(caFile, 'utf8'), readFileSync(certFile, 'utf8'), readFileSync(keyFile, 'utf8'));
      const cn = new X509Certificate(material.certPem).subject.match(/CN=([^\n]+)/)?.[1];
      if (cn !== `${NODE_CN_PREFIX}${nodeName}`) return { reason: `stored certificate is for "${cn}", not node "${nodeName}"` };
      if (material.notAfter.getTime() <= Date.now()) return { reason: `stored certificate expired at ${material.notAfter.toISOString()}` };
      return { material, reason: '' };
    } catch (err) {
      return { reason: `stored certificate unreadable: ${(err as Error).message}` };
    }
  }

  private async bootstrap(token: string): Promise<TlsMaterial> {
    const { caHash, jwt } = splitBootstrapToken(token);
    const caDer = await this.request('/ca.crt', { insecure: true });
    const actual = createHash('sha256').update(caDer).digest('hex');
    if (actual !== caHash) {
      throw new AuthError(
        `CA served by ${this.options.certServer} has sha256 ${actual}, the token pins ${caHash}: wrong cloudcore or a forged token`,
        'ERR_CA_MISMATCH',
      );
    }
    const caPem = derToPem(caDer);
    const { csrDer, keyPem } = await createNodeCsr(this.options.nodeName);
    const certDer = await this.request('/edge.crt', { ca: caPem, bearer: jwt, body: csrDer });
    const material = this.store(caPem, derToPem(certDer), keyPem);
    this.options.logger.info({ notAfter: material.notAfter.toISOString() }, 'node certificate obtained');
    return material;
  }

  private store(caPem: string, certPem: string, keyPem: string): TlsMaterial {
    writeFileAtomic(this.options.caFile, caPem, 0o644);
    writeFileAtomic(this.options.keyFile, keyPem, 0o600);
    writeFileAtomic(this.options.certFile, certPem, 0o644);
    return (this.material = parseMaterial(caPem, certPem, keyPem));
  }

  private request(path: string, opts: { insecure?: boolean; ca?: string; cert?: string; key?: string; bearer?: string; body?: Buffer }): Promise<Buffer> {
    const url = new URL(path, this.options.certServer);
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        {
          method: opts.body ? 'POST' : 'GET',
          // Only the CA download skips verification: its trust comes from the token's hash, checked above.
          rejectUnauthorized: !opts.insecure,
          ca: opts.ca,
          cert: opts.cert,
          key: opts.key,
          timeout: this.options.requestTimeoutMs,
          headers: {
            NodeName: this.options.nodeName,
            ...(opts.bearer ? { Authorization: `Bearer ${opts.bearer}` } : {}),
            ...(opts.body ? { 'content-type': 'application/octet-stream', 'content-length': opts.body.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const body = Buffer.concat(chunks);
            if (res.statusCode === 200) return resolve(body);
            const reason = body.toString('utf8').trim();
            const error =
              res.statusCode === 400 || res.statusCode === 401 || res.statusCode === 403
                ? new AuthError(`certificate server refused ${path} (${res.statusCode}): ${reason}`, 'ERR_AUTH')
                : new ConnectionError(`certificate server answered ${path} with ${res.statusCode}: ${reason}`);
            reject(error);
          });
        },
      );
      req.on('timeout', () => req.destroy(new ConnectionError(`certificate server ${url.origin} did not answer within ${this.options.requestTimeoutMs} ms`)));
      req.on('error', (err) =>
        reject(
          err instanceof ConnectionError
            ? err
            : new ConnectionError(`cannot reach certificate server ${url.origin}: ${err.message}`, 'ERR_CONNECTION', { cause: err }),
        ),
      );
      req.end(opts.body);
    });
  }
}

function parseMaterial(caPem: string, certPem: string, keyPem: string): TlsMaterial {
  const cert = new X509Certificate(certPem);
  return { caPem, certPem, keyPem, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

/**
 * A CSR needs the X.509 library, which costs an edge ~15 MB of memory for good: it is loaded only when a node
 * joins or renews (once a year by default), not by every edgecore start.
 */
async function createNodeCsr(nodeName: string): Promise<{ csrDer: Buffer; keyPem: string }> {
  const { createNodeCsr: create } = await import('../../shared/pki/certificate-authority.js');
  return create(nodeName);
}

/** Node's own X.509 code writes PEM. */
function derToPem(der: Uint8Array): string {
  return new X509Certificate(Buffer.from(der)).toString();
}
