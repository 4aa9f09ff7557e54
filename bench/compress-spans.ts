// Measures random access into compressed layers (src/compress) to choose the default span size.
//
//   npx tsc -p tsconfig.json && node dist/bench/compress-spans.js [payloadMiB=256] [samples=100]
//
// For a generated, moderately compressible payload (text, zero runs, random runs; ~2.1:1 with
// gzip -6) it prints, for gzip spans of 1..16 MiB: index build time (one forward pass, as the tar
// indexer would drive it), encoded index size per GiB of uncompressed data, and median/p99 latency
// of cold 4 KiB reads at random offsets (fresh cache for every read). Build time is the best of
// two runs. Then the same for zstd:
// one frame (plain `zstd`), pzstd frames, 1 MiB frames (seekable-style), and one frame with a
// spill file. Needs the gzip, zstd and pzstd CLIs.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as zstd from 'zstd-napi';
import { FileSource } from '../src/io/byte-source';
import { createSeekIndexBuilder, encodeSeekIndex, openRandomAccess } from '../src/compress/codecs';
import { createSpanCache } from '../src/compress/piece-cache';
import type { CompressionKind, RandomAccessOptions, SeekIndex, SeekIndexBuilderOptions } from '../src/compress/types';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function genData(size: number, seed = 12345): Buffer {
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  const words: string[] = [];
  for (let i = 0; i < 2000; i++) {
    let w = '';
    const l = 2 + (rnd() % 9);
    for (let j = 0; j < l; j++) w += String.fromCharCode(97 + (rnd() % 26));
    words.push(w);
  }
  const buf = Buffer.allocUnsafe(size);
  let p = 0;
  while (p < size) {
    const r = rnd() % 100;
    if (r < 3) {
      const n = Math.min(size - p, 256 + (rnd() % 4096));
      for (let i = 0; i < n; i++) buf[p++] = rnd() & 0xff;
    } else if (r < 5) {
      const n = Math.min(size - p, rnd() % 8192);
      buf.fill(0, p, p + n);
      p += n;
    } else {
      let line = '';
      const nw = 3 + (rnd() % 12);
      for (let i = 0; i < nw; i++) line += words[rnd() % 2000] + (i % 4 === 3 ? ` ${rnd() % 100000} ` : ' ');
      line += '\n';
      const n = Math.min(size - p, line.length);
      buf.write(line.slice(0, n), p, 'latin1');
      p += n;
    }
  }
  return buf;
}

const now = () => Number(process.hrtime.bigint()) / 1e6;
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const fmt = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(0)).padStart(7);

/** Best of two forward passes (the machine may be shared; the minimum is the least disturbed). */
async function buildIndex(kind: CompressionKind, file: string, opts: SeekIndexBuilderOptions): Promise<{ idx: SeekIndex; ms: number }> {
  const a = await buildIndexOnce(kind, file, opts);
  const b = await buildIndexOnce(kind, file, opts);
  return a.ms <= b.ms ? a : b;
}

/** One forward pass like the tar indexer (512-byte header reads, jumps), then finish(). */
async function buildIndexOnce(kind: CompressionKind, file: string, opts: SeekIndexBuilderOptions): Promise<{ idx: SeekIndex; ms: number }> {
  const src = await FileSource.open(file);
  const t = now();
  const b = createSeekIndexBuilder(kind, src, opts);
  const hdr = Buffer.alloc(512);
  for (let pos = 0, i = 1; ; i++) {
    if ((await b.read(hdr, 0, 512, pos)) < 512) break;
    pos += 512 + ((i * 7919 * 512) % (256 * 1024));
  }
  const idx = await b.finish();
  const ms = now() - t;
  await src.close();
  return { idx, ms };
}

async function coldReads(kind: CompressionKind, file: string, idx: SeekIndex, samples: number, opts: RandomAccessOptions = {}): Promise<number[]> {
  const src = await FileSource.open(file);
  const out = Buffer.alloc(4096);
  const times: number[] = [];
  let s = 7;
  for (let i = 0; i < samples; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const pos = s % (idx.uncompressedSize - 4096);
    const ra = openRandomAccess(kind, src, idx, { ...opts, cache: createSpanCache(64 * MiB) });
    const t = now();
    const n = await ra.read(out, 0, 4096, pos);
    times.push(now() - t);
    if (n !== 4096) throw new Error('short read');
    await ra.close();
  }
  await src.close();
  return times;
}

function row(label: string, ms: number, idx: SeekIndex, times: number[]): void {
  const perGiB = (encodeSeekIndex(idx).length * GiB) / idx.uncompressedSize;
  const units = idx.kind === 'gzip' ? idx.checkpoints.length : idx.frames.length;
  console.log(
    `${label.padEnd(22)} ${fmt(ms)} ms  ${String(units).padStart(6)}  ${(perGiB / 1024).toFixed(0).padStart(9)} KiB/GiB` +
      `  ${fmt(pct(times, 50))} ms  ${fmt(pct(times, 99))} ms`,
  );
}

async function main(): Promise<void> {
  const payloadMiB = Number(process.argv[2] ?? 256);
  const samples = Number(process.argv[3] ?? 100);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'compress-bench-'));
  try {
    const data = genData(payloadMiB * MiB);
    const raw = path.join(dir, 'payload');
    fs.writeFileSync(raw, data);
    execFileSync('sh', ['-c', `gzip -6 -c ${raw} > ${raw}.gz && zstd -q -3 -c ${raw} > ${raw}.zst && pzstd -q -p 2 -3 -c ${raw} > ${raw}.pzst`]);
    // Seekable-style: independent 1 MiB frames.
    const frames: Buffer[] = [];
    for (let p = 0; p < data.length; p += MiB) frames.push(Buffer.from(zstd.compress(data.subarray(p, p + MiB))));
    fs.writeFileSync(`${raw}.1m.zst`, Buffer.concat(frames));
    const sz = (f: string) => `${(fs.statSync(f).size / MiB).toFixed(1)} MiB`;
    console.log(`payload ${payloadMiB} MiB; gzip -6 ${sz(`${raw}.gz`)}, zstd -3 ${sz(`${raw}.zst`)}; ${samples} cold 4 KiB reads per row`);
    let t = now();
    zlib.gunzipSync(fs.readFileSync(`${raw}.gz`), { chunkSize: 4 * MiB });
    console.log(`reference: native zlib gunzip of the whole stream: ${(now() - t).toFixed(0)} ms`);
    t = now();
    zstd.decompress(fs.readFileSync(`${raw}.zst`));
    console.log(`reference: zstd-napi decompress of the whole stream: ${(now() - t).toFixed(0)} ms\n`);

    console.log(`${'gzip spanBytes'.padEnd(22)} ${'build'.padStart(10)}  ${'spans'.padStart(6)}  ${'index size'.padStart(16)}  ${'median'.padStart(10)}  ${'p99'.padStart(10)}`);
    for (const span of [1, 2, 4, 8, 16]) {
      const { idx, ms } = await buildIndex('gzip', `${raw}.gz`, { spanBytes: span * MiB });
      row(`${span} MiB`, ms, idx, await coldReads('gzip', `${raw}.gz`, idx, samples));
    }

    console.log(`\n${'zstd'.padEnd(22)} ${'build'.padStart(10)}  ${'frames'.padStart(6)}  ${'index size'.padStart(16)}  ${'median'.padStart(10)}  ${'p99'.padStart(10)}`);
    for (const [label, file] of [
      ['1 MiB frames', `${raw}.1m.zst`],
      ['pzstd frames', `${raw}.pzst`],
    ] as const) {
      const { idx, ms } = await buildIndex('zstd', file, {});
      row(label, ms, idx, await coldReads('zstd', file, idx, samples));
    }
    const single = await buildIndex('zstd', `${raw}.zst`, {});
    row('single frame', single.ms, single.idx, await coldReads('zstd', `${raw}.zst`, single.idx, Math.min(samples, 30)));
    const spillPath = path.join(dir, 'spill');
    const spilled = await buildIndexOnce('zstd', `${raw}.zst`, { spill: { path: spillPath } });
    row('single + spill', spilled.ms, spilled.idx, await coldReads('zstd', `${raw}.zst`, spilled.idx, samples, { spill: { path: spillPath } }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
