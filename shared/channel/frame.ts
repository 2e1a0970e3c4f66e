// TypeScript mirror of proto/channel.proto plus the channel's fixed streams.

export const FrameType = {
  OPEN: 1,
  DATA: 2,
  ACK: 3,
  CREDIT: 4,
  CLOSE: 5,
  RESET: 6,
  PING: 7,
  PONG: 8,
  GOAWAY: 9,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** A decoded frame: protobuf fills absent fields with their defaults. */
export interface Frame {
  type: FrameType;
  stream: number;
  seq: number;
  flags: number;
  payload: Uint8Array;
  credit: number;
  acks: number[];
  code: number;
  reason: string;
  address: string;
}

/** What a sender builds; absent fields take protobuf defaults. */
export type FrameInit = Pick<Frame, 'type'> & Partial<Omit<Frame, 'type'>>;

/** DATA flag: last chunk of a message. */
export const FLAG_FIN = 1;

/**
 * The fixed streams. Lower priority values are sent first: the control stream never waits behind data, and
 * interactive traffic never waits behind a bulk resync.
 */
export const StreamId = {
  control: 0,
  /** Cloud → edge objects (pods, configmaps, devices …); edge → cloud inventory. ACKed after commit. */
  objects: 1,
  /** Edge → cloud status and reports from the durable outbox. ACKed after the cloud processed them. */
  upstream: 2,
  /** Device twin traffic both ways. */
  twin: 3,
  /** Requests and responses both ways (queries). */
  rpc: 4,
} as const;
export type StreamId = (typeof StreamId)[keyof typeof StreamId];

export const STREAM_PRIORITY: Readonly<Record<number, number>> = {
  [StreamId.control]: 0,
  [StreamId.rpc]: 1,
  [StreamId.twin]: 2,
  [StreamId.upstream]: 3,
  [StreamId.objects]: 4,
};

/**
 * Ids from here on are dynamic streams, opened at run time by either side (tunnels for logs, exec,
 * port-forward). The server (cloud) opens even ids, the client (edge) odd ones, so both can open at once
 * without agreeing first.
 */
export const FIRST_DYNAMIC_STREAM = 16;

/** RESET codes on dynamic streams. */
export const ResetCode = {
  /** No handler for dynamic streams (what an older peer answers: 'dynamic streams are not supported'), or the handler refused. */
  REFUSED: 1,
  /** The receiver already has its maximum of open dynamic streams from this peer. */
  STREAM_LIMIT: 2,
  /** A frame broke the stream's rules: data beyond credit, data after CLOSE, an unknown or reused id. */
  PROTOCOL_ERROR: 3,
  /** The application aborted the stream (destroy). */
  CANCEL: 4,
} as const;
export type ResetCode = (typeof ResetCode)[keyof typeof ResetCode];

export const GoAwayCode = {
  /** The peer shuts down. */
  SHUTDOWN: 0,
  /** Connection rebalancing across cloudcore replicas. */
  REBALANCE: 1,
  /** A newer connection for the same node replaced this one. */
  REPLACED: 2,
  /** The client certificate of this session expired; reconnect with the renewed one. */
  CERTIFICATE_EXPIRED: 3,
  PROTOCOL_ERROR: 4,
  SESSION_TIMEOUT: 5,
  /** The edge renewed its certificate and reconnects with it. */
  RECONNECT: 6,
} as const;
export type GoAwayCode = (typeof GoAwayCode)[keyof typeof GoAwayCode];

const GOAWAY_NAMES = new Map<number, string>(Object.entries(GoAwayCode).map(([name, code]) => [code, name]));

/** The name of a GOAWAY code (`REPLACED`, `SHUTDOWN` …) for logs and metric labels; the number for an unknown one. */
export function goAwayName(code: number): string {
  return GOAWAY_NAMES.get(code) ?? String(code);
}

export const PROTOCOL_VERSION = 1;

export interface Settings {
  streamWindowBytes: number;
  maxMessageBytes: number;
  heartbeatIntervalMs: number;
  sessionTimeoutMs: number;
}

export interface Hello {
  protocolVersion: number;
  nodeName: string;
  settings: Settings;
  softwareVersion: string;
  sessionId: string;
}

export interface InventoryItem {
  key: string;
  uid: string;
  resourceVersion: string;
}
