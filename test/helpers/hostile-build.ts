// Builders for hostile, broken and huge archives (issue 6): an outer tar written member by
// member (so a test controls order, names, links and bytes), a docker-save layout around given
// layer tars, a million-entry layer streamed to disk, decompression bombs, a seeded PRNG, and
// memory measurement of `ImageView.open` in a fresh child process.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { CompressStream as ZstdCompressStream } from 'zstd-napi';
import * as raw from './raw-tar';

export const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** One member of an outer (archive-level) tar. */
export interface Member {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'link';
  data?: Buffer;
  target?: string;
}

const TYPEFLAG = { file: '0', link: '1', symlink: '2', dir: '5' } as const;

/** The members as one tar, in the order given, with the end-of-archive blocks. */
export function outerTar(members: Member[]): Buffer {
  return raw.concatTar(
    members.map((m) => {
      const type = m.type ?? 'file';
      return raw.entry(
        { name: m.name, typeflag: TYPEFLAG[type], mode: type === 'dir' ? 0o755 : 0o644, linkname: m.target, mtime: 1700000000 },
        type === 'file' ? m.data ?? Buffer.alloc(0) : Buffer.alloc(0),
      );
    }),
  );
}

/** A layer tar from raw-tar parts (headers and data blocks), with end-of-archive blocks. */
export const layer = (...parts: Buffer[]): Buffer => raw.concatTar(parts);

/** A plain file entry (ustar, names written verbatim, up to 100 bytes). */
export const file = (name: string | Buffer, content: string | Buffer = '', fields: Partial<raw.HeaderFields> = {}): Buffer =>
  raw.entry({ name, mode: 0o644, mtime: 1700000000, ...fields }, Buffer.from(content));

/** Any entry named by a pax `path` record (long, binary or control-character names). */
export const paxFile = (name: string | Buffer, content: string | Buffer = '', fields: Partial<raw.HeaderFields> = {}, records: raw.PaxRecord[] = []): Buffer =>
  Buffer.concat([raw.paxHeader([['path', name], ...records]), file('placeholder', content, fields)]);

export const dir = (name: string, mode = 0o755): Buffer => raw.entry({ name, typeflag: '5', mode, mtime: 1700000000 });
export const symlink = (name: string, target: string): Buffer => raw.entry({ name, typeflag: '2', mode: 0o777, linkname: target, mtime: 1700000000 });
export const hardlink = (name: string, target: string): Buffer => raw.entry({ name, typeflag: '1', mode: 0o644, linkname: target, mtime: 1700000000 });

export interface DockerOptions {
  /** Write manifest.json and the config before the layers (docker writes them last). */
  manifestFirst?: boolean;
  tags?: string[];
  /** Edit the config object before it is written. */
  config?: (config: any) => void;
  /** Edit the manifest.json array before it is written. */
  manifest?: (manifest: any[]) => void;
  /** Members appended after everything else. */
  extra?: Member[];
}

export interface DockerArchive {
  members: Member[];
  layerPaths: string[];
  configPath: string;
  diffIds: string[];
}

/**
 * A legacy `docker save` archive (Docker <= 24) around the given layer tars: `<id>/layer.tar`,
 * `<config hex>.json`, `manifest.json`. Returned as members so a test can still change them.
 */
export function dockerArchive(layers: Buffer[], opts: DockerOptions = {}): DockerArchive {
  const diffIds = layers.map((l) => sha256(l));
  const layerPaths = layers.map((_, i) => `${sha256(`layer ${i}`).slice(7)}/layer.tar`);
  const config: any = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/bin:/bin'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created_by: `layer ${i}` })),
  };
  opts.config?.(config);
  const configBytes = Buffer.from(JSON.stringify(config));
  const configPath = `${sha256(configBytes).slice(7)}.json`;
  const manifest: any[] = [{ Config: configPath, RepoTags: opts.tags ?? ['hostile:1'], Layers: layerPaths }];
  opts.manifest?.(manifest);
  const meta: Member[] = [
    { name: configPath, data: configBytes },
    { name: 'manifest.json', data: Buffer.from(JSON.stringify(manifest)) },
  ];
  const layerMembers: Member[] = layers.flatMap((l, i) => [
    { name: path.dirname(layerPaths[i]) + '/', type: 'dir' as const },
    { name: layerPaths[i], data: l },
  ]);
  const members = opts.manifestFirst ? [...meta, ...layerMembers] : [...layerMembers, ...meta];
  return { members: [...members, ...(opts.extra ?? [])], layerPaths, configPath, diffIds };
}

/** Writes a docker archive around `layers` and returns its path. */
export function writeDockerArchive(file: string, layers: Buffer[], opts: DockerOptions = {}): DockerArchive & { path: string } {
  const built = dockerArchive(layers, opts);
  fs.writeFileSync(file, outerTar(built.members));
  return { ...built, path: file };
}

/**
 * An oci-archive around uncompressed layer tars, every digest consistent with the bytes written,
 * except what `opts` overrides: the layer digests the manifest claims, or the config's diff_ids.
 */
export function writeOciArchive(file: string, layers: Buffer[], opts: { layerDigests?: string[]; diffIds?: string[] } = {}): { path: string; layerDigests: string[] } {
  const layerDigests = opts.layerDigests ?? layers.map((l) => sha256(l));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: opts.diffIds ?? layers.map((l) => sha256(l)) } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: layers.map((l, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigests[i], size: l.length })),
  }));
  fs.writeFileSync(file, outerTar([
    { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', data: Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length }] })) },
    { name: `blobs/sha256/${sha256(manifest).slice(7)}`, data: manifest },
    { name: `blobs/sha256/${sha256(config).slice(7)}`, data: config },
    ...layers.map((l, i) => ({ name: `blobs/sha256/${layerDigests[i].slice(7)}`, data: l })),
  ]));
  return { path: file, layerDigests };
}

/** Byte offset of a member's data in an outer tar written by outerTar (all names < 100 bytes). */
export function memberDataOffset(members: Member[], name: string): number {
  let pos = 0;
  for (const m of members) {
    pos += raw.BLOCK;
    if (m.name === name) return pos;
    const size = (m.type ?? 'file') === 'file' ? m.data?.length ?? 0 : 0;
    pos += Math.ceil(size / raw.BLOCK) * raw.BLOCK;
  }
  throw new Error(`no member ${name}`);
}

/** mulberry32: a small seeded PRNG, so every run mutates the same way. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A legacy docker archive with one layer of `entries` empty files (`d<k>/f<i>`, 1,000 per
 * folder, folders implied), streamed to disk: 1,000,000 entries is 512 MB, never in memory.
 */
export function writeManyEntriesArchive(file: string, entries: number, perDir = 1000): { entries: number; dirs: number } {
  const fd = fs.openSync(file, 'w');
  try {
    const id = 'e'.repeat(64);
    const layerSize = entries * raw.BLOCK + 2 * raw.BLOCK;
    fs.writeSync(fd, raw.header({ name: `${id}/layer.tar`, size: layerSize, mtime: 1700000000 }));
    const hash = createHash('sha256');
    const template = raw.header({ name: 'x', mode: 0o644, mtime: 1700000000 });
    const chunkEntries = 4096;
    const chunk = Buffer.alloc(chunkEntries * raw.BLOCK);
    for (let i = 0; i < entries; i += chunkEntries) {
      const n = Math.min(chunkEntries, entries - i);
      for (let j = 0; j < n; j++) {
        const b = chunk.subarray(j * raw.BLOCK, (j + 1) * raw.BLOCK);
        template.copy(b);
        b.fill(0, 0, 100);
        b.write(`d${Math.floor((i + j) / perDir)}/f${i + j}`, 0, 'latin1');
        b.fill(0x20, 148, 156);
        let sum = 0;
        for (let k = 0; k < raw.BLOCK; k++) sum += b[k];
        b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
      }
      const part = chunk.subarray(0, n * raw.BLOCK);
      hash.update(part);
      fs.writeSync(fd, part);
    }
    const end = raw.endOfArchive();
    hash.update(end);
    fs.writeSync(fd, end);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${hash.digest('hex')}`] }, history: [{ created_by: `${entries} empty files` }] }));
    const configName = `${sha256(config).slice(7)}.json`;
    fs.writeSync(fd, raw.entry({ name: configName, mtime: 1700000000 }, config));
    fs.writeSync(fd, raw.entry({ name: 'manifest.json', mtime: 1700000000 }, Buffer.from(JSON.stringify([{ Config: configName, RepoTags: ['many:1'], Layers: [`${id}/layer.tar`] }]))));
    fs.writeSync(fd, raw.endOfArchive());
  } finally {
    fs.closeSync(fd);
  }
  return { entries, dirs: Math.ceil(entries / perDir) };
}

/**
 * A layer tar of one file of `bytes` zeros, gzip-compressed as ONE member, without ever holding
 * the uncompressed bytes: deflate streams ending in a sync flush are byte-aligned and need no
 * history, so one 64 MiB segment of zeros is compressed once and repeated. Ratio ~1000:1.
 */
export function gzipBomb(bytes: number): { blob: Buffer; diffId: string } {
  const segment = 64 * 1024 * 1024;
  if (bytes % segment !== 0) throw new Error('gzipBomb: bytes must be a multiple of 64 MiB');
  const head = raw.header({ name: 'bomb', size: bytes, mtime: 1700000000 });
  const end = raw.endOfArchive();
  const zeros = Buffer.alloc(segment);
  const sync = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
  const parts = [zlib.deflateRawSync(head, sync)];
  const zeroPart = zlib.deflateRawSync(zeros, { ...sync, level: 9 });
  let crc = zlib.crc32(head);
  const hash = createHash('sha256').update(head);
  for (let done = 0; done < bytes; done += segment) {
    parts.push(zeroPart);
    crc = zlib.crc32(zeros, crc);
    hash.update(zeros);
  }
  parts.push(zlib.deflateRawSync(end));
  crc = zlib.crc32(end, crc);
  hash.update(end);
  const gzHeader = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE((head.length + bytes + end.length) % 2 ** 32, 4);
  return { blob: Buffer.concat([gzHeader, ...parts, trailer]), diffId: `sha256:${hash.digest('hex')}` };
}

/**
 * The same bomb as ONE zstd frame (the worst case: a decoder cannot stop at a frame end), made
 * by streaming 64 MiB of zeros at a time through a streaming compressor. Ratio ~30000:1.
 */
export async function zstdBomb(bytes: number): Promise<{ blob: Buffer; diffId: string }> {
  const segment = 64 * 1024 * 1024;
  if (bytes % segment !== 0) throw new Error('zstdBomb: bytes must be a multiple of 64 MiB');
  const head = raw.header({ name: 'bomb', size: bytes, mtime: 1700000000 });
  const end = raw.endOfArchive();
  const zeros = Buffer.alloc(segment);
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  const stream = new ZstdCompressStream();
  stream.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  const write = async (b: Buffer) => {
    hash.update(b);
    if (!stream.write(b)) await new Promise((r) => stream.once('drain', r));
  };
  await write(head);
  for (let done = 0; done < bytes; done += segment) await write(zeros);
  await write(end);
  stream.end();
  await done;
  return { blob: Buffer.concat(chunks), diffId: `sha256:${hash.digest('hex')}` };
}

/** A kaniko-style archive (config `sha256:<hex>`, layer `<hex>.tar.gz` / `.tar.zst`) around one compressed layer blob. */
export function writeCompressedLayerArchive(file: string, blob: Buffer, diffId: string, ext: '.tar.gz' | '.tar.zst'): void {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] }, history: [{ created_by: 'bomb' }] }));
  const configName = sha256(config);
  const layerName = `${sha256(blob).slice(7)}${ext}`;
  fs.writeFileSync(
    file,
    outerTar([
      { name: configName, data: config },
      { name: layerName, data: blob },
      { name: 'manifest.json', data: Buffer.from(JSON.stringify([{ Config: configName, RepoTags: ['bomb:1'], Layers: [layerName] }])) },
    ]),
  );
}

export interface OpenMeasure {
  /** Tar entries indexed, over all layers. */
  entries: number;
  /** Nodes in the merged tree. */
  nodes: number;
  ms: number;
  /** Heap + external bytes held by the open view (after GC), per indexed entry. */
  bytesPerEntry: number;
  /** Peak resident set of the whole process (VmHWM), MB. */
  peakRssMB: number;
  error?: string;
}

/**
 * Opens `archive` with ImageView.open in a fresh node process and reports what it cost: a clean
 * baseline, nothing else in the heap, and the process's own peak RSS.
 */
export function measureOpen(archive: string, timeoutMs = 120_000): Promise<OpenMeasure> {
  const engine = path.resolve(__dirname, '..', '..', 'src', 'engine.js');
  const code = `
    const v8 = require('v8'); v8.setFlagsFromString('--expose-gc'); const gc = require('vm').runInNewContext('gc');
    const { ImageView } = require(${JSON.stringify(engine)});
    (async () => {
      gc(); gc();
      const m0 = process.memoryUsage();
      const t = Date.now();
      let out;
      try {
        const v = await ImageView.open(process.argv[1]);
        const ms = Date.now() - t;
        gc(); gc();
        const m1 = process.memoryUsage();
        const entries = v.layers.reduce((n, l) => n + l.index.count, 0);
        out = { entries, nodes: v.merged.nodeCount, ms, bytesPerEntry: (m1.heapUsed + m1.external - m0.heapUsed - m0.external) / Math.max(1, entries) };
        await v.close();
      } catch (err) {
        out = { entries: 0, nodes: 0, ms: Date.now() - t, bytesPerEntry: 0, error: String(err && err.message) };
      }
      const hwm = /VmHWM:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'));
      out.peakRssMB = hwm ? Number(hwm[1]) / 1024 : -1;
      process.stdout.write(JSON.stringify(out));
    })();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code, archive], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(stdout) as OpenMeasure);
      } catch {
        reject(new Error(`measureOpen ${archive}: exit ${code ?? signal}: ${stderr.slice(0, 2000)}`));
      }
    });
  });
}
