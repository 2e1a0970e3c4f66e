import { createSecureContext, type SecureContext } from 'node:tls';
import type { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { SERVER_TLS_OPTIONS } from '../../shared/pki/server-tls.js';

export interface KubeletCertsOptions {
  /** The serving CA (kube-apiserver's --kubelet-certificate-authority). */
  ca: CertificateAuthority;
  /** PEM of the CA that callers' client certificates must chain to (clientCAFile). */
  clientCaPem: string;
  validityMs: number;
  /** Hosts kept at most; the oldest minted is dropped first. */
  maxEntries?: number;
  now?: () => number;
}

interface Entry {
  context: Promise<SecureContext>;
  /** When to mint again: 90% of the lifetime. */
  renewAtMs: number;
}

/**
 * TLS contexts for the kubelet addresses the front terminates, one per host, each with a certificate naming that
 * host alone, minted on first use and kept. Subjects and SANs depend on host and node only, so every replica
 * sharing the CA presents an equivalent certificate.
 */
export class KubeletCerts {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(private readonly options: KubeletCertsOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The context for `host` (minting once for concurrent callers); a failed mint is forgotten, so the next call retries. */
  contextFor(host: string, node: string): Promise<SecureContext> {
    const k = `${host}|${node}`;
    const found = this.entries.get(k);
    if (found && this.now() < found.renewAtMs) return found.context;
    const context = this.mint(host, node);
    this.entries.delete(k);
    this.entries.set(k, { context, renewAtMs: this.now() + Math.floor(this.options.validityMs * 0.9) });
    context.catch(() => this.entries.get(k)?.context === context && this.entries.delete(k));
    const max = this.options.maxEntries ?? 16_384;
    if (this.entries.size > max) this.entries.delete(this.entries.keys().next().value!);
    return context;
  }

  get size(): number {
    return this.entries.size;
  }

  private async mint(host: string, node: string): Promise<SecureContext> {
    const pair = await this.options.ca.issueKubeletServingCert({ host, node, validityMs: this.options.validityMs, now: new Date(this.now()) });
    return createSecureContext({ ...SERVER_TLS_OPTIONS, cert: pair.certPem, key: pair.keyPem, ca: this.options.clientCaPem });
  }
}
