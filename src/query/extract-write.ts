import { execFile } from 'node:child_process';
import { constants as C, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { ImageView } from '../engine';
import { ArchiveError, OutputError, UserError } from '../errors';
import { warning, type Warning } from '../warnings';
import { displayName, nameBytes as fsPath } from '../names';
import type { Tree } from '../union/tree';
import { fileChunks } from './content';
import type { ExtractItem } from './extract-plan';

const execFileP = promisify(execFile);

export interface WriteOptions {
  /** Give files the image's uid/gid (only meaningful, and only asked for, when running as root). */
  sameOwner: boolean;
  /** Whether device nodes may be created (root only); otherwise they are skipped with a warning. */
  makeDevices: boolean;
  /**
   * Give every directory at least rwx for its owner in the end. Without it, a directory the
   * image has read-only (Go's module cache is 0555, full of files) cannot be emptied by its
   * non-root owner, and `rm -rf` of the output fails.
   */
  ownerWritableDirs: boolean;
  warn: (w: Warning) => void;
  /** Called for each path written (`-v`). */
  written?: (item: ExtractItem) => void;
}

export interface WriteResult {
  written: number;
  skipped: number;
}

/** A failure writing the output: one line naming the path (exit 1, like a missing path). */
function outputError(where: string, err: unknown): OutputError {
  const why = (err as NodeJS.ErrnoException).code === undefined ? (err as Error).message : describeErrno(err as NodeJS.ErrnoException);
  return new OutputError(`${displayName(where)}: ${why}`, { cause: err });
}

function describeErrno(err: NodeJS.ErrnoException): string {
  const text: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOSPC: 'no space left on device',
    EROFS: 'read-only file system',
    EEXIST: 'already exists',
    ENOTEMPTY: 'directory not empty',
    EDQUOT: 'disk quota exceeded',
  };
  return text[err.code ?? ''] ?? err.message;
}

/**
 * The mtime as Node's utimes takes it: fractional seconds (set to the microsecond), or a Date
 * before 1970, since Node reads a negative number as "now".
 */
function seconds(st: { mtime: number; mtimeNsec: number }): number | Date {
  const s = st.mtime + st.mtimeNsec / 1e9;
  return s >= 0 ? s : new Date(st.mtime * 1000 + Math.floor(st.mtimeNsec / 1e6));
}

async function lstatOrNull(p: string) {
  try {
    return await fsp.lstat(fsPath(p));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Writes planned items below `outDir`, which is created if missing. Whatever the paths in the
 * archive say, nothing is written outside `outDir`: every output path is built from checked
 * name components and verified to stay inside; parent directories are created here, one
 * component at a time, and an existing symlink (or any non-directory) in the way is an error,
 * never followed; files are created with O_EXCL|O_NOFOLLOW after whatever was at their path is
 * removed. Directories stay owner-writable while their contents are written and get their
 * final mode and mtime at the end, deepest first (writing into a directory changes its mtime).
 */
export async function writeItems(view: ImageView, tree: Tree, items: readonly ExtractItem[], outDir: string, opts: WriteOptions): Promise<WriteResult> {
  // Output paths are byte strings like the names they are built from (src/names.ts); every file
  // system call gets their exact bytes.
  let root: string;
  try {
    await fsp.mkdir(outDir, { recursive: true });
    root = (await fsp.realpath(outDir, { encoding: 'buffer' })).toString('latin1');
  } catch (err) {
    throw outputError(outDir, err);
  }
  const verifiedDirs = new Set<string>([root]);
  const skipped = new Set<string>();
  const dirs: ExtractItem[] = [];
  let written = 0;

  const inside = (rel: string): string => {
    const parts = rel.split('/');
    if (parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('\0'))) {
      throw new ArchiveError(`refusing to extract ${displayName(rel)}: not a plain relative path`);
    }
    const abs = path.join(root, ...parts);
    if (!abs.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) throw new ArchiveError(`refusing to extract ${displayName(rel)}: it would land outside ${displayName(root)}`);
    return abs;
  };

  /** Creates (or checks) each directory above `abs`, refusing anything that is not a real directory. */
  const parents = async (abs: string): Promise<void> => {
    const chain: string[] = [];
    for (let dir = path.dirname(abs); !verifiedDirs.has(dir); dir = path.dirname(dir)) chain.push(dir);
    for (const dir of chain.reverse()) {
      const st = await lstatOrNull(dir);
      if (!st) await fsp.mkdir(fsPath(dir), 0o755);
      else if (!st.isDirectory()) throw new OutputError(`${displayName(dir)} exists and is not a directory${st.isSymbolicLink() ? ' (a symlink; not following it)' : ''}`);
      verifiedDirs.add(dir);
    }
  };

  /** Makes room at `abs` for an item; true when a directory is already there to reuse. */
  const clear = async (abs: string, isDir: boolean): Promise<boolean> => {
    const st = await lstatOrNull(abs);
    if (!st) return false;
    if (st.isDirectory()) {
      if (isDir) return true;
      await fsp.rmdir(fsPath(abs)); // an empty directory gives way; a full one is an error, not a rm -rf
      return false;
    }
    await fsp.unlink(fsPath(abs));
    return false;
  };

  const finish = async (abs: string, item: ExtractItem, fh?: fsp.FileHandle): Promise<void> => {
    const st = item.stat;
    // setuid/setgid only travel with their owners (--same-owner): a setuid file from an untrusted
    // image, owned by whoever extracted it (often root in CI), would hand that user's rights out.
    const special = opts.sameOwner ? 0o7777 : 0o1777;
    const mode = (st.mode & special) | (item.kind === 'dir' && opts.ownerWritableDirs ? 0o700 : 0);
    if (fh) {
      if (opts.sameOwner) await fh.chown(st.uid, st.gid);
      await fh.chmod(mode);
      await fh.utimes(seconds(st), seconds(st));
    } else if (item.kind === 'symlink') {
      if (opts.sameOwner) await fsp.lchown(fsPath(abs), st.uid, st.gid);
      await fsp.lutimes(fsPath(abs), seconds(st), seconds(st));
    } else {
      // chown before chmod: chown clears setuid/setgid bits.
      if (opts.sameOwner) await fsp.lchown(fsPath(abs), st.uid, st.gid);
      await fsp.chmod(fsPath(abs), mode);
      await fsp.utimes(fsPath(abs), seconds(st), seconds(st));
    }
  };

  for (const item of items) {
    const abs = inside(item.rel);
    try {
      await parents(abs);
      switch (item.kind) {
        case 'dir': {
          if (await clear(abs, true)) {
            const st = await fsp.lstat(fsPath(abs));
            await fsp.chmod(fsPath(abs), (st.mode & 0o7777) | 0o700);
          } else await fsp.mkdir(fsPath(abs), 0o700);
          verifiedDirs.add(abs);
          dirs.push(item);
          break;
        }
        case 'file': {
          await clear(abs, false);
          const fh = await fsp.open(fsPath(abs), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
          try {
            for await (const chunk of fileChunks(view, tree, item.node)) {
              for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
            }
            await finish(abs, item, fh);
          } finally {
            await fh.close();
          }
          break;
        }
        case 'hardlink': {
          if (skipped.has(item.linkTo!)) {
            skipped.add(item.rel);
            continue;
          }
          await clear(abs, false);
          await fsp.link(fsPath(inside(item.linkTo!)), fsPath(abs));
          break;
        }
        case 'symlink': {
          await clear(abs, false);
          await fsp.symlink(fsPath(item.target!), fsPath(abs));
          await finish(abs, item);
          break;
        }
        case 'fifo':
        case 'char':
        case 'block': {
          const what = item.kind === 'fifo' ? 'fifo' : `${item.kind} device ${item.stat.devmajor},${item.stat.devminor}`;
          if (item.kind !== 'fifo' && !opts.makeDevices) {
            opts.warn(warning('extract', `${displayName(`/${item.rel}`)}: skipped ${what} (device nodes are made only as root with --same-owner)`, { entry: `/${item.rel}` }));
            skipped.add(item.rel);
            continue;
          }
          await clear(abs, false);
          const mode = (item.stat.mode & 0o7777).toString(8);
          // Node has no mknod: the tools make the node under a plain ASCII name at the top of
          // the output, which a rename then moves to its real (byte) name.
          const temp = path.join(root, `.ocimount-node-${process.pid}-${written}`);
          const cmd = item.kind === 'fifo' ? ['mkfifo', '-m', mode, temp] : ['mknod', '-m', mode, temp, item.kind === 'char' ? 'c' : 'b', String(item.stat.devmajor), String(item.stat.devminor)];
          try {
            await execFileP(cmd[0], cmd.slice(1).map((a) => (a === temp ? fsPath(temp).toString('utf8') : a)));
            await fsp.rename(fsPath(temp), fsPath(abs));
          } catch (err) {
            await fsp.unlink(fsPath(temp)).catch(() => undefined);
            const e = err as { stderr?: string; message: string };
            opts.warn(warning('extract', `${displayName(`/${item.rel}`)}: skipped ${what}: ${(e.stderr || e.message).trim().split('\n')[0]}`, { entry: `/${item.rel}` }));
            skipped.add(item.rel);
            continue;
          }
          await finish(abs, item);
          break;
        }
      }
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw outputError(abs, err);
    }
    written++;
    opts.written?.(item);
  }

  const depth = (rel: string) => rel.split('/').length;
  for (const item of [...dirs].sort((a, b) => depth(b.rel) - depth(a.rel))) {
    const abs = inside(item.rel);
    try {
      await finish(abs, item);
    } catch (err) {
      throw outputError(abs, err);
    }
  }
  return { written, skipped: skipped.size };
}
