/*
 * pax extended header records (`"%d %s=%s\n"`) and what the engine takes from them. Keys and
 * values stay bytes: xattr values are binary, names are byte strings (latin1, one char per byte),
 * and GNU sparse 0.0 repeats its keys, so every occurrence is kept in order.
 */

export type PaxRecords = Array<[key: string, value: Buffer]>;

export function parsePax(buf: Buffer): PaxRecords {
  const records: PaxRecords = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) break; // NUL padding after the last record
    const space = buf.indexOf(0x20, pos);
    if (space < 0) throw new Error('invalid pax record (no length)');
    const len = parseInt(buf.toString('latin1', pos, space), 10);
    if (!Number.isInteger(len) || len <= space - pos || pos + len > buf.length || buf[pos + len - 1] !== 0x0a) {
      throw new Error(`invalid pax record at byte ${pos}`);
    }
    const eq = buf.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= pos + len) throw new Error(`invalid pax record at byte ${pos} (no '=')`);
    records.push([buf.toString('latin1', space + 1, eq), buf.subarray(eq + 1, pos + len - 1)]);
    pos += len;
  }
  return records;
}

/** The last value of `key` as a byte string; an empty value counts as absent, as in Go. */
export function paxValue(pax: PaxRecords, key: string): string | undefined {
  for (let i = pax.length - 1; i >= 0; i--) {
    if (pax[i][0] === key) return pax[i][1].length ? pax[i][1].toString('latin1') : undefined;
  }
  return undefined;
}

/** A signed time to the nanosecond; `nsec` is always 0..999,999,999. */
export interface ExactTime {
  sec: number;
  nsec: number;
}

/**
 * Go's parsePAXTime: `[-]SECONDS[.FRACTION]`, the fraction cut or padded to nine digits; a
 * negative time's fraction counts toward the past (`-1.5` is one and a half seconds before the
 * epoch). Returns undefined for anything else.
 */
export function parsePaxTime(text: string): ExactTime | undefined {
  const m = /^([+-]?)(\d+)(?:\.(\d*))?$/.exec(text);
  if (!m) return undefined;
  const negative = m[1] === '-';
  const whole = Number(m[2]);
  if (!Number.isSafeInteger(whole)) return undefined;
  const nsec = Number(((m[3] ?? '') + '000000000').slice(0, 9));
  if (!negative) return { sec: whole, nsec };
  if (nsec === 0) return { sec: whole === 0 ? 0 : -whole, nsec: 0 };
  return { sec: -whole - 1, nsec: 1_000_000_000 - nsec };
}

/** A whole non-negative decimal exact in a double (sizes, ids), else undefined. */
export function parsePaxCount(text: string): number | undefined {
  if (!/^\+?\d+$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * `%XX` escapes in xattr names: GNU tar escapes `=` and `%` (`%3D`, `%25`) in `SCHILY.xattr.`
 * keys, libarchive URL-encodes every byte outside printable ASCII and those two. An escape that
 * is not two hex digits is kept as it is.
 */
export function decodeXattrName(name: string): string {
  if (!name.includes('%')) return name;
  return name.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/**
 * The extended attributes pax records carry, in the three spellings writers use:
 * `SCHILY.xattr.NAME=VALUE` (GNU tar, Go, star; value raw bytes), `LIBARCHIVE.xattr.NAME=BASE64`
 * (bsdtar; value base64) and `RHT.security.NAME=VALUE` (star and Red Hat's GNU tar, SELinux
 * labels: the xattr `security.NAME`). Names are byte strings with escapes decoded.
 */
export function paxXattrs(pax: PaxRecords): Record<string, Buffer> | undefined {
  let out: Record<string, Buffer> | undefined;
  for (const [key, value] of pax) {
    let name: string | undefined;
    let bytes = value;
    if (key.startsWith('SCHILY.xattr.')) name = decodeXattrName(key.slice(13));
    else if (key.startsWith('RHT.security.')) name = `security.${key.slice(13)}`;
    else if (key.startsWith('LIBARCHIVE.xattr.')) {
      name = decodeXattrName(key.slice(17));
      bytes = Buffer.from(value.toString('latin1'), 'base64');
    }
    if (name) (out ??= {})[name] = Buffer.from(bytes);
  }
  return out;
}

/** The inverse of parsePaxTime, as Go's formatPAXTime writes it (`-1.5`, trailing zeros cut). */
export function formatPaxTime(t: ExactTime): string {
  if (t.nsec === 0) return String(t.sec);
  let { sec, nsec } = t;
  let sign = '';
  if (sec < 0) {
    sign = '-';
    sec = -(sec + 1);
    nsec = 1_000_000_000 - nsec;
  }
  return `${sign}${sec}.${String(nsec).padStart(9, '0')}`.replace(/0+$/, '');
}

/** One pax record, `"%d %s=%s\n"`, whose length counts its own digits. */
export function paxRecord(key: string, value: Buffer): Buffer {
  const body = 1 + key.length + 1 + value.length + 1; // ' ' key '=' value '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(body).length) len = body + String(len).length;
  return Buffer.concat([Buffer.from(`${len} ${key}=`, 'latin1'), value, Buffer.from('\n')]);
}

/** `=` and `%` cannot stand in a pax key's xattr name as they are; GNU tar writes them `%3D`, `%25`. */
export function encodeXattrName(name: string): string {
  return name.replace(/[%=]/g, (c) => (c === '%' ? '%25' : '%3D'));
}
