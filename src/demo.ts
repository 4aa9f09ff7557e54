import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { pack } from 'tar-stream';

/*
 * The built-in demo image: a small but honest Docker 25+ `docker save` archive made in code,
 * with the things people come to ocimount for: a build log deep in a layer, an app binary named
 * by Cmd, a file deleted by a later layer, a directory made opaque, a hard link.
 */

interface DemoEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  mode?: number;
  linkname?: string;
  content?: Buffer | string;
}

const when = new Date('2026-01-15T10:00:00Z');

function tarOf(entries: DemoEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<Buffer>((resolve, reject) => {
    p.on('end', () => resolve(Buffer.concat(chunks)));
    p.on('error', reject);
  });
  for (const { content, ...header } of entries) p.entry({ mtime: when, uid: 0, gid: 0, ...header }, Buffer.from(content ?? ''));
  p.finalize();
  return done;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

const dir = (name: string, mode = 0o755): DemoEntry => ({ name, type: 'directory', mode });
const file = (name: string, content: Buffer | string, mode = 0o644): DemoEntry => ({ name, type: 'file', mode, content });

const LAYERS: Array<{ createdBy: string; entries: DemoEntry[] }> = [
  {
    createdBy: '/bin/sh -c #(nop) ADD file:base-rootfs in /',
    entries: [
      dir('etc/'),
      file('etc/os-release', 'PRETTY_NAME="ocimount demo linux"\nID=demo\nVERSION_ID=1\n'),
      file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n'),
      file('etc/shadow', 'root:*:19000:0:99999:7:::\n', 0o600),
      dir('bin/'),
      file('bin/sh', '#!/demo/not-a-real-shell\n', 0o755),
      dir('var/cache/apt/'),
      file('var/cache/apt/pkgcache.bin', 'x'.repeat(4096)),
      dir('tmp/', 0o1777),
      file('tmp/build-scratch.txt', 'left over by the base image\n'),
    ],
  },
  {
    createdBy: 'RUN apt-get update && apt-get install -y strace # buildkit',
    entries: [
      dir('usr/bin/'),
      file('usr/bin/strace', '\x7fELF demo strace binary\n', 0o755),
      { name: 'usr/bin/strace-log-merge', type: 'link', linkname: 'usr/bin/strace', mode: 0o755 },
      dir('var/cache/apt/'),
      file('var/cache/apt/.wh..wh..opq', ''),
      file('var/cache/apt/srcpkgcache.bin', 'y'.repeat(2048)),
    ],
  },
  {
    createdBy: 'COPY . /app # buildkit',
    entries: [
      dir('app/'),
      file('app/server', '#!/bin/sh\necho "hello from the demo app"\n', 0o755),
      file('app/config.yaml', 'listen: 0.0.0.0:8080\nlog_level: info\n'),
      { name: 'app/current', type: 'symlink', linkname: 'server' },
    ],
  },
  {
    createdBy: 'RUN strace -o trace.log /app/server && rm /tmp/build-scratch.txt # buildkit',
    entries: [
      dir('app/'),
      file(
        'app/trace.log',
        'execve("/app/server", ["/app/server"], 0x7ffd /* 5 vars */) = 0\nconnect(3, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("203.0.113.7")}, 16) = 0\nexit_group(0) = ?\n',
      ),
      dir('tmp/', 0o1777),
      file('tmp/.wh.build-scratch.txt', ''),
    ],
  },
];

/** Writes the demo archive to `out` and returns a one-line description. */
export async function writeDemoImage(out: string): Promise<string> {
  const layerTars = await Promise.all(LAYERS.map((l) => tarOf(l.entries)));
  const diffIds = layerTars.map((t) => `sha256:${sha256(t)}`);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: when.toISOString(),
      config: {
        Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'APP_ENV=demo'],
        Cmd: ['/app/server'],
        WorkingDir: '/app',
        User: 'app',
        ExposedPorts: { '8080/tcp': {} },
        Labels: { 'org.opencontainers.image.title': 'ocimount demo' },
      },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: [
        ...LAYERS.slice(0, 1).map((l) => ({ created: when.toISOString(), created_by: l.createdBy })),
        { created: when.toISOString(), created_by: 'ENV APP_ENV=demo', empty_layer: true },
        ...LAYERS.slice(1).map((l) => ({ created: when.toISOString(), created_by: l.createdBy, comment: 'buildkit.dockerfile.v0' })),
        { created: when.toISOString(), created_by: 'CMD ["/app/server"]', empty_layer: true },
      ],
    }),
  );
  const configHex = sha256(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configHex}`, size: config.length },
      layers: layerTars.map((t, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: diffIds[i], size: t.length })),
    }),
  );
  const manifestHex = sha256(manifest);
  const tag = 'ocimount-demo:latest';
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: `sha256:${manifestHex}`,
        size: manifest.length,
        annotations: { 'io.containerd.image.name': `docker.io/library/${tag}`, 'org.opencontainers.image.ref.name': 'latest' },
      },
    ],
  };
  const dockerManifest = [{ Config: `blobs/sha256/${configHex}`, RepoTags: [tag], Layers: diffIds.map((d) => `blobs/sha256/${d.slice(7)}`) }];
  const outer: DemoEntry[] = [
    dir('blobs/'),
    dir('blobs/sha256/'),
    ...layerTars.map((t, i): DemoEntry => ({ name: `blobs/sha256/${diffIds[i].slice(7)}`, type: 'file', mode: 0o644, content: t })),
    file(`blobs/sha256/${configHex}`, config),
    file(`blobs/sha256/${manifestHex}`, manifest),
    file('index.json', JSON.stringify(index)),
    file('manifest.json', JSON.stringify(dockerManifest)),
    file('oci-layout', '{"imageLayoutVersion": "1.0.0"}'),
    file('repositories', JSON.stringify({ 'ocimount-demo': { latest: manifestHex } })),
  ];
  await fs.promises.writeFile(out, await tarOf(outer));
  return `${tag}: ${LAYERS.length} layers, Docker 25 docker-save layout`;
}
