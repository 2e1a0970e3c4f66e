import type { CriRuntime } from './cri/cri-types.js';
import type { Logger } from '../../shared/logger.js';
import { CoreError } from '../../shared/errors.js';

/** A container's image is not usable: `reason` is what the pod status shows (ErrImagePull …). */
export class ImageError extends CoreError {
  constructor(
    message: string,
    readonly reason: 'ErrImagePull' | 'ErrImageNeverPull' | 'InvalidImageName',
  ) {
    super('ERR_IMAGE', message);
  }
}

/** The pull policy the API server would default: Always for `:latest` or no tag, else IfNotPresent. */
export function defaultPullPolicy(image: string): 'Always' | 'IfNotPresent' {
  const last = image.slice(image.lastIndexOf('/') + 1);
  if (last.includes('@')) return 'IfNotPresent';
  return !last.includes(':') || last.endsWith(':latest') ? 'Always' : 'IfNotPresent';
}

/**
 * Makes an image present as its pull policy says. An edge is often cut off from its registry: with policy
 * Always, a failed pull of an image that is present locally uses the local image (and says so) instead of
 * failing the pod, as KubeEdge users expect of an autonomous node.
 */
export class ImageManager {
  constructor(
    private readonly cri: CriRuntime,
    private readonly logger: Logger,
  ) {}

  /** Returns a warning when it fell back to the local image. */
  async ensure(image: string | undefined, policy: 'Always' | 'IfNotPresent' | 'Never' | undefined): Promise<{ pulled: boolean; warning?: string }> {
    if (!image || /\s/.test(image)) throw new ImageError(`invalid image name "${image ?? ''}"`, 'InvalidImageName');
    const effective = policy ?? defaultPullPolicy(image);
    if (effective !== 'Always') {
      if (await this.cri.imageStatus(image)) return { pulled: false };
      if (effective === 'Never') throw new ImageError(`container image "${image}" is not present with pull policy of Never`, 'ErrImageNeverPull');
    }
    try {
      await this.cri.pullImage(image);
      return { pulled: true };
    } catch (err) {
      const message = (err as Error).message;
      if (effective === 'Always' && (await this.cri.imageStatus(image).catch(() => null))) {
        this.logger.debug({ image, reason: message }, 'pull failed, using the local image');
        return { pulled: false, warning: `pull of ${image} failed (${message.slice(0, 200)}); using the image present on the node` };
      }
      throw new ImageError(`failed to pull image "${image}": ${message}`, 'ErrImagePull');
    }
  }
}
