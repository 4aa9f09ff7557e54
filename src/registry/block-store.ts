import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { LRUCache } from 'lru-cache';

/*
 * Where downloaded pieces of blobs are kept: fixed-size blocks, by blob digest and block number.
 * On disk (`<cache-dir>/registry/blocks/`): one sparse file per blob holding the blocks at their
 * own offsets, and a map beside it listing which blocks are there with each one's CRC-32. A
 * block is served only when its bytes check out against the map, so a file cut short, evicted by
 * another process while this one still had its map, or damaged on disk is a miss (downloaded
 * again), never wrong bytes. The total is capped: past the cap, whole blobs go, least recently
 * used first. Without a cache folder (--no-cache) blocks live in a bounded memory LRU instead.
 */

export interface BlockStore {
  readonly blockSize: number;
  /** The block's bytes, or undefined when it is not kept (or did not check out). */
  get(hex: string, block: number, length: number): Promise<Buffer | undefined>;
  /** Keeps a block; failing to keep one is never an error. */
  put(hex: string, block: number, data: Buffer): Promise<void>;
  close(): Promise<void>;
}

export const BLOCK_SIZE = 64 * 1024;

export class MemoryBlockStore implements BlockStore {
  readonly blockSize = BLOCK_SIZE;
  private readonly lru: LRUCache<string, Buffer>;

  constructor(capBytes: number) {
    this.lru = new LRUCache({ maxSize: Math.max(capBytes, BLOCK_SIZE), sizeCalculation: (b) => b.length || 1 });
  }

  async get(hex: string, block: number, length: number): Promise<Buffer | undefined> {
    const b = this.lru.get(`${hex}:${block}`);
    return b && b.length === length ? b : undefined;
  }

  async put(hex: string, block: number, data: Buffer): Promise<void> {
    this.lru.set(`${hex}:${block}`, data);
  }

  async close(): Promise<void> {
    this.lru.clear();
  }
}

interface BlobState {
  /** block number → [crc, length] */
  blocks: Map<number, [number, number]>;
  bytes: number;
  lastUsed: number;
  handle?: Promise<fs.promises.FileHandle>;
  dirty: boolean;
  /** Read from disk once, when this process first touches the blob. */
  loaded: boolean;
}

export class DiskBlockStore implements BlockStore {
  readonly blockSize = BLOCK_SIZE;
  private readonly blobs = new Map<string, BlobState>();
  private total = 0;
  private scanned?: Promise<void>;
  private flushTimer?: NodeJS.Timeout;
  private broken = false;

  constructor(
    readonly dir: string,
    private readonly capBytes: number,
    private readonly warn: (message: string) => void,
  ) {}

  private dataPath(hex: string): string {
    return path.join(this.dir, `${hex}.data`);
  }
  private mapPath(hex: string): string {
    return path.join(this.dir, `${hex}.map`);
  }

  /** Learns what the folder holds (sizes and last use of every blob), once. */
  private scan(): Promise<void> {
    this.scanned ??= (async () => {
      await fs.promises.mkdir(this.dir, { recursive: true });
      for (const name of await fs.promises.readdir(this.dir)) {
        const m = /^([a-f0-9]{64})\.map$/.exec(name);
        if (!m || this.blobs.has(m[1])) continue;
        const st = await fs.promises.stat(path.join(this.dir, name)).catch(() => undefined);
        const bytes = Number((await this.readMap(m[1]))?.reduce((n, [, , len]) => n + len, 0) ?? 0);
        this.blobs.set(m[1], { blocks: new Map(), bytes, lastUsed: st?.mtimeMs ?? 0, dirty: false, loaded: false });
        this.total += bytes;
      }
    })().catch((err: Error) => {
      this.broken = true;
      this.warn(`registry cache ${this.dir}: ${err.message}; downloaded blocks are not kept`);
    });
    return this.scanned;
  }

  private async readMap(hex: string): Promise<Array<[number, number, number]> | undefined> {
    try {
      const v = JSON.parse(await fs.promises.readFile(this.mapPath(hex), 'utf8')) as { blockSize?: number; blocks?: Array<[number, number, number]> };
      if (v.blockSize !== this.blockSize || !Array.isArray(v.blocks)) return undefined;
      return v.blocks.filter((b) => Array.isArray(b) && b.length === 3 && b.every((x) => Number.isSafeInteger(x) && x >= 0));
    } catch {
      return undefined;
    }
  }

  private async state(hex: string): Promise<BlobState> {
    await this.scan();
    let s = this.blobs.get(hex);
    if (!s) {
      s = { blocks: new Map(), bytes: 0, lastUsed: Date.now(), dirty: false, loaded: false };
      this.blobs.set(hex, s);
    }
    if (!s.loaded) {
      s.loaded = true;
      this.total -= s.bytes;
      s.bytes = 0;
      for (const [block, crc, len] of (await this.readMap(hex)) ?? []) {
        if (!s.blocks.has(block)) {
          s.blocks.set(block, [crc, len]);
          s.bytes += len;
        }
      }
      this.total += s.bytes;
    }
    s.lastUsed = Date.now();
    return s;
  }

  private handle(hex: string, s: BlobState): Promise<fs.promises.FileHandle> {
    s.handle ??= fs.promises.open(this.dataPath(hex), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    return s.handle;
  }

  async get(hex: string, block: number, length: number): Promise<Buffer | undefined> {
    if (this.broken) return undefined;
    const s = await this.state(hex);
    const known = s.blocks.get(block);
    if (!known || known[1] !== length) return undefined;
    try {
      const buf = Buffer.allocUnsafe(length);
      const { bytesRead } = await (await this.handle(hex, s)).read(buf, 0, length, block * this.blockSize);
      if (bytesRead === length && zlib.crc32(buf) === known[0]) return buf;
    } catch {
      /* a miss */
    }
    this.forget(s, block);
    return undefined;
  }

  private forget(s: BlobState, block: number): void {
    const known = s.blocks.get(block);
    if (!known) return;
    s.blocks.delete(block);
    s.bytes -= known[1];
    this.total -= known[1];
    s.dirty = true;
  }

  private readonly pending = new Set<Promise<void>>();

  put(hex: string, block: number, data: Buffer): Promise<void> {
    const p = this.keep(hex, block, data).finally(() => this.pending.delete(p));
    this.pending.add(p);
    return p;
  }

  private async keep(hex: string, block: number, data: Buffer): Promise<void> {
    if (this.broken || data.length > this.capBytes) return;
    const s = await this.state(hex);
    if (s.blocks.has(block)) return;
    try {
      await (await this.handle(hex, s)).write(data, 0, data.length, block * this.blockSize);
    } catch (err) {
      this.warn(`registry cache ${this.dir}: ${(err as Error).message}; this block is not kept`);
      return;
    }
    s.blocks.set(block, [zlib.crc32(data), data.length]);
    s.bytes += data.length;
    this.total += data.length;
    s.dirty = true;
    if (this.total > this.capBytes) await this.evict(hex);
    this.scheduleFlush();
  }

  /** Drops whole blobs, least recently used first, until 90% of the cap; `current` last of all. */
  private async evict(current: string): Promise<void> {
    const order = [...this.blobs.entries()].filter(([h]) => h !== current).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    const cur = this.blobs.get(current);
    if (cur) order.push([current, cur]);
    for (const [hex, s] of order) {
      if (this.total <= this.capBytes * 0.9) break;
      this.total -= s.bytes;
      s.bytes = 0;
      s.blocks.clear();
      s.dirty = false;
      const h = s.handle;
      s.handle = undefined;
      await h?.then((fh) => fh.close()).catch(() => undefined);
      await fs.promises.rm(this.mapPath(hex), { force: true }).catch(() => undefined);
      await fs.promises.rm(this.dataPath(hex), { force: true }).catch(() => undefined);
      if (hex !== current) this.blobs.delete(hex);
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, 500);
    this.flushTimer.unref();
  }

  /** Writes the maps of blobs that changed (atomically: a reader never sees half a map). */
  async flush(): Promise<void> {
    for (const [hex, s] of this.blobs) {
      if (!s.dirty) continue;
      s.dirty = false;
      const file = this.mapPath(hex);
      const tmp = `${file}.${process.pid}.tmp`;
      try {
        await fs.promises.writeFile(tmp, JSON.stringify({ blockSize: this.blockSize, blocks: [...s.blocks].map(([b, [crc, len]]) => [b, crc, len]) }));
        await fs.promises.rename(tmp, file);
      } catch (err) {
        await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
        this.warn(`registry cache ${this.dir}: cannot write ${file}: ${(err as Error).message}`);
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.pending]);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flush();
    for (const s of this.blobs.values()) {
      const h = s.handle;
      s.handle = undefined;
      await h?.then((fh) => fh.close()).catch(() => undefined);
    }
  }
}
