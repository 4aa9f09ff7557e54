import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/*
 * Manifests and configs by digest, and the digest each tag last had, in the cache folder
 * (`<cache-dir>/registry/meta/`), so a remount works while the registry does not answer: a
 * digest reference needs nothing from it (what is kept is checked against the digest on every
 * read), a tag falls back to its last digest with a warning. Without a cache folder: nothing kept.
 */
export class MetaStore {
  constructor(private readonly dir: string | undefined) {}

  private async write(file: string, data: Buffer | string): Promise<void> {
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      await fs.promises.writeFile(tmp, data);
      await fs.promises.rename(tmp, file);
    } catch {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /** The bytes kept for `digest`, only if they still hash to it. */
  async get(digest: string): Promise<Buffer | undefined> {
    if (!this.dir || !/^sha256:[a-f0-9]{64}$/.test(digest)) return undefined;
    const bytes = await fs.promises.readFile(path.join(this.dir, 'blobs', digest.slice(7))).catch(() => undefined);
    if (!bytes || `sha256:${createHash('sha256').update(bytes).digest('hex')}` !== digest) return undefined;
    return bytes;
  }

  async put(digest: string, bytes: Buffer): Promise<void> {
    if (!this.dir || !/^sha256:[a-f0-9]{64}$/.test(digest)) return;
    await this.write(path.join(this.dir, 'blobs', digest.slice(7)), bytes);
  }

  private tagFile(name: string): string {
    return path.join(this.dir!, 'tags', createHash('sha256').update(name).digest('hex'));
  }

  async tagDigest(name: string): Promise<{ digest: string; mediaType: string; seen: string } | undefined> {
    if (!this.dir) return undefined;
    try {
      const v = JSON.parse(await fs.promises.readFile(this.tagFile(name), 'utf8')) as { name?: string; digest?: string; mediaType?: string; seen?: string };
      return v.name === name && typeof v.digest === 'string' && typeof v.mediaType === 'string' ? { digest: v.digest, mediaType: v.mediaType, seen: String(v.seen) } : undefined;
    } catch {
      return undefined;
    }
  }

  async putTag(name: string, digest: string, mediaType: string): Promise<void> {
    if (!this.dir) return;
    await this.write(this.tagFile(name), JSON.stringify({ name, digest, mediaType, seen: new Date().toISOString() }));
  }
}
