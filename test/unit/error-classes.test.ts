import { describe, expect, it } from 'vitest';
import { MqttHandlers } from '../../edgecore/devicetwin/mqtt-handlers.js';
import { TwinPayloadError, parsePayload } from '../../edgecore/devicetwin/twin-rules.js';
import { ContainerConfigError, containerEnv } from '../../edgecore/edged/container-env.js';
import { GrpcCallError, GrpcStatus, GrpcUnaryChannel } from '../../edgecore/edged/cri/grpc-unary.js';
import { ImageError, ImageManager } from '../../edgecore/edged/image-manager.js';
import type { CriRuntime } from '../../edgecore/edged/cri/cri-types.js';
import type { Pod } from '../../edgecore/edged/pod-types.js';
import { VolumeError, containerMounts } from '../../edgecore/edged/pod-volumes.js';
import { CoreError } from '../../shared/errors.js';
import { silentLogger } from '../../shared/logger.js';

// Every error a daemon throws is a CoreError with a stable code; the fields callers report (kubelet reasons,
// gRPC and KubeEdge result codes) stay as they were.

const caught = async (fn: () => unknown): Promise<unknown> => {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('nothing thrown');
};

const pod: Pod = { metadata: { name: 'p', namespace: 'ns', uid: 'u1' }, spec: { containers: [{ name: 'c', image: 'img' }] } };

describe('error classes extend CoreError', () => {
  it('VolumeError: ERR_VOLUME, reason FailedMount', async () => {
    const err = await caught(() => containerMounts({ name: 'c', volumeMounts: [{ name: 'gone', mountPath: '/x' }] }, new Map()));
    expect(err).toBeInstanceOf(VolumeError);
    expect(err).toBeInstanceOf(CoreError);
    expect(err).toMatchObject({ code: 'ERR_VOLUME', reason: 'FailedMount' });
  });

  it('ImageError: ERR_IMAGE, keeps its pod status reason', async () => {
    const err = await caught(() => new ImageManager({} as CriRuntime, silentLogger()).ensure('bad name', undefined));
    expect(err).toBeInstanceOf(ImageError);
    expect(err).toBeInstanceOf(CoreError);
    expect(err).toMatchObject({ code: 'ERR_IMAGE', reason: 'InvalidImageName' });
  });

  it('ContainerConfigError: ERR_CONTAINER_CONFIG, reason CreateContainerConfigError', async () => {
    const source = { configMap: () => undefined, secret: () => undefined };
    const err = await caught(() => containerEnv(pod, { name: 'c', envFrom: [{ configMapRef: { name: 'gone' } }] }, source, { podIP: '', hostIP: '' }));
    expect(err).toBeInstanceOf(ContainerConfigError);
    expect(err).toBeInstanceOf(CoreError);
    expect(err).toMatchObject({ code: 'ERR_CONTAINER_CONFIG', reason: 'CreateContainerConfigError' });
  });

  it('GrpcCallError: ERR_GRPC, keeps the gRPC status and details', async () => {
    const channel = new GrpcUnaryChannel('/nonexistent/runtime.sock', 1024);
    const err = await caught(() => channel.call('/x/Y', new Uint8Array(), 1000));
    channel.close();
    expect(err).toBeInstanceOf(GrpcCallError);
    expect(err).toBeInstanceOf(CoreError);
    expect(err).toMatchObject({ code: 'ERR_GRPC', grpcCode: GrpcStatus.UNAVAILABLE });
    expect((err as GrpcCallError).details).toBe((err as Error).message);
  });

  it('TwinPayloadError: ERR_TWIN_PAYLOAD, the KubeEdge result code in resultCode', async () => {
    const err = await caught(() => parsePayload(Buffer.from('{not json')));
    expect(err).toBeInstanceOf(TwinPayloadError);
    expect(err).toBeInstanceOf(CoreError);
    expect(err).toMatchObject({ code: 'ERR_TWIN_PAYLOAD', resultCode: 400, name: 'TwinPayloadError' });
  });

  it('a mapper still gets the numeric KubeEdge result code (400, 404) on the result topic', () => {
    const published: Array<{ topic: string; payload: unknown }> = [];
    const handlers = new MqttHandlers({
      nodeName: 'n1',
      devices: new Map(),
      batch: {} as ConstructorParameters<typeof MqttHandlers>[0]['batch'],
      publish: (topic, payload) => published.push({ topic, payload }),
      membership: () => [],
      logger: silentLogger(),
    });
    handlers.handle('$hw/events/device/default/nope/twin/update', Buffer.from('{not json'));
    handlers.handle('$hw/events/device/default/nope/twin/update', Buffer.from('{"event_id":"e1","twin":{}}'));
    expect(published.map((p) => p.payload)).toMatchObject([{ code: 400 }, { event_id: 'e1', code: 404 }]);
  });
});
