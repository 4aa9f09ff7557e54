import type { TarIndex } from '../tar/tar-index';
import { Tree, type TreeColumns } from './tree';

/*
 * A merged Tree as byte sections, for the index cache: each column is written as it sits in
 * memory (typed arrays, little-endian on every machine this runs on) and read back as views of
 * the sections when each section has a buffer of its own (IndexCache.get reads them so), else
 * with one copy per column (a view of a slice would keep the whole file's buffer alive beside
 * the columns); never entry by entry. Decoding checks only what keeps every later access in
 * bounds (lengths, and that each number points where it may); it never walks names or paths.
 */

type Column = Uint8Array | Uint16Array | Uint32Array | Int32Array;
type ColumnType = { new (n: number): Column; BYTES_PER_ELEMENT: number };

/** The typed columns in the order they are stored; `namePool` goes first, as bytes. */
const ORDER: Array<[Exclude<keyof TreeColumns, 'namePool'>, ColumnType]> = [
  ['nameStart', Uint32Array],
  ['parent', Int32Array],
  ['childFirst', Int32Array],
  ['childCount', Int32Array],
  ['nodeObj', Int32Array],
  ['objLayer', Uint16Array],
  ['objEntry', Int32Array],
  ['objNlink', Uint32Array],
];

export function encodeTree(tree: Tree): Buffer[] {
  const c = tree.columns();
  return [c.namePool, ...ORDER.map(([name]) => Buffer.from(c[name].buffer, c[name].byteOffset, c[name].byteLength))];
}

/** Whether `b` is all of its own buffer (IndexCache.get reads each section so): a view of it then holds nothing more. */
const ownsBuffer = (b: Buffer) => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;

function column(Ctor: ColumnType, bytes: Buffer): Column {
  if (bytes.length % Ctor.BYTES_PER_ELEMENT !== 0) throw new Error('tree column has a partial element');
  if (ownsBuffer(bytes)) return new (Ctor as unknown as new (b: ArrayBufferLike, o: number, n: number) => Column)(bytes.buffer, 0, bytes.length / Ctor.BYTES_PER_ELEMENT);
  const out = new Ctor(bytes.length / Ctor.BYTES_PER_ELEMENT);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** The tree over `layers` (the slots it was built on); throws when the sections cannot be it. */
export function decodeTree(sections: Buffer[], layers: readonly TarIndex[]): Tree {
  if (sections.length !== ORDER.length + 1) throw new Error('not a tree snapshot');
  const c = { namePool: ownsBuffer(sections[0]) ? sections[0] : Buffer.from(sections[0]) } as TreeColumns;
  ORDER.forEach(([name, Ctor], i) => ((c as unknown as Record<string, Column>)[name] = column(Ctor, sections[i + 1])));
  checkBounds(c, layers);
  return Tree.fromColumns(layers, c);
}

function checkBounds(c: TreeColumns, layers: readonly TarIndex[]): void {
  const n = c.parent.length;
  const objects = c.objLayer.length;
  const bad = (what: string) => new Error(`tree snapshot is inconsistent (${what})`);
  if (n === 0 || c.nameStart.length !== n + 1 || c.childFirst.length !== n || c.childCount.length !== n || c.nodeObj.length !== n) throw bad('node columns');
  if (c.objEntry.length !== objects || c.objNlink.length !== objects) throw bad('object columns');
  if (c.nameStart[0] !== 0 || c.nameStart[n] !== c.namePool.length) throw bad('names');
  for (let i = 0; i < n; i++) {
    if (c.nameStart[i + 1] < c.nameStart[i]) throw bad('names');
    if (c.parent[i] >= n || (c.parent[i] < 0 && i !== 0)) throw bad('parents');
    if (c.childCount[i] < 0 || c.childFirst[i] <= i || c.childFirst[i] + c.childCount[i] > n) {
      if (c.childCount[i] !== 0) throw bad('children');
    }
    if (c.nodeObj[i] < 0 || c.nodeObj[i] >= objects) throw bad('objects');
  }
  for (let o = 0; o < objects; o++) {
    const layer = layers[c.objLayer[o]];
    if (!layer || c.objEntry[o] < -1 || c.objEntry[o] >= layer.count) throw bad('entries');
  }
}
