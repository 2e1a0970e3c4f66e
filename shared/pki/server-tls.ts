import { constants } from 'node:crypto';
import type { TlsOptions } from 'node:tls';

/**
 * TLS 1.2 suites cloudcore's servers accept: ECDHE with an AEAD cipher only. OpenSSL's default list also
 * offers four CBC-mode suites (Lucky13-style padding oracles, no forward-secret AEAD); every client this
 * project talks to (Node, Go, OpenSSL) has offered GCM or ChaCha20 for a decade. TLS 1.3 suites are all AEAD
 * and stay at Node's defaults.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * The options every cloudcore TLS server shares. SSL_OP_NO_TICKET stops TLS 1.2 tickets and TLS 1.3
 * stateless tickets; OpenSSL 3.0 then still sends two *stateful* TLS 1.3 tickets, which nothing can redeem
 * (Node keeps no server session cache). Node 20 has no API for SSL_CTX_set_num_tickets: only an OpenSSL config
 * (`NumTickets = 0`, shipped as dist/cloudcore/openssl.cnf, see docs/channel.md) suppresses them.
 */
export const SERVER_TLS_OPTIONS = {
  minVersion: 'TLSv1.2',
  ciphers: TLS12_CIPHERS,
  secureOptions: constants.SSL_OP_NO_TICKET,
} as const satisfies TlsOptions;
