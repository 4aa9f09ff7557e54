import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { ocimount, run, tempDir, withMount } from './helpers/mount-harness';
import { pushLayout, skopeoCopy, startFaultProxy, startRegistry, type FaultProxy, type Registry } from './helpers/registry';

/*
 * A registry image mounted with FUSE, compared with the same image mounted from a docker
 * save-style archive; and faults: 5xx, 429 with Retry-After, dropped connections and redirects
 * to another origin (through a proxy in front of the real registry), and a registry that stops
 * answering (SIGSTOP) or dies (SIGKILL) in the middle of a mount: reads fail with EIO within the
 * configured bound and work again once it is back.
 */

const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function scratch(prefix: string): string {
  const d = tempDir(prefix);
  cleanup.push(d);
  return d;
}
const lines = (t: string) => t.split('\n').filter((l) => l !== '');

let reg: Registry;
let work: string;
const files = [randomBytes(1 << 20), randomBytes(1 << 20), randomBytes(1 << 20)];

before(async () => {
  reg = await startRegistry();
  work = scratch('registry-mount');
  // Files far apart (8 MiB between them, more than a read ever fetches ahead), so reading one
  // never fetches the next.
  await buildArchive(path.join(work, 'img'), {
    layout: 'oci-dir',
    images: [
      {
        tags: ['app:1'],
        layers: [
          {
            entries: [
              { path: 'f/', type: 'dir' },
              { path: 'f/one', content: files[0] },
              { path: 'f/pad1', content: Buffer.alloc(8 << 20, 1) },
              { path: 'f/two', content: files[1] },
              { path: 'f/pad2', content: Buffer.alloc(8 << 20, 2) },
              { path: 'f/three', content: files[2] },
              { path: 'etc/', type: 'dir' },
              { path: 'etc/hostname', content: 'img\n' },
              { path: 'link', type: 'symlink', target: 'etc/hostname' },
            ],
          },
          { entries: [{ path: 'etc/.wh.hostname', content: '' }, { path: 'etc/motd', content: 'hi\n', mode: 0o600, uid: 7, gid: 8 }] },
        ],
      },
    ],
  });
  await pushLayout(path.join(work, 'img'), reg.host, 'plain/app', '1');
  await skopeoCopy(`docker://${reg.host}/plain/app:1`, `docker://${reg.host}/gzip/app:1`, ['--src-tls-verify=false', '--dest-tls-verify=false']);
  await skopeoCopy(`docker://${reg.host}/plain/app:1`, `docker-archive:${work}/saved.tar:app:1`, ['--src-tls-verify=false']);
});
after(async () => reg?.stop());

/** What a mounted tree holds: every path with type, mode, owner, size, link target and content hash. */
async function describeTree(dir: string): Promise<string> {
  const r = await run('sh', ['-c', 'cd "$1" && find . -printf "%p %y %m %U:%G %s %l\\n" | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum', 'sh', dir], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

describe('a registry image mounted', { timeout: 600_000 }, () => {
  for (const kind of ['plain', 'gzip']) {
    it(`${kind}: the same tree as the docker save archive's mount`, async () => {
      const cache = scratch(`mount-${kind}`);
      const fromRegistry = await withMount(`docker://${reg.host}/${kind}/app:1`, ['--cache-dir', cache], (m) => describeTree(m.mnt));
      const fromArchive = await withMount(path.join(work, 'saved.tar'), ['--no-cache'], (m) => describeTree(m.mnt));
      // manifest.json is the registry's manifest in one and docker save's in the other.
      const same = (t: string) => lines(t).filter((l) => !l.includes('./manifest.json')).join('\n');
      assert.equal(same(fromRegistry), same(fromArchive));
      assert.match(fromRegistry, /\.\/rootfs\/etc\/motd f 600 7:8 3/);
    });
  }

  it('a registry that stops answering makes reads fail with EIO in bounded time; they work again when it is back', async () => {
    const cache = scratch('mount-faults');
    await withMount(`docker://${reg.host}/plain/app:1`, ['--cache-dir', cache, '--registry-timeout', '3'], async (m) => {
      const file = (n: string) => path.join(m.mnt, 'rootfs', 'f', n);
      assert.ok(fs.readFileSync(file('one')).equals(files[0]));
      reg.pause();
      let t0 = Date.now();
      try {
        const r = await run('cat', [file('two')], { timeoutMs: 60_000 });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /Input\/output error/);
        assert.ok(Date.now() - t0 < 20_000, `EIO after ${Date.now() - t0} ms`);
        // What was read before is still there.
        assert.ok(fs.readFileSync(file('one')).equals(files[0]));
      } finally {
        reg.resume();
      }
      assert.ok(fs.readFileSync(file('two')).equals(files[1]), 'reads work again once the registry answers');
      await reg.kill();
      t0 = Date.now();
      const dead = await run('cat', [file('three')], { timeoutMs: 60_000 });
      assert.match(dead.stderr, /Input\/output error/);
      assert.ok(Date.now() - t0 < 20_000);
      await reg.restart();
      assert.ok(fs.readFileSync(file('three')).equals(files[2]), 'and again after a restart');
      assert.match(m.stderr(), /read \/rootfs\/f\/two at \d+: .*gave up after/);
    });
  });
});

describe('faults between us and the registry', { timeout: 300_000 }, () => {
  let proxy: FaultProxy;
  before(async () => {
    proxy = await startFaultProxy(reg.host);
  });
  after(async () => proxy?.close());
  const cat = (extra: string[] = []) => ocimount(['cat', '--no-cache', ...extra, `docker://${proxy.host}/gzip/app:1`, '/etc/motd']);

  it('5xx and dropped connections are retried', async () => {
    proxy.log.length = 0;
    let blobs = 0;
    proxy.fault = (req) => {
      if (!req.url!.includes('/blobs/')) return undefined;
      blobs++;
      return blobs === 1 ? { status: 503 } : blobs === 2 ? 'drop' : blobs === 3 ? { status: 500 } : undefined;
    };
    const r = await cat();
    assert.equal(r.code, 0, `${r.stderr}\n${proxy.log.join('\n')}`);
    assert.equal(r.stdout, 'hi\n');
    assert.ok(proxy.log.some((l) => l.endsWith('-> drop')));
  });

  it('429 waits as long as Retry-After says', async () => {
    let n = 0;
    proxy.fault = (req) => (req.url!.includes('/manifests/') && n++ === 0 ? { status: 429, headers: { 'retry-after': '2' } } : undefined);
    const t0 = Date.now();
    const r = await cat();
    assert.equal(r.code, 0, r.stderr);
    assert.ok(Date.now() - t0 >= 2000, `answered after ${Date.now() - t0} ms`);
  });

  it('a registry that keeps failing: exit 3, one line, within the timeout', async () => {
    proxy.fault = () => ({ status: 502 });
    const t0 = Date.now();
    const r = await cat(['--registry-timeout', '2']);
    assert.equal(r.code, 3, r.stderr);
    assert.equal(lines(r.stderr).length, 1);
    assert.match(r.stderr, new RegExp(`^ocimount: ${proxy.host.replace(/\./g, '\\.')}: manifest gzip/app:1: 502 .*gave up after [\\d.]+ s`));
    assert.ok(Date.now() - t0 < 10_000);
  });

  it('redirects to storage elsewhere are followed, without our credentials', async () => {
    const storage = await startFaultProxy(reg.host);
    try {
      // The front wants Basic credentials (as a registry would) and sends blobs elsewhere.
      proxy.fault = (req) => {
        if (!req.headers.authorization) return { status: 401, headers: { 'www-authenticate': 'Basic realm="front"' } };
        if (req.url!.includes('/blobs/')) return { redirect: `http://${storage.host}${req.url}` };
        return undefined;
      };
      const cfg = scratch('redirect-config');
      fs.writeFileSync(path.join(cfg, 'config.json'), JSON.stringify({ auths: { [proxy.host]: { auth: Buffer.from('u:p').toString('base64') } } }));
      process.env.DOCKER_CONFIG = cfg;
      const r = await cat();
      assert.equal(r.code, 0, `${r.stderr}\n${proxy.log.join('\n')}`);
      assert.equal(r.stdout, 'hi\n');
      assert.ok(storage.log.length > 0, 'blobs came from the storage origin');
      assert.ok(storage.log.every((l) => l.includes('auth=no')), storage.log.join('\n'));
      // Layers by bounded ranges only (the config is fetched whole).
      assert.ok(storage.log.filter((l) => !l.includes(' bytes=')).length <= 1, storage.log.join('\n'));
      assert.ok(storage.log.every((l) => !/bytes=\d+- /.test(l)), 'never an open-ended range');
    } finally {
      await storage.close();
      delete process.env.DOCKER_CONFIG;
    }
  });
});

