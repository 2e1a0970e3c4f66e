import mqtt, { type MqttClient } from 'mqtt';
import { onTestFinished } from 'vitest';
import { eventually } from './harness.js';

export interface MqttPeer {
  client: MqttClient;
  /** Every message received so far, oldest first (payloads parsed as JSON when they are JSON). */
  messages: Array<{ topic: string; payload: any }>;
  publish(topic: string, payload: unknown): Promise<void>;
  /** Waits for a message on `topic` (received after `since`, an index into messages) matching `match`. */
  next(topic: string, match?: (payload: any) => boolean, since?: number, timeoutMs?: number): Promise<any>;
}

/** An MQTT client playing a mapper (or any local app) against edgecore's broker; ended with the test. */
export async function mqttPeer(url: string, subscriptions: string[], options: mqtt.IClientOptions = {}): Promise<MqttPeer> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, connectTimeout: 5_000, ...options });
  onTestFinished(() => client.endAsync(true));
  const messages: MqttPeer['messages'] = [];
  client.on('message', (topic, raw) => {
    let payload: unknown = raw.toString('utf8');
    try {
      payload = JSON.parse(payload as string);
    } catch {
      // kept as text
    }
    messages.push({ topic, payload });
  });
  if (subscriptions.length > 0) await client.subscribeAsync(subscriptions, { qos: 0 });
  return {
    client,
    messages,
    publish: async (topic, payload) => {
      await client.publishAsync(topic, typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload));
    },
    next: (topic, match = () => true, since = 0, timeoutMs = 10_000) =>
      eventually(() => {
        const found = messages.slice(since).find((m) => m.topic === topic && match(m.payload));
        if (!found)
          throw new Error(`no message on ${topic} matching ${match.toString().slice(0, 200)}; got ${JSON.stringify(messages.slice(-5)).slice(0, 800)}`);
        return found.payload;
      }, timeoutMs),
  };
}
