import mqtt, { type MqttClient } from 'mqtt';
import { Backoff, type BackoffOptions } from '../../shared/backoff.js';
import { ConnectionError, asError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

export interface MqttLinkOptions {
  /** `mqtt://host:port` (also `tcp://`, `mqtts://`, `ws://`). */
  url: string;
  username?: string;
  password?: string;
  clientId: string;
  /** Subscribed (QoS 1) after every connect, before `onReady`. */
  subscriptions: readonly string[];
  reconnect: BackoffOptions;
  logger: Logger;
  /** Connected and subscribed: the moment to (re)request state from the peer. */
  onReady: () => void;
  onDisconnect?: () => void;
  onMessage: (topic: string, payload: Buffer) => void;
}

const CONNECT_TIMEOUT_MS = 5_000;
const SUBACK_FAILURE = 128;

/**
 * The mapper's connection to the node's broker. mqtt.js's own reconnect retries at a fixed period, so it is
 * off (`reconnectPeriod: 0`) and every retry is scheduled here with an exponential, jittered backoff.
 */
export class MqttLink {
  private client: MqttClient | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private closed = false;
  private connectedOnce = false;
  private failures = 0;
  private lastError: Error | undefined;

  constructor(private readonly options: MqttLinkOptions) {
    this.backoff = new Backoff(options.reconnect);
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  start(): void {
    const { url, username, password, clientId } = this.options;
    const client = mqtt.connect(url, {
      clientId,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // Reports are periodic: a stale one replayed after a reconnect is worth less than none.
      queueQoSZero: false,
    });
    this.client = client;
    client.on('connect', () => this.onConnect(client));
    client.on('message', (topic, payload) => this.options.onMessage(topic, payload));
    client.on('error', (err) => {
      this.lastError = err;
      this.options.logger.debug({ err }, 'mqtt error');
    });
    client.on('close', () => this.onClose(client));
  }

  /** Publishes JSON at QoS 0; while disconnected the message is dropped (returns false). */
  publish(topic: string, payload: unknown): boolean {
    const client = this.client;
    if (!client?.connected) return false;
    client.publish(topic, JSON.stringify(payload), { qos: 0 }, (err) => {
      if (err) this.options.logger.debug({ err, topic }, 'mqtt publish failed');
    });
    return true;
  }

  /** Graceful: sends DISCONNECT when connected. Idempotent. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    if (!client) return;
    await new Promise<void>((resolve) => client.end(!client.connected, {}, () => resolve()));
  }

  private onConnect(client: MqttClient): void {
    this.backoff.reset();
    this.failures = 0;
    this.lastError = undefined;
    this.connectedOnce = true;
    this.options.logger.info({ url: this.options.url }, 'broker connected');
    const topics = [...this.options.subscriptions];
    client.subscribe(topics, { qos: 1 }, (err, granted) => {
      const refused = granted?.filter((g) => g.qos === SUBACK_FAILURE).map((g) => g.topic) ?? [];
      if (err || refused.length > 0) {
        const cause = err ?? new ConnectionError(`broker refused subscriptions: ${refused.join(', ')}`);
        this.options.logger.error({ err: asError(cause) }, 'mqtt subscribe failed, reconnecting');
        client.end(true);
        return;
      }
      this.options.onReady();
    });
  }

  private onClose(client: MqttClient): void {
    if (this.closed || client !== this.client) return;
    this.failures++;
    if (this.failures === 1) {
      const msg = this.connectedOnce ? 'broker connection lost, reconnecting' : 'broker unreachable, retrying';
      this.options.logger.warn({ url: this.options.url, ...(this.lastError && { err: this.lastError }) }, msg);
      this.options.onDisconnect?.();
    }
    if (this.retryTimer) return;
    const delayMs = this.backoff.next();
    this.options.logger.debug({ delayMs }, 'broker reconnect scheduled');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed) client.reconnect();
    }, delayMs);
  }
}
