import type { Command } from 'commander';
import { EntryType } from '../tar/entry';
import { displayName, nameFromText } from '../names';
import { displayPath } from '../query/format';
import { chooseTree } from '../query/layer-ref';
import { directoryRows, longLines, nodeRow, recursiveGroups, rowJson, type ListRow } from '../query/listing';
import { imagePath, resolvePath } from '../query/resolve';
import { resolveExplained } from './explain';
import { writeWithBackpressure } from '../query/sink';
import type { Tree } from '../union/tree';
import { addImageOptions, imageArgPath, reporting, withImage, type ImageOptions } from './common';

interface LsOptions extends ImageOptions {
  long?: boolean;
  recursive?: boolean;
  all?: boolean;
  almostAll?: boolean;
  directory?: boolean;
  layer?: string;
  json?: boolean;
}

const HELP = `
Lists a directory of the image (the merged tree, whiteouts applied), or with --layer the tree of
one layer alone, whiteout markers (.wh.*) shown as the layer stores them. As with ls, names
starting with a dot are shown with -a or -A only, and a symlink given as PATH is followed to
the directory it names unless -l or -d is given. -l prints mode, links, uid, gid, size, mtime
(UTC) and name, with "-> target" for symlinks.

Names are bytes in an image. A name with control characters or bytes that are not UTF-8 is
printed in double quotes with C escapes (\\n, \\t, \\xe9). --json gives every entry's name, path,
target, exact mtime (mtime seconds, mtimeNsec nanoseconds) and xattrs (values in base64); a
name that is not UTF-8 carries each undecodable byte 0xNN as the lone surrogate \\udcNN (Python's
surrogateescape: os.fsencode(name) gives the exact bytes back).

Examples:
  ocimount ls myapp.tar /etc
  ocimount ls -la myapp.tar /root
  ocimount ls -lR myapp.tar /usr/local
  ocimount ls -a --layer 9 myapp.tar /root           # what layer 9 itself holds
  ocimount ls --layer sha256:4abad3 myapp.tar /      # a layer by (a prefix of) its diff_id
  ocimount ls --json myapp.tar /bin | jq -r '.[] | select(.type == "symlink") | .name'
`;

export function registerLs(program: Command): Command {
  return addImageOptions(
    program
      .command('ls <image> [path]')
      .description('list a directory of the image (or of one layer), like ls')
      .option('-l, --long', 'long listing: mode, links, uid, gid, size, mtime, name')
      .option('-R, --recursive', 'list subdirectories too')
      .option('-a, --all', 'show names starting with a dot, and . and ..')
      .option('-A, --almost-all', 'show names starting with a dot, without . and ..')
      .option('-d, --directory', 'list a directory itself, not its contents')
      .option('--layer <n|diff_id>', 'one layer alone: its position, diff_id, or a unique prefix of the diff_id')
      .option('--json', 'print a JSON array of entries'),
  )
    .addHelpText('after', HELP)
    .action(
      reporting((image: string, path: string | undefined, opts: LsOptions) =>
        withImage(image, opts, async (view) => {
          const { tree, layer } = chooseTree(view, opts.layer);
          const p = imageArgPath(view, path ?? '/');
          await resolveExplained(view, tree, p, { followFinal: false }, { command: 'ls', archive: image, layer });
          await list(tree, p, opts);
        }),
      ),
    );
}

async function list(tree: Tree, path: string, opts: LsOptions): Promise<void> {
  const listOpts = { all: opts.all, almostAll: opts.almostAll };
  let node = resolvePath(tree, path, { followFinal: false });
  // ls follows a symlink named on the command line when it leads to a directory, except for -l and -d.
  if (tree.type(node) === EntryType.Symlink && !opts.long && !opts.directory) {
    try {
      const target = resolvePath(tree, path, { followFinal: true });
      if (tree.isDir(target)) node = target;
    } catch {
      /* a dangling link is listed as itself */
    }
  }
  const groups: Array<{ header?: string; rows: ListRow[] }> = [];
  if (!tree.isDir(node) || opts.directory) groups.push({ rows: [nodeRow(tree, node, displayPath(imagePath(path)))] });
  else if (!opts.recursive) groups.push({ rows: directoryRows(tree, node, listOpts) });
  else for (const g of recursiveGroups(tree, node, listOpts)) groups.push({ header: displayName(displayPath(tree.path(g.dir))), rows: g.rows });

  if (opts.json) {
    // Recursively, every directory's . and .. would repeat entries already listed.
    const rows = groups.flatMap((g) => g.rows).filter((r) => !(opts.recursive && (r.name === '.' || r.name === '..')));
    process.stdout.write(`${JSON.stringify(rows.map(rowJson), null, 2)}\n`);
    return;
  }
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i];
    const lines = opts.long ? longLines(g.rows) : g.rows.map((r) => displayName(r.name));
    const head = g.header !== undefined ? `${i > 0 ? '\n' : ''}${g.header}:\n` : '';
    await writeWithBackpressure(process.stdout, head + lines.map((l) => `${l}\n`).join(''));
  }
}
