import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { ConnectionError, asError } from '../../shared/errors.js';

/**
 * How long a replica that shed this edge (GOAWAY REBALANCE) is passed over while another candidate is left. It
 * shed because it was over its share; by the time it is chosen again the replicas have had time to even out.
 */
export const SHED_BY_MS = 10 * 60_000;

/** One address to dial: a configured entry (or a GOAWAY's address) and one IP it resolved to. */
export interface ServerCandidate {
  /** The entry as host:port; TLS verifies the server certificate against its host (SNI and Host header too). */
  server: string;
  host: string;
  port: number;
  /** The IP the socket goes to. */
  ip: string;
  /** ip:port ([ip]:port for IPv6): what was dialed, and what "tried" and "shed by" remember. */
  address: string;
}

export type LookupAll = (hostname: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

export interface ServerPickerOptions {
  servers: readonly string[];
  /** Injected for tests; defaults to dns.promises.lookup(name, { all: true }). */
  lookup?: LookupAll;
  random?: () => number;
  now?: () => number;
}

/**
 * Chooses the hub address for each dial. Names are resolved at dial time, so a DNS name in front of several
 * replicas gives one candidate per replica. Within a round (since the last connection, until every candidate
 * failed once) each attempt picks uniformly among the candidates not tried yet; replicas that shed this edge
 * are left out while another is there. A GOAWAY's address is dialed next, outside these rules.
 */
export class ServerPicker {
  private readonly tried = new Set<string>();
  private readonly shedUntil = new Map<string, number>();
  private redirect: string | undefined;
  private readonly lookup: LookupAll;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(private readonly options: ServerPickerOptions) {
    this.lookup = options.lookup ?? ((name) => dnsLookup(name, { all: true }));
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  async next(): Promise<ServerCandidate> {
    const redirect = this.redirect;
    this.redirect = undefined;
    if (redirect) {
      const named = await this.resolve([redirect]).catch(() => []);
      if (named.length > 0) return this.pickFrom(named);
    }
    const all = await this.resolve(this.options.servers);
    let fresh = all.filter((c) => !this.tried.has(c.address));
    if (fresh.length === 0) {
      this.tried.clear();
      fresh = all;
    }
    const now = this.now();
    const unshed = fresh.filter((c) => (this.shedUntil.get(c.address) ?? 0) <= now);
    return this.pickFrom(unshed.length > 0 ? unshed : fresh);
  }

  /** The candidate could not be reached, or its session ended badly: not again this round. */
  failed(c: ServerCandidate): void {
    this.tried.add(c.address);
  }

  /** A session opened: the next loss starts a new round. */
  connected(): void {
    this.tried.clear();
  }

  /** The replica at this address shed the edge (GOAWAY REBALANCE). */
  shed(c: ServerCandidate): void {
    const now = this.now();
    for (const [address, until] of this.shedUntil) if (until <= now) this.shedUntil.delete(address);
    this.shedUntil.set(c.address, now + SHED_BY_MS);
  }

  /** Dial this host:port (or wss:// URL) next, whatever the list says: a GOAWAY named a hub with room. */
  redirectTo(server: string): void {
    if (parseServer(server)) this.redirect = server;
  }

  private pickFrom(candidates: readonly ServerCandidate[]): ServerCandidate {
    return candidates[Math.min(candidates.length - 1, Math.floor(this.random() * candidates.length))]!;
  }

  /** Every entry's candidates; an entry whose name does not resolve adds none, and none at all is an error. */
  private async resolve(servers: readonly string[]): Promise<ServerCandidate[]> {
    const failures: string[] = [];
    const lists = await Promise.all(
      servers.map(async (entry) => {
        const parsed = parseServer(entry);
        if (!parsed) return (failures.push(`${entry}: not host:port`), []);
        const { host, port } = parsed;
        const server = `${host}:${port}`;
        if (isIP(host)) return [{ server, host, port, ip: host, address: addressOf(host, port) }];
        try {
          const ips = await this.lookup(host);
          return ips.map(({ address: ip }) => ({ server, host, port, ip, address: addressOf(ip, port) }));
        } catch (err) {
          failures.push(`${host}: ${asError(err).message}`);
          return [];
        }
      }),
    );
    const candidates = [...new Map(lists.flat().map((c) => [`${c.server} ${c.address}`, c])).values()];
    if (candidates.length === 0) throw new ConnectionError(`no address for cloudcore (${failures.join('; ') || 'no servers'})`);
    return candidates;
  }
}

/** `host:port`, `wss://host:port` or `wss://host:port/` → host and port; undefined when it is none of those. */
export function parseServer(entry: string): { host: string; port: number } | undefined {
  const m = /^(?:wss:\/\/)?([^/\s:]+):(\d{1,5})\/?$/.exec(entry);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65_536 ? { host: m[1]!, port } : undefined;
}

function addressOf(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}
