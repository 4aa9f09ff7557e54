/**
 * One raw-deflate stream inflated a deflate block at a time (zlib's `inflate(Z_BLOCK)`), for the
 * gzip index pass (gzip-seek.ts): after each call it says whether it stopped at a block boundary
 * and how many bits of the last input byte belong to the next block (zlib's `data_type`).
 *
 * Two implementations of the same zlib code: the project's addon (native/inflate, built on
 * install; Node's own zlib binding exposes neither Z_BLOCK stops nor data_type), and pako, zlib
 * ported to JavaScript, three to five times slower (bench/README.md, "Native inflate for the
 * index pass"). pako is the fallback when the addon is not built or does not load, and can be
 * forced with OCIMOUNT_INFLATE=pako (benchmarks, the differential test). Both give the same
 * bytes, boundaries and bit counts: test/block-inflater.test.ts holds them to each other.
 */
import * as path from 'node:path';
import type * as Pako from 'pako';

// pako loads only where the addon is missing (or OCIMOUNT_INFLATE=pako asks for it).
let pakoModule: typeof Pako | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pako = (): typeof Pako => (pakoModule ??= require('pako') as typeof Pako);

export const Z_OK = 0;
export const Z_STREAM_END = 1;
export const Z_BUF_ERROR = -5;
/** data_type bits: stopped at a block boundary; that block was the last one. */
export const AT_BLOCK_BOUNDARY = 128;
export const AFTER_LAST_BLOCK = 64;

export interface BlockInflater {
  readonly kind: 'native' | 'pako';
  /** Starts a new raw deflate stream (window bits 15). */
  reset(): void;
  /**
   * One `inflate(Z_BLOCK)` call over input[inOff, inOff+inLen) into output[outOff, outOff+outLen).
   * The buffers are not kept. Results in the fields below.
   */
  step(input: Uint8Array, inOff: number, inLen: number, output: Uint8Array, outOff: number, outLen: number): void;
  /** zlib's return code of the last step. */
  readonly ret: number;
  /** Input bytes the last step used. */
  readonly used: number;
  /** Output bytes the last step made. */
  readonly made: number;
  /** zlib's data_type after the last step. */
  readonly dataType: number;
  /** zlib's message for the last error, if it gave one. */
  message(): string | undefined;
}

/** The addon's surface (native/inflate/inflate.c). */
interface InflateAddon {
  create(): object;
  reset(handle: object): void;
  message(handle: object): string | undefined;
  step(handle: object, input: Uint8Array, inOff: number, inLen: number, output: Uint8Array, outOff: number, outLen: number, result: Int32Array): void;
}

export const NATIVE_INFLATE_ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'inflate', 'build', 'Release', 'ocimount_inflate.node');

let addon: InflateAddon | null | undefined;

/** The addon, or null when it is not built, does not load, or OCIMOUNT_INFLATE=pako asks for pako. */
function loadAddon(): InflateAddon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (process.env.OCIMOUNT_INFLATE === 'pako') return addon;
  try {
    addon = require(NATIVE_INFLATE_ADDON) as InflateAddon;
  } catch {
    // Not built (an install without a compiler) or not loadable: pako gives the same results.
  }
  return addon;
}

/** Which implementation createBlockInflater() gives in this process. */
export function blockInflaterKind(): 'native' | 'pako' {
  return loadAddon() ? 'native' : 'pako';
}

export function createBlockInflater(kind: 'native' | 'pako' = blockInflaterKind()): BlockInflater {
  if (kind === 'native') {
    const a = loadAddon();
    if (!a) throw new Error(`the inflate addon is not available (${NATIVE_INFLATE_ADDON})`);
    return new NativeBlockInflater(a);
  }
  return new PakoBlockInflater();
}

class NativeBlockInflater implements BlockInflater {
  readonly kind = 'native';
  private readonly handle: object;
  private readonly result = new Int32Array(4);

  constructor(private readonly addon: InflateAddon) {
    this.handle = addon.create();
  }
  get ret(): number {
    return this.result[0];
  }
  get used(): number {
    return this.result[1];
  }
  get made(): number {
    return this.result[2];
  }
  get dataType(): number {
    return this.result[3];
  }
  reset(): void {
    this.addon.reset(this.handle);
  }
  step(input: Uint8Array, inOff: number, inLen: number, output: Uint8Array, outOff: number, outLen: number): void {
    this.addon.step(this.handle, input, inOff, inLen, output, outOff, outLen, this.result);
  }
  message(): string | undefined {
    return this.addon.message(this.handle);
  }
}

class PakoBlockInflater implements BlockInflater {
  readonly kind = 'pako';
  private readonly pako = pako();
  private readonly strm = new this.pako.ZStream();
  private inputRef: Uint8Array | undefined;
  private inputView: Uint8Array = new Uint8Array(0);
  ret = Z_OK;
  used = 0;
  made = 0;
  dataType = 0;

  constructor() {
    const rc = this.pako.zlibInflateInit2(this.strm, -15);
    if (rc !== this.pako.Z_OK) throw new Error(`gzip: inflateInit2 failed (${rc})`);
  }
  reset(): void {
    this.pako.zlibInflateReset(this.strm);
  }
  step(input: Uint8Array, inOff: number, inLen: number, output: Uint8Array, outOff: number, outLen: number): void {
    const strm = this.strm;
    // pako indexes its input byte by byte: a plain Uint8Array view keeps that access monomorphic
    // where callers pass Buffers.
    if (this.inputRef !== input) {
      this.inputRef = input;
      this.inputView = new Uint8Array(input.buffer, input.byteOffset, input.length);
    }
    strm.input = this.inputView;
    strm.next_in = inOff;
    strm.avail_in = inLen;
    strm.output = output as Uint8Array<ArrayBuffer>; // pako only writes into it
    strm.next_out = outOff;
    strm.avail_out = outLen;
    this.ret = this.pako.zlibInflate(strm, this.pako.Z_BLOCK);
    this.used = strm.next_in - inOff;
    this.made = strm.next_out - outOff;
    this.dataType = strm.data_type;
  }
  message(): string | undefined {
    return this.strm.msg || undefined;
  }
}
