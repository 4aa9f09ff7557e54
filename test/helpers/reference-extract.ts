import * as fs from 'node:fs';
import * as path from 'node:path';
import { run, tempDir } from './mount-harness';

/**
 * An independent reference for the merged tree: GNU tar extracts each layer file in order into
 * one folder, and whiteouts are applied the way seed 004 (Rootfs Builder) does it by hand:
 * after a layer is extracted, every `.wh.NAME` it brought deletes NAME, and `.wh..wh..opq`
 * empties its folder of what lower layers put there. Layers come in as plain tar files.
 */
export async function referenceExtract(layerTars: string[]): Promise<string> {
  const root = tempDir('ref');
  for (const tarFile of layerTars) {
    const listing = await run('tar', ['-tf', tarFile]);
    if (listing.code !== 0) throw new Error(`tar -tf ${tarFile}: ${listing.stderr}`);
    const names = listing.stdout.split('\n').filter(Boolean).map((n) => path.normalize(n).replace(/\/$/, '').replace(/^\.\//, ''));
    const own = new Set(names);
    // Opaque directories drop lower children first (the layer's own entries arrive after).
    for (const n of names.filter((x) => path.basename(x) === '.wh..wh..opq')) {
      const dir = path.join(root, path.dirname(n));
      if (fs.existsSync(dir)) for (const child of fs.readdirSync(dir)) fs.rmSync(path.join(dir, child), { recursive: true, force: true });
    }
    for (const n of names.filter((x) => path.basename(x).startsWith('.wh.') && path.basename(x) !== '.wh..wh..opq')) {
      const target = path.join(path.dirname(n), path.basename(n).slice(4));
      if (!own.has(target)) fs.rmSync(path.join(root, target), { recursive: true, force: true });
    }
    const x = await run('tar', ['-xf', tarFile, '-C', root, '--no-same-owner', '--delay-directory-restore', '--exclude=.wh.*', '--exclude=*/.wh.*']);
    if (x.code !== 0) throw new Error(`tar -xf ${tarFile}: ${x.stderr}`);
  }
  return root;
}
