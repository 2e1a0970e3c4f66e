import { createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { AuthError } from '../errors.js';

// @peculiar/x509 encodes certificates and CSRs; Node's WebCrypto does the ECDSA P-256 maths.
const subtle = webcrypto.subtle as unknown as SubtleCrypto;
const crypto = webcrypto as unknown as Crypto;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** Tolerates small clock differences between cloud and edge, without distorting short lifetimes. */
const backdateMs = (validityMs: number): number => Math.min(5 * 60_000, Math.floor(validityMs / 10));

export { NODE_CN_PREFIX, NODE_ORGANIZATION } from './node-identity.js';

/** The common name of a replica's client certificate (`issueReplicaCert`); serving certificates are CN=cloudcore. */
export const REPLICA_CN = 'cloudcore-replica';
/** The common name of every serving certificate the CA issues. */
export const SERVER_CN = 'cloudcore';
import { NODE_CN_PREFIX, NODE_ORGANIZATION } from './node-identity.js';
import { MemoryTokenUses, type TokenUses } from './token-uses.js';

export interface PemPair {
  certPem: string;
  keyPem: string;
}

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
  return subtle.importKey('pkcs8', der, EC, true, ['sign']);
}

const serial = (): string => {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive INTEGER
  return bytes.toString('hex');
};

/** The cluster's edge CA: signs the cloudcore serving certificate and every node's client certificate. */
export class CertificateAuthority {
  readonly certDer: Buffer;
  /** sha256 of the CA certificate DER, hex: the first part of a join token. */
  readonly hash: string;
  /** Where uses of limited join tokens are counted; the CA source replaces it with a record it shares. */
  tokenUses: TokenUses = new MemoryTokenUses();

  private constructor(
    readonly certPem: string,
    readonly keyPem: string,
    private readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
  ) {
    this.certDer = Buffer.from(cert.rawData);
    this.hash = createHash('sha256').update(this.certDer).digest('hex');
  }

  static async create(opts: { commonName?: string; validityDays?: number; now?: Date } = {}): Promise<CertificateAuthority> {
    const keys = await generateKeyPair();
    const now = opts.now ?? new Date();
    const cert = await x509.X509CertificateGenerator.createSelfSigned(
      {
        serialNumber: serial(),
        name: `CN=${opts.commonName ?? 'KubeEdge'}`,
        notBefore: new Date(now.getTime() - backdateMs(Number.MAX_SAFE_INTEGER)),
        notAfter: new Date(now.getTime() + (opts.validityDays ?? 36_500) * 86_400_000),
        signingAlgorithm: SIGNING,
        keys,
        extensions: [
          new x509.BasicConstraintsExtension(true, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        ],
      },
      crypto,
    );
    return new CertificateAuthority(cert.toString('pem'), await privateKeyToPem(keys.privateKey), cert, keys.privateKey);
  }

  static async fromPem(certPem: string, keyPem: string): Promise<CertificateAuthority> {
    const cert = new x509.X509Certificate(certPem);
    const key = await importPrivateKey(keyPem);
    return new CertificateAuthority(certPem, keyPem, cert, key);
  }

  /**
   * The HMAC secret of join tokens. As in KubeEdge it is the CA private key (SEC1 DER), so any replica that
   * holds the CA can verify tokens and nothing else needs sharing.
   */
  tokenSecret(): Buffer {
    return createPrivateKey(this.keyPem).export({ format: 'der', type: 'sec1' });
  }

  /** Serving certificate for the hub and certificate servers, with the given addresses as SANs. */
  async issueServerCert(opts: { hosts: readonly string[]; validityDays?: number; now?: Date }): Promise<PemPair> {
    const keys = await generateKeyPair();
    const names = opts.hosts.filter((h) => h.length > 0).map((h) => (isIP(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h }));
    const cert = await this.sign({
      subject: `CN=${SERVER_CN},O=KubeEdge`,
      publicKey: keys.publicKey,
      validityMs: (opts.validityDays ?? 3650) * 86_400_000,
      now: opts.now,
      usage: x509.ExtendedKeyUsage.serverAuth,
      extra: names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : [],
    });
    return { certPem: cert.toString('pem'), keyPem: await privateKeyToPem(keys.privateKey) };
  }

  /**
   * The serving certificate cloudcore's kubelet front presents for one node's kubelet address (issue 13). It names
   * exactly `host`: an IP SAN for an IP, a DNS SAN otherwise, because the API server checks the address it dialled
   * (Go sends no SNI for an IP). Server use only, so it can never pass as an edge's client certificate.
   */
  async issueKubeletServingCert(opts: { host: string; node: string; validityMs: number; now?: Date }): Promise<PemPair> {
    const keys = await generateKeyPair();
    const name = isIP(opts.host) ? { type: 'ip' as const, value: opts.host } : { type: 'dns' as const, value: opts.host };
    const cert = await this.sign({
      subject: `CN=${opts.node},OU=kubelet,O=KubeEdge`,
      publicKey: keys.publicKey,
      validityMs: opts.validityMs,
      now: opts.now,
      usage: x509.ExtendedKeyUsage.serverAuth,
      extra: [new x509.SubjectAlternativeNameExtension([name])],
    });
    return { certPem: cert.toString('pem'), keyPem: await privateKeyToPem(keys.privateKey) };
  }

  /**
   * A replica's client certificate for calling the other replicas (the Router forwards a request to the replica
   * holding the node). Only holders of the CA key can make one: edges get CN=system:node:<name> only.
   */
  async issueReplicaCert(replicaId: string, validityMs: number, now?: Date): Promise<PemPair> {
    const keys = await generateKeyPair();
    const cert = await this.sign({
      subject: `CN=${REPLICA_CN},O=KubeEdge,OU=${replicaId}`,
      publicKey: keys.publicKey,
      validityMs,
      now,
      usage: x509.ExtendedKeyUsage.clientAuth,
      extra: [],
    });
    return { certPem: cert.toString('pem'), keyPem: await privateKeyToPem(keys.privateKey) };
  }

  /**
   * Signs a node's CSR after checking it: a valid self-signature, an ECDSA P-256 key, and the subject
   * CN=system:node:<nodeName>. Returns the certificate DER.
   */
  async signNodeCsr(csrDer: Uint8Array, nodeName: string, validityMs: number, now?: Date): Promise<Buffer> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(Buffer.from(csrDer));
    } catch (err) {
      throw new AuthError('certificate request is not a DER-encoded PKCS#10 CSR', 'ERR_CERTIFICATE', { cause: err });
    }
    if (!(await csr.verify(crypto))) throw new AuthError('certificate request signature is invalid', 'ERR_CERTIFICATE');
    const algorithm = csr.publicKey.algorithm as EcKeyAlgorithm;
    if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
      throw new AuthError(`certificate request key must be ECDSA P-256, got ${algorithm.name} ${algorithm.namedCurve ?? ''}`.trim(), 'ERR_CERTIFICATE');
    }
    const cn = csr.subjectName.getField('CN')[0];
    if (cn !== `${NODE_CN_PREFIX}${nodeName}`) {
      throw new AuthError(`certificate request CN "${cn ?? ''}" does not match node "${nodeName}"`, 'ERR_CERTIFICATE');
    }
    const cert = await this.sign({
      subject: nodeSubject(nodeName),
      publicKey: await csr.publicKey.export(EC, ['verify'], crypto),
      validityMs,
      now,
      usage: x509.ExtendedKeyUsage.clientAuth,
      extra: [],
    });
    return Buffer.from(cert.rawData);
  }

  /** Key and certificate for a node in one step (simulators and tests; real edges send a CSR). */
  async issueNodeCert(nodeName: string, validityMs: number, keys?: CryptoKeyPair, now?: Date): Promise<PemPair> {
    const pair = keys ?? (await generateKeyPair());
    const cert = await this.sign({
      subject: nodeSubject(nodeName),
      publicKey: pair.publicKey,
      validityMs,
      now,
      usage: x509.ExtendedKeyUsage.clientAuth,
      extra: [],
    });
    return { certPem: cert.toString('pem'), keyPem: await privateKeyToPem(pair.privateKey) };
  }

  private async sign(opts: {
    subject: string;
    publicKey: CryptoKey;
    validityMs: number;
    now?: Date;
    usage: string;
    extra: x509.Extension[];
  }): Promise<x509.X509Certificate> {
    const now = opts.now ?? new Date();
    return x509.X509CertificateGenerator.create(
      {
        serialNumber: serial(),
        subject: opts.subject,
        issuer: this.cert.subject,
        notBefore: new Date(now.getTime() - backdateMs(opts.validityMs)),
        notAfter: new Date(now.getTime() + opts.validityMs),
        signingAlgorithm: SIGNING,
        publicKey: opts.publicKey,
        signingKey: this.key,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
          new x509.ExtendedKeyUsageExtension([opts.usage]),
          await x509.AuthorityKeyIdentifierExtension.create(this.cert.publicKey, false, crypto),
          ...opts.extra,
        ],
      },
      crypto,
    );
  }
}

function nodeSubject(nodeName: string): string {
  return `CN=${NODE_CN_PREFIX}${nodeName},O=${NODE_ORGANIZATION}`;
}

/** An edge's new key and the CSR for it (KubeEdge's subject, minus the fixed locality fields). */
export async function createNodeCsr(nodeName: string): Promise<{ csrDer: Buffer; keyPem: string }> {
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: nodeSubject(nodeName), keys, signingAlgorithm: SIGNING }, crypto);
  return { csrDer: Buffer.from(csr.rawData), keyPem: await privateKeyToPem(keys.privateKey) };
}

/** Node name from a client certificate's CN, or undefined when it is not a node certificate. */
export function nodeNameFromCommonName(cn: string | undefined): string | undefined {
  if (!cn?.startsWith(NODE_CN_PREFIX)) return undefined;
  const name = cn.slice(NODE_CN_PREFIX.length);
  return /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name) ? name : undefined;
}

export function derToPem(der: Uint8Array): string {
  return new x509.X509Certificate(Buffer.from(der)).toString('pem');
}
