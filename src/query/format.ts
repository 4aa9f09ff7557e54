import { S_IFMT } from '../tar/entry';

/** Shared formatting for the query commands' text output (JSON output carries raw numbers). */

const TYPE_CHARS: Record<number, string> = {
  0o040000: 'd',
  0o120000: 'l',
  0o020000: 'c',
  0o060000: 'b',
  0o010000: 'p',
  0o140000: 's',
  0o100000: '-',
};

/** `drwxr-xr-x`, with s/S/t/T for setuid, setgid and sticky, exactly as `ls -l` prints it. */
export function modeString(mode: number): string {
  const special = (bit: number, exec: boolean, lower: string, upper: string, plain: string) =>
    mode & bit ? (exec ? lower : upper) : exec ? plain : '-';
  const ux = (mode & 0o100) !== 0;
  const gx = (mode & 0o010) !== 0;
  const ox = (mode & 0o001) !== 0;
  return (
    (TYPE_CHARS[mode & S_IFMT] ?? '?') +
    (mode & 0o400 ? 'r' : '-') + (mode & 0o200 ? 'w' : '-') + special(0o4000, ux, 's', 'S', 'x') +
    (mode & 0o040 ? 'r' : '-') + (mode & 0o020 ? 'w' : '-') + special(0o2000, gx, 's', 'S', 'x') +
    (mode & 0o004 ? 'r' : '-') + (mode & 0o002 ? 'w' : '-') + special(0o1000, ox, 't', 'T', 'x')
  );
}

/** Permission bits as four octal digits (`0755`), the form chmod takes. */
export function octalMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * Modification time for listings: UTC, minute precision, one fixed width. Local time and ls's
 * "recent vs old" switch would make the same image list differently on different machines.
 */
export function listTime(seconds: number): string {
  return isoSeconds(seconds).slice(0, 16).replace('T', ' ');
}

/** `2018-12-28T16:50:51Z` (whole seconds, UTC); mtimes may be fractional or far out of range. */
export function isoSeconds(seconds: number): string {
  const d = new Date(Math.floor(seconds) * 1000);
  return Number.isNaN(d.getTime()) ? String(seconds) : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Binary units, one decimal below 10: `512 B`, `6.3 KiB`, `1.3 MiB`, `42 MiB`. */
export function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v).toString()} ${units[u]}`;
}

/** `sha256:0123456789ab`: enough of a digest to tell layers apart in a table. */
export function shortDigest(digest: string | undefined, hexChars = 12): string {
  if (!digest) return '-';
  const colon = digest.indexOf(':');
  return colon < 0 ? digest.slice(0, hexChars) : digest.slice(0, colon + 1 + hexChars);
}

/** Paths as users and find(1) write them: always from the image root, `/` for the root. */
export function displayPath(treePath: string): string {
  return `/${treePath}`;
}

/** Pads each column to its widest cell (left- or right-aligned), two spaces apart; the last is left as is. */
export function alignColumns(rows: string[][], rightAlign: boolean[] = []): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : rightAlign[i] ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}
