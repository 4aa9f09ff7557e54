import { NotFoundError } from '../errors';
import { EntryType, typeWords } from '../tar/entry';
import type { Tree } from '../union/tree';
import { displayName } from '../names';
import { displayPath } from './format';

/** Linux gives up after 40 symlinks in one lookup (ELOOP); an image deserves the same bound. */
export const MAX_SYMLINK_HOPS = 40;

/**
 * A path in the image (a byte string: see src/names.ts; the CLI turns what was typed into one
 * with `nameFromText`), made relative to the image root the way the engine stores paths.
 * `..` is resolved lexically and stops at the root, as `cd /..` does: a user path can never
 * name anything outside the image, so there is nothing to refuse.
 */
export function imagePath(userPath: string): string {
  const out: string[] = [];
  for (const part of userPath.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

export interface ResolveOptions {
  /** Follow a symlink in the last component too (cat does; ls -l, find and extract do not). */
  followFinal: boolean;
}

/**
 * Finds `userPath` in `tree`, following symlinks in its directory components (and in the last
 * one when asked) inside the image: an absolute target restarts at the image root, a relative
 * one at the link's directory, `..` stops at the root. The host filesystem is never consulted.
 * Throws NotFoundError (exit 1) for a missing path, a file used as a directory, or a loop.
 */
export function resolvePath(tree: Tree, userPath: string, opts: ResolveOptions): number {
  const shown = displayName(displayPath(imagePath(userPath)));
  // A trailing slash (`/app/trace.log/`) asks for a directory, and follows a final symlink to
  // one, as the kernel's path walk does.
  const mustBeDir = /\/\.?$/.test(userPath);
  const followFinal = opts.followFinal || mustBeDir;
  const pending = userPath.split('/').reverse();
  let node = 0;
  let hops = 0;
  while (pending.length) {
    const part = pending.pop()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (node !== 0) node = tree.parent[node];
      continue;
    }
    if (!tree.isDir(node)) throw new NotFoundError(`${shown}: not a directory in the image (${displayName(displayPath(tree.path(node)))} is a ${typeWords(tree.type(node))})`);
    const child = tree.child(node, part);
    if (child < 0) throw new NotFoundError(`${shown}: no such file or directory in the image`);
    const last = !pending.some((p) => p !== '' && p !== '.');
    if (tree.type(child) === EntryType.Symlink && (!last || followFinal)) {
      if (++hops > MAX_SYMLINK_HOPS) throw new NotFoundError(`${shown}: too many levels of symbolic links in the image`);
      const target = tree.symlinkTarget(child) ?? '';
      if (target.startsWith('/')) node = 0;
      for (const p of target.split('/').reverse()) pending.push(p);
      continue;
    }
    node = child;
  }
  if (mustBeDir && !tree.isDir(node)) throw new NotFoundError(`${shown === '/' ? '' : shown}/: not a directory (it is a ${typeWords(tree.type(node))})`);
  return node;
}


