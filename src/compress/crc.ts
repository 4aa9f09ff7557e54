/**
 * CRC-32 arithmetic Node's zlib does not offer. The CRC itself is `zlib.crc32` (Node >= 20.15,
 * hence package.json's engines); gzip needs, besides, the CRC of a member from the CRCs of its
 * spans, which are computed as the spans are inflated.
 */

// crc32_combine, as in zlib 1.2.12+: CRC of A||B from crc(A), crc(B), len(B).
const POLY = 0xedb88320;
function multmodp(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}
let x2nTable: number[] | undefined;
function x2nmodp(n: number, k: number): number {
  if (!x2nTable) {
    x2nTable = [];
    let p = 0x40000000; // x^1
    x2nTable.push(p);
    for (let i = 1; i < 32; i++) x2nTable.push((p = multmodp(p, p)));
  }
  let p = 0x80000000; // x^0 == 1
  while (n > 0) {
    if (n % 2 === 1) p = multmodp(x2nTable[k & 31], p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}
export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  return (multmodp(x2nmodp(len2, 3), crc1) ^ crc2) >>> 0;
}
