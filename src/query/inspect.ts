import type { ImageView } from '../engine';
import { platformString, type HistoryStep, type ImageRecord } from '../image/model';

/** An image as the archive lists it, before anything of it is read. */
export interface ImageListing {
  position: number;
  names: string[];
  manifestDigest: string | null;
  configDigest: string | null;
  platform: string | null;
  layout: string;
}

/** The parts of the config people look for first. */
export interface ConfigSummary {
  created: string | null;
  platform: string | null;
  entrypoint: string[] | null;
  cmd: string[] | null;
  env: string[];
  workingDir: string | null;
  user: string | null;
  exposedPorts: string[];
  labels: Record<string, string>;
  volumes: string[];
}

export interface LayerRow {
  position: number;
  diffId: string;
  /** The stored blob's digest when the manifest names it. */
  digest: string | null;
  compression: string;
  /** Bytes of the blob as stored in the archive (compressed or not). */
  storedSize: number;
  /** Bytes of the uncompressed layer tar. */
  size: number;
  /** Entries in the layer's tar: files, directories, links and whiteout markers alike. */
  files: number;
  created: string | null;
  createdBy: string | null;
  comment: string | null;
  /** False when `--layers` left this layer out of the merged tree. */
  applied: boolean;
}

/** A history step that made no layer (ENV, CMD, …), shown where it sits among the layers. */
export interface EmptyStepRow {
  created: string | null;
  createdBy: string | null;
  comment: string | null;
}

export type HistoryRow = { layer: LayerRow } | { empty: EmptyStepRow };

export function listImages(records: readonly ImageRecord[]): ImageListing[] {
  return records.map((r) => ({
    position: r.position,
    names: r.names,
    manifestDigest: r.manifestDigest ?? null,
    configDigest: r.configDigest ?? null,
    platform: platformString(r.platform) || null,
    layout: r.layout,
  }));
}

export function configSummary(view: ImageView): ConfigSummary {
  const cfg = view.image.config;
  const c = cfg.config ?? {};
  const list = (v: unknown): string[] | null => (Array.isArray(v) ? v.map(String) : null);
  const keys = (v: unknown): string[] => (v && typeof v === 'object' ? Object.keys(v).sort() : []);
  const platform = platformString(view.image.record.platform) || platformString({ os: cfg.os, architecture: cfg.architecture, variant: cfg.variant });
  return {
    created: typeof cfg.created === 'string' ? cfg.created : null,
    platform: platform || null,
    entrypoint: list(c.Entrypoint),
    cmd: list(c.Cmd),
    env: list(c.Env) ?? [],
    workingDir: c.WorkingDir || null,
    user: c.User || null,
    exposedPorts: keys(c.ExposedPorts),
    labels: c.Labels && typeof c.Labels === 'object' ? { ...c.Labels } : {},
    volumes: keys(c.Volumes),
  };
}

function layerRow(view: ImageView, position: number, step: HistoryStep | undefined): LayerRow {
  const l = view.layers[position];
  return {
    position,
    diffId: l.descriptor.diffId,
    digest: l.descriptor.digest ?? null,
    compression: l.compression,
    storedSize: l.storedSize,
    size: l.tarSize ?? l.stream.size,
    files: l.index.count,
    created: step?.created ?? null,
    createdBy: step?.createdBy ?? null,
    comment: step?.comment ?? null,
    applied: view.applied.includes(position),
  };
}

/**
 * The layers in order with the empty history steps between the layers they were built between.
 * Layers the history does not account for (squashed images, missing history) still appear, in
 * position order, just without a build step; steps that claim a layer the image lacks are shown
 * as empty, since no layer of theirs exists.
 */
export function historyRows(view: ImageView): HistoryRow[] {
  const rows: HistoryRow[] = [];
  let next = 0;
  const emitLayersBelow = (end: number) => {
    for (; next < end; next++) rows.push({ layer: layerRow(view, next, undefined) });
  };
  for (const step of view.image.history) {
    if (step.layer !== undefined && step.layer >= next) {
      emitLayersBelow(step.layer);
      rows.push({ layer: layerRow(view, step.layer, step) });
      next = step.layer + 1;
    } else {
      rows.push({ empty: { created: step.created ?? null, createdBy: step.createdBy ?? null, comment: step.comment ?? null } });
    }
  }
  emitLayersBelow(view.layers.length);
  return rows;
}
