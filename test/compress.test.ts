// Random access into gzip and zstd streams (src/compress). Inputs are compressed by the real
// gzip/zstd/pzstd CLIs and by Node's zlib / zstd-napi; every byte served is compared with the
// original data.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as zstd from 'zstd-napi';
import { FileSource, type ByteSource } from '../src/io/byte-source';
import { detectCompression } from '../src/compress/detect';
import { alignmentPrefix } from '../src/compress/gzip-seek';
import { crc32 } from 'node:zlib';
import { createSeekIndexBuilder, decodeSeekIndex, encodeSeekIndex, openRandomAccess } from '../src/compress/codecs';
import { crc32Combine } from '../src/compress/crc';
import { createSpanCache } from '../src/compress/piece-cache';
import type { CompressionKind, GzipSeekIndex, SeekIndex, ZstdSeekIndex } from '../src/compress/types';
import type { ZstdRandomAccess } from '../src/compress/zstd-seek';

const MiB = 1024 * 1024;
let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'compress-test-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Deterministic, compressible test data: words and numbers, zero runs and random runs. */
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

function run(cmd: string, args: string[], input?: Buffer): Buffer {
  return execFileSync(cmd, args, { input, maxBuffer: 512 * MiB, stdio: ['pipe', 'pipe', 'pipe'] });
}

let counter = 0;
function writeTmp(name: string, data: Buffer): string {
  const p = path.join(tmp, `${counter++}-${name}`);
  fs.writeFileSync(p, data);
  return p;
}

/** A ByteSource over a Buffer that counts the bytes read (to check "one span per cold read"). */
class MemSource implements ByteSource {
  bytesRead = 0;
  constructor(readonly data: Buffer) {}
  get size(): number {
    return this.data.length;
  }
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    const n = Math.max(0, Math.min(length, this.data.length - position));
    this.data.copy(buf, offset, position, position + n);
    this.bytesRead += n;
    return n;
  }
}

/** Walks the stream like the tar indexer: 512-byte reads, jumping forward; checks what it reads. */
async function forwardPass(kind: CompressionKind, src: ByteSource, orig: Buffer, spanBytes = 1 * MiB): Promise<SeekIndex> {
  const b = createSeekIndexBuilder(kind, src, { spanBytes });
  const hdr = Buffer.alloc(512);
  let pos = 0;
  let step = 1;
  while (pos < orig.length) {
    const n = await b.read(hdr, 0, 512, pos);
    assert.equal(n, Math.min(512, orig.length - pos));
    assert.ok(hdr.subarray(0, n).equals(orig.subarray(pos, pos + n)), `forward bytes differ at ${pos}`);
    pos += 512 + ((step * 7919 * 512) % (300 * 1024));
    step++;
  }
  const idx = await b.finish();
  assert.equal(idx.uncompressedSize, orig.length);
  assert.equal(idx.compressedSize, src.size);
  return idx;
}

/** Random reads (and some targeted ones) through the index equal the original bytes. */
async function checkRandomReads(ra: ByteSource, orig: Buffer, spanStarts: number[], count = 150): Promise<void> {
  assert.equal(ra.size, orig.length);
  let s = 99;
  const rnd = (n: number) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return n <= 0 ? 0 : s % n;
  };
  const cases: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) cases.push([rnd(orig.length), 1 + rnd(i % 10 === 0 ? 3 * MiB : 70000)]);
  for (const b of spanStarts) if (b > 0) cases.push([b - 100, 200], [b - 1, 1], [b, 1]); // across span boundaries
  cases.push([orig.length - 1, 1], [orig.length - 10, 100], [0, 4096], [orig.length, 10], [orig.length + 5, 10]);
  for (const [pos, len] of cases) {
    const out = Buffer.alloc(len);
    const n = await ra.read(out, 0, len, pos);
    const want = orig.subarray(Math.min(pos, orig.length), Math.min(pos + len, orig.length));
    assert.equal(n, want.length, `length of read(${pos}, ${len})`);
    assert.ok(out.subarray(0, n).equals(want), `bytes of read(${pos}, ${len})`);
  }
}

const withTimeout = { timeout: 60_000 };

describe('detectCompression', () => {
  it('recognises magics, tar headers and empty input', () => {
    assert.equal(detectCompression(Buffer.alloc(0)), 'none');
    assert.equal(detectCompression(zlib.gzipSync(Buffer.from('x'))), 'gzip');
    assert.equal(detectCompression(Buffer.from(zstd.compress(Buffer.from('x')))), 'zstd');
    assert.equal(detectCompression(run('pzstd', ['-q', '-c'], Buffer.from('hello'))), 'zstd'); // starts with a skippable frame
    assert.equal(detectCompression(run('xz', ['-c'], Buffer.from('x'))), 'xz');
    assert.equal(detectCompression(Buffer.from('BZh91AY&SY')), 'bzip2');
    assert.equal(detectCompression(Buffer.alloc(1024)), 'none');
    const ustar = Buffer.alloc(1024);
    ustar.write('file.txt', 0);
    ustar.write('ustar\u000000', 257, 'latin1');
    assert.equal(detectCompression(ustar), 'none');
    // A v7 header: no magic, valid checksum.
    const v7 = Buffer.alloc(1024);
    v7.write('old.txt', 0);
    v7.write('0000644\0', 100);
    v7.write('00000000005\0', 124);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : v7[i];
    v7.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    assert.equal(detectCompression(v7), 'none');
    v7[0] = 0x50; // checksum no longer matches
    assert.equal(detectCompression(v7), 'unknown');
    assert.equal(detectCompression(Buffer.from('hello world, this is not an archive')), 'unknown');
  });
});

describe('crc32', () => {
  it('combines like the CRC of the concatenation', () => {
    const a = genData(100000, 1);
    const b = genData(70001, 2);
    assert.equal(crc32Combine(crc32(a), crc32(b), b.length), crc32(Buffer.concat([a, b])));
    assert.equal(crc32Combine(crc32(a), crc32(Buffer.alloc(0)), 0), crc32(a));
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  });
});

describe('deflate bit re-alignment', () => {
  it('decodes a stream starting at every bit offset 1..7, with a dictionary', () => {
    const data = genData(300000, 7);
    const dict = data.subarray(0, 32768);
    const rest = data.subarray(32768);
    const d = zlib.deflateRawSync(rest, { dictionary: dict });
    for (let shift = 1; shift < 8; shift++) {
      // The same bits, starting `shift` bits into the first byte (low bits: another block's tail).
      const x = Buffer.alloc(d.length + 1);
      for (let i = 0; i <= d.length; i++) {
        const cur = i < d.length ? d[i] : 0;
        const prev = i > 0 ? d[i - 1] : 0;
        x[i] = ((cur << shift) | (prev >> (8 - shift)) | (i === 0 ? 0b1010101 & ((1 << shift) - 1) : 0)) & 0xff;
      }
      const prefix = alignmentPrefix(shift);
      const lead = prefix.length - 1;
      const input = Buffer.concat([prefix.subarray(0, lead), x]);
      const mask = (1 << shift) - 1;
      input[lead] = (prefix[lead] & mask) | (input[lead] & ~mask & 0xff);
      const out = zlib.inflateRawSync(input, { dictionary: dict, finishFlush: zlib.constants.Z_SYNC_FLUSH });
      assert.ok(out.equals(rest), `shift ${shift}`);
    }
  });
});

describe('gzip random access', () => {
  const data = genData(20 * MiB);

  for (const [name, make] of [
    ['gzip CLI -6 with FNAME', () => run('gzip', ['-6', '-c'], data)],
    ['gzip CLI -1 -n', () => run('gzip', ['-1', '-n', '-c'], data)],
    ['node zlib level 9', () => zlib.gzipSync(data, { level: 9 })],
    ['gzip CLI -9 --rsyncable', () => run('gzip', ['-9', '--rsyncable', '-c'], data)],
  ] as const) {
    it(`${name}: forward pass, index round-trip, random reads`, withTimeout, async () => {
      const gz = make();
      const file = writeTmp('data.gz', gz);
      const src = await FileSource.open(file);
      try {
        const idx = (await forwardPass('gzip', src, data)) as GzipSeekIndex;
        assert.ok(idx.checkpoints.length >= 15, `${idx.checkpoints.length} checkpoints`);
        assert.equal(idx.members, 1);
        const enc = encodeSeekIndex(idx);
        const dec = decodeSeekIndex(enc);
        assert.deepEqual(dec, idx);
        await checkRandomReads(openRandomAccess('gzip', src, dec), data, idx.checkpoints.map((c) => c.out));
      } finally {
        await src.close();
      }
    });
  }

  it('uses checkpoints at all bit offsets and a cold read inflates only one span', withTimeout, async () => {
    const gz = run('gzip', ['-6', '-c'], data);
    const mem = new MemSource(gz);
    const b = createSeekIndexBuilder('gzip', mem, { spanBytes: 128 * 1024 });
    const idx = (await b.finish()) as GzipSeekIndex;
    const shifts = new Set(idx.checkpoints.map((c) => c.bitPos % 8));
    assert.equal(shifts.size, 8, `bit offsets seen: ${[...shifts].join(',')}`);
    const ra = openRandomAccess('gzip', mem, idx);
    await checkRandomReads(ra, data, idx.checkpoints.map((c) => c.out), 400);
    // Cold 4 KiB read in the middle of a span: only that span's compressed bytes are read.
    const ra2 = openRandomAccess('gzip', mem, idx, { cache: createSpanCache(64 * MiB) });
    const k = Math.floor(idx.checkpoints.length / 2);
    const cp = idx.checkpoints[k];
    mem.bytesRead = 0;
    const out = Buffer.alloc(4096);
    assert.equal(await ra2.read(out, 0, 4096, cp.out + 1000), 4096);
    assert.ok(out.equals(data.subarray(cp.out + 1000, cp.out + 5096)));
    assert.equal(mem.bytesRead, cp.inEnd - Math.floor(cp.bitPos / 8));
    mem.bytesRead = 0;
    await ra2.read(out, 0, 4096, cp.out + 9000); // cached
    assert.equal(mem.bytesRead, 0);
  });

  it('incompressible data (stored blocks) and all-zero data (huge blocks)', withTimeout, async () => {
    const rnd = Buffer.concat([genData(1 * MiB, 3), randomBytes(3 * MiB)]);
    for (const orig of [rnd, Buffer.alloc(40 * MiB)]) {
      const mem = new MemSource(run('gzip', ['-c'], orig));
      const idx = (await forwardPass('gzip', mem, orig, 512 * 1024)) as GzipSeekIndex;
      await checkRandomReads(openRandomAccess('gzip', mem, idx), orig, idx.checkpoints.map((c) => c.out), 60);
    }
  });

  it('concurrent reads of the same span share one inflate', withTimeout, async () => {
    const gz = zlib.gzipSync(data.subarray(0, 6 * MiB));
    const mem = new MemSource(gz);
    const idx = (await createSeekIndexBuilder('gzip', mem, { spanBytes: 1 * MiB }).finish()) as GzipSeekIndex;
    const ra = openRandomAccess('gzip', mem, idx);
    const cp = idx.checkpoints[2];
    const step = Math.floor((idx.checkpoints[3].out - cp.out - 1000) / 20);
    mem.bytesRead = 0;
    const reads = Array.from({ length: 20 }, async (_, i) => {
      const at = cp.out + i * step;
      const out = Buffer.alloc(1000);
      await ra.read(out, 0, 1000, at);
      return out.equals(data.subarray(at, at + 1000));
    });
    assert.ok((await Promise.all(reads)).every(Boolean));
    assert.equal(mem.bytesRead, cp.inEnd - Math.floor(cp.bitPos / 8));
  });

  it('multi-member gzip with FEXTRA/FNAME/FCOMMENT/FHCRC, an empty member and trailing zeros', withTimeout, async () => {
    const parts = [data.subarray(0, 3 * MiB + 17), Buffer.alloc(0), data.subarray(3 * MiB + 17, 7 * MiB), data.subarray(7 * MiB, 9 * MiB)];
    const a = run('gzip', ['-c'], parts[0]);
    const empty = run('gzip', ['-c'], parts[1]);
    // Hand-made member: every optional header field, header CRC.
    const hdr = Buffer.concat([
      Buffer.from([0x1f, 0x8b, 8, 2 | 4 | 8 | 16, 0, 0, 0, 0, 0, 3]),
      Buffer.from([6, 0, 0x41, 0x42, 2, 0, 0x01, 0x02]), // FEXTRA: subfield 'AB', 2 bytes
      Buffer.from('name-of-file.tar\0comment text\0', 'latin1'),
    ]);
    const hcrc = Buffer.alloc(2);
    hcrc.writeUInt16LE(crc32(hdr) & 0xffff);
    const trailer = Buffer.alloc(8);
    trailer.writeUInt32LE(crc32(parts[2]), 0);
    trailer.writeUInt32LE(parts[2].length, 4);
    const c = Buffer.concat([hdr, hcrc, zlib.deflateRawSync(parts[2]), trailer]);
    assert.ok(zlib.gunzipSync(c).equals(parts[2])); // zlib agrees the member is valid
    const d = zlib.gzipSync(parts[3]);
    const gz = Buffer.concat([a, empty, c, d, Buffer.alloc(1000)]);
    const orig = Buffer.concat(parts);
    assert.ok(run('sh', ['-c', 'gzip -dc 2>/dev/null; true'], gz).equals(orig));
    const mem = new MemSource(gz);
    const idx = (await forwardPass('gzip', mem, orig, 1 * MiB)) as GzipSeekIndex;
    assert.equal(idx.members, 4);
    assert.equal(idx.trailingBytes, 1000);
    const ra = openRandomAccess('gzip', mem, decodeSeekIndex(encodeSeekIndex(idx)));
    await checkRandomReads(ra, orig, [3 * MiB + 17, 7 * MiB, ...idx.checkpoints.map((x) => x.out)]);
  });

  it('stops cleanly at trailing garbage after a member', withTimeout, async () => {
    const orig = data.subarray(0, 100000);
    const gz = Buffer.concat([zlib.gzipSync(orig), Buffer.from('this is not gzip')]);
    const idx = await forwardPass('gzip', new MemSource(gz), orig);
    assert.equal((idx as GzipSeekIndex).trailingBytes, 16);
  });

  it('empty input and an empty member', withTimeout, async () => {
    for (const gz of [Buffer.alloc(0), zlib.gzipSync(Buffer.alloc(0))]) {
      const mem = new MemSource(gz);
      const b = createSeekIndexBuilder('gzip', mem);
      assert.equal(await b.read(Buffer.alloc(10), 0, 10, 0), 0);
      const idx = await b.finish();
      assert.equal(idx.uncompressedSize, 0);
      const ra = openRandomAccess('gzip', mem, decodeSeekIndex(encodeSeekIndex(idx)));
      assert.equal(ra.size, 0);
      assert.equal(await ra.read(Buffer.alloc(10), 0, 10, 0), 0);
    }
  });

  it('rejects truncated input with the compressed offset', withTimeout, async () => {
    const gz = zlib.gzipSync(data.subarray(0, 3 * MiB));
    for (const cut of [5, 12, Math.floor(gz.length / 2), gz.length - 4]) {
      const b = createSeekIndexBuilder('gzip', new MemSource(gz.subarray(0, cut)));
      await assert.rejects(b.finish(), (err: Error) => /truncated/.test(err.message) && /compressed offset \d+/.test(err.message));
    }
  });

  it('rejects corrupt input, through forward reads too, and keeps failing', withTimeout, async () => {
    const gz = Buffer.from(zlib.gzipSync(data.subarray(0, 3 * MiB)));
    for (let i = 0; i < 64; i++) gz[200000 + i * 37] ^= 0x5a;
    const b = createSeekIndexBuilder('gzip', new MemSource(gz));
    const buf = Buffer.alloc(512);
    const walk = async () => {
      for (let pos = 0; ; pos += 4096) if ((await b.read(buf, 0, 512, pos)) < 512) return;
    };
    await assert.rejects(walk(), (err: Error) => /gzip: corrupt data/.test(err.message) && /compressed offset \d+/.test(err.message));
    await assert.rejects(b.read(buf, 0, 512, 10 * MiB), /gzip: corrupt data/);
    await assert.rejects(createSeekIndexBuilder('gzip', new MemSource(Buffer.from('not gzip at all'))).finish(), /not a gzip stream/);
    const crcBad = Buffer.from(zlib.gzipSync(data.subarray(0, 100000)));
    crcBad[crcBad.length - 6] ^= 1;
    await assert.rejects(createSeekIndexBuilder('gzip', new MemSource(crcBad)).finish(), /CRC-32 mismatch/);
  });

  it('random reads on a changed archive fail instead of returning wrong bytes', withTimeout, async () => {
    const gz = zlib.gzipSync(data.subarray(0, 4 * MiB));
    const idx = await createSeekIndexBuilder('gzip', new MemSource(gz), { spanBytes: 1 * MiB }).finish();
    const bad = Buffer.from(gz);
    for (let i = 0; i < 20; i++) bad[Math.floor(gz.length / 2) + i * 101] ^= 0x21;
    const ra = openRandomAccess('gzip', new MemSource(bad), idx);
    const reads = [];
    for (let p = 0; p < 4 * MiB; p += 256 * 1024) reads.push(ra.read(Buffer.alloc(100), 0, 100, p).then(() => 'ok', (e: Error) => e.message));
    const results = await Promise.all(reads);
    assert.ok(results.some((r) => r !== 'ok' && /gzip: (corrupt|CRC-32 mismatch|span)/.test(r)), results.join('\n'));
    await assert.rejects(async () => openRandomAccess('gzip', new MemSource(gz.subarray(1)), idx), /index was built for/);
  });

  it('forward reader refuses to go backwards or read after finish', withTimeout, async () => {
    const gz = zlib.gzipSync(data.subarray(0, 100000));
    const b = createSeekIndexBuilder('gzip', new MemSource(gz));
    await b.read(Buffer.alloc(512), 0, 512, 1024);
    await assert.rejects(b.read(Buffer.alloc(512), 0, 512, 1000), /behind the previous read/);
    await b.finish();
    await assert.rejects(b.read(Buffer.alloc(512), 0, 512, 5000), /after finish/);
  });

  it('decodeSeekIndex rejects damaged input', () => {
    const idx: SeekIndex = { kind: 'zstd', compressedSize: 10, uncompressedSize: 5, trailingBytes: 0, frames: [{ cOff: 0, cSize: 10, uOff: 0, uSize: 5 }] };
    const enc = encodeSeekIndex(idx);
    assert.deepEqual(decodeSeekIndex(enc), idx);
    const bad = Buffer.from(enc);
    bad[8] ^= 1;
    assert.throws(() => decodeSeekIndex(bad), /checksum/);
    assert.throws(() => decodeSeekIndex(enc.subarray(0, 20)), /seek index/);
  });
});

describe('zstd random access', () => {
  const data = genData(20 * MiB, 4242);

  it('single frame (zstd -T2): frame table, index round-trip, random reads', withTimeout, async () => {
    const zst = run('zstd', ['-q', '-T2', '-3', '-c'], data);
    const mem = new MemSource(zst);
    const idx = (await forwardPass('zstd', mem, data)) as ZstdSeekIndex;
    assert.equal(idx.frames.length, 1, 'zstd -T2 still writes one frame');
    const dec = decodeSeekIndex(encodeSeekIndex(idx));
    assert.deepEqual(dec, idx);
    const ra = openRandomAccess('zstd', mem, dec, { cache: createSpanCache(64 * MiB) });
    await checkRandomReads(ra, data, [4 * MiB, 8 * MiB, 16 * MiB], 60);
  });

  it('multi-frame (pzstd, with skippable frames): a cold read decodes one frame', withTimeout, async () => {
    const zst = run('pzstd', ['-q', '-p', '2', '-3', '-c'], data);
    const mem = new MemSource(zst);
    const idx = (await forwardPass('zstd', mem, data)) as ZstdSeekIndex;
    assert.ok(idx.frames.length >= 2, `${idx.frames.length} frames`);
    const ra = openRandomAccess('zstd', mem, idx);
    await checkRandomReads(ra, data, idx.frames.map((f) => f.uOff));
    const f = idx.frames[1];
    const ra2 = openRandomAccess('zstd', mem, idx);
    mem.bytesRead = 0;
    const out = Buffer.alloc(4096);
    await ra2.read(out, 0, 4096, f.uOff + Math.floor(f.uSize / 2));
    assert.ok(out.equals(data.subarray(f.uOff + Math.floor(f.uSize / 2), f.uOff + Math.floor(f.uSize / 2) + 4096)));
    assert.ok(mem.bytesRead <= f.cSize, `read ${mem.bytesRead} compressed bytes for a frame of ${f.cSize}`);
  });

  it('concatenated frames (cat a.zst b.zst), frames without content size, trailing zeros', withTimeout, async () => {
    const parts = [data.subarray(0, 5 * MiB + 3), data.subarray(5 * MiB + 3, 6 * MiB), data.subarray(6 * MiB, 13 * MiB)];
    const a = run('zstd', ['-q', '-c'], parts[0]);
    const b = run('sh', ['-c', 'cat | zstd -q -c'], parts[1]); // from a pipe: no Frame_Content_Size
    const c = Buffer.from(zstd.compress(parts[2]));
    const zst = Buffer.concat([a, b, c, Buffer.alloc(77)]);
    const orig = Buffer.concat(parts);
    const mem = new MemSource(zst);
    const idx = (await forwardPass('zstd', mem, orig)) as ZstdSeekIndex;
    assert.equal(idx.frames.length, 3);
    assert.equal(idx.trailingBytes, 77);
    assert.deepEqual(
      idx.frames.map((f) => f.uSize),
      parts.map((p) => p.length),
    );
    await checkRandomReads(openRandomAccess('zstd', mem, idx), orig, idx.frames.map((f) => f.uOff));
  });

  it('spill file written by the index pass serves reads with pread', withTimeout, async () => {
    const zst = run('zstd', ['-q', '-3', '-c'], data);
    const mem = new MemSource(zst);
    const spillPath = path.join(tmp, 'layer.spill');
    const b = createSeekIndexBuilder('zstd', mem, { spill: { path: spillPath } });
    const idx = await b.finish();
    assert.equal(fs.statSync(spillPath).size, data.length);
    const ra = openRandomAccess('zstd', mem, idx, { spill: { path: spillPath } }) as ZstdRandomAccess;
    assert.equal(ra.mode, 'spill');
    mem.bytesRead = 0;
    await checkRandomReads(ra, data, [], 50);
    assert.equal(mem.bytesRead, 0, 'no decompression with a complete spill file');
    await ra.close();
  });

  it('abort() drops a half-written spill file', withTimeout, async () => {
    const zst = run('zstd', ['-q', '-3', '-c'], data);
    const spillPath = path.join(tmp, 'aborted.spill');
    const b = createSeekIndexBuilder('zstd', new MemSource(zst), { spill: { path: spillPath } });
    await b.read(Buffer.alloc(512), 0, 512, 10 * MiB);
    assert.ok(fs.existsSync(`${spillPath}.partial.${process.pid}`));
    await b.abort();
    assert.ok(!fs.existsSync(`${spillPath}.partial.${process.pid}`) && !fs.existsSync(spillPath));
  });

  it('spill file filled on demand by the reader, then reused', withTimeout, async () => {
    const zst = run('zstd', ['-q', '-3', '-c'], data);
    const mem = new MemSource(zst);
    const idx = await createSeekIndexBuilder('zstd', mem).finish();
    const spillPath = path.join(tmp, 'ondemand.spill');
    const ra = openRandomAccess('zstd', mem, idx, { spill: { path: spillPath } }) as ZstdRandomAccess;
    const out = Buffer.alloc(1000);
    await ra.read(out, 0, 1000, 3 * MiB);
    assert.ok(out.equals(data.subarray(3 * MiB, 3 * MiB + 1000)));
    assert.ok(!fs.existsSync(spillPath) && fs.existsSync(`${spillPath}.partial.${process.pid}`));
    await checkRandomReads(ra, data, [], 40);
    assert.equal(fs.statSync(spillPath).size, data.length);
    await ra.close();
    mem.bytesRead = 0;
    const ra2 = openRandomAccess('zstd', mem, idx, { spill: { path: spillPath } }) as ZstdRandomAccess;
    await checkRandomReads(ra2, data, [], 20);
    assert.equal(mem.bytesRead, 0);
    await ra2.close();
    // Too large for maxBytes: frames mode.
    const ra3 = openRandomAccess('zstd', mem, idx, { spill: { path: path.join(tmp, 'x.spill'), maxBytes: 1 * MiB } }) as ZstdRandomAccess;
    assert.equal(ra3.mode, 'frames');
  });

  it('empty input', withTimeout, async () => {
    const idx = await createSeekIndexBuilder('zstd', new MemSource(Buffer.alloc(0))).finish();
    assert.equal(idx.uncompressedSize, 0);
    const ra = openRandomAccess('zstd', new MemSource(Buffer.alloc(0)), idx);
    assert.equal(await ra.read(Buffer.alloc(4), 0, 4, 0), 0);
  });

  it('rejects truncated and corrupt input with the compressed offset', withTimeout, async () => {
    const zst = run('zstd', ['-q', '-c'], data.subarray(0, 3 * MiB));
    for (const cut of [3, 10, Math.floor(zst.length / 2), zst.length - 1]) {
      await assert.rejects(
        createSeekIndexBuilder('zstd', new MemSource(zst.subarray(0, cut))).finish(),
        (err: Error) => /zstd: truncated input/.test(err.message) && /compressed offset \d+/.test(err.message),
        `cut at ${cut}`,
      );
    }
    const bad = Buffer.from(zst);
    for (let i = 0; i < 50; i++) bad[100000 + i * 331] ^= 0x77;
    await assert.rejects(createSeekIndexBuilder('zstd', new MemSource(bad)).finish(), /zstd: corrupt data .*compressed offset \d+/);
    await assert.rejects(createSeekIndexBuilder('zstd', new MemSource(Buffer.from('plain text, not zstd'))).finish(), /not a zstd stream/);
    const garbage = Buffer.concat([zst, Buffer.from('garbage')]);
    await assert.rejects(createSeekIndexBuilder('zstd', new MemSource(garbage)).finish(), /unexpected bytes at compressed offset \d+/);
  });

  it('random reads on a changed archive fail', withTimeout, async () => {
    const zst = run('zstd', ['-q', '-c'], data.subarray(0, 3 * MiB));
    const idx = await createSeekIndexBuilder('zstd', new MemSource(zst)).finish();
    const bad = Buffer.from(zst);
    for (let i = 0; i < 50; i++) bad[100000 + i * 331] ^= 0x77;
    const ra = openRandomAccess('zstd', new MemSource(bad), idx);
    await assert.rejects(ra.read(Buffer.alloc(3 * MiB), 0, 3 * MiB, 0), /zstd: (corrupt data|.*ended early)/);
  });
});
