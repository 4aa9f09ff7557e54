/**
 * A name from an archive as it may be printed in a message: as it is when it is plain text,
 * JSON-quoted when it holds control characters. Names are attacker-chosen: printed raw, a
 * newline forges an extra line of output (a fake warning, a fake "mounted" line in a log) and
 * an escape sequence reprograms the user's terminal.
 */
export function printable(name: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(name) ? JSON.stringify(name) : name;
}

/** An error text made one line: control characters (newlines included) become spaces. */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');
}
