/**
 * Registry benchmark (issue 13): an image mounted straight from a registry, against a full pull,
 * side by side in one run, on a local CNCF Distribution registry (`docker-registry serve` on a
 * free loopback port, filesystem storage in the scratch dir, its access log to a file) holding a
 * generated ~700 MiB gzip image pushed with `skopeo copy`:
 *
 *   a  first mount: `ocimount --foreground --cache-dir FRESH docker://… MNT` until its `mounted`
 *      line (one streamed pass per gzip layer builds the checkpoints and the tar index), against
 *      `skopeo copy docker://… dir:…` (a full pull: every blob fetched, verified, written)
 *                                                     ratio ocimount / skopeo          <= 1.2
 *   b  a second mount with the same cache dir, plus `cat` of one small file, unmounted again:
 *      blob bytes the registry sent for it, summed from its access log          <= 4 MiB
 *
 * Each of --repeat N rounds runs skopeo and ocimount one after the other (their order swapped
 * every round); the figures are medians. PASS/FAIL per goal, the load average at start and end,
 * one JSON line at the end.
 *
 *   npm run build && node dist/bench/registry.js [--repeat 3] [--dir DIR] [--keep] [--image FILE]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, generateImage, genOptionsFrom } from './gen-image';
import {
  BenchError, BIN, COMMON_OPTIONS, fmtBytes, fmtS, intOpt, loadNote, log, MiB, onCleanup, parse, runMain, scratchDir, table, timed, verdict,
} from './lib';

const GOALS = { firstMountVsPull: 1.2, secondMountBytes: 4 * MiB };
const REPO = 'bench/app';
const TAG = 'gzip';

const USAGE = `usage: node dist/bench/registry.js [--repeat N] [--dir DIR] [--keep] [--image FILE]
                                    [--files N] [--big-mib N] [--data-mib N]
  --repeat N      rounds of (skopeo copy, first mount, second mount + cat); medians (default 3)
  --image FILE    a docker save archive with gzip layers to push instead of a generated one
  --files, --big-mib, --data-mib   the generated image (defaults 60000, 300, 850: ~700 MiB gzip)
  --dir DIR       where the scratch directory goes (needs ~3x the image: archive, registry, pull)
  --keep          leave the scratch directory behind
`;

const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function isMounted(dir: string): boolean {
  const target = path.resolve(dir);
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .some((l) => (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === target);
}

/** Stops a child by its PID: SIGTERM, then SIGKILL; waits for its exit. */
async function stopChild(child: ChildProcess, what: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  if (await Promise.race([exit.then(() => true), sleep(15_000).then(() => false)])) return;
  log(`${what} (pid ${child.pid}) did not exit on SIGTERM: killing it`);
  child.kill('SIGKILL');
  await Promise.race([exit, sleep(5_000)]);
}

// ---- the registry ----------------------------------------------------------------------------

interface LocalRegistry {
  host: string;
  accessLog: string;
}

/**
 * `docker-registry serve` on a free loopback port, storage under `dir`. Distribution writes its
 * access log (Apache combined format, with the bytes of each response body) on stdout, which
 * goes to a file; application messages go to stderr, to another.
 */
async function startRegistry(dir: string): Promise<LocalRegistry> {
  const port = await freePort();
  const config = path.join(dir, 'registry.yml');
  fs.writeFileSync(config, [
    'version: 0.1',
    'log:',
    '  level: error',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'registry-data')}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n'));
  const accessLog = path.join(dir, 'registry-access.log');
  const out = fs.openSync(accessLog, 'a');
  const err = fs.openSync(path.join(dir, 'registry.log'), 'a');
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', out, err] });
  fs.closeSync(out);
  fs.closeSync(err);
  onCleanup(`stop docker-registry ${child.pid}`, () => stopChild(child, 'docker-registry'));
  child.on('error', () => undefined);
  const until = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new BenchError(`docker-registry exited ${child.exitCode}: ${fs.readFileSync(path.join(dir, 'registry.log'), 'utf8').trim().slice(-500)}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > until) throw new BenchError('docker-registry did not start listening within 30 s');
    await sleep(100);
  }
  return { host: `127.0.0.1:${port}`, accessLog };
}

interface Fetched {
  requests: number;
  blobRequests: number;
  blobBytes: number;
  allBytes: number;
}

/** What the registry sent from byte `from` of its access log on: requests, and body bytes. */
function fetchedSince(accessLog: string, from: number): Fetched {
  const text = fs.readFileSync(accessLog).subarray(from).toString('utf8');
  const f: Fetched = { requests: 0, blobRequests: 0, blobBytes: 0, allBytes: 0 };
  // 127.0.0.1 - - [date] "GET /v2/REPO/blobs/sha256:… HTTP/1.1" 206 1048576 "referer" "agent"
  for (const m of text.matchAll(/"(GET|HEAD) (\S+) HTTP\/[\d.]+" (\d{3}) (\d+|-)/g)) {
    const bytes = m[4] === '-' ? 0 : Number(m[4]);
    f.requests++;
    f.allBytes += bytes;
    if (m[1] === 'GET' && /\/blobs\/sha256:/.test(m[2])) {
      f.blobRequests++;
      f.blobBytes += bytes;
    }
  }
  return f;
}

const logSize = (file: string): number => fs.statSync(file).size;

// ---- ocimount --------------------------------------------------------------------------------

interface Mount {
  readySeconds: number;
  stdout: string;
  stop(): Promise<void>;
}

/** `ocimount --foreground … REF MNT` as a child process, resolved at its `mounted` line. */
function mount(ref: string, mnt: string, cacheDir: string, logFile: string): Promise<Mount> {
  const args = [BIN, '--foreground', '--cache-dir', cacheDir, ref, mnt];
  const fd = fs.openSync(logFile, 'a');
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', fd] });
  fs.closeSync(fd);
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= (async () => {
    await stopChild(child, 'ocimount');
    if (isMounted(mnt)) await timed('fusermount', ['-uz', mnt], { allowFail: true });
  })());
  onCleanup(`stop ocimount ${child.pid} at ${mnt}`, stop);
  return new Promise((resolve, reject) => {
    let out = '';
    let ready = false;
    child.on('error', (err) => reject(new BenchError(`cannot start ocimount: ${err.message}`)));
    child.stdout!.on('data', (b: Buffer) => {
      if (ready) return;
      out += b.toString();
      if (/^mounted .* at /m.test(out)) {
        ready = true;
        resolve({ readySeconds: Number(process.hrtime.bigint() - t0) / 1e9, stdout: out, stop });
      }
    });
    child.on('exit', (code, signal) => {
      if (ready) return;
      const tail = fs.readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
      reject(new BenchError(`ocimount exited (${signal ?? code}) before it was mounted; log ${logFile}:\n${tail}`));
    });
  });
}

/** A small regular file of the image, found on a mount (by the bench, not the server). */
async function pickSmallFile(mnt: string): Promise<string> {
  const r = await timed('/bin/sh', ['-c', 'find "$1/rootfs/usr" -type f -size -16k -size +1k | sort | head -n 1', 'sh', mnt]);
  const file = r.stdout.trim();
  if (!file) throw new BenchError(`no small file under ${mnt}/rootfs/usr`);
  return path.relative(mnt, file);
}

// ---- the run ---------------------------------------------------------------------------------

interface Round {
  skopeoSeconds: number;
  firstMountSeconds: number;
  firstMountFetched: Fetched;
  secondMountSeconds: number;
  secondFetched: Fetched;
  catBytes: number;
}

async function main(): Promise<void> {
  const v = parse({ ...COMMON_OPTIONS, repeat: { type: 'string' } }, USAGE);
  const repeat = Math.max(1, intOpt(v.repeat, 'repeat', 3));
  const startLoad = os.loadavg()[0];
  const work = scratchDir(v.dir as string | undefined, !!v.keep);
  log(`scratch dir ${work}`);

  let image = v.image as string | undefined;
  if (!image) {
    image = path.join(work, 'image.tar');
    log('generating a gzip image');
    const g = generateImage(genOptionsFrom({ files: '60000', 'big-mib': '300', 'data-mib': '850', ...v, compress: 'gzip' }, image));
    log(describe(g));
  }

  const reg = await startRegistry(work);
  const ref = `docker://${reg.host}/${REPO}:${TAG}`;
  log(`pushing ${image} to ${ref}`);
  await timed('skopeo', ['copy', '-q', '--dest-tls-verify=false', `docker-archive:${image}`, ref]);
  const inspected = JSON.parse((await timed('skopeo', ['inspect', '--raw', '--tls-verify=false', ref])).stdout) as { layers: Array<{ mediaType: string; size: number }> };
  const blobBytes = inspected.layers.reduce((s, l) => s + l.size, 0);
  const types = [...new Set(inspected.layers.map((l) => l.mediaType.replace(/^.*\./, '')))].join(', ');
  log(`registry holds ${inspected.layers.length} layers (${types}), ${fmtBytes(blobBytes)} of layer blobs`);

  const mnt = path.join(work, 'mnt');
  fs.mkdirSync(mnt);
  const serverLog = path.join(work, 'ocimount.log');
  let smallFile: string | undefined;
  const rounds: Round[] = [];
  for (let i = 0; i < repeat; i++) {
    const cache = path.join(work, `cache-${i}`);
    const pulled = path.join(work, `pull-${i}`);
    const round: Partial<Round> = {};
    const pull = async () => {
      const r = await timed('skopeo', ['copy', '-q', '--src-tls-verify=false', ref, `dir:${pulled}`]);
      round.skopeoSeconds = r.seconds;
      fs.rmSync(pulled, { recursive: true, force: true });
    };
    const first = async () => {
      const from = logSize(reg.accessLog);
      const m = await mount(ref, mnt, cache, serverLog);
      round.firstMountSeconds = m.readySeconds;
      round.firstMountFetched = fetchedSince(reg.accessLog, from);
      smallFile ??= await pickSmallFile(mnt);
      await m.stop();
    };
    // Side by side: the order alternates so neither always runs on the warmer machine.
    for (const step of i % 2 ? [first, pull] : [pull, first]) await step();

    // b: the same cache dir again, and one small file read.
    const from = logSize(reg.accessLog);
    const m = await mount(ref, mnt, cache, serverLog);
    round.secondMountSeconds = m.readySeconds;
    const cat = await timed('cat', [path.join(mnt, smallFile!)]);
    round.catBytes = Buffer.byteLength(cat.stdout, 'latin1');
    await m.stop();
    round.secondFetched = fetchedSince(reg.accessLog, from);
    fs.rmSync(cache, { recursive: true, force: true });
    rounds.push(round as Round);
    const r = round as Round;
    log(`round ${i + 1}/${repeat}: skopeo copy ${fmtS(r.skopeoSeconds)}, first mount ${fmtS(r.firstMountSeconds)} ` +
      `(${fmtBytes(r.firstMountFetched.blobBytes)} of blobs), second mount ${fmtS(r.secondMountSeconds)} + cat: ` +
      `${r.secondFetched.requests} requests, ${fmtBytes(r.secondFetched.blobBytes)} of blobs`);
  }

  const skopeo = median(rounds.map((r) => r.skopeoSeconds));
  const firstMount = median(rounds.map((r) => r.firstMountSeconds));
  const ratioA = median(rounds.map((r) => r.firstMountSeconds / r.skopeoSeconds));
  const secondBytes = median(rounds.map((r) => r.secondFetched.blobBytes));
  const firstBytes = median(rounds.map((r) => r.firstMountFetched.blobBytes));
  const okA = ratioA <= GOALS.firstMountVsPull;
  const okB = secondBytes <= GOALS.secondMountBytes;
  const { load, note } = loadNote(startLoad);

  process.stdout.write(`\nimage: ${inspected.layers.length} gzip layers, ${fmtBytes(blobBytes)} of blobs, on ${reg.host}; ${repeat} rounds, medians\n\n`);
  process.stdout.write(`${table([
    ['figure', 'median', 'rounds'],
    ['skopeo copy docker:// dir: (full pull)', fmtS(skopeo), rounds.map((r) => fmtS(r.skopeoSeconds)).join(' ')],
    ['first mount, fresh cache (to `mounted`)', fmtS(firstMount), rounds.map((r) => fmtS(r.firstMountSeconds)).join(' ')],
    ['  blob bytes it fetched', fmtBytes(firstBytes), ''],
    ['second mount + cat of one small file', fmtS(median(rounds.map((r) => r.secondMountSeconds))), rounds.map((r) => fmtS(r.secondMountSeconds)).join(' ')],
    ['  requests / blob requests', `${median(rounds.map((r) => r.secondFetched.requests))} / ${median(rounds.map((r) => r.secondFetched.blobRequests))}`, ''],
    ['  blob bytes fetched', fmtBytes(secondBytes), rounds.map((r) => fmtBytes(r.secondFetched.blobBytes)).join(' ')],
  ])}\n\n`);
  process.stdout.write(`${verdict(okA)}  a  first mount / skopeo copy = ${ratioA.toFixed(2)} (goal <= ${GOALS.firstMountVsPull})\n`);
  process.stdout.write(`${verdict(okB)}  b  second mount + cat /${smallFile} (${fmtBytes(rounds[0].catBytes)}) fetched ${fmtBytes(secondBytes)} of blobs (goal <= ${fmtBytes(GOALS.secondMountBytes)})\n`);
  process.stdout.write(`${note}\n`);
  process.stdout.write(`${JSON.stringify({
    bench: 'registry',
    layers: inspected.layers.length,
    blobBytes,
    repeat,
    skopeoSeconds: skopeo,
    firstMountSeconds: firstMount,
    firstMountRatio: ratioA,
    firstMountBlobBytes: firstBytes,
    secondMountSeconds: median(rounds.map((r) => r.secondMountSeconds)),
    secondMountBlobBytes: secondBytes,
    secondMountRequests: median(rounds.map((r) => r.secondFetched.requests)),
    smallFile,
    rounds,
    pass: { firstMount: okA, secondMount: okB },
    load,
  })}\n`);
}

runMain(main);
