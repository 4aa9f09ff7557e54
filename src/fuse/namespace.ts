import type { ImageView } from '../engine';
import { stepForLayer } from '../image/history';
import { EntryType, statMode } from '../tar/entry';
import type { NodeStat, Tree } from '../union/tree';

/*
 * What the mount shows, as a small fixed set of virtual files and directories around the image's
 * trees:
 *   rootfs/               the merged image
 *   layers/<diff_id>/     each distinct layer alone, whiteout markers as stored
 *   layers/<n>            symlink, the n-th layer (bottom = 0) -> its diff_id directory
 *   config.json, manifest.json, history
 * Inode numbers: 1 is the mount root, small numbers are the virtual entries, each tree gets a
 * fixed range computed from its layer sizes, so numbers do not depend on the order of access.
 * Names, symlink targets and xattr names go in and out as byte strings (see names.ts).
 */

/** A tree shown at some directory of the mount; `inoBase + obj + 1` is a node's inode. */
export interface TreeSpace {
  kind: 'tree';
  inoBase: number;
  tree(): Tree;
}

export interface VirtualEntry {
  kind: 'virtual';
  ino: number;
  type: EntryType.Directory | EntryType.File | EntryType.Symlink;
  content?: Buffer;
  target?: string;
  children?: Map<string, VirtualEntry | TreeSpace>;
}

export type Resolved =
  | { kind: 'tree'; space: TreeSpace; node: number }
  | { kind: 'virtual'; entry: VirtualEntry };

export interface NamespaceOptions {
  /** Show the merged tree at the mount root and nothing else. */
  rootfsOnly?: boolean;
  /** The --layers text, said in the history file. */
  layersNote?: string;
}

export class Namespace {
  readonly root: VirtualEntry | TreeSpace;
  /** The newest mtime in the image, used as the virtual entries' timestamps. */
  readonly mtime: number;

  constructor(
    readonly view: ImageView,
    opts: NamespaceOptions = {},
  ) {
    const created = Date.parse(view.image.config.created ?? '');
    this.mtime = Number.isFinite(created) ? Math.floor(created / 1000) : 0;
    const firstTreeIno = 100;
    const merged: TreeSpace = { kind: 'tree', inoBase: firstTreeIno, tree: () => view.merged };
    if (opts.rootfsOnly) {
      this.root = merged;
      return;
    }
    let nextBase = firstTreeIno + view.merged.nodeCount + 1;
    let ino = 2;
    const file = (content: Buffer | string): VirtualEntry => ({ kind: 'virtual', ino: ino++, type: EntryType.File, content: Buffer.from(content) });
    const layersDir = new Map<string, VirtualEntry | TreeSpace>();
    view.layers.forEach((layer, position) => {
      const name = layer.descriptor.diffId;
      if (!layersDir.has(name)) {
        const base = nextBase;
        // The layer tree cannot have more objects than entries plus implied parent directories.
        nextBase += layer.index.directoryCountUpperBound() + 2;
        layersDir.set(name, { kind: 'tree', inoBase: base, tree: () => view.layerTree(position) });
      }
      layersDir.set(String(position), { kind: 'virtual', ino: ino++, type: EntryType.Symlink, target: name });
    });
    this.root = {
      kind: 'virtual',
      ino: 1,
      type: EntryType.Directory,
      children: new Map<string, VirtualEntry | TreeSpace>([
        ['rootfs', merged],
        ['layers', { kind: 'virtual', ino: ino++, type: EntryType.Directory, children: layersDir }],
        ['config.json', file(prettyJson(view.image.configBytes))],
        ['manifest.json', file(prettyJson(view.image.manifestBytes))],
        ['history', file(historyText(view, opts.layersNote))],
      ]),
    };
  }

  /** The entry at a path as the kernel sent it (a byte string). */
  resolve(path: string): Resolved | undefined {
    let at: VirtualEntry | TreeSpace = this.root;
    // '/' is one byte in UTF-8 and never inside a multi-byte sequence: converting the whole path
    // and then splitting it is the same as converting each part.
    const parts = path.split('/').filter((p) => p !== '');
    for (let i = 0; i < parts.length; i++) {
      if (at.kind === 'tree') {
        const tree = at.tree();
        let node = 0;
        for (let j = i; j < parts.length; j++) {
          node = tree.child(node, parts[j]);
          if (node < 0) return undefined;
        }
        return { kind: 'tree', space: at, node };
      }
      const next: VirtualEntry | TreeSpace | undefined = at.children?.get(parts[i]);
      if (!next) return undefined;
      at = next;
    }
    return at.kind === 'tree' ? { kind: 'tree', space: at, node: 0 } : { kind: 'virtual', entry: at };
  }

  stat(r: Resolved): NodeStat {
    if (r.kind === 'tree') {
      const st = r.space.tree().stat(r.node);
      return { ...st, ino: r.space.inoBase + st.ino };
    }
    const e = r.entry;
    const size = e.content?.length ?? (e.target !== undefined ? Buffer.byteLength(e.target) : 0);
    const subdirs = e.children ? [...e.children.values()].filter((c) => c.kind === 'tree' || c.type === EntryType.Directory).length : 0;
    return {
      ino: e.ino,
      mode: statMode(e.type, e.type === EntryType.Directory ? 0o555 : e.type === EntryType.Symlink ? 0o777 : 0o444),
      type: e.type,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      size,
      mtime: this.mtime,
      mtimeNsec: 0,
      nlink: e.type === EntryType.Directory ? 2 + subdirs : 1,
      devmajor: 0,
      devminor: 0,
    };
  }

  /** Names (byte strings) and resolved entries of a directory's children, in name order. */
  list(r: Resolved): Array<{ name: string; entry: Resolved }> {
    if (r.kind === 'tree') {
      const tree = r.space.tree();
      return tree.children(r.node).map((n) => ({ name: tree.name(n), entry: { kind: 'tree', space: r.space, node: n } }));
    }
    return [...(r.entry.children ?? new Map()).entries()].map(([name, child]) => ({
      name,
      entry: child.kind === 'tree' ? { kind: 'tree', space: child, node: 0 } : { kind: 'virtual', entry: child },
    }));
  }

  /** A symlink's target as a byte string; undefined when `r` is not a symlink. */
  symlinkTarget(r: Resolved): string | undefined {
    return r.kind === 'tree' ? r.space.tree().symlinkTarget(r.node) : r.entry.target;
  }

  /** The names (byte strings) of an entry's extended attributes. */
  xattrNames(r: Resolved): string[] {
    return r.kind === 'tree' ? Object.keys(r.space.tree().xattrs(r.node)) : [];
  }

  /** One extended attribute's value by its name (a byte string), or undefined. */
  xattr(r: Resolved, name: string): Buffer | undefined {
    if (r.kind !== 'tree') return undefined;
    const xattrs = r.space.tree().xattrs(r.node);
    return Object.prototype.hasOwnProperty.call(xattrs, name) ? xattrs[name] : undefined;
  }
}

function prettyJson(bytes: Buffer): string {
  try {
    return JSON.stringify(JSON.parse(bytes.toString('utf8')), null, 2) + '\n';
  } catch {
    return bytes.toString('utf8');
  }
}

/**
 * One line per layer: position, diff_id, size, the build step that made it. With --layers, a
 * first comment line says which layers rootfs/ applies, and the position of each layer left out
 * carries a `*` (as in `ocimount inspect`).
 */
export function historyText(view: ImageView, layersNote?: string): string {
  const applied = new Set(view.applied);
  const partial = applied.size !== view.layers.length;
  const lines = view.layers.map((l, i) => {
    const step = stepForLayer(view.image.history, i);
    const size = l.compression === 'none' ? l.storedSize : l.tarSize ?? l.stream.size;
    return `${i}${applied.has(i) ? '' : '*'}\t${l.descriptor.diffId}\t${size}\t${(step?.createdBy ?? '').replace(/\s+/g, ' ').trim()}`;
  });
  const note = partial
    ? `# rootfs/ applies layers ${layerRanges(view.applied) || 'none'} of 0-${view.layers.length - 1}${layersNote ? ` (--layers ${layersNote})` : ''}; * marks a layer not applied\n`
    : '';
  return `${note}# position\tdiff_id\tsize\tcreated_by\n${lines.join('\n')}\n`;
}

/** `0-2,5`: sorted positions as ranges. */
export function layerRanges(positions: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < positions.length; ) {
    let j = i;
    while (j + 1 < positions.length && positions[j + 1] === positions[j] + 1) j++;
    out.push(i === j ? String(positions[i]) : `${positions[i]}-${positions[j]}`);
    i = j + 1;
  }
  return out.join(',');
}
