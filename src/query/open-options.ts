import { defaultCacheDir, IndexCache } from '../cache/index-cache';
import type { OpenOptions } from '../engine';

/** The shared image flags (see addImageOptions), as commander hands them over. */
export interface ImageFlags {
  image?: string;
  platform?: string;
  layers?: string;
  cacheDir?: string;
  /** false for --no-cache. */
  cache?: boolean;
  verify?: boolean;
}

/**
 * The engine's open options for those flags, built the way openView builds them (index cache,
 * --verify), for the commands that open an archive themselves: inspect lists the images before
 * choosing one, and diff may take two images out of one archive.
 */
export function openOptions(flags: ImageFlags, onWarning: (message: string) => void, cache?: IndexCache): OpenOptions {
  return {
    image: flags.image,
    platform: flags.platform,
    layers: flags.layers,
    onWarning,
    cache: flags.cache === false ? undefined : (cache ?? new IndexCache(flags.cacheDir ?? defaultCacheDir(), onWarning)),
    verify: flags.verify,
  };
}
