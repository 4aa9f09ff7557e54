import { createHash } from 'node:crypto';
import type { ByteSource } from '../io/byte-source';
import type { Image } from './model';

/** sha256:<hex> of a byte source, read in 1 MiB steps. */
export async function digestOf(src: ByteSource): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  for (let pos = 0; pos < src.size; ) {
    const n = await src.read(buf, 0, Math.min(buf.length, src.size - pos), pos);
    if (n === 0) throw new Error(`short read at byte ${pos}`);
    hash.update(buf.subarray(0, n));
    pos += n;
  }
  return `sha256:${hash.digest('hex')}`;
}

const PLAIN_TAR_TYPES = new Set(['application/vnd.oci.image.layer.v1.tar', 'application/vnd.docker.image.rootfs.diff.tar']);

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * The checks that cost nothing because the bytes are already in memory: the manifest and the
 * config against the digests that name them. Run on every open; a mismatch is a warning
 * (--verify makes it an error).
 */
export function metadataDigestProblems(image: Image): string[] {
  const problems: string[] = [];
  const { manifestDigest, configDigest, layout } = image.record;
  if (configDigest?.startsWith('sha256:') && layout !== 'docker-v1' && sha256(image.configBytes) !== configDigest) {
    problems.push(`config does not match its digest ${configDigest} (it hashes to ${sha256(image.configBytes)})`);
  }
  if (manifestDigest?.startsWith('sha256:') && layout !== 'docker-v1' && image.record.manifestPath && sha256(image.manifestBytes) !== manifestDigest) {
    problems.push(`manifest does not match its digest ${manifestDigest}`);
  }
  // An uncompressed layer's blob is its tar, so its manifest digest and its config diff_id are
  // the same hash by definition: when they differ, one of the two is wrong, found for free.
  for (const l of image.layers) {
    if (l.mediaType && PLAIN_TAR_TYPES.has(l.mediaType) && l.digest?.startsWith('sha256:') && l.diffId.startsWith('sha256:') && l.digest !== l.diffId) {
      problems.push(`layer ${l.position}: its manifest digest ${l.digest} and its config diff_id ${l.diffId} differ, though its media type says uncompressed`);
    }
  }
  return problems;
}

export interface LayerToVerify {
  position: number;
  diffId: string;
  digest?: string;
  blob: ByteSource;
  /** The uncompressed tar stream (the blob itself when uncompressed). */
  stream: ByteSource;
  compressed: boolean;
}

/** Full check of every layer: the stored blob against its digest, the tar against its diff_id. */
export async function layerDigestProblems(layers: LayerToVerify[]): Promise<string[]> {
  const problems: string[] = [];
  for (const l of layers) {
    const blobDigest = await digestOf(l.blob);
    if (l.digest?.startsWith('sha256:') && blobDigest !== l.digest) problems.push(`layer ${l.position}: blob does not match its digest ${l.digest} (it hashes to ${blobDigest})`);
    const tarDigest = l.compressed ? await digestOf(l.stream) : blobDigest;
    if (l.diffId.startsWith('sha256:') && tarDigest !== l.diffId) problems.push(`layer ${l.position}: content does not match its diff_id ${l.diffId} (it hashes to ${tarDigest})`);
  }
  return problems;
}
