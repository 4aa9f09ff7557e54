/*
 * Names in an image are bytes: Linux has no encoding for file names, and a layer can hold a name
 * that is not UTF-8 (a Latin-1 `\xe9`, a cut multi-byte character). The engine keeps every name,
 * link target and xattr name as a "byte string": a JavaScript string with one char per byte
 * (0x00-0xFF, the latin1 encoding), so names compare, sort and round-trip byte for byte. Text for
 * people and for JSON is made only at the edges, by the functions here.
 */

/** A name as the image stores it: one char per byte. */
export type ByteString = string;

export function nameBytes(name: ByteString): Buffer {
  return Buffer.from(name, 'latin1');
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/**
 * A name typed by a person (a command-line argument, a glob): its UTF-8 bytes. A lone surrogate
 * U+DC80-U+DCFF stands for the byte 0x80-0xFF it escapes (the `--json` convention, below), so a
 * name printed by `--json` can be given back.
 */
export function nameFromText(text: string): ByteString {
  if (ASCII.test(text)) return text;
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xdc80 && cp <= 0xdcff) out += String.fromCharCode(cp - 0xdc00);
    else out += Buffer.from(ch, 'utf8').toString('latin1');
  }
  return out;
}

/** Length of the valid UTF-8 sequence starting at `i`, or 0 when the byte there starts none. */
function utf8SequenceAt(s: ByteString, i: number): number {
  const b0 = s.charCodeAt(i);
  if (b0 < 0x80) return 1;
  let need: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) [need, min] = [1, 0x80];
  else if (b0 >= 0xe0 && b0 <= 0xef) [need, min] = [2, 0x800];
  else if (b0 >= 0xf0 && b0 <= 0xf4) [need, min] = [3, 0x10000];
  else return 0;
  if (i + need >= s.length) return 0;
  let cp = b0 & (0x3f >> need);
  for (let k = 1; k <= need; k++) {
    const c = s.charCodeAt(i + k);
    if (!(c >= 0x80 && c <= 0xbf)) return 0;
    cp = (cp << 6) | (c & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return need + 1;
}

export function isUtf8(name: ByteString): boolean {
  if (ASCII.test(name)) return true;
  for (let i = 0; i < name.length; ) {
    const n = utf8SequenceAt(name, i);
    if (n === 0) return false;
    i += n;
  }
  return true;
}

/**
 * A name as a JavaScript (Unicode) string for JSON: its UTF-8 decoded, and each byte that is not
 * part of valid UTF-8 as the lone surrogate U+DC00+byte (Python's "surrogateescape", PEP 383):
 * `os.fsencode(name)` in Python, or `nameFromText` here, gives the exact bytes back.
 */
export function nameToText(name: ByteString): string {
  if (ASCII.test(name)) return name;
  let out = '';
  for (let i = 0; i < name.length; ) {
    const n = utf8SequenceAt(name, i);
    if (n === 0) {
      out += String.fromCharCode(0xdc00 + name.charCodeAt(i));
      i += 1;
    } else {
      out += Buffer.from(name.slice(i, i + n), 'latin1').toString('utf8');
      i += n;
    }
  }
  return out;
}

// eslint-disable-next-line no-control-regex
const MAYBE_UNPRINTABLE = /[\u0000-\u001f\u007f-\u00ff]/;

/**
 * A name for a terminal or a message: as it is (its UTF-8 decoded) when it is printable;
 * otherwise in double quotes with C escapes (`\n`, `\t`, `\\`, `\"`) and `\xNN` for control
 * bytes and bytes that are not UTF-8, much as `ls --quoting-style=c` does. Names are
 * attacker-chosen: printed raw, a newline forges a line of output and an escape sequence
 * reprograms the terminal.
 */
export function displayName(name: ByteString): string {
  if (!MAYBE_UNPRINTABLE.test(name)) return name;
  let plain = true;
  let out = '';
  for (let i = 0; i < name.length; ) {
    const c = name.charCodeAt(i);
    const n = c >= 0x80 ? utf8SequenceAt(name, i) : 1;
    if (c >= 0x80 && n > 0) {
      const ch = Buffer.from(name.slice(i, i + n), 'latin1').toString('utf8');
      const cp = ch.codePointAt(0)!;
      // C1 controls and the Unicode line separators move the cursor as surely as ASCII ones.
      if ((cp >= 0x80 && cp <= 0x9f) || cp === 0x2028 || cp === 0x2029) {
        plain = false;
        for (let k = 0; k < n; k++) out += hexEscape(name.charCodeAt(i + k));
      } else out += ch;
      i += n;
      continue;
    }
    i += 1;
    if (c === 0x22 || c === 0x5c) out += `\\${String.fromCharCode(c)}`;
    else if (c === 0x0a) (out += '\\n'), (plain = false);
    else if (c === 0x09) (out += '\\t'), (plain = false);
    else if (c < 0x20 || c >= 0x7f) (out += hexEscape(c)), (plain = false);
    else out += String.fromCharCode(c);
  }
  return plain ? nameToText(name) : `"${out}"`;
}

function hexEscape(byte: number): string {
  return `\\x${byte.toString(16).padStart(2, '0')}`;
}
