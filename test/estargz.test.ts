import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import * as zlib from 'node:zlib';
import type { ByteSource } from '../src/io/byte-source';
import { estargzLayer, FOOTER_SIZE, openEstargz, parseFooter, readEstargzToc, TOC_DIGEST_ANNOTATION } from '../src/layers/estargz';
import { scanTar } from '../src/tar/scan';
import { layerTar } from './helpers/archive-builder';
import { footer, toEstargz, toSeekableZstd } from './helpers/estargz';
import { parseChunkedFooter, parsePosition } from '../src/layers/zstd-chunked';
import { openZstdSeekable, readSeekTable } from '../src/layers/zstd-seekable';

/*
 * The TOC view of an eStargz layer against a header scan of the same layer decompressed whole:
 * the same entries, columns and file bytes; and what happens to a layer whose footer, TOC or
 * chunks are damaged.
 */

/** A Buffer as a ByteSource that counts the bytes read from it. */
function source(bytes: Buffer): ByteSource & { read_: number } {
  const s = {
    size: bytes.length,
    read_: 0,
    async read(buf: Buffer, offset: number, length: number, position: number) {
      const n = Math.max(0, Math.min(length, bytes.length - position));
      bytes.copy(buf, offset, position, position + n);
      s.read_ += n;
      return n;
    },
    readSync(buf: Buffer, offset: number, length: number, position: number) {
      const n = Math.max(0, Math.min(length, bytes.length - position));
      bytes.copy(buf, offset, position, position + n);
      return n;
    },
  };
  return s;
}

const big = randomBytes(300_000);
const entries = [
  { path: 'etc/', type: 'dir' as const, mode: 0o755 },
  { path: 'etc/hostname', content: 'box\n', mtime: new Date('2023-05-06T07:08:09Z'), uid: 1000, gid: 1001 },
  { path: 'etc/empty', content: '' },
  { path: 'big.bin', content: big, mode: 0o600 },
  { path: 'link', type: 'symlink' as const, target: 'etc/hostname' },
  { path: 'hard', type: 'link' as const, target: 'etc/hostname' },
  { path: 'cap', content: 'x', xattrs: { 'security.capability': Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0]), 'user.note': 'hé' } },
  { path: 'dev/null', type: 'char' as const, devmajor: 1, devminor: 3 },
  { path: 'fifo', type: 'fifo' as const },
  { path: 'gone/.wh.old', content: '' },
  { path: `${'deep/'.repeat(30)}name-longer-than-a-ustar-field`, content: 'long\n' },
  { path: 'ünïcode', content: 'u' },
];

async function both(opts: Parameters<typeof toEstargz>[1] = { chunkSize: 64 * 1024 }) {
  const tar = await layerTar(entries);
  const e = toEstargz(Buffer.concat([tar]), opts);
  const whole = zlib.gunzipSync(e.blob);
  const scan = await scanTar(source(whole), 'whole');
  const toc = (await readEstargzToc(source(e.blob)))!;
  const view = estargzLayer(source(e.blob), toc, `t${Math.random()}`);
  return { e, whole, scan, toc, view };
}

async function readAll(src: ByteSource, at: number, size: number): Promise<Buffer> {
  const b = Buffer.alloc(size);
  assert.equal(await src.read(b, 0, size, at), size);
  return b;
}

describe('eStargz TOC', () => {
  it('the writer: a valid gzip of the whole tar, members per chunk, a 51-byte footer naming the TOC', async () => {
    const { e, whole } = await both();
    assert.equal(whole.length, e.uncompressedSize);
    assert.equal(e.diffId, `sha256:${createHash('sha256').update(whole).digest('hex')}`);
    assert.deepEqual(parseFooter(e.blob.subarray(-FOOTER_SIZE)), { tocOffset: e.tocOffset, footerSize: FOOTER_SIZE });
    const chunks = e.toc.entries.filter((x) => x.name === 'big.bin');
    assert.equal(chunks.length, Math.ceil(big.length / 65536));
    assert.equal(e.toc.entries[0].name, '.no.prefetch.landmark');
  });

  it('gives the entries and bytes a header scan of the whole layer gives', async () => {
    const { scan, view, whole } = await both();
    const a = scan.index;
    const b = view.layer.index;
    assert.equal(b.count, a.count);
    for (let i = 0; i < a.count; i++) {
      const x = a.entry(i);
      const y = b.entry(i);
      const strip = (t: typeof x) => ({ ...t, dataOffset: 0 });
      assert.deepEqual(strip(y), strip(x), `entry ${x.path}`);
      if (x.size) {
        const want = await readAll(source(whole), x.dataOffset, x.size);
        assert.ok((await readAll(view.stream, y.dataOffset, y.size)).equals(want), `bytes of ${x.path}`);
      }
    }
  });

  it('reads a small file by fetching only its own member', async () => {
    const { e } = await both();
    const src = source(e.blob);
    const toc = (await readEstargzToc(src))!;
    const { layer, stream } = estargzLayer(src, toc, 'count');
    const before = src.read_;
    const i = [...Array(layer.index.count).keys()].find((k) => layer.index.path(k) === 'etc/hostname')!;
    assert.equal((await readAll(stream, layer.index.dataOffsets[i], 4)).toString(), 'box\n');
    assert.ok(src.read_ - before < 2048, `read ${src.read_ - before} bytes`);
    // A middle chunk of the big file: one member of ~64 KiB, not the whole file.
    const j = [...Array(layer.index.count).keys()].find((k) => layer.index.path(k) === 'big.bin')!;
    const mid = src.read_;
    assert.ok((await readAll(stream, layer.index.dataOffsets[j] + 150_000, 10)).equals(big.subarray(150_000, 150_010)));
    assert.ok(src.read_ - mid < 70_000, `read ${src.read_ - mid} bytes`);
  });

  it('a chunk that does not match its digest fails the read, never returns wrong bytes', async () => {
    const { e } = await both();
    const ent = e.toc.entries.find((x) => x.name === 'etc/hostname')!;
    // Same length, different content: a member for "bad\n" in place of "box\n" can differ in size, so damage the TOC's digest instead.
    const bad = JSON.parse(JSON.stringify(e.toc));
    bad.entries.find((x: { name: string }) => x.name === 'etc/hostname').chunkDigest = `sha256:${'0'.repeat(64)}`;
    const json = Buffer.from(JSON.stringify(bad));
    const view = estargzLayer(source(e.blob), { tocOffset: e.tocOffset, json }, 'corrupt');
    const i = [...Array(view.layer.index.count).keys()].find((k) => view.layer.index.path(k) === 'etc/hostname')!;
    await assert.rejects(readAll(view.stream, view.layer.index.dataOffsets[i], 4), /does not match its digest/);
    assert.ok(ent.offset);
  });

  it('no footer: undefined (a plain gzip layer); a broken TOC or a wrong TOC digest: a note and no TOC, or an error', async () => {
    const { e } = await both();
    const plain = zlib.gzipSync(zlib.gunzipSync(e.blob));
    assert.equal(await readEstargzToc(source(plain)), undefined);
    const notes: string[] = [];
    const note = (m: string) => notes.push(m);
    assert.equal(await openEstargz(source(plain), {}, 'layer 0', note, 'k1'), undefined);
    assert.deepEqual(notes, []);
    // Annotated, footer gone: a note.
    assert.equal(await openEstargz(source(plain), { [TOC_DIGEST_ANNOTATION]: e.tocDigest }, 'layer 0', note, 'k2'), undefined);
    assert.match(notes[0], /layer 0: annotated as eStargz but has no eStargz footer/);
    // A footer pointing at the wrong place: a note, then the caller reads the layer whole.
    const moved = Buffer.concat([e.blob.subarray(0, -FOOTER_SIZE), footer(e.tocOffset - 1)]);
    assert.equal(await openEstargz(source(moved), {}, 'layer 0', note, 'k3'), undefined);
    assert.match(notes[1], /TOC not usable/);
    // The TOC is not the one the manifest names: an error.
    await assert.rejects(openEstargz(source(e.blob), { [TOC_DIGEST_ANNOTATION]: `sha256:${'1'.repeat(64)}` }, 'layer 0', note, 'k4'), /TOC digest is sha256:/);
    assert.ok(await openEstargz(source(e.blob), { [TOC_DIGEST_ANNOTATION]: e.tocDigest }, 'layer 0', note, 'k5'));
  });

  it('a prefetch landmark after the prioritized entries; chunks of exactly the chunk size', async () => {
    const { scan, view, e } = await both({ chunkSize: 100_000, prefetch: 2 });
    assert.equal(e.toc.entries[2].name, '.prefetch.landmark');
    assert.equal(view.layer.index.count, scan.index.count);
    const i = [...Array(scan.index.count).keys()].find((k) => scan.index.path(k) === 'big.bin')!;
    assert.ok((await readAll(view.stream, view.layer.index.dataOffsets[i], big.length)).equals(big));
  });
});

describe('zstd:chunked and seekable zstd locators', () => {
  it('the manifest position from the annotation and from the footer (40- and 64-byte forms)', () => {
    assert.deepEqual(parsePosition('4211:219:300:1'), { offset: 4211, length: 219, uncompressed: 300, type: 1 });
    assert.equal(parsePosition('4211:219:300'), undefined);
    assert.equal(parsePosition('a:b:c:d'), undefined);
    for (const size of [40, 64]) {
      const frame = Buffer.alloc(8 + size);
      frame.writeUInt32LE(0x184d2a50, 0);
      frame.writeUInt32LE(size, 4);
      [4211, 219, 300, 1].forEach((n, k) => frame.writeBigUInt64LE(BigInt(n), 8 + 8 * k));
      frame.write('GnUlInUx', 8 + size - 8, 'latin1');
      const tail = Buffer.concat([Buffer.alloc(80), frame]);
      assert.deepEqual(parseChunkedFooter(tail), { offset: 4211, length: 219, uncompressed: 300, type: 1 }, `${size}-byte footer`);
      tail[tail.length - 1] ^= 1;
      assert.equal(parseChunkedFooter(tail), undefined);
    }
  });

  it('a seek table gives the frame index; a blob without one, or one that does not add up, gives none', async () => {
    const tar = await layerTar(entries);
    const blob = toSeekableZstd(tar, 50_000);
    const index = (await readSeekTable(source(blob)))!;
    assert.equal(index.uncompressedSize, tar.length);
    assert.equal(index.frames.length, Math.ceil(tar.length / 50_000));
    assert.deepEqual(index.frames[1], { cOff: index.frames[0].cSize, cSize: index.frames[1].cSize, uOff: 50_000, uSize: 50_000 });
    assert.equal(await readSeekTable(source(tar)), undefined);
    assert.equal(await readSeekTable(source(Buffer.concat([Buffer.alloc(1), blob]))), undefined);
    // Indexed by headers alone: the scan reads the frames holding headers, not big.bin's middle.
    const src = source(blob);
    const layer = (await openZstdSeekable(src, 'layer 0', 'seekable-test'))!;
    const scan = await scanTar(source(tar), 'whole');
    assert.equal(layer.index.count, scan.index.count);
    for (let i = 0; i < scan.index.count; i++) assert.deepEqual(layer.index.entry(i), scan.index.entry(i));
    assert.ok(src.read_ < blob.length / 2, `read ${src.read_} of ${blob.length}`);
  });
});
