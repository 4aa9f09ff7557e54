import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildArchive } from './helpers/archive-builder';
import { BIN, ocimount, run, tempDir } from './helpers/mount-harness';
import { pushLayout, skopeoCopy, startRegistry, type Registry } from './helpers/registry';

/*
 * The first pass over a gzip layer from a registry shows progress on a terminal, as it does for
 * an archive (a pseudo-terminal from script(1)), and nothing when stderr is not a terminal.
 */

const cleanup: string[] = [];
after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('progress of the first pass over a registry layer', { timeout: 300_000 }, () => {
  let reg: Registry;
  let work: string;

  before(async () => {
    work = tempDir('registry-progress');
    cleanup.push(work);
    await buildArchive(path.join(work, 'img'), { layout: 'oci-dir', images: [{ tags: ['app:1'], layers: [{ entries: [{ path: 'hello.txt', content: 'hello\n' }] }] }] });
    reg = await startRegistry();
    await pushLayout(path.join(work, 'img'), reg.host, 'plain/app', '1');
    await skopeoCopy(`docker://${reg.host}/plain/app:1`, `docker://${reg.host}/gzip/app:1`, ['--src-tls-verify=false', '--dest-tls-verify=false']);
  });
  after(async () => reg?.stop());

  it('is shown on a terminal and not elsewhere', async () => {
    const ref = `docker://${reg.host}/gzip/app:1`;
    const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
    const cmd = [process.execPath, BIN, 'ls', '--cache-dir', path.join(work, 'cache-tty'), ref, '/'].map(quote).join(' ');
    const tty = await run('script', ['-qec', cmd, '/dev/null'], { timeoutMs: 120_000 });
    assert.equal(tty.code, 0, tty.stdout + tty.stderr);
    assert.match(tty.stdout, /indexing layer 0 \(sha256:[0-9a-f]{64}\): \d+\/\d+ MiB/);
    const piped = await ocimount(['ls', '--cache-dir', path.join(work, 'cache-pipe'), ref, '/']);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, '');
    assert.match(piped.stdout, /hello\.txt/);
  });
});
