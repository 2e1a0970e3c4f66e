// Preloaded into a daemon (`node --import <dist>/test/support/session-ping-probe.js ...`) by benchmarks that need
// the channel's heartbeat round trip under load from the real process. The session pings only after a heartbeat
// interval of silence (docs/channel.md), so a link busy with a log never carries one: this probe sends the same
// PING frame every KE_PING_PROBE_INTERVAL_MS (default 20) from every session once it is open, and appends
// `{"at": <epoch ms when sent>, "rttMs": <round trip>}` lines to KE_PING_PROBE_FILE. Nothing else changes: it wraps
// the session's handshake method, so the daemon's own code runs as it would without it.
import { appendFile } from 'node:fs/promises';
import { ChannelSession } from '../../shared/channel/session.js';

const file = process.env.KE_PING_PROBE_FILE;
const intervalMs = Number(process.env.KE_PING_PROBE_INTERVAL_MS ?? 20);
// A PONG that never comes (the session died) must not hang the loop.
const PONG_TIMEOUT_MS = 10_000;

if (file) {
  let pending: string[] = [];
  // Written in batches, off the event loop, so the probe's own I/O does not sit in the round trips it measures.
  setInterval(() => {
    if (pending.length === 0) return;
    const lines = pending.join('');
    pending = [];
    void appendFile(file, lines);
  }, 250).unref();

  const probe = async (session: ChannelSession): Promise<void> => {
    while (!session.isClosed()) {
      const at = Date.now();
      let timer: NodeJS.Timeout | undefined;
      const rttMs = await Promise.race([
        session.ping(),
        new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), PONG_TIMEOUT_MS).unref())),
      ]);
      clearTimeout(timer);
      if (rttMs === undefined) continue;
      pending.push(`${JSON.stringify({ at, rttMs })}\n`);
      await new Promise((resolve) => setTimeout(resolve, intervalMs).unref());
    }
  };

  const proto = ChannelSession.prototype as unknown as { handleHandshake(this: ChannelSession, frame: unknown): void };
  const handleHandshake = proto.handleHandshake;
  const probed = new WeakSet<ChannelSession>();
  proto.handleHandshake = function (this: ChannelSession, frame: unknown): void {
    handleHandshake.call(this, frame);
    if (this.status === 'open' && !probed.has(this)) {
      probed.add(this);
      void probe(this);
    }
  };
}
