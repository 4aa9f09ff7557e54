/**
 * Compressed-layer benchmark (issue 4). For the generated image (>= 1 GiB of file data, 111k tar
 * entries, a 500 MiB pseudo-random file) in gzip form and in zstd form it measures:
 *
 *   1. index time: `ImageView.open` with no index cache (one sequential pass per layer that builds
 *      the tar index and the seek index) vs `gzip -dc LAYER | tar -t` / `zstd -dc LAYER | tar -t`
 *      summed over the layer blobs (unpacked from the archive first, untimed);
 *   2. cold random 4 KiB reads inside the big file (span cache of 1 byte, so nothing is kept;
 *      offsets in descending order, so a zstd decoder left by an earlier read is never ahead of
 *      a later one): median and p99, vs `gzip -dc LAYER | head -c OFFSET` for a few offsets;
 *   3. sequential throughput: the whole big file through `view.read` in 128 KiB requests (default
 *      256 MiB span cache) vs `gzip -dc` / `zstd -dc` of its layer, and `cat` through a mount;
 *   4. the index cache on disk (tar index + seek index, per GiB of uncompressed layer data);
 *   5. open time with an IndexCache, first (index + write) and again (read the cache), and the
 *      mount-ready time of `ocimount --foreground --cache-dir DIR`, first and second.
 *
 * zstd layers written by `zstd -T0` are one frame each, which no decoder can enter in the
 * middle: without an index cache reads decode from the frame start ("frames" mode); with one the
 * index pass keeps a decompressed copy under `<cache>/zstd/` ("spill" mode). Both are measured.
 *
 * The archive and the extracted layers stay in the page cache (24 GiB here): the figures are
 * decompression and engine costs, not disk reads.
 *
 *   npm run build && node dist/bench/compressed.js [--compress gzip,zstd] [--image-gzip FILE]
 *        [--image-zstd FILE] [--reads 200] [--frame-reads 200] [--repeat 2] [--no-mount]
 *        [--keep] [--dir DIR] [generator options]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeEntry, IndexCache } from '../src/cache/index-cache';
import { decodeSeekIndex } from '../src/compress/codecs';
import { ZstdRandomAccess } from '../src/compress/zstd-seek';
import { ImageView } from '../src/engine';
import { EntryType } from '../src/tar/entry';
import { TAR_INDEX_SECTIONS } from '../src/tar/tar-index-codec';
import { describe, generateImage, genOptionsFrom } from './gen-image';
import {
  BenchError, BIN, COMMON_OPTIONS, fmtBytes, fmtRate, fmtS, GiB, intOpt, loadNote, log, MiB, onCleanup, parse, runMain, scratchDir,
  table, timed, timedSh, type Values,
} from './lib';

type Kind = 'gzip' | 'zstd';
const READ = 4096;
const SEQ_REQ = 128 * 1024;

const USAGE = `usage: node dist/bench/compressed.js [--compress gzip,zstd] [--image-gzip FILE] [--image-zstd FILE]
            [--reads N] [--frame-reads N] [--repeat N] [--no-mount] [--keep] [--dir DIR]
            [--files N] [--big-mib N] [--data-mib N]
  --compress LIST   which forms to measure (default gzip,zstd)
  --image-gzip F    use this archive (gzip layers) instead of generating one; same for --image-zstd
  --reads N         cold random 4 KiB reads per mode (default 200)
  --frame-reads N   the same for zstd without the spill file, O(offset) each (default 200)
  --repeat N        repetitions of the index timings (engine and baseline; default 2)
  --no-mount        skip the FUSE part (mount-ready times, cat through the mount)
Scratch data (images, unpacked layers, caches) goes to --dir, $OCIMOUNT_BENCH_DIR or the temp
dir, about 6 GiB for both forms, and is removed at the end unless --keep.
`;

// ---------------------------------------------------------------------------------------------
// small helpers

const now = (): bigint => process.hrtime.bigint();
const since = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;
const sum = (xs: number[]): number => xs.reduce((s, x) => s + x, 0);
const min = (xs: number[]): number => Math.min(...xs);
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const ms = (s: number): string => (s < 0.01 ? `${(s * 1000).toFixed(2)} ms` : s < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`);
const list = (xs: number[], f: (x: number) => string = fmtS): string => xs.map(f).join(' / ');

/** xorshift32, so the read offsets are the same in every run and for both forms. */
function offsets(n: number, size: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.floor(((next() * 2 ** 21 + (next() >>> 11)) / 2 ** 53) * (size - READ)));
  return out;
}

function dirBytes(dir: string, skip?: (rel: string) => boolean, rel = ''): number {
  let n = 0;
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of ents) {
    const r = path.join(rel, e.name);
    if (skip?.(r)) continue;
    if (e.isDirectory()) n += dirBytes(dir, skip, r);
    else if (e.isFile()) n += fs.statSync(path.join(dir, r)).size;
  }
  return n;
}

function filesUnder(dir: string, ext: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && p.endsWith(ext)) out.push(p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

// ---------------------------------------------------------------------------------------------
// the image as the engine sees it

interface BigFile {
  path: string;
  size: number;
  layer: number;
  /** Where the file's data starts in its layer's uncompressed tar stream. */
  dataOffset: number;
}

function findBig(view: ImageView): { node: number; big: BigFile } {
  const tree = view.merged;
  let best = -1;
  let bestSize = -1;
  for (let n = 0; n < tree.nodeCount; n++) {
    if (tree.type(n) !== EntryType.File) continue;
    const size = tree.stat(n).size;
    if (size > bestSize) [best, bestSize] = [n, size];
  }
  if (best < 0) throw new BenchError('no regular file in the merged tree');
  const src = tree.source(best)!;
  const layer = view.layers[src.layerSlot];
  return { node: best, big: { path: tree.path(best), size: bestSize, layer: src.layerSlot, dataOffset: layer.index.dataOffsets[src.entry] } };
}

async function openTimed(archive: string, opts: Parameters<typeof ImageView.open>[1], notes?: string[]): Promise<{ view: ImageView; seconds: number }> {
  const t0 = now();
  const view = await ImageView.open(archive, { ...opts, onNote: (m) => notes?.push(m) });
  return { view, seconds: since(t0) };
}

/** Closes the view and any zstd reader's spill file handle (ImageView.close closes only the archive). */
async function closeView(view: ImageView): Promise<void> {
  for (const l of view.layers) if (l.stream instanceof ZstdRandomAccess) await l.stream.close();
  await view.close();
}

function streamMode(view: ImageView, layer: number): string {
  const s = view.layers[layer].stream;
  return s instanceof ZstdRandomAccess ? s.mode : view.layers[layer].compression === 'gzip' ? 'spans' : 'plain';
}

// ---------------------------------------------------------------------------------------------
// measurements

interface ReadRun {
  mode: string;
  n: number;
  median: number;
  p99: number;
  max: number;
  mean: number;
  /** Latency at each of the probe offsets (file offsets), and the bytes read there. */
  probes: Array<{ offset: number; seconds: number; data: Buffer }>;
}

/**
 * Cold 4 KiB reads: `n` random offsets plus the probe offsets, all in descending order, one at a
 * time; one extra read at the very end of the file first (not counted: it warms code paths).
 */
async function coldReads(view: ImageView, node: number, size: number, n: number, probes: number[]): Promise<ReadRun> {
  const tree = view.merged;
  const buf = Buffer.alloc(READ);
  const probeSet = new Set(probes);
  const all = [...new Set([...offsets(n, size, 0x5eed), ...probes])].sort((a, b) => b - a);
  await view.read(tree, node, buf, 0, READ, size - READ);
  const lat: number[] = [];
  const probeOut: ReadRun['probes'] = [];
  for (const off of all) {
    const t0 = now();
    const got = await view.read(tree, node, buf, 0, READ, off);
    const s = since(t0);
    if (got !== READ) throw new BenchError(`short read at ${off}: ${got}`);
    if (probeSet.has(off)) probeOut.push({ offset: off, seconds: s, data: Buffer.from(buf) });
    else lat.push(s);
  }
  return {
    mode: streamMode(view, tree.source(node)!.layerSlot),
    n: lat.length,
    median: pct(lat, 50),
    p99: pct(lat, 99),
    max: Math.max(...lat),
    mean: sum(lat) / lat.length,
    probes: probeOut.sort((a, b) => a.offset - b.offset),
  };
}

async function sequential(view: ImageView, node: number, size: number): Promise<{ seconds: number; mode: string }> {
  const buf = Buffer.allocUnsafe(SEQ_REQ);
  const t0 = now();
  let pos = 0;
  while (pos < size) {
    const n = await view.read(view.merged, node, buf, 0, Math.min(SEQ_REQ, size - pos), pos);
    if (n <= 0) throw new BenchError(`sequential read stopped at ${pos} of ${size}`);
    pos += n;
  }
  return { seconds: since(t0), mode: streamMode(view, view.merged.source(node)!.layerSlot) };
}

/** The cache dir's index files: tar index and seek index bytes, by decoding each entry. */
function cacheSizes(dir: string): { files: number; bytes: number; tarIndex: number; seekIndex: number; spans: number; spill: number } {
  let tarIndex = 0, seekIndex = 0, bytes = 0, spans = 0;
  const idx = filesUnder(dir, '.idx').filter((f) => !path.relative(dir, f).startsWith('zstd'));
  for (const f of idx) {
    const buf = fs.readFileSync(f);
    bytes += buf.length;
    const e = decodeEntry(buf);
    if (e.meta.what === 'layer index') {
      // The tar index is TAR_INDEX_SECTIONS sections (a head and one per column); the seek index follows.
      for (const sec of e.sections.slice(0, TAR_INDEX_SECTIONS)) tarIndex += sec.length;
      const seek = e.sections[TAR_INDEX_SECTIONS];
      if (seek) {
        seekIndex += seek.length;
        const s = decodeSeekIndex(seek);
        spans += s.kind === 'gzip' ? s.checkpoints.length : s.frames.length;
      }
    }
  }
  return { files: idx.length, bytes, tarIndex, seekIndex, spans, spill: dirBytes(path.join(dir, 'zstd')) };
}

// ---------------------------------------------------------------------------------------------
// the mount

function isMounted(dir: string): boolean {
  const target = path.resolve(dir);
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .some((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === target);
}

interface Server {
  pid: number;
  readySeconds: number;
  stop(): Promise<void>;
}

/** `ocimount --foreground ARGS… IMAGE MNT`, resolved at its "Ctrl-C to unmount" line. */
function startServer(args: string[], archive: string, mnt: string, logFile: string): Promise<Server> {
  const logFd = fs.openSync(logFile, 'a');
  const t0 = now();
  const child = spawn(process.execPath, [BIN, '--foreground', ...args, archive, mnt], { stdio: ['ignore', 'pipe', logFd] });
  fs.closeSync(logFd);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.on('exit', () => {
    exited = true;
    resolve();
  }));
  const tail = () => fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    const waitExit = (t: number) => Promise.race([exit, new Promise((r) => setTimeout(r, t))]);
    const signal = (sig: NodeJS.Signals) => {
      try {
        if (!exited && child.pid) process.kill(child.pid, sig);
      } catch {
        /* it has just exited */
      }
    };
    if (!exited) {
      signal('SIGTERM');
      await waitExit(15_000);
      if (!exited) {
        log(`server ${child.pid} did not exit on SIGTERM: killing it`);
        signal('SIGKILL');
        await waitExit(5_000);
      }
    }
    if (isMounted(mnt)) await timed('fusermount', ['-uz', mnt], { allowFail: true });
  })());
  onCleanup(`stop server ${child.pid} at ${mnt}`, stop);
  return new Promise((resolve, reject) => {
    let out = '';
    let ready = false;
    const timer = setTimeout(() => {
      void stop();
      reject(new BenchError(`ocimount did not report ready within 10 minutes; log ${logFile}:\n${tail()}`));
    }, 600_000);
    child.on('error', (err) => reject(new BenchError(`cannot start ${BIN}: ${err.message}`)));
    child.stdout!.on('data', (b: Buffer) => {
      if (ready) return;
      out += b.toString();
      if (/Ctrl-C to unmount/.test(out)) {
        ready = true;
        clearTimeout(timer);
        resolve({ pid: child.pid!, readySeconds: since(t0), stop });
      }
    });
    void exit.then(() => {
      if (ready) return;
      clearTimeout(timer);
      reject(new BenchError(`ocimount exited before the mount was ready; stdout: ${out.trim() || '(none)'}; log ${logFile}:\n${tail()}`));
    });
  });
}

/** Mounts, optionally cats the big file, unmounts (always, by PID). */
async function mountOnce(args: string[], archive: string, mnt: string, logFile: string, bigPath?: string): Promise<{ ready: number; cat?: number }> {
  const server = await startServer(args, archive, mnt, logFile);
  try {
    let cat: number | undefined;
    if (bigPath) cat = (await timedSh('cat "$1" > /dev/null', path.join(mnt, 'rootfs', bigPath))).seconds;
    return { ready: server.readySeconds, cat };
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------------------------

interface KindResult {
  kind: Kind;
  archive: string;
  archiveBytes: number;
  layers: Array<{ blob: string; storedBytes: number; tarBytes: number; frames?: number }>;
  uncompressedBytes: number;
  big: BigFile;
  index: { engineNoCache: number[]; baseline: number[][]; baselineSum: number[] };
  cache: { firstOpen: number; firstOpens: number[]; againOpen: number[]; sizes: ReturnType<typeof cacheSizes>; notes: string[]; spillDirMade: boolean };
  reads: ReadRun[];
  probeBaseline: Array<{ offset: number; layerOffset: number; seconds: number }>;
  seq: Array<{ mode: string; seconds: number }>;
  seqBaseline: number;
  mount?: { noCache: { ready: number }; first: { ready: number; cat?: number }; second: { ready: number; cat?: number }; cacheBytes: number; spillBytes: number };
  readsMatch: boolean;
}

async function measureKind(kind: Kind, v: Values, scratch: string): Promise<KindResult> {
  const dir = path.join(scratch, kind);
  fs.mkdirSync(dir);
  const repeat = Math.max(1, intOpt(v.repeat, 'repeat', 2));
  const nReads = intOpt(v.reads, 'reads', 200);
  const nFrameReads = intOpt(v['frame-reads'], 'frame-reads', 200);
  const given = v[`image-${kind}`] as string | undefined;
  let archive: string;
  if (given) {
    if (!fs.existsSync(given)) throw new BenchError(`--image-${kind} ${given}: no such file`);
    archive = path.resolve(given);
  } else {
    const opts = { ...genOptionsFrom({ ...v, compress: kind }, path.join(dir, 'image.tar')) };
    log(`${kind}: generating ${opts.files} files, ${opts.dataMiB} MiB of data (big file ${opts.bigMiB} MiB)`);
    const r = generateImage(opts);
    log(describe(r));
    archive = r.path;
  }
  const archiveBytes = fs.statSync(archive).size;
  await timedSh('cat "$1" > /dev/null', archive); // into the page cache: every figure below is warm

  // The layer blobs, unpacked once for the CLI baselines.
  const outer = path.join(dir, 'x-outer');
  fs.mkdirSync(outer);
  await timed('tar', ['-xf', archive, '-C', outer]);
  const manifest = JSON.parse(fs.readFileSync(path.join(outer, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  const blobs = manifest[0].Layers.map((l) => path.join(outer, l));
  const dc = kind === 'gzip' ? 'gzip -dc' : 'zstd -dcq';

  // 1. index time: engine without cache (the last run keeps a 1-byte span cache for the reads)
  // vs `-dc | tar -t`, alternating so that load changes hit both alike.
  const engineNoCache: number[] = [];
  const baseline: number[][] = [];
  let view: ImageView | undefined;
  for (let r = 0; r < repeat; r++) {
    log(`${kind}: ImageView.open without cache (${r + 1}/${repeat})`);
    const last = r === repeat - 1;
    const o = await openTimed(archive, last ? { spanCacheBytes: 1 } : {});
    engineNoCache.push(o.seconds);
    if (last) view = o.view;
    else await closeView(o.view);
    log(`${kind}: ${fmtS(o.seconds)}; ${dc} LAYER | tar -t (${r + 1}/${repeat})`);
    const per: number[] = [];
    for (const b of blobs) per.push((await timedSh(`${dc} "$1" | tar -t > /dev/null`, b)).seconds);
    baseline.push(per);
    log(`${kind}: ${fmtS(sum(per))}`);
  }
  const { node, big } = findBig(view!);
  const layers = view!.layers.map((l, i) => ({ blob: path.relative(outer, blobs[i]), storedBytes: l.storedSize, tarBytes: l.stream.size }));
  const uncompressedBytes = sum(layers.map((l) => l.tarBytes));
  if (kind === 'zstd') {
    for (const [i, b] of blobs.entries()) {
      const r = await timed('zstd', ['-lv', b]);
      const m = /#\s*Zstandard Frames:\s*(\d+)/i.exec(r.stdout) ?? /Frames\s*:?\s*(\d+)/i.exec(r.stdout);
      if (m) (layers[i] as KindResult['layers'][number]).frames = Number(m[1]);
    }
  }

  // 2. cold random reads without an index cache (gzip: spans; zstd: frames from the start).
  const probes = [0, 0.25, 0.5, 0.75].map((f) => Math.floor((f * (big.size - READ)) / 4096) * 4096).concat([big.size - READ]);
  const reads: ReadRun[] = [];
  log(`${kind}: cold 4 KiB reads, no index cache (${kind === 'zstd' ? nFrameReads : nReads} + ${probes.length} probes)`);
  reads.push(await coldReads(view!, node, big.size, kind === 'zstd' ? nFrameReads : nReads, probes));
  await closeView(view!);
  view = undefined;
  log(`${kind}: median ${ms(reads[0].median)}, p99 ${ms(reads[0].p99)} (${reads[0].mode})`);

  // Decompressing the layer from its start up to the probe offsets.
  const probeBaseline: KindResult['probeBaseline'] = [];
  for (const off of probes) {
    const layerOffset = big.dataOffset + off + READ;
    const r = await timedSh(`${dc} "$1" 2>/dev/null | head -c "$2" > /dev/null`, blobs[big.layer], String(layerOffset));
    probeBaseline.push({ offset: off, layerOffset, seconds: r.seconds });
  }

  // 4./5. the index cache: first open writes it (and, for single-frame zstd, the spill file).
  let cacheDir = path.join(dir, 'cache');
  const notes: string[] = [];
  log(`${kind}: ImageView.open with a fresh IndexCache`);
  let o = await openTimed(archive, { cache: new IndexCache(cacheDir) }, notes);
  const firstOpens = [o.seconds];
  await closeView(o.view);
  let sizes = cacheSizes(cacheDir);
  // The engine names its spill file <cache>/zstd/<key>.tar; if it did not manage to write one
  // (e.g. the zstd/ folder does not exist), measure again with the folder made beforehand.
  let spillDirMade = false;
  const wantsSpill = notes.some((n) => /decompressed copy is kept/.test(n));
  if (kind === 'zstd' && wantsSpill && sizes.spill === 0) {
    log(`${kind}: the engine announced a spill file but wrote none; again with ${path.join('cache2', 'zstd')} made beforehand`);
    spillDirMade = true;
    cacheDir = path.join(dir, 'cache2');
    fs.mkdirSync(path.join(cacheDir, 'zstd'), { recursive: true });
    o = await openTimed(archive, { cache: new IndexCache(cacheDir) }, notes);
    firstOpens.push(o.seconds);
    await closeView(o.view);
    sizes = cacheSizes(cacheDir);
  }
  const firstOpen = firstOpens[firstOpens.length - 1];
  const againOpen: number[] = [];
  for (let r = 0; r < repeat; r++) {
    o = await openTimed(archive, { cache: new IndexCache(cacheDir) }, notes);
    againOpen.push(o.seconds);
    await closeView(o.view);
  }
  log(`${kind}: first ${fmtS(firstOpen)}, again ${list(againOpen)}; index ${fmtBytes(sizes.bytes)}, spill ${fmtBytes(sizes.spill)}`);

  // 2b. zstd with the spill file: the same cold reads.
  if (kind === 'zstd') {
    o = await openTimed(archive, { cache: new IndexCache(cacheDir), spanCacheBytes: 1 }, notes);
    log(`${kind}: cold 4 KiB reads with the spill file (${nReads})`);
    reads.push(await coldReads(o.view, node, big.size, nReads, probes));
    await closeView(o.view);
    log(`${kind}: median ${ms(reads[1].median)}, p99 ${ms(reads[1].p99)} (${reads[1].mode})`);
  }

  // 3. sequential reads through view.read: default span cache, from the index cache (spill for
  // zstd), and for zstd also with the spill file turned off (spillMaxBytes 0: frame decoding).
  const seq: KindResult['seq'] = [];
  const seqModes: Array<Parameters<typeof ImageView.open>[1]> = kind === 'zstd' ? [{ spillMaxBytes: 0 }, {}] : [{}];
  for (const extra of seqModes) {
    o = await openTimed(archive, { cache: new IndexCache(cacheDir), ...extra }, notes);
    log(`${kind}: sequential read of ${fmtBytes(big.size)} in 128 KiB requests (${streamMode(o.view, big.layer)})`);
    seq.push(await sequential(o.view, findBig(o.view).node, big.size));
    await closeView(o.view);
    log(`${kind}: ${fmtRate(big.size, seq[seq.length - 1].seconds)}`);
  }
  const seqBaseline = (await timedSh(`${dc} "$1" > /dev/null`, blobs[big.layer])).seconds;

  // 5b. the mount: --no-cache, then a fresh --cache-dir twice (cat of the big file each time).
  let mount: KindResult['mount'];
  if (!v['no-mount']) {
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const mcache = path.join(dir, 'mount-cache');
    if (spillDirMade) fs.mkdirSync(path.join(mcache, 'zstd'), { recursive: true });
    const logFile = path.join(dir, 'server.log');
    log(`${kind}: mount --no-cache`);
    const noCache = await mountOnce(['--no-cache'], archive, mnt, logFile);
    log(`${kind}: ready in ${fmtS(noCache.ready)}; mount --cache-dir (fresh), cat`);
    const first = await mountOnce(['--cache-dir', mcache], archive, mnt, logFile, big.path);
    log(`${kind}: ready in ${fmtS(first.ready)}, cat ${fmtRate(big.size, first.cat!)}; mount --cache-dir again, cat`);
    const second = await mountOnce(['--cache-dir', mcache], archive, mnt, logFile, big.path);
    log(`${kind}: ready in ${fmtS(second.ready)}, cat ${fmtRate(big.size, second.cat!)}`);
    mount = { noCache, first, second, cacheBytes: dirBytes(mcache, (r) => r === 'zstd'), spillBytes: dirBytes(path.join(mcache, 'zstd')) };
  }

  // The probe reads must agree between modes.
  const readsMatch = reads.every((r) => r.probes.every((p, i) => p.data.equals(reads[0].probes[i].data)));
  fs.rmSync(outer, { recursive: true, force: true });
  return {
    kind, archive, archiveBytes, layers, uncompressedBytes, big,
    index: { engineNoCache, baseline, baselineSum: baseline.map(sum) },
    cache: { firstOpen, firstOpens, againOpen, sizes, notes, spillDirMade },
    reads, probeBaseline, seq, seqBaseline, mount, readsMatch,
  };
}

// ---------------------------------------------------------------------------------------------
// report

function report(rs: KindResult[]): string {
  const out: string[] = [];
  for (const r of rs) {
    const frames = r.layers.map((l) => l.frames).filter((f) => f !== undefined);
    out.push(
      `${r.kind}: ${r.archive} (${fmtBytes(r.archiveBytes)}), ${r.layers.length} layers, ` +
        `${fmtBytes(r.uncompressedBytes)} uncompressed -> ${fmtBytes(sum(r.layers.map((l) => l.storedBytes)))} stored` +
        (frames.length ? `, zstd frames per layer: ${frames.join(', ')}` : '') +
        `; big file /${r.big.path} (${fmtBytes(r.big.size)}) in layer ${r.big.layer} at tar offset ${r.big.dataOffset}`,
    );
  }
  out.push('');
  const cols = ['measure', ...rs.map((r) => r.kind), 'notes'];
  const rows: string[][] = [cols];
  const row = (what: string, f: (r: KindResult) => string, note = '') => rows.push([what, ...rs.map(f), note]);
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  row('index: ImageView.open, no cache', (r) => list(r.index.engineNoCache), 'repeats');
  row('index: -dc LAYER | tar -t, all layers', (r) => list(r.index.baselineSum), 'gzip -dc / zstd -dcq, same repeats');
  row('  ratio engine / baseline (best runs)', (r) => ratio(min(r.index.engineNoCache), min(r.index.baselineSum)));
  row('  engine rate (uncompressed)', (r) => fmtRate(r.uncompressedBytes, min(r.index.engineNoCache)));
  const readCell = (x: ReadRun | undefined) => (x ? `${ms(x.median)} / ${ms(x.p99)} (${x.mode})` : 'same as above');
  row('cold 4 KiB read, no index cache: median / p99', (r) => readCell(r.reads[0]), `${rs.map((r) => r.reads[0].n).join('/')} random offsets, 1-byte span cache`);
  row('cold 4 KiB read, with index cache', (r) => readCell(r.reads[1]), 'zstd: pread of the spill file');
  const probeCount = rs[0].probeBaseline.length;
  for (let i = 0; i < probeCount; i++) {
    const off = rs[0].probeBaseline[i].offset;
    row(`read at file offset ${fmtBytes(off)}: -dc | head -c`, (r) => fmtS(r.probeBaseline[i].seconds), `decompress ${fmtBytes(rs[0].probeBaseline[i].layerOffset)} of the layer`);
    row('  engine cold read there', (r) => r.reads.map((x) => `${ms(x.probes[i].seconds)} (${x.mode})`).join(', '));
  }
  row('sequential 128 KiB view.read', (r) => r.seq.map((s) => `${fmtRate(r.big.size, s.seconds)} (${s.mode})`).join(', '), 'default 256 MiB span cache');
  row('  -dc of the big file\'s layer', (r) => fmtRate(r.layers[r.big.layer].tarBytes, r.seqBaseline), 'rate of uncompressed output');
  row('index cache on disk', (r) => fmtBytes(r.cache.sizes.bytes), `${rs.map((r) => r.cache.sizes.files).join('/')} files, without zstd/`);
  row('  tar index / seek index', (r) => `${fmtBytes(r.cache.sizes.tarIndex)} / ${fmtBytes(r.cache.sizes.seekIndex)}`,
    `checkpoints (gzip) / frames (zstd): ${rs.map((r) => r.cache.sizes.spans).join(' / ')}`);
  row('  per GiB uncompressed', (r) => `${fmtBytes(Math.round((r.cache.sizes.bytes / r.uncompressedBytes) * GiB))} (seek ${fmtBytes(Math.round((r.cache.sizes.seekIndex / r.uncompressedBytes) * GiB))})`);
  row('zstd/ spill files', (r) => fmtBytes(r.cache.sizes.spill), 'decompressed copies kept by the index pass');
  row('open with IndexCache: first', (r) => list(r.cache.firstOpens), 'index pass + cache write (+ spill); 2nd figure: zstd/ made beforehand');
  row('open with IndexCache: again', (r) => list(r.cache.againOpen), 'repeats');
  if (rs.some((r) => r.mount)) {
    row('mount ready, --no-cache', (r) => (r.mount ? fmtS(r.mount.noCache.ready) : ''), 'spawn to "Ctrl-C to unmount"');
    row('mount ready, fresh --cache-dir', (r) => (r.mount ? fmtS(r.mount.first.ready) : ''));
    row('mount ready, second (cache)', (r) => (r.mount ? fmtS(r.mount.second.ready) : ''));
    row('cat big file, first / second mount', (r) => (r.mount ? `${fmtRate(r.big.size, r.mount.first.cat!)} / ${fmtRate(r.big.size, r.mount.second.cat!)}` : ''));
    row('mount cache dir: index / spill', (r) => (r.mount ? `${fmtBytes(r.mount.cacheBytes)} / ${fmtBytes(r.mount.spillBytes)}` : ''));
  }
  row('probe bytes equal across modes', (r) => (r.readsMatch ? 'yes' : 'NO'));
  row('spill written only with zstd/ made beforehand', (r) => (r.kind === 'zstd' ? (r.cache.spillDirMade ? 'yes' : 'no') : ''),
    'yes = the engine does not create <cache>/zstd/ itself; the spill figures are with the folder made by this script');
  out.push(table(rows));
  const short = (n: string) => n.replace(/sha256:[0-9a-f]{64}/g, 'sha256:…').replace(/\/[0-9a-f]{64}\.tar/g, '/<key>.tar').replace(/^layer \d+ /, 'layer N ');
  const notes = [...new Set(rs.flatMap((r) => r.cache.notes.map(short)))];
  if (notes.length) out.push('', 'engine notes:', ...notes.map((n) => `  ${n}`));
  return out.join('\n');
}

async function main(): Promise<void> {
  const v = parse({
    ...COMMON_OPTIONS,
    'image-gzip': { type: 'string' },
    'image-zstd': { type: 'string' },
    reads: { type: 'string' },
    'frame-reads': { type: 'string' },
    repeat: { type: 'string' },
    'no-mount': { type: 'boolean', default: false },
  }, USAGE);
  if (v.image) throw new BenchError('use --image-gzip / --image-zstd');
  const kinds = String(v.compress ?? 'gzip,zstd').split(',').map((k) => k.trim()).filter(Boolean);
  for (const k of kinds) if (k !== 'gzip' && k !== 'zstd') throw new BenchError(`--compress: expected gzip and/or zstd, got ${k}`);
  if (!v['no-mount'] && !fs.existsSync(BIN)) throw new BenchError(`${BIN} not found`);
  const startLoad = os.loadavg()[0];
  const scratch = scratchDir(v.dir as string | undefined, !!v.keep);
  const results: KindResult[] = [];
  const loads: number[] = [startLoad];
  for (const k of kinds) {
    results.push(await measureKind(k as Kind, v, scratch));
    loads.push(os.loadavg()[0]);
  }
  const load = loadNote(startLoad);
  process.stdout.write(`${report(results)}\n\nload average (1 min) at start and after each form: ${loads.map((l) => l.toFixed(2)).join(', ')}\n${load.note}\n`);
  const json = {
    bench: 'compressed',
    loadAverage: loads,
    results: results.map((r) => ({
      ...r,
      reads: r.reads.map((x) => ({ ...x, probes: x.probes.map((p) => ({ offset: p.offset, seconds: p.seconds })) })),
    })),
  };
  process.stdout.write(`${JSON.stringify(json)}\n`);
}

if (require.main === module) runMain(main);
