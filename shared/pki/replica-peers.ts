import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { REPLICA_CN, SERVER_CN } from './certificate-authority.js';

// How cloudcore replicas recognise each other (docs/router.md "Several replicas", docs/kubelet-front.md): a
// caller by a client certificate from the hub CA with CN=cloudcore-replica, which only holders of the CA key can
// make (edges' certificates from the same CA are CN=system:node:<name>); a replica's listener by the CA's serving
// certificate, CN=cloudcore, whatever address reached it. The Router and the kubelet front's replica relay share it.

/** A replica's client certificate lives as long as the process, at most this long. */
export const REPLICA_CERT_MS = 365 * 86_400_000;

/** Whether a peer's client certificate is another replica's: issued and signed by the hub CA, CN=cloudcore-replica. */
export function isReplicaCertificate(peer: PeerCertificate | undefined, hubCa: X509Certificate): boolean {
  if (!peer?.raw || String(peer.subject?.CN ?? '') !== REPLICA_CN) return false;
  return issuedBy(peer, hubCa);
}

/** Whether a peer's certificate chains directly to the hub CA (whatever its CN). */
export function issuedBy(peer: PeerCertificate | undefined, hubCa: X509Certificate): boolean {
  if (!peer?.raw) return false;
  const cert = new X509Certificate(peer.raw);
  return cert.checkIssued(hubCa) && cert.verify(hubCa.publicKey);
}

/** The replica named by a replica certificate (its OU), for logs. */
export function replicaOf(peer: PeerCertificate): string {
  return String(peer.subject?.OU ?? '');
}

/**
 * `checkServerIdentity` for a connection to another replica: its serving certificate (already verified against the
 * hub CA) must be CN=cloudcore. The address is not checked: a replica dials the pod IP or host it was told.
 */
export function checkReplicaServer(_host: string, cert: PeerCertificate): Error | undefined {
  return cert.subject?.CN === SERVER_CN ? undefined : new Error(`the replica answered with certificate CN=${cert.subject?.CN ?? ''}, not ${SERVER_CN}`);
}
