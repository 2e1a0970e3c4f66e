import type { CertificateAuthority } from './certificate-authority.js';

/** Where cloudcore gets the edge CA: files, or a Kubernetes Secret shared by every replica. */
export interface CaSource {
  /** Loads the CA, creating and storing it on first use. */
  obtain(): Promise<CertificateAuthority>;
  /** For logs: where the CA lives. */
  readonly description: string;
}
