/**
 * Mount benchmark (issue 3), all figures from one run on one generated image (>= 1 GiB of file
 * data, >= 100,000 entries):
 *   - mount-ready time of `ocimount --foreground` (spawn to the "mounted" line) vs the time
 *     `tar -x` takes to unpack the archive and then every layer into one directory;
 *   - `find rootfs | wc -l` cold and warm, through the mount and over the extraction;
 *   - `cat` of the big file through the mount vs `dd` of the same bytes of the archive, with the
 *     page cache dropped (cold) and with the archive cached (warm), and a second `cat` that the
 *     kernel's cache serves; the same read on the extracted file;
 *   - the server's peak RSS (VmHWM) and the index's bytes per entry.
 * Cold = after `sync; echo 3 > /proc/sys/vm/drop_caches` (root; otherwise said and skipped).
 *
 *   npm run build && node dist/bench/mount.js [--image FILE] [--keep] [--dir DIR] [generator options]
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BYTES_PER_ENTRY_TARGET, imageFor, measureIndex } from './index';
import {
  BenchError, BIN, COMMON_OPTIONS, coldCaches, fmtBytes, loadNote, fmtRate, fmtS, log, MiB, onCleanup, parse, runMain, scratchDir,
  table, timed, timedSh, verdict,
} from './lib';

const TARGETS = { readyRatio: 0.05, catVsDd: 0.4, warmFindRatio: 2 };

function isMounted(dir: string): boolean {
  const target = path.resolve(dir);
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .some((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === target);
}

interface Server {
  pid: number;
  readySeconds: number;
  /** Peak and current RSS from /proc/<pid>/status, in bytes. */
  memory(): { hwm: number; rss: number };
  /** SIGTERM (the server unmounts itself), then SIGKILL and fusermount -uz if it will not go. Idempotent. */
  stop(): Promise<void>;
}

/** Starts `ocimount --foreground IMAGE MNT` and resolves when it prints that it is mounted. */
function startServer(archive: string, mnt: string, logFile: string, env: NodeJS.ProcessEnv): Promise<Server> {
  const logFd = fs.openSync(logFile, 'a');
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [BIN, '--foreground', archive, mnt], { stdio: ['ignore', 'pipe', logFd], env });
  fs.closeSync(logFd);
  let exited = false;
  const exit = new Promise<void>((resolve) => child.on('exit', () => {
    exited = true;
    resolve();
  }));
  const tail = () => fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    const waitExit = (ms: number) => Promise.race([exit, new Promise((r) => setTimeout(r, ms))]);
    const signal = (sig: NodeJS.Signals) => {
      try {
        if (!exited && child.pid) process.kill(child.pid, sig);
      } catch {
        /* it has just exited */
      }
    };
    if (!exited) {
      signal('SIGTERM');
      await waitExit(15_000);
      if (!exited) {
        log(`server ${child.pid} did not exit on SIGTERM: killing it`);
        signal('SIGKILL');
        await waitExit(5_000);
      }
    }
    if (isMounted(mnt)) await timed('fusermount', ['-uz', mnt], { allowFail: true });
  })());
  onCleanup(`stop server ${child.pid} at ${mnt}`, stop);

  return new Promise((resolve, reject) => {
    let out = '';
    let ready = false;
    const timer = setTimeout(() => {
      void stop();
      reject(new BenchError(`ocimount did not report ready within 10 minutes; log ${logFile}:\n${tail()}`));
    }, 600_000);
    child.on('error', (err) => reject(new BenchError(`cannot start ${BIN}: ${err.message}`)));
    child.stdout!.on('data', (b: Buffer) => {
      if (ready) return;
      out += b.toString();
      if (/^mounted .* at /m.test(out)) {
        ready = true;
        const readySeconds = Number(process.hrtime.bigint() - t0) / 1e9;
        clearTimeout(timer);
        const memory = () => {
          const status = fs.readFileSync(`/proc/${child.pid}/status`, 'utf8');
          const kb = (k: string) => Number(/\d+/.exec(status.split('\n').find((l) => l.startsWith(k)) ?? '0')![0]) * 1024;
          return { hwm: kb('VmHWM:'), rss: kb('VmRSS:') };
        };
        resolve({ pid: child.pid!, readySeconds, memory, stop });
      }
    });
    void exit.then(() => {
      if (ready) return;
      clearTimeout(timer);
      reject(new BenchError(`ocimount exited before the mount was ready; stdout: ${out.trim() || '(none)'}; log ${logFile}:\n${tail()}`));
    });
  });
}

const cat = (file: string) => timedSh('cat "$1" > /dev/null', file);
const findCount = async (dir: string) => {
  const r = await timedSh('find "$1" | wc -l', dir);
  return { seconds: r.seconds, paths: Number(r.stdout.trim()) };
};

const USAGE = `usage: node dist/bench/mount.js [--image FILE] [--keep] [--dir DIR]
                                  [--files N] [--big-mib N] [--data-mib N] [--compress none|gzip|zstd]
Without --image, generates the image into a scratch dir (--dir, $OCIMOUNT_BENCH_DIR or the temp
dir). Needs /dev/fuse; run as root for cold-cache figures. Scratch data is removed at the end
unless --keep.
`;

async function main(): Promise<void> {
  const v = parse(COMMON_OPTIONS, USAGE);
  const startLoad = os.loadavg()[0];
  if (!fs.existsSync(BIN)) throw new BenchError(`${BIN} not found`);
  const scratch = scratchDir(v.dir as string | undefined, !!v.keep);
  const archive = imageFor(v, scratch);
  const archiveBytes = fs.statSync(archive).size;

  // The engine alone, in a fresh process with a cold page cache: index size, open time, big file.
  log('engine probe: ImageView.open with a cold page cache');
  const cold = await coldCaches();
  const probe = await measureIndex(archive);
  const big = probe.big;
  const startup = await timed(process.execPath, [BIN, '--help']);

  // Baseline: the seeds' method, tar -x the archive, then every layer in order into one dir.
  const outer = path.join(scratch, 'x-outer');
  const rootfs = path.join(scratch, 'x-rootfs');
  fs.mkdirSync(outer);
  fs.mkdirSync(rootfs);
  log('baseline: tar -x of the archive and of each layer');
  await coldCaches();
  const untarOuter = await timed('tar', ['-xf', archive, '-C', outer]);
  const manifest = JSON.parse(fs.readFileSync(path.join(outer, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
  const untarLayers: number[] = [];
  for (const l of manifest[0].Layers) untarLayers.push((await timed('tar', ['-xf', path.join(outer, l), '-C', rootfs])).seconds);
  const untar = untarOuter.seconds + untarLayers.reduce((s, x) => s + x, 0);
  await coldCaches();
  const xFindCold = await findCount(rootfs);
  const xFindWarm = await findCount(rootfs);
  const xBig = path.join(rootfs, big.path);
  await coldCaches();
  const xCatCold = await cat(xBig);
  const xCatWarm = await cat(xBig);

  // The mount.
  const mnt = path.join(scratch, 'mnt');
  fs.mkdirSync(mnt);
  // A fresh index cache: the first mount indexes (and writes the cache), the second reuses it.
  const env = { ...process.env, XDG_CACHE_HOME: path.join(scratch, 'cache') };
  log('mount: ocimount --foreground, cold page cache');
  await coldCaches();
  const server = await startServer(archive, mnt, path.join(scratch, 'server.log'), env);
  log(`mounted in ${fmtS(server.readySeconds)} (server pid ${server.pid})`);
  let mFindCold, mFindWarm, ddCold, catCold, ddWarm, catWarm, catKernel, mem;
  const mBig = path.join(mnt, 'rootfs', big.path);
  const ddArgs = [`if=${archive}`, 'of=/dev/null', 'bs=1M', `skip=${big.archiveOffset}`, `count=${big.size}`, 'iflag=skip_bytes,count_bytes', 'status=none'];
  try {
    mFindCold = await findCount(path.join(mnt, 'rootfs'));
    mFindWarm = await findCount(path.join(mnt, 'rootfs'));
    log('reads: dd over the archive bytes and cat through the mount');
    await coldCaches();
    ddCold = await timed('dd', ddArgs);
    await coldCaches();
    catCold = await cat(mBig);
    ddWarm = await timed('dd', ddArgs); // the archive's bytes are cached now (the server read them)
    await timed('dd', [`if=${mBig}`, 'iflag=nocache', 'count=0', 'status=none']); // drop the mount's own cached pages of the file
    catWarm = await cat(mBig);
    catKernel = await cat(mBig);
    mem = server.memory();
  } finally {
    await server.stop();
  }
  log('second mount: warm page cache');
  const server2 = await startServer(archive, mnt, path.join(scratch, 'server2.log'), env);
  await server2.stop();

  // Report.
  const rate = (s: number) => big.size / s;
  const r = {
    ready: server.readySeconds / untar,
    catCold: rate(catCold.seconds) / rate(ddCold.seconds),
    catWarm: rate(catWarm.seconds) / rate(ddWarm.seconds),
    find: mFindWarm.seconds / xFindWarm.seconds,
    bytesPerEntry: probe.indexBytes / probe.entries,
    retainedPerEntry: (probe.heapDelta + probe.externalDelta) / probe.entries,
  };
  const c = cold ? 'cold' : 'cold (cache NOT dropped)';
  const ddWhat = big.exact ? 'the same bytes of the archive' : `${fmtBytes(big.size)} from the start of its (${big.compression}) layer blob`;
  const measures = table([
    ['measure', 'ocimount mount', 'baseline', 'baseline is'],
    [`ready / unpack, ${c}`, fmtS(server.readySeconds), fmtS(untar), `tar -x archive (${fmtS(untarOuter.seconds)}) + ${untarLayers.length} layers (${untarLayers.map(fmtS).join(', ')})`],
    ['ready, second mount (warm page cache, index cache)', fmtS(server2.readySeconds), '', 'reuses the index cache the first mount wrote'],
    ['  of which CLI start (ocimount --help)', fmtS(startup.seconds), '', ''],
    [`  of which ImageView.open, ${c}`, fmtS(probe.seconds), '', 'engine alone in a fresh process'],
    [`find rootfs | wc -l, ${c}`, `${fmtS(mFindCold.seconds)} (${mFindCold.paths})`, `${fmtS(xFindCold.seconds)} (${xFindCold.paths})`, 'find over the extracted tree'],
    ['find rootfs | wc -l, warm', `${fmtS(mFindWarm.seconds)} (${mFindWarm.paths})`, `${fmtS(xFindWarm.seconds)} (${xFindWarm.paths})`, 'find over the extracted tree'],
    [`cat ${fmtBytes(big.size)} file, ${c}`, fmtRate(big.size, catCold.seconds), fmtRate(big.size, ddCold.seconds), `dd of ${ddWhat}`],
    ['cat, archive cached, mount not', fmtRate(big.size, catWarm.seconds), fmtRate(big.size, ddWarm.seconds), `dd of ${ddWhat}, cached`],
    ['cat again (kernel page cache)', fmtRate(big.size, catKernel.seconds), '', ''],
    [`cat of the extracted file, ${c} / warm`, '', `${fmtRate(big.size, xCatCold.seconds)} / ${fmtRate(big.size, xCatWarm.seconds)}`, 'cat on ext4/overlay'],
    ['server peak RSS (VmHWM) / RSS at end', `${fmtBytes(mem.hwm)} / ${fmtBytes(mem.rss)}`, '', ''],
    ['index size per tar entry', `${r.bytesPerEntry.toFixed(1)} B (retained ${r.retainedPerEntry.toFixed(1)} B)`, '', `${probe.entries} entries, ${probe.mergedNodes} merged paths`],
  ]);
  const targets = table([
    ['target', 'measured', 'wanted', 'result'],
    ['mount-ready / tar -x time', r.ready.toFixed(3), `<= ${TARGETS.readyRatio}`, verdict(r.ready <= TARGETS.readyRatio)],
    ['cold cat rate / dd rate', r.catCold.toFixed(2), `>= ${TARGETS.catVsDd}`, verdict(r.catCold >= TARGETS.catVsDd)],
    ['warm find: mount / extracted', r.find.toFixed(2), `<= ${TARGETS.warmFindRatio}`, verdict(r.find <= TARGETS.warmFindRatio)],
    ['index bytes per entry (byteSize)', r.bytesPerEntry.toFixed(1), `<= ${BYTES_PER_ENTRY_TARGET}`, verdict(r.bytesPerEntry <= BYTES_PER_ENTRY_TARGET)],
    ['index bytes per entry (retained heap)', r.retainedPerEntry.toFixed(1), `<= ${BYTES_PER_ENTRY_TARGET}`, verdict(r.retainedPerEntry <= BYTES_PER_ENTRY_TARGET)],
  ]);
  process.stdout.write(`\nimage: ${archive} (${fmtBytes(archiveBytes)}), ${probe.layers.length} layers, big file /${big.path} (${fmtBytes(big.size)})\n\n${measures}\n\n${targets}\n\n`);
  const load = loadNote(startLoad);
  process.stdout.write(`${load.note}\n`);
  const json = {
    bench: 'mount',
    loadAverage: load.load,
    archive,
    archiveBytes,
    entries: probe.entries,
    mergedNodes: probe.mergedNodes,
    cacheDropped: cold,
    seconds: {
      mountReady: server.readySeconds, mountReadyWarm: server2.readySeconds, cliStart: startup.seconds, engineOpen: probe.seconds,
      untar, untarArchive: untarOuter.seconds, untarLayers,
      findMountCold: mFindCold.seconds, findMountWarm: mFindWarm.seconds, findExtractCold: xFindCold.seconds, findExtractWarm: xFindWarm.seconds,
    },
    paths: { mount: mFindWarm.paths, extract: xFindWarm.paths },
    bytesPerSecond: {
      catMountCold: rate(catCold.seconds), ddArchiveCold: rate(ddCold.seconds), catMountArchiveWarm: rate(catWarm.seconds),
      ddArchiveWarm: rate(ddWarm.seconds), catMountKernelCache: rate(catKernel.seconds), catExtractCold: rate(xCatCold.seconds), catExtractWarm: rate(xCatWarm.seconds),
    },
    bigFile: big,
    serverPeakRssBytes: mem.hwm,
    ratios: r,
    pass: {
      ready: r.ready <= TARGETS.readyRatio, cat: r.catCold >= TARGETS.catVsDd, find: r.find <= TARGETS.warmFindRatio,
      index: r.bytesPerEntry <= BYTES_PER_ENTRY_TARGET && r.retainedPerEntry <= BYTES_PER_ENTRY_TARGET,
    },
  };
  process.stdout.write(`${JSON.stringify(json)}\n`);
  if (big.size < 100 * MiB) log(`note: the big file is only ${fmtBytes(big.size)}; throughput figures are noisy at that size`);
}

if (require.main === module) runMain(main);
