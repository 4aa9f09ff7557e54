// Test fixture builder: writes real container image archives (docker save in its various
// ages, skopeo, kaniko, OCI) from a declarative description. Output imitates the real samples
// in test/fixtures; everything is deterministic so tests can compare digests.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tarStream from 'tar-stream';
import { compress as zstdCompress } from 'zstd-napi';
import * as raw from './raw-tar';

export type EntrySpec = {
  path: string;
  type?: 'file' | 'dir' | 'symlink' | 'link' | 'char' | 'block' | 'fifo';
  content?: string | Buffer;
  target?: string;
  mode?: number;
  uid?: number; gid?: number; uname?: string; gname?: string;
  mtime?: Date;
  devmajor?: number; devminor?: number;
  xattrs?: Record<string, string | Buffer>;
  longNameStyle?: 'pax' | 'gnu';
};
export type Compression = 'none' | 'gzip' | 'zstd';
export interface LayerSpec {
  entries: EntrySpec[] | Buffer;
  compression?: Compression;
  createdBy?: string;
  comment?: string;
}
export interface ImageSpec {
  layers: LayerSpec[];
  tags?: string[];
  config?: Record<string, unknown>;
  emptyHistory?: { index: number; createdBy: string }[];
  history?: unknown[] | null;
  architecture?: string; os?: string; variant?: string;
}
export type Layout = 'docker25' | 'docker-legacy' | 'skopeo' | 'kaniko' | 'docker-pre110' | 'oci-archive' | 'oci-dir';
export interface BuildOptions {
  layout: Layout;
  images: ImageSpec[];
  multiPlatform?: boolean;
  dedupeLayerFiles?: 'symlink' | 'hardlink';
  outerCompression?: Compression;
}
export interface BuiltImage {
  manifestDigest: string;
  configDigest: string;
  diffIds: string[];
  layerDigests: string[];
  tags: string[];
  config: any;
}
export interface BuiltArchive {
  path: string;
  images: BuiltImage[];
  /** multiPlatform only: digest of the nested image index blob that index.json points to. */
  indexDigest?: string;
}

export const FIXED_DATE = new Date('2024-01-02T03:04:05Z');
const CREATED = '2024-01-02T03:04:05Z';
const DEFAULT_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  layer: {
    none: 'application/vnd.oci.image.layer.v1.tar',
    gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
    zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  } as Record<Compression, string>,
};

// ---------------------------------------------------------------------------------------
// Layer tars

const TAR_STREAM_TYPE = {
  file: 'file', dir: 'directory', symlink: 'symlink', link: 'link',
  char: 'character-device', block: 'block-device', fifo: 'fifo',
} as const;
const TYPEFLAG = { file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' } as const;

type EntryType = NonNullable<EntrySpec['type']>;
const entryType = (e: EntrySpec): EntryType => e.type ?? (e.path.endsWith('/') ? 'dir' : 'file');
const defaultMode = (t: EntryType): number => (t === 'dir' ? 0o755 : t === 'symlink' ? 0o777 : 0o644);
const toBuffer = (v: string | Buffer | undefined): Buffer => (v === undefined ? Buffer.alloc(0) : typeof v === 'string' ? Buffer.from(v) : v);
const byteLength = (s: string | undefined): number => Buffer.byteLength(s ?? '');

/**
 * tar-stream's pack() silently changes some entries: it replaces mode 0 with a default, adds a
 * '/' to directory names, clamps uid/gid above 0o777777, writes pax values as UTF-8 text (so
 * binary xattrs break) and has no GNU L/K entries. Those entries are written by hand instead.
 */
function needsRawWriter(e: EntrySpec): boolean {
  const t = entryType(e);
  const hasLink = t === 'symlink' || t === 'link';
  return (
    Object.keys(e.xattrs ?? {}).length > 0 ||
    (e.longNameStyle === 'gnu' && (byteLength(e.path) > 100 || byteLength(e.target) > 100)) ||
    e.mode === 0 ||
    (t === 'dir' && !e.path.endsWith('/')) ||
    (e.uid ?? 0) > 0o777777 || (e.gid ?? 0) > 0o777777 ||
    (hasLink && !e.target) ||
    e.path === ''
  );
}

/** One entry as raw blocks: optional GNU L/K entries, optional pax record, then the header. */
function rawEntryBlocks(e: EntrySpec): Buffer {
  const t = entryType(e);
  const gnu = e.longNameStyle === 'gnu';
  const target = t === 'symlink' || t === 'link' ? e.target ?? '' : '';
  const parts: Buffer[] = [];
  const records: raw.PaxRecord[] = [];
  if (byteLength(e.path) > 100) gnu ? parts.push(raw.gnuLong('L', e.path)) : records.push(['path', e.path]);
  if (byteLength(target) > 100) gnu ? parts.push(raw.gnuLong('K', target)) : records.push(['linkpath', target]);
  for (const [key, value] of Object.entries(e.xattrs ?? {})) records.push([`SCHILY.xattr.${key}`, value]);
  if (records.length > 0) parts.push(raw.paxHeader(records, { mtime: Math.floor((e.mtime ?? FIXED_DATE).getTime() / 1000) }));
  const data = t === 'file' ? toBuffer(e.content) : Buffer.alloc(0);
  parts.push(raw.entry({
    name: e.path, // the 100-byte field keeps the first bytes, as GNU tar does
    typeflag: TYPEFLAG[t],
    mode: e.mode ?? defaultMode(t),
    uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname,
    mtime: e.mtime ?? FIXED_DATE,
    linkname: target,
    devmajor: e.devmajor, devminor: e.devminor,
    format: gnu ? 'gnu' : 'ustar',
  }, data));
  return Buffer.concat(parts);
}

// tar-stream 3 ships its own typings (they shadow @types/tar-stream).
type PackHeader = Partial<tarStream.Header> & { name: string };
interface PackItem { header: PackHeader; data?: Buffer }

/** Runs tar-stream's pack() over the items and returns the whole archive (with end blocks). */
function packTar(items: PackItem[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pack = tarStream.pack();
    const chunks: Buffer[] = [];
    pack.on('data', (c: unknown) => void chunks.push(c as Buffer));
    pack.on('end', () => resolve(Buffer.concat(chunks)));
    pack.on('error', reject);
    const next = (i: number): void => {
      if (i === items.length) return void pack.finalize();
      pack.entry(items[i].header, items[i].data ?? Buffer.alloc(0), (err) => (err ? reject(err) : next(i + 1)));
    };
    next(0);
  });
}

async function entryBlocks(e: EntrySpec): Promise<Buffer> {
  if (needsRawWriter(e)) return rawEntryBlocks(e);
  const t = entryType(e);
  const header: PackHeader = {
    name: e.path,
    type: TAR_STREAM_TYPE[t],
    mode: e.mode ?? defaultMode(t),
    uid: e.uid ?? 0, gid: e.gid ?? 0, uname: e.uname, gname: e.gname,
    mtime: e.mtime ?? FIXED_DATE,
    linkname: t === 'symlink' || t === 'link' ? e.target : undefined,
    devmajor: e.devmajor, devminor: e.devminor,
  };
  const whole = await packTar([{ header, data: t === 'file' ? toBuffer(e.content) : undefined }]);
  return whole.subarray(0, whole.length - 1024); // drop this mini-archive's end blocks
}

/** One uncompressed layer tar made of the entries, in order. */
export async function layerTar(entries: EntrySpec[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const e of entries) parts.push(await entryBlocks(e));
  return raw.concatTar(parts);
}

/** The empty layer Docker writes for metadata-only steps: just the end-of-archive blocks. */
export function emptyLayerTar(): Buffer {
  return raw.endOfArchive();
}

// ---------------------------------------------------------------------------------------
// Digests, compression, names

export const sha256Hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
export const digestOf = (b: Buffer | string): string => `sha256:${sha256Hex(b)}`;
const hexOf = (digest: string): string => digest.slice('sha256:'.length);

export function compressBuffer(data: Buffer, c: Compression): Buffer {
  // Node's gzip header has mtime 0, so output is reproducible.
  if (c === 'gzip') return zlib.gzipSync(data);
  if (c === 'zstd') return zstdCompress(data);
  return data;
}

/** Splits "repo:tag" (a port colon before the last '/' is not a tag); default tag "latest". */
export function splitRef(ref: string): { repo: string; tag: string } {
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}

/** Docker's normalisation: "myapp:1.0" -> "docker.io/library/myapp:1.0". */
export function normalizeRef(ref: string): string {
  const { repo, tag } = splitRef(ref);
  const first = repo.split('/')[0];
  const hasDomain = repo.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  const full = hasDomain ? repo : repo.includes('/') ? `docker.io/${repo}` : `docker.io/library/${repo}`;
  return `${full}:${tag}`;
}

// ---------------------------------------------------------------------------------------
// Image preparation (layout independent)

interface PreparedLayer {
  blob: Buffer;          // bytes as stored
  diffId: string;        // sha256 of the uncompressed tar
  digest: string;        // sha256 of blob
  compression: Compression;
  mediaType: string;
}
interface PreparedImage {
  spec: ImageSpec;
  tags: string[];
  layers: PreparedLayer[];
  config: any;
  configBytes: Buffer;
  configDigest: string;
}

function buildHistory(spec: ImageSpec): unknown[] {
  const empties = spec.emptyHistory ?? [];
  const out: unknown[] = [];
  for (let i = 0; i <= spec.layers.length; i++) {
    for (const e of empties.filter((x) => x.index === i)) out.push({ created: CREATED, created_by: e.createdBy, empty_layer: true });
    const l = spec.layers[i];
    if (!l) continue;
    out.push({
      created: CREATED,
      created_by: l.createdBy ?? `ADD layer${i}.tar / # buildkit`,
      ...(l.comment !== undefined ? { comment: l.comment } : {}),
    });
  }
  return out;
}

function buildConfig(spec: ImageSpec, diffIds: string[]): any {
  const history = spec.history === undefined ? buildHistory(spec) : spec.history;
  return {
    architecture: spec.architecture ?? 'amd64',
    ...(spec.variant ? { variant: spec.variant } : {}),
    config: { Env: DEFAULT_ENV, ...(spec.config ?? {}) },
    created: CREATED,
    ...(history === null ? {} : { history }),
    os: spec.os ?? 'linux',
    rootfs: { type: 'layers', diff_ids: diffIds },
  };
}

async function prepareLayer(l: LayerSpec, defaultCompression: Compression): Promise<PreparedLayer> {
  const tar = Buffer.isBuffer(l.entries) ? l.entries : await layerTar(l.entries);
  const compression = l.compression ?? defaultCompression;
  const blob = compressBuffer(tar, compression);
  return { blob, diffId: digestOf(tar), digest: digestOf(blob), compression, mediaType: MEDIA.layer[compression] };
}

async function prepareImage(spec: ImageSpec, defaultCompression: Compression): Promise<PreparedImage> {
  const layers: PreparedLayer[] = [];
  for (const l of spec.layers) layers.push(await prepareLayer(l, defaultCompression));
  const config = buildConfig(spec, layers.map((l) => l.diffId));
  const configBytes = Buffer.from(JSON.stringify(config));
  return { spec, tags: spec.tags ?? [], layers, config, configBytes, configDigest: digestOf(configBytes) };
}

function builtImage(p: PreparedImage, manifestDigest = ''): BuiltImage {
  return {
    manifestDigest, configDigest: p.configDigest, diffIds: p.layers.map((l) => l.diffId),
    layerDigests: p.layers.map((l) => l.digest), tags: p.tags, config: p.config,
  };
}

// ---------------------------------------------------------------------------------------
// Outer archive contents: an ordered list of files, written later as a tar or a folder

interface OuterFile { path: string; kind: 'file' | 'dir' | 'symlink' | 'link'; data?: Buffer; target?: string }

class OuterFiles {
  readonly list: OuterFile[] = [];
  private readonly seen = new Set<string>();
  /** Adds once: the same blob/folder reached from two images is written a single time. */
  add(f: OuterFile): void {
    if (this.seen.has(f.path)) return;
    this.seen.add(f.path);
    this.list.push(f);
  }
  file(p: string, data: Buffer | string): void { this.add({ path: p, kind: 'file', data: toBuffer(data) }); }
  dir(p: string): void { this.add({ path: p, kind: 'dir' }); }
  has(p: string): boolean { return this.seen.has(p); }
}

/** "repositories": {"myapp": {"1.0": "<id>"}} for every tag of every image. */
function repositoriesJson(images: { tags: string[]; id: string }[]): string | undefined {
  const repos: Record<string, Record<string, string>> = {};
  for (const img of images) {
    for (const t of img.tags) {
      const { repo, tag } = splitRef(t);
      (repos[repo] ??= {})[tag] = img.id;
    }
  }
  return Object.keys(repos).length > 0 ? JSON.stringify(repos) : undefined;
}

// ---- OCI layouts (oci-archive, oci-dir, docker25) ----

const descriptor = (mediaType: string, bytes: Buffer, extra: Record<string, unknown> = {}) =>
  ({ mediaType, digest: digestOf(bytes), size: bytes.length, ...extra });

function ociManifest(p: PreparedImage): Buffer {
  return Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: descriptor(MEDIA.ociConfig, p.configBytes),
    layers: p.layers.map((l) => descriptor(l.mediaType, l.blob)),
  }));
}

/** Annotations as Docker 25 / buildx write them: short tag plus the full normalised name. */
const refAnnotations = (tag: string) => ({
  'io.containerd.image.name': normalizeRef(tag),
  'org.opencontainers.image.ref.name': splitRef(tag).tag,
});

/** One descriptor per tag (as containerd exports), or one bare descriptor when untagged. */
function taggedDescriptors(mediaType: string, bytes: Buffer, tags: string[]): unknown[] {
  if (tags.length === 0) return [descriptor(mediaType, bytes)];
  return tags.map((t) => descriptor(mediaType, bytes, { annotations: refAnnotations(t) }));
}

const platformOf = (s: ImageSpec) =>
  ({ architecture: s.architecture ?? 'amd64', os: s.os ?? 'linux', ...(s.variant ? { variant: s.variant } : {}) });

/** Legacy v1 metadata of an image's top layer (Docker 25 keeps it as a blob). */
function v1TopJson(p: PreparedImage, id: string, parent: string | undefined): any {
  return {
    id, ...(parent ? { parent } : {}), created: CREATED,
    container_config: emptyContainerConfig(),
    config: { ...emptyContainerConfig(), ...p.config.config },
    architecture: p.config.architecture, os: p.config.os,
  };
}

function ociFiles(images: PreparedImage[], opts: BuildOptions, out: OuterFiles): { built: BuiltImage[]; indexDigest?: string } {
  const docker25 = opts.layout === 'docker25';
  const blob = (b: Buffer): string => {
    const p = `blobs/sha256/${sha256Hex(b)}`;
    out.file(p, b);
    return p;
  };
  out.dir('blobs/');
  out.dir('blobs/sha256/');

  const built: BuiltImage[] = [];
  const manifests: { p: PreparedImage; bytes: Buffer }[] = [];
  const dockerManifest: unknown[] = [];
  const repoImages: { tags: string[]; id: string }[] = [];
  for (const p of images) {
    const layerPaths = p.layers.map((l) => blob(l.blob));
    const configPath = blob(p.configBytes);
    const bytes = ociManifest(p);
    blob(bytes);
    manifests.push({ p, bytes });
    built.push(builtImage(p, digestOf(bytes)));
    if (docker25) {
      const ids = v1Ids(p);
      blob(Buffer.from(JSON.stringify(v1TopJson(p, ids[ids.length - 1], ids[ids.length - 2]))));
      repoImages.push({ tags: p.tags, id: ids[ids.length - 1] ?? hexOf(p.configDigest) });
      dockerManifest.push({
        Config: configPath,
        RepoTags: p.tags.length > 0 ? p.tags : null,
        Layers: layerPaths,
        LayerSources: Object.fromEntries(p.layers.map((l) => [l.diffId, descriptor(l.mediaType, l.blob)])),
      });
    }
  }

  let index: unknown[];
  let indexDigest: string | undefined;
  if (opts.multiPlatform) {
    // One image index blob listing every image as a platform variant.
    const nested = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: manifests.map(({ p, bytes }) => descriptor(MEDIA.ociManifest, bytes, { platform: platformOf(p.spec) })),
    }));
    blob(nested);
    indexDigest = digestOf(nested);
    const firstTag = images.flatMap((p) => p.tags)[0];
    index = taggedDescriptors(MEDIA.ociIndex, nested, firstTag ? [firstTag] : []);
  } else {
    index = manifests.flatMap(({ p, bytes }) => taggedDescriptors(MEDIA.ociManifest, bytes, p.tags));
  }

  out.file('index.json', JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: index }));
  if (docker25) {
    out.file('manifest.json', JSON.stringify(dockerManifest));
    out.file('oci-layout', '{"imageLayoutVersion": "1.0.0"}'); // Docker's spelling, with the space
    const repos = repositoriesJson(repoImages);
    if (repos) out.file('repositories', repos);
  } else {
    out.file('oci-layout', '{"imageLayoutVersion":"1.0.0"}');
  }
  return { built, indexDigest };
}

// ---- Legacy docker save (<= 24) and pre-1.10 ----

function emptyContainerConfig(): Record<string, unknown> {
  return {
    Hostname: '', Domainname: '', User: '', AttachStdin: false, AttachStdout: false, AttachStderr: false,
    Tty: false, OpenStdin: false, StdinOnce: false, Env: null, Cmd: null, Image: '', Volumes: null,
    WorkingDir: '', Entrypoint: null, OnBuild: null, Labels: null,
  };
}

/**
 * v1 layer ids, chained like Docker's: each is a hash of the parent id and the layer's diff_id
 * (the top one also of the config), so they never equal a diff_id and two images sharing
 * their lower layers share those folders.
 */
function v1Ids(p: PreparedImage): string[] {
  const ids: string[] = [];
  p.layers.forEach((l, i) => {
    const top = i === p.layers.length - 1;
    const parent = ids[i - 1] ?? '';
    ids.push(sha256Hex(JSON.stringify({ parent, layer_id: l.diffId, ...(top ? { config: p.configDigest } : {}) })));
  });
  return ids;
}

const createdByOf = (spec: ImageSpec, i: number): string => spec.layers[i].createdBy ?? `ADD layer${i}.tar / # buildkit`;

/** `<id>/json`: v1 metadata. pre-1.10 images carry the full config in every layer. */
function v1LayerJson(p: PreparedImage, ids: string[], i: number, pre110: boolean): any {
  const top = i === ids.length - 1;
  const withConfig = pre110 || top;
  return {
    id: ids[i],
    ...(i > 0 ? { parent: ids[i - 1] } : {}),
    created: CREATED,
    container_config: { ...emptyContainerConfig(), Cmd: ['/bin/sh', '-c', createdByOf(p.spec, i)] },
    ...(pre110 ? { docker_version: '1.9.1' } : {}),
    ...(withConfig ? { config: { ...emptyContainerConfig(), ...p.config.config }, architecture: p.config.architecture } : {}),
    os: p.config.os,
  };
}

function legacyFiles(images: PreparedImage[], opts: BuildOptions, out: OuterFiles): BuiltImage[] {
  const pre110 = opts.layout === 'docker-pre110';
  const firstPathOfBlob = new Map<string, string>(); // layer blob digest -> "<id>/layer.tar"
  const manifest: unknown[] = [];
  const repoImages: { tags: string[]; id: string }[] = [];
  const built: BuiltImage[] = [];
  for (const p of images) {
    const ids = v1Ids(p);
    const layerPaths: string[] = [];
    p.layers.forEach((l, i) => {
      const dir = `${ids[i]}/`;
      const layerPath = `${ids[i]}/layer.tar`;
      layerPaths.push(layerPath);
      if (out.has(dir)) return; // same parent chain as an earlier image: already written
      out.dir(dir);
      out.file(`${ids[i]}/VERSION`, '1.0');
      out.file(`${ids[i]}/json`, JSON.stringify(v1LayerJson(p, ids, i, pre110)));
      const first = firstPathOfBlob.get(l.digest);
      if (first && opts.dedupeLayerFiles === 'symlink') {
        out.add({ path: layerPath, kind: 'symlink', target: `../${first}` });
      } else if (first && opts.dedupeLayerFiles === 'hardlink') {
        out.add({ path: layerPath, kind: 'link', target: first });
      } else {
        out.file(layerPath, l.blob);
        if (!first) firstPathOfBlob.set(l.digest, layerPath);
      }
    });
    repoImages.push({ tags: p.tags, id: ids[ids.length - 1] });
    if (pre110) {
      // No config file exists: the top layer's v1 json is the nearest thing to one.
      built.push({ ...builtImage(p), configDigest: '', config: v1LayerJson(p, ids, ids.length - 1, true) });
    } else {
      const configPath = `${hexOf(p.configDigest)}.json`;
      out.file(configPath, p.configBytes);
      manifest.push({ Config: configPath, RepoTags: p.tags.length > 0 ? p.tags : null, Layers: layerPaths });
      built.push(builtImage(p));
    }
  }
  if (!pre110) out.file('manifest.json', JSON.stringify(manifest));
  const repos = repositoriesJson(repoImages);
  if (repos) out.file('repositories', repos);
  return built;
}

// ---- skopeo docker-archive and kaniko tarball ----

const extensionOf = (c: Compression): string => ({ none: '.tar', gzip: '.tar.gz', zstd: '.tar.zst' })[c];

/**
 * Flat docker-archive variants. skopeo names layers "<digest hex>.tar" (= the diff_id, since it
 * writes them uncompressed) and the config "<hex>.json"; kaniko / go-containerregistry name the
 * config "sha256:<hex>" and layers "<compressed digest hex>.tar.gz".
 */
function flatFiles(images: PreparedImage[], opts: BuildOptions, out: OuterFiles): BuiltImage[] {
  const kaniko = opts.layout === 'kaniko';
  const manifest: unknown[] = [];
  for (const p of images) {
    const configPath = kaniko ? p.configDigest : `${hexOf(p.configDigest)}.json`;
    out.file(configPath, p.configBytes);
    const layerPaths = p.layers.map((l) => {
      const name = `${hexOf(l.digest)}${kaniko ? extensionOf(l.compression) : '.tar'}`;
      out.file(name, l.blob);
      return name;
    });
    manifest.push({ Config: configPath, RepoTags: p.tags.length > 0 ? p.tags : null, Layers: layerPaths });
  }
  out.file('manifest.json', JSON.stringify(manifest));
  return images.map((p) => builtImage(p));
}

// ---------------------------------------------------------------------------------------
// Writing

function outerTar(files: OuterFile[]): Promise<Buffer> {
  return packTar(files.map((f) => ({
    header: {
      name: f.path,
      type: f.kind === 'dir' ? 'directory' : f.kind,
      mode: f.kind === 'dir' ? 0o755 : f.kind === 'symlink' ? 0o777 : 0o644,
      mtime: FIXED_DATE,
      linkname: f.target,
    },
    data: f.data,
  })));
}

async function writeFolder(root: string, files: OuterFile[]): Promise<void> {
  await fs.mkdir(root, { recursive: true });
  for (const f of files) {
    const dest = path.join(root, f.path);
    await fs.mkdir(path.dirname(dest), { recursive: true });
    if (f.kind === 'dir') await fs.mkdir(dest, { recursive: true });
    else if (f.kind === 'file') await fs.writeFile(dest, f.data ?? Buffer.alloc(0));
    else if (f.kind === 'symlink') await fs.symlink(f.target ?? '', dest);
    else await fs.link(path.join(root, f.target ?? ''), dest);
  }
}

const DEFAULT_LAYER_COMPRESSION: Record<Layout, Compression> = {
  docker25: 'none', 'docker-legacy': 'none', skopeo: 'none', kaniko: 'gzip',
  'docker-pre110': 'none', 'oci-archive': 'none', 'oci-dir': 'none',
};

/** Writes an image archive (or, for 'oci-dir', a folder) at outPath and describes what it holds. */
export async function buildArchive(outPath: string, opts: BuildOptions): Promise<BuiltArchive> {
  if (opts.layout === 'oci-dir' && opts.outerCompression && opts.outerCompression !== 'none') {
    throw new Error('outerCompression does not apply to oci-dir');
  }
  const images: PreparedImage[] = [];
  for (const spec of opts.images) images.push(await prepareImage(spec, DEFAULT_LAYER_COMPRESSION[opts.layout]));

  const out = new OuterFiles();
  let built: BuiltImage[];
  let indexDigest: string | undefined;
  switch (opts.layout) {
    case 'docker25': case 'oci-archive': case 'oci-dir':
      ({ built, indexDigest } = ociFiles(images, opts, out));
      break;
    case 'docker-legacy': case 'docker-pre110':
      built = legacyFiles(images, opts, out);
      break;
    case 'skopeo': case 'kaniko':
      built = flatFiles(images, opts, out);
      break;
  }

  if (opts.layout === 'oci-dir') {
    await writeFolder(outPath, out.list);
  } else {
    const tar = await outerTar(out.list);
    await fs.mkdir(path.dirname(outPath), { recursive: true });
    await fs.writeFile(outPath, compressBuffer(tar, opts.outerCompression ?? 'none'));
  }
  return { path: outPath, images: built, ...(indexDigest ? { indexDigest } : {}) };
}
