/** What an image is once its archive layout has been read: the shape every other part uses. */
import type { Warning } from '../warnings';

export interface Platform {
  os?: string;
  architecture?: string;
  variant?: string;
}

export type LayoutKind = 'docker-archive' | 'oci-layout' | 'docker-v1';

/** One image found in the archive, before its config and layers are read. */
export interface ImageRecord {
  /** Position in the archive's own order, counted from 0. */
  position: number;
  /** Tags and references: RepoTags, `io.containerd.image.name`, `org.opencontainers.image.ref.name`. */
  names: string[];
  manifestDigest?: string;
  configDigest?: string;
  platform?: Platform;
  layout: LayoutKind;
  /** Archive paths, for the loader. */
  configPath: string;
  manifestPath?: string;
  /** docker-archive only: the layer files listed by manifest.json. */
  layerPaths?: string[];
  /** docker-v1 only: layer ids bottom first (their `<id>/json` files hold the metadata). */
  v1Chain?: string[];
  /** The manifest.json entry for docker archives, kept to show it as the image's manifest. */
  dockerManifestEntry?: unknown;
}

export interface LayerDescriptor {
  /** 0 is the bottom layer. */
  position: number;
  /** The uncompressed tar's digest, as the config lists it. */
  diffId: string;
  /** Where the layer's bytes are inside the archive. */
  blobPath: string;
  /** The stored (maybe compressed) blob's digest, when the manifest names it. */
  digest?: string;
  mediaType?: string;
  /** Stored blob size when the manifest gives it. */
  size?: number;
}

export interface HistoryStep {
  created?: string;
  createdBy?: string;
  comment?: string;
  emptyLayer: boolean;
  /** Position of the layer this step made; undefined for empty steps or unmatched ones. */
  layer?: number;
}

export interface Image {
  record: ImageRecord;
  config: ImageConfig;
  configBytes: Buffer;
  /** The manifest as stored (OCI/Docker v2 manifest), or the manifest.json entry for legacy archives. */
  manifestBytes: Buffer;
  layers: LayerDescriptor[];
  history: HistoryStep[];
  warnings: Warning[];
}

/** The parts of the OCI/Docker image config the tool reads; the rest is carried untouched. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: {
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    User?: string;
    Labels?: Record<string, string> | null;
    ExposedPorts?: Record<string, unknown> | null;
    Volumes?: Record<string, unknown> | null;
  };
  rootfs?: { type?: string; diff_ids?: string[] };
  history?: Array<{ created?: string; created_by?: string; comment?: string; empty_layer?: boolean }>;
  [key: string]: unknown;
}

export function platformString(p: Platform | undefined): string {
  if (!p || (!p.os && !p.architecture)) return '';
  return [p.os ?? '?', p.architecture ?? '?', p.variant].filter(Boolean).join('/');
}
