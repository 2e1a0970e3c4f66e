import { createHmac, timingSafeEqual } from 'node:crypto';
import { AuthError } from '../errors.js';

// KubeEdge's join token: `<sha256 hex of the CA certificate DER>.<JWT>`, the JWT signed HS256 with the CA
// private key (SEC1 DER) and carrying only `exp`. The edge checks the CA it downloads against the hash; the
// cloud checks the JWT. Keeping the format lets tokens from `keadm gettoken` and ours interchange.

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');
const HEADER = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

export function createBootstrapToken(caHash: string, secret: Buffer, ttlMs: number, nowMs: number = Date.now()): string {
  const payload = b64url(JSON.stringify({ exp: Math.floor((nowMs + ttlMs) / 1000) }));
  const signature = createHmac('sha256', secret).update(`${HEADER}.${payload}`).digest('base64url');
  return `${caHash}.${HEADER}.${payload}.${signature}`;
}

/** Splits a join token; throws ERR_TOKEN_MALFORMED when it does not have the four parts. */
export function splitBootstrapToken(token: string): { caHash: string; jwt: string } {
  const parts = token.trim().split('.');
  if (parts.length !== 4 || !/^[0-9a-f]{64}$/.test(parts[0]!)) {
    throw new AuthError('join token must be <sha256 of CA>.<JWT> (four dot-separated parts)', 'ERR_TOKEN_MALFORMED');
  }
  return { caHash: parts[0]!, jwt: parts.slice(1).join('.') };
}

/** Checks a JWT from a join token: HS256 only, a valid signature, not expired. Returns its expiry. */
export function verifyBootstrapJwt(jwt: string, secret: Buffer, nowMs: number = Date.now()): Date {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new AuthError('bearer token is not a JWT', 'ERR_TOKEN_MALFORMED');
  const [header, payload, signature] = parts as [string, string, string];
  let alg: unknown;
  let exp: unknown;
  try {
    alg = (JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: unknown }).alg;
    exp = (JSON.parse(Buffer.from(payload, 'base64url').toString()) as { exp?: unknown }).exp;
  } catch (err) {
    throw new AuthError('bearer token header or payload is not JSON', 'ERR_TOKEN_MALFORMED', { cause: err });
  }
  // Only HS256: refusing "none" and asymmetric algorithms closes the classic JWT algorithm-confusion holes.
  if (alg !== 'HS256') throw new AuthError(`bearer token algorithm ${String(alg)} is not HS256`, 'ERR_TOKEN_SIGNATURE');
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new AuthError('bearer token signature does not match this cluster\'s CA', 'ERR_TOKEN_SIGNATURE');
  }
  if (typeof exp !== 'number') throw new AuthError('bearer token has no numeric exp claim', 'ERR_TOKEN_MALFORMED');
  if (exp * 1000 <= nowMs) {
    throw new AuthError(`bearer token expired at ${new Date(exp * 1000).toISOString()}`, 'ERR_TOKEN_EXPIRED');
  }
  return new Date(exp * 1000);
}
