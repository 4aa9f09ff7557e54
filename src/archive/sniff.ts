import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import type * as ZstdNapi from 'zstd-napi';
import { BLOCK, decodeHeader, isZeroBlock } from '../tar/header';

/*
 * A compressed file that does not hold a tar (`echo hello | gzip`) used to be reported as a
 * truncated archive or a bad header checksum. What is inside is looked at only on that failure
 * path: the first bytes after decompression, to say "not a tar archive (gzip of text)".
 */

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/** The first `want` bytes of the decompressed stream (fewer when it is shorter or broken). */
async function firstBytes(path: string, kind: 'gzip' | 'zstd', want: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  const input = fs.createReadStream(path, { end: 4 * 1024 * 1024 });
  // zstd-napi (and its native binding) loads only for a zstd archive: most never are.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const zstd = () => new (require('zstd-napi') as typeof ZstdNapi).DecompressStream() as unknown as NodeJS.ReadWriteStream;
  const decoder = kind === 'gzip' ? zlib.createGunzip() : zstd();
  input.pipe(decoder as NodeJS.WritableStream);
  try {
    for await (const chunk of decoder as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= want) break;
    }
  } catch {
    /* a broken stream: what came out so far */
  } finally {
    input.destroy();
    (decoder as unknown as { destroy?: () => void }).destroy?.();
  }
  return Buffer.concat(chunks).subarray(0, want);
}

function isTarStart(head: Buffer): boolean {
  if (head.length < BLOCK) return false;
  const block = head.subarray(0, BLOCK);
  if (isZeroBlock(block)) return true;
  try {
    decodeHeader(block);
    return true;
  } catch {
    return false;
  }
}

function describe(head: Buffer): string {
  if (head.length === 0) return 'nothing';
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) return 'a gzip stream (compressed twice?)';
  const sample = head.subarray(0, 512);
  // eslint-disable-next-line no-control-regex
  const text = /^[\x09\x0a\x0d\x20-\x7e\x80-\xff]*$/.test(sample.toString('latin1')) && !sample.includes(0);
  if (text) {
    const first = sample.toString('utf8').split('\n')[0].slice(0, 40);
    return `text: ${JSON.stringify(first)}${sample.length > first.length + 1 ? '…' : ''}`;
  }
  return `${head.length < 4096 ? `${head.length} bytes of ` : ''}binary data`;
}

/**
 * For a compressed archive that failed to scan as a tar: `not a tar archive (gzip of …)`, or
 * undefined when the decompressed stream does start like a tar (then the original error stands).
 */
export async function notATarMessage(path: string, kind: 'gzip' | 'zstd'): Promise<string | undefined> {
  const head = await firstBytes(path, kind, 4096);
  if (isTarStart(head)) return undefined;
  return `not a tar archive (${kind} of ${describe(head)})`;
}
