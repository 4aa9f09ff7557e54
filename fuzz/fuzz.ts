/**
 * Fuzzing and long runs for issue 6 (hostile and broken archives).
 *
 *   node dist/fuzz/fuzz.js [mutate] [--iterations N] [--seed S] [--timeout-ms T] [--keep DIR] [--only I] [--json]
 *       Random mutations and truncations of every fixture archive (test/fixtures) and of
 *       archives built here (every layout, pax/GNU names, sparse files, gzip and zstd layers,
 *       a gzip-compressed archive). Each mutated archive is opened with the engine; when it
 *       opens, its merged tree and every layer tree are walked and some files read. Passes when
 *       nothing throws uncaught, nothing hangs (per-iteration timeout), and every rejection is
 *       an Error with a one-line message (a UserError when opening). Prints the rejections by
 *       message. The same seed and iteration number always make the same archive (--only I
 *       re-runs one; --keep DIR saves the inputs of failures).
 *   node dist/fuzz/fuzz.js entries [N]      the many-entries tests of test/hostile.test.ts with N entries (default 1,000,000)
 *   node dist/fuzz/fuzz.js load [SECONDS]   test/load.test.ts with readers running SECONDS (default 60)
 *   node dist/fuzz/fuzz.js bombs            the decompression-bomb tests, including the 2 GiB zstd window
 *   node dist/fuzz/fuzz.js all              all of the above (mutate with 5,000 iterations)
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ImageArchive, ImageView } from '../src/engine';
import { UserError } from '../src/errors';
import { EntryType } from '../src/tar/entry';
import type { Tree } from '../src/union/tree';
import { buildArchive, type EntrySpec } from '../test/helpers/archive-builder';
import { prng } from '../test/helpers/hostile-build';
import { FIXTURES } from '../test/helpers/mount-harness';
import * as raw from '../test/helpers/raw-tar';

const ROOT = path.resolve(__dirname, '..', '..');

export interface FuzzOptions {
  iterations: number;
  seed: number;
  timeoutMs: number;
  keepDir?: string;
  only?: number;
  log?: (line: string) => void;
}

export interface FuzzFailure {
  iteration: number;
  input: string;
  mutation: string;
  what: string;
}

export interface FuzzReport {
  seed: number;
  iterations: number;
  opened: number;
  rejected: number;
  reads: { ok: number; failed: number };
  /** Rejections and read errors grouped by message (paths, digests and numbers folded). */
  messages: Array<{ message: string; count: number }>;
  failures: FuzzFailure[];
  ms: number;
}

// ---------------------------------------------------------------------------------------------
// Corpus

interface Seed {
  name: string;
  bytes: Buffer;
  /** Offsets of tar header blocks: the archive's own and, for plain layers, the layers' too. */
  headers: number[];
  /** [start, end) of JSON members. */
  json: Array<[number, number]>;
}

const richEntries = (tag: string): EntrySpec[] => [
  { path: 'etc/', type: 'dir', mode: 0o755 },
  { path: 'etc/os-release', content: `ID=${tag}\n` },
  { path: 'bin/', type: 'dir' },
  { path: 'bin/tool', content: Buffer.alloc(70_000, 7), mode: 0o4755 },
  { path: 'bin/alias', type: 'link', target: 'bin/tool' },
  { path: 'bin/sh', type: 'symlink', target: '/bin/tool' },
  { path: `usr/share/${'long-name-'.repeat(14)}/x`, content: 'pax name' },
  { path: `usr/share/${'gnu-long-'.repeat(14)}`, content: 'gnu name', longNameStyle: 'gnu' },
  { path: 'usr/lib/cap', content: 'caps', xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0]), 'user.note': 'x' } },
  { path: 'dev/', type: 'dir' },
  { path: 'dev/null', type: 'char', devmajor: 1, devminor: 3 },
  { path: 'run/fifo', type: 'fifo' },
];
const upperEntries: EntrySpec[] = [
  { path: 'etc/.wh.os-release', content: '' },
  { path: 'usr/.wh..wh..opq', content: '' },
  { path: 'usr/new', content: 'upper' },
  { path: 'bin/tool', content: 'replaced' },
];

function sparseLayer(): Buffer {
  const chunks = [{ offset: 0, data: Buffer.alloc(1024, 1) }, { offset: 8192, data: Buffer.alloc(700, 2) }];
  return raw.concatTar([
    raw.oldGnuSparse('sparse/old', 20_000, chunks),
    raw.paxSparse10('sparse/pax10', 30_000, chunks),
    raw.gnuLong('L', `gnu/${'n'.repeat(150)}`),
    raw.entry({ name: 'ignored', format: 'gnu' }, Buffer.from('gnu long')),
    raw.paxHeader([['path', 'pax/caf\u00e9'], ['mtime', '1700000000.25'], ['uid', '70000']]),
    raw.entry({ name: 'x' }, Buffer.from('pax')),
    raw.entry({ name: 'b256', uid: 0o7777777 + 5, base256: ['uid', 'size'] }, Buffer.from('base-256')),
  ]);
}

async function buildCorpus(dir: string): Promise<Array<{ name: string; file: string }>> {
  const built: Array<{ name: string; file: string }> = [];
  const two = [{ entries: richEntries('lower') }, { entries: upperEntries }];
  const add = async (name: string, opts: Parameters<typeof buildArchive>[1]) => {
    const file = path.join(dir, `${name}.tar`);
    await buildArchive(file, opts);
    built.push({ name, file });
  };
  await add('built-docker25', { layout: 'docker25', images: [{ layers: two, tags: ['fuzz:1'] }] });
  await add('built-legacy-two-images', { layout: 'docker-legacy', images: [{ layers: two, tags: ['a:1'] }, { layers: [{ entries: richEntries('b') }], tags: ['b:1'] }] });
  await add('built-oci-gzip', { layout: 'oci-archive', images: [{ layers: [{ entries: richEntries('gz'), compression: 'gzip' }, { entries: upperEntries, compression: 'gzip' }] }] });
  await add('built-oci-zstd', { layout: 'oci-archive', images: [{ layers: [{ entries: richEntries('zst'), compression: 'zstd' }] }] });
  await add('built-multi-platform', { layout: 'oci-archive', multiPlatform: true, images: [{ layers: [{ entries: richEntries('amd') }] }, { layers: [{ entries: richEntries('arm') }], architecture: 'arm64' }] });
  await add('built-kaniko', { layout: 'kaniko', images: [{ layers: two }] });
  await add('built-pre110', { layout: 'docker-pre110', images: [{ layers: two, tags: ['old:1'] }] });
  await add('built-sparse-gnu', { layout: 'docker-legacy', images: [{ layers: [{ entries: sparseLayer() }] }] });
  await add('built-outer-gzip', { layout: 'docker-legacy', outerCompression: 'gzip', images: [{ layers: two }] });
  return built;
}

/** Header offsets and JSON ranges of an uncompressed tar (and of plain tars inside it). */
function survey(bytes: Buffer, base = 0, depth = 0, out: Seed = { name: '', bytes, headers: [], json: [] }): Seed {
  for (let pos = 0; pos + 512 <= bytes.length; ) {
    const h = bytes.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    if (h.toString('latin1', 257, 262) !== 'ustar') break;
    out.headers.push(base + pos);
    const sizeField = h.subarray(124, 136);
    let size = 0;
    if (sizeField[0] & 0x80) for (let i = 1; i < 12; i++) size = size * 256 + sizeField[i];
    else size = parseInt(sizeField.toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8) || 0;
    const flag = String.fromCharCode(h[156]);
    const data = bytes.subarray(pos + 512, pos + 512 + size);
    if ((flag === '0' || flag === '\0') && size > 0) {
      if (data[0] === 0x7b || data[0] === 0x5b) out.json.push([base + pos + 512, base + pos + 512 + size]);
      else if (depth === 0 && size >= 1024 && data.toString('latin1', 257, 262) === 'ustar') survey(data, base + pos + 512, depth + 1, out);
    }
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function loadSeeds(built: Array<{ name: string; file: string }>): Seed[] {
  const files = [
    ...fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.tar')).sort().map((f) => ({ name: f.replace(/\.tar$/, ''), file: path.join(FIXTURES, f) })),
    ...built,
  ];
  return files.map(({ name, file }) => {
    const bytes = fs.readFileSync(file);
    return { ...survey(bytes), name, bytes };
  });
}

// ---------------------------------------------------------------------------------------------
// Mutations

const FIELDS: Array<[string, number, number]> = [
  ['name', 0, 100], ['mode', 100, 8], ['uid', 108, 8], ['gid', 116, 8], ['size', 124, 12], ['mtime', 136, 12],
  ['chksum', 148, 8], ['typeflag', 156, 1], ['linkname', 157, 100], ['magic', 257, 8], ['uname', 265, 32],
  ['gname', 297, 32], ['devmajor', 329, 8], ['devminor', 337, 8], ['prefix', 345, 155], ['sparse', 386, 126],
];

function fixChecksum(buf: Buffer, at: number): void {
  if (at + 512 > buf.length) return;
  const block = buf.subarray(at, at + 512);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += block[i];
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
}

type Rand = () => number;
const int = (rand: Rand, n: number) => Math.floor(rand() * n);
const pick = <T>(rand: Rand, xs: readonly T[]): T => xs[int(rand, xs.length)];

function fieldValue(rand: Rand, field: string, width: number): Buffer {
  const b = Buffer.alloc(width);
  const octal = (n: number) => Buffer.from(n.toString(8).padStart(width - 1, '0').slice(-(width - 1)) + '\0', 'latin1');
  switch (int(rand, 7)) {
    case 0: return octal(int(rand, 2 ** 20));
    case 1: return octal(8 ** (width - 1) - 1); // the largest octal
    case 2: {
      b[0] = 0x80; // base-256, possibly enormous
      for (let i = 1; i < width; i++) b[i] = int(rand, 256);
      return b;
    }
    case 3: return Buffer.from(pick(rand, ['-1', ' ', 'zz', '1e9', '0x10', '\u00ff\u00fe'] as const).padEnd(width, '\0'), 'latin1').subarray(0, width);
    case 4:
      if (field === 'typeflag') return Buffer.from(pick(rand, ['0', '1', '2', '3', '4', '5', '6', '7', 'g', 'x', 'L', 'K', 'S', 'V', 'D', 'A', 'M', '\0'] as const), 'latin1');
      return Buffer.from(pick(rand, ['../../etc/passwd', '/', '.wh..wh..opq', '.wh...', 'a/b/../../..', '\u0001\n', '\u00ff'] as const).padEnd(width, '\0'), 'latin1').subarray(0, width);
    case 5: return Buffer.alloc(width, pick(rand, [0, 0x20, 0x30, 0xff] as const));
    default:
      for (let i = 0; i < width; i++) b[i] = int(rand, 256);
      return b;
  }
}

/** One to three mutations of a copy of `seed`; `describe` says what was done. */
export function mutate(seed: Seed, rand: Rand): { bytes: Buffer; describe: string } {
  let buf = Buffer.from(seed.bytes);
  const done: string[] = [];
  const count = 1 + int(rand, 3);
  for (let k = 0; k < count; k++) {
    const kind = pick(rand, ['header', 'header', 'header', 'bits', 'json', 'truncate', 'fill', 'block', 'splice', 'append'] as const);
    switch (kind) {
      case 'bits': {
        const flips = 1 + int(rand, 8);
        for (let i = 0; i < flips; i++) buf[int(rand, buf.length)] ^= 1 << int(rand, 8);
        done.push(`flip ${flips} bits`);
        break;
      }
      case 'header': {
        if (!seed.headers.length) break;
        const at = pick(rand, seed.headers);
        if (at + 512 > buf.length) break;
        const [field, off, width] = pick(rand, FIELDS);
        fieldValue(rand, field, width).copy(buf, at + off);
        const fix = rand() < 0.8;
        if (fix) fixChecksum(buf, at);
        done.push(`header@${at} ${field}${fix ? '' : ' (bad checksum)'}`);
        break;
      }
      case 'json': {
        if (!seed.json.length) break;
        const [start, end] = pick(rand, seed.json);
        const n = 1 + int(rand, 4);
        for (let i = 0; i < n; i++) buf[start + int(rand, end - start)] = pick(rand, [...'{}[]":,0123456789abcdef/.\\ -'].map((c) => c.charCodeAt(0)));
        done.push(`json@${start} ${n} bytes`);
        break;
      }
      case 'truncate': {
        const at = rand() < 0.5 && seed.headers.length ? Math.min(buf.length, pick(rand, seed.headers) + int(rand, 1024)) : int(rand, buf.length);
        buf = buf.subarray(0, at);
        done.push(`truncate at ${at}`);
        break;
      }
      case 'fill': {
        const at = int(rand, buf.length);
        const len = 1 + int(rand, 4096);
        buf.fill(pick(rand, [0, 0xff, 0x20] as const), at, Math.min(buf.length, at + len));
        done.push(`fill ${len}@${at}`);
        break;
      }
      case 'block': {
        if (buf.length < 2048) break;
        const from = int(rand, buf.length / 512) * 512;
        const to = seed.headers.length && rand() < 0.5 ? pick(rand, seed.headers) : int(rand, buf.length / 512) * 512;
        buf.copy(buf, to, from, Math.min(from + 512, buf.length));
        done.push(`copy block ${from}->${to}`);
        break;
      }
      case 'splice': {
        const at = int(rand, buf.length);
        if (rand() < 0.5) {
          const ins = Buffer.alloc(1 + int(rand, 700));
          for (let i = 0; i < ins.length; i++) ins[i] = int(rand, 256);
          buf = Buffer.concat([buf.subarray(0, at), ins, buf.subarray(at)]);
          done.push(`insert ${ins.length}@${at}`);
        } else {
          const len = 1 + int(rand, 700);
          buf = Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(buf.length, at + len))]);
          done.push(`delete ${len}@${at}`);
        }
        break;
      }
      case 'append': {
        const junk = Buffer.alloc(1 + int(rand, 5000));
        for (let i = 0; i < junk.length; i++) junk[i] = int(rand, 256);
        buf = Buffer.concat([buf, junk]);
        done.push(`append ${junk.length}`);
        break;
      }
    }
  }
  return { bytes: buf, describe: done.join(', ') || 'unchanged' };
}

// ---------------------------------------------------------------------------------------------
// Probing one archive

class Failure extends Error {}

function checkError(err: unknown, where: string, mustBeUserError: boolean): string {
  if (!(err instanceof Error)) throw new Failure(`${where}: rejected with a non-Error: ${String(err)}`);
  const message = err.message;
  if (typeof message !== 'string' || message.trim() === '') throw new Failure(`${where}: an Error without a message (${err.constructor.name})`);
  if (message.includes('\n')) throw new Failure(`${where}: a message of more than one line: ${JSON.stringify(message.slice(0, 300))}`);
  if (mustBeUserError && !(err instanceof UserError)) {
    throw new Failure(`${where}: ${err.constructor.name} instead of a UserError (the CLI would print an internal error): ${message.slice(0, 300)}\n${err.stack?.split('\n').slice(1, 4).join('\n')}`);
  }
  return message;
}

interface ProbeResult {
  opened: number;
  rejections: string[];
  readsOk: number;
  readErrors: string[];
}

const READ_BUF = Buffer.alloc(64 * 1024);

async function exercise(view: ImageView, tree: Tree, maxReads: number, res: ProbeResult): Promise<void> {
  const files: number[] = [];
  let walked = 0;
  for (const node of tree.walk()) {
    if (++walked > 200_000) break;
    const st = tree.stat(node);
    if (!Number.isFinite(st.size) || st.size < 0) throw new Failure(`${tree.path(node)}: size ${st.size}`);
    tree.symlinkTarget(node);
    tree.xattrs(node);
    if (st.type === EntryType.File && files.length < maxReads) files.push(node);
  }
  for (const node of files) {
    const size = tree.stat(node).size;
    for (const pos of [0, Math.max(0, size - 4096)]) {
      try {
        await view.read(tree, node, READ_BUF, 0, READ_BUF.length, pos);
        res.readsOk++;
      } catch (err) {
        res.readErrors.push(checkError(err, `read ${tree.path(node)} at ${pos}`, false));
      }
    }
  }
}

async function probe(file: string): Promise<ProbeResult> {
  const res: ProbeResult = { opened: 0, rejections: [], readsOk: 0, readErrors: [] };
  let images = 1;
  try {
    const archive = await ImageArchive.open(file);
    images = Math.max(1, Math.min(3, archive.records.length));
    await archive.close();
  } catch (err) {
    res.rejections.push(checkError(err, 'open', true));
    return res;
  }
  for (let i = 0; i < images; i++) {
    let view: ImageView;
    try {
      view = await ImageView.open(file, { image: String(i) });
    } catch (err) {
      res.rejections.push(checkError(err, `open image ${i}`, true));
      continue;
    }
    res.opened++;
    try {
      await exercise(view, view.merged, 24, res);
      for (let p = 0; p < Math.min(view.layers.length, 16); p++) await exercise(view, view.layerTree(p), 3, res);
    } finally {
      await view.close();
    }
  }
  return res;
}

/** Folds what varies (paths, digests, numbers) so messages group by kind. */
function normalize(message: string, file: string): string {
  return message
    .split(file).join('ARCHIVE')
    .replace(/sha256:[0-9a-f]{64}/g, 'sha256:…')
    .replace(/[0-9a-f]{64}/g, '<hex>')
    .replace(/"[^"]*"/g, '"…"')
    .replace(/\d+/g, 'N')
    .slice(0, 200);
}

// ---------------------------------------------------------------------------------------------

export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const log = opts.log ?? (() => undefined);
  const started = Date.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ocimount-fuzz-'));
  const report: FuzzReport = { seed: opts.seed, iterations: 0, opened: 0, rejected: 0, reads: { ok: 0, failed: 0 }, messages: [], failures: [], ms: 0 };
  const counts = new Map<string, number>();
  let current: { iteration: number; input: string; mutation: string } | undefined;
  const onUncaught = (err: unknown) => {
    report.failures.push({ ...(current ?? { iteration: -1, input: '', mutation: '' }), what: `uncaught: ${(err as Error)?.stack ?? String(err)}` });
  };
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  try {
    const seeds = loadSeeds(await buildCorpus(tmp));
    const input = path.join(tmp, 'input.tar');
    const first = opts.only ?? 0;
    const last = opts.only ?? opts.iterations - 1;
    for (let i = first; i <= last; i++) {
      const rand = prng(opts.seed * 1_000_003 + i);
      const seed = seeds[i % seeds.length];
      const { bytes, describe } = mutate(seed, rand);
      fs.writeFileSync(input, bytes);
      current = { iteration: i, input: seed.name, mutation: describe };
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Failure(`no answer after ${opts.timeoutMs} ms (a hang)`)), opts.timeoutMs);
      });
      try {
        const res = await Promise.race([probe(input), timeout]);
        report.opened += res.opened;
        report.rejected += res.rejections.length;
        report.reads.ok += res.readsOk;
        report.reads.failed += res.readErrors.length;
        for (const m of [...res.rejections, ...res.readErrors.map((e) => `read: ${e}`)]) {
          const key = normalize(m, input);
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
      } catch (err) {
        const what = err instanceof Failure ? err.message : `threw outside the checks: ${(err as Error)?.stack ?? String(err)}`;
        report.failures.push({ ...current, what });
        if (opts.keepDir) {
          fs.mkdirSync(opts.keepDir, { recursive: true });
          fs.copyFileSync(input, path.join(opts.keepDir, `fuzz-${opts.seed}-${i}-${seed.name}.tar`));
        }
        log(`FAIL iteration ${i} (${seed.name}: ${describe}): ${what.split('\n')[0]}`);
        if (/a hang/.test(what)) {
          // The hung work cannot be cancelled; stop here with what we have.
          report.iterations++;
          break;
        }
      } finally {
        clearTimeout(timer);
      }
      report.iterations++;
      if (report.iterations % 100 === 0) log(`${report.iterations} iterations, ${report.failures.length} failures`);
    }
  } finally {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  report.messages = [...counts].map(([message, count]) => ({ message, count })).sort((a, b) => b.count - a.count);
  report.ms = Date.now() - started;
  return report;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Runs one of the test files with extra environment, inheriting the terminal. */
function runTests(file: string, env: Record<string, string>, pattern?: string): number {
  const args = ['--test', '--test-reporter=spec', ...(pattern ? ['--test-name-pattern', pattern] : []), path.join(ROOT, 'dist', 'test', file)];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  return r.status ?? 1;
}

async function main(argv: string[]): Promise<number> {
  const mode = argv[0] && !argv[0].startsWith('--') ? argv.shift()! : 'mutate';
  switch (mode) {
    case 'mutate': {
      const report = await runFuzz({
        iterations: Number(flag(argv, '--iterations') ?? 1000),
        seed: Number(flag(argv, '--seed') ?? 1),
        timeoutMs: Number(flag(argv, '--timeout-ms') ?? 30_000),
        keepDir: flag(argv, '--keep'),
        only: flag(argv, '--only') === undefined ? undefined : Number(flag(argv, '--only')),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(report)}\n`);
      else {
        process.stdout.write(`seed ${report.seed}: ${report.iterations} iterations in ${(report.ms / 1000).toFixed(1)} s; ${report.opened} images opened, ${report.rejected} rejected; reads ${report.reads.ok} ok, ${report.reads.failed} failed\n`);
        process.stdout.write('rejections and read errors by message:\n');
        for (const m of report.messages) process.stdout.write(`${String(m.count).padStart(7)}  ${m.message}\n`);
        process.stdout.write(report.failures.length ? `${report.failures.length} FAILURES:\n${report.failures.map((f) => `  #${f.iteration} ${f.input} [${f.mutation}]: ${f.what}`).join('\n')}\n` : 'no failures\n');
      }
      return report.failures.length ? 1 : 0;
    }
    case 'entries':
      return runTests('hostile.test.js', { OCIMOUNT_HOSTILE_ENTRIES: String(Number(argv[0] ?? 1_000_000)) }, 'very many entries');
    case 'load':
      return runTests('load.test.js', { OCIMOUNT_LOAD_SECONDS: String(Number(argv[0] ?? 60)) }, 'parallel readers|killed');
    case 'bombs':
      return runTests('load.test.js', { OCIMOUNT_BOMB_WINDOW: '1' }, 'bomb|window');
    case 'all': {
      let status = await main(['mutate', '--iterations', '5000', ...argv]);
      for (const m of [['entries'], ['load'], ['bombs']]) status = (await main(m)) || status;
      return status;
    }
    default:
      process.stderr.write(`unknown mode ${mode}; see the comment at the top of fuzz/fuzz.ts\n`);
      return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(70);
    },
  );
}
