import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { IndexCache } from '../src/cache/index-cache';
import { ImageArchive, ImageView } from '../src/engine';
import type { SliceSource } from '../src/io/byte-source';
import { encodeTarIndex } from '../src/tar/tar-index-codec';
import { buildArchive, layerTar, type LayerSpec } from './helpers/archive-builder';
import { ocimount, tempDir } from './helpers/mount-harness';
import { pushLayout, startRegistry } from './helpers/registry';

/*
 * Compressed layers passed on worker threads (src/archive/pass-workers.ts) give what a pass on
 * the main thread gives: the same indexes and seek points (compared as the cache entries they
 * are stored as), warnings, notes, progress, reads, and the same one-line errors.
 * OCIMOUNT_PASS_WORKER_MIN_BYTES=0 sends every compressed layer of these small images to a
 * worker; 2^40 keeps every one on the main thread.
 */

const work = tempDir('pass-workers');
after(() => fs.rmSync(work, { recursive: true, force: true }));
let n = 0;
const file = (name: string) => path.join(work, `${n++}-${name}`);

const IN_WORKERS = '0';
const ON_MAIN = String(2 ** 40);

/** Runs `fn` with OCIMOUNT_PASS_WORKER_MIN_BYTES set to `min` (the CLI's children inherit it). */
async function withMin<T>(min: string, fn: () => Promise<T>): Promise<T> {
  const before = process.env.OCIMOUNT_PASS_WORKER_MIN_BYTES;
  process.env.OCIMOUNT_PASS_WORKER_MIN_BYTES = min;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.OCIMOUNT_PASS_WORKER_MIN_BYTES;
    else process.env.OCIMOUNT_PASS_WORKER_MIN_BYTES = before;
  }
}

/** Bytes that compress a little (hex of a hash chain mixed with a counter), deterministic. */
function payload(bytes: number, seed: number): Buffer {
  const out = Buffer.alloc(bytes);
  let h = Buffer.from(`seed ${seed}`);
  for (let at = 0; at < bytes; ) {
    h = createHash('sha256').update(h).digest();
    at += out.write(`${h.toString('hex').slice(0, 20 + (h[0] % 40))} ${at}\n`, at);
  }
  return out;
}

/** Every file under `dir` with its bytes, as text to compare. */
function treeOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out[path.relative(dir, p)] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  }
  return out;
}

/** A gzip and a zstd layer of several spans, a gzip layer cut short (warnings), a plain one. */
async function layers(): Promise<{ specs: LayerSpec[]; big: Buffer }> {
  const big = payload(7 * 1024 * 1024 + 123, 1);
  const many = Array.from({ length: 400 }, (_, i) => ({ path: `etc/many/f${i}`, content: `file ${i}\n`.repeat(i % 9) }));
  const cut = (await layerTar([{ path: 'cut/a', content: payload(40_000, 2) }, { path: 'cut/b', content: payload(40_000, 3) }])).subarray(0, 60_000);
  const specs: LayerSpec[] = [
    { compression: 'gzip', entries: [{ path: 'data/big.bin', content: big }, ...many] },
    { compression: 'zstd', entries: [{ path: 'z/one.bin', content: payload(3 * 1024 * 1024, 4) }, { path: 'etc/many/.wh.f3', content: '' }] },
    { compression: 'gzip', entries: cut },
    { compression: 'none', entries: [{ path: 'top', content: 'top\n' }] },
  ];
  return { specs, big };
}

interface Opened {
  warnings: string[];
  notes: string[];
  progress: Record<string, number[]>;
  listing: string[];
  indexes: string[];
  reads: string[];
  cache: Record<string, string>;
}

async function openAndRead(archive: string, min: string, offsets: number[]): Promise<Opened> {
  const cacheDir = file('cache');
  return withMin(min, async () => {
    const warnings: string[] = [];
    const notes: string[] = [];
    const progress: Record<string, number[]> = {};
    const v = await ImageView.open(archive, {
      cache: new IndexCache(cacheDir),
      onWarning: (t) => warnings.push(t),
      onNote: (t) => notes.push(t),
      onProgress: (what, done) => (progress[what] ??= []).push(done),
    });
    try {
      const listing = [...v.merged.walk()].map((node) => `${v.merged.path(node)} ${JSON.stringify(v.merged.stat(node))}`);
      const indexes = v.layers.map((l) => encodeTarIndex(l.index).toString('hex'));
      const node = v.merged.lookup('data/big.bin');
      const reads: string[] = [];
      for (const pos of offsets) {
        const buf = Buffer.alloc(4096);
        const got = await v.read(v.merged, node, buf, 0, buf.length, pos);
        reads.push(buf.subarray(0, got).toString('hex'));
      }
      return { warnings, notes, progress, listing, indexes, reads, cache: treeOf(cacheDir) };
    } finally {
      await v.close();
    }
  });
}

describe('compressed layers passed on worker threads', { timeout: 600_000 }, () => {
  it('a gzip and zstd image: same indexes, seek points, cache entries, warnings, progress and reads as on the main thread', async () => {
    const { specs, big } = await layers();
    const p = file('image.tar');
    await buildArchive(p, { layout: 'oci-archive', images: [{ layers: specs }] });
    let seed = 7;
    const offsets = Array.from({ length: 24 }, () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % big.length);
    offsets.push(0, 2 * 1024 * 1024 - 5, big.length - 100);
    const there = await openAndRead(p, IN_WORKERS, offsets);
    const here = await openAndRead(p, ON_MAIN, offsets);
    assert.deepEqual(there, here);
    // The comparison is about something: three passes stored, warnings of the cut layer, reads right.
    assert.equal(Object.keys(here.cache).filter((f) => f.endsWith('.idx')).length, 4, Object.keys(here.cache).join(' '));
    assert.ok(here.warnings.some((w) => /^layer 2 .*truncated/.test(w)), here.warnings.join('\n'));
    assert.equal(Object.keys(here.progress).length, 3, JSON.stringify(Object.keys(here.progress)));
    offsets.forEach((pos, i) => assert.equal(here.reads[i], big.subarray(pos, pos + 4096).toString('hex'), `read at ${pos}`));
  });

  it('a corrupt or truncated gzip layer in a worker is the same one-line error naming the layer (exit 3)', async () => {
    const { specs } = await layers();
    const p = file('image.tar');
    const built = await buildArchive(p, { layout: 'oci-archive', images: [{ layers: specs }] });
    const archive = await ImageArchive.open(p);
    const blob = (await archive.files.open(`blobs/sha256/${built.images[0].layerDigests[0].slice(7)}`)) as SliceSource;
    await archive.close();
    const bytes = fs.readFileSync(p);
    const corrupt = Buffer.from(bytes);
    for (let i = 0; i < 64; i++) corrupt[blob.start + Math.floor(blob.size / 2) + i] ^= 0x5a;
    const truncated = Buffer.from(bytes);
    truncated.fill(0, blob.start + Math.floor(blob.size / 3), blob.start + blob.size);
    for (const [name, damaged] of [['corrupt', corrupt], ['truncated', truncated]] as const) {
      const q = file(`${name}.tar`);
      fs.writeFileSync(q, damaged);
      const there = await withMin(IN_WORKERS, () => ocimount(['ls', '--no-cache', q, '/']));
      const here = await withMin(ON_MAIN, () => ocimount(['ls', '--no-cache', q, '/']));
      assert.deepEqual(there, here);
      assert.equal(there.code, 3, there.stderr);
      const lines = there.stderr.trim().split('\n');
      assert.equal(lines.length, 1, there.stderr);
      assert.match(lines[0], new RegExp(`^ocimount: .*layer 0 \\(${built.images[0].diffIds[0]}\\): `), name);
      // The engine's error is the same object type with the same message.
      const err = async (min: string) => withMin(min, () => ImageView.open(q).then((v) => v.close(), (e: Error) => e));
      const [a, b] = [await err(IN_WORKERS), await err(ON_MAIN)];
      assert.ok(a instanceof Error && b instanceof Error);
      assert.equal(a.constructor, b.constructor);
      assert.equal(a.message, b.message);
    }
  });

  it('a registry image: the first pass through workers gives the same tree, cache entries and output', async () => {
    const { specs } = await layers();
    const layout = file('layout');
    await buildArchive(layout, { layout: 'oci-dir', images: [{ tags: ['app:1'], layers: specs }] });
    const reg = await startRegistry();
    try {
      await pushLayout(layout, reg.host, 'pass/app', '1');
      const ref = `docker://${reg.host}/pass/app:1`;
      const first = async (min: string) => {
        const cacheDir = file('cache');
        const r = await withMin(min, () => ocimount(['find', '--cache-dir', cacheDir, ref, '/'], { timeoutMs: 120_000 }));
        const cat = await withMin(min, () => ocimount(['cat', '--cache-dir', cacheDir, ref, '/data/big.bin'], { timeoutMs: 120_000 }));
        const idx = Object.fromEntries(Object.entries(treeOf(cacheDir)).filter(([f]) => f.endsWith('.idx')));
        return { r, idx, cat: createHash('sha256').update(cat.stdout).digest('hex'), catCode: cat.code };
      };
      const there = await first(IN_WORKERS);
      const here = await first(ON_MAIN);
      assert.equal(here.r.code, 0, here.r.stderr);
      assert.deepEqual(there, here);
      assert.match(here.r.stdout, /data\/big\.bin/);
      assert.match(here.r.stdout, /z\/one\.bin/);
      assert.ok(Object.keys(here.idx).length >= 3, Object.keys(here.idx).join(' '));
    } finally {
      await reg.stop();
    }
  });
});
