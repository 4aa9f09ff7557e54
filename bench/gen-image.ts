/**
 * Writes a synthetic legacy `docker save` archive for the benchmarks, streamed to disk:
 *
 *   layer 0 "base"  ~55% of the small files (package trees under usr/, etc/, var/), .so symlinks, hard links
 *   layer 1 "app"   ~30% of the small files (app/, node_modules) and medium files filling up to --data-mib
 *   layer 2 "data"  one big file (--big-mib) of pseudo-random bytes plus a few small ones
 *   layer 3 "upper" ~15% new small files, overwrites of lower files, whiteouts (files, whole
 *                   directories) and one opaque directory
 *
 * Layer tars are written with hand-made ustar headers (GNU 'L'/'K' records only for names that
 * do not fit ustar's prefix/name split and link targets over 100 bytes). Uncompressed layers go straight into the outer tar (their
 * size is computed up front); with --compress each layer is written to a temp file, compressed
 * with the gzip or zstd CLI and copied in. The diff_ids are the sha256 of the uncompressed
 * layer tars. The output is deterministic for a given --seed.
 *
 *   node dist/bench/gen-image.js --out /tmp/image.tar [--files 100000] [--big-mib 500]
 *        [--data-mib 1100] [--compress none|gzip|zstd] [--seed 1]
 */
import { spawnSync } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchError, COMMON_OPTIONS, intOpt, log, MiB, parse, runMain, fmtBytes, fmtS } from './lib';

export type Compression = 'none' | 'gzip' | 'zstd';

export interface GenOptions {
  out: string;
  /** Small regular files over all layers (total entries come out ~10% higher: dirs, links, whiteouts). */
  files?: number;
  bigMiB?: number;
  /** Total regular-file bytes to reach; medium files fill what small files and the big one leave. */
  dataMiB?: number;
  compress?: Compression;
  seed?: number;
  /** Cap on each small file's size (default none: 0-64 KiB); the scale benchmark makes millions of tiny files. */
  smallMaxBytes?: number;
}

export interface GenResult {
  path: string;
  archiveBytes: number;
  compress: Compression;
  layers: Array<{ diffId: string; blob: string; entries: number; tarBytes: number; storedBytes: number }>;
  entries: number;
  regularFiles: number;
  fileBytes: number;
  bigFile: { path: string; size: number; layer: number };
  seconds: number;
}

// ---------------------------------------------------------------------------------------------
// Deterministic pseudo-random numbers (xorshift32)

class Rng {
  constructor(private s: number) {
    if (!this.s) this.s = 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
}

/**
 * Fills buf[off, off+len) with pseudo-random bytes of 6 bits of entropy each (every byte masked
 * with 0x3f): not all-zero, never repeating, and compressible like typical binaries (~75%).
 * `state` carries the generator across calls so a big file is one continuous stream.
 */
function fillRandom(buf: Buffer, off: number, len: number, state: { s: number }): void {
  let x = state.s;
  let i = off;
  const end = off + len;
  while (i < end && (buf.byteOffset + i) % 4 !== 0) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    buf[i++] = x & 0x3f;
  }
  const words = (end - i) >>> 2;
  const u32 = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
  for (let w = 0; w < words; w++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    u32[w] = x & 0x3f3f3f3f;
  }
  i += words * 4;
  while (i < end) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    buf[i++] = x & 0x3f;
  }
  state.s = x >>> 0 || 1;
}

const WORDS = ('core net http util data proto config log cache auth json xml test io sys module ext api client server ' +
  'worker event stream buffer crypto hash time path file string list map tree node graph parse render view model store ' +
  'queue signal socket thread pool codec image font locale shell term color mime zlib ssl tls dns url uuid yaml toml ' +
  'regex unicode math random async sync retry timer metric trace debug error format schema valid query index table ' +
  'record field token lexer ast compile link load plugin hook task job batch shard chunk block page frame packet').split(' ');
const EXTS = ['.py', '.pyc', '.js', '.ts', '.d.ts', '.json', '.h', '.c', '.so', '.a', '.txt', '.md', '.html', '.css', '.go', '.rb', '.pl', '.mo', '.gz', '.xml', '.yml', '.conf', '.sh', '.pem'];

/** ~1 MiB of source-like text that small files are cut from. */
function makeText(rng: Rng): Buffer {
  const lines: string[] = [];
  let n = 0;
  while (n < MiB + 70 * 1024) {
    const a = rng.pick(WORDS), b = rng.pick(WORDS), c = rng.pick(WORDS);
    const l = rng.int(3) === 0 ? `def ${a}_${b}(${c}, *args):\n    return ${c}.${a}(${rng.int(1000)})\n` : `# ${a} ${b} ${c}: handles the ${b} of ${c} ${a}s\n`;
    lines.push(l);
    n += l.length;
  }
  return Buffer.from(lines.join(''), 'latin1');
}

// ---------------------------------------------------------------------------------------------
// The plan: every entry of every layer, as metadata only

const enum T { File = '0', Hard = '1', Sym = '2', Dir = '5' }

interface Ent {
  path: string;
  type: T;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  link?: string;
  /** How the data is made: a cut of the text block or pseudo-random bytes; the seed picks which. */
  fill?: 'text' | 'rand';
  seed: number;
}

class LayerPlan {
  readonly ents: Ent[] = [];
  private readonly dirs = new Set<string>();
  readonly paths = new Set<string>();
  constructor(readonly name: string, readonly createdBy: string) {}

  dir(p: string, mtime: number): void {
    if (!p || this.dirs.has(p)) return;
    this.dir(path.posix.dirname(p) === '.' ? '' : path.posix.dirname(p), mtime);
    this.dirs.add(p);
    this.ents.push({ path: p, type: T.Dir, size: 0, mode: 0o755, uid: 0, gid: 0, mtime, seed: 0 });
  }
  add(e: Ent): void {
    const parent = path.posix.dirname(e.path);
    if (parent !== '.') this.dir(parent, e.mtime);
    this.paths.add(e.path);
    this.ents.push(e);
  }
}

const MTIME = 1_700_000_000;

let smallCap = Infinity;
function smallSize(rng: Rng): number {
  return Math.min(smallCap, smallSizeUncapped(rng));
}
function smallSizeUncapped(rng: Rng): number {
  const u = rng.int(100);
  if (u < 5) return 0;
  if (u < 70) return 100 + rng.int(1948);
  if (u < 95) return 2048 + rng.int(14 * 1024);
  return 16 * 1024 + rng.int(48 * 1024);
}

function fileName(rng: Rng): string {
  const parts = 1 + rng.int(3);
  const words: string[] = [];
  for (let i = 0; i < parts; i++) words.push(rng.pick(WORDS));
  return words.join(rng.int(2) ? '_' : '-') + rng.pick(EXTS);
}

/** Package-like trees of small files under `roots` until `count` files exist; returns the package dirs. */
function addPackages(layer: LayerPlan, rng: Rng, roots: string[], count: number, files: Ent[], withLinks: boolean): string[] {
  const pkgs: string[] = [];
  let made = 0;
  let pkgNo = 0;
  while (made < count) {
    const root = rng.pick(roots);
    const pkg = `${root}/${rng.pick(WORDS)}-${rng.pick(WORDS)}-${1 + rng.int(9)}.${rng.int(20)}.${pkgNo++}`;
    const mtime = MTIME + rng.int(86400 * 30);
    const dirs = [pkg];
    pkgs.push(pkg);
    for (let k = rng.int(6); k > 0; k--) dirs.push(`${rng.pick(dirs)}/${rng.pick(WORDS)}${rng.int(2) ? '' : `_${rng.pick(WORDS)}`}`);
    for (const d of dirs) {
      layer.dir(d, mtime);
      for (let j = 3 + rng.int(25); j > 0 && made < count; j--) {
        const p = `${d}/${fileName(rng)}`;
        if (layer.paths.has(p)) continue;
        const exec = p.endsWith('.so') || p.endsWith('.sh');
        const e: Ent = { path: p, type: T.File, size: smallSize(rng), mode: exec ? 0o755 : 0o644, uid: 0, gid: 0, mtime, fill: 'text', seed: rng.next() };
        layer.add(e);
        files.push(e);
        made++;
        if (withLinks && p.endsWith('.so') && !layer.paths.has(`${p}.1`)) {
          layer.add({ path: `${p}.1`, type: T.Sym, size: 0, mode: 0o777, uid: 0, gid: 0, mtime, link: path.posix.basename(p), seed: 0 });
        }
        if (withLinks && made % 500 === 0 && !layer.paths.has(`${p}.hardlink`)) {
          layer.add({ path: `${p}.hardlink`, type: T.Hard, size: 0, mode: e.mode, uid: 0, gid: 0, mtime, link: p, seed: 0 });
        }
      }
    }
  }
  return pkgs;
}

function planImage(o: Required<Omit<GenOptions, 'out' | 'compress' | 'smallMaxBytes'>>): { layers: LayerPlan[]; big: Ent } {
  const rng = new Rng(o.seed * 2654435761);
  const base = new LayerPlan('base', '/bin/sh -c #(nop) ADD file:rootfs.tar in / ');
  const app = new LayerPlan('app', 'COPY app/ /app/ # buildkit');
  const data = new LayerPlan('data', 'COPY model.bin /opt/data/ # buildkit');
  const upper = new LayerPlan('upper', 'RUN /bin/sh -c apt-get purge -y docs && app --warm-cache # buildkit');

  const baseFiles: Ent[] = [];
  const appFiles: Ent[] = [];
  const nBase = Math.round(o.files * 0.55);
  const nApp = Math.round(o.files * 0.3);
  const basePkgs = addPackages(base, rng, ['usr/lib/python3.11/site-packages', 'usr/share/doc', 'usr/lib/x86_64-linux-gnu', 'usr/share/locale',
    'usr/include', 'usr/share/man/man3', 'var/lib/dpkg/info', 'usr/share/perl5', 'etc'], nBase, baseFiles, true);
  const appPkgs = addPackages(app, rng, ['app/node_modules', 'app/node_modules/@scope', 'app/src', 'app/vendor', 'usr/local/lib/node_modules'], nApp, appFiles, false);

  // Data layer: the big file; medium files in the app layer make up the rest of --data-mib.
  const big: Ent = { path: `opt/data/model-${o.bigMiB}m.bin`, type: T.File, size: o.bigMiB * MiB, mode: 0o644, uid: 1000, gid: 1000, mtime: MTIME + 90000, fill: 'rand', seed: rng.next() };
  data.add(big);
  for (let i = 0; i < 20; i++) data.add({ path: `opt/data/meta/part-${i}.json`, type: T.File, size: smallSize(rng), mode: 0o644, uid: 1000, gid: 1000, mtime: big.mtime, fill: 'text', seed: rng.next() });

  // Upper layer: overwrites, whiteouts of files and whole directories, an opaque directory, new files.
  const mt = MTIME + 200000;
  const touched = new Set<string>();
  const lowerFiles = [...baseFiles, ...appFiles];
  for (let i = 0; i < Math.min(500, lowerFiles.length >> 4); i++) {
    const f = rng.pick(lowerFiles);
    if (touched.has(f.path)) continue;
    touched.add(f.path);
    upper.add({ ...f, mtime: mt, seed: rng.next(), size: smallSize(rng) });
  }
  for (let i = 0; i < Math.min(300, baseFiles.length >> 4); i++) {
    const f = rng.pick(baseFiles);
    if (touched.has(f.path)) continue;
    touched.add(f.path);
    upper.add({ path: `${path.posix.dirname(f.path)}/.wh.${path.posix.basename(f.path)}`, type: T.File, size: 0, mode: 0o644, uid: 0, gid: 0, mtime: mt, seed: 0 });
  }
  for (const d of basePkgs.slice(1, 4)) {
    upper.add({ path: `${path.posix.dirname(d)}/.wh.${path.posix.basename(d)}`, type: T.File, size: 0, mode: 0o644, uid: 0, gid: 0, mtime: mt, seed: 0 });
  }
  const opaque = appPkgs[0];
  if (opaque) {
    upper.add({ path: `${opaque}/.wh..wh..opq`, type: T.File, size: 0, mode: 0o644, uid: 0, gid: 0, mtime: mt, seed: 0 });
    for (let i = 0; i < 5; i++) upper.add({ path: `${opaque}/rebuilt-${i}.js`, type: T.File, size: smallSize(rng), mode: 0o644, uid: 0, gid: 0, mtime: mt, fill: 'text', seed: rng.next() });
  }
  const newFiles: Ent[] = [];
  addPackages(upper, rng, ['app/cache', 'var/log/app', 'srv/www/static'], o.files - nBase - nApp, newFiles, false);

  let bytes = 0;
  for (const l of [base, app, data, upper]) for (const e of l.ents) if (e.type === T.File) bytes += e.size;
  const fill = o.dataMiB * MiB - bytes;
  const mediumSize = 16 * MiB;
  for (let i = 0; i * mediumSize < fill; i++) {
    app.add({ path: `app/assets/bundle-${String(i).padStart(3, '0')}.bin`, type: T.File, size: mediumSize, mode: 0o644, uid: 0, gid: 0, mtime: MTIME + 50000, fill: 'rand', seed: rng.next() });
  }
  return { layers: [base, app, data, upper], big };
}

// ---------------------------------------------------------------------------------------------
// Tar encoding

const BLOCK = 512;
const pad = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK;

/** Where a ustar name splits into prefix/name, or -1 when it needs a GNU long-name record. */
function ustarSplit(name: string): number {
  const len = Buffer.byteLength(name);
  if (len <= 100) return 0;
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    if (Buffer.byteLength(name.slice(0, i)) <= 155 && Buffer.byteLength(name.slice(i + 1)) <= 100) return i;
  }
  return -1;
}

function tarName(e: Ent): string {
  return e.type === T.Dir ? `${e.path}/` : e.path;
}

/** Bytes an entry takes in the tar, headers and padded data. */
function entryBytes(e: Ent): number {
  const name = tarName(e);
  let n = BLOCK + e.size + pad(e.size);
  const long = (s: string) => BLOCK + Buffer.byteLength(s) + 1 + pad(Buffer.byteLength(s) + 1);
  if (ustarSplit(name) < 0) n += long(name);
  if (e.link && Buffer.byteLength(e.link) > 100) n += long(e.link);
  return n;
}

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

function header(buf: Buffer, off: number, name: string, type: string, size: number, mode: number, uid: number, gid: number, mtime: number, link = ''): void {
  buf.fill(0, off, off + BLOCK);
  const split = ustarSplit(name);
  if (split > 0) {
    buf.write(name.slice(split + 1), off, 100, 'utf8');
    buf.write(name.slice(0, split), off + 345, 155, 'utf8');
  } else {
    buf.write(name, off, 100, 'utf8');
  }
  octal(buf, off + 100, 8, mode);
  octal(buf, off + 108, 8, uid);
  octal(buf, off + 116, 8, gid);
  octal(buf, off + 124, 12, size);
  octal(buf, off + 136, 12, mtime);
  buf.write('        ', off + 148, 8, 'latin1');
  buf.write(type, off + 156, 1, 'latin1');
  buf.write(link, off + 157, 100, 'utf8');
  buf.write('ustar\0' + '00', off + 257, 8, 'latin1');
  buf.write(uid === 0 ? 'root' : 'app', off + 265, 32, 'latin1');
  buf.write(gid === 0 ? 'root' : 'app', off + 297, 32, 'latin1');
  let sum = 0;
  for (let i = off; i < off + BLOCK; i++) sum += buf[i];
  buf.write(sum.toString(8).padStart(6, '0') + '\0 ', off + 148, 8, 'latin1');
}

/** A buffered sequential writer to a file descriptor that can hash what passes through. */
class Sink {
  private readonly buf = Buffer.allocUnsafeSlow(8 * MiB);
  private used = 0;
  written = 0;
  hash?: Hash;
  constructor(private readonly fd: number) {}

  flush(): void {
    let off = 0;
    while (off < this.used) off += fs.writeSync(this.fd, this.buf, off, this.used - off);
    this.hash?.update(this.buf.subarray(0, this.used));
    this.written += this.used;
    this.used = 0;
  }
  /** Space for `n` contiguous bytes (n <= 1 MiB): returns the offset to write at. */
  take(n: number): number {
    if (this.used + n > this.buf.length) this.flush();
    const at = this.used;
    this.used += n;
    return at;
  }
  get buffer(): Buffer {
    return this.buf;
  }
  header(name: string, type: string, size: number, mode: number, uid: number, gid: number, mtime: number, link = ''): void {
    // GNU long-name ('L') and long-link ('K') records for what ustar's fields cannot hold.
    for (const [kind, value] of [['L', ustarSplit(name) < 0 ? name : ''], ['K', Buffer.byteLength(link) > 100 ? link : '']]) {
      if (!value) continue;
      const long = Buffer.from(`${value}\0`);
      header(this.buf, this.take(BLOCK), '././@LongLink', kind, long.length, 0o644, 0, 0, 0);
      this.bytes(long);
      this.zeros(pad(long.length));
    }
    header(this.buf, this.take(BLOCK), name, type, size, mode, uid, gid, mtime, link);
  }
  bytes(b: Buffer): void {
    for (let off = 0; off < b.length; ) {
      const n = Math.min(b.length - off, MiB);
      b.copy(this.buf, this.take(n), off, off + n);
      off += n;
    }
  }
  zeros(n: number): void {
    if (n) this.buf.fill(0, this.take(n), this.used);
  }
  random(n: number, state: { s: number }): void {
    for (let left = n; left > 0; ) {
      const k = Math.min(left, MiB);
      fillRandom(this.buf, this.take(k), k, state);
      left -= k;
    }
  }
  /** Copies a whole file in (a compressed layer). */
  file(p: string): void {
    const fd = fs.openSync(p, 'r');
    try {
      for (;;) {
        const at = this.take(MiB);
        const n = fs.readSync(fd, this.buf, at, MiB, null);
        this.used = at + n;
        if (n === 0) break;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
}

function writeLayer(sink: Sink, layer: LayerPlan, text: Buffer): void {
  for (const e of layer.ents) {
    sink.header(tarName(e), e.type, e.size, e.mode, e.uid, e.gid, e.mtime, e.link);
    if (e.type !== T.File || e.size === 0) continue;
    if (e.fill === 'rand') sink.random(e.size, { s: e.seed || 1 });
    else if (e.size <= text.length) {
      const at = e.seed % (text.length - e.size + 1);
      sink.bytes(text.subarray(at, at + e.size));
    } else throw new Error(`text file too large: ${e.path}`);
    sink.zeros(pad(e.size));
  }
  sink.zeros(2 * BLOCK);
}

// ---------------------------------------------------------------------------------------------

export function generateImage(opts: GenOptions): GenResult {
  const t0 = process.hrtime.bigint();
  const o = { files: opts.files ?? 100_000, bigMiB: opts.bigMiB ?? 500, dataMiB: opts.dataMiB ?? 1100, seed: opts.seed ?? 1 };
  const compress = opts.compress ?? 'none';
  smallCap = opts.smallMaxBytes ?? Infinity;
  if (!['none', 'gzip', 'zstd'].includes(compress)) throw new BenchError(`--compress: expected none, gzip or zstd, got ${compress}`);
  const { layers, big } = planImage(o);
  const text = makeText(new Rng(o.seed + 17));
  const out = path.resolve(opts.out);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.partial`;
  const fd = fs.openSync(tmp, 'w');
  const sink = new Sink(fd);
  const result: GenResult['layers'] = [];
  try {
    const ids: string[] = [];
    let parent = '';
    for (const [i, layer] of layers.entries()) {
      const id = createHash('sha256').update(`ocimount-bench ${o.seed} ${i} ${layer.name}`).digest('hex');
      ids.push(id);
      const tarBytes = layer.ents.reduce((s, e) => s + entryBytes(e), 2 * BLOCK);
      const blob = `${id}/layer.tar${compress === 'gzip' ? '.gz' : compress === 'zstd' ? '.zst' : ''}`;
      const v1 = Buffer.from(JSON.stringify({ id, ...(parent && { parent }), created: new Date(MTIME * 1000).toISOString(), container_config: { Cmd: [layer.createdBy] }, os: 'linux' }));
      sink.header(`${id}/`, '5', 0, 0o755, 0, 0, MTIME);
      for (const [name, body] of [['VERSION', Buffer.from('1.0')], ['json', v1]] as const) {
        sink.header(`${id}/${name}`, '0', body.length, 0o644, 0, 0, MTIME);
        sink.bytes(body);
        sink.zeros(pad(body.length));
      }
      parent = id;
      const diff = createHash('sha256');
      let stored = tarBytes;
      if (compress === 'none') {
        sink.header(blob, '0', tarBytes, 0o644, 0, 0, MTIME);
        sink.flush();
        const before = sink.written;
        sink.hash = diff;
        writeLayer(sink, layer, text);
        sink.flush();
        sink.hash = undefined;
        if (sink.written - before !== tarBytes) throw new Error(`layer ${i}: wrote ${sink.written - before} bytes, planned ${tarBytes}`);
      } else {
        const raw = `${tmp}.layer${i}.tar`;
        const packed = `${raw}.${compress}`;
        try {
          const lfd = fs.openSync(raw, 'w');
          const ls = new Sink(lfd);
          ls.hash = diff;
          writeLayer(ls, layer, text);
          ls.flush();
          fs.closeSync(lfd);
          const args = compress === 'gzip' ? ['-6', '-c', raw] : ['-q', '-3', '-T0', '-c', raw];
          const outFd = fs.openSync(packed, 'w');
          const r = spawnSync(compress, args, { stdio: ['ignore', outFd, 'pipe'] });
          fs.closeSync(outFd);
          if (r.error || r.status !== 0) throw new BenchError(`${compress} ${args.join(' ')}: ${r.error?.message ?? r.stderr.toString().trim()}`);
          stored = fs.statSync(packed).size;
          sink.header(blob, '0', stored, 0o644, 0, 0, MTIME);
          sink.file(packed);
          sink.zeros(pad(stored));
        } finally {
          fs.rmSync(raw, { force: true });
          fs.rmSync(packed, { force: true });
        }
      }
      if (compress === 'none') sink.zeros(pad(tarBytes));
      result.push({ diffId: `sha256:${diff.digest('hex')}`, blob, entries: layer.ents.length, tarBytes, storedBytes: stored });
      log(`layer ${i} (${layer.name}): ${layer.ents.length} entries, ${fmtBytes(tarBytes)}${compress === 'none' ? '' : ` -> ${fmtBytes(stored)} ${compress}`}`);
    }
    const config = Buffer.from(JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: new Date((MTIME + 200000) * 1000).toISOString(),
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/app/bin/server'], WorkingDir: '/app' },
      rootfs: { type: 'layers', diff_ids: result.map((l) => l.diffId) },
      history: layers.map((l, i) => ({ created: new Date((MTIME + i * 50000) * 1000).toISOString(), created_by: l.createdBy })),
    }));
    const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
    const tag = 'ocimount-bench:latest';
    const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: result.map((l) => l.blob) }]));
    const repositories = Buffer.from(JSON.stringify({ 'ocimount-bench': { latest: ids[ids.length - 1] } }));
    for (const [name, body] of [[configName, config], ['manifest.json', manifest], ['repositories', repositories]] as const) {
      sink.header(name, '0', body.length, 0o644, 0, 0, MTIME);
      sink.bytes(body);
      sink.zeros(pad(body.length));
    }
    sink.zeros(2 * BLOCK);
    sink.flush();
    fs.closeSync(fd);
    fs.renameSync(tmp, out);
  } catch (err) {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed */
    }
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  let entries = 0, regularFiles = 0, fileBytes = 0;
  for (const l of layers) {
    entries += l.ents.length;
    for (const e of l.ents) if (e.type === T.File) {
      regularFiles++;
      fileBytes += e.size;
    }
  }
  return {
    path: out,
    archiveBytes: fs.statSync(out).size,
    compress,
    layers: result,
    entries,
    regularFiles,
    fileBytes,
    bigFile: { path: big.path, size: big.size, layer: 2 },
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
  };
}

/** Generator options as the benchmarks' command lines give them. */
export function genOptionsFrom(values: Record<string, unknown>, out: string): GenOptions {
  const compress = values.compress ?? 'none';
  if (compress !== 'none' && compress !== 'gzip' && compress !== 'zstd') throw new BenchError(`--compress: expected none, gzip or zstd, got ${String(compress)}`);
  return {
    out,
    files: intOpt(values.files, 'files', 100_000),
    bigMiB: intOpt(values['big-mib'], 'big-mib', 500),
    dataMiB: intOpt(values['data-mib'], 'data-mib', 1100),
    compress,
    seed: intOpt(values.seed, 'seed', 1),
  };
}

export function describe(r: GenResult): string {
  return `${r.path}: ${fmtBytes(r.archiveBytes)} archive, ${r.layers.length} layers, ${r.entries} tar entries ` +
    `(${r.regularFiles} regular files, ${fmtBytes(r.fileBytes)} of file data), big file /${r.bigFile.path}, ` +
    `${r.compress === 'none' ? 'uncompressed' : `${r.compress} layers`}, written in ${fmtS(r.seconds)}`;
}

const USAGE = `usage: node dist/bench/gen-image.js --out FILE [--files N] [--big-mib N] [--data-mib N]
                                      [--compress none|gzip|zstd] [--seed N]
  --files N       small regular files over all layers (default 100000; total entries ~10% more)
  --big-mib N     size of the one big pseudo-random file, in layer 2 (default 500)
  --data-mib N    total regular-file data to reach with 16 MiB medium files (default 1100)
  --compress K    layer blobs compressed with the gzip/zstd CLI (default none)
`;

if (require.main === module) {
  runMain(async () => {
    const v = parse({ ...COMMON_OPTIONS, out: { type: 'string' }, seed: { type: 'string' } }, USAGE);
    if (!v.out) throw new BenchError(`--out is required\n\n${USAGE}`);
    const r = generateImage(genOptionsFrom(v, v.out as string));
    process.stdout.write(`${describe(r)}\n${JSON.stringify(r)}\n`);
  });
}
