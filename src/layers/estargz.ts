import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import type { ByteSource } from '../io/byte-source';
import { EntryType } from '../tar/entry';
import { buildTocLayer, parseTocJson, tocContentSource, TocError, type LazyLayer, type TocLayer } from './toc-index';

/*
 * eStargz (stargz-snapshotter's docs/estargz.md): a gzip layer whose tar is compressed as one
 * gzip member per file chunk, followed by a member holding a tar with the TOC
 * (`stargz.index.json`) and a 51-byte footer, an empty gzip member whose extra field says where
 * the TOC member starts. Any gzip reader sees the plain tar (the TOC file included), so the
 * layer's diff_id is that of the whole tar; a reader that knows the layout reads the footer and
 * the TOC by ranges and then only the members holding the chunks it needs.
 */

export const FOOTER_SIZE = 51;
const LEGACY_FOOTER_SIZE = 47;
export const TOC_NAME = 'stargz.index.json';
export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const UNCOMPRESSED_SIZE_ANNOTATION = 'io.containers.estargz.uncompressed-size';
/** Largest TOC member read (a TOC is about 300 bytes per entry). */
const MAX_TOC = 256 * 1024 * 1024;

/**
 * The TOC offset a footer names; undefined when these bytes are not one. Both forms: eStargz
 * (extra subfield 'SG', LEN 22, "%016xSTARGZ") and legacy stargz (the 22 bytes as the whole extra).
 */
export function parseFooter(tail: Buffer): { tocOffset: number; footerSize: number } | undefined {
  const at = (buf: Buffer, xlen: number, sub: number): number | undefined => {
    // gzip magic, deflate, FEXTRA only, then XLEN.
    if (buf[0] !== 0x1f || buf[1] !== 0x8b || buf[2] !== 8 || buf[3] !== 4 || buf.readUInt16LE(10) !== xlen) return undefined;
    const field = buf.toString('latin1', sub, sub + 22);
    if (!/^[0-9a-f]{16}STARGZ$/.test(field)) return undefined;
    const off = Number.parseInt(field.slice(0, 16), 16);
    return Number.isSafeInteger(off) ? off : undefined;
  };
  if (tail.length >= FOOTER_SIZE) {
    const f = tail.subarray(tail.length - FOOTER_SIZE);
    if (f[12] === 0x53 && f[13] === 0x47 && f.readUInt16LE(14) === 22) {
      const off = at(f, 26, 16);
      if (off !== undefined) return { tocOffset: off, footerSize: FOOTER_SIZE };
    }
  }
  const legacy = tail.length >= LEGACY_FOOTER_SIZE ? at(tail.subarray(tail.length - LEGACY_FOOTER_SIZE), 22, 12) : undefined;
  return legacy === undefined ? undefined : { tocOffset: legacy, footerSize: LEGACY_FOOTER_SIZE };
}

/**
 * The first `want` decompressed bytes of the gzip member(s) in `compressed` (fewer if they hold
 * fewer), without inflating the rest: a member holds its chunk and then the tar headers of the
 * entries after it.
 */
export function gunzipPrefix(compressed: Buffer, want: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let have = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      gz.destroy();
      if (err && have < want) reject(err);
      else resolve(Buffer.concat(parts).subarray(0, Math.min(have, want)));
    };
    const gz = zlib.createGunzip();
    gz.on('data', (d: Buffer) => {
      parts.push(d);
      have += d.length;
      if (have >= want) finish();
    });
    gz.on('end', () => finish());
    gz.on('error', (err) => finish(err));
    gz.end(compressed);
  });
}

export interface EstargzToc {
  tocOffset: number;
  /** The TOC JSON as stored: its sha256 is what the toc.digest annotation names. */
  json: Buffer;
}

/**
 * Reads the footer and the TOC of `blob`. Undefined when the blob has no eStargz footer (a plain
 * gzip layer); throws TocError when it has one but the TOC cannot be read.
 */
export async function readEstargzToc(blob: ByteSource): Promise<EstargzToc | undefined> {
  if (blob.size < FOOTER_SIZE) return undefined;
  const tail = Buffer.alloc(FOOTER_SIZE);
  await blob.read(tail, 0, FOOTER_SIZE, blob.size - FOOTER_SIZE);
  const footer = parseFooter(tail);
  if (!footer) return undefined;
  const { tocOffset } = footer;
  const tocEnd = blob.size - footer.footerSize;
  if (tocOffset >= tocEnd || tocEnd - tocOffset > MAX_TOC) throw new TocError(`footer puts the TOC at ${tocOffset}, outside the blob`);
  const member = Buffer.alloc(tocEnd - tocOffset);
  await blob.read(member, 0, member.length, tocOffset);
  const tar = await new Promise<Buffer>((resolve, reject) => zlib.gunzip(member, { maxOutputLength: 4 * MAX_TOC }, (err, out) => (err ? reject(err) : resolve(out)))).catch(
    (err: Error) => {
      throw new TocError(`TOC member at ${tocOffset}: ${err.message}`);
    },
  );
  // One tar member: a ustar header naming stargz.index.json, then the JSON.
  const name = tar.toString('latin1', 0, 100).replace(/\0.*$/s, '');
  const size = Number.parseInt(tar.toString('latin1', 124, 136).replace(/\0.*$/s, '').trim() || 'x', 8);
  if (name !== TOC_NAME || !Number.isSafeInteger(size) || 512 + size > tar.length) throw new TocError(`no ${TOC_NAME} at the TOC offset ${tocOffset}`);
  return { tocOffset, json: Buffer.from(tar.subarray(512, 512 + size)) };
}

/** The layer's index and content stream from its TOC (see toc-index.ts). */
export function estargzLayer(blob: ByteSource, toc: EstargzToc, cacheKey: string): { layer: TocLayer; stream: ByteSource } {
  const entries = parseTocJson(toc.json);
  // A member ends where the next one begins; the last chunk's member ends where the TOC's begins.
  const starts = [...new Set(entries.filter((e) => e.offset).map((e) => e.offset!))].sort((a, b) => a - b);
  starts.push(toc.tocOffset);
  const nextStart = new Map(starts.slice(0, -1).map((s, i) => [s, starts[i + 1]]));
  const layer = buildTocLayer(entries, {
    pieceEnd: (offset) => nextStart.get(offset) ?? 0,
    // The tar any gzip reader sees ends with the TOC's own file (a header with only name, type
    // and size set, as stargz-snapshotter writes it): listed here so both views are the same.
    trailing: [{ entry: { path: TOC_NAME, type: EntryType.File, mode: 0, uid: 0, gid: 0, size: 0, mtime: 0, mtimeNsec: 0, dataOffset: 0, storedSize: 0 }, content: toc.json }],
  });
  return { layer, stream: tocContentSource(blob, layer, gunzipPrefix, { name: 'estargz', cacheKey }) };
}

/** `sha256:<hex>` of the TOC JSON, to compare with the toc.digest annotation. */
export function tocDigest(toc: EstargzToc): string {
  return `sha256:${createHash('sha256').update(toc.json).digest('hex')}`;
}

/**
 * A gzip layer read through its eStargz TOC, when it has one: undefined for a plain gzip layer
 * and, with a note, for a footer or TOC that cannot be used (the caller then indexes the layer
 * with one pass, which any eStargz layer also allows). A TOC whose digest is not the one the
 * manifest's annotation names is an error: it is not the TOC the image was published with.
 */
export async function openEstargz(blob: ByteSource, annotations: Record<string, string>, what: string, note: (m: string) => void, cacheKey: string): Promise<LazyLayer | undefined> {
  const claimed = annotations[TOC_DIGEST_ANNOTATION];
  try {
    const toc = await readEstargzToc(blob);
    if (!toc) {
      if (claimed) note(`${what}: annotated as eStargz but has no eStargz footer; reading it whole`);
      return undefined;
    }
    if (claimed && tocDigest(toc) !== claimed) throw new Error(`eStargz TOC digest is ${tocDigest(toc)}, the manifest says ${claimed}`);
    const { layer, stream } = estargzLayer(blob, toc, cacheKey);
    const size = Number(annotations[UNCOMPRESSED_SIZE_ANNOTATION]);
    return { index: layer.index, stream, ...(Number.isSafeInteger(size) && size > 0 && { tarSize: size }), warnings: layer.warnings.map((w) => `${what}: ${w}`) };
  } catch (err) {
    if (!(err instanceof TocError)) throw err;
    note(`${what}: eStargz TOC not usable (${err.message}); reading the layer whole`);
    return undefined;
  }
}
