import { UsageError } from '../errors';
import { EntryType, typeOfFindLetter } from '../tar/entry';
import type { Tree } from '../union/tree';
import { displayPath } from './format';
import { globToRegExp } from './glob';

/** `-size`: how a file's size compares, in units rounded up the way find rounds them. */
export interface SizeTest {
  cmp: -1 | 0 | 1;
  count: number;
  unit: number;
}

export interface FindCriteria {
  name?: RegExp;
  path?: RegExp;
  types?: Set<EntryType>;
  /** Strictly newer than this mtime (seconds). */
  newerThan?: number;
  size?: SizeTest;
  maxDepth?: number;
  minDepth?: number;
}

export interface FindHit {
  node: number;
  /** `/etc/passwd`, as find prints it when started at `/`. */
  path: string;
  depth: number;
}

/** `f`, `d`, `l`, `c`, `b`, `p`, or a comma list of them (`f,l`) as GNU find takes. */
export function parseTypes(spec: string): Set<EntryType> {
  const out = new Set<EntryType>();
  for (const letter of spec.split(',')) {
    const t = typeOfFindLetter(letter);
    if (t === undefined) throw new UsageError(`--type ${spec}: expected f, d, l, c, b or p (or a comma list of them)`);
    out.add(t);
  }
  return out;
}

const UNITS: Record<string, number> = { '': 1, c: 1, b: 512, k: 1024, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * `-size [+-]N[ckMG]`. As in find, the size is rounded up to whole units before comparing, so
 * `-1M` means empty; unlike find, a bare number counts bytes, not 512-byte blocks (`b` asks for those).
 */
export function parseSize(spec: string): SizeTest {
  const m = /^([+-]?)(\d+)([cbkKMGT]?)$/.exec(spec.trim());
  if (!m) throw new UsageError(`--size ${spec}: expected [+-]N with an optional unit c, b, k, M or G (e.g. +10M, -4k, 512c)`);
  return { cmp: m[1] === '+' ? 1 : m[1] === '-' ? -1 : 0, count: Number(m[2]), unit: UNITS[m[3]] };
}

export function sizeMatches(size: number, t: SizeTest): boolean {
  const units = Math.ceil(size / t.unit);
  return t.cmp === 1 ? units > t.count : t.cmp === -1 ? units < t.count : units === t.count;
}

/** A date for --newer: `2024-01-31`, `2024-01-31T10:00:00Z` (UTC unless a zone is given) or `@SECONDS`. */
export function parseDate(text: string): number | undefined {
  if (/^@-?\d+(\.\d+)?$/.test(text)) return Number(text.slice(1));
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(text)) return undefined;
  const iso = text.replace(' ', 'T');
  const ms = Date.parse(/T/.test(iso) && !/(Z|[+-]\d{2}:?\d{2})$/.test(iso) ? `${iso}Z` : iso);
  return Number.isNaN(ms) ? undefined : ms / 1000;
}

export function nameMatcher(glob: string, ignoreCase: boolean): RegExp {
  return globToRegExp(glob, { ignoreCase });
}

/**
 * The nodes under `start` (itself included, at depth 0) that pass every test, depth first with
 * children by name. Depth limits prune the walk instead of filtering it, so -maxdepth 1 over a
 * big image costs one directory.
 */
export function* findNodes(tree: Tree, start: number, c: FindCriteria): Generator<FindHit> {
  const stack: Array<[number, number]> = [[start, 0]];
  while (stack.length) {
    const [node, depth] = stack.pop()!;
    if (depth >= (c.minDepth ?? 0) && matches(tree, node, c)) yield { node, path: displayPath(tree.path(node)), depth };
    if (c.maxDepth !== undefined && depth >= c.maxDepth) continue;
    const kids = tree.children(node);
    for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
  }
}

function matches(tree: Tree, node: number, c: FindCriteria): boolean {
  if (c.name && !c.name.test(node === 0 ? '/' : tree.name(node))) return false;
  if (c.path && !c.path.test(displayPath(tree.path(node)))) return false;
  if (c.types || c.newerThan !== undefined || c.size) {
    const st = tree.stat(node);
    if (c.types && !c.types.has(st.type)) return false;
    if (c.newerThan !== undefined && !(st.mtime > c.newerThan)) return false;
    if (c.size && !sizeMatches(st.size, c.size)) return false;
  }
  return true;
}
