/**
 * The tar reader block by block, against the rules of Go's archive/tar (what Docker, BuildKit and
 * containerd read layers with): where tar readers disagree, these say what an image means. Each
 * archive is built here from raw blocks and scanned directly, without an image around it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntryType } from '../src/tar/entry';
import { decodeHeader, parseNumeric } from '../src/tar/header';
import { decodeXattrName, formatPaxTime, parsePax, parsePaxTime, paxXattrs } from '../src/tar/pax';
import { scanTar, type TarScan } from '../src/tar/scan';
import { encodeEntry } from '../src/tar/write';
import { concatTar, entry, gnuLong, header, paxHeader, bufferSource } from './helpers/raw-tar';

const scan = (tar: Buffer): Promise<TarScan> => scanTar(bufferSource(tar), 'layer test');

function rows(s: TarScan) {
  const ix = s.index;
  return Array.from({ length: ix.count }, (_, i) => ix.entry(i));
}

/** A path of `length` bytes whose byte at `slashAt` (0-based) is '/', ending in `leaf`. */
function pathWithSlashAt(slashAt: number, leaf: string): string {
  return `${'a'.repeat(slashAt)}/${leaf}`;
}

describe('names that writers cut: the long name applies before any rule reads the cut field', () => {
  const long = pathWithSlashAt(99, 'x/f.js'); // the 100-byte name field ends in '/'
  it('pax path over a cut name ending in "/" (GNU tar posix, Python PAX): a file, and the walk goes on', async () => {
    const tar = concatTar([
      paxHeader([['path', long]]),
      entry({ name: long.slice(0, 100), typeflag: '0' }, Buffer.from('hi\n')),
      entry({ name: 'after' }, Buffer.from('next')),
    ]);
    const [f, next] = rows(await scan(tar));
    assert.deepEqual([f.path, f.type, f.size], [long, EntryType.File, 3]);
    assert.deepEqual([next.path, next.size], ['after', 4]);
  });

  it('GNU L name over a cut name ending in "/" (GNU tar gnu/oldgnu, bsdtar gnutar, Python GNU): a file', async () => {
    for (const typeflag of ['0', '\0']) {
      const tar = concatTar([
        gnuLong('L', long),
        entry({ name: long.slice(0, 100), typeflag, format: 'gnu' }, Buffer.from('hi\n')),
        entry({ name: 'after' }, Buffer.from('next')),
      ]);
      const [f, next] = rows(await scan(tar));
      assert.deepEqual([f.path, f.type, f.size], [long, EntryType.File, 3], `typeflag ${JSON.stringify(typeflag)}`);
      assert.equal(next.path, 'after');
    }
  });

  it('a trailing "/" makes a directory only for typeflag NUL (pre-POSIX), judged on the full name', async () => {
    const tar = concatTar([
      entry({ name: 'old-dir/', typeflag: '\0' }),
      entry({ name: 'reg-slash/', typeflag: '0' }, Buffer.from('data')),
      paxHeader([['path', `${'p'.repeat(120)}/`]]),
      entry({ name: 'short', typeflag: '\0' }),
      entry({ name: 'after' }, Buffer.from('z')),
    ]);
    const r = rows(await scan(tar));
    assert.deepEqual(r.map((e) => [e.path, e.type]), [
      ['old-dir', EntryType.Directory],
      ['reg-slash', EntryType.File],
      ['p'.repeat(120), EntryType.Directory],
      ['after', EntryType.File],
    ]);
    assert.equal(r[1].size, 4);
  });

  it('the ustar prefix is joined; star (trailer "tar\\0") has a 131-byte prefix; GNU headers have none', () => {
    const star = header({ name: 'leaf', prefix: 'pre/fix' });
    star.write('tar\0', 508, 'latin1');
    // Recompute the checksum after the trailer.
    star.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of star) sum += b;
    star.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    assert.equal(decodeHeader(star).name, 'pre/fix/leaf');
    assert.equal(decodeHeader(header({ name: 'leaf', prefix: 'pre' })).name, 'pre/leaf');
    const gnu = header({ name: 'leaf', format: 'gnu' });
    assert.equal(decodeHeader(gnu).name, 'leaf');
  });
});

describe('numbers as Go parses them', () => {
  const field = (text: string, width = 12) => Buffer.concat([Buffer.from(text, 'latin1'), Buffer.alloc(Math.max(0, width - text.length))]).subarray(0, width);
  it('octal: leading and trailing NULs and spaces are trimmed, the text ends at a NUL', () => {
    assert.equal(parseNumeric(field('\0\0\0\0\0\0\x000016\0', 12)), 14);
    assert.equal(parseNumeric(field('   644 \0', 8)), 0o644);
    assert.equal(parseNumeric(field('0000644\0junk', 12)), 0o644);
    assert.equal(parseNumeric(Buffer.alloc(8)), 0);
    assert.throws(() => parseNumeric(field('06 44\0', 8)), /not an octal number/);
    assert.throws(() => parseNumeric(field('0999\0', 8)), /not an octal number/);
  });

  it('base-256: two\'s complement, sign in bit 6 of the first byte; negative times exact', () => {
    const neg = (n: bigint, width: number) => {
      const b = Buffer.alloc(width);
      let v = n + (1n << BigInt(8 * width));
      for (let i = width - 1; i >= 0; i--) {
        b[i] = Number(v & 0xffn);
        v >>= 8n;
      }
      b[0] |= 0x80;
      return b;
    };
    assert.equal(parseNumeric(neg(-315360000n, 12)), -315360000);
    assert.equal(parseNumeric(neg(-1n, 12)), -1);
    const pos = Buffer.alloc(12);
    pos[0] = 0x80;
    pos.writeUInt32BE(3_000_000_000, 8);
    assert.equal(parseNumeric(pos), 3_000_000_000);
  });

  it('a header mtime before 1970 and one after 2242 (base-256) are read exactly', async () => {
    const tar = concatTar([
      entry({ name: 'old', mtime: -315360000 }, Buffer.from('o')),
      entry({ name: 'future', mtime: 9_000_000_000 }, Buffer.from('f')),
    ]);
    const [old, future] = rows(await scan(tar));
    assert.deepEqual([old.mtime, old.mtimeNsec], [-315360000, 0]);
    assert.deepEqual([future.mtime, future.mtimeNsec], [9_000_000_000, 0]);
  });

  it('a checksum summed over signed bytes (old writers) is accepted, as Go does', () => {
    const h = header({ name: Buffer.from('caf\xe9', 'latin1') });
    h.fill(0x20, 148, 156);
    let signed = 0;
    for (const b of h) signed += b < 128 ? b : b - 256;
    h.write(`${signed.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    assert.equal(decodeHeader(h).name, 'caf\xe9');
  });
});

describe('pax records', () => {
  it('mtime to the nanosecond, and negative fractions toward the past (Go parsePAXTime)', () => {
    assert.deepEqual(parsePaxTime('1748089464.951928467'), { sec: 1748089464, nsec: 951928467 });
    assert.deepEqual(parsePaxTime('1748089464.9519284671234'), { sec: 1748089464, nsec: 951928467 });
    assert.deepEqual(parsePaxTime('1.5'), { sec: 1, nsec: 500000000 });
    assert.deepEqual(parsePaxTime('-1.5'), { sec: -2, nsec: 500000000 });
    assert.deepEqual(parsePaxTime('-315360000'), { sec: -315360000, nsec: 0 });
    assert.equal(parsePaxTime('1748089464.951928467a'), undefined);
    assert.equal(parsePaxTime('abc'), undefined);
    for (const t of ['1748089464.951928467', '-1.5', '0.000000001', '-315360000', '12']) assert.equal(formatPaxTime(parsePaxTime(t)!), t);
  });

  it('a malformed mtime, uid or gid is a warning naming layer and entry; the header field is used; the walk goes on', async () => {
    const tar = concatTar([
      paxHeader([['mtime', '1748089464.951928467a'], ['uid', '12x']]),
      entry({ name: 'odd', mtime: 1_700_000_000, uid: 7 }, Buffer.from('x')),
      entry({ name: 'after' }, Buffer.from('y')),
    ]);
    const s = await scan(tar);
    const [odd, after] = rows(s);
    assert.deepEqual([odd.mtime, odd.mtimeNsec, odd.uid], [1_700_000_000, 0, 7]);
    assert.equal(after.path, 'after');
    assert.ok(s.warnings.some((w) => w.startsWith('layer test: odd: ignored malformed pax mtime="1748089464.951928467a"')), s.warnings.join('\n'));
    assert.ok(s.warnings.some((w) => w.includes('pax uid="12x"')), s.warnings.join('\n'));
  });

  it('an unusable size stops the layer, naming where', async () => {
    const tar = concatTar([paxHeader([['size', '-5']]), entry({ name: 'f' }, Buffer.from('x'))]);
    await assert.rejects(scan(tar), /layer test: invalid pax size="-5" in the extended header before byte 1024/);
  });

  it('a global header (git archive\'s comment) does not apply to the members after it, as in Go', async () => {
    const tar = concatTar([
      paxHeader([['comment', 'abc'], ['uid', '4242'], ['SCHILY.xattr.user.g', 'global']], { global: true }),
      entry({ name: 'f', uid: 5 }, Buffer.from('x')),
    ]);
    const [f] = rows(await scan(tar));
    assert.equal(f.uid, 5);
    assert.equal(f.xattrs, undefined);
  });

  it('keys and values are bytes', () => {
    const recs = parsePax(Buffer.concat([Buffer.from('13 path=caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    assert.deepEqual(recs.map(([k, v]) => [k, v.toString('latin1')]), [['path', 'caf\xe9']]);
  });
});

describe('names and xattrs are bytes', () => {
  it('names that are not UTF-8 keep their bytes and never collide', async () => {
    const tar = concatTar([
      paxHeader([['path', Buffer.from('bad\xff', 'latin1')]]),
      entry({ name: 'x' }, Buffer.from('ff')),
      paxHeader([['path', Buffer.from('bad\xfe', 'latin1')]]),
      entry({ name: 'y' }, Buffer.from('fe')),
      entry({ name: Buffer.from('raw\xe9', 'latin1') }, Buffer.from('ustar')),
      gnuLong('L', Buffer.from(`long-${'l'.repeat(120)}\xe9`, 'latin1')),
      entry({ name: 'cut', format: 'gnu', typeflag: '2', linkname: Buffer.from('t\xe9', 'latin1') }),
    ]);
    const r = rows(await scan(tar));
    assert.deepEqual(r.map((e) => e.path), ['bad\xff', 'bad\xfe', 'raw\xe9', `long-${'l'.repeat(120)}\xe9`]);
    assert.equal(r[3].linkname, 't\xe9');
    assert.equal(r[3].type, EntryType.Symlink);
  });

  it('SCHILY.xattr (escaped names decoded), LIBARCHIVE.xattr (base64) and RHT.security: binary values kept exactly', async () => {
    const binary = Buffer.from([0x00, 0xff, 0x80, 0x0a, 0x3d, 0x00]);
    const big = Buffer.alloc(64 * 1024 - 1, 0xa5);
    const tar = concatTar([
      paxHeader([
        ['SCHILY.xattr.security.ima', binary],
        ['SCHILY.xattr.user.a%3Db%25c', 'eq'],
        ['LIBARCHIVE.xattr.user.lib%20name', binary.toString('base64')],
        ['RHT.security.selinux', 'system_u:object_r:bin_t:s0\0'],
        ['SCHILY.xattr.user.big', big],
        ['SCHILY.xattr.user.empty', ''],
      ]),
      entry({ name: 'f' }, Buffer.from('x')),
    ]);
    const [f] = rows(await scan(tar));
    const x = f.xattrs!;
    assert.deepEqual(Object.keys(x).sort(), ['security.ima', 'security.selinux', 'user.a=b%c', 'user.big', 'user.empty', 'user.lib name']);
    assert.ok(x['security.ima'].equals(binary));
    assert.ok(x['user.lib name'].equals(binary));
    assert.equal(x['security.selinux'].toString('latin1'), 'system_u:object_r:bin_t:s0\0');
    assert.ok(x['user.big'].equals(big));
    assert.equal(x['user.empty'].length, 0);
    assert.equal(decodeXattrName('user.100%'), 'user.100%');
    assert.deepEqual(paxXattrs([['comment', Buffer.from('x')]]), undefined);
  });
});

describe('the tar writer export uses', () => {
  it('what it writes reads back exactly: byte names, long names and targets, binary xattrs, nanosecond and negative times, big ids', async () => {
    const xattrs = { 'security.capability': Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0]), 'user.a=b': Buffer.from([0, 0xff]) };
    const long = `${'d'.repeat(150)}/caf\xe9-${'n'.repeat(120)}`;
    const tar = concatTar([
      encodeEntry({ name: 'dir/', type: EntryType.Directory, mode: 0o40755, uid: 0, gid: 0, size: 0, mtime: { sec: -315360000, nsec: 0 } }),
      Buffer.concat([encodeEntry({ name: long, type: EntryType.File, mode: 0o100644, uid: 3_000_000, gid: 70, size: 5, mtime: { sec: 1748089464, nsec: 951928467 }, xattrs }), Buffer.from('hello'), Buffer.alloc(507)]),
      encodeEntry({ name: 'link\xff', type: EntryType.Symlink, mode: 0o120777, uid: 0, gid: 0, size: 0, mtime: { sec: -2, nsec: 500000000 }, linkname: `${'t'.repeat(200)}\xfe` }),
    ]);
    const [dir, file, link] = rows(await scan(tar));
    assert.deepEqual([dir.path, dir.type, dir.mtime], ['dir', EntryType.Directory, -315360000]);
    assert.deepEqual([file.path, file.size, file.uid, file.gid, file.mtime, file.mtimeNsec], [long, 5, 3_000_000, 70, 1748089464, 951928467]);
    assert.deepEqual(Object.keys(file.xattrs!).sort(), ['security.capability', 'user.a=b']);
    assert.ok(file.xattrs!['user.a=b'].equals(xattrs['user.a=b']));
    assert.deepEqual([link.path, link.linkname, link.mtime, link.mtimeNsec], ['link\xff', `${'t'.repeat(200)}\xfe`, -2, 500000000]);
  });
});
