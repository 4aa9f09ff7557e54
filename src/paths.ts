const CLEAN_NEEDS_WORK = /^\/|\/$|\/\/|(^|\/)\.\.?(\/|$)/;

/**
 * Path names as the engine stores them: relative to the image root, no leading or trailing
 * slash, no `.` or empty components; the root itself is ''. A name that would climb above the
 * root (`..` past the top) is refused rather than clamped, so hostile entries never alias real
 * paths.
 */
export function normalizePath(raw: string): string | null {
  // Most names in real layers are already clean (`usr/bin/env`): no leading or trailing slash,
  // no empty, `.` or `..` components. Checking that is much cheaper than splitting.
  if (raw !== '' && !CLEAN_NEEDS_WORK.test(raw)) return raw;
  const out: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      // Resolved lexically, never through symlinks; climbing past the root is what makes it hostile.
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out.join('/');
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}
