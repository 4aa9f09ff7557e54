import { Command, Option } from 'commander';
import { defaultCacheDir, IndexCache } from '../cache/index-cache';
import { ImageArchive, ImageView, type OpenOptions } from '../engine';
import { archiveInput, labelPaths } from './archive-input';
import { UsageError, UserError } from '../errors';
import { warning, type Warning } from '../warnings';
import { nameFromText, type ByteString } from '../names';
import { terminalProgress, type Progress } from './progress';

/** Options every image-reading command shares. */
export interface ImageOptions {
  image?: string;
  platform?: string;
  layers?: string;
  quiet?: boolean;
  cacheDir?: string;
  verify?: boolean;
  cacheSize?: string;
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
    .addOption(new Option('--cache-size <MiB>', 'memory for decompressed pieces of compressed layers').default('256'))
    .addOption(new Option('--verify', 'check the digests of manifest, config and every layer first (reads everything once)'))
    .addOption(new Option('-q, --quiet', 'do not print warnings about the archive'));
}

/** Prints warnings on stderr as `ocimount: warning: <text>`, or nothing with --quiet. */
export function warnPrinter(quiet: boolean | undefined): (w: Warning) => void {
  return quiet ? () => undefined : (w) => process.stderr.write(`ocimount: warning: ${labelPaths(w.text)}\n`);
}

/**
 * The engine's options for the shared flags. `progress`, when given, is ended by the caller
 * once opening is done (it owns a terminal line).
 */
export function engineOptions(opts: ImageOptions, progress?: Progress): OpenOptions {
  const print = warnPrinter(opts.quiet);
  const spanMiB = Number(opts.cacheSize ?? 256);
  if (!Number.isFinite(spanMiB) || spanMiB < 1) throw new UsageError(`--cache-size ${opts.cacheSize}: expected a number of MiB, at least 1`);
  return {
    image: opts.image,
    platform: opts.platform,
    layers: opts.layers,
    onWarning: (_text, w) => print(w),
    onNote: opts.quiet ? () => undefined : (m: string) => process.stderr.write(`ocimount: ${labelPaths(m)}\n`),
    onProgress: progress && ((what, done, total) => progress.update(what, done, total)),
    cache: opts.cache === false ? undefined : new IndexCache(opts.cacheDir ?? defaultCacheDir(), (text) => print(warning('cache', text))),
    verify: opts.verify,
    spanCacheBytes: spanMiB * 1024 * 1024,
  };
}

/**
 * Opens the archive the user named: a file or folder, or `-` / a pipe, spooled first (see
 * archive-input.ts). A spooled copy's outer index is not cached: its name never comes back.
 */
export async function openArchive(arg: string, options: OpenOptions): Promise<ImageArchive> {
  const input = await archiveInput(arg);
  return ImageArchive.open(input.path, { ...options, cache: input.spooled ? undefined : options.cache });
}

export async function openView(archive: string, opts: ImageOptions, hooks: Partial<OpenOptions> = {}): Promise<ImageView> {
  const progress = terminalProgress();
  try {
    const options = { ...engineOptions(opts, progress), ...hooks };
    const opened = await openArchive(archive, options);
    try {
      return await ImageView.fromArchive(opened, options);
    } catch (err) {
      await opened.close();
      throw err;
    }
  } finally {
    progress?.end();
  }
}

/**
 * Opens the image for a command, hands it to `use` and closes it however `use` ends. The
 * shared flags choose the image; `hooks` override engine options (the mount server's own
 * warning and progress routing).
 */
export async function withImage<T>(archive: string, opts: ImageOptions, use: (view: ImageView) => Promise<T>, hooks: Partial<OpenOptions> = {}): Promise<T> {
  const view = await openView(archive, opts, hooks);
  try {
    return await use(view);
  } finally {
    await view.close();
  }
}

/** A commander action that ends the process the CLI's way (reportAndExit) when it fails. */
export function reporting<A extends unknown[]>(action: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await action(...args);
    } catch (err) {
      reportAndExit(err);
    }
  };
}

/** Ends the process with the error's one-line message and exit code. */
export function reportAndExit(err: unknown): never {
  if (err instanceof UserError) {
    process.stderr.write(`ocimount: ${labelPaths(err.message)}\n`);
    process.exit(err.exitCode);
  }
  const e = err as NodeJS.ErrnoException;
  const requireStack = (e as { requireStack?: string[] } | undefined)?.requireStack ?? [];
  if (e?.code === 'MODULE_NOT_FOUND' && (/dist[\\/]/.test(String(e.message).split('\n')[0]) || requireStack.some((p) => /[\\/]dist[\\/]/.test(p)))) {
    process.stderr.write('ocimount: not built: part of dist/ went missing while running (a build is running right now?): run \'npm run build\' and try again (exit 70)\n');
    process.exit(70);
  }
  process.stderr.write(`ocimount: internal error: ${labelPaths(e?.stack ?? String(err))}\n`);
  process.exit(70);
}

/**
 * A path inside the image as the user typed it, as a byte string: an absolute one as it is, a
 * relative one (`./server`, `bin/tool`) from the config's WorkingDir, `/` when it sets none, as
 * the container would resolve it (a Cmd of ["./server"] runs WorkingDir/server).
 */
export function imageArgPath(view: ImageView, typed: string): ByteString {
  const path = nameFromText(typed);
  if (path.startsWith('/')) return path;
  const wd = view.image.config.config?.WorkingDir;
  const base = typeof wd === 'string' && wd !== '' ? nameFromText(wd) : '/';
  return `${base.replace(/\/+$/, '')}/${path}`;
}
