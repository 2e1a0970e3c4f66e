import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import type { Logger } from '../../shared/logger.js';
import { AuthError } from '../../shared/errors.js';
import { writeFileAtomic } from '../../shared/atomic-file.js';
import { CertificateAuthority, type PemPair } from '../../shared/pki/certificate-authority.js';
import type { CaSource } from '../../shared/pki/ca-source.js';
import { FileTokenUses } from './token-uses-file.js';

export interface CaFiles {
  caCertFile: string;
  caKeyFile: string;
  serverCertFile: string;
  serverKeyFile: string;
}

/**
 * Loads the CA from its files, or creates it when neither file exists (first start). One file without the
 * other is an operator mistake that must not be papered over by minting a new CA: edges would stop trusting us.
 */
export async function loadOrCreateCa(files: CaFiles, logger: Logger): Promise<CertificateAuthority> {
  const haveCert = existsSync(files.caCertFile);
  const haveKey = existsSync(files.caKeyFile);
  if (haveCert && haveKey) {
    try {
      return await CertificateAuthority.fromPem(readFileSync(files.caCertFile, 'utf8'), readFileSync(files.caKeyFile, 'utf8'));
    } catch (err) {
      throw new AuthError(`CA files ${files.caCertFile} / ${files.caKeyFile} cannot be loaded: ${(err as Error).message}`, 'ERR_CERTIFICATE', { cause: err });
    }
  }
  if (haveCert !== haveKey) {
    throw new AuthError(
      `only one of ${files.caCertFile} and ${files.caKeyFile} exists; restore the other or remove both to create a new CA`,
      'ERR_CERTIFICATE',
    );
  }
  const ca = await CertificateAuthority.create();
  writeFileAtomic(files.caKeyFile, ca.keyPem);
  writeFileAtomic(files.caCertFile, ca.certPem, 0o644);
  logger.info({ caCertFile: files.caCertFile, caHash: ca.hash }, 'created edge CA');
  return ca;
}

/** The CA kept in files only (no cluster, or files configured on purpose). */
export class FileCa implements CaSource {
  readonly description: string;

  constructor(
    private readonly files: CaFiles,
    private readonly logger: Logger,
  ) {
    this.description = `files ${files.caCertFile}, ${files.caKeyFile}`;
  }

  async obtain(): Promise<CertificateAuthority> {
    const ca = await loadOrCreateCa(this.files, this.logger);
    // Beside the key: whoever can read the key shares the CA, and must share the record of token uses.
    ca.tokenUses = new FileTokenUses(join(dirname(this.files.caKeyFile), 'token-uses.db'));
    return ca;
  }
}

/** The serving certificate, reissued when missing, not from this CA, expiring within 30 days or lacking a host. */
export async function loadOrIssueServerCert(ca: CertificateAuthority, files: CaFiles, hosts: readonly string[], logger: Logger): Promise<PemPair> {
  if (existsSync(files.serverCertFile) && existsSync(files.serverKeyFile)) {
    const pair = { certPem: readFileSync(files.serverCertFile, 'utf8'), keyPem: readFileSync(files.serverKeyFile, 'utf8') };
    const reason = staleReason(pair.certPem, ca, hosts);
    if (!reason) return pair;
    logger.info({ reason }, 'reissuing serving certificate');
  }
  const pair = await ca.issueServerCert({ hosts });
  writeFileAtomic(files.serverKeyFile, pair.keyPem);
  writeFileAtomic(files.serverCertFile, pair.certPem, 0o644);
  logger.info({ serverCertFile: files.serverCertFile, hosts }, 'issued serving certificate');
  return pair;
}

function staleReason(certPem: string, ca: CertificateAuthority, hosts: readonly string[]): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return 'unreadable';
  }
  if (!cert.checkIssued(new X509Certificate(ca.certPem)) || !cert.verify(new X509Certificate(ca.certPem).publicKey)) return 'issued by another CA';
  if (new Date(cert.validTo).getTime() - Date.now() < 30 * 86_400_000) return 'expires within 30 days';
  const san = cert.subjectAltName ?? '';
  const missing = hosts.find((h) => !san.includes(`:${h}`));
  return missing ? `no SAN for ${missing}` : undefined;
}

/** Hosts for the serving certificate: the configured ones, else loopback plus every IPv4 address here. */
export function serverCertHosts(advertise: readonly string[], dnsNames: readonly string[]): string[] {
  const hosts = advertise.length > 0 ? [...advertise] : ['127.0.0.1', ...hostIPv4Addresses()];
  return [...new Set([...hosts, ...dnsNames, 'localhost'])];
}

function hostIPv4Addresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((a) => a.family === 'IPv4' && !a.internal)
    .map((a) => a.address);
}
