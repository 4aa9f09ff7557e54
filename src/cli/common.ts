import { Command, Option } from 'commander';
import { defaultCacheDir, IndexCache } from '../cache/index-cache';
import { ImageView, type OpenOptions } from '../engine';
import { UserError } from '../errors';

/** Options every image-reading command shares. */
export interface ImageOptions {
  image?: string;
  platform?: string;
  layers?: string;
  quiet?: boolean;
  cacheDir?: string;
  verify?: boolean;
  /** commander's negation of --no-cache. */
  cache?: boolean;
}

export function addImageOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--image <sel>', 'which image of a multi-image archive: position (0, 1, …), name (myapp:1.0) or digest (sha256:…)'))
    .addOption(new Option('--platform <os/arch[/variant]>', 'which platform of a multi-platform image, e.g. linux/arm64 (default: this machine\'s)'))
    .addOption(new Option('--layers <list>', 'view the image as of some layers: ..3 (as it stood after layer 3), 0-2,5, ^4 (all but layer 4)'))
    .addOption(new Option('--cache-dir <dir>', 'where layer indexes are kept between runs').default(undefined, '$XDG_CACHE_HOME/ocimount'))
    .addOption(new Option('--no-cache', 'neither read nor write the index cache'))
    .addOption(new Option('--verify', 'check the digests of manifest, config and every layer first (reads everything once)'))
    .addOption(new Option('-q, --quiet', 'do not print warnings about the archive'));
}

export function warnPrinter(quiet: boolean | undefined): (m: string) => void {
  return quiet ? () => undefined : (m) => process.stderr.write(`ocimount: warning: ${m}\n`);
}

export async function openView(archive: string, opts: ImageOptions): Promise<ImageView> {
  const onWarning = warnPrinter(opts.quiet);
  const cache = opts.cache === false ? undefined : new IndexCache(opts.cacheDir ?? defaultCacheDir(), onWarning);
  const open: OpenOptions = { image: opts.image, platform: opts.platform, layers: opts.layers, onWarning, cache, verify: opts.verify };
  return ImageView.open(archive, open);
}

/** Ends the process with the error's one-line message and exit code. */
export function reportAndExit(err: unknown): never {
  if (err instanceof UserError) {
    process.stderr.write(`ocimount: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  const e = err as Error;
  process.stderr.write(`ocimount: internal error: ${e?.stack ?? String(err)}\n`);
  process.exit(70);
}
