import { displayName, nameToText } from '../names';
import { EntryType, typeName } from '../tar/entry';
import type { NodeStat, Tree } from '../union/tree';
import { alignColumns, displayPath, listTime, modeString, octalMode } from './format';

/** One line of `ls`: a node under the name it is listed by. Names and paths are byte strings. */
export interface ListRow {
  /** The name as listed: a child's name, `.` / `..`, or the path given on the command line. */
  name: string;
  /** The node's own path from the image root (`/etc/passwd`). */
  path: string;
  node: number;
  stat: NodeStat;
  target?: string;
  /** Names are byte strings; values are bytes. */
  xattrs: Record<string, Buffer>;
}

export interface ListOptions {
  /** `-a`: dot files plus `.` and `..`. */
  all?: boolean;
  /** `-A`: dot files without `.` and `..`. */
  almostAll?: boolean;
}

function row(tree: Tree, node: number, name: string): ListRow {
  return { name, path: displayPath(tree.path(node)), node, stat: tree.stat(node), target: tree.symlinkTarget(node), xattrs: tree.xattrs(node) };
}

/** A single node listed under a given name (a file operand, or `ls -d`). */
export function nodeRow(tree: Tree, node: number, name: string): ListRow {
  return row(tree, node, name);
}

/** A directory's entries in name order, dot files only when asked, as `ls` shows them. */
export function directoryRows(tree: Tree, dir: number, opts: ListOptions): ListRow[] {
  const rows: ListRow[] = [];
  if (opts.all) rows.push(row(tree, dir, '.'), row(tree, dir === 0 ? 0 : tree.parent[dir], '..'));
  for (const child of tree.children(dir)) {
    const name = tree.name(child);
    if (name.startsWith('.') && !opts.all && !opts.almostAll) continue;
    rows.push(row(tree, child, name));
  }
  return rows;
}

/**
 * `ls -R`: the directory, then each subdirectory depth first, each as a group of rows. Hidden
 * subdirectories are entered only when they are listed (-a / -A), as ls does.
 */
export function* recursiveGroups(tree: Tree, dir: number, opts: ListOptions): Generator<{ dir: number; rows: ListRow[] }> {
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    const rows = directoryRows(tree, d, opts);
    yield { dir: d, rows };
    const subdirs = rows.filter((r) => r.name !== '.' && r.name !== '..' && r.stat.type === EntryType.Directory);
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i].node);
  }
}

/** The `-l` columns: mode, links, uid, gid, size (or `major, minor`), time, name [-> target]. */
export function longLines(rows: ListRow[]): string[] {
  const cells = rows.map((r) => {
    const st = r.stat;
    const device = st.type === EntryType.CharDevice || st.type === EntryType.BlockDevice;
    return [
      modeString(st.mode),
      String(st.nlink),
      String(st.uid),
      String(st.gid),
      device ? `${st.devmajor}, ${st.devminor}` : String(st.size),
      listTime(st.mtime),
      r.target !== undefined ? `${displayName(r.name)} -> ${displayName(r.target)}` : displayName(r.name),
    ];
  });
  return alignColumns(cells, [false, true, false, false, true, false]);
}

/**
 * The JSON form of a row: raw numbers, the mode both ways, the type by name, the exact mtime as
 * whole seconds plus nanoseconds, names as text (bytes that are not UTF-8 as lone surrogates:
 * see `nameToText`), xattr values in base64 (they are bytes).
 */
export function rowJson(r: ListRow): Record<string, unknown> {
  const st = r.stat;
  return {
    name: nameToText(r.name),
    path: nameToText(r.path),
    type: typeName(st.type),
    mode: octalMode(st.mode),
    modeString: modeString(st.mode),
    nlink: st.nlink,
    uid: st.uid,
    gid: st.gid,
    size: st.size,
    mtime: st.mtime,
    mtimeNsec: st.mtimeNsec,
    ino: st.ino,
    ...(r.target !== undefined && { target: nameToText(r.target) }),
    ...((st.type === EntryType.CharDevice || st.type === EntryType.BlockDevice) && { devmajor: st.devmajor, devminor: st.devminor }),
    xattrs: Object.fromEntries(Object.entries(r.xattrs).map(([k, v]) => [nameToText(k), v.toString('base64')])),
  };
}
