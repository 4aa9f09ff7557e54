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

const typeBits: Record<EntryType, number> = {
  [EntryType.File]: 0o100000,
  [EntryType.HardLink]: 0o100000,
  [EntryType.Symlink]: 0o120000,
  [EntryType.CharDevice]: 0o020000,
  [EntryType.BlockDevice]: 0o060000,
  [EntryType.Directory]: 0o040000,
  [EntryType.Fifo]: 0o010000,
};

/** st_mode for an entry: the type bits from the typeflag, the permission bits from the header. */
export function statMode(type: EntryType, mode: number): number {
  return typeBits[type] | (mode & 0o7777);
}

export function typeName(type: EntryType): string {
  return ['file', 'hardlink', 'symlink', 'char', 'block', 'dir', 'fifo'][type] ?? 'unknown';
}
