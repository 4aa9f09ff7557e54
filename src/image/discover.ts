import { ArchiveError, readArchiveJson, type ArchiveFiles } from '../archive/archive-files';
import { printableText } from '../text';
import { warning } from '../warnings';
import type { ImageRecord, Platform } from './model';

/*
 * Finds the images an archive holds, by what its files say rather than by its name:
 * manifest.json (every `docker save`, skopeo and kaniko), else index.json (OCI layouts), else
 * `repositories` with `<id>/json` chains (Docker before 1.10).
 */

const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
const MANIFEST_TYPES = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);

const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** `blobs/<alg>/<hex>` for a digest; a malformed digest (a path in disguise) is refused. */
export function blobPath(digest: unknown, where: string): string {
  if (typeof digest !== 'string' || !DIGEST_RE.test(digest)) {
    throw new ArchiveError(`${where}: invalid digest ${JSON.stringify(digest)}`);
  }
  const [alg, hex] = digest.split(':');
  return `blobs/${alg}/${hex}`;
}

/** The sha256 a docker-archive file name carries (`<hex>.json`, `blobs/sha256/<hex>`, `sha256:<hex>`). */
function digestFromName(path: string): string | undefined {
  const m = /(?:^|[/:])([a-f0-9]{64})(?:\.json)?$/.exec(path);
  return m ? `sha256:${m[1]}` : undefined;
}

interface Descriptor {
  mediaType?: string;
  digest?: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: Platform;
}

function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ArchiveError(`${what}: expected a JSON object`);
  return v as Record<string, unknown>;
}

function stringList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function descriptorNames(d: Descriptor): string[] {
  const a = d.annotations ?? {};
  return [a['io.containerd.image.name'], a['org.opencontainers.image.ref.name']].filter((x): x is string => typeof x === 'string' && x !== '');
}

/** Attestations and signatures ride along in buildx indexes as `unknown/unknown` manifests. */
function isAttestation(d: Descriptor): boolean {
  return d.platform?.os === 'unknown' || d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest';
}

/** Every image manifest reachable from an index, nested indexes followed, platform carried. */
async function walkIndex(
  files: ArchiveFiles,
  indexPath: string,
  inherited: string[],
  out: Array<{ desc: Descriptor; names: string[] }>,
  depth = 0,
  walked = new Set<string>(),
): Promise<void> {
  if (depth > 8) throw new ArchiveError(`${files.location}: ${indexPath}: image indexes nested too deep`);
  // Each nested index is walked once. The depth limit alone does not bound the work: an index
  // that lists the same child index ten times, eight levels down, is 10^8 visits (a hang).
  if (walked.has(indexPath)) return;
  walked.add(indexPath);
  const { value } = await readArchiveJson(files, indexPath);
  const index = asObject(value, `${files.location}: ${indexPath}`);
  const manifests = index.manifests === null || index.manifests === undefined ? [] : index.manifests;
  if (!Array.isArray(manifests)) throw new ArchiveError(`${files.location}: ${indexPath}: "manifests" is not a list`);
  for (const raw of manifests) {
    const desc = asObject(raw, `${files.location}: ${indexPath}: manifest descriptor`) as Descriptor;
    const names = [...new Set([...descriptorNames(desc), ...inherited])];
    if (INDEX_TYPES.has(desc.mediaType ?? '')) {
      await walkIndex(files, blobPath(desc.digest, `${files.location}: ${indexPath}`), names, out, depth + 1, walked);
    } else if (MANIFEST_TYPES.has(desc.mediaType ?? '') || desc.mediaType === undefined) {
      if (!isAttestation(desc)) out.push({ desc, names });
    }
  }
}

async function ociRecords(files: ArchiveFiles): Promise<ImageRecord[]> {
  const found: Array<{ desc: Descriptor; names: string[] }> = [];
  await walkIndex(files, 'index.json', [], found);
  const records: ImageRecord[] = [];
  // A manifest listed many times (one descriptor per tag, or a hostile index repeating one) is
  // read and parsed once.
  const parsed = new Map<string, unknown>();
  for (const { desc, names } of found) {
    const manifestPath = blobPath(desc.digest, `${files.location}: index.json`);
    let value = parsed.get(manifestPath);
    if (value === undefined) {
      value = (await readArchiveJson(files, manifestPath)).value;
      parsed.set(manifestPath, value);
    }
    const manifest = asObject(value, `${files.location}: ${manifestPath}`);
    const config = asObject(manifest.config, `${files.location}: ${manifestPath}: config`) as Descriptor;
    records.push({
      position: records.length,
      names,
      manifestDigest: desc.digest,
      configDigest: config.digest,
      platform: desc.platform,
      layout: 'oci-layout',
      configPath: blobPath(config.digest, `${files.location}: ${manifestPath}`),
      manifestPath,
    });
  }
  return records;
}

async function dockerRecords(files: ArchiveFiles): Promise<ImageRecord[]> {
  const { value } = await readArchiveJson(files, 'manifest.json');
  if (!Array.isArray(value)) throw new ArchiveError(`${files.location}: manifest.json: expected a JSON array`);
  // Docker 25+ also writes an OCI index; it knows the manifest digests that manifest.json lacks.
  const ociByConfig = new Map<string, ImageRecord>();
  if (files.has('index.json')) {
    try {
      for (const r of await ociRecords(files)) if (r.configDigest) ociByConfig.set(r.configDigest, r);
    } catch (err) {
      files.warnings.push(warning('image', `index.json ignored: ${(err as Error).message}`));
    }
  }
  return value.map((raw, position): ImageRecord => {
    const entry = asObject(raw, `${files.location}: manifest.json[${position}]`);
    if (typeof entry.Config !== 'string') throw new ArchiveError(`${files.location}: manifest.json[${position}]: no Config`);
    if (!Array.isArray(entry.Layers) || entry.Layers.some((l) => typeof l !== 'string')) {
      throw new ArchiveError(`${files.location}: manifest.json[${position}]: Layers is not a list of paths`);
    }
    const configDigest = digestFromName(entry.Config);
    const oci = configDigest ? ociByConfig.get(configDigest) : undefined;
    return {
      position,
      names: [...new Set([...stringList(entry.RepoTags), ...(oci?.names ?? [])])],
      manifestDigest: oci?.manifestDigest,
      configDigest,
      platform: oci?.platform,
      layout: 'docker-archive',
      configPath: entry.Config,
      manifestPath: oci?.manifestPath,
      layerPaths: entry.Layers as string[],
      dockerManifestEntry: entry,
    };
  });
}

/** Docker < 1.10: `repositories` names top layer ids; each `<id>/json` names its parent. */
async function dockerV1Records(files: ArchiveFiles): Promise<ImageRecord[]> {
  const { value } = await readArchiveJson(files, 'repositories');
  const repos = asObject(value, `${files.location}: repositories`);
  const byTop = new Map<string, string[]>();
  for (const [repo, tags] of Object.entries(repos)) {
    for (const [tag, id] of Object.entries(asObject(tags, `${files.location}: repositories.${repo}`))) {
      if (typeof id !== 'string') continue;
      byTop.set(id, [...(byTop.get(id) ?? []), `${repo}:${tag}`]);
    }
  }
  const records: ImageRecord[] = [];
  for (const [top, names] of byTop) {
    const chain: string[] = [];
    const seen = new Set<string>();
    for (let id: string | undefined = top; id; ) {
      if (seen.has(id) || !/^[a-f0-9]{64}$/.test(id)) throw new ArchiveError(`${files.location}: layer chain of ${printableText(top)} is broken at ${printableText(String(id))}`);
      seen.add(id);
      chain.unshift(id);
      const { value: json } = await readArchiveJson(files, `${id}/json`);
      const parent: unknown = asObject(json, `${files.location}: ${id}/json`).parent;
      id = typeof parent === 'string' && parent !== '' ? parent : undefined;
    }
    records.push({ position: records.length, names, layout: 'docker-v1', configPath: `${top}/json`, v1Chain: chain });
  }
  return records;
}

export async function discoverImages(files: ArchiveFiles): Promise<ImageRecord[]> {
  if (files.has('manifest.json')) return dockerRecords(files);
  if (files.has('index.json')) {
    if (!files.has('oci-layout')) files.warnings.push(warning('image', 'index.json without oci-layout: read as an OCI layout anyway'));
    return ociRecords(files);
  }
  if (files.has('repositories')) return dockerV1Records(files);
  // docker save writes manifest.json last, so a cut-off download usually lands here: say that
  // the file is cut rather than that it is no image at all.
  if (files.truncation !== undefined) {
    throw new ArchiveError(`${files.location}: no manifest.json, index.json or repositories before the archive ends early (${files.truncation}): is the file complete?`);
  }
  throw new ArchiveError(`${files.location}: not a container image archive (no manifest.json, index.json or repositories)`);
}
