// An eStargz writer for the tests, after stargz-snapshotter's estargz.Writer (docs/estargz.md):
// it turns a tar into a gzip stream where every regular file's data starts a new gzip member
// (cut into chunks of `chunkSize`, each its own member), the tar headers between ride in the
// member that is open, then one member holding a tar with `stargz.index.json` (the TOC) and
// its end-of-archive blocks, then the 51-byte footer naming the TOC member's offset. A landmark
// file comes first (`.no.prefetch.landmark`) or after the first `prefetch` entries
// (`.prefetch.landmark`), as Build() puts it. Headers are copied byte for byte from the input.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';

export interface EstargzOptions {
  /** Data per chunk (stargz-snapshotter's default: 4 MiB). */
  chunkSize?: number;
  /** How many leading entries are "prioritized": `.prefetch.landmark` follows them. None: `.no.prefetch.landmark` first. */
  prefetch?: number;
  level?: number;
}

export interface Estargz {
  blob: Buffer;
  /** sha256 of the whole uncompressed tar (what a normal runtime unpacks). */
  diffId: string;
  /** sha256 of the TOC JSON: the `containerd.io/snapshot/stargz/toc.digest` annotation. */
  tocDigest: string;
  uncompressedSize: number;
  tocOffset: number;
  toc: { version: number; entries: Array<Record<string, unknown>> };
}

interface TarMember {
  /** The header blocks as they were (extension headers included). */
  raw: Buffer;
  name: string;
  typeflag: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Record<string, Buffer>;
  data: Buffer;
}

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const pad = (n: number) => (512 - (n % 512)) % 512;

function num(block: Buffer, off: number, len: number): number {
  if (block[off] & 0x80) {
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + block[i];
    return v; // positive base-256 only (what the tests write)
  }
  const s = block.toString('latin1', off, off + len).replace(/\0.*$/s, '').trim();
  return s ? parseInt(s, 8) : 0;
}
const str = (block: Buffer, off: number, len: number) => block.toString('latin1', off, off + len).replace(/\0.*$/s, '');

function paxRecords(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < body.length) {
    const sp = body.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(body.toString('latin1', i, sp), 10);
    const rec = body.subarray(sp + 1, i + len - 1);
    const eq = rec.indexOf(0x3d);
    out.set(rec.toString('latin1', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    i += len;
  }
  return out;
}

/** The members of a tar, headers kept as bytes (pax and GNU long names folded into the fields). */
export function readTar(tar: Buffer): TarMember[] {
  const out: TarMember[] = [];
  let pos = 0;
  let start = 0;
  let pax = new Map<string, Buffer>();
  let longName: string | undefined;
  let longLink: string | undefined;
  while (pos + 512 <= tar.length) {
    const h = tar.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const typeflag = String.fromCharCode(h[156] || 0x30);
    const size = num(h, 124, 12);
    const body = tar.subarray(pos + 512, pos + 512 + size);
    const next = pos + 512 + size + pad(size);
    if (typeflag === 'x') pax = new Map([...pax, ...paxRecords(body)]);
    else if (typeflag === 'L') longName = str(body, 0, body.length);
    else if (typeflag === 'K') longLink = str(body, 0, body.length);
    else if (typeflag !== 'g') {
      const prefix = str(h, 345, 155);
      const name = pax.get('path')?.toString('latin1') ?? longName ?? (prefix ? `${prefix}/${str(h, 0, 100)}` : str(h, 0, 100));
      const realSize = pax.has('size') ? Number(pax.get('size')!.toString()) : size;
      const xattrs: Record<string, Buffer> = {};
      for (const [k, v] of pax) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = v;
      out.push({
        raw: tar.subarray(start, pos + 512),
        name,
        typeflag,
        size: realSize,
        mode: num(h, 100, 8),
        uid: pax.has('uid') ? Number(pax.get('uid')!.toString()) : num(h, 108, 8),
        gid: pax.has('gid') ? Number(pax.get('gid')!.toString()) : num(h, 116, 8),
        mtime: pax.has('mtime') ? Number(pax.get('mtime')!.toString()) : num(h, 136, 12),
        linkname: pax.get('linkpath')?.toString('latin1') ?? longLink ?? str(h, 157, 100),
        devmajor: num(h, 329, 8),
        devminor: num(h, 337, 8),
        xattrs,
        data: tar.subarray(pos + 512, pos + 512 + realSize),
      });
      pax = new Map();
      longName = longLink = undefined;
      start = next;
      pos = next;
      continue;
    }
    pos = next;
  }
  return out;
}

/** A ustar header with only name, type and size (and a checksum), as Go writes `tar.Header{Name, Typeflag, Size}`. */
function bareHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'latin1');
  h.write('0000000\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  h.write('00000000000\0', 136, 'latin1');
  h.fill(0x20, 148, 156);
  h.write('0', 156, 'latin1');
  h.write('ustar\x0000', 257, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

/** Go's cleanEntryName: path.Clean("/" + name) without the leading slash. */
function cleanName(name: string): string {
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') parts.pop();
    else parts.push(p);
  }
  return parts.join('/');
}

const TYPES: Record<string, string> = { '0': 'reg', '\0': 'reg', '7': 'reg', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo' };

/** Byte strings (one char per byte) as the JSON strings Go would write for them (UTF-8). */
const text = (s: string) => Buffer.from(s, 'latin1').toString('utf8');

/** An entry's fields in the order Go's TOCEntry struct declares them (its JSON is in that order). */
const FIELDS = ['name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'groupName', 'offset', 'innerOffset', 'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest'];
function goOrder(e: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(FIELDS.filter((k) => k === 'name' || k === 'type' || (e[k] !== undefined && e[k] !== 0 && e[k] !== '')).map((k) => [k, e[k]]));
}

/** The 51-byte footer: an empty stored gzip member whose extra field names the TOC offset. */
export function footer(tocOffset: number): Buffer {
  const sub = Buffer.from(`${tocOffset.toString(16).padStart(16, '0')}STARGZ`, 'latin1');
  const extra = Buffer.concat([Buffer.from('SG'), Buffer.from([sub.length, 0]), sub]);
  const head = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, extra.length, 0]);
  // An empty final stored block, then CRC32 and ISIZE of nothing.
  const f = Buffer.concat([head, extra, Buffer.from([1, 0, 0, 0xff, 0xff]), Buffer.alloc(8)]);
  if (f.length !== 51) throw new Error(`footer is ${f.length} bytes`);
  return f;
}

export function toEstargz(tar: Buffer, opts: EstargzOptions = {}): Estargz {
  const chunkSize = opts.chunkSize ?? 4 << 20;
  const members = readTar(tar);
  const landmark = (name: string): TarMember => ({ raw: bareHeader(name, 1), name, typeflag: '0', size: 1, mode: 0, uid: 0, gid: 0, mtime: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: {}, data: Buffer.from([0x0f]) });
  if (opts.prefetch) members.splice(opts.prefetch, 0, landmark('.prefetch.landmark'));
  else members.unshift(landmark('.no.prefetch.landmark'));

  const parts: Buffer[] = [];
  const diff = createHash('sha256');
  let uncompressed = 0;
  let n = 0;
  let gz: Buffer[] | undefined;
  const open = () => (gz ??= []);
  const close = () => {
    if (!gz) return;
    const c = zlib.gzipSync(Buffer.concat(gz), { level: opts.level ?? 6 });
    parts.push(c);
    n += c.length;
    gz = undefined;
  };
  const write = (b: Buffer) => {
    open().push(b);
    diff.update(b);
    uncompressed += b.length;
  };
  const entries: Array<Record<string, unknown>> = [];
  for (const m of members) {
    open();
    write(m.raw);
    const type = TYPES[m.typeflag];
    if (!type) throw new Error(`estargz writer: typeflag ${JSON.stringify(m.typeflag)} not supported`);
    let ent: Record<string, unknown> = {
      name: text(cleanName(m.name)),
      type,
      ...(type === 'reg' && m.size && { size: m.size }),
      ...(m.mtime && { modtime: new Date(Math.round(m.mtime) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') }),
      ...((type === 'symlink' || type === 'hardlink') && m.linkname && { linkName: text(type === 'hardlink' ? cleanName(m.linkname) : m.linkname) }),
      ...(m.mode && { mode: m.mode }),
      ...(m.uid && { uid: m.uid }),
      ...(m.gid && { gid: m.gid }),
      ...(m.devmajor && { devMajor: m.devmajor }),
      ...(m.devminor && { devMinor: m.devminor }),
      ...(Object.keys(m.xattrs).length && { xattrs: Object.fromEntries(Object.entries(m.xattrs).map(([k, v]) => [text(k), v.toString('base64')])) }),
    };
    const first = ent;
    if (type === 'reg' && m.size > 0) {
      let written = 0;
      while (written < m.size) {
        close();
        let size = chunkSize;
        const remain = m.size - written;
        if (remain < size) size = remain;
        else ent.chunkSize = size;
        ent.offset = n;
        ent.chunkOffset = written;
        open();
        const chunk = m.data.subarray(written, written + size);
        write(chunk);
        ent.chunkDigest = sha256(chunk);
        entries.push(ent);
        written += size;
        ent = { name: first.name, type: 'chunk' };
      }
    } else entries.push(ent);
    if (type === 'reg') first.digest = sha256(m.data);
    write(Buffer.alloc(pad(m.size)));
  }
  close();
  const tocOffset = n;
  const toc = { version: 1, entries: entries.map(goOrder) };
  const json = Buffer.from(JSON.stringify(toc, null, '\t'));
  const tocTar = Buffer.concat([bareHeader('stargz.index.json', json.length), json, Buffer.alloc(pad(json.length)), Buffer.alloc(1024)]);
  diff.update(tocTar);
  uncompressed += tocTar.length;
  parts.push(zlib.gzipSync(tocTar, { level: opts.level ?? 6 }), footer(tocOffset));
  return { blob: Buffer.concat(parts), diffId: `sha256:${diff.digest('hex')}`, tocDigest: sha256(json), uncompressedSize: uncompressed, tocOffset, toc };
}

/**
 * An OCI layout folder holding one image whose layers are eStargz blobs (media type gzip, with
 * the toc.digest and uncompressed-size annotations), to push as it is (pushLayout).
 */
export function writeEstargzLayout(dir: string, layers: Estargz[], opts: { annotate?: boolean } = {}): void {
  writeLayout(
    dir,
    layers.map((l) => ({
      blob: l.blob,
      diffId: l.diffId,
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      ...(opts.annotate !== false && { annotations: { 'containerd.io/snapshot/stargz/toc.digest': l.tocDigest, 'io.containers.estargz.uncompressed-size': String(l.uncompressedSize) } }),
    })),
  );
}

export interface LayoutLayer {
  blob: Buffer;
  diffId: string;
  mediaType: string;
  annotations?: Record<string, string>;
}

/** An OCI layout folder holding one image made of these layer blobs, as they are. */
export function writeLayout(dir: string, layers: LayoutLayer[]): void {
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer) => {
    const d = sha256(b);
    fs.writeFileSync(path.join(dir, 'blobs', 'sha256', d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-02T03:04:05Z',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: '2024-01-02T03:04:05Z', created_by: 'test layer' })),
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(config) },
      layers: layers.map((l) => ({ mediaType: l.mediaType, ...put(l.blob), ...(l.annotations && { annotations: l.annotations }) })),
    }),
  );
  const m = put(manifest);
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m }] }));
}

/**
 * A tar as zstd in the seekable format (facebook/zstd contrib/seekable_format): independent
 * frames of `frameBytes` uncompressed bytes each, then the seek table in a skippable frame
 * (compressed and decompressed size per frame, no checksums) and its 9-byte footer.
 */
export function toSeekableZstd(tar: Buffer, frameBytes = 256 * 1024): Buffer {
  const frames: Buffer[] = [];
  const table: Buffer[] = [];
  for (let at = 0; at < tar.length; at += frameBytes) {
    const raw = tar.subarray(at, at + frameBytes);
    const c = zstdCompress(raw);
    frames.push(c);
    const e = Buffer.alloc(8);
    e.writeUInt32LE(c.length, 0);
    e.writeUInt32LE(raw.length, 4);
    table.push(e);
  }
  const footer = Buffer.alloc(9);
  footer.writeUInt32LE(table.length, 0);
  footer[4] = 0;
  footer.writeUInt32LE(0x8f92eab1, 5);
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a5e, 0);
  head.writeUInt32LE(table.length * 8 + 9, 4);
  return Buffer.concat([...frames, head, ...table, footer]);
}
