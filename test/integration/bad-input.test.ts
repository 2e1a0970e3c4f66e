import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { parse } from 'yaml';
import { CertificateAuthority, type PemPair } from '../../shared/pki/certificate-authority.js';
import { encodeFrames, encodeHello } from '../../shared/channel/codec.js';
import { FLAG_FIN, FrameType, PROTOCOL_VERSION, StreamId } from '../../shared/channel/frame.js';
import { eventually, tempDir } from '../support/harness.js';
import { CLOUDCORE_BIN, EDGECORE_BIN, cloudSetup, edgeSetup, readEdgeStore, runCli, startCloud, startEdgeInProcess, type Cloud } from '../support/daemons.js';

const settings = { streamWindowBytes: 1 << 20, maxMessageBytes: 1 << 24, heartbeatIntervalMs: 30_000, sessionTimeoutMs: 90_000 };

interface RawResult {
  opened: boolean;
  closeCode?: number;
  error?: string;
  status?: number;
}

/** A hand-driven client: connects with the given certificate, sends `payloads`, reports how it ended. */
function rawClient(cloud: Cloud, tls: Partial<PemPair> & { caPem?: string }, payloads: Array<Buffer | string>): Promise<RawResult> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${cloud.setup.hubPort}/p/raw/events`, {
      ca: tls.caPem,
      cert: tls.certPem,
      key: tls.keyPem,
      handshakeTimeout: 5_000,
    });
    const result: RawResult = { opened: false };
    ws.on('open', () => {
      result.opened = true;
      for (const p of payloads) ws.send(p, { binary: typeof p !== 'string' });
    });
    ws.on('unexpected-response', (_req, res) => {
      result.status = res.statusCode;
      resolve(result);
    });
    ws.on('error', (err) => (result.error = err.message));
    ws.on('close', (code) => {
      result.closeCode = code;
      resolve(result);
    });
  });
}

const hello = (nodeName: string): Buffer =>
  Buffer.from(
    encodeFrames([
      {
        type: FrameType.OPEN,
        stream: StreamId.control,
        payload: encodeHello({ protocolVersion: PROTOCOL_VERSION, nodeName, settings, softwareVersion: 'raw', sessionId: '' }),
      },
    ]),
  );

describe('bad input at the hub (real cloudcore)', () => {
  it('closes only the offending connection, names the problem, and keeps serving the healthy edge', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    const setup = edgeSetup(dir, 'healthy', cloud.setup);
    const healthy = await startEdgeInProcess(setup, await cloud.token());
    await eventually(() => expect(healthy.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    const since = (healthy.edgeHub.status as { since: number }).since;

    const ca = await CertificateAuthority.fromPem(
      readFileSync(cloud.setup.configPath.replace('cloudcore.yaml', 'cloud/ca.crt'), 'utf8'),
      readFileSync(join(dir, 'cloud', 'ca.key'), 'utf8'),
    );
    const node = async (name: string): Promise<PemPair & { caPem: string }> => ({ ...(await ca.issueNodeCert(name, 3_600_000)), caPem: ca.certPem });

    // Malformed frames, unknown stream, text frame, oversized message, a hello naming another node.
    const garbage = await rawClient(cloud, await node('raw-1'), [Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 9, 9, 9])]);
    expect(garbage.closeCode).toBe(1002);
    const unknownStream = await rawClient(cloud, await node('raw-2'), [
      hello('raw-2'),
      Buffer.from(encodeFrames([{ type: FrameType.DATA, stream: 11, seq: 1, flags: FLAG_FIN, payload: Buffer.from('x') }])),
    ]);
    expect(unknownStream.closeCode).toBe(1002);
    const text = await rawClient(cloud, await node('raw-3'), ['{"hello":"json"}']);
    expect(text.closeCode).toBe(1002);
    const huge = await rawClient(cloud, await node('raw-4'), [Buffer.alloc(2 * 1024 * 1024, 1)]);
    expect(huge.closeCode).toBe(1009);
    const liar = await rawClient(cloud, await node('raw-5'), [hello('healthy')]);
    expect(liar.closeCode).toBe(1002);
    const dataBeforeHello = await rawClient(cloud, await node('raw-6'), [
      Buffer.from(encodeFrames([{ type: FrameType.DATA, stream: StreamId.upstream, seq: 1, flags: FLAG_FIN, payload: Buffer.from('x') }])),
    ]);
    expect(dataBeforeHello.closeCode).toBe(1002);

    // Each refusal is logged with the node, the peer and a code naming what was wrong.
    const closed = (node: string) =>
      cloud.logs.find((l) => l.msg === 'edge session closed with error' && l.nodeId === node) as
        { err: { code: string; message: string }; peer: string } | undefined;
    await eventually(() => expect(closed('raw-6')).toBeDefined());
    expect(closed('raw-1')!.err.code).toBe('ERR_FRAME_MALFORMED');
    expect(closed('raw-1')!.peer).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(closed('raw-2')!.err.code).toBe('ERR_UNKNOWN_STREAM');
    expect(closed('raw-3')!.err.code).toBe('ERR_FRAME_MALFORMED');
    expect(closed('raw-4')!.err.code).toBe('ERR_FRAME_TOO_LARGE');
    expect(closed('raw-5')!.err.message).toMatch(/certificate is for "raw-5"/);
    expect(closed('raw-6')!.err.message).toMatch(/expected the hello/);

    // Certificates: none, from another CA, expired, or not a node certificate.
    const otherCa = await CertificateAuthority.create();
    const none = await rawClient(cloud, { caPem: ca.certPem }, []);
    const foreign = await rawClient(cloud, { ...(await otherCa.issueNodeCert('intruder', 3_600_000)), caPem: ca.certPem }, []);
    const expired = await rawClient(
      cloud,
      { ...(await ca.issueNodeCert('old-node', 60_000, undefined, new Date(Date.now() - 3_600_000))), caPem: ca.certPem },
      [],
    );
    const serving = await rawClient(cloud, { ...(await ca.issueServerCert({ hosts: ['127.0.0.1'] })), caPem: ca.certPem }, []);
    const badName = await rawClient(cloud, { ...(await ca.issueNodeCert('Not_A_Node', 3_600_000)), caPem: ca.certPem }, []);
    // A serving certificate lacks the client-auth purpose, so TLS refuses it like the others.
    for (const r of [none, foreign, expired, serving]) expect(r.opened).toBe(false);
    expect(badName.status).toBe(403);
    await eventually(() => expect(cloud.logs.filter((l) => l.msg === 'edge tls handshake refused').length).toBeGreaterThanOrEqual(4));
    const reasons = cloud.logs.filter((l) => l.msg === 'edge tls handshake refused').map((l) => String(l.reason));
    expect(reasons.some((r) => /CERT_HAS_EXPIRED|expired/i.test(r))).toBe(true);
    expect(reasons.every((r) => r.length > 0)).toBe(true);
    await eventually(() => expect(cloud.logs.some((l) => l.msg === 'edge refused: not a node certificate')).toBe(true));

    // The healthy edge never lost its session and still receives.
    cloud.store.put('healthy', 'default/configmap/after-abuse', { data: { ok: 'yes' } });
    await eventually(() => expect(readEdgeStore(setup.dbPath).has('default/configmap/after-abuse')).toBe(true));
    expect(healthy.edgeHub.status).toMatchObject({ type: 'connected', since });
  });

  it('lets a newer connection for the same node replace the older one, which is told why', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir));
    const token = await cloud.token();
    const first = await startEdgeInProcess(
      edgeSetup(join(dir, 'a'), 'twin-node', cloud.setup, { edgeHub: { reconnectInitialDelayMs: 5_000, reconnectMaxDelayMs: 10_000 } }),
      token,
    );
    await eventually(() => expect(first.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    const second = await startEdgeInProcess(edgeSetup(join(dir, 'b'), 'twin-node', cloud.setup), token);
    await eventually(() => expect(second.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    await eventually(() => expect(first.edgeHub.status.type).not.toBe('connected'));
    expect(cloud.logs.some((l) => l.msg === 'sending goaway' && l.nodeId === 'twin-node' && l.code === 2)).toBe(true);
    cloud.store.put('twin-node', 'default/configmap/c', { data: {} });
    await eventually(() => expect(readEdgeStore(join(dir, 'b', 'twin-node', 'edgecore.db')).has('default/configmap/c')).toBe(true));
  });
});

describe('node limit', () => {
  it('refuses edges beyond the node limit with 503 and keeps the admitted one', async () => {
    const dir = tempDir();
    const cloud = await startCloud(await cloudSetup(dir, { cloudHub: { nodeLimit: 1 } }));
    const token = await cloud.token();
    const first = await startEdgeInProcess(edgeSetup(dir, 'first', cloud.setup), token);
    await eventually(() => expect(first.edgeHub.status).toMatchObject({ type: 'connected', synced: true }));
    const second = await startEdgeInProcess(edgeSetup(dir, 'second', cloud.setup), token);
    await eventually(() => expect(second.edgeHub.status).toMatchObject({ type: 'disconnected', lastError: expect.stringMatching(/503 node limit 1 reached/) }));
    await eventually(() => expect(cloud.logs.some((l) => l.msg === 'edge refused' && l.nodeId === 'second')).toBe(true));
    expect(first.edgeHub.status.type).toBe('connected');
  });
});

describe('bad configuration files', () => {
  it('reports every problem at once and exits 2 before starting', async () => {
    const dir = tempDir();
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'logLevel: loud\nmodules:\n  cloudHub:\n    port: "ten"\n    prot: 1\n  edgeController:\n    pollIntervalMs: -5\n');
    const cloud = await runCli(CLOUDCORE_BIN, ['--config', file]);
    expect(cloud.code).toBe(2);
    expect(cloud.stderr).toMatch(/logLevel: must be one of/);
    expect(cloud.stderr).toMatch(/modules\.cloudHub\.port: must be an integer/);
    expect(cloud.stderr).toMatch(/unknown key "modules\.cloudHub\.prot" \(did you mean "port"\?\)/);
    expect(cloud.stderr).toMatch(/modules\.edgeController\.pollIntervalMs: must be at least 5/);

    writeFileSync(file, 'nodeName: [oops\n');
    const syntax = await runCli(EDGECORE_BIN, ['--config', file]);
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toMatch(/bad\.yaml/);
    writeFileSync(file, 'nodeName: Not_A_DNS_Name\nmodules:\n  edgeHub:\n    server: "nowhere"\n');
    const edge = await runCli(EDGECORE_BIN, ['--config', file]);
    expect(edge.code).toBe(2);
    expect(edge.stderr).toMatch(/nodeName: "Not_A_DNS_Name" is not a DNS-1123 name/);
    expect(edge.stderr).toMatch(/modules\.edgeHub\.server: "nowhere" is not host:port/);
    expect((await runCli(EDGECORE_BIN, ['--config', join(dir, 'missing.yaml')])).stderr).toMatch(/cannot read config file/);
  });

  it('prints a complete, commented default config that loads back unchanged', async () => {
    for (const bin of [CLOUDCORE_BIN, EDGECORE_BIN]) {
      const printed = await runCli(bin, ['--print-default-config']);
      expect(printed.code).toBe(0);
      expect(printed.stdout).toMatch(/^# /m);
      const dir = tempDir();
      writeFileSync(join(dir, 'default.yaml'), printed.stdout);
      expect(parse(printed.stdout)).toHaveProperty('modules');
      // Loading it back must not report a problem: exit 2 would mean the printed defaults are invalid.
      const check = await runCli(bin, ['--config', join(dir, 'default.yaml'), '--help']);
      expect(check.code).toBe(0);
    }
  });
});
