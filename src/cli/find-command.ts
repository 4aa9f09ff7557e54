import * as fs from 'node:fs';
import { Command, Option } from 'commander';
import { NotFoundError, UsageError } from '../errors';
import { typeName } from '../tar/entry';
import { findNodes, nameMatcher, parseDate, parseSize, parseTypes, type FindCriteria } from '../query/find';
import { octalMode } from '../query/format';
import { displayName, nameFromText, nameToText } from '../names';
import { globToRegExp } from '../query/glob';
import { chooseTree } from '../query/layer-ref';
import { resolvePath } from '../query/resolve';
import { writeWithBackpressure } from '../query/sink';
import type { Tree } from '../union/tree';
import { addImageOptions, imageArgPath, reporting, withImage, type ImageOptions } from './common';
import { resolveExplained } from './explain';
import type { ImageView } from '../engine';
import { occurrences } from '../query/occurrences';
import { alignColumns } from '../query/format';

interface FindOptions extends ImageOptions {
  name?: string;
  iname?: string;
  path?: string;
  type?: string;
  newer?: string;
  size?: string;
  maxdepth?: string;
  mindepth?: string;
  print0?: boolean;
  layer?: string;
  allLayers?: boolean;
  json?: boolean;
}

/** find's own spelling of its tests, one dash; rewritten to the long options before parsing. */
const FIND_STYLE = /^-(name|iname|path|type|newer|size|maxdepth|mindepth|print0|layer)$/;

/** `find IMAGE / -name '*.so' -maxdepth 2` works as well as `--name`: people type find's syntax. */
class FindCommand extends Command {
  override parseOptions(argv: string[]) {
    const end = argv.indexOf('--');
    return super.parseOptions(argv.map((a, i) => ((end < 0 || i < end) && FIND_STYLE.test(a) ? `-${a}` : a)));
  }
}

const HELP = `
Prints the paths below PATH (default /) that pass every test, one per line as find prints them
(/etc/passwd), over the merged image or with --layer over one layer alone. The tests can be
written find's way too (-name, -type, -newer, -size, -maxdepth, -mindepth, -print0).

  --name GLOB      the last component matches a shell pattern (* ? [...]); --iname ignores case
  --path GLOB      the whole path (/usr/lib/*.so) matches; * matches / too, as in find
  --type T         f file, d directory, l symlink, c char device, b block device, p fifo; f,l for either
  --newer X        modified after X: a date (2024-01-31, 2024-01-31T10:00:00Z, @1706659200), else the
                   mtime of path X in the image, else of file X on this machine
  --size [+-]N[ckMG]  more than (+), less than (-) or exactly N units, the size rounded up to
                   whole units as find does; a bare N counts bytes (c), b counts 512-byte blocks

Names are bytes in an image: -print0 writes each path's exact bytes; a line per path escapes a
name with control characters or bytes that are not UTF-8 (in double quotes, \\n \\xe9); --json
carries such bytes as lone surrogates \\udcNN (os.fsencode in Python gives the bytes back).
Patterns match bytes: '?' is one byte.

Examples:
  ocimount find myapp.tar / -name '*.so*' -type f
  ocimount find myapp.tar /etc --newer 2024-01-01 --type f
  ocimount find myapp.tar / -size +10M -print0 | xargs -0 -n1 echo
  ocimount find --layer 9 myapp.tar / -name '.wh.*'     # what layer 9 deleted
  ocimount find --json myapp.tar /usr/bin -maxdepth 1 -type l
  ocimount find --all-layers myapp.tar / -name '*.log'  # every copy in every layer, deleted ones too

--all-layers prints one line per occurrence: the layer, what the merged image makes of it, the
path. shown: the image shows this copy (a directory: the image has it); replaced by N: a later
layer wrote the path again; deleted by N: layer N removed it (a whiteout or opaque marker);
whiteout: the layer's own deletion marker; not applied: --layers left the layer out.
`;

export function registerFind(program: Command): Command {
  const cmd = new FindCommand('find');
  cmd.copyInheritedSettings(program);
  addImageOptions(
    cmd
      .argument('<image>')
      .argument('[path]')
      .description('find paths in the image (or one layer) by name, type, time, size, like find')
      .option('--name <glob>', 'last path component matches a shell pattern')
      .option('--iname <glob>', 'like --name, ignoring case')
      .option('--path <glob>', 'whole path matches a shell pattern')
      .option('--type <f|d|l|c|b|p>', 'file type (a comma list for several)')
      .option('--newer <file-or-date>', 'modified after a date or after that file was')
      .option('--size <[+-]N[ckMG]>', 'size more than (+N), less than (-N) or exactly N units')
      .option('--maxdepth <n>', 'descend at most N levels below PATH')
      .option('--mindepth <n>', 'print nothing above N levels below PATH')
      .addOption(new Option('--layer <n|diff_id>', 'search one layer alone (its position, diff_id or a prefix of it)').conflicts('allLayers'))
      .addOption(new Option('--all-layers', 'every occurrence in every layer, with its layer and whether the merged image still shows it').conflicts('print0'))
      .addOption(new Option('-0, --print0', 'end each path with a NUL byte, for xargs -0').conflicts('json'))
      .option('--json', 'print a JSON array of matches (path, type, mode, size, mtime)'),
  )
    .addHelpText('after', HELP)
    .action(
      reporting((image: string, path: string | undefined, opts: FindOptions) =>
        withImage(image, opts, async (view) => {
          if (opts.allLayers) return findAllLayers(view, imageArgPath(view, path ?? '/'), criteria(view.merged, opts), opts);
          const { tree, layer } = chooseTree(view, opts.layer);
          const start = await resolveExplained(view, tree, imageArgPath(view, path ?? '/'), { followFinal: false }, { command: 'find', archive: image, layer });
          await find(tree, start, criteria(tree, opts), opts);
        }),
      ),
    );
  program.addCommand(cmd);
  return cmd;
}

function depth(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} ${value}: expected a whole number`);
  return Number(value);
}

function criteria(tree: Tree, opts: FindOptions): FindCriteria {
  const c: FindCriteria = {};
  if (opts.name !== undefined && opts.iname !== undefined) throw new UsageError('give --name or --iname, not both');
  // Patterns match names byte for byte (a `?` is one byte), so they are made of the bytes typed.
  if (opts.name !== undefined) c.name = nameMatcher(nameFromText(opts.name), false);
  if (opts.iname !== undefined) c.name = nameMatcher(nameFromText(opts.iname), true);
  if (opts.path !== undefined) c.path = globToRegExp(nameFromText(opts.path));
  if (opts.type !== undefined) c.types = parseTypes(opts.type);
  if (opts.size !== undefined) c.size = parseSize(opts.size);
  if (opts.newer !== undefined) c.newerThan = newerThan(tree, opts.newer);
  c.maxDepth = depth('maxdepth', opts.maxdepth);
  c.minDepth = depth('mindepth', opts.mindepth);
  return c;
}

/** A date first; then a path in the image (what "newer than that file" means here); then a host file. */
function newerThan(tree: Tree, value: string): number {
  const date = parseDate(value);
  if (date !== undefined) return date;
  try {
    const st = tree.stat(resolvePath(tree, nameFromText(value), { followFinal: true }));
    return st.mtime + st.mtimeNsec / 1e9;
  } catch {
    /* not in the image */
  }
  try {
    return fs.statSync(value).mtimeMs / 1000;
  } catch {
    throw new NotFoundError(`--newer ${value}: not a date (2024-01-31, 2024-01-31T10:00:00Z, @SECONDS) and no such file in the image or on this machine`);
  }
}

async function find(tree: Tree, start: number, c: FindCriteria, opts: FindOptions): Promise<void> {
  if (opts.json) {
    const hits = [...findNodes(tree, start, c)].map((h) => {
      const st = tree.stat(h.node);
      const target = tree.symlinkTarget(h.node);
      return {
        path: nameToText(h.path),
        type: typeName(st.type),
        mode: octalMode(st.mode),
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        mtime: st.mtime,
        mtimeNsec: st.mtimeNsec,
        ...(target !== undefined && { target: nameToText(target) }),
      };
    });
    process.stdout.write(`${JSON.stringify(hits, null, 2)}\n`);
    return;
  }
  // -print0 is for programs: the exact bytes of every name. Lines are for people: escaped.
  const end = opts.print0 ? '\0' : '\n';
  const shown = opts.print0 ? (p: string) => p : (p: string) => nameFromText(displayName(p));
  let pending = '';
  for (const hit of findNodes(tree, start, c)) {
    pending += shown(hit.path) + end;
    if (pending.length >= 64 * 1024) {
      await writeWithBackpressure(process.stdout, Buffer.from(pending, 'latin1'));
      pending = '';
    }
  }
  if (pending) await writeWithBackpressure(process.stdout, Buffer.from(pending, 'latin1'));
}

async function findAllLayers(view: ImageView, start: string, c: FindCriteria, opts: FindOptions): Promise<void> {
  const hits = occurrences(view, start, c);
  if (opts.json) {
    const out = hits.map((h) => {
      const tree = view.layerTree(h.layer);
      const st = tree.stat(h.node);
      return {
        layer: h.layer,
        path: nameToText(h.path),
        type: typeName(st.type),
        mode: octalMode(st.mode),
        size: st.size,
        mtime: st.mtime,
        mtimeNsec: st.mtimeNsec,
        shown: h.status === 'shown',
        status: h.status,
        ...(h.by !== undefined && { by: h.by }),
      };
    });
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  const rows = hits.map((h) => [String(h.layer), h.by !== undefined ? `${h.status} by ${h.by}` : h.status, displayName(h.path)]);
  if (rows.length) await writeWithBackpressure(process.stdout, `${alignColumns([['LAYER', 'IN IMAGE', 'PATH'], ...rows]).join('\n')}\n`);
}
