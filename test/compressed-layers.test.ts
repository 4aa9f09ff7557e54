import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { IndexCache } from '../src/cache/index-cache';
import { ImageArchive, ImageView } from '../src/engine';
import type { SliceSource } from '../src/io/byte-source';
import { buildArchive } from './helpers/archive-builder';
import { FIXTURES, ocimount, run, tempDir, withMount } from './helpers/mount-harness';

/*
 * Compressed layers end to end: the real gzip/zstd fixtures, reads that start inside a span and
 * cross span boundaries (engine and mount), corrupt and truncated layers, and the index cache
 * going stale or corrupt.
 */

const work = tempDir('compressed');
after(() => fs.rmSync(work, { recursive: true, force: true }));
let n = 0;
const file = (ext = '.tar') => path.join(work, `${n++}${ext}`);

/** Compressible but not trivial: text-like lines with a counter, so gzip spans are a few MiB. */
function payload(bytes: number, seed: number): Buffer {
  const out = Buffer.alloc(bytes);
  let x = seed;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = i % 64 === 63 ? 10 : 97 + ((x >>> 16) % 16);
  }
  return out;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function open(p: string, opts: Parameters<typeof ImageView.open>[1] = {}) {
  return ImageView.open(p, opts);
}

describe('compressed layers', () => {
  it('real gzip and zstd archives read like plain ones (dive, go-containerregistry, stereoscope)', async () => {
    for (const name of ['dive-oci-gzip.tar', 'dive-oci-zstd.tar', 'stereoscope-oci-archive-gzip.tar']) {
      const v = await open(path.join(FIXTURES, name));
      try {
        assert.notEqual(v.layers[0].compression, 'none', name);
        const readme = (await v.readFile(v.merged, v.merged.lookup('README.md'))).toString();
        assert.match(readme, /dive|stereoscope|\S/, name);
      } finally {
        await v.close();
      }
    }
    const v = await open(path.join(FIXTURES, 'ggcr-whiteout-dir-gzip.tar'));
    try {
      assert.deepEqual(v.layers.map((l) => l.compression), ['gzip', 'gzip', 'gzip', 'gzip']);
      // Layers a/foo, b/bar, .wh.a, a/baz: the whiteout removes the old a/, a later layer makes a new one.
      assert.deepEqual([...v.merged.walk()].slice(1).map((x) => v.merged.path(x)), ['a', 'a/baz', 'b', 'b/bar']);
    } finally {
      await v.close();
    }
  });

  for (const compression of ['gzip', 'zstd'] as const) {
    it(`${compression}: reads inside spans and across span boundaries give the stored bytes (engine and mount)`, async () => {
      const big = payload(9 * 1024 * 1024 + 77, compression.length);
      const p = file();
      await buildArchive(p, {
        layout: 'oci-archive',
        images: [{ layers: [{ compression, entries: [{ path: 'small.txt', content: 'small' }, { path: 'data/big.txt', content: big }, { path: 'tail.txt', content: 'tail' }] }] }],
      });
      const v = await open(p);
      try {
        const node = v.merged.lookup('data/big.txt');
        for (const [pos, len] of [[0, 4096], [2 * 1024 * 1024 - 100, 300], [4 * 1024 * 1024 - 1, 2], [5_000_000, 3 * 1024 * 1024], [big.length - 10, 100]]) {
          const buf = Buffer.alloc(len);
          const got = await v.read(v.merged, node, buf, 0, len, pos);
          assert.equal(got, Math.min(len, big.length - pos));
          assert.ok(buf.subarray(0, got).equals(big.subarray(pos, pos + got)), `${compression} read at ${pos}+${len}`);
        }
        assert.equal((await v.readFile(v.merged, v.merged.lookup('tail.txt'))).toString(), 'tail');
      } finally {
        await v.close();
      }
      await withMount(p, ['--rootfs-only', '--no-cache'], async ({ mnt }) => {
        const sum = await run('sha256sum', [path.join(mnt, 'data/big.txt')]);
        assert.equal(sum.stdout.split(' ')[0], sha(big));
        const part = await run('sh', ['-c', `dd if=${path.join(mnt, 'data/big.txt')} bs=65537 skip=40 count=20 2>/dev/null | sha256sum`]);
        assert.equal(part.stdout.split(' ')[0], sha(big.subarray(65537 * 40, 65537 * 60)));
      });
    });
  }

  it('a corrupt or truncated gzip layer is a one-line error at mount time (exit 3)', async () => {
    const p = file();
    const built = await buildArchive(p, { layout: 'oci-archive', images: [{ layers: [{ compression: 'gzip', entries: [{ path: 'x', content: payload(300_000, 7) }] }] }] });
    const archive = await ImageArchive.open(p);
    const blob = (await archive.files.open(`blobs/sha256/${built.images[0].layerDigests[0].slice(7)}`)) as SliceSource;
    await archive.close();
    const bytes = fs.readFileSync(p);
    const corrupt = file();
    const c = Buffer.from(bytes);
    for (let i = 0; i < 64; i++) c[blob.start + Math.floor(blob.size / 2) + i] ^= 0x5a;
    fs.writeFileSync(corrupt, c);
    const truncated = file();
    // Cut the layer short inside the outer tar (the tar member keeps its size; the gzip data ends).
    const t = Buffer.from(bytes);
    t.fill(0, blob.start + Math.floor(blob.size / 3), blob.start + blob.size);
    fs.writeFileSync(truncated, t);
    for (const broken of [corrupt, truncated]) {
      const mnt = tempDir('never');
      try {
        const r = await ocimount(['--no-cache', broken, mnt]);
        assert.equal(r.code, 3, r.stderr);
        const lines = r.stderr.trim().split('\n');
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0], /^ocimount: .*layer 0 \(sha256:[0-9a-f]{64}\)|^ocimount: .*gzip/);
      } finally {
        fs.rmdirSync(mnt);
      }
    }
  });

  it('damage found only at read time (index from the cache) is EIO on that file alone', async () => {
    // Hex of a hash chain: compresses about 2:1, so the blob is far larger than the cache's
    // 64 KiB head and tail samples and damage in the middle goes unseen until read.
    const parts: string[] = [];
    for (let i = 0, h = 'seed'; i < 200_000; i++) parts.push((h = sha(Buffer.from(h))));
    const big = Buffer.from(parts.join('\n'));
    const p = file();
    const built = await buildArchive(p, {
      layout: 'oci-archive',
      images: [{ layers: [{ compression: 'gzip', entries: [{ path: 'first.txt', content: 'first' }, { path: 'big.txt', content: big }] }] }],
    });
    const cacheDir = path.join(work, `cache-${n++}`);
    const warm = await open(p, { cache: new IndexCache(cacheDir) });
    await warm.close();
    const archive = await ImageArchive.open(p);
    const blob = (await archive.files.open(`blobs/sha256/${built.images[0].layerDigests[0].slice(7)}`)) as SliceSource;
    await archive.close();
    // Same size, same first and last 64 KiB: the cached index still matches by its sample.
    const bytes = fs.readFileSync(p);
    for (let i = 0; i < 32; i++) bytes[blob.start + Math.floor(blob.size * 0.6) + i] ^= 0xff;
    fs.writeFileSync(p, bytes);
    await withMount(p, ['--rootfs-only', '--cache-dir', cacheDir], async ({ mnt, stderr }) => {
      const r = await run('cat', [path.join(mnt, 'big.txt')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
      assert.equal((await run('cat', [path.join(mnt, 'first.txt')])).stdout, 'first');
      // The mount is still up and still answers.
      assert.equal((await run('ls', [mnt])).stdout.split('\n').filter(Boolean).length, 2);
      assert.match(stderr(), /read \/big\.txt/);
    });
  });

  // oci-archive claims each blob's digest; a legacy docker save claims none (only diff_ids).
  for (const layout of ['oci-archive', 'docker-legacy'] as const) {
    it(`the index cache (${layout}): a second open reuses it, a changed archive misses it, a corrupt entry is rebuilt`, async () => {
      const p = file();
      const spec = (text: string) => ({ layout, images: [{ layers: [{ compression: 'gzip' as const, entries: [{ path: 'v.txt', content: text }] }] }] });
      await buildArchive(p, spec('one'));
      const cacheDir = path.join(work, `cache-${n++}`);
      const notes: string[] = [];
      const cache = () => new IndexCache(cacheDir, (m) => notes.push(m));
      const first = await open(p, { cache: cache() });
      assert.equal((await first.readFile(first.merged, first.merged.lookup('v.txt'))).toString(), 'one');
      await first.close();
      const files = (dir: string): string[] => fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(path.join(dir, d.name)) : [path.join(dir, d.name)]));
      const entries = files(cacheDir).filter((f) => f.endsWith('.idx'));
      assert.equal(entries.length, 1);
      const stamp = fs.statSync(entries[0]).mtimeMs;
      const second = await open(p, { cache: cache() });
      await second.close();
      assert.equal(fs.statSync(entries[0]).mtimeMs, stamp, 'a hit does not rewrite the entry');
      // A different archive at the same path: the layer is another blob, so another key.
      await buildArchive(p, spec('two'));
      const third = await open(p, { cache: cache() });
      assert.equal((await third.readFile(third.merged, third.merged.lookup('v.txt'))).toString(), 'two');
      await third.close();
      // Corrupt every entry: each is noticed, dropped and rebuilt; the answer stays right.
      for (const f of files(cacheDir).filter((x) => x.endsWith('.idx'))) {
        const b = fs.readFileSync(f);
        b[Math.floor(b.length / 2)] ^= 0xff;
        fs.writeFileSync(f, b);
      }
      const fourth = await open(p, { cache: cache() });
      assert.equal((await fourth.readFile(fourth.merged, fourth.merged.lookup('v.txt'))).toString(), 'two');
      await fourth.close();
      assert.ok(notes.some((m) => /checksum mismatch; rebuilding it/.test(m)), notes.join('\n'));
    });
  }

  it('a single-frame zstd layer gets a decompressed copy in the cache folder, said once', async () => {
    const big = payload(10 * 1024 * 1024, 11);
    const p = file();
    await buildArchive(p, { layout: 'oci-archive', images: [{ layers: [{ compression: 'zstd', entries: [{ path: 'big', content: big }] }] }] });
    const cacheDir = path.join(work, `cache-${n++}`);
    const notes: string[] = [];
    const v = await open(p, { cache: new IndexCache(cacheDir), onNote: (m) => notes.push(m) });
    try {
      const copies = fs.readdirSync(path.join(cacheDir, 'zstd')).filter((f) => f.endsWith('.tar'));
      assert.equal(copies.length, 1);
      assert.equal(fs.statSync(path.join(cacheDir, 'zstd', copies[0])).size, v.layers[0].stream.size);
      assert.equal(notes.filter((m) => /decompressed copy is kept in/.test(m)).length, 1, notes.join('\n'));
      const buf = Buffer.alloc(1000);
      await v.read(v.merged, v.merged.lookup('big'), buf, 0, 1000, 7_000_000);
      assert.ok(buf.equals(big.subarray(7_000_000, 7_001_000)));
    } finally {
      await v.close();
    }
  });

  it('docker save | gzip and | xz: the outer archive is indexed once and cached', async () => {
    for (const outer of ['gzip', 'xz'] as const) {
      const plain = file();
      await buildArchive(plain, { layout: 'docker-legacy', images: [{ tags: ['c:1'], layers: [{ entries: [{ path: 'hello', content: 'hi' }] }] }] });
      const p = `${plain}.${outer === 'gzip' ? 'gz' : 'xz'}`;
      await run('sh', ['-c', `${outer} -c "${plain}" > "${p}"`]);
      const cacheDir = path.join(work, `cache-${n++}`);
      const notes: string[] = [];
      for (let i = 0; i < 2; i++) {
        const v = await open(p, { cache: new IndexCache(cacheDir), onNote: (m) => notes.push(m) });
        assert.equal((await v.readFile(v.merged, v.merged.lookup('hello'))).toString(), 'hi');
        await v.close();
      }
      if (outer === 'xz') assert.equal(notes.filter((m) => /xz-compressed.*decompressing it once/.test(m)).length, 1, notes.join('\n'));
    }
  });
});
