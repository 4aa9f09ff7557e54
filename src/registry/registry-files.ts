import * as path from 'node:path';
import { ArchiveError, type ArchiveFiles } from '../archive/archive-files';
import type { IndexCache } from '../cache/index-cache';
import type { ByteSource, FileSource } from '../io/byte-source';
import { printableText as printable } from '../text';
import { warning, type Warning } from '../warnings';
import { RemoteBlobSource } from './blob-source';
import { DiskBlockStore, MemoryBlockStore, type BlockStore } from './block-store';
import { RegistryClient, RegistryUnavailableError, type Manifest } from './client';
import { MetaStore } from './meta-store';
import { parseRegistryReference, type RegistryReference } from './reference';
import { registrySettings, type RegistrySettings } from './settings';

/*
 * An image in a registry, presented as the files of an OCI image layout, so that discovery,
 * selection, layer indexing (with its cache by digest) and the union read it unchanged:
 *   oci-layout          synthesised
 *   index.json          one descriptor: the manifest or index the reference names, with the
 *                       reference as its name (an index's platforms then work as in an archive)
 *   blobs/sha256/<hex>  manifests and configs fetched whole when opened (digests checked);
 *                       layers as lazy RemoteBlobSources, read by bounded Range requests
 * Only what is opened is fetched: the manifest (and an index's platform manifests, small) at
 * open, one config, and of each layer what indexing and reading need.
 */

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

export interface RegistryOpenOptions {
  cache?: IndexCache;
  log?: (message: string) => void;
  settings?: RegistrySettings;
}

/** A Buffer as a ByteSource. */
class BufferSource implements ByteSource {
  constructor(private readonly bytes: Buffer) {}
  get size(): number {
    return this.bytes.length;
  }
  async read(buf: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.readSync(buf, offset, length, position);
  }
  readSync(buf: Buffer, offset: number, length: number, position: number): number {
    const n = Math.max(0, Math.min(length, this.bytes.length - position));
    this.bytes.copy(buf, offset, position, position + n);
    return n;
  }
}

interface Known {
  kind: 'manifest' | 'config' | 'layer';
  size?: number;
  mediaType?: string;
  /** A layer's annotations in the manifest (eStargz's TOC digest). */
  annotations?: Record<string, string>;
}

function mediaTypeOf(bytes: Buffer): string {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof v.mediaType === 'string') return v.mediaType;
    return Array.isArray(v.manifests) ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json';
  } catch {
    return 'application/octet-stream';
  }
}

export class RegistryArchiveFiles implements ArchiveFiles {
  readonly stamp = { size: 0, mtimeMs: 0 };
  readonly warnings: Warning[] = [];
  /** Ties cached indexes of uncompressed layers (not hashed when indexed) to this repository. */
  readonly cacheIdentity: string;
  private readonly memory = new Map<string, Buffer>();
  private readonly known = new Map<string, Known>();
  private readonly layers = new Map<string, RemoteBlobSource>();

  constructor(
    readonly location: string,
    readonly ref: RegistryReference,
    readonly client: RegistryClient,
    private readonly store: BlockStore,
    private readonly meta: MetaStore,
    private readonly settings: RegistrySettings,
  ) {
    this.cacheIdentity = `docker://${ref.registry}/${ref.repository}`;
  }

  /** Fetches what the reference names and lays out oci-layout and index.json. */
  async init(): Promise<void> {
    const top = await this.topManifest();
    this.register(top);
    const annotations: Record<string, string> = { 'io.containerd.image.name': this.ref.name };
    if (this.ref.tag) annotations['org.opencontainers.image.ref.name'] = this.ref.tag;
    this.memory.set('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    this.memory.set(
      'index.json',
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.bytes.length, annotations }] }, null, 2)),
    );
  }

  private async topManifest(): Promise<Manifest> {
    const { digest, tag } = this.ref;
    if (digest) {
      const kept = await this.meta.get(digest);
      if (kept) return { bytes: kept, digest, mediaType: mediaTypeOf(kept) };
      const m = await this.client.manifest(digest);
      await this.meta.put(m.digest, m.bytes);
      return m;
    }
    try {
      const m = await this.client.manifest(tag!);
      await this.meta.put(m.digest, m.bytes);
      await this.meta.putTag(this.ref.name, m.digest, m.mediaType);
      return m;
    } catch (err) {
      if (!(err instanceof RegistryUnavailableError)) throw err;
      const last = await this.meta.tagDigest(this.ref.name);
      const kept = last && (await this.meta.get(last.digest));
      if (!last || !kept) throw err;
      this.warnings.push(warning('registry', `${err.message}; using ${this.ref.name} as last seen (${last.digest}, ${last.seen})`));
      return { bytes: kept, digest: last.digest, mediaType: last.mediaType };
    }
  }

  /** Records what a manifest or index refers to, so that opening its blobs knows what they are. */
  private register(m: Manifest): void {
    this.memory.set(`blobs/sha256/${m.digest.slice(7)}`, m.bytes);
    let v: { manifests?: unknown; config?: { digest?: unknown; size?: unknown }; layers?: unknown };
    try {
      v = JSON.parse(m.bytes.toString('utf8'));
    } catch {
      return; // discovery reports it, naming the file
    }
    const note = (d: unknown, kind: Known['kind']) => {
      const desc = d as { digest?: unknown; size?: unknown; mediaType?: unknown; annotations?: unknown };
      if (typeof desc?.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(desc.digest)) return;
      const hex = desc.digest.slice(7);
      if (this.known.get(hex)?.kind === 'manifest' && kind !== 'manifest') return;
      const annotations = desc.annotations && typeof desc.annotations === 'object' ? Object.fromEntries(Object.entries(desc.annotations).filter(([, a]) => typeof a === 'string')) : undefined;
      this.known.set(hex, { kind, size: typeof desc.size === 'number' ? desc.size : undefined, mediaType: typeof desc.mediaType === 'string' ? desc.mediaType : undefined, annotations });
    };
    if (INDEX_TYPES.has(m.mediaType) || Array.isArray(v.manifests)) {
      for (const d of Array.isArray(v.manifests) ? v.manifests : []) note(d, 'manifest');
    } else {
      note(v.config, 'config');
      for (const d of Array.isArray(v.layers) ? v.layers : []) note(d, 'layer');
    }
  }

  has(p: string): boolean {
    return this.memory.has(p) || /^blobs\/sha256\/[a-f0-9]{64}$/.test(p);
  }

  list(): string[] {
    return [...new Set([...this.memory.keys(), ...[...this.known.keys()].map((h) => `blobs/sha256/${h}`)])];
  }

  async open(p: string): Promise<ByteSource> {
    const have = this.memory.get(p);
    if (have) return new BufferSource(have);
    const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p);
    if (!m) throw new ArchiveError(`${this.location}: ${printable(p)}: not in the image`);
    const hex = m[1];
    const digest = `sha256:${hex}`;
    const known = this.known.get(hex);
    if (known?.kind === 'manifest') {
      const kept = await this.meta.get(digest);
      const man = kept ? { bytes: kept, digest, mediaType: known.mediaType ?? mediaTypeOf(kept) } : await this.client.manifest(digest);
      if (!kept) await this.meta.put(digest, man.bytes);
      this.register(man);
      return new BufferSource(man.bytes);
    }
    if (known?.kind === 'config') {
      const bytes = (await this.meta.get(digest)) ?? (await this.client.blobWhole(digest, 64 * 1024 * 1024));
      await this.meta.put(digest, bytes);
      this.memory.set(p, bytes);
      return new BufferSource(bytes);
    }
    let src = this.layers.get(hex);
    if (!src) {
      const size = known?.size ?? (await this.client.blobSize(digest));
      src = new RemoteBlobSource(this.client, digest, size, this.store, this.settings.timeoutMs);
      this.layers.set(hex, src);
    }
    return src;
  }

  layerAnnotations(p: string): Record<string, string> {
    const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(p);
    return (m && this.known.get(m[1])?.annotations) || {};
  }

  backingFiles(): FileSource[] {
    return [];
  }

  /** Bytes downloaded for layers so far. */
  get fetchedBytes(): number {
    let n = 0;
    for (const s of this.layers.values()) n += s.fetched;
    return n;
  }

  async close(): Promise<void> {
    this.client.close();
    await Promise.all([...this.layers.values()].map((l) => l.settled()));
    await this.store.close();
  }
}

/** Opens `docker://…` with the current settings (registrySettings, set by the CLI). */
export async function openRegistryFiles(location: string, opts: RegistryOpenOptions = {}): Promise<RegistryArchiveFiles> {
  const ref = parseRegistryReference(location);
  const settings = opts.settings ?? registrySettings;
  const warn = opts.log ?? (() => undefined);
  const base = opts.cache ? path.join(opts.cache.dir, 'registry') : undefined;
  const store: BlockStore = base ? new DiskBlockStore(path.join(base, 'blocks'), settings.cacheBytes, warn) : new MemoryBlockStore(Math.min(settings.cacheBytes, 256 * 1024 * 1024));
  const client = new RegistryClient(ref, { insecure: settings.insecure, timeoutMs: settings.timeoutMs, warn });
  const files = new RegistryArchiveFiles(location, ref, client, store, new MetaStore(base && path.join(base, 'meta')), settings);
  try {
    await files.init();
  } catch (err) {
    await files.close();
    throw err;
  }
  return files;
}
