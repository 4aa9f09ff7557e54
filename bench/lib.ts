/**
 * Shared helpers for the benchmarks: argument parsing, a scratch directory with cleanup, timed
 * child processes, page-cache dropping and result tables. Benchmarks run compiled from
 * dist/bench/, so every project path is found relative to this file, never to the cwd.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

/** The project root: dist/bench/lib.js -> ../.. (works in /work/main and in a mirror). */
export const ROOT = path.resolve(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'ocimount');

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export class BenchError extends Error {}

/** Options every benchmark understands; the generator's options pass through to it. */
export const COMMON_OPTIONS = {
  image: { type: 'string' },
  dir: { type: 'string' },
  keep: { type: 'boolean', default: false },
  files: { type: 'string' },
  'big-mib': { type: 'string' },
  'data-mib': { type: 'string' },
  compress: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export type Values = Record<string, string | boolean | undefined>;
type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }>;

export function parse(options: OptionSpec, usage: string): Values {
  try {
    const { values } = parseArgs({ options, allowPositionals: false, strict: true });
    if (values.help) {
      process.stdout.write(usage);
      process.exit(0);
    }
    return values as Values;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage}`);
    process.exit(2);
  }
}

export function intOpt(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new BenchError(`--${name}: expected a non-negative integer, got ${String(v)}`);
  return n;
}

/** Cleanup actions, run last-registered first, on normal exit, on error and on Ctrl-C. */
const cleanups: Array<{ what: string; fn: () => unknown }> = [];
export function onCleanup(what: string, fn: () => unknown): void {
  cleanups.push({ what, fn });
}
export async function runCleanups(): Promise<void> {
  while (cleanups.length) {
    const c = cleanups.pop()!;
    try {
      await c.fn();
    } catch (err) {
      process.stderr.write(`cleanup (${c.what}) failed: ${(err as Error).message}\n`);
    }
  }
}

/** Runs a benchmark's main with cleanup on success, failure and SIGINT/SIGTERM. */
export function runMain(main: () => Promise<void>): void {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`\n${sig}: cleaning up\n`);
      void runCleanups().then(() => process.exit(130));
    });
  }
  main()
    .then(runCleanups, async (err: Error) => {
      process.stderr.write(`bench: ${err instanceof BenchError ? err.message : err.stack ?? err.message}\n`);
      await runCleanups();
      process.exitCode = 1;
    });
}

/** The scratch directory: --dir, else $OCIMOUNT_BENCH_DIR, else a fresh one under the temp dir. */
export function scratchDir(dir: string | undefined, keep: boolean): string {
  const base = dir ?? process.env.OCIMOUNT_BENCH_DIR;
  let d: string;
  if (base) {
    fs.mkdirSync(base, { recursive: true });
    d = fs.mkdtempSync(path.join(base, 'run-'));
  } else {
    d = fs.mkdtempSync(path.join(os.tmpdir(), 'ocimount-bench-'));
  }
  onCleanup(`remove ${d}`, () => {
    if (keep) process.stderr.write(`kept ${d}\n`);
    else fs.rmSync(d, { recursive: true, force: true });
  });
  return d;
}

export function log(msg: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export interface Timed {
  seconds: number;
  stdout: string;
}

/** Runs a command without a shell, timed with hrtime from spawn to exit; fails on non-zero exit. */
export function timed(cmd: string, args: string[], opts: { cwd?: string; allowFail?: boolean } = {}): Promise<Timed & { code: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => errOut.push(b));
    child.on('error', (err) => reject(new BenchError(`${cmd}: ${err.message}`)));
    child.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const stdout = Buffer.concat(out).toString();
      if ((code !== 0 || signal) && !opts.allowFail) {
        const msg = Buffer.concat(errOut).toString().trim().split('\n').slice(-5).join('\n');
        reject(new BenchError(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${msg}`));
        return;
      }
      resolve({ seconds, stdout, code: code ?? -1 });
    });
  });
}

/** `sh -c SCRIPT` with the arguments as $1, $2, …, timed. */
export function timedSh(script: string, ...args: string[]): Promise<Timed & { code: number }> {
  return timed('/bin/sh', ['-c', script, 'sh', ...args]);
}

let dropWarned = false;
/**
 * Empties the page cache (and dentry/inode caches) so the next read comes from disk. Needs
 * root; without it, says once that "cold" figures are really warm and carries on.
 */
export async function dropCaches(): Promise<boolean> {
  try {
    await timed('sync', []);
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch (err) {
    if (!dropWarned) log(`cannot drop the page cache (${(err as Error).message.split('\n')[0]}): "cold" figures below are warm`);
    dropWarned = true;
    return false;
  }
}

/**
 * The "cold" state the benchmarks mean: the image archive (and any extraction) out of the page
 * cache, but the tools themselves (node, the compiled CLI, tar, find, cat, dd) loaded again, so
 * a cold figure measures reading the image, not loading node from disk.
 */
export async function coldCaches(): Promise<boolean> {
  const dropped = await dropCaches();
  await timed(process.execPath, [BIN, '--help']);
  for (const tool of ['tar', 'find', 'cat', 'dd', 'wc']) await timed(tool, ['--version']);
  return dropped;
}

export const canDropCaches = (): boolean => {
  try {
    fs.accessSync('/proc/sys/vm/drop_caches', fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
};

export function fmtBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}
export const fmtS = (s: number): string => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
export const fmtRate = (bytes: number, s: number): string => `${(bytes / MiB / s).toFixed(0)} MiB/s`;

/** A plain-text table: the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((cell, c) => (cell ?? '').padEnd(widths[c])).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/** The 1-minute load average now, and a warning line when other work competes for the CPUs. */
export function loadNote(startLoad: number): { load: [number, number]; note: string } {
  const end = os.loadavg()[0];
  const cpus = os.cpus().length;
  const busy = Math.max(startLoad, end) > cpus * 0.5 + 0.5;
  return {
    load: [startLoad, end],
    note: `load average at start/end ${startLoad.toFixed(2)} / ${end.toFixed(2)} on ${cpus} CPUs` +
      (busy ? ': other processes were competing for the CPUs, so timings are noisy; rerun on a quiet machine' : ''),
  };
}

export const verdict = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
