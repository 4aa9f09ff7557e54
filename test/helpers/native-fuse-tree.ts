/*
 * The tiny in-memory filesystem test/native-fuse.test.ts mounts through the native fork
 * (served by native-fuse-server.ts in a child process). Names, symlink targets and xattr names
 * are byte strings: one JS char per byte (latin1), as the fork hands them over.
 */

/** A byte string from raw bytes. */
export const bytes = (...parts: Array<string | number[]>): string =>
  parts.map((p) => (typeof p === 'string' ? p : Buffer.from(p).toString('latin1'))).join('');
/** A byte string holding the UTF-8 encoding of `text`. */
export const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');

export interface TestNode {
  name: string;
  kind: 'file' | 'symlink';
  content?: Buffer;
  target?: string;
  mtime: number;
  mtimeNsec?: number;
  xattrs?: Array<[name: string, value: Buffer]>;
}

/** 200 bytes running through 0x00..0xff and back: NUL and high bytes both included. */
export const BIN_XATTR = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 37 + (i >> 2)) & 0xff));
/** A 64 KiB value (the most Linux allows), every byte value many times over. */
export const BIG_XATTR = Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 131 + (i >> 8)) & 0xff));
/** Enough xattr names that their list (25 bytes each with the NUL) is over Python's first 256 bytes. */
export const MANY_XATTR_NAMES = Array.from({ length: 20 }, (_, i) => `user.attribute-number-${String(i).padStart(2, '0')}`);

export const LATIN1_NAME = bytes('latin1-', [0xe9], '.txt');
export const UTF8_NAME = utf8('café');
export const LINK_TARGET = bytes('target-', [0xff], '-', [0xc3, 0x28]);
export const ODD_XATTR_NAME = bytes('user.', [0xe9], 't', [0xe9, 0x80]);

export const TREE: TestNode[] = [
  { name: LATIN1_NAME, kind: 'file', content: Buffer.from('latin1 name\n'), mtime: 1_700_000_000 },
  { name: UTF8_NAME, kind: 'file', content: Buffer.from('utf-8 name\n'), mtime: 1_700_000_000 },
  { name: 'old', kind: 'file', content: Buffer.from('1960\n'), mtime: -315_360_000, mtimeNsec: 0 },
  { name: 'precise', kind: 'file', content: Buffer.from('ns\n'), mtime: 1_748_089_464, mtimeNsec: 951_928_467 },
  { name: 'future', kind: 'file', content: Buffer.from('2255\n'), mtime: 9_000_000_000, mtimeNsec: 0 },
  { name: 'fraction', kind: 'file', content: Buffer.from('f\n'), mtime: 1_600_000_000, mtimeNsec: 250_000_000 },
  { name: 'link', kind: 'symlink', target: LINK_TARGET, mtime: 1_700_000_000 },
  {
    name: 'xattrs',
    kind: 'file',
    content: Buffer.from('x\n'),
    mtime: 1_700_000_000,
    xattrs: [
      ['user.bin', BIN_XATTR],
      ['user.text', Buffer.from('hello')],
    ],
  },
  { name: 'big-xattr', kind: 'file', content: Buffer.alloc(0), mtime: 1_700_000_000, xattrs: [['user.big', BIG_XATTR]] },
  { name: 'many-xattrs', kind: 'file', content: Buffer.alloc(0), mtime: 1_700_000_000, xattrs: MANY_XATTR_NAMES.map((n, i) => [n, Buffer.from([i])]) },
  { name: 'odd-xattr-name', kind: 'file', content: Buffer.alloc(0), mtime: 1_700_000_000, xattrs: [[ODD_XATTR_NAME, Buffer.from('odd')]] },
];
