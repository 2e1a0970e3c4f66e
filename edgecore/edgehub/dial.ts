import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import { WebSocket } from 'ws';
import { ConnectionError } from '../../shared/errors.js';
import type { ServerCandidate } from './server-picker.js';

/** KubeEdge's default project id; kept in the URL path for compatibility with its hub. */
const PROJECT_ID = 'e632aba927ea4ac2b575ec1603d56f10';

export interface DialOptions {
  nodeName: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  handshakeTimeoutMs: number;
}

/**
 * Opens the WebSocket to one candidate. The URL keeps the configured host, so SNI, the Host header and the
 * certificate check use the name; a lookup that answers with the chosen IP sends the socket to that replica.
 */
export function dialCloudHub(c: ServerCandidate, o: DialOptions): Promise<WebSocket> {
  const host = isIP(c.host) === 6 ? `[${c.host}]` : c.host;
  const pinned: LookupFunction = (_hostname, options, callback) => {
    const family = isIP(c.ip);
    // Node asks for every address when it may race IPv4 and IPv6 (autoSelectFamily); answer in the form asked.
    if (options.all) (callback as (err: null, addresses: Array<{ address: string; family: number }>) => void)(null, [{ address: c.ip, family }]);
    else callback(null, c.ip, family);
  };
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://${host}:${c.port}/${PROJECT_ID}/${o.nodeName}/events`, {
      ca: o.caPem,
      cert: o.certPem,
      key: o.keyPem,
      lookup: pinned,
      handshakeTimeout: o.handshakeTimeoutMs,
      perMessageDeflate: false,
      maxPayload: 1024 * 1024,
      // An all-zero masking key: the frames go out as written, and ws (and cloudcore's parser) skip the XOR pass,
      // which was a fifth of edgecore's CPU on a bulk log (docs/performance.md, streams). RFC 6455 masks client frames
      // against scripts in a browser poisoning proxy caches with chosen bytes; edgecore runs no one's scripts and
      // speaks TLS. Still a valid masked frame for every server, KubeEdge's gorilla/websocket included.
      generateMask: zeroMask,
      headers: { node_id: o.nodeName, project_id: PROJECT_ID },
    });
    const fail = (err: Error): void => {
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      reject(err);
    };
    ws.once('open', () => {
      ws.removeAllListeners();
      resolve(ws);
    });
    ws.once('error', (err) => fail(new ConnectionError(err.message, 'ERR_CONNECTION', { cause: err })));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => fail(new ConnectionError(`cloudcore refused the connection: ${res.statusCode} ${body.trim()}`)));
    });
  });
}

/** Fills the masking key with zeros (ws then sends the payload unmasked in effect, without copying it). */
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}
