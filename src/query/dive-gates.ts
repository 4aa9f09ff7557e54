import { UsageError } from '../errors';
import type { EfficiencyReport } from './efficiency';

/*
 * dive's CI rules (cmd/dive/cli/internal/command/ci/rules.go), with its value syntax: a ratio
 * 0-1 for the efficiency and the user-wasted fraction, go-humanize's ParseBytes for bytes
 * ("20MB" = 20,000,000, "20 MiB" = 20,971,520, "1024" = bytes), and "disabled", "off", "false"
 * or an empty value to turn a rule off. A rule fails when efficiency < threshold, wasted bytes >
 * threshold, user wasted fraction > threshold; otherwise it passes.
 */

export type GateName = 'lowestEfficiency' | 'highestWastedBytes' | 'highestUserWastedPercent';

export interface Gate {
  name: GateName;
  /** As given. */
  configured: string;
  threshold?: number;
  disabled: boolean;
}

export interface GateResult {
  name: GateName;
  status: 'PASS' | 'FAIL' | 'SKIP';
  message: string;
}

const isDisabled = (v: string) => ['', 'disabled', 'off', 'false'].includes(v.trim().toLowerCase());

const FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function ratio(flag: string, value: string): number {
  if (!FLOAT.test(value)) throw new UsageError(`${flag} ${value}: expected a ratio between 0 and 1 (0.9), or disabled`);
  const n = Number(value);
  if (n < 0 || n > 1) throw new UsageError(`${flag} ${value}: outside the allowed range 0-1 (a ratio: 0.1 for 10%)`);
  return n;
}

const SIZE_TABLE: Record<string, number> = {
  b: 1, '': 1,
  kib: 1024, ki: 1024, kb: 1e3, k: 1e3,
  mib: 1024 ** 2, mi: 1024 ** 2, mb: 1e6, m: 1e6,
  gib: 1024 ** 3, gi: 1024 ** 3, gb: 1e9, g: 1e9,
  tib: 1024 ** 4, ti: 1024 ** 4, tb: 1e12, t: 1e12,
  pib: 1024 ** 5, pi: 1024 ** 5, pb: 1e15, p: 1e15,
  eib: 1024 ** 6, ei: 1024 ** 6, eb: 1e18, e: 1e18,
};

/** go-humanize's ParseBytes: digits (with `.` and `,`), then an optional unit, any case. */
export function parseHumanBytes(text: string): number | undefined {
  const m = /^[\d.,]*/.exec(text)!;
  const num = m[0].replace(/,/g, '');
  if (!/^(\d+\.?\d*|\.\d+)$/.test(num)) return undefined;
  const unit = SIZE_TABLE[text.slice(m[0].length).trim().toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Number(num) * unit;
  if (bytes >= 2 ** 64) return undefined;
  return Math.floor(bytes);
}

export function parseGates(opts: { lowestEfficiency?: string; highestWastedBytes?: string; highestUserWastedPercent?: string }, ciDefaults: boolean): Gate[] {
  const gates: Gate[] = [];
  const add = (name: GateName, flag: string, value: string | undefined, dflt: string, parse: (v: string) => number) => {
    const v = value ?? (ciDefaults ? dflt : undefined);
    if (v === undefined) return;
    gates.push(isDisabled(v) ? { name, configured: v, disabled: true } : { name, configured: v, threshold: parse(v), disabled: false });
  };
  // The defaults are dive's for `dive --ci` (options/ci_rules.go).
  add('lowestEfficiency', '--lowest-efficiency', opts.lowestEfficiency, '0.9', (v) => ratio('--lowest-efficiency', v));
  add('highestWastedBytes', '--highest-wasted-bytes', opts.highestWastedBytes, 'disabled', (v) => {
    const n = parseHumanBytes(v);
    if (n === undefined) throw new UsageError(`--highest-wasted-bytes ${v}: expected a size such as 20MB, 20 MiB or 1048576 (bytes), or disabled`);
    return n;
  });
  add('highestUserWastedPercent', '--highest-user-wasted-percent', opts.highestUserWastedPercent, '0.1', (v) => ratio('--highest-user-wasted-percent', v));
  return gates;
}

/** Go's %v of a float64 threshold, near enough: the shortest form that reads back the same. */
const goValue = (n: number) => String(n);

export function evaluateGates(gates: readonly Gate[], r: EfficiencyReport): GateResult[] {
  const results = gates.map((g): GateResult => {
    if (g.disabled) return { name: g.name, status: 'SKIP', message: 'disabled' };
    const t = g.threshold!;
    switch (g.name) {
      case 'lowestEfficiency':
        return t > r.efficiency
          ? { name: g.name, status: 'FAIL', message: `image efficiency is too low (efficiency=${r.efficiency.toFixed(2)} < threshold=${goValue(t)})` }
          : { name: g.name, status: 'PASS', message: g.configured };
      case 'highestWastedBytes':
        return r.wastedBytes > t
          ? { name: g.name, status: 'FAIL', message: `too many bytes wasted (wasted-bytes=${r.wastedBytes} > threshold=${t})` }
          : { name: g.name, status: 'PASS', message: g.configured };
      case 'highestUserWastedPercent':
        // NaN (no user layers) compares false, as in Go: the rule passes.
        return r.userWastedPercent > t
          ? { name: g.name, status: 'FAIL', message: `too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes=${r.userWastedPercent.toFixed(2)} > threshold=${goValue(t)})` }
          : { name: g.name, status: 'PASS', message: g.configured };
    }
  });
  // dive prints the rules sorted by name.
  return results.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** go-humanize's Bytes (SI units), as dive prints sizes: `131 B`, `13 kB`, `1.2 MB`. */
export function humanizeBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const sizes = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const val = Math.floor((n / 1000 ** e) * 10 + 0.5) / 10;
  return `${val < 10 ? val.toFixed(1) : val.toFixed(0)} ${sizes[e]}`;
}
