#!/usr/bin/env python3
"""Walks one or more directories with bytes paths and prints one JSON line per entry.

Used by the conformance matrix on the source tree, on a GNU tar extraction of a layer and on
the mount alike, so every side is read by the same code. Names, link targets and xattr names
and values are hex-encoded bytes; times are integer nanoseconds. Regular files up to 64 MiB are
hashed; bigger ones (the sparse file) are left to ranged reads.

usage: conformance-walk.py ROOT [ROOT...]   (entries of every ROOT, relative to that ROOT)
"""
import hashlib
import json
import os
import stat
import sys

HASH_LIMIT = 64 * 1024 * 1024


def kind(m):
    for test, c in ((stat.S_ISREG, 'f'), (stat.S_ISDIR, 'd'), (stat.S_ISLNK, 'l'), (stat.S_ISCHR, 'c'),
                    (stat.S_ISBLK, 'b'), (stat.S_ISFIFO, 'p'), (stat.S_ISSOCK, 's')):
        if test(m):
            return c
    return '?'


def entry(root, p):
    rel = os.path.relpath(p, root)
    out = {'p': rel.hex()}
    try:
        st = os.lstat(p)
    except OSError as e:
        out['err'] = 'lstat: ' + e.strerror
        return out
    t = kind(st.st_mode)
    out.update(t=t, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, size=st.st_size,
               mtime=str(st.st_mtime_ns), nlink=st.st_nlink, ino=st.st_ino,
               major=os.major(st.st_rdev), minor=os.minor(st.st_rdev))
    if t == 'l':
        try:
            out['link'] = os.readlink(p).hex()
        except OSError as e:
            out['err'] = 'readlink: ' + e.strerror
    if t == 'f' and st.st_size <= HASH_LIMIT:
        try:
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                for chunk in iter(lambda: f.read(1 << 20), b''):
                    h.update(chunk)
            out['sha'] = h.hexdigest()
        except OSError as e:
            out['err'] = 'read: ' + e.strerror
    xa = {}
    try:
        for name in os.listxattr(p, follow_symlinks=False):
            bname = os.fsencode(name)
            try:
                xa[bname.hex()] = os.getxattr(p, name, follow_symlinks=False).hex()
            except OSError as e:
                xa[bname.hex()] = 'error: ' + e.strerror
    except OSError as e:
        if t != 'l':
            out['xattrErr'] = 'listxattr: ' + e.strerror
    out['xattrs'] = xa
    return out


def main():
    for top in sys.argv[1:]:
        root = os.fsencode(top)
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for n in sorted(dirs + files):
                sys.stdout.write(json.dumps(entry(root, os.path.join(d, n)), sort_keys=True) + '\n')


main()
