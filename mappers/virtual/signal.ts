// The simulated signals of the virtual mapper, as pure functions of elapsed time.

export const SIGNAL_KINDS = ['sine', 'random', 'counter', 'constant'] as const;
export type SignalKind = (typeof SIGNAL_KINDS)[number];

export interface SignalConfig {
  kind: SignalKind;
  min: number;
  max: number;
  /** sine: one full wave; counter: one step. */
  periodMs: number;
  /** constant: the value (any type); counter: the first count. */
  initial?: string | number | boolean;
}

const DEFAULT_PERIOD_MS: Record<SignalKind, number> = { sine: 10_000, random: 1_000, counter: 1_000, constant: 1_000 };

/** Parses a virtual visitor's configData, adding every problem to `problems`. */
export function parseSignal(data: Readonly<Record<string, unknown>>, where: string, problems: string[]): SignalConfig | undefined {
  const before = problems.length;
  const kind = data.kind ?? 'constant';
  if (!SIGNAL_KINDS.includes(kind as SignalKind)) problems.push(`${where}.kind: must be one of ${SIGNAL_KINDS.join(', ')}, got ${show(kind)}`);
  const min = numberOr(data, 'min', 0, where, problems);
  const max = numberOr(data, 'max', 100, where, problems);
  if (max < min) problems.push(`${where}: max (${max}) is less than min (${min})`);
  const periodMs = numberOr(data, 'periodMs', DEFAULT_PERIOD_MS[kind as SignalKind] ?? 1_000, where, problems);
  if (periodMs <= 0) problems.push(`${where}.periodMs: must be positive, got ${periodMs}`);
  const initial = data.initial;
  if (initial !== undefined && !['string', 'number', 'boolean'].includes(typeof initial)) {
    problems.push(`${where}.initial: must be a string, number or boolean, got ${show(initial)}`);
  }
  if (problems.length > before) return undefined;
  return { kind: kind as SignalKind, min, max, periodMs, ...(initial !== undefined && { initial: initial as string | number | boolean }) };
}

/** The signal's numeric value `elapsedMs` after start (constant: its initial value as a number, or min). */
export function signalValue(signal: SignalConfig, elapsedMs: number, random: () => number): number {
  const { min, max, periodMs } = signal;
  switch (signal.kind) {
    case 'sine':
      return min + ((max - min) * (1 + Math.sin((2 * Math.PI * elapsedMs) / periodMs))) / 2;
    case 'random':
      return min + (max - min) * random();
    case 'counter': {
      const start = typeof signal.initial === 'number' ? signal.initial : Number(signal.initial ?? min);
      const count = (Number.isFinite(start) ? start : min) + Math.floor(elapsedMs / periodMs);
      // Wraps from max back to min, like a rolling sequence number.
      const span = Math.floor(max) - Math.ceil(min) + 1;
      return span > 0 && count > max ? Math.ceil(min) + ((count - Math.ceil(min)) % span) : count;
    }
    case 'constant': {
      const n = Number(signal.initial ?? min);
      return Number.isFinite(n) ? n : min;
    }
  }
}

function numberOr(data: Readonly<Record<string, unknown>>, key: string, fallback: number, where: string, problems: string[]): number {
  const raw = data[key];
  if (raw === undefined || raw === null || raw === '') return fallback;
  const n = typeof raw === 'string' ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    problems.push(`${where}.${key}: must be a number, got ${show(raw)}`);
    return fallback;
  }
  return n;
}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);
