// A strict reader of the Prometheus text exposition format 0.0.4 (prometheus/docs content/docs/instrumenting/
// exposition_formats.md; the grammar prometheus/common expfmt's TextParser accepts): throws on anything a
// scraper would reject or a careful writer would not produce (blank lines, a TYPE after samples, a family split
// in two, a repeated series, a bad escape).

export interface PromSample {
  labels: Record<string, string>;
  value: number;
  timestampMs?: number;
}

export interface PromFamily {
  name: string;
  help?: string;
  type?: string;
  samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|NaN|[+-]Inf)$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parsePrometheusText(text: string): Map<string, PromFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('text does not end with a newline');
  const families = new Map<string, PromFamily>();
  const series = new Set<string>();
  let current: PromFamily | undefined;
  const enter = (name: string, line: number): PromFamily => {
    if (current?.name === name) return current;
    if (families.has(name)) throw new Error(`line ${line}: family ${name} appears in two places`);
    current = { name, samples: [] };
    families.set(name, current);
    return current;
  };
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const n = i + 1;
      if (line === '') throw new Error(`line ${n}: blank line`);
      const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (meta) {
        const [, kind, name, rest] = meta as unknown as [string, string, string, string];
        if (!NAME.test(name)) throw new Error(`line ${n}: bad metric name ${name}`);
        const fam = enter(name, n);
        if (fam.samples.length > 0) throw new Error(`line ${n}: ${kind} after samples of ${name}`);
        if (kind === 'HELP') {
          if (fam.help !== undefined) throw new Error(`line ${n}: second HELP for ${name}`);
          fam.help = unescape(rest, false, n);
        } else {
          if (fam.type !== undefined || !TYPES.has(rest)) throw new Error(`line ${n}: bad or second TYPE for ${name}`);
          fam.type = rest;
        }
        return;
      }
      if (line.startsWith('#')) return;
      const sample = parseSample(line, n);
      const fam = enter(sample.name, n);
      const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
      if (series.has(key)) throw new Error(`line ${n}: repeated series ${key}`);
      series.add(key);
      fam.samples.push({ labels: sample.labels, value: sample.value, timestampMs: sample.timestampMs });
    });
  return families;
}

function parseSample(line: string, n: number): PromSample & { name: string } {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)(?: (-?\d+))?$/.exec(line);
  if (!m) throw new Error(`line ${n}: not a sample: ${line}`);
  const [, name, labelText, valueText, ts] = m as unknown as [string, string, string | undefined, string, string | undefined];
  if (!FLOAT.test(valueText)) throw new Error(`line ${n}: bad value ${valueText}`);
  const labels: Record<string, string> = {};
  if (labelText) {
    const body = labelText.slice(1, -1);
    const pair = /([^=,]+)="((?:[^"\\]|\\.)*)"(,|$)/y;
    let at = 0;
    while (at < body.length) {
      pair.lastIndex = at;
      const p = pair.exec(body);
      if (!p) throw new Error(`line ${n}: bad labels ${labelText}`);
      const [, labelName, raw] = p as unknown as [string, string, string];
      if (!LABEL_NAME.test(labelName) || labelName in labels) throw new Error(`line ${n}: bad or repeated label ${labelName}`);
      labels[labelName] = unescape(raw, true, n);
      at = pair.lastIndex;
    }
  }
  const value = valueText.endsWith('Inf') ? (valueText[0] === '-' ? -Infinity : Infinity) : Number(valueText);
  return { name, labels, value, ...(ts === undefined ? {} : { timestampMs: Number(ts) }) };
}

function unescape(text: string, quoted: boolean, n: number): string {
  return text.replace(/\\(.?)/g, (_all, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    if (c === '"' && quoted) return '"';
    throw new Error(`line ${n}: bad escape \\${c}`);
  });
}
