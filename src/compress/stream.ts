/**
 * The former name of codecs.ts, kept only as an import path: test/compress.test.ts imports from
 * here and the tests are not changed by the refactor that split this module. Code in src/ and
 * bench/ imports the modules themselves; delete this file once the test's import line moves.
 */
export { createSeekIndexBuilder, decodeSeekIndex, encodeSeekIndex, openRandomAccess } from './codecs';
export { crc32Combine } from './crc';
export { createSpanCache, type SpanCache } from './piece-cache';
export type * from './types';
export { crc32 } from 'node:zlib';
