/**
 * The gzip index pass's block inflater (src/compress/block-inflater.ts): the addon
 * (native/inflate) and pako must agree on everything the index is built from (the output bytes,
 * every block boundary's output offset and compressed bit position, errors), over deflate streams
 * of every block type, fed in uneven pieces; and a whole seek index built with each must be the
 * same bytes, so an index cache written by one is read by the other.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  AT_BLOCK_BOUNDARY,
  NATIVE_INFLATE_ADDON,
  Z_BUF_ERROR,
  Z_OK,
  Z_STREAM_END,
  blockInflaterKind,
  createBlockInflater,
  type BlockInflater,
} from '../src/compress/block-inflater';

interface Walk {
  output: Buffer;
  /** [uncompressed offset, compressed bit position] at every stop on a block boundary. */
  boundaries: Array<[number, number]>;
  end: 'end' | 'error' | 'input';
  message?: string;
}

/** A deterministic generator (so a failure can be rerun), for feeding sizes. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Inflates `deflated` in pieces of random sizes into output room of random sizes. */
function walk(inf: BlockInflater, deflated: Buffer, seed: number, maxIn: number, maxOut: number): Walk {
  const rand = lcg(seed);
  inf.reset();
  const out: Buffer[] = [];
  const boundaries: Array<[number, number]> = [];
  let made = 0;
  let pos = 0;
  let inEnd = 0;
  let stalls = 0;
  // The input sits at an odd offset of a larger buffer, as a cursor's window does.
  const padded = Buffer.concat([Buffer.alloc(3), deflated]);
  for (let guard = 0; guard < 10_000_000; guard++) {
    if (pos === inEnd && inEnd < deflated.length) inEnd = Math.min(deflated.length, inEnd + 1 + Math.floor(rand() * maxIn));
    const room = Buffer.alloc(1 + Math.floor(rand() * maxOut));
    inf.step(padded, 3 + pos, inEnd - pos, room, 0, room.length);
    pos += inf.used;
    made += inf.made;
    out.push(room.subarray(0, inf.made));
    if (inf.ret === Z_STREAM_END) return { output: Buffer.concat(out), boundaries, end: 'end' };
    if (inf.ret !== Z_OK && inf.ret !== Z_BUF_ERROR) return { output: Buffer.concat(out), boundaries, end: 'error', message: inf.message() };
    if (inf.dataType & AT_BLOCK_BOUNDARY) boundaries.push([made, 8 * pos - (inf.dataType & 7)]);
    // All input given and two calls in a row without progress: the stream is cut short.
    stalls = inf.used === 0 && inf.made === 0 ? stalls + 1 : 0;
    if (stalls >= 2 && inEnd === deflated.length) return { output: Buffer.concat(out), boundaries, end: 'input' };
  }
  throw new Error('no progress');
}

function text(n: number): Buffer {
  const words = ['layer', 'whiteout', 'opaque', 'diff_id', 'manifest', 'config', '/usr/lib', 'sha256:', '\n'];
  const rand = lcg(n);
  const parts: string[] = [];
  let len = 0;
  while (len < n) {
    const w = words[Math.floor(rand() * words.length)] + ' ';
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

const inputs: Array<[string, Buffer]> = [
  ['empty', Buffer.alloc(0)],
  ['one byte', Buffer.from('x')],
  ['text', text(400_000)],
  ['random (stored blocks)', randomBytes(150_000)],
  ['zeros (long matches)', Buffer.alloc(1_000_000)],
  ['mixed', Buffer.concat([text(60_000), randomBytes(40_000), Buffer.alloc(90_000, 7), text(100_000)])],
];
const encodings: Array<[string, zlib.ZlibOptions]> = [
  ['level 0', { level: 0 }],
  ['level 1', { level: 1 }],
  ['level 6', { level: 6 }],
  ['level 9', { level: 9 }],
  ['fixed Huffman', { level: 6, strategy: zlib.constants.Z_FIXED }],
  ['Huffman only', { level: 6, strategy: zlib.constants.Z_HUFFMAN_ONLY }],
  ['RLE', { level: 6, strategy: zlib.constants.Z_RLE }],
  ['sync flushes', { level: 6 }],
];

function deflate(data: Buffer, name: string, opts: zlib.ZlibOptions): Buffer {
  return name === 'sync flushes' ? syncFlushed(data, opts) : zlib.deflateRawSync(data, opts);
}

/** Empty stored blocks and byte-aligned boundaries mid-stream, as writers that flush make. */
function syncFlushed(data: Buffer, opts: zlib.ZlibOptions): Buffer {
  const pieces: Buffer[] = [];
  for (let off = 0; off < data.length; off += 50_000) {
    pieces.push(zlib.deflateRawSync(data.subarray(off, off + 50_000), { ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH }));
  }
  // Independent chunks sync-flushed one after another do not share a dictionary, but each chunk
  // is a valid block sequence without a final block; a last empty final block ends the stream.
  pieces.push(zlib.deflateRawSync(Buffer.alloc(0), opts));
  return Buffer.concat(pieces);
}

const scratch: string[] = [];
after(() => {
  for (const d of scratch) fs.rmSync(d, { recursive: true, force: true });
});

describe('block inflater', () => {
  it('the addon is built and loads (OCIMOUNT_INFLATE=pako aside)', { skip: process.env.OCIMOUNT_INFLATE === 'pako' }, () => {
    assert.ok(fs.existsSync(NATIVE_INFLATE_ADDON), `${NATIVE_INFLATE_ADDON} is missing: run npm run build:native`);
    assert.equal(blockInflaterKind(), 'native');
    assert.equal(createBlockInflater().kind, 'native');
  });

  it('addon and pako agree on output, block boundaries and bit positions, fed in uneven pieces', () => {
    const native = createBlockInflater('native');
    const pako = createBlockInflater('pako');
    let streams = 0;
    for (const [dname, data] of inputs) {
      for (const [ename, opts] of encodings) {
        const deflated = deflate(data, ename, opts);
        const expect = zlib.inflateRawSync(deflated);
        assert.ok(expect.equals(data), `${dname}, ${ename}: the stream itself is wrong`);
        for (const [seed, maxIn, maxOut] of [
          [1, 1 << 20, 1 << 18],
          [2, 5000, 3000],
          [3, 17, 4096],
        ] as const) {
          const a = walk(native, deflated, seed, maxIn, maxOut);
          const b = walk(pako, deflated, seed, maxIn, maxOut);
          const what = `${dname}, ${ename}, feeding ${seed}`;
          assert.equal(a.end, 'end', `${what}: native did not reach the end`);
          assert.equal(b.end, 'end', `${what}: pako did not reach the end`);
          assert.ok(a.output.equals(data), `${what}: native output differs`);
          assert.ok(b.output.equals(data), `${what}: pako output differs`);
          assert.deepEqual(dedupe(a.boundaries), dedupe(b.boundaries), `${what}: block boundaries differ`);
          if (data.length > 100_000 && !dname.startsWith('zeros')) assert.ok(a.boundaries.length > 1, `${what}: no block boundary seen`);
          streams++;
        }
      }
    }
    assert.equal(streams, inputs.length * encodings.length * 3);
  });

  it('a boundary found natively resumes: inflating from its bit position with the window gives the rest', () => {
    const data = text(1_500_000);
    const deflated = zlib.deflateRawSync(data, { level: 6 });
    const w = walk(createBlockInflater('native'), deflated, 9, 1 << 16, 1 << 16);
    const inner = dedupe(w.boundaries).filter(([out]) => out > 40_000 && out < data.length);
    assert.ok(inner.length >= 3, 'too few boundaries to check');
    for (const [out, bitPos] of inner.slice(0, 5)) {
      // Re-align to a byte with an empty fixed block's worth of bits, the way gzip-seek does, is
      // its own test (compress.test.ts); here the byte-aligned ones are resumed directly.
      if (bitPos % 8 !== 0) continue;
      const rest = zlib.inflateRawSync(deflated.subarray(bitPos / 8), { dictionary: data.subarray(Math.max(0, out - 32768), out) });
      assert.ok(rest.equals(data.subarray(out)), `resume at output ${out} differs`);
    }
    assert.ok(inner.every(([, bit]) => bit > 0 && bit <= 8 * deflated.length));
  });

  it('corrupt and truncated streams: both stop the same way at the same place', () => {
    const data = text(400_000);
    const deflated = zlib.deflateRawSync(data, { level: 6 });
    const bad = Buffer.from(deflated);
    for (let i = 0; i < 64; i++) bad[20_000 + i * 3] ^= 0x5a;
    for (const [name, input] of [
      ['corrupt', bad],
      ['truncated', deflated.subarray(0, deflated.length >> 1)],
      ['invalid block type', Buffer.from([0x07, 0x00])],
    ] as const) {
      const a = walk(createBlockInflater('native'), input, 4, 4096, 8192);
      const b = walk(createBlockInflater('pako'), input, 4, 4096, 8192);
      // Raw deflate has no checksum: flipped bits may still decode (gzip's CRC catches those).
      if (name !== 'corrupt') assert.equal(a.end, name === 'truncated' ? 'input' : 'error', `${name}: native ended with ${a.end}`);
      assert.equal(a.end, b.end, `${name}: native ${a.end}, pako ${b.end}`);
      assert.ok(a.output.equals(b.output), `${name}: outputs before the fault differ`);
      if (a.end === 'error') {
        assert.ok(a.message, `${name}: native gave no message`);
        assert.equal(a.message, b.message, `${name}: messages differ`);
      }
    }
  });

  it('rejects out-of-range offsets instead of reading outside a buffer', () => {
    const inf = createBlockInflater('native');
    const buf = Buffer.alloc(16);
    assert.throws(() => inf.step(buf, 10, 7, Buffer.alloc(16), 0, 16), /out of range/);
    assert.throws(() => inf.step(buf, 0, 16, Buffer.alloc(16), 8, 9), /out of range/);
    assert.throws(() => inf.step(buf, -1, 1, Buffer.alloc(16), 0, 1), /out of range/);
  });

  it('a gzip seek index built with the addon is byte for byte the one pako builds', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocim-inflate-'));
    scratch.push(dir);
    const file = path.join(dir, 'layer.gz');
    // Two members, the second with mixed content: checkpoints in both, windows across blocks.
    fs.writeFileSync(file, Buffer.concat([zlib.gzipSync(text(3_000_000)), zlib.gzipSync(inputs[5][1], { level: 9 })]));
    const script = `
      const { FileSource } = require(${JSON.stringify(path.resolve(__dirname, '../src/io/byte-source.js'))});
      const codecs = require(${JSON.stringify(path.resolve(__dirname, '../src/compress/codecs.js'))});
      const { blockInflaterKind } = require(${JSON.stringify(path.resolve(__dirname, '../src/compress/block-inflater.js'))});
      (async () => {
        const src = await FileSource.open(process.argv[1]);
        const b = codecs.createSeekIndexBuilder('gzip', src, { spanBytes: 256 * 1024 });
        const idx = await b.finish();
        process.stdout.write(JSON.stringify({ kind: blockInflaterKind(), checkpoints: idx.checkpoints.length, index: codecs.encodeSeekIndex(idx).toString('base64') }));
        await src.close();
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const run = (env: NodeJS.ProcessEnv) =>
      JSON.parse(execFileSync(process.execPath, ['-e', script, file], { env: { ...process.env, ...env }, encoding: 'utf8' })) as {
        kind: string;
        checkpoints: number;
        index: string;
      };
    const native = run({ OCIMOUNT_INFLATE: '' });
    const pako = run({ OCIMOUNT_INFLATE: 'pako' });
    assert.equal(native.kind, 'native');
    assert.equal(pako.kind, 'pako');
    assert.ok(native.checkpoints >= 8, `only ${native.checkpoints} checkpoints`);
    assert.equal(native.index, pako.index);
  });
});

/** A stop can repeat at one boundary (an output-full stop right at it): count each boundary once. */
function dedupe(b: Array<[number, number]>): Array<[number, number]> {
  return b.filter((x, i) => i === 0 || x[0] !== b[i - 1][0] || x[1] !== b[i - 1][1]);
}
