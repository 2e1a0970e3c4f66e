import { isIP } from 'node:net';

/** A CONNECT request's target, from its request line. */
export interface ConnectTarget {
  /** As the caller wrote it: `203.0.113.2:10350`, `edge-1:10350`, `[2001:db8::1]:10350`. */
  target: string;
  /** Lower-case; an IPv6 address without brackets, in its shortest form. */
  host: string;
  port: number;
}

export type ConnectHead =
  | { state: 'incomplete' }
  /** `rest`: bytes after the head (a client that did not wait for the 200), to replay into the tunnel. */
  | ({ state: 'done'; rest: Buffer } & ConnectTarget)
  | { state: 'refused'; status: 400 | 405; reason: string };

const END = Buffer.from('\r\n\r\n');
// Host names as node addresses carry them (RFC 1123 labels, dots), or an IPv4 literal.
const HOST = /^[a-z0-9]([a-z0-9._-]{0,252})$/;

/**
 * Parses what a caller sent so far as an HTTP/1.1 CONNECT head (RFC 9110 §9.3.6). kube-apiserver's egress dialer
 * sends exactly `CONNECT <host:port> HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n` (docs/kubeedge-stream-facts.md §1.5);
 * a Go HTTPS_PROXY client adds headers, which are ignored. A head without its end within `maxBytes` is refused.
 */
export function parseConnectHead(buffered: Buffer, maxBytes: number): ConnectHead {
  const end = buffered.indexOf(END);
  if (end < 0) {
    return buffered.length >= maxBytes ? { state: 'refused', status: 400, reason: `CONNECT head exceeds ${maxBytes} bytes` } : { state: 'incomplete' };
  }
  if (end + END.length > maxBytes) return { state: 'refused', status: 400, reason: `CONNECT head exceeds ${maxBytes} bytes` };
  const lineEnd = buffered.indexOf('\r\n');
  const line = buffered.subarray(0, lineEnd).toString('latin1');
  const parts = line.split(' ');
  if (parts.length !== 3 || !/^HTTP\/1\.[01]$/.test(parts[2]!)) return { state: 'refused', status: 400, reason: 'malformed request line' };
  if (parts[0] !== 'CONNECT') return { state: 'refused', status: 405, reason: `method ${parts[0]!.slice(0, 16)} is not CONNECT` };
  const target = parseTarget(parts[1]!);
  if (!target) return { state: 'refused', status: 400, reason: `CONNECT target ${JSON.stringify(parts[1]!.slice(0, 300))} is not host:port` };
  return { state: 'done', ...target, rest: buffered.subarray(end + END.length) };
}

/** `host:port` (authority-form) with a bracketed IPv6 host, or undefined. */
export function parseTarget(target: string): ConnectTarget | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(target);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  if (m[1] !== undefined) {
    if (isIP(m[1]) !== 6) return undefined;
    return { target, host: normalizeHost(m[1]), port };
  }
  const host = m[2]!.toLowerCase();
  if (!HOST.test(host)) return undefined;
  return { target, host, port };
}

/** The form node addresses and CONNECT hosts are compared in: lower case, IPv6 compressed. */
export function normalizeHost(host: string): string {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIP(bare) !== 6) return bare;
  return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
}

/** The proxy's answer to a CONNECT. The reason phrase reaches kubectl (`… code 503: 503 node edge-3 is not connected`). */
export function connectReply(status: number, reason: string): string {
  // A reason phrase may not hold CR or LF (RFC 9112 §4); the caller's input can end up in it.
  const line = `HTTP/1.1 ${status} ${reason.replace(/[\r\n]+/g, ' ')}\r\n`;
  // After a 200 the next bytes are the tunnel's; a refusal has an empty body and ends the connection.
  return status === 200 ? `${line}\r\n` : `${line}Content-Length: 0\r\nConnection: close\r\n\r\n`;
}
