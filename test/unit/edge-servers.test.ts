import { describe, expect, it, onTestFinished } from 'vitest';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { CertificateAuthority } from '../../shared/pki/certificate-authority.js';
import { dialCloudHub } from '../../edgecore/edgehub/dial.js';
import { Backoff } from '../../shared/backoff.js';
import { ConfigError } from '../../shared/errors.js';
import { loadEdgeCoreConfig } from '../../edgecore/config.js';
import { SHED_BY_MS, ServerPicker, parseServer, type LookupAll, type ServerCandidate } from '../../edgecore/edgehub/server-picker.js';

/** A random source that returns the given values in turn, then repeats the last one. */
function draws(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

const hosts: Record<string, string[]> = { 'hub.example': ['10.0.0.1', '10.0.0.2', 'fd00::3'], 'one.example': ['10.0.1.1'] };
const lookup: LookupAll = async (name) => {
  const ips = hosts[name];
  if (!ips) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  return ips.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

const candidate = (ip: string): ServerCandidate => ({ server: `${ip}:1`, host: ip, port: 1, ip, address: `${ip}:1` });

async function addressesPicked(picker: ServerPicker, times: number, after?: (c: ServerCandidate) => void): Promise<string[]> {
  const out: string[] = [];
  for (let n = 0; n < times; n++) {
    const c = await picker.next();
    out.push(c.address);
    after?.(c);
  }
  return out;
}

describe('full-jitter backoff', () => {
  it('draws from [0, min(max, initial × 2^n)]', () => {
    const top = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 'full', random: () => 1 });
    expect([top.next(), top.next(), top.next(), top.next(), top.next(), top.next()]).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 'full', random: () => 0 }).next()).toBe(0);
    const mid = new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 'full', random: () => 0.5 });
    expect([mid.next(), mid.next(), mid.next()]).toEqual([50, 100, 200]);
    mid.reset();
    expect(mid.next()).toBe(50);
  });

  it('keeps equal jitter, [50%, 100%] of the ceiling, for callers that ask for nothing', () => {
    expect(new Backoff({ initialDelayMs: 100, maxDelayMs: 1000, random: () => 0 }).next()).toBe(50);
  });
});

describe('choosing the hub to dial', () => {
  it('picks among the configured entries and every address a name resolves to, keeping the name for TLS', async () => {
    const picker = new ServerPicker({ servers: ['wss://hub.example:10000/', '192.168.1.9:10001'], lookup, random: () => 0.99 });
    expect(await picker.next()).toEqual({ server: '192.168.1.9:10001', host: '192.168.1.9', port: 10001, ip: '192.168.1.9', address: '192.168.1.9:10001' });
    const v6 = await new ServerPicker({ servers: ['hub.example:10000'], lookup, random: () => 0.99 }).next();
    expect(v6).toEqual({ server: 'hub.example:10000', host: 'hub.example', port: 10000, ip: 'fd00::3', address: '[fd00::3]:10000' });
  });

  it('tries every candidate once, in random order, before a new round starts', async () => {
    // Candidates in order: 10.0.0.1, 10.0.0.2, fd00::3 (hub.example), 192.168.1.9; each draw indexes the untried.
    const picker = new ServerPicker({ servers: ['hub.example:1', '192.168.1.9:2'], lookup, random: draws(0.5, 0, 0.9, 0.1, 0.7) });
    const round = await addressesPicked(picker, 4, (c) => picker.failed(c));
    expect(round).toEqual(['[fd00::3]:1', '10.0.0.1:1', '192.168.1.9:2', '10.0.0.2:1']);
    // All four failed: the next pick starts over among all of them.
    expect((await picker.next()).address).toBe('[fd00::3]:1');
    for (let n = 0; n < 20; n++) {
      const shuffled = new ServerPicker({ servers: ['hub.example:1', '192.168.1.9:2'], lookup });
      expect(new Set(await addressesPicked(shuffled, 4, (c) => shuffled.failed(c))).size).toBe(4);
    }
  });

  it('a connection starts a new round: the replica that later drops is the one not tried first', async () => {
    const picker = new ServerPicker({ servers: ['10.0.0.1:1', '10.0.0.2:1'], lookup, random: () => 0 });
    picker.failed(await picker.next());
    const second = await picker.next();
    expect(second.address).toBe('10.0.0.2:1');
    picker.connected();
    picker.failed(second); // the session to it was lost
    expect((await picker.next()).address).toBe('10.0.0.1:1');
  });

  it('passes over a replica that shed the edge while another is there, and falls back to it when alone', async () => {
    let now = 1_000;
    const picker = new ServerPicker({ servers: ['10.0.0.1:1', '10.0.0.2:1', '10.0.0.3:1'], lookup, random: Math.random, now: () => now });
    picker.shed(candidate('10.0.0.2'));
    const picks = await addressesPicked(picker, 200);
    expect(new Set(picks)).toEqual(new Set(['10.0.0.1:1', '10.0.0.3:1']));
    // The other two failed this round: the shedding replica is better than waiting for them.
    picker.failed(candidate('10.0.0.1'));
    picker.failed(candidate('10.0.0.3'));
    expect((await picker.next()).address).toBe('10.0.0.2:1');
    picker.connected();
    now += SHED_BY_MS;
    expect(new Set(await addressesPicked(picker, 200))).toEqual(new Set(['10.0.0.1:1', '10.0.0.2:1', '10.0.0.3:1']));

    const alone = new ServerPicker({ servers: ['10.0.0.1:1'], lookup });
    alone.shed(await alone.next());
    expect((await alone.next()).address).toBe('10.0.0.1:1');
  });

  it('dials the address a GOAWAY named next, once, even when it is not in the list', async () => {
    const picker = new ServerPicker({ servers: ['10.0.0.1:1'], lookup });
    picker.redirectTo('wss://one.example:7/');
    expect(await picker.next()).toMatchObject({ server: 'one.example:7', address: '10.0.1.1:7' });
    expect((await picker.next()).address).toBe('10.0.0.1:1');
    picker.redirectTo('not an address');
    expect((await picker.next()).address).toBe('10.0.0.1:1');
  });

  it('skips a name that does not resolve, and fails the attempt when nothing does', async () => {
    const picker = new ServerPicker({ servers: ['nowhere.example:1', 'one.example:2'], lookup });
    expect((await picker.next()).address).toBe('10.0.1.1:2');
    const none = new ServerPicker({ servers: ['nowhere.example:1'], lookup });
    await expect(none.next()).rejects.toMatchObject({ code: 'ERR_CONNECTION', message: expect.stringMatching(/nowhere\.example: .*ENOTFOUND/) });
  });

  it('parses host:port and wss:// URLs only', () => {
    expect(parseServer('wss://a.b:443/')).toEqual({ host: 'a.b', port: 443 });
    expect(parseServer('a.b:0')).toBeUndefined();
    expect(parseServer('https://a.b:1')).toBeUndefined();
  });
});

describe('modules.edgeHub.server', () => {
  const serverOf = (server: unknown): readonly string[] => loadEdgeCoreConfig({ overrides: { modules: { edgeHub: { server } } } }).modules.edgeHub.server;
  const problemsOf = (server: unknown): readonly string[] => {
    try {
      serverOf(server);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as ConfigError).problems;
    }
    return expect.unreachable('the config loaded');
  };

  it('takes one address, as before, or a list; the default is the local hub', () => {
    expect(loadEdgeCoreConfig({}).modules.edgeHub.server).toEqual(['127.0.0.1:10000']);
    expect(serverOf('hub.example:10000')).toEqual(['hub.example:10000']);
    expect(serverOf(['10.0.0.1:10000', 'wss://hub.example:10000'])).toEqual(['10.0.0.1:10000', 'wss://hub.example:10000']);
  });

  it('names every bad item', () => {
    expect(problemsOf('nowhere')).toEqual(['modules.edgeHub.server: "nowhere" is not host:port or wss://host:port']);
    expect(problemsOf(['a:1', 'x', 5])).toEqual([
      'modules.edgeHub.server: item 1 "x" is not host:port or wss://host:port; item 2 must be a non-empty string, got 5',
    ]);
    expect(problemsOf([])).toEqual(['modules.edgeHub.server: must not be an empty list']);
    expect(problemsOf(7)).toEqual(['modules.edgeHub.server: must be a string or a list of strings, got 7']);
  });
});

describe('dialing one candidate', () => {
  it('sends the socket to the chosen IP but checks the certificate, SNI and Host against the name', async () => {
    const ca = await CertificateAuthority.create();
    const serving = await ca.issueServerCert({ hosts: ['hub.test'] });
    const seen: Array<{ servername: unknown; host: string | undefined }> = [];
    const server = createServer({ cert: serving.certPem, key: serving.keyPem });
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws, req) => {
      seen.push({ servername: (req.socket as TLSSocket).servername, host: req.headers.host });
      ws.close();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => (wss.close(), server.close(() => resolve()))));
    const port = (server.address() as AddressInfo).port;
    const dial = (host: string) =>
      dialCloudHub(
        { server: `${host}:${port}`, host, port, ip: '127.0.0.1', address: `127.0.0.1:${port}` },
        { nodeName: 'edge-1', caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem, handshakeTimeoutMs: 5_000 },
      );

    const ws = await dial('hub.test');
    ws.terminate();
    expect(seen).toEqual([{ servername: 'hub.test', host: `hub.test:${port}` }]);
    await expect(dial('other.test')).rejects.toMatchObject({ code: 'ERR_CONNECTION', message: expect.stringMatching(/altnames/i) });
    await expect(dial('127.0.0.1')).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
  });
});
