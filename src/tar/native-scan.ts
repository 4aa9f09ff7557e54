/**
 * The native header scan (native/tarscan): runs of plain tar members of an uncompressed layer
 * in a local file, indexed in C straight into the index builder's columns. scan.ts hands it
 * every stretch where no extension header is pending; it stops, without consuming it, at the
 * first header it does not take, and scan.ts reads that one as it reads every header when the
 * addon is missing. What it takes and why is in native/tarscan/tarscan.c;
 * test/native-scan.test.ts holds both scanners to the same index, warnings and errors.
 *
 * OCIMOUNT_TAR_SCAN=js turns it off (benchmarks, the differential test).
 */
import * as path from 'node:path';
import type { TarIndexBuilder } from './tar-index';

/** The addon's surface (native/tarscan/tarscan.c). */
interface TarScanAddon {
  scan(fd: number, base: number, size: number, columns: ArrayBufferView[], state: Float64Array): void;
  scanAsync(fd: number, base: number, size: number, columns: ArrayBufferView[], state: Float64Array): Promise<void>;
}

export const NATIVE_TAR_SCAN_ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'tarscan', 'build', 'Release', 'ocimount_tarscan.node');

let addon: TarScanAddon | null | undefined;

function load(): TarScanAddon | null {
  if (addon === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require(NATIVE_TAR_SCAN_ADDON) as TarScanAddon;
    } catch {
      addon = null;
    }
  }
  return addon;
}

/** Whether headers can be scanned natively in this process. */
export function nativeTarScanAvailable(): boolean {
  return process.env.OCIMOUNT_TAR_SCAN !== 'js' && load() !== null;
}

/** Where a tar stream sits in a file this process has open. */
export interface FileStretch {
  fd: number;
  /** Byte of the file where the stream starts. */
  start: number;
  /** The stream's length. */
  size: number;
}

// Rows and pool bytes made room for per call: a call costs a few microseconds of setup, a row
// about one, so a run of 4,096 rows makes the setup noise.
const ROWS_PER_CALL = 4096;
const PATH_BYTES_PER_CALL = ROWS_PER_CALL * 64;
const LINK_ROOM = 64 * 1024;
const OUT_OF_ROOM = 1;
/**
 * A run goes to libuv's thread pool (the layers of an image then scan side by side) when the one
 * before it took at least this many rows: the hop costs tens of microseconds, which a layer
 * whose every member has a pax header (a run of none) would pay per member. Others run here.
 */
const ASYNC_AFTER_ROWS = 64;

/** One scan's native state: the link targets' scratch space, reused across calls. */
export class NativeHeaderRun {
  private readonly linkPool = Buffer.allocUnsafe(LINK_ROOM);
  private readonly linkRows = new Uint32Array(3 * 1024);
  private readonly state = new Float64Array(7);
  /** Rows the last run took; the first run is taken to be long. */
  private lastRows = Infinity;

  private constructor(
    private readonly scanner: TarScanAddon,
    private readonly stretch: FileStretch,
  ) {}

  /** A runner for `stretch`, or undefined when the addon is off or missing. */
  static over(stretch: FileStretch): NativeHeaderRun | undefined {
    const scanner = nativeTarScanAvailable() ? load() : null;
    return scanner ? new NativeHeaderRun(scanner, stretch) : undefined;
  }

  /**
   * Indexes the plain members from `pos` on into `builder` and resolves to where it stopped: at
   * a header for the JavaScript scanner to read (or `pos` itself when the first one is such).
   * Nothing else may touch `builder` until then.
   */
  async run(builder: TarIndexBuilder, pos: number): Promise<number> {
    const { fd, start, size } = this.stretch;
    const state = this.state;
    const first = builder.rows;
    for (;;) {
      const c = builder.openColumns(ROWS_PER_CALL, PATH_BYTES_PER_CALL);
      state[0] = pos;
      state[1] = builder.rows;
      state[2] = c.poolUsed;
      state[3] = 0;
      state[4] = 0;
      state[6] = 0;
      const columns = [c.pool, c.pathStart, c.types, c.modes, c.uids, c.gids, c.sizes, c.mtimes, c.mtimeNsecs, c.dataOffsets, this.linkPool, this.linkRows];
      if (this.lastRows >= ASYNC_AFTER_ROWS) await this.scanner.scanAsync(fd, start, size, columns, state);
      else this.scanner.scan(fd, start, size, columns, state);
      builder.appended(state[1], state[2], state[6], this.links(state[3]));
      pos = state[0];
      if (state[5] !== OUT_OF_ROOM) {
        this.lastRows = builder.rows - first;
        return pos;
      }
    }
  }

  private *links(count: number): Generator<[number, string]> {
    const rows = this.linkRows;
    for (let i = 0; i < count; i++) yield [rows[3 * i], this.linkPool.toString('latin1', rows[3 * i + 1], rows[3 * i + 2])];
  }
}
