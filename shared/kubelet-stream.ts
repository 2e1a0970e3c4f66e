// Issue 13: the kubelet API of edge nodes (logs, exec, attach, port-forward, stats) reaches the edge through
// its channel. cloudcore accepts the API server's connection for a node (egress-selector CONNECT, or TLS by
// node name), checks the caller's client certificate, ends TLS, and opens one dynamic channel stream to the
// node (shared/channel, ids >= 16) whose OPEN header is a KubeletStreamOpen. From then on the stream carries the
// plaintext HTTP/1.1 connection unchanged, both ways: keep-alive requests, and after a 101 the raw SPDY bytes.
// edgecore feeds each such stream to an in-process http.Server (`server.emit('connection', stream)`), which
// serves the kubelet paths (docs/kubeedge-stream-facts.md §1.1). Neither side parses SPDY; the cloud parses no
// HTTP at all. Backpressure is the channel's per-stream credit, end to end.

/** The `kind` of a kubelet stream's OPEN header. */
export const KUBELET_STREAM_KIND = 'kubelet';

/** The OPEN header of a kubelet stream (JSON, UTF-8). */
export interface KubeletStreamOpen {
  kind: typeof KUBELET_STREAM_KIND;
  /** `host:port` the API server asked for (CONNECT target or TLS server name with the port): for the edge's logs. */
  target: string;
  /** Who is calling, as cloudcore authenticated it (the client certificate's subject CN): for the edge's logs. */
  caller: string;
}

const MAX_HEADER_BYTES = 4096;

export function encodeKubeletStreamOpen(open: KubeletStreamOpen): Uint8Array {
  return Buffer.from(JSON.stringify(open), 'utf8');
}

/** The header of a kubelet stream, or why it is not one (the edge resets the stream with that reason). */
export function decodeKubeletStreamOpen(header: Uint8Array): KubeletStreamOpen | { error: string } {
  if (header.length > MAX_HEADER_BYTES) return { error: `stream header of ${header.length} bytes exceeds ${MAX_HEADER_BYTES}` };
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(header).toString('utf8'));
  } catch (err) {
    return { error: `stream header is not JSON: ${(err as Error).message}` };
  }
  const v = value as Partial<KubeletStreamOpen> | null;
  if (!v || typeof v !== 'object' || v.kind !== KUBELET_STREAM_KIND) return { error: `stream kind ${JSON.stringify(v?.kind)} is not ${KUBELET_STREAM_KIND}` };
  if (typeof v.target !== 'string' || typeof v.caller !== 'string') return { error: 'stream header needs target and caller strings' };
  return { kind: KUBELET_STREAM_KIND, target: v.target, caller: v.caller };
}
