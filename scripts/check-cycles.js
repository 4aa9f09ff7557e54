#!/usr/bin/env node
// Fails when the TypeScript modules under src/ import each other in a cycle.
//
//   node scripts/check-cycles.js [DIR...]      (default: src)
//
// Prints each cycle as `src/a.ts -> src/b.ts -> src/a.ts` and exits 1; prints a count and exits 0
// when there is none. Dependency-free on purpose: node_modules is shared between work trees, so a
// tool such as madge cannot be added, and this only needs the import lines.
//
// What counts as an edge: every relative module specifier in `import ... from`, `export ... from`,
// `import '...'`, `import('...')` and `require('...')`, type-only imports included (as madge counts
// them). A cycle made only of type imports costs nothing at run time, but it still means neither
// module can be understood, moved or reused without the other; and which imports TypeScript
// erases depends on how the names are used, not only on the `type` keyword, so a "run-time only"
// check from the text alone would be unreliable. Cycles whose every edge is written `import type`
// / `export type` are marked "(type-only)" so a reader can weigh them.
//
// Reported: for every import edge that lies on a cycle, the shortest cycle through it, each cycle
// once. Package imports ('node:fs', 'lru-cache') are not followed.

'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dirs = process.argv.slice(2).length ? process.argv.slice(2) : ['src'];

/** The source with comments blanked out (strings kept), so commented-out imports do not count. */
function stripComments(text) {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < text.length && text[j] !== c) {
        if (text[j] === '\\') j++;
        else if (c !== '`' && text[j] === '\n') break; // unterminated: do not swallow the file
        j++;
      }
      out += text.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

const IMPORT_RE = /\b(import|export)\s+(type\s+)?(?:[\w$*{}\s,]+?\s+from\s+)?['"]([^'"\n]+)['"]/g;
const CALL_RE = /\b(?:require|import)\s*\(\s*['"]([^'"\n]+)['"]\s*\)/g;

/** [{ spec, typeOnly }] for every module specifier in a file. */
function specifiers(code) {
  const found = [];
  for (const m of code.matchAll(IMPORT_RE)) found.push({ spec: m[3], typeOnly: Boolean(m[2]) });
  for (const m of code.matchAll(CALL_RE)) found.push({ spec: m[1], typeOnly: false });
  return found;
}

function resolve(fromFile, spec) {
  if (!spec.startsWith('.')) return undefined;
  const base = path.resolve(path.dirname(fromFile), spec).replace(/\.js$/, '');
  for (const candidate of [`${base}.ts`, `${base}.tsx`, path.join(base, 'index.ts')]) {
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

function listTs(dir) {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts'))
    .map((e) => path.join(e.parentPath ?? e.path, e.name));
}

// file -> Map(target -> typeOnly), typeOnly only when every import of target in file is type-only
const graph = new Map();
for (const d of dirs) {
  for (const file of listTs(path.resolve(root, d))) {
    const edges = new Map();
    for (const { spec, typeOnly } of specifiers(stripComments(fs.readFileSync(file, 'utf8')))) {
      const target = resolve(file, spec);
      if (target) edges.set(target, (edges.get(target) ?? true) && typeOnly);
    }
    graph.set(file, edges);
  }
}
for (const edges of graph.values()) for (const t of edges.keys()) if (!graph.has(t)) graph.set(t, new Map());

// Strongly connected components (Tarjan): an edge lies on a cycle iff both ends share one.
const comp = new Map();
{
  let counter = 0;
  const low = new Map();
  const num = new Map();
  const stack = [];
  const onStack = new Set();
  const visit = (v) => {
    num.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v).keys()) {
      if (!num.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), num.get(w)));
    }
    if (low.get(v) === num.get(v)) {
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        comp.set(w, v);
      } while (w !== v);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!num.has(v)) visit(v);
}

/** Shortest path from `from` to `to` inside one component (breadth first), as a list of files. */
function shortestPath(from, to) {
  const prev = new Map([[from, undefined]]);
  const queue = [from];
  while (queue.length) {
    const v = queue.shift();
    if (v === to) break;
    for (const w of [...graph.get(v).keys()].sort()) {
      if (comp.get(w) === comp.get(from) && !prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  const out = [];
  for (let v = to; v !== undefined; v = prev.get(v)) out.unshift(v);
  return out;
}

const cycles = new Map();
for (const [u, edges] of [...graph].sort(([a], [b]) => (a < b ? -1 : 1))) {
  for (const v of edges.keys()) {
    if (comp.get(u) !== comp.get(v)) continue;
    const loop = u === v ? [u] : [u, ...shortestPath(v, u).slice(0, -1)];
    const start = loop.indexOf([...loop].sort()[0]); // the same cycle found from any edge, once
    const cycle = [...loop.slice(start), ...loop.slice(0, start)];
    const key = cycle.join('\0');
    if (cycles.has(key)) continue;
    const typeOnly = cycle.every((f, i) => graph.get(f).get(cycle[(i + 1) % cycle.length]));
    cycles.set(key, { cycle, typeOnly });
  }
}

const rel = (f) => path.relative(root, f);
for (const { cycle, typeOnly } of cycles.values()) {
  console.log([...cycle, cycle[0]].map(rel).join(' -> ') + (typeOnly ? '  (type-only)' : ''));
}
if (cycles.size) {
  console.error(`check-cycles: ${cycles.size} import cycle(s) among ${graph.size} modules under ${dirs.join(', ')}`);
  process.exit(1);
}
console.log(`check-cycles: no import cycle among ${graph.size} modules under ${dirs.join(', ')}`);
