import type { CoreV1Api, V1ConfigMap } from '@kubernetes/client-node';
import { CoreError } from '../../shared/errors.js';
import { usedUp, type TokenUses } from '../../shared/pki/token-uses.js';
import { apiStatus } from './kube-client.js';

const NAMESPACE = 'kubeedge';
const NAME = 'tokenuses';
const MAX_ATTEMPTS = 10;

export interface ConfigMapTokenUsesOptions {
  core: CoreV1Api;
  /** Pause before retrying after a conflict; injectable for tests. */
  delay?: (attempt: number) => Promise<void>;
}

/**
 * Uses of limited join tokens in ConfigMap kubeedge/tokenuses, shared by every cloudcore replica: key = the
 * token's jti, value = `<uses> <expiry unix seconds>`. A use is a read-modify-write guarded by the
 * ConfigMap's resourceVersion: a replica that lost the race gets 409 and retries on the new version, so the
 * last use goes to exactly one node. Expired entries are dropped on the next write, which bounds the map by
 * the tokens alive at once (~50 bytes each). A jti reveals nothing without the signed token, hence no Secret.
 */
export class ConfigMapTokenUses implements TokenUses {
  readonly description = `configmap ${NAMESPACE}/${NAME}`;

  constructor(private readonly options: ConfigMapTokenUsesOptions) {}

  async consume(jti: string, limit: number, expiresAt: Date): Promise<number> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const current = await this.read();
      const data = live(current?.data ?? {}, Date.now());
      const used = Number((data[jti] ?? '0').split(' ')[0]) || 0;
      if (used >= limit) throw usedUp(jti, limit);
      data[jti] = `${used + 1} ${Math.ceil(expiresAt.getTime() / 1000)}`;
      try {
        await this.write(current, data);
        return used + 1;
      } catch (err) {
        if (apiStatus(err) !== 409) throw err;
        await (this.options.delay ?? jitter)(attempt);
      }
    }
    throw new CoreError('ERR_UNAVAILABLE', `${this.description}: still conflicting after ${MAX_ATTEMPTS} attempts`);
  }

  private async read(): Promise<V1ConfigMap | undefined> {
    try {
      return await this.options.core.readNamespacedConfigMap({ name: NAME, namespace: NAMESPACE });
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }

  /** Create when absent (409 if another replica created it first), else replace at the version read. */
  private async write(current: V1ConfigMap | undefined, data: Record<string, string>): Promise<void> {
    const { core } = this.options;
    if (current) {
      await core.replaceNamespacedConfigMap({ name: NAME, namespace: NAMESPACE, body: { ...current, data } });
      return;
    }
    const body = { metadata: { name: NAME, namespace: NAMESPACE }, data };
    try {
      await core.createNamespacedConfigMap({ namespace: NAMESPACE, body });
    } catch (err) {
      // The namespace exists once the CA Secret does, unless the CA came from files.
      if (apiStatus(err) !== 404) throw err;
      await core.createNamespace({ body: { metadata: { name: NAMESPACE } } }).catch((e: unknown) => {
        if (apiStatus(e) !== 409) throw e;
      });
      await core.createNamespacedConfigMap({ namespace: NAMESPACE, body });
    }
  }
}

function live(data: Record<string, string>, nowMs: number): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [jti, value] of Object.entries(data)) if (Number(value.split(' ')[1]) * 1000 >= nowMs) kept[jti] = value;
  return kept;
}

const jitter = (attempt: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
