/**
 * The native header scan (native/tarscan) against the JavaScript scanner it speeds up: over the
 * same bytes, a scan that may hand runs of plain headers to the addon must give exactly the
 * index, warnings, end and errors of the scan that reads every header in JavaScript (the one
 * held to Go's archive/tar by tar-go-rules.test.ts). The archives mix what the addon takes
 * (plain ustar and GNU members) with everything it must leave alone: extension headers, base-256
 * and broken numbers, bad checksums, v7 and star headers, names that climb or need cleaning,
 * truncation, and random byte flips.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { scanTar, type TarScan } from '../src/tar/scan';
import { nativeTarScanAvailable, type FileStretch } from '../src/tar/native-scan';
import type { TarIndex } from '../src/tar/tar-index';
import { concatTar, entry, gnuLong, header, paxHeader, type HeaderFields, bufferSource } from './helpers/raw-tar';
import { prng } from './helpers/hostile-build';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocimount-native-scan-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** `tar` written into a file after `lead` bytes of other data, open; the caller closes `fd`. */
function onDisk(tar: Buffer, lead: number): FileStretch {
  const file = path.join(dir, `t${files++}.bin`);
  fs.writeFileSync(file, Buffer.concat([Buffer.alloc(lead, 0x5a), tar, Buffer.alloc(700, 0x33)]));
  return { fd: fs.openSync(file, 'r'), start: lead, size: tar.length };
}

type Outcome = { scan: TarScan } | { error: string };

async function outcome(run: () => Promise<TarScan>): Promise<Outcome> {
  try {
    return { scan: await run() };
  } catch (err) {
    return { error: `${(err as Error).constructor.name}: ${(err as Error).message}` };
  }
}

function columns(ix: TarIndex) {
  return {
    count: ix.count,
    pool: ix.pathPool.toString('latin1'),
    pathStart: Array.from(ix.pathStart),
    types: Array.from(ix.types),
    modes: Array.from(ix.modes),
    uids: Array.from(ix.uids),
    gids: Array.from(ix.gids),
    sizes: Array.from(ix.sizes),
    mtimes: Array.from(ix.mtimes),
    nsecs: Array.from(ix.mtimeNsecs),
    offsets: Array.from(ix.dataOffsets),
    extras: [...ix.extras],
    // Counted as rows arrive (by the addon for its rows): it must match the pool's own count.
    slashes: ix.slashCount(),
    poolSlashes: ix.pathPool.toString('latin1').split('/').length - 1,
  };
}

/** The scan of `tar` both ways: JavaScript alone, and with the file it sits in for the addon. */
async function bothWays(tar: Buffer, lead = 0): Promise<{ js: Outcome; native: Outcome }> {
  const js = await outcome(() => scanTar(bufferSource(tar), 'layer t'));
  const file = onDisk(tar, lead);
  try {
    const native = await outcome(() => scanTar(bufferSource(tar), 'layer t', { file }));
    return { js, native };
  } finally {
    fs.closeSync(file.fd);
  }
}

function assertSame(js: Outcome, native: Outcome, what: string): void {
  if ('error' in js || 'error' in native) {
    assert.deepEqual(native, js, what);
    return;
  }
  const [n, j] = [columns(native.scan.index), columns(js.scan.index)];
  assert.deepEqual(n, j, `${what}: index`);
  assert.equal(n.slashes, n.poolSlashes, `${what}: slash count`);
  assert.deepEqual(native.scan.warnings, js.scan.warnings, `${what}: warnings`);
  assert.equal(native.scan.endOffset, js.scan.endOffset, `${what}: end`);
  assert.equal(native.scan.truncation, js.scan.truncation, `${what}: truncation`);
}

const NAMES = [
  'usr/bin/env', 'etc/', 'a/b/c.txt', './etc/passwd', '/abs/path', 'a//b', 'a/./b', 'a/../b', '../escape', 'a/../../up',
  '.', './', '', '/', 'dir/', 'x/..', '.wh.gone', 'd/.wh..wh..opq', 'caf\u00e9', 'n'.repeat(100), 'm'.repeat(99) + '/',
];
const BYTE_NAMES = [Buffer.from([0x66, 0xff, 0xfe, 0x80]), Buffer.from('d\xe9j\xe0/vu', 'latin1')];
const FLAGS = ['0', '0', '0', '5', '5', '2', '2', '1', '\0', '7', '3', '4', '6', 'S', 'V', 'D', 'Z'];

/** One random member, sometimes preceded by extension headers, sometimes made malformed. */
function randomMember(rnd: () => number, i: number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const r = rnd();
  const name: string | Buffer = r < 0.55 ? `d${i % 7}/f${i}` : r < 0.9 ? pick(NAMES) : pick(BYTE_NAMES);
  const typeflag = pick(FLAGS);
  const data = typeflag === '0' || typeflag === '\0' || typeflag === '7' ? Buffer.alloc(Math.floor(rnd() * 1500), i & 0xff) : Buffer.alloc(0);
  const f: HeaderFields = {
    name,
    typeflag,
    mode: pick([0o644, 0o755, 0o4755, 0o100644, 0o40755]),
    uid: pick([0, 1000, 65534, 2097151]),
    gid: pick([0, 50, 1000]),
    mtime: pick([0, 1_700_000_000, 8 ** 11 - 1]),
    linkname: typeflag === '1' || typeflag === '2' ? pick(['target', 'd0/f1', '../../etc/shadow', './t', '/abs', 'a//b/', '']) : undefined,
    format: rnd() < 0.25 ? 'gnu' : 'ustar',
  };
  const odd = rnd();
  if (odd < 0.05) f.base256 = [pick(['mode', 'uid', 'gid', 'size', 'mtime', 'devmajor', 'devminor'] as const)];
  else if (odd < 0.08) f.prefix = pick(['usr/share', 'a/../..', 'p'.repeat(155)]);
  else if (odd < 0.1) f.uid = -1; // base-256, negative
  const parts: Buffer[] = [];
  const ext = rnd();
  if (ext < 0.06) parts.push(paxHeader([['path', `pax/long/${'q'.repeat(120)}/${i}`]]));
  else if (ext < 0.08) parts.push(paxHeader([['mtime', '1700000000.25'], ['uid', '7']]));
  else if (ext < 0.1) parts.push(gnuLong('L', `gnu/long/${'g'.repeat(130)}/${i}`));
  else if (ext < 0.11) parts.push(paxHeader([['comment', 'global']], { global: true }));
  const member = entry(f, data);
  const bad = rnd();
  if (bad < 0.03) member[148] = 0x39; // checksum field not octal
  else if (bad < 0.05) member[257] = 0; // v7: no magic
  else if (bad < 0.06) member.write('tar\0', 508, 'latin1'); // star trailer (checksum now off too)
  else if (bad < 0.08) member.write('9', 101, 'latin1'); // mode not octal
  else if (bad < 0.1) {
    // A high byte in the name, summed as a signed char: Go accepts either sum.
    member[40] = 0xc3;
    let signed = 8 * 0x20;
    for (let k = 0; k < 512; k++) if (k < 148 || k >= 156) signed += member[k] > 127 ? member[k] - 256 : member[k];
    member.write(signed.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  }
  parts.push(member);
  return Buffer.concat(parts);
}

function randomArchive(seed: number, members: number): Buffer {
  const rnd = prng(seed);
  const parts = Array.from({ length: members }, (_, i) => randomMember(rnd, i));
  const end = rnd();
  const tar = end < 0.7 ? concatTar(parts) : Buffer.concat(parts);
  if (end > 0.85) return tar.subarray(0, Math.floor(rnd() * tar.length)); // cut anywhere
  return tar;
}

describe('native header scan: the same index as the JavaScript scanner', () => {
  it('the addon is built and loads (npm install builds it next to the FUSE addon)', () => {
    assert.ok(nativeTarScanAvailable(), 'native/tarscan/build/Release/ocimount_tarscan.node did not load');
  });

  it('reads the file it is given: runs of plain members come from the addon', async () => {
    // Same layout, other names: where the addon takes over, the index holds the file's names.
    const names = (prefix: string) => concatTar(Array.from({ length: 5 }, (_, i) => entry({ name: `${prefix}${i}` }, Buffer.from('x'))));
    const file = onDisk(names('disk'), 1024);
    try {
      const s = await scanTar(bufferSource(names('buf_')), 'layer t', { file });
      assert.deepEqual(Array.from({ length: s.index.count }, (_, i) => s.index.path(i)), ['disk0', 'disk1', 'disk2', 'disk3', 'disk4']);
    } finally {
      fs.closeSync(file.fd);
    }
  });

  it('plain members of every kind the addon takes, ustar and GNU, prefixes, link targets', async () => {
    const tar = concatTar([
      entry({ name: 'etc/', typeflag: '5', mode: 0o40755, mtime: 1_700_000_000 }),
      entry({ name: 'etc/passwd', uid: 0, gid: 0, mtime: 1 }, Buffer.from('root:x:0:0\n')),
      entry({ name: 'passwd', prefix: 'usr/share/base-files', format: 'ustar' }, Buffer.from('p')),
      entry({ name: 'gnu/file', format: 'gnu', prefix: 'ignored/by/gnu' }, Buffer.alloc(2000, 1)),
      entry({ name: 'bin/sh', typeflag: '2', linkname: '../usr/bin/dash' }),
      entry({ name: 'bin/sh2', typeflag: '1', linkname: './etc//passwd' }),
      entry({ name: './usr/lib/', typeflag: '5' }),
      entry({ name: 'usr/lib/../lib64/x', mode: 0o4755 }, Buffer.from('suid')),
      entry({ name: './', typeflag: '5' }),
      entry({ name: 'high', uid: 2097151, gid: 2097151, mtime: 8 ** 11 - 1 }),
    ]);
    const { js, native } = await bothWays(tar, 4096);
    assertSame(js, native, 'plain members');
    assert.ok('scan' in native && native.scan.index.count === 10);
  });

  it('a layer of many members: rows, path bytes and link targets beyond one call of the addon', async () => {
    const parts: Buffer[] = [];
    for (let i = 0; i < 9000; i++) {
      const name = `${'deep/'.repeat(i % 40)}n${i}`;
      parts.push(i % 3 === 0 ? entry({ name, typeflag: '2', linkname: `t${'x'.repeat(i % 90)}` }) : entry({ name }, Buffer.alloc(i % 700)));
    }
    const { js, native } = await bothWays(concatTar(parts), 512);
    assertSame(js, native, '9000 members');
  });

  it('random archives, hostile and malformed members mixed in, cut or unended', async () => {
    for (let seed = 1; seed <= 300; seed++) {
      const tar = randomArchive(seed, 1 + (seed % 40));
      const { js, native } = await bothWays(tar, (seed * 512) % 3072);
      assertSame(js, native, `seed ${seed}`);
    }
  });

  it('random byte flips in headers', async () => {
    const base = randomArchive(4242, 30);
    const rnd = prng(99);
    for (let round = 0; round < 200; round++) {
      const tar = Buffer.from(base);
      for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) tar[Math.floor(rnd() * tar.length)] = Math.floor(rnd() * 256);
      const { js, native } = await bothWays(tar);
      assertSame(js, native, `flip round ${round}`);
    }
  });

  it('a header cut by the end of the file it lies in (short read) is the JavaScript reader\'s to report', async () => {
    const tar = concatTar([entry({ name: 'a' }, Buffer.from('1')), entry({ name: 'b' }, Buffer.alloc(600))]);
    const cut = tar.subarray(0, 1024 + 100);
    const { js, native } = await bothWays(cut);
    assertSame(js, native, 'cut header');
    // The stream claims more bytes than the file has: the addon's read comes up short.
    const file = path.join(dir, 'short.bin');
    fs.writeFileSync(file, tar.subarray(0, 1536));
    const fd = fs.openSync(file, 'r');
    try {
      const src = { size: tar.length, read: async () => 0, readSync: (b: Buffer, o: number, l: number, p: number) => fs.readSync(fd, b, o, l, p) };
      const viaJs = await outcome(() => scanTar(src, 'layer t'));
      const viaNative = await outcome(() => scanTar(src, 'layer t', { file: { fd, start: 0, size: tar.length } }));
      assertSame(viaJs, viaNative, 'stream longer than its file');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('gives the same header an error names', async () => {
    const tar = concatTar([entry({ name: 'ok' }), header({ name: 'bad', size: 5 })]);
    tar[512 + 153] = 0x38; // '8': the checksum field is no octal number
    const { js, native } = await bothWays(tar);
    assert.ok('error' in js, 'the JavaScript scanner rejects the header');
    assertSame(js, native, 'bad checksum');
  });
});
