// `npm run bench -- tunnel [--mib=256] [--window-kib=256]`
//
// Figures (one JSON line each):
//   tunnel_mib_per_s     one dynamic stream, edge → cloud, over a loopback WebSocket (plain ws, no TLS): the
//                        edge writes a log-sized body in 64 KiB writes, the cloud reads it as fast as it can
//   tunnel_ping_rtt_ms   median ping round trip measured during that transfer (heartbeats behind a bulk tunnel)
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../support/memory-pair.js';
import { writeAll } from '../support/stream-helpers.js';
import { webSocketPair } from '../support/ws-pair.js';
import { note, percentile, report, runBench } from './bench-support.js';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=') as [string, string]));
const MIB = Number(args.get('mib') ?? 256);
const WINDOW_KIB = Number(args.get('window-kib') ?? 256);

runBench(async () => {
  const body = Buffer.alloc(MIB * 1024 * 1024, 'log line\n');
  const pair = await webSocketPair({ onStreamOpen: (stream) => void writeAll(stream, body, 64 * 1024) }, { dynamicStreamWindowBytes: WINDOW_KIB * 1024 });
  try {
    const started = performance.now();
    const stream = pair.cloud.openStream(Buffer.from(JSON.stringify({ kind: 'logs' })));
    let received = 0;
    stream.on('data', (chunk: Buffer) => (received += chunk.length));
    const ended = once(stream, 'end');
    const rtts: number[] = [];
    let done = false;
    void ended.then(() => (done = true));
    while (!done) {
      rtts.push(await pair.cloud.ping());
      await sleep(10);
    }
    await ended;
    const seconds = (performance.now() - started) / 1000;
    // The cloud's direction is still open (half-close): end it, so the session closes with no stream cut.
    stream.end();
    await waitFor(() => stream.destroyed && [...pair.edge.dynamicStreams()].length === 0, 5000, 'both sides to finish the stream');
    rtts.sort((x, y) => x - y);
    if (received !== body.length) throw new Error(`received ${received} of ${body.length} bytes`);
    report('tunnel_mib_per_s', MIB / seconds, 'MiB/s', { mib: MIB, windowKiB: WINDOW_KIB });
    report('tunnel_ping_rtt_ms', percentile(rtts, 50), 'ms', { p99: percentile(rtts, 99), pings: rtts.length });
    note(`${MIB} MiB in ${seconds.toFixed(2)} s`);
  } finally {
    await pair.close();
  }
});
