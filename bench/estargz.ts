/**
 * eStargz benchmark (issue 13: "an eStargz image mounted by fetching under 5% of its blob
 * bytes"): one generated image (--data-mib of file data, default 256: --files small text files
 * and 8 MiB pseudo-random files), written twice, as eStargz (test/helpers/estargz.ts, the
 * layout stargz-snapshotter writes, 4 MiB chunks) and as a plain gzip layer of the same tar,
 * both pushed as they are to a local `docker-registry serve` behind a counting proxy. Then, side
 * by side, --repeat times each with a fresh cache folder: mount `docker://…`, `cat` one small
 * file, unmount. Reported per form: blob bytes fetched (from the Range headers the proxy saw) /
 * blob size, and mount-ready + cat time; goal: eStargz fraction < 5%.
 *
 *   npm run build && node dist/bench/estargz.js [--data-mib N] [--files N] [--repeat N] [--dir DIR] [--keep]
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { EntryType } from '../src/tar/entry';
import { encodeEntry, endOfArchive, padding } from '../src/tar/write';
import { toEstargz, writeEstargzLayout } from '../test/helpers/estargz';
import { pushLayout, startFaultProxy, startRegistry } from '../test/helpers/registry';
import { BIN, fmtBytes, fmtS, intOpt, loadNote, log, MiB, onCleanup, parse, runMain, scratchDir, table, timed, verdict } from './lib';

const GOAL = 0.05;
const SMALL = 'data/small/d3/f7.txt';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** The layer tar: small text files in directories, then 8 MiB pseudo-random files up to dataMiB. */
function layerTar(dataMiB: number, files: number): Buffer {
  const parts: Buffer[] = [];
  const mtime = { sec: 1_700_000_000, nsec: 0 };
  const dir = (name: string) => parts.push(encodeEntry({ name: `${name}/`, type: EntryType.Directory, mode: 0o755, uid: 0, gid: 0, size: 0, mtime }));
  const file = (name: string, data: Buffer) => {
    parts.push(encodeEntry({ name, type: EntryType.File, mode: 0o644, uid: 0, gid: 0, size: data.length, mtime }), data, padding(data.length));
  };
  dir('data');
  dir('data/small');
  let total = 0;
  const words = ['alpha', 'beta', 'gamma', 'delta', 'lorem', 'ipsum', 'config', 'value', 'return', 'import'];
  for (let d = 0; d * 100 < files; d++) {
    dir(`data/small/d${d}`);
    for (let f = 0; f < 100 && d * 100 + f < files; f++) {
      const n = ((d * 7919 + f * 104729) % 8192) + 16;
      let s = '';
      for (let k = 0; s.length < n; k++) s += `${words[(d + f * 3 + k) % words.length]} ${k}\n`;
      const data = Buffer.from(s.slice(0, n));
      total += data.length;
      file(`data/small/d${d}/f${f}.txt`, data);
    }
  }
  dir('data/big');
  for (let i = 0; total < dataMiB * MiB; i++) {
    const data = randomBytes(8 * MiB);
    total += data.length;
    file(`data/big/blob${i}.bin`, data);
  }
  parts.push(endOfArchive());
  return Buffer.concat(parts);
}

/** A plain (one-member) gzip form of the same layer, as an OCI layout. */
function writeGzipLayout(dir: string, tar: Buffer): void {
  const blob = zlib.gzipSync(tar);
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer) => {
    const d = `sha256:${createHash('sha256').update(b).digest('hex')}`;
    fs.writeFileSync(path.join(dir, 'blobs', 'sha256', d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] }, history: [{ created_by: 'bench layer' }] }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...put(config) },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...put(blob) }],
    }),
  );
  const m = put(manifest);
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m }] }));
}

function layerBlobSize(layout: string): { digest: string; size: number } {
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const manifest = JSON.parse(fs.readFileSync(path.join(layout, 'blobs', 'sha256', index.manifests[0].digest.slice(7)), 'utf8'));
  return { digest: manifest.layers[0].digest, size: manifest.layers[0].size };
}

/** Mounts `ref` (a fresh cache folder), cats SMALL, unmounts; seconds from start to cat done. */
async function mountAndCat(ref: string, work: string, run: number): Promise<number> {
  const mnt = fs.mkdtempSync(path.join(work, `mnt-${run}-`));
  const cache = fs.mkdtempSync(path.join(work, `cache-${run}-`));
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [BIN, 'mount', '--foreground', '--cache-dir', cache, ref, mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await timed('fusermount', ['-uz', mnt], { allowFail: true });
  };
  onCleanup(`stop mount ${child.pid}`, stop);
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('Ctrl-C to unmount')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`mount exited ${code}: ${stderr}`)));
    });
    const cat = await timed('cat', [path.join(mnt, 'rootfs', SMALL)]);
    if (cat.code !== 0) throw new Error(`cat failed: ${stderr}`);
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    await stop();
    fs.rmSync(cache, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const v = parse(
    { 'data-mib': { type: 'string' }, files: { type: 'string' }, repeat: { type: 'string' }, dir: { type: 'string' }, keep: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
    'node dist/bench/estargz.js [--data-mib N] [--files N] [--repeat N] [--dir DIR] [--keep]\n',
  );
  const startLoad = os.loadavg()[0];
  const dataMiB = intOpt(v['data-mib'], 'data-mib', 256);
  const files = intOpt(v.files, 'files', 5000);
  const repeat = intOpt(v.repeat, 'repeat', 3);
  const work = scratchDir(v.dir as string | undefined, !!v.keep);

  log(`generating a ${dataMiB} MiB layer with ${files} small files`);
  const tar = layerTar(dataMiB, files);
  const stargz = toEstargz(tar);
  writeEstargzLayout(path.join(work, 'estargz'), [stargz]);
  writeGzipLayout(path.join(work, 'gzip'), tar);
  const forms = ['estargz', 'gzip'] as const;
  const blobs = Object.fromEntries(forms.map((f) => [f, layerBlobSize(path.join(work, f))])) as Record<(typeof forms)[number], { digest: string; size: number }>;

  const reg = await startRegistry();
  onCleanup('stop the registry', () => reg.stop());
  const proxy = await startFaultProxy(reg.host);
  onCleanup('stop the proxy', () => proxy.close());
  for (const f of forms) {
    log(`pushing the ${f} form (${fmtBytes(blobs[f].size)})`);
    await pushLayout(path.join(work, f), reg.host, `bench/${f}`, '1');
  }

  const fetched: Record<string, number[]> = { estargz: [], gzip: [] };
  const seconds: Record<string, number[]> = { estargz: [], gzip: [] };
  for (let r = 0; r < repeat; r++) {
    for (const f of forms) {
      proxy.log.length = 0;
      seconds[f].push(await mountAndCat(`docker://${proxy.host}/bench/${f}:1`, work, r));
      let n = 0;
      for (const l of proxy.log) {
        if (!l.includes(`/blobs/${blobs[f].digest}`)) continue;
        const m = / bytes=(\d+)-(\d+) /.exec(l);
        n += m ? Number(m[2]) - Number(m[1]) + 1 : blobs[f].size;
      }
      fetched[f].push(n);
      log(`${f} run ${r + 1}: ${fmtBytes(n)} fetched, ${fmtS(seconds[f][r])}`);
    }
  }
  const frac = (f: string) => median(fetched[f]) / blobs[f as 'gzip'].size;
  const rows = [
    ['form', 'blob', 'fetched (median)', 'fraction', 'mount + cat (median)'],
    ...forms.map((f) => [f, fmtBytes(blobs[f].size), fmtBytes(median(fetched[f])), `${(frac(f) * 100).toFixed(2)}%`, fmtS(median(seconds[f]))]),
  ];
  const ok = frac('estargz') < GOAL;
  const timeRatio = median(seconds.estargz) / median(seconds.gzip);
  const { load, note } = loadNote(startLoad);
  process.stdout.write(`${table(rows)}\n\n`);
  process.stdout.write(`eStargz: mount + cat of ${SMALL} fetched ${(frac('estargz') * 100).toFixed(2)}% of the blob (goal < ${GOAL * 100}%): ${verdict(ok)}\n`);
  process.stdout.write(`time, eStargz / gzip: ${timeRatio.toFixed(3)}\n${note}\n`);
  process.stdout.write(
    `${JSON.stringify({ bench: 'estargz', dataMiB, files, repeat, blobBytes: { estargz: blobs.estargz.size, gzip: blobs.gzip.size }, fetched, seconds, fraction: { estargz: frac('estargz'), gzip: frac('gzip') }, timeRatio, pass: ok, load })}\n`,
  );
}

runMain(main);
