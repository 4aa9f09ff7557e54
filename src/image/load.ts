import { ArchiveError, readArchiveJson, type ArchiveFiles } from '../archive/archive-files';
import { blobPath } from './discover';
import { mapHistory } from './history';
import type { Image, ImageConfig, ImageRecord, LayerDescriptor } from './model';
import { digestOf } from './verify';
import { warning, type Warning } from '../warnings';

/** Reads an image's config, manifest and layer list; layer contents are not touched here. */
export async function loadImage(files: ArchiveFiles, record: ImageRecord): Promise<Image> {
  if (record.layout === 'docker-v1') return loadDockerV1(files, record);
  const warnings: Warning[] = [];
  const { value: configValue, bytes: configBytes } = await readArchiveJson(files, record.configPath);
  const config = asConfig(configValue, `${files.location}: ${record.configPath}`);
  let manifestBytes: Buffer;
  let layers: Array<Omit<LayerDescriptor, 'diffId' | 'position'>>;

  if (record.manifestPath && record.layout === 'oci-layout') {
    const { value, bytes } = await readArchiveJson(files, record.manifestPath);
    manifestBytes = bytes;
    const where = `${files.location}: ${record.manifestPath}`;
    const list = (value as { layers?: unknown }).layers;
    if (!Array.isArray(list)) throw new ArchiveError(`${where}: "layers" is not a list`);
    layers = list.map((d: { digest?: unknown; mediaType?: unknown; size?: unknown }) => ({
      blobPath: blobPath(d?.digest, where),
      digest: d.digest as string,
      mediaType: typeof d.mediaType === 'string' ? d.mediaType : undefined,
      size: typeof d.size === 'number' ? d.size : undefined,
    }));
  } else {
    manifestBytes = Buffer.from(JSON.stringify(record.dockerManifestEntry ?? {}, null, 2) + '\n');
    // Docker 25+ has the OCI manifest too: its descriptors give media types and blob digests.
    let ociLayers: Array<{ digest?: string; mediaType?: string; size?: number }> = [];
    if (record.manifestPath) {
      const { value, bytes } = await readArchiveJson(files, record.manifestPath);
      manifestBytes = bytes;
      ociLayers = Array.isArray((value as { layers?: unknown }).layers) ? (value as { layers: typeof ociLayers }).layers : [];
    }
    layers = (record.layerPaths ?? []).map((p, i) => {
      const m = /(?:^|\/)([a-f0-9]{64})(?:\.tar(?:\.gz)?)?$/.exec(p);
      return {
        blobPath: p,
        digest: ociLayers[i]?.digest ?? (m && p.startsWith('blobs/') ? `sha256:${m[1]}` : undefined),
        mediaType: ociLayers[i]?.mediaType,
        size: ociLayers[i]?.size,
      };
    });
  }

  checkLayerCount(layers.length, files.location);
  const diffIds = Array.isArray(config.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
  if (diffIds.length !== layers.length) {
    warnings.push(warning('image', `config lists ${diffIds.length} diff_ids for ${layers.length} layers`));
  }
  const described: LayerDescriptor[] = layers.map((l, position) => ({
    ...l,
    position,
    diffId: typeof diffIds[position] === 'string' ? diffIds[position] : (l.digest ?? `layer-${position}`),
  }));
  const history = mapHistory(config, described.length);
  if (history.warning) warnings.push(warning('image', history.warning));
  return { record, config, configBytes, manifestBytes, layers: described, history: history.steps, warnings };
}

/**
 * The merged tree keeps each file's layer in 16 bits (union/tree.ts objLayer). A manifest may
 * list any number of layers (the same empty blob 70,000 times costs a few bytes each), and past
 * 65,535 the layer numbers would wrap and files would read from the wrong layer. Real images
 * stop near 127 (the overlayfs limit Docker enforces).
 */
export const MAX_LAYERS = 65535;

function checkLayerCount(count: number, location: string): void {
  if (count > MAX_LAYERS) throw new ArchiveError(`${location}: the image lists ${count} layers; ocimount reads at most ${MAX_LAYERS}`);
}

function asConfig(v: unknown, where: string): ImageConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ArchiveError(`${where}: the image config is not a JSON object`);
  return v as ImageConfig;
}

/**
 * Docker < 1.10 has no image config: each layer's `<id>/json` carries v1 metadata. The config is
 * rebuilt from the top layer's json, and diff_ids from hashing each layer.tar, since nothing
 * else names them.
 */
async function loadDockerV1(files: ArchiveFiles, record: ImageRecord): Promise<Image> {
  const chain = record.v1Chain ?? [];
  const metas: Array<Record<string, unknown>> = [];
  for (const id of chain) metas.push((await readArchiveJson(files, `${id}/json`)).value as Record<string, unknown>);
  const top = metas[metas.length - 1] ?? {};
  const diffIds: string[] = [];
  const layers: LayerDescriptor[] = [];
  for (const [position, id] of chain.entries()) {
    const path = `${id}/layer.tar`;
    const diffId = files.has(path) ? await digestOf(await files.open(path)) : `layer-${position}`;
    diffIds.push(diffId);
    if (files.has(path)) layers.push({ position: layers.length, diffId, blobPath: path });
  }
  const history = metas.map((m) => {
    const cc = m.container_config as { Cmd?: unknown } | undefined;
    return {
      created: typeof m.created === 'string' ? m.created : undefined,
      created_by: Array.isArray(cc?.Cmd) ? cc.Cmd.join(' ') : undefined,
      empty_layer: !files.has(`${m.id}/layer.tar`) || undefined,
    };
  });
  checkLayerCount(layers.length, files.location);
  const config: ImageConfig = {
    architecture: top.architecture as string | undefined,
    os: top.os as string | undefined,
    created: top.created as string | undefined,
    config: (top.config ?? {}) as ImageConfig['config'],
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history,
  };
  const mapped = mapHistory(config, layers.length);
  return {
    record,
    config,
    configBytes: Buffer.from(JSON.stringify(config, null, 2) + '\n'),
    manifestBytes: Buffer.from(JSON.stringify({ repositories: record.names, layers: chain }, null, 2) + '\n'),
    layers,
    history: mapped.steps,
    warnings: mapped.warning ? [warning('image', mapped.warning)] : [],
  };
}
