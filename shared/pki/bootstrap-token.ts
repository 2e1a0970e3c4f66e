import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthError } from '../errors.js';
import { NODE_CN_PREFIX } from './node-identity.js';

// KubeEdge's join token: `<sha256 hex of the CA certificate DER>.<JWT>`, the JWT signed HS256 with the CA
// private key (SEC1 DER). The edge checks the CA it downloads against the hash; the cloud checks the JWT.
// KubeEdge's JWT carries only `exp` (jwt.StandardClaims); such tokens, ours or from `keadm gettoken`, still
// enrol any node any number of times. A token may also be scoped with registered JWT claims: `sub`
// (`system:node:<name>`, the node's identity as in its certificate) binds it to one node, and `jti` plus
// `uses` (ours: KubeEdge has no such claim) limit how many certificates it can obtain. A KubeEdge cloudcore
// ignores claims it does not know, so scoped tokens stay valid there, only unscoped.

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');
const HEADER = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

export interface TokenScope {
  /** Only this node may join with the token. */
  nodeName?: string;
  /** How many certificates the token may obtain in all. */
  uses?: number;
}

export interface JoinTokenClaims {
  expiresAt: Date;
  nodeName?: string;
  /** Present together: the token's id and its limit of uses. */
  limit?: { jti: string; uses: number };
}

export function createBootstrapToken(caHash: string, secret: Buffer, ttlMs: number, nowMs: number = Date.now(), scope: TokenScope = {}): string {
  const claims: Record<string, unknown> = { exp: Math.floor((nowMs + ttlMs) / 1000) };
  if (scope.nodeName !== undefined) claims.sub = `${NODE_CN_PREFIX}${scope.nodeName}`;
  if (scope.uses !== undefined) Object.assign(claims, { jti: randomBytes(16).toString('base64url'), uses: scope.uses });
  const payload = b64url(JSON.stringify(claims));
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

/** Checks a JWT from a join token: HS256 only, a valid signature, not expired, well-formed scope claims. */
export function verifyBootstrapJwt(jwt: string, secret: Buffer, nowMs: number = Date.now()): JoinTokenClaims {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new AuthError('bearer token is not a JWT', 'ERR_TOKEN_MALFORMED');
  const [header, payload, signature] = parts as [string, string, string];
  let alg: unknown;
  let claims: Record<string, unknown>;
  try {
    alg = (JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: unknown }).alg;
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  } catch (err) {
    throw new AuthError('bearer token header or payload is not JSON', 'ERR_TOKEN_MALFORMED', { cause: err });
  }
  // Only HS256: refusing "none" and asymmetric algorithms closes the classic JWT algorithm-confusion holes.
  if (alg !== 'HS256') throw new AuthError(`bearer token algorithm ${String(alg)} is not HS256`, 'ERR_TOKEN_SIGNATURE');
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new AuthError("bearer token signature does not match this cluster's CA", 'ERR_TOKEN_SIGNATURE');
  }
  const { exp } = claims;
  if (typeof exp !== 'number') throw new AuthError('bearer token has no numeric exp claim', 'ERR_TOKEN_MALFORMED');
  if (exp * 1000 <= nowMs) {
    throw new AuthError(`bearer token expired at ${new Date(exp * 1000).toISOString()}`, 'ERR_TOKEN_EXPIRED');
  }
  return { expiresAt: new Date(exp * 1000), ...scopeClaims(claims) };
}

/** The signed scope, checked strictly: a scope the cloud misreads must refuse, never widen, the token. */
function scopeClaims(claims: Record<string, unknown>): Omit<JoinTokenClaims, 'expiresAt'> {
  const { sub, jti, uses } = claims;
  const scope: Omit<JoinTokenClaims, 'expiresAt'> = {};
  if (sub !== undefined) {
    if (typeof sub !== 'string' || !sub.startsWith(NODE_CN_PREFIX))
      throw new AuthError(`bearer token sub claim must be "${NODE_CN_PREFIX}<node>"`, 'ERR_TOKEN_MALFORMED');
    scope.nodeName = sub.slice(NODE_CN_PREFIX.length);
  }
  if (jti !== undefined || uses !== undefined) {
    if (
      typeof jti !== 'string' ||
      jti.length === 0 ||
      jti.length > 64 ||
      !/^[A-Za-z0-9_-]+$/.test(jti) ||
      !Number.isSafeInteger(uses) ||
      (uses as number) < 1
    ) {
      throw new AuthError('bearer token needs both a jti claim (base64url) and a positive integer uses claim, or neither', 'ERR_TOKEN_MALFORMED');
    }
    scope.limit = { jti, uses: uses as number };
  }
  return scope;
}
