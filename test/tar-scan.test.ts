/**
 * The tar scanner and header decoder block by block, for what test/tar-go-rules.test.ts does not
 * cover: where an archive ends, how truncation is reported, sparse maps in each GNU format,
 * hard-link targets, devices and unknown typeflags; and pax record parsing on its own.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EntryType, typeName, typeOfFindLetter, typeWords } from '../src/tar/entry';
import { BLOCK, decodeHeader, decodeOldGnuSparseExtension, isZeroBlock } from '../src/tar/header';
import { parsePax, parsePaxCount, paxValue } from '../src/tar/pax';
import { scanTarStream, type TarStreamScan } from '../src/tar/scan';
import { concatTar, entry, header, oldGnuSparse, paxHeader, paxSparse10, bufferSource } from './helpers/raw-tar';

/** A source that does not know its size, as a decompressor does not. */
function streamSource(buf: Buffer) {
  const { read } = bufferSource(buf);
  return { read } as unknown as { size: number; read: typeof read };
}

const scan = (tar: Buffer): Promise<TarStreamScan> => scanTarStream(bufferSource(tar), 'layer t', { layer: 'layer t' });
const entries = (s: TarStreamScan) => Array.from({ length: s.index.count }, (_, i) => s.index.entry(i));

describe('where a tar ends', () => {
  it('stops at the first zero block; what follows it is not read', async () => {
    const tar = Buffer.concat([entry({ name: 'a' }, Buffer.from('x')), Buffer.alloc(BLOCK), entry({ name: 'hidden' })]);
    const s = await scan(tar);
    assert.deepEqual(entries(s).map((e) => e.path), ['a']);
    assert.equal(s.endOffset, 3 * BLOCK); // header, one data block, the zero block
    assert.deepEqual(s.warnings, []);
    assert.equal(s.truncation, undefined);
  });

  it('an archive without end-of-archive blocks is read to its end without a warning (as GNU tar does)', async () => {
    const s = await scan(concatTar([entry({ name: 'a' }), entry({ name: 'b' })], { end: false }));
    assert.deepEqual(entries(s).map((e) => e.path), ['a', 'b']);
    assert.deepEqual(s.warnings, []);
    assert.equal(s.endOffset, 2 * BLOCK);
  });

  it('an empty stream is an empty index', async () => {
    const s = await scan(Buffer.alloc(0));
    assert.equal(s.index.count, 0);
    assert.equal(s.endOffset, 0);
  });

  it('stray bytes after the last member are a truncation warning with its code, layer and place', async () => {
    const s = await scan(Buffer.concat([entry({ name: 'a' }), Buffer.alloc(100, 1)]));
    assert.equal(s.index.count, 1);
    assert.deepEqual(s.warnings, [{ code: 'truncated', layer: 'layer t', text: 'layer t: truncated: 100 stray bytes at byte 512' }]);
    assert.equal(s.truncation, 'truncated: 100 stray bytes at byte 512');
  });

  it('data cut short keeps the member and says how much was missing', async () => {
    const whole = entry({ name: 'big' }, Buffer.alloc(2000, 7));
    const s = await scan(whole.subarray(0, BLOCK + 1000));
    assert.deepEqual(entries(s).map((e) => e.path), ['big']);
    assert.equal(s.warnings.length, 1);
    assert.equal(s.warnings[0].code, 'truncated');
    assert.equal(s.warnings[0].text, 'layer t: truncated in the data of big (needs 2512 bytes, have 1512)');
    assert.equal(s.truncation, 'truncated in the data of big (needs 2512 bytes, have 1512)');
  });

  it('a header cut inside an extension header is an error naming the stream and the place', async () => {
    const pax = paxHeader([['path', 'x'.repeat(600)]]);
    await assert.rejects(scan(pax.subarray(0, BLOCK + 100)), /^LocatedError: layer t: truncated in pax header at byte 512$/);
  });

  it('a stream of unknown size is not checked against its size', async () => {
    const s = await scanTarStream(streamSource(concatTar([entry({ name: 'a' }, Buffer.from('hi'))])), 'layer t');
    assert.equal(s.index.count, 1);
    assert.deepEqual(s.warnings, []);
  });
});

describe('header fields', () => {
  it('isZeroBlock is true only for 512 zero bytes', () => {
    assert.equal(isZeroBlock(Buffer.alloc(BLOCK)), true);
    const b = Buffer.alloc(BLOCK);
    b[511] = 1;
    assert.equal(isZeroBlock(b), false);
  });

  it('a bad checksum names both sums', () => {
    const h = header({ name: 'a' });
    h[0] ^= 1;
    assert.throws(() => decodeHeader(h), /checksum mismatch/);
  });

  it('devices keep their numbers; other types drop them', async () => {
    const s = await scan(concatTar([
      entry({ name: 'dev/null', typeflag: '3', devmajor: 1, devminor: 3 }),
      entry({ name: 'dev/sda', typeflag: '4', devmajor: 8, devminor: 0 }),
      entry({ name: 'fifo', typeflag: '6', devmajor: 9, devminor: 9 }),
    ]));
    const [c, b, p] = entries(s);
    assert.deepEqual([c.type, c.devmajor, c.devminor], [EntryType.CharDevice, 1, 3]);
    assert.deepEqual([b.type, b.devmajor, b.devminor], [EntryType.BlockDevice, 8, 0]);
    assert.deepEqual([p.type, p.devmajor, p.devminor], [EntryType.Fifo, undefined, undefined]);
  });

  it('header-only types have no data whatever their size field says: the next header follows at once', async () => {
    const s = await scan(concatTar([header({ name: 'd/', typeflag: '5', size: 1024 }), entry({ name: 'after' })]));
    assert.deepEqual(entries(s).map((e) => [e.path, e.size]), [['d', 0], ['after', 0]]);
  });

  it('hard-link targets are normalized like paths; one leaving the root is skipped with skipped-entry', async () => {
    const s = await scan(concatTar([
      entry({ name: 'a' }, Buffer.from('x')),
      entry({ name: 'l1', typeflag: '1', linkname: './a' }),
      entry({ name: 'l2', typeflag: '1', linkname: '/a' }),
      entry({ name: 'l3', typeflag: '1', linkname: '../a' }),
    ]));
    assert.deepEqual(entries(s).map((e) => [e.path, e.linkname]), [['a', undefined], ['l1', 'a'], ['l2', 'a']]);
    assert.deepEqual(s.warnings, [{ code: 'skipped-entry', layer: 'layer t', entry: 'l3', text: 'layer t: skipped hard link l3: target ../a leaves the root' }]);
  });

  it('a symlink target is kept as written, absolute or climbing', async () => {
    const s = await scan(concatTar([entry({ name: 's', typeflag: '2', linkname: '../../etc/x' })]));
    assert.equal(entries(s)[0].linkname, '../../etc/x');
  });

  it('an unknown typeflag is read as a regular file, with its data, and an unknown-type warning', async () => {
    const s = await scan(concatTar([entry({ name: 'odd', typeflag: 'Z' }, Buffer.from('data')), entry({ name: 'next' })]));
    assert.deepEqual(entries(s).map((e) => [e.path, e.type, e.size]), [['odd', EntryType.File, 4], ['next', EntryType.File, 0]]);
    assert.deepEqual(s.warnings, [{ code: 'unknown-type', layer: 'layer t', entry: 'odd', text: 'layer t: unknown entry type "Z" for odd, read as a file' }]);
  });

  it('a malformed pax uid is a malformed-pax warning and the header field is used', async () => {
    const s = await scan(concatTar([paxHeader([['uid', '12x']]), entry({ name: 'f', uid: 7 })]));
    assert.equal(entries(s)[0].uid, 7);
    assert.equal(s.warnings[0].code, 'malformed-pax');
    assert.equal(s.warnings[0].entry, 'f');
  });
});

describe('sparse files in each GNU format', () => {
  const chunks = [
    { offset: 0, data: Buffer.alloc(BLOCK, 1) },
    { offset: 4 * BLOCK, data: Buffer.alloc(BLOCK, 2) },
  ];
  // GNU tar declares a trailing hole with an empty extent at the real size (raw-tar does too).
  const extents = [{ offset: 0, length: BLOCK }, { offset: 4 * BLOCK, length: BLOCK }, { offset: 8 * BLOCK, length: 0 }];

  it('old GNU (S) with the map in the header', async () => {
    const s = await scan(concatTar([oldGnuSparse('sp', 8 * BLOCK, chunks), entry({ name: 'after' })]));
    const [sp, after] = entries(s);
    assert.equal(sp.size, 8 * BLOCK);
    assert.equal(sp.storedSize, 2 * BLOCK);
    assert.deepEqual(sp.sparse, extents);
    assert.equal(after.path, 'after');
  });

  it('old GNU (S) with extension blocks: every extent is read, and the data starts after them', async () => {
    // 30 extents and the trailing empty one: 4 in the header, 21 in the first extension block, 6 in a second.
    const many = Array.from({ length: 30 }, (_, i) => ({ offset: 2 * i * BLOCK, data: Buffer.alloc(BLOCK, i + 1) }));
    const s = await scan(concatTar([oldGnuSparse('many', 61 * BLOCK, many), entry({ name: 'after' })]));
    const [sp, after] = entries(s);
    assert.equal(sp.sparse!.length, 31);
    assert.equal(sp.size, 61 * BLOCK);
    assert.equal(sp.storedSize, 30 * BLOCK);
    assert.deepEqual(sp.sparse![29], { offset: 58 * BLOCK, length: BLOCK });
    assert.equal(sp.dataOffset, 3 * BLOCK); // header and two extension blocks
    assert.equal(after.path, 'after');
  });

  it('an extension block decodes 21 pairs and its isextended flag', () => {
    const ext = Buffer.alloc(BLOCK);
    ext.write('00000000001\0', 0, 'latin1');
    ext.write('00000000002\0', 12, 'latin1');
    ext[504] = 1;
    assert.deepEqual(decodeOldGnuSparseExtension(ext), { extents: [{ offset: 1, length: 2 }], extended: true });
  });

  it('pax 0.0: repeated GNU.sparse.offset/numbytes records', async () => {
    const s = await scan(concatTar([
      paxHeader([['GNU.sparse.size', '4096'], ['GNU.sparse.numblocks', '2'], ['GNU.sparse.offset', '0'], ['GNU.sparse.numbytes', '10'], ['GNU.sparse.offset', '1000'], ['GNU.sparse.numbytes', '20']]),
      entry({ name: 'sp' }, Buffer.alloc(30, 1)),
    ]));
    const [sp] = entries(s);
    assert.equal(sp.size, 4096);
    assert.deepEqual(sp.sparse, [{ offset: 0, length: 10 }, { offset: 1000, length: 20 }]);
  });

  it('pax 0.1: one GNU.sparse.map record, and GNU.sparse.name over the header name', async () => {
    const s = await scan(concatTar([
      paxHeader([['GNU.sparse.size', '5000'], ['GNU.sparse.name', 'real/name'], ['GNU.sparse.map', '0,10,4000,5']]),
      entry({ name: 'GNUSparseFile.0/name' }, Buffer.alloc(15, 1)),
    ]));
    const [sp] = entries(s);
    assert.equal(sp.path, 'real/name');
    assert.equal(sp.size, 5000);
    assert.deepEqual(sp.sparse, [{ offset: 0, length: 10 }, { offset: 4000, length: 5 }]);
  });

  it('pax 1.0: the map at the start of the data, not counted as stored content', async () => {
    const s = await scan(concatTar([paxSparse10('dir/sp', 8 * BLOCK, chunks), entry({ name: 'after' })]));
    const [sp, after] = entries(s);
    assert.equal(sp.path, 'dir/sp');
    assert.equal(sp.size, 8 * BLOCK);
    assert.deepEqual(sp.sparse, extents);
    assert.equal(sp.storedSize, 2 * BLOCK);
    assert.equal(sp.dataOffset, 4 * BLOCK); // pax header and its data, member header, the map's block
    assert.equal(after.path, 'after');
  });

  it('a sparse map that runs past the real size is an error', async () => {
    const tar = concatTar([paxHeader([['GNU.sparse.size', '10'], ['GNU.sparse.map', '5,20']]), entry({ name: 'sp' }, Buffer.alloc(20))]);
    await assert.rejects(scan(tar), /layer t: invalid sparse map for sp/);
  });
});

describe('pax records', () => {
  it('parses length-prefixed records, keeps repeated keys in order and binary values as bytes', () => {
    const value = Buffer.from([0, 0xff, 0x0a]);
    const rec = (k: string, v: Buffer) => {
      const body = Buffer.concat([Buffer.from(` ${k}=`), v, Buffer.from('\n')]);
      const len = body.length + String(body.length + 2).length;
      return Buffer.concat([Buffer.from(String(len)), body]);
    };
    const pax = parsePax(Buffer.concat([rec('a', Buffer.from('1')), rec('a', Buffer.from('2')), rec('SCHILY.xattr.user.x', value), Buffer.alloc(10)]));
    assert.deepEqual(pax.map(([k]) => k), ['a', 'a', 'SCHILY.xattr.user.x']);
    assert.deepEqual(pax[2][1], value);
    assert.equal(paxValue(pax, 'a'), '2');
  });

  it('an empty value counts as absent', () => {
    assert.equal(paxValue(parsePax(Buffer.from('8 path=\n')), 'path'), undefined);
  });

  it('rejects a record without a length, with a wrong length, or without "="', () => {
    assert.throws(() => parsePax(Buffer.from('path=x\n')), /no length/);
    assert.throws(() => parsePax(Buffer.from('99 path=x\n')), /invalid pax record at byte 0/);
    assert.throws(() => parsePax(Buffer.from('9 pathxx\n')), /no '='/);
  });

  it('counts are whole non-negative decimals exact in a double', () => {
    assert.equal(parsePaxCount('42'), 42);
    assert.equal(parsePaxCount('+7'), 7);
    for (const bad of ['-1', '1.5', '1e3', '', '9007199254740993']) assert.equal(parsePaxCount(bad), undefined, bad);
  });
});

describe('entry type names, one table', () => {
  it('names, words and find letters agree', () => {
    assert.deepEqual([EntryType.File, EntryType.HardLink, EntryType.Symlink, EntryType.CharDevice, EntryType.BlockDevice, EntryType.Directory, EntryType.Fifo].map(typeName), ['file', 'hardlink', 'symlink', 'char', 'block', 'dir', 'fifo']);
    assert.equal(typeWords(EntryType.Symlink), 'symbolic link');
    assert.equal(typeOfFindLetter('p'), EntryType.Fifo);
    assert.equal(typeOfFindLetter('toString'), undefined);
  });
});
