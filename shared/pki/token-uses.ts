import { AuthError } from '../errors.js';

/**
 * The record of how often each limited join token (`jti`) obtained a certificate. It must be shared by every
 * cloudcore that verifies the CA's tokens, so it lives where the CA lives: beside the CA files, or in the
 * cluster next to Secret kubeedge/casecret.
 */
export interface TokenUses {
  /**
   * Counts one use of token `jti`, atomically across replicas. Throws ERR_TOKEN_USED_UP when it already had
   * `limit`. The entry may be forgotten after `expiresAt`: the token is refused as expired from then on.
   */
  consume(jti: string, limit: number, expiresAt: Date): Promise<number>;
  readonly description: string;
}

export function usedUp(jti: string, limit: number): AuthError {
  return new AuthError(`join token ${jti} has been used ${limit} time${limit === 1 ? '' : 's'}, its limit: create a new one`, 'ERR_TOKEN_USED_UP');
}

/** One process only: for tests and for a CA that no other cloudcore shares. */
export class MemoryTokenUses implements TokenUses {
  readonly description = 'memory';
  private readonly used = new Map<string, { count: number; expiresAtMs: number }>();

  consume(jti: string, limit: number, expiresAt: Date): Promise<number> {
    const now = Date.now();
    for (const [key, entry] of this.used) if (entry.expiresAtMs < now) this.used.delete(key);
    const entry = this.used.get(jti) ?? { count: 0, expiresAtMs: expiresAt.getTime() };
    if (entry.count >= limit) return Promise.reject(usedUp(jti, limit));
    entry.count += 1;
    this.used.set(jti, entry);
    return Promise.resolve(entry.count);
  }
}
