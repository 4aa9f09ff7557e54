import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { ocimount, tempDir, type RunResult } from './helpers/mount-harness';
import { pushLayout, startFaultProxy, startRegistry, type FaultProxy, type Registry } from './helpers/registry';

/*
 * What a registry sends is checked where it can be: the manifest against the digest asked for
 * and against Docker-Content-Digest, the config against its digest, always; a layer against its
 * digest when it is read whole (--verify). The real registry checks digests on upload, so the
 * lies come from a proxy in front of it that rewrites answers. And a 403 is one line, exit 1.
 */

const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const lines = (t: string) => t.split('\n').filter((l) => l !== '');
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function assertOneLine(r: RunResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  assert.equal(lines(r.stderr).length, 1, `one line on stderr: ${r.stderr}`);
  assert.match(r.stderr, pattern);
}

const MARKER = 'MARKER-0123456789-';

describe('a registry that sends the wrong bytes', { timeout: 300_000 }, () => {
  let reg: Registry;
  let proxy: FaultProxy;
  let manifestDigest: string;
  let configDigest: string;
  let layerDigest: string;
  let ref: string;

  before(async () => {
    const work = tempDir('registry-verify');
    cleanup.push(work);
    const img = path.join(work, 'img');
    await buildArchive(img, {
      layout: 'oci-dir',
      images: [{ tags: ['app:1'], layers: [{ entries: [{ path: 'hello.txt', content: 'hello\n' }, { path: 'data.txt', content: MARKER.repeat(200) }] }] }],
    });
    const index = JSON.parse(fs.readFileSync(path.join(img, 'index.json'), 'utf8'));
    manifestDigest = index.manifests[0].digest;
    const manifest = JSON.parse(fs.readFileSync(path.join(img, 'blobs', 'sha256', manifestDigest.slice(7)), 'utf8'));
    configDigest = manifest.config.digest;
    layerDigest = manifest.layers[0].digest;
    assert.match(manifest.layers[0].mediaType, /tar$/, 'an uncompressed layer: its reads are partial');
    reg = await startRegistry();
    await pushLayout(img, reg.host, 'plain/app', '1');
    proxy = await startFaultProxy(reg.host);
    ref = `docker://${proxy.host}/plain/app:1`;
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
  });
  const reset = () => {
    proxy.fault = () => undefined;
    proxy.rewrite = () => undefined;
  };
  /** JSON with one more space: still parses, hashes differently. */
  const respace = (b: Buffer) => Buffer.from(`${b.toString('utf8')} `);

  it('the honest registry is read (the proxy passes answers on)', async () => {
    reset();
    const r = await ocimount(['cat', '--no-cache', '--verify', ref, '/hello.txt']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello\n');
  });

  it('a manifest that does not hash to its Docker-Content-Digest: exit 3, one line', async () => {
    reset();
    proxy.rewrite = (req, body) => (req.url!.includes('/manifests/') ? respace(body) : undefined);
    const r = await ocimount(['ls', '--no-cache', ref, '/']);
    assertOneLine(r, 3, new RegExp(`^ocimount: ${esc(proxy.host)}: manifest plain/app:1: Docker-Content-Digest says ${esc(manifestDigest)}, the bytes hash to sha256:`));
  });

  it('a manifest asked for by digest that hashes to another: exit 3, one line', async () => {
    reset();
    proxy.rewrite = (req, body) => (req.url!.includes('/manifests/') ? respace(body) : undefined);
    const r = await ocimount(['ls', '--no-cache', `docker://${proxy.host}/plain/app@${manifestDigest}`, '/']);
    assertOneLine(r, 3, new RegExp(`^ocimount: ${esc(proxy.host)}: manifest plain/app@${esc(manifestDigest)}: the registry sent bytes that hash to sha256:`));
  });

  it('a config that does not hash to its digest: exit 3, one line', async () => {
    reset();
    proxy.rewrite = (req, body) => (req.url!.includes(`/blobs/${configDigest}`) ? respace(body) : undefined);
    const r = await ocimount(['ls', '--no-cache', ref, '/']);
    assertOneLine(r, 3, new RegExp(`^ocimount: ${esc(proxy.host)}: blob ${esc(configDigest.slice(0, 19))} of plain/app: the registry sent bytes that hash to`));
  });

  it('a layer changed where no header is: unnoticed by a partial read, refused by --verify (exit 3, one line)', async () => {
    reset();
    let changed = 0;
    proxy.rewrite = (req, body) => {
      if (!req.url!.includes(`/blobs/${layerDigest}`)) return undefined;
      const at = body.indexOf(MARKER);
      if (at < 0) return undefined;
      changed++;
      const out = Buffer.from(body);
      out[at] = 'N'.charCodeAt(0);
      return out;
    };
    const plain = await ocimount(['cat', '--no-cache', ref, '/hello.txt']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout, 'hello\n');
    const r = await ocimount(['cat', '--no-cache', '--verify', ref, '/hello.txt']);
    assert.ok(changed > 0, 'the proxy changed the layer');
    assertOneLine(r, 3, new RegExp(`^ocimount: .*${esc(layerDigest)}`));
    assert.equal(r.stdout, '');
  });

  it('403 from the registry: exit 1, one line naming it', async () => {
    reset();
    proxy.fault = (req) => (req.url!.includes('/manifests/') ? { status: 403 } : undefined);
    const r = await ocimount(['ls', '--no-cache', ref, '/']);
    assertOneLine(r, 1, new RegExp(`^ocimount: ${esc(proxy.host)}: manifest plain/app:1: access denied \\(403\\).* may not pull plain/app`));
  });
});
