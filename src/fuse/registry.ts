import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EnvironmentError } from '../errors';

/*
 * What `ocimount list` knows about the mounts: the kernel's table says where an ocimount
 * filesystem is mounted (fstype fuse.ocimount); each server leaves a small record beside its
 * log in the user's private folder (archive, image, layers, pid, log) and removes both when it
 * ends cleanly. Records of servers that are gone are pruned by `list` and `umount --all`.
 */

/** The user's own folder for logs and records: $TMPDIR/ocimount-<uid>, 0700, never someone else's. */
export function privateDir(): string {
  const uid = process.getuid?.() ?? 0;
  const dir = path.join(os.tmpdir(), `ocimount-${uid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new EnvironmentError(`${dir}: not a private folder of yours (made by someone else?); choose a log file with --log FILE`);
  }
  return dir;
}

export function mountKey(mountpoint: string): string {
  return path.resolve(mountpoint).replace(/[^A-Za-z0-9._-]/g, '_');
}

export interface MountRecord {
  mountpoint: string;
  archive: string;
  image: string;
  layers: string;
  pid: number;
  log?: string;
  /** The log is ocimount's own (default path): removed with the record. */
  ownLog?: boolean;
  started: string;
}

export function recordPath(mountpoint: string): string {
  return path.join(privateDir(), `${mountKey(mountpoint)}.json`);
}

export function writeRecord(rec: MountRecord): void {
  const file = recordPath(rec.mountpoint);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(rec, null, 2)}\n`, { mode: 0o600, flag: 'w' });
  fs.renameSync(tmp, file);
}

/** Removes a server's record and, when ocimount chose the log, the log. Never throws. */
export function removeRecord(rec: Pick<MountRecord, 'mountpoint' | 'log' | 'ownLog' | 'pid'>): void {
  try {
    const file = recordPath(rec.mountpoint);
    const onDisk = readRecord(file);
    // Another server may have taken over the mountpoint since: its record stays.
    if (!onDisk || onDisk.pid === rec.pid) fs.rmSync(file, { force: true });
    if (rec.ownLog && rec.log) fs.rmSync(rec.log, { force: true });
  } catch {
    /* on the way out */
  }
}

function readRecord(file: string): MountRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as MountRecord;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** ocimount mounts in the kernel's table (fstype fuse.ocimount), mountpoints as absolute paths. */
export function ocimountMounts(table = fs.readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const out: string[] = [];
  for (const line of table.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const fstype = right.split(' ')[0];
    if (fstype !== 'fuse.ocimount') continue;
    out.push(left.split(' ')[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  }
  return out;
}

export interface ListedMount {
  mountpoint: string;
  record: MountRecord;
}

/**
 * The user's active ocimount mounts: those whose server left a record in this user's private
 * folder and is still serving (its pid alive, the kernel still listing the mount). Mounts of
 * other users, or of servers started with another TMPDIR, are not this user's to list or end.
 * Records (and ocimount's own logs) of servers that have ended without cleaning up are removed
 * on the way; a log the user chose with --log is never touched.
 */
export function listMounts(): ListedMount[] {
  const mounted = new Set(ocimountMounts());
  const dir = privateDir();
  const out: ListedMount[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.endsWith('.json')) continue;
    const rec = readRecord(path.join(dir, name));
    if (!rec || typeof rec.pid !== 'number' || typeof rec.mountpoint !== 'string') continue;
    const up = mounted.has(path.resolve(rec.mountpoint));
    if (!alive(rec.pid)) {
      removeRecord(rec);
      continue;
    }
    if (up) out.push({ mountpoint: path.resolve(rec.mountpoint), record: rec });
  }
  return out;
}
