/**
 * What a layer blob is, from its first bytes (pass at least 1024 when the blob has them; 512 is
 * enough for everything but an empty tar).
 */
export type DetectedCompression = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2' | 'unknown';

export function detectCompression(head: Buffer): DetectedCompression {
  if (head.length === 0) return 'none'; // an empty blob is an empty (if improper) tar
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4) {
    const magic = head.readUInt32LE(0);
    if (magic === 0xfd2fb528) return 'zstd';
    // A skippable frame first: pzstd and the seekable format start this way.
    if (((magic & 0xfffffff0) >>> 0) === 0x184d2a50) return 'zstd';
  }
  if (head.length >= 6 && head.subarray(0, 6).equals(XZ_MAGIC)) return 'xz';
  if (head.length >= 4 && head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68 && head[3] >= 0x31 && head[3] <= 0x39) {
    return 'bzip2'; // 'BZh' + block size '1'..'9'
  }
  if (head.length >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'none';
  if (head.length >= 512 && isAllZero(head.subarray(0, Math.min(head.length, 1024)))) return 'none'; // empty tar
  if (head.length >= 512 && v7ChecksumOk(head)) return 'none';
  return 'unknown';
}

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);

function isAllZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** A pre-POSIX tar header: its checksum field matches the header's byte sum (unsigned or signed). */
function v7ChecksumOk(h: Buffer): boolean {
  const field = h.toString('latin1', 148, 156);
  const m = /^[ \0]*([0-7]{1,8})[ \0]*$/.exec(field);
  if (!m) return false;
  const want = parseInt(m[1], 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i];
    unsigned += b;
    signed += b >= 128 ? b - 256 : b;
  }
  // The name must start with something: a zero first byte is an end block, not a member.
  return h[0] !== 0 && (want === unsigned || want === signed);
}
