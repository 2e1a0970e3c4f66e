import net from 'node:net';
import mqtt from 'mqtt';
import { describe, expect, it, onTestFinished } from 'vitest';
import { loadEdgeCoreConfig } from '../../edgecore/config.js';
import { EventBus } from '../../edgecore/eventbus/eventbus.js';
import type { EdgeBus, EdgeInboxes, PublishMessage } from '../../edgecore/contracts/messages.js';
import { Bus } from '../../shared/bus.js';
import { silentLogger } from '../../shared/logger.js';
import { Operation, newMessage, type Message } from '../../shared/message.js';
import { eventually } from '../support/harness.js';
import { mqttPeer } from '../support/mqtt-peer.js';

async function eventBus(internal: Record<string, unknown> = {}): Promise<{ bus: EdgeBus; eventBus: EventBus; url: string; toTwin: Message[] }> {
  const config = loadEdgeCoreConfig({ overrides: { modules: { eventBus: { internal: { port: 0, ...internal } } } } });
  const bus = new Bus<EdgeInboxes>({ logger: silentLogger() });
  const toTwin: Message[] = [];
  bus.register('devicetwin', (m) => void toTwin.push(m));
  const eventBus = new EventBus({ config: config.modules.eventBus, bus, logger: silentLogger() });
  await eventBus.start();
  onTestFinished(() => eventBus.stop());
  return { bus, eventBus, url: `mqtt://127.0.0.1:${eventBus.port}`, toTwin };
}

describe('EventBus: the embedded MQTT broker', () => {
  it('hands device and node topics to DeviceTwin and publishes what modules send it', async () => {
    const { bus, url, toTwin } = await eventBus();
    const peer = await mqttPeer(url, ['$hw/events/device/#']);
    await peer.publish('$hw/events/device/ns/dev/twin/update', { twin: {} });
    await peer.publish('$hw/events/node/n1/membership/get', {});
    await peer.publish('$hw/events/upload/anything', 'x');
    await eventually(() => expect(toTwin.map((m) => m.resource)).toEqual(['$hw/events/device/ns/dev/twin/update', '$hw/events/node/n1/membership/get']));
    expect(Buffer.isBuffer(toTwin[0]!.content)).toBe(true);
    const publish: PublishMessage = newMessage({
      source: 'devicetwin',
      group: 'user',
      operation: Operation.publish,
      resource: '$hw/events/device/ns/dev/twin/update/result',
      content: Buffer.from('{"ok":1}'),
    });
    await bus.send('eventbus', publish);
    expect(await peer.next('$hw/events/device/ns/dev/twin/update/result')).toEqual({ ok: 1 });
  });

  it('refuses clients without the configured username and password', async () => {
    const { url } = await eventBus({ username: 'mapper', password: 's3cret' });
    await expect(mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3_000 })).rejects.toThrow(/Not authorized|Bad username/i);
    await expect(mqtt.connectAsync(url, { reconnectPeriod: 0, username: 'mapper', password: 'wrong', connectTimeout: 3_000 })).rejects.toThrow(
      /Not authorized|Bad username/i,
    );
    const ok = await mqttPeer(url, [], { username: 'mapper', password: 's3cret' });
    expect(ok.client.connected).toBe(true);
  });

  it('drops a client that sends garbage bytes and keeps serving the others', async () => {
    const { url, eventBus: eb, toTwin } = await eventBus();
    const good = await mqttPeer(url, []);
    const socket = net.connect(eb.port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x13, 0x37]));
    await new Promise((resolve) => socket.once('close', resolve));
    await good.publish('$hw/events/device/ns/dev/state/update', { state: 'online' });
    await eventually(() => expect(toTwin.map((m) => m.resource)).toContain('$hw/events/device/ns/dev/state/update'));
  });

  it('fails to start with a clear error when its port is taken', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void holder.close());
    const port = (holder.address() as net.AddressInfo).port;
    const config = loadEdgeCoreConfig({ overrides: { modules: { eventBus: { internal: { port } } } } });
    const eb = new EventBus({ config: config.modules.eventBus, bus: new Bus({ logger: silentLogger() }), logger: silentLogger() });
    await expect(eb.start()).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(new RegExp(`cannot listen on 127.0.0.1:${port}`)) });
  });
});
