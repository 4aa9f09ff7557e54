/** File types the engine knows, numbered like tar's typeflags so the index stays one byte each. */
export enum EntryType {
  File = 0,
  HardLink = 1,
  Symlink = 2,
  CharDevice = 3,
  BlockDevice = 4,
  Directory = 5,
  Fifo = 6,
}

/** One data run of a sparse file: `length` bytes of stored data belong at logical `offset`. */
export interface SparseExtent {
  offset: number;
  length: number;
}

/** A tar member after pax/GNU extensions have been folded in; `dataOffset` is in the tar stream. */
export interface TarEntry {
  /** Byte string (one char per byte), as are linkname, uname, gname and xattr names. */
  path: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Logical size: the file's length as extracted (the real size for sparse files). */
  size: number;
  /** Whole seconds since the epoch, signed (before 1970 is negative). */
  mtime: number;
  /** The sub-second part pax may carry, 0..999,999,999 (also for negative times: -1.5 s is -2 s + 500,000,000 ns). */
  mtimeNsec: number;
  /** Byte position of the member's data in the (uncompressed) tar stream. */
  dataOffset: number;
  /** Bytes stored in the tar for this member (differs from size only for sparse files). */
  storedSize: number;
  linkname?: string;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
  sparse?: SparseExtent[];
}

export const S_IFMT = 0o170000;

/** A type's name in JSON output and in extract's plan. */
export type TypeName = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

/**
 * Everything said about a type, in one table: its JSON name, its name in prose (messages), its
 * `find -type` letter, the typeflag the tar writer gives it and its st_mode type bits.
 */
const TYPES: Record<EntryType, { name: TypeName; words: string; findLetter?: string; typeflag: string; modeBits: number }> = {
  [EntryType.File]: { name: 'file', words: 'regular file', findLetter: 'f', typeflag: '0', modeBits: 0o100000 },
  [EntryType.HardLink]: { name: 'hardlink', words: 'regular file', typeflag: '1', modeBits: 0o100000 },
  [EntryType.Symlink]: { name: 'symlink', words: 'symbolic link', findLetter: 'l', typeflag: '2', modeBits: 0o120000 },
  [EntryType.CharDevice]: { name: 'char', words: 'character device', findLetter: 'c', typeflag: '3', modeBits: 0o020000 },
  [EntryType.BlockDevice]: { name: 'block', words: 'block device', findLetter: 'b', typeflag: '4', modeBits: 0o060000 },
  [EntryType.Directory]: { name: 'dir', words: 'directory', findLetter: 'd', typeflag: '5', modeBits: 0o040000 },
  [EntryType.Fifo]: { name: 'fifo', words: 'fifo', findLetter: 'p', typeflag: '6', modeBits: 0o010000 },
};

/** st_mode for an entry: the type bits from the typeflag, the permission bits from the header. */
export function statMode(type: EntryType, mode: number): number {
  return TYPES[type].modeBits | (mode & 0o7777);
}

/** `file`, `dir`, `symlink`…: the type in JSON output. */
export function typeName(type: EntryType): TypeName {
  return TYPES[type].name;
}

/** `regular file`, `directory`, `symbolic link`…: the type in a message. */
export function typeWords(type: EntryType): string {
  return TYPES[type]?.words ?? 'regular file';
}

/** The type `find -type LETTER` selects (f d l c b p), or undefined. */
export function typeOfFindLetter(letter: string): EntryType | undefined {
  for (const t of Object.keys(TYPES).map(Number) as EntryType[]) if (TYPES[t].findLetter === letter) return t;
  return undefined;
}

/** The typeflag the tar writer gives a type. */
export function typeflagOf(type: EntryType): string {
  return TYPES[type].typeflag;
}
