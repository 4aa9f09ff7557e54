/*
 * The FUSE ceiling for directory walks on this machine: a minimal fuse-native server (no image,
 * no lookups, listings prebuilt once) serving D directories of F empty files, walked with
 * `find` twice. ocimount's own warm `find` cannot beat this, since every directory costs the
 * same kernel <-> libfuse <-> JS round trips here (libfuse 2 never caches listings).
 *
 *   node dist/bench/fuse-ceiling.js [DIRS] [FILES_PER_DIR]     (default 6755 x 16, like gen-image)
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const SERVER = `
const Fuse = require(process.argv[1]);
const D = Number(process.argv[3]), F = Number(process.argv[4]);
const st = (mode, ino) => { const a = new Uint32Array(18); a[0] = mode; a[6] = 1; a[7] = ino; return a; };
const dirs = Array.from({ length: D }, (_, i) => 'd' + i);
const root = [['.', '..', ...dirs], [st(0o40755, 1), st(0o40755, 1), ...dirs.map((_, i) => st(0o40755, 10 + i))]];
const files = Array.from({ length: F }, (_, i) => 'f' + i);
const lists = new Map();
const list = (d) => lists.get(d) || (lists.set(d, [['.', '..', ...files], [st(0o40755, 10 + d), st(0o40755, 1), ...files.map((_, i) => st(0o100644, 1e6 + d * F + i))]]), lists.get(d));
const ops = {
  getattr: (p, cb) => {
    if (p === '/') return cb(0, { mode: 0o40755, nlink: 2, ino: 1 });
    const m = /^\\/d(\\d+)(\\/f(\\d+))?$/.exec(p);
    if (!m) return cb(-2);
    const d = Number(m[1]);
    cb(0, m[2] ? { mode: 0o100644, nlink: 1, ino: 1e6 + d * F + Number(m[3]) } : { mode: 0o40755, nlink: 2, ino: 10 + d });
  },
  readdir: (p, cb) => (p === '/' ? cb(0, ...root) : cb(0, ...list(Number(p.slice(2))))),
};
class MinimalFuse extends Fuse { _op_readdir(signal, p) { this.ops.readdir(p, (e, n, s) => (e ? signal(e) : signal(0, n, s))); } }
const f = new MinimalFuse(process.argv[2], ops, { fsname: 'ceiling,ro,use_ino', kernelCache: true, entryTimeout: 3600, attrTimeout: 3600, autoUnmount: true });
f.mount((e) => { if (e) throw e; console.log('ready'); });
process.on('SIGTERM', () => f.unmount(() => process.exit(0)));
`;

function timeFind(dir: string): number {
  const t = process.hrtime.bigint();
  execFileSync('sh', ['-c', `find "${dir}" > /dev/null`]);
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function main(): Promise<void> {
  const dirs = Number(process.argv[2] ?? 6755);
  const filesPerDir = Number(process.argv[3] ?? 16);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ocimount-ceiling-'));
  const mnt = path.join(work, 'mnt');
  const ext = path.join(work, 'ext4');
  fs.mkdirSync(mnt);
  const fuseNative = require.resolve('fuse-native');
  const server = spawn(process.execPath, ['-e', SERVER, '--', fuseNative, mnt, String(dirs), String(filesPerDir)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout!.on('data', () => resolve());
      server.on('exit', (c) => reject(new Error(`server exited ${c}`)));
    });
    for (let d = 0; d < dirs; d++) {
      fs.mkdirSync(path.join(ext, `d${d}`), { recursive: true });
      for (let f = 0; f < filesPerDir; f++) fs.writeFileSync(path.join(ext, `d${d}`, `f${f}`), '');
    }
    const fuseCold = timeFind(mnt);
    const fuseWarm = timeFind(mnt);
    timeFind(ext);
    const extWarm = timeFind(ext);
    const row = { dirs, filesPerDir, fuseCold, fuseWarm, extWarm, ratio: fuseWarm / extWarm, perDirectoryMs: (fuseWarm / dirs) * 1000, loadAverage: os.loadavg()[0] };
    console.log(`minimal fuse-native server, ${dirs} dirs x ${filesPerDir} files: find cold ${fuseCold.toFixed(2)} s, warm ${fuseWarm.toFixed(2)} s (${row.perDirectoryMs.toFixed(2)} ms per directory); ext4 warm ${extWarm.toFixed(2)} s; ratio ${row.ratio.toFixed(1)}x`);
    console.log(JSON.stringify({ bench: 'fuse-ceiling', ...row }));
  } finally {
    if (server.exitCode === null) {
      const gone = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (server.exitCode === null) server.kill('SIGKILL');
    }
    try {
      execFileSync('fusermount', ['-uz', mnt], { stdio: 'ignore' });
    } catch {
      /* not mounted any more */
    }
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
