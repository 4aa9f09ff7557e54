/*
 * ocimount's fork of the native part of fuse-native 2.2.6
 * (https://github.com/fuse-friends/fuse-native, fuse-native.c).
 *
 * fuse-native is Copyright (c) Mathias Buus (@mafintosh) and the fuse-native contributors,
 * released under the MIT License; the full notice is in LICENSE next to this file. These
 * changes are under the same license.
 *
 * Changed here, so that what the kernel can carry reaches ocimount unchanged:
 *  - Names are bytes. Every path and xattr name handed to JS is a latin1 string (one JS char
 *    per byte, napi_create_string_latin1), so a name that is not valid UTF-8 is not turned into
 *    U+FFFD; readdir names, the readlink target and listxattr names coming back are read with
 *    napi_get_value_string_latin1, so arbitrary bytes round-trip. (The mountpoint and the option
 *    string stay UTF-8: they are ordinary Node strings.)
 *  - Times are signed seconds plus nanoseconds. The stat array is 21 uint32 words (layout at
 *    populate_stat); each time is a two's-complement int64 of seconds (low, high) and a
 *    nanoseconds word, instead of unsigned milliseconds (a 1960 mtime showed as year 584 million).
 *  - getxattr and listxattr follow the kernel's size protocol here, where the buffer size is
 *    known: size 0 answers the exact length (no +128 slop), a shorter buffer is -ERANGE (it was
 *    an over-long reply the kernel turned into EIO), values over 64 KiB are -E2BIG. JS answers a
 *    Buffer (getxattr) or an array of names (listxattr) and never sees libfuse's buffer.
 *  - Results from JS are validated: a missing or short stat array, a non-number result or a
 *    non-string name becomes -EIO (or is skipped) instead of a thrown N-API error that left the
 *    FUSE thread waiting forever, or an assert() that aborted the process. Readdir names over
 *    1,024 bytes or holding a NUL byte are skipped.
 *  - An answer cache (`dirCacheBytes`, "The answer cache" below): listings JS answered are kept
 *    here with their stats and, for plain files, their byte spans in an open archive; getattr
 *    (LOOKUP), readdir and read of what they hold are answered on libfuse's thread (read as a
 *    pread of the native side's own duplicate of the archive descriptor, checked by an fstat
 *    against the stamp JS indexed the archive with: `fuse_native_span_file`) without a hop onto
 *    Node's main thread.
 *  - Kernel-cached listings (`cacheDirs`): the kernel channel is wrapped so that every OPENDIR
 *    reply carries FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE, which libfuse 2 can not set; and, where
 *    the kernel supports it, zero-message OPENDIR: the first OPENDIR is answered ENOSYS, and
 *    READDIRs get their libfuse handle from the wrapper (see there).
 *  - fuse_native_counters: what the answer cache answered, for benchmarks.
 *  - readdir also takes a packed answer (readdir_packed): one buffer of NUL-ended names and one
 *    Uint32Array of 24-word stats, so a huge listing costs JS two objects, not two per name;
 *    fuse_native_prime puts such a listing into the answer cache before it is asked for.
 *  - fuse_native_malloc_returnable / fuse_native_malloc_trim (glibc only): a fixed 4 MiB mmap
 *    threshold and malloc_trim, so that the large blocks a long-running server frees leave the
 *    process (see the functions).
 */

#define _GNU_SOURCE
#define FUSE_USE_VERSION 29

#include <uv.h>
#include <node_api.h>
#include <napi-macros.h>

#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <assert.h>
#include <errno.h>
#include <stdbool.h>

#include <fuse.h>
#include <fuse_opt.h>
#include <fuse_common.h>
#include <fuse_lowlevel.h>

#include <unistd.h>
#include <sys/wait.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static int IS_ARRAY_BUFFER_DETACH_SUPPORTED = 0;

napi_status napi_detach_arraybuffer(napi_env env, napi_value buf);

#define FUSE_NATIVE_CALLBACK(fn, blk)\
  napi_env env = ft->env;\
  napi_handle_scope scope;\
  napi_open_handle_scope(env, &scope);\
  napi_value ctx;\
  napi_get_reference_value(env, ft->ctx, &ctx);\
  napi_value callback;\
  napi_get_reference_value(env, fn, &callback);\
  blk\
  napi_close_handle_scope(env, scope);

#define FUSE_NATIVE_HANDLER(name, blk)\
  fuse_thread_locals_t *l = get_thread_locals();\
  l->op = op_##name;\
  l->op_fn = fuse_native_dispatch_##name;\
  blk\
  uv_async_send(&(l->async));\
  uv_sem_wait(&(l->sem));\
  return l->res;

#define FUSE_METHOD(name, callbackArgs, signalArgs, signature, callBlk, callbackBlk, signalBlk)\
  static void fuse_native_dispatch_##name (uv_async_t* handle, fuse_thread_locals_t* l, fuse_thread_t* ft) {\
    uint32_t op = op_##name;\
    FUSE_NATIVE_CALLBACK(ft->handlers[op], {\
      napi_value argv[callbackArgs + 2];\
      napi_get_reference_value(env, l->self, &(argv[0]));\
      napi_create_uint32(env, l->op, &(argv[1]));\
      callbackBlk\
      NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, callbackArgs + 2, argv, NULL)\
    })\
  }\
  NAPI_METHOD(fuse_native_signal_##name) {\
    NAPI_ARGV(signalArgs + 2)\
    NAPI_ARGV_BUFFER_CAST(fuse_thread_locals_t *, l, 0);\
    int32_t res;\
    if (napi_get_value_int32(env, argv[1], &res) != napi_ok) res = -EIO;\
    signalBlk\
    l->res = res;\
    uv_sem_post(&(l->sem));\
    return NULL;\
  }\
  static int fuse_native_##name signature {\
    FUSE_NATIVE_HANDLER(name, callBlk)\
  }

#define FUSE_METHOD_VOID(name, callbackArgs, signalArgs, signature, callBlk, callbackBlk)\
  FUSE_METHOD(name, callbackArgs, signalArgs, signature, callBlk, callbackBlk, {})

#define FUSE_UINT64_TO_INTS_ARGV(n, pos)\
  uint32_t low##pos = n % 4294967296;\
  uint32_t high##pos = (n - low##pos) / 4294967296;\
  napi_create_uint32(env, low##pos, &(argv[pos]));\
  napi_create_uint32(env, high##pos, &(argv[pos + 1]));


// Opcodes

static const uint32_t op_init = 0;
static const uint32_t op_error = 1;
static const uint32_t op_access = 2;
static const uint32_t op_statfs = 3;
static const uint32_t op_fgetattr = 4;
static const uint32_t op_getattr = 5;
static const uint32_t op_flush = 6;
static const uint32_t op_fsync = 7;
static const uint32_t op_fsyncdir = 8;
static const uint32_t op_readdir = 9;
static const uint32_t op_truncate = 10;
static const uint32_t op_ftruncate = 11;
static const uint32_t op_utimens = 12;
static const uint32_t op_readlink = 13;
static const uint32_t op_chown = 14;
static const uint32_t op_chmod = 15;
static const uint32_t op_mknod = 16;
static const uint32_t op_setxattr = 17;
static const uint32_t op_getxattr = 18;
static const uint32_t op_listxattr = 19;
static const uint32_t op_removexattr = 20;
static const uint32_t op_open = 21;
static const uint32_t op_opendir = 22;
static const uint32_t op_read = 23;
static const uint32_t op_write = 24;
static const uint32_t op_release = 25;
static const uint32_t op_releasedir = 26;
static const uint32_t op_create = 27;
static const uint32_t op_unlink = 28;
static const uint32_t op_rename = 29;
static const uint32_t op_link = 30;
static const uint32_t op_symlink = 31;
static const uint32_t op_mkdir = 32;
static const uint32_t op_rmdir = 33;

// Data structures

struct dircache_s;

typedef struct {
  napi_env env;
  pthread_t thread;
  pthread_attr_t attr;
  napi_ref ctx;
  napi_ref malloc;

  // Operation handlers
  napi_ref handlers[35];

  struct fuse *fuse;
  struct fuse_chan *ch;
  // The channel the session reads from: `ch`, or the wrapper that sets FOPEN_CACHE_DIR.
  struct fuse_chan *session_ch;
  char mnt[1024];
  char mntopts[1024];
  int mounted;

  uv_async_t async;
  uv_mutex_t mut;
  uv_sem_t sem;

  // The answer cache (below), or NULL when the mount has no budget for it.
  struct dircache_s *dc;

  // Zero-message OPENDIR (see there): OPENDIRs the kernel sent, directory handles made for
  // READDIRs that came without one, and handles reused. Here, not in the channel wrapper,
  // because counters() may be read after the wrapper is gone.
  uint64_t opendir_counters[3];
} fuse_thread_t;

typedef struct {
  napi_ref self;

  // Opcode
  uint32_t op;
  void *op_fn;

  // Payloads
  const char *path;
  const char *dest;
  char *linkname;
  struct fuse_file_info *info;
  const void *buf;
  off_t offset;
  size_t len;
  mode_t mode;
  dev_t dev;
  uid_t uid;
  gid_t gid;
  size_t atime;
  size_t mtime;
  int32_t res;

  // Extended attributes
  const char *name;
  const char *value;
  char *list;
  size_t size;
  uint32_t position;
  int flags;

  // Stat + Statfs
  struct stat *stat;
  struct statvfs *statvfs;

  // Readdir
  fuse_fill_dir_t readdir_filler;

  // Internal bookkeeping
  fuse_thread_t *fuse;
  uv_sem_t sem;
  uv_async_t async;

} fuse_thread_locals_t;

static pthread_key_t thread_locals_key;
static fuse_thread_locals_t* get_thread_locals();

// Helpers
// TODO: Extract into a separate file.

static uint64_t uint32s_to_uint64 (uint32_t **ints) {
  uint64_t low = *((*ints)++);
  uint64_t high = *((*ints)++);
  return high * 4294967296 + low;
}

// A signed 64-bit value stored as two uint32 words of its two's complement, low word first.
static int64_t uint32s_to_int64 (uint32_t **ints) {
  uint64_t low = *((*ints)++);
  uint64_t high = *((*ints)++);
  return (int64_t) ((high << 32) | low);
}

// Seconds (signed, two words) then nanoseconds (one word, clamped to 999999999).
static void uint32s_to_timespec (struct timespec* ts, uint32_t** ints) {
  ts->tv_sec = (time_t) uint32s_to_int64(ints);
  uint32_t nsec = *((*ints)++);
  ts->tv_nsec = nsec < 1000000000 ? nsec : 999999999;
}

static uint64_t timespec_to_uint64 (const struct timespec* ts) {
  uint64_t ms = (ts->tv_sec * 1000) + (ts->tv_nsec / 1000000);
  return ms;
}

// The stat array JS answers getattr, fgetattr and readdir with: 21 uint32 words,
//   0 mode, 1 uid, 2 gid, 3-4 size (low, high), 5 dev, 6 nlink, 7 ino, 8 rdev, 9 blksize,
//   10-11 blocks (low, high), 12-13 atime seconds (int64, low, high), 14 atime nanoseconds,
//   15-16 mtime seconds, 17 mtime nanoseconds, 18-19 ctime seconds, 20 ctime nanoseconds.
#define STAT_ARRAY_WORDS 21
#define STATFS_ARRAY_WORDS 11
// FUSE's longest name; the kernel refuses longer ones.
#define READDIR_NAME_MAX 1024
// Linux's limits: XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX.
#define XATTR_NAME_BYTES_MAX 255
#define XATTR_VALUE_BYTES_MAX 65536
#define XATTR_LIST_BYTES_MAX 65536

// The uint32 words of a typed array or Buffer from JS, or NULL when it is not one or holds
// fewer than `words` words.
static uint32_t * uint32_words (napi_env env, napi_value val, size_t words) {
  void *data = NULL;
  size_t len = 0;
  if (napi_get_buffer_info(env, val, &data, &len) != napi_ok || data == NULL) return NULL;
  if (len < words * sizeof(uint32_t)) return NULL;
  return (uint32_t *) data;
}

static void populate_stat (uint32_t *ints, struct stat* stat) {
  memset(stat, 0, sizeof(struct stat));
  stat->st_mode = *ints++;
  stat->st_uid = *ints++;
  stat->st_gid = *ints++;
  stat->st_size = uint32s_to_uint64(&ints);
  stat->st_dev = *ints++;
  stat->st_nlink = *ints++;
  stat->st_ino = *ints++;
  stat->st_rdev = *ints++;
  stat->st_blksize = *ints++;
  stat->st_blocks = uint32s_to_uint64(&ints);
#ifdef __APPLE__
  uint32s_to_timespec(&stat->st_atimespec, &ints);
  uint32s_to_timespec(&stat->st_mtimespec, &ints);
  uint32s_to_timespec(&stat->st_ctimespec, &ints);
#else
  uint32s_to_timespec(&stat->st_atim, &ints);
  uint32s_to_timespec(&stat->st_mtim, &ints);
  uint32s_to_timespec(&stat->st_ctim, &ints);
#endif
}

// Reads a stat array answer into `stat`; -EIO when JS did not give one.
static int32_t read_stat_answer (napi_env env, napi_value val, struct stat *stat) {
  uint32_t *ints = uint32_words(env, val, STAT_ARRAY_WORDS);
  if (ints == NULL) return -EIO;
  populate_stat(ints, stat);
  return 0;
}

// Copies a latin1 (byte) string from JS into `dst` (room for `max` bytes plus a NUL). Returns
// its length in bytes, or -1 when it is not a string, is empty, is longer than `max` or holds a
// NUL byte (a C string cannot carry it).
static ssize_t read_byte_string (napi_env env, napi_value val, char *dst, size_t max) {
  size_t len = 0;
  if (napi_get_value_string_latin1(env, val, NULL, 0, &len) != napi_ok) return -1;
  if (len == 0 || len > max) return -1;
  if (napi_get_value_string_latin1(env, val, dst, max + 1, &len) != napi_ok) return -1;
  if (memchr(dst, 0, len) != NULL) return -1;
  return (ssize_t) len;
}

// getxattr's answer: the value's length when size is 0, -ERANGE when it does not fit in size
// bytes, else the value copied into libfuse's buffer and its length.
static int32_t write_xattr_value (napi_env env, napi_value val, char *dst, size_t size) {
  void *data = NULL;
  size_t len = 0;
  if (napi_get_buffer_info(env, val, &data, &len) != napi_ok) return -EIO;
  if (len > XATTR_VALUE_BYTES_MAX) return -E2BIG;
  if (size == 0) return (int32_t) len;
  if (len > size) return -ERANGE;
  if (len > 0) memcpy(dst, data, len);
  return (int32_t) len;
}

// listxattr's answer from an array of names (byte strings): "name\0name\0...", with the same
// size protocol as getxattr. Names that are empty, longer than 255 bytes or hold a NUL are left
// out.
static int32_t write_xattr_names (napi_env env, napi_value names, char *list, size_t size) {
  uint32_t count = 0;
  if (napi_get_array_length(env, names, &count) != napi_ok) return -EIO;
  char name[XATTR_NAME_BYTES_MAX + 1];
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value raw;
    if (napi_get_element(env, names, i, &raw) != napi_ok) return -EIO;
    ssize_t len = read_byte_string(env, raw, name, XATTR_NAME_BYTES_MAX);
    if (len < 0) continue;
    if (size > 0 && total + len + 1 <= size) memcpy(list + total, name, len + 1);
    total += len + 1;
  }
  if (total > XATTR_LIST_BYTES_MAX) return -E2BIG;
  if (size == 0) return (int32_t) total;
  if (total > size) return -ERANGE;
  return (int32_t) total;
}

// Detaches the ArrayBuffer over libfuse's memory that JS hands back with its answer, so JS can
// not touch that memory once libfuse has it back. Not an ArrayBuffer: nothing to detach.
static void detach_answer_buffer (napi_env env, napi_value val) {
  bool is_array_buffer = false;
  if (IS_ARRAY_BUFFER_DETACH_SUPPORTED != 1) return;
  if (napi_is_arraybuffer(env, val, &is_array_buffer) != napi_ok || !is_array_buffer) return;
  napi_detach_arraybuffer(env, val);
}

static void populate_statvfs (uint32_t *ints, struct statvfs* statvfs) {
  statvfs->f_bsize = *ints++;
  statvfs->f_frsize = *ints++;
  statvfs->f_blocks = *ints++;
  statvfs->f_bfree = *ints++;
  statvfs->f_bavail = *ints++;
  statvfs->f_files = *ints++;
  statvfs->f_ffree = *ints++;
  statvfs->f_favail = *ints++;
  statvfs->f_fsid = *ints++;
  statvfs->f_flag = *ints++;
  statvfs->f_namemax = *ints++;
}

// ---------------------------------------------------------------------------------------------
// The answer cache: directory listings JS answered, kept here so that the requests that follow
// a readdir (the LOOKUP of each name, the READ of each small file, a second READDIR) are
// answered on libfuse's own thread, without a hop onto Node's main thread.
//
// A listing is cached when JS answers readdir and the mount was given a budget in bytes
// (`dirCacheBytes`); the oldest listings go first when the budget is exceeded. A stat array of
// 24 words or more carries a byte span: words 21-22 the offset of the file's bytes in an open
// file (low, high), word 23 the id `fuse_native_span_file` gave that file (0: no span).
//
// Span files: JS registers each archive file once with the stamp it had when it was indexed
// (device, inode, size, mtime, ctime, link count). The native side keeps its own duplicate of
// the descriptor (JS may close its own, at unmount or on error, and the number be reused by
// another open: ours stays this file until the FUSE loop is over) and refuses the file at once
// if it is no longer what was indexed. A span file's reads are `pread`s of that duplicate;
// after each, one fstat compares the file with the indexed stamp exactly as JS does
// (FileSource.verifyUnchanged: a change of ctime counts unless the link count moved with it);
// any other difference marks the file stale for good and the read goes to JS, which says why
// and answers EIO.
//
// getattr (LOOKUP) and fgetattr of a cached name copy its stat; readdir of a cached directory
// fills from the cache. Everything else, and every miss, goes to JS as before.
//
// Threads: listings and span files are added on the JS thread and read on libfuse's threads,
// all under `lock` (readers copy what they need out and let go before any I/O); nothing is
// freed while libfuse's threads run, except a listing evicted under the write lock, which no
// reader holds past its read lock. The duplicates are closed and the listings freed only
// once fuse_loop_mt has joined every worker (dc_teardown).

#define DC_BUCKETS 65536
#define DC_FDS 64
#define SPAN_STAT_WORDS 24

typedef struct {
  uint32_t name_off;
  uint32_t name_len;
  int32_t fd_slot; // -1: no span
  uint64_t span_off;
  struct stat st;
} dc_entry_t;

typedef struct dc_dir {
  struct dc_dir *hnext;
  struct dc_dir *older, *newer;
  uint64_t hash;
  size_t bytes;
  uint32_t path_len;
  uint32_t count;
  char *path;
  dc_entry_t *entries; // in readdir order
  uint32_t *sorted;    // entry indexes in name order (memcmp, then length)
  char *names;         // NUL-terminated names
} dc_dir_t;

// A span file: our own duplicate of its descriptor and the stamp it was indexed with.
typedef struct {
  int fd;
  int stale;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtim;
  struct timespec ctim;
  nlink_t nlink;
} dc_fd_t;

typedef struct dircache_s {
  pthread_rwlock_t lock;
  size_t budget;
  size_t bytes;
  dc_dir_t *buckets[DC_BUCKETS];
  dc_dir_t *oldest, *newest;
  dc_fd_t fds[DC_FDS];
  int nfds;
  // Counters: answered here / sent to JS.
  uint64_t getattr_hits, readdir_hits, read_hits, read_bytes, read_fallbacks;
} dircache_t;

static uint64_t dc_hash (const char *s, size_t len) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
  return h;
}

static dc_dir_t * dc_find_dir (dircache_t *dc, const char *path, size_t len) {
  uint64_t h = dc_hash(path, len);
  for (dc_dir_t *d = dc->buckets[h % DC_BUCKETS]; d != NULL; d = d->hnext) {
    if (d->hash == h && d->path_len == len && memcmp(d->path, path, len) == 0) return d;
  }
  return NULL;
}

static int dc_name_cmp (const char *a, size_t alen, const char *b, size_t blen) {
  int c = memcmp(a, b, alen < blen ? alen : blen);
  if (c != 0) return c;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static dc_entry_t * dc_find_entry (dc_dir_t *d, const char *name, size_t len) {
  uint32_t lo = 0, hi = d->count;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    dc_entry_t *e = &d->entries[d->sorted[mid]];
    int c = dc_name_cmp(d->names + e->name_off, e->name_len, name, len);
    if (c == 0) return e;
    if (c < 0) lo = mid + 1; else hi = mid;
  }
  return NULL;
}

// The cached entry at `path` (its parent's listing is cached), or NULL. Caller holds the lock.
static dc_entry_t * dc_lookup (dircache_t *dc, const char *path) {
  size_t len = strlen(path);
  const char *slash = memrchr(path, '/', len);
  if (slash == NULL || slash == path + len - 1) return NULL;
  size_t plen = slash == path ? 1 : (size_t) (slash - path);
  dc_dir_t *d = dc_find_dir(dc, path, plen);
  if (d == NULL) return NULL;
  return dc_find_entry(d, slash + 1, len - (slash + 1 - path));
}

static void dc_unlink (dircache_t *dc, dc_dir_t *d) {
  dc_dir_t **p = &dc->buckets[d->hash % DC_BUCKETS];
  while (*p != d) p = &(*p)->hnext;
  *p = d->hnext;
  if (d->older) d->older->newer = d->newer; else dc->oldest = d->newer;
  if (d->newer) d->newer->older = d->older; else dc->newest = d->older;
  dc->bytes -= d->bytes;
  free(d->entries);
  free(d->sorted);
  free(d->names);
  free(d);
}

static __thread dc_dir_t *dc_sort_dir;
static int dc_sort_cmp (const void *a, const void *b) {
  dc_entry_t *x = &dc_sort_dir->entries[*(const uint32_t *) a];
  dc_entry_t *y = &dc_sort_dir->entries[*(const uint32_t *) b];
  return dc_name_cmp(dc_sort_dir->names + x->name_off, x->name_len, dc_sort_dir->names + y->name_off, y->name_len);
}

// The slot of descriptor `fd` (fstat on first sight), or -1.
// How `now` compares with a span file's indexed stamp, as FileSource.verifyUnchanged decides:
// DC_SAME; DC_LINKS when only the link count moved, and ctime with it (the archive removed,
// renamed over or hard-linked: the bytes behind the descriptor are the same); else DC_CHANGED.
#define DC_SAME 0
#define DC_LINKS 1
#define DC_CHANGED 2
static int dc_stamp_cmp (const dc_fd_t *f, const struct stat *now) {
  if (now->st_dev != f->dev || now->st_ino != f->ino || now->st_size != f->size) return DC_CHANGED;
  if (now->st_mtim.tv_sec != f->mtim.tv_sec || now->st_mtim.tv_nsec != f->mtim.tv_nsec) return DC_CHANGED;
  if (now->st_ctim.tv_sec == f->ctim.tv_sec && now->st_ctim.tv_nsec == f->ctim.tv_nsec) return DC_SAME;
  return now->st_nlink != f->nlink ? DC_LINKS : DC_CHANGED;
}

// The slot of span file `id` (1-based, from fuse_native_span_file), or -1. JS thread only (the
// only thread that adds span files), so no lock is needed to read nfds.
static int dc_fd_slot (dircache_t *dc, uint32_t id) {
  if (id == 0 || id > (uint32_t) dc->nfds) return -1;
  return (int) id - 1;
}

// A listing under construction (the main thread builds it while it fills libfuse's buffer).
typedef struct {
  dc_dir_t *d;
  size_t names_cap, names_len;
} dc_builder_t;

// `names_bytes`: the names' total size with their NULs when known (packed listings), else 0 for
// an estimate that grows as needed; the listing is charged for what it allocates.
static dc_dir_t * dc_begin (dircache_t *dc, const char *path, uint32_t count, size_t names_bytes, dc_builder_t *b) {
  if (dc == NULL || dc->budget == 0) return NULL;
  // A listing that can not fit the whole budget is not even built (it would be discarded).
  if ((sizeof(dc_entry_t) + sizeof(uint32_t)) * (size_t) count > dc->budget) return NULL;
  size_t plen = strlen(path);
  dc_dir_t *d = calloc(1, sizeof(dc_dir_t) + plen + 1);
  if (d == NULL) return NULL;
  d->path = (char *) (d + 1);
  memcpy(d->path, path, plen + 1);
  d->path_len = plen;
  d->hash = dc_hash(path, plen);
  d->entries = malloc(sizeof(dc_entry_t) * (count ? count : 1));
  d->sorted = malloc(sizeof(uint32_t) * (count ? count : 1));
  b->names_cap = names_bytes > 0 ? names_bytes : 32 * (size_t) count + 64;
  b->names_len = 0;
  d->names = malloc(b->names_cap);
  if (!d->entries || !d->sorted || !d->names) {
    free(d->entries); free(d->sorted); free(d->names); free(d);
    return NULL;
  }
  b->d = d;
  return d;
}

// Adds one name; a name with no stat makes the listing uncacheable (returns -1).
static int dc_add (dircache_t *dc, dc_builder_t *b, const char *name, size_t len, const struct stat *st, uint32_t *ints, size_t words) {
  dc_dir_t *d = b->d;
  if (st == NULL) return -1;
  if (b->names_len + len + 1 > b->names_cap) {
    size_t cap = (b->names_cap + len + 1) * 2;
    char *n = realloc(d->names, cap);
    if (n == NULL) return -1;
    d->names = n;
    b->names_cap = cap;
  }
  dc_entry_t *e = &d->entries[d->count];
  e->name_off = b->names_len;
  e->name_len = len;
  memcpy(d->names + b->names_len, name, len + 1);
  b->names_len += len + 1;
  e->st = *st;
  e->fd_slot = -1;
  e->span_off = 0;
  if (words >= SPAN_STAT_WORDS && ints[23] != 0 && S_ISREG(st->st_mode)) {
    e->span_off = (uint64_t) ints[21] + (uint64_t) ints[22] * 4294967296ULL;
    e->fd_slot = dc_fd_slot(dc, ints[23]);
  }
  d->sorted[d->count] = d->count;
  d->count++;
  return 0;
}

static void dc_discard (dc_builder_t *b) {
  if (b->d == NULL) return;
  free(b->d->entries); free(b->d->sorted); free(b->d->names); free(b->d);
  b->d = NULL;
}

static void dc_commit (dircache_t *dc, dc_builder_t *b) {
  dc_dir_t *d = b->d;
  b->d = NULL;
  // Tree listings come in name order already (after `.` and `..`): check before sorting, a
  // linear pass instead of qsort's n log n comparisons for every primed directory.
  int in_order = 1;
  for (uint32_t i = 1; i < d->count && in_order; i++) {
    dc_entry_t *x = &d->entries[i - 1], *y = &d->entries[i];
    if (dc_name_cmp(d->names + x->name_off, x->name_len, d->names + y->name_off, y->name_len) > 0) in_order = 0;
  }
  if (!in_order) {
    dc_sort_dir = d;
    qsort(d->sorted, d->count, sizeof(uint32_t), dc_sort_cmp);
  }
  d->bytes = sizeof(dc_dir_t) + d->path_len + 1 + (sizeof(dc_entry_t) + sizeof(uint32_t)) * d->count + b->names_cap;
  if (d->bytes > dc->budget) {
    b->d = d;
    dc_discard(b);
    return;
  }
  pthread_rwlock_wrlock(&dc->lock);
  dc_dir_t *old = dc_find_dir(dc, d->path, d->path_len);
  if (old != NULL) dc_unlink(dc, old);
  while (dc->bytes + d->bytes > dc->budget && dc->oldest != NULL) dc_unlink(dc, dc->oldest);
  uint64_t slot = d->hash % DC_BUCKETS;
  d->hnext = dc->buckets[slot];
  dc->buckets[slot] = d;
  d->older = dc->newest;
  d->newer = NULL;
  if (dc->newest) dc->newest->newer = d; else dc->oldest = d;
  dc->newest = d;
  dc->bytes += d->bytes;
  pthread_rwlock_unlock(&dc->lock);
}

static dircache_t * dc_of_context () {
  fuse_thread_t *ft = (fuse_thread_t *) fuse_get_context()->private_data;
  return ft->dc != NULL && ft->dc->budget > 0 ? ft->dc : NULL;
}

// Once no libfuse thread is left (fuse_loop_mt has joined them all): every listing freed and
// every duplicate descriptor closed. The struct itself stays (counters() may still read it).
static void dc_teardown (dircache_t *dc) {
  if (dc == NULL) return;
  pthread_rwlock_wrlock(&dc->lock);
  while (dc->oldest != NULL) dc_unlink(dc, dc->oldest);
  for (int i = 0; i < dc->nfds; i++) {
    if (dc->fds[i].fd >= 0) close(dc->fds[i].fd);
    dc->fds[i].fd = -1;
    dc->fds[i].stale = 1;
  }
  dc->budget = 0;
  pthread_rwlock_unlock(&dc->lock);
}

// Methods

FUSE_METHOD(statfs, 1, 1, (const char * path, struct statvfs *statvfs), {
  l->path = path;
  l->statvfs = statvfs;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
}, {
  if (res == 0) {
    uint32_t *ints = uint32_words(env, argv[2], STATFS_ARRAY_WORDS);
    if (ints == NULL) res = -EIO;
    else populate_statvfs(ints, l->statvfs);
  }
})

FUSE_METHOD(getattr, 1, 1, (const char *path, struct stat *stat), {
  l->path = path;
  l->stat = stat;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
}, {
  if (res == 0) res = read_stat_answer(env, argv[2], l->stat);
})

FUSE_METHOD(fgetattr, 2, 1, (const char *path, struct stat *stat, struct fuse_file_info *info), {
  l->path = path;
  l->stat = stat;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
}, {
  if (res == 0) res = read_stat_answer(env, argv[2], l->stat);
})

FUSE_METHOD_VOID(access, 2, 0, (const char *path, int mode), {
  l->path = path;
  l->mode = mode;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
})

FUSE_METHOD(open, 2, 1, (const char *path, struct fuse_file_info *info), {
  l->path = path;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->flags, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
}, {
  int32_t fd = 0;
  if (res == 0 && napi_get_value_int32(env, argv[2], &fd) == napi_ok && fd != 0) {
    l->info->fh = fd;
  }
})

FUSE_METHOD(opendir, 3, 1, (const char *path, struct fuse_file_info *info), {
  l->path = path;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
    napi_create_uint32(env, l->info->flags, &(argv[4]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
    napi_create_uint32(env, 0, &(argv[4]));
  }
}, {
  int32_t fd = 0;
  if (res == 0 && napi_get_value_int32(env, argv[2], &fd) == napi_ok && fd != 0) {
    l->info->fh = fd;
  }
})

FUSE_METHOD(create, 2, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {
  l->path = path;
  l->mode = mode;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
}, {
  int32_t fd = 0;
  if (res == 0 && napi_get_value_int32(env, argv[2], &fd) == napi_ok && fd != 0) {
    l->info->fh = fd;
  }
})

FUSE_METHOD_VOID(utimens, 5, 0, (const char *path, const struct timespec tv[2]), {
  l->path = path;
  l->atime = timespec_to_uint64(&tv[0]);
  l->mtime = timespec_to_uint64(&tv[1]);
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  FUSE_UINT64_TO_INTS_ARGV(l->atime, 3)
  FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)
})

FUSE_METHOD_VOID(release, 2, 0, (const char *path, struct fuse_file_info *info), {
  l->path = path;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
})

FUSE_METHOD_VOID(releasedir, 2, 0, (const char *path, struct fuse_file_info *info), {
  l->path = path;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
})

FUSE_METHOD(read, 6, 2, (const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *info), {
  l->path = path;
  l->buf = buf;
  l->len = len;
  l->offset = offset;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->info->fh, &(argv[3]));
  napi_create_external_buffer(env, l->len, (char *) l->buf, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, l->len, &(argv[5]));
  FUSE_UINT64_TO_INTS_ARGV(l->offset, 6)
}, {
  detach_answer_buffer(env, argv[3]);
})

FUSE_METHOD(write, 6, 2, (const char *path, const char *buf, size_t len, off_t offset, struct fuse_file_info *info), {
  l->path = path;
  l->buf = buf;
  l->len = len;
  l->offset = offset;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->info->fh, &(argv[3]));
  napi_create_external_buffer(env, l->len, (char *) l->buf, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, l->len, &(argv[5]));
  FUSE_UINT64_TO_INTS_ARGV(l->offset, 6)
}, {
  detach_answer_buffer(env, argv[3]);
})

// The packed form of a listing: `names` a Uint8Array of the names, each ended by a NUL byte,
// and `stats` a Uint32Array of SPAN_STAT_WORDS words per name (a stat array with its span, span
// id 0 for none). A listing of a million names is then two objects instead of two million, and
// nothing here asks N-API per name. Sets *names and *words and returns the count of names, or
// -1 when the sizes do not agree.
static ssize_t packed_listing (napi_env env, napi_value raw_names, napi_value raw_stats, const char **names, size_t *names_bytes, uint32_t **words) {
  napi_typedarray_type type;
  size_t names_len = 0, words_len = 0, offset = 0;
  void *names_data = NULL, *words_data = NULL;
  napi_value ab;
  bool is_typed = false;
  if (napi_is_typedarray(env, raw_names, &is_typed) != napi_ok || !is_typed) return -1;
  if (napi_get_typedarray_info(env, raw_names, &type, &names_len, &names_data, &ab, &offset) != napi_ok || type != napi_uint8_array) return -1;
  if (napi_is_typedarray(env, raw_stats, &is_typed) != napi_ok || !is_typed) return -1;
  if (napi_get_typedarray_info(env, raw_stats, &type, &words_len, &words_data, &ab, &offset) != napi_ok || type != napi_uint32_array) return -1;
  *names = (const char *) names_data;
  *names_bytes = names_len;
  *words = (uint32_t *) words_data;
  size_t count = 0;
  for (size_t i = 0; i < names_len; i++) if ((*names)[i] == 0) count++;
  if ((names_len > 0 && (*names)[names_len - 1] != 0) || words_len != count * SPAN_STAT_WORDS) return -1;
  return (ssize_t) count;
}

// Puts a packed listing into the answer cache as the listing of `path` (JS thread only) and, when
// `filler` is given, into libfuse's readdir buffer. A name over READDIR_NAME_MAX bytes is skipped,
// as in the array form.
static void packed_fill (dircache_t *dc, const char *path, const char *names, size_t names_len, uint32_t *words, size_t count, fuse_fill_dir_t filler, void *buf) {
  dc_builder_t b;
  memset(&b, 0, sizeof b);
  dc_begin(dc, path, (uint32_t) count, names_len, &b);
  bool full = filler == NULL;
  const char *name = names;
  for (size_t i = 0; i < count; i++) {
    size_t len = strlen(name);
    uint32_t *ints = words + i * SPAN_STAT_WORDS;
    if (len <= READDIR_NAME_MAX) {
      struct stat st;
      populate_stat(ints, &st);
      if (b.d != NULL && dc_add(dc, &b, name, len, &st, ints, SPAN_STAT_WORDS) != 0) dc_discard(&b);
      if (!full && filler(buf, name, &st, 0) == 1) full = true;
    }
    name += len + 1;
  }
  if (b.d != NULL) dc_commit(dc, &b);
}

// readdir answered in the packed form; a malformed answer is EIO.
static int readdir_packed (napi_env env, fuse_thread_locals_t *l, napi_value raw_names, napi_value raw_stats) {
  const char *names;
  uint32_t *words;
  size_t names_bytes = 0;
  ssize_t count = packed_listing(env, raw_names, raw_stats, &names, &names_bytes, &words);
  if (count < 0) return -EIO;
  packed_fill(l->fuse->dc, l->path, names, names_bytes, words, (size_t) count, l->readdir_filler, (void *) l->buf);
  return 0;
}

FUSE_METHOD(readdir, 1, 2, (const char *path, void *buf, fuse_fill_dir_t filler, off_t offset, struct fuse_file_info *info), {
  l->buf = buf;
  l->path = path;
  l->offset = offset;
  l->info = info;
  l->readdir_filler = filler;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
}, {
  // Names are byte strings (latin1); a stat array per name, when there is one per name, is
  // passed to libfuse as it is (the same layout as getattr's answer). Or the packed form: one
  // buffer of names and one Uint32Array of stats (readdir_packed).
  bool packed = false;
  if (res == 0 && napi_is_typedarray(env, argv[2], &packed) == napi_ok && packed) {
    res = readdir_packed(env, l, argv[2], argv[3]);
  } else if (res == 0) {
    napi_value raw_names = argv[2];
    napi_value raw_stats = argv[3];
    uint32_t names_length = 0;
    uint32_t stats_length = 0;
    if (napi_get_array_length(env, raw_names, &names_length) != napi_ok) {
      res = -EIO;
    } else {
      if (napi_get_array_length(env, raw_stats, &stats_length) != napi_ok) stats_length = 0;
      bool with_stats = names_length == stats_length;
      char name[READDIR_NAME_MAX + 1];
      // The listing goes into the answer cache too, when there is one and it is complete.
      dircache_t *dc = l->fuse->dc;
      dc_builder_t b;
      memset(&b, 0, sizeof b);
      if (with_stats) dc_begin(dc, l->path, names_length, 0, &b);
      bool full = false;
      for (uint32_t i = 0; i < names_length; i++) {
        napi_value raw_name;
        if (napi_get_element(env, raw_names, i, &raw_name) != napi_ok) {
          // What libfuse got is cut short here: the cache must not keep it as the listing.
          dc_discard(&b);
          break;
        }
        ssize_t name_len = read_byte_string(env, raw_name, name, READDIR_NAME_MAX);
        if (name_len < 0) continue;

        struct stat st;
        struct stat *stp = NULL;
        napi_value raw_stat;
        uint32_t *ints = NULL;
        size_t words = 0;
        if (with_stats && napi_get_element(env, raw_stats, i, &raw_stat) == napi_ok) {
          void *data = NULL;
          size_t bytes = 0;
          if (napi_get_buffer_info(env, raw_stat, &data, &bytes) == napi_ok && data != NULL && bytes >= STAT_ARRAY_WORDS * sizeof(uint32_t)) {
            ints = (uint32_t *) data;
            words = bytes / sizeof(uint32_t);
            populate_stat(ints, &st);
            stp = &st;
          }
        }
        if (b.d != NULL && dc_add(dc, &b, name, (size_t) name_len, stp, ints, words) != 0) dc_discard(&b);
        if (!full && l->readdir_filler((char *) l->buf, name, stp, 0) == 1) full = true;
      }
      if (b.d != NULL) dc_commit(dc, &b);
    }
  }
})

#ifdef __APPLE__

FUSE_METHOD(setxattr, 5, 1, (const char *path, const char *name, const char *value, size_t size, int flags, uint32_t position), {
  l->path = path;
  l->name = name;
  l->value = value;
  l->size = size;
  l->flags = flags;
  l->position = position;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_string_latin1(env, l->name, NAPI_AUTO_LENGTH, &(argv[3]));
  napi_create_external_buffer(env, l->size, (char *) l->value, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, l->position, &(argv[5]));
  napi_create_uint32(env, l->flags, &(argv[6]));
}, {
  detach_answer_buffer(env, argv[2]);
})

FUSE_METHOD(getxattr, 2, 1, (const char *path, const char *name, char *value, size_t size, uint32_t position), {
  l->path = path;
  l->name = name;
  l->value = value;
  l->size = size;
  l->position = position;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_string_latin1(env, l->name, NAPI_AUTO_LENGTH, &(argv[3]));
}, {
  // JS answers the whole value as a Buffer; the size protocol is applied here (macOS resource
  // fork positions are not supported).
  if (res == 0) res = l->position == 0 ? write_xattr_value(env, argv[2], (char *) l->value, l->size) : -EINVAL;
})

#else

FUSE_METHOD(setxattr, 5, 1, (const char *path, const char *name, const char *value, size_t size, int flags), {
  l->path = path;
  l->name = name;
  l->value = value;
  l->size = size;
  l->flags = flags;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_string_latin1(env, l->name, NAPI_AUTO_LENGTH, &(argv[3]));
  napi_create_external_buffer(env, l->size, (char *) l->value, NULL, NULL, &(argv[4]));
  napi_create_uint32(env, 0, &(argv[5])); // normalize apis between mac and linux
  napi_create_uint32(env, l->flags, &(argv[6]));
}, {
  detach_answer_buffer(env, argv[2]);
})

FUSE_METHOD(getxattr, 2, 1, (const char *path, const char *name, char *value, size_t size), {
  l->path = path;
  l->name = name;
  l->value = value;
  l->size = size;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_string_latin1(env, l->name, NAPI_AUTO_LENGTH, &(argv[3]));
}, {
  // JS answers the whole value as a Buffer; the size protocol is applied here, where libfuse's
  // buffer size is known.
  if (res == 0) res = write_xattr_value(env, argv[2], (char *) l->value, l->size);
})

#endif

FUSE_METHOD(listxattr, 1, 1, (const char *path, char *list, size_t size), {
  l->path = path;
  l->list = list;
  l->size = size;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
}, {
  // JS answers an array of names (byte strings); the list and the size protocol are made here.
  if (res == 0) res = write_xattr_names(env, argv[2], l->list, l->size);
})

FUSE_METHOD_VOID(removexattr, 2, 0, (const char *path, const char *name), {
  l->path = path;
  l->name = name;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_string_latin1(env, l->name, NAPI_AUTO_LENGTH, &(argv[3]));
})

FUSE_METHOD_VOID(flush, 2, 0, (const char *path, struct fuse_file_info *info), {
  l->path = path;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
})

FUSE_METHOD_VOID(fsync, 3, 0, (const char *path, int datasync, struct fuse_file_info *info), {
  l->path = path;
  l->mode = datasync;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[4]));
  } else {
    napi_create_uint32(env, 0, &(argv[4]));
  }
})

FUSE_METHOD_VOID(fsyncdir, 3, 0, (const char *path, int datasync, struct fuse_file_info *info), {
  l->path = path;
  l->mode = datasync;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[4]));
  } else {
    napi_create_uint32(env, 0, &(argv[4]));
  }
})


FUSE_METHOD_VOID(truncate, 3, 0, (const char *path, off_t size), {
  l->path = path;
  l->offset = size;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  FUSE_UINT64_TO_INTS_ARGV(l->offset, 3)
})

FUSE_METHOD_VOID(ftruncate, 4, 0, (const char *path, off_t size, struct fuse_file_info *info), {
  l->path = path;
  l->offset = size;
  l->info = info;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  if (l->info != NULL) {
    napi_create_uint32(env, l->info->fh, &(argv[3]));
  } else {
    napi_create_uint32(env, 0, &(argv[3]));
  }
  FUSE_UINT64_TO_INTS_ARGV(l->offset, 4)
})

FUSE_METHOD(readlink, 1, 1, (const char *path, char *linkname, size_t len), {
  l->path = path;
  l->linkname = linkname;
  l->len = len;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
}, {
  // The target is a byte string (latin1); libfuse's buffer takes len - 1 bytes and a NUL.
  if (res == 0) {
    size_t copied = 0;
    if (l->len == 0 || napi_get_value_string_latin1(env, argv[2], l->linkname, l->len, &copied) != napi_ok) res = -EIO;
  }
})

FUSE_METHOD_VOID(chown, 3, 0, (const char *path, uid_t uid, gid_t gid), {
  l->path = path;
  l->uid = uid;
  l->gid = gid;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->uid, &(argv[3]));
  napi_create_uint32(env, l->gid, &(argv[4]));
})

FUSE_METHOD_VOID(chmod, 2, 0, (const char *path, mode_t mode), {
  l->path = path;
  l->mode = mode;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
})

FUSE_METHOD_VOID(mknod, 3, 0, (const char *path, mode_t mode, dev_t dev), {
  l->path = path;
  l->mode = mode;
  l->dev = dev;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
  napi_create_uint32(env, l->dev, &(argv[4]));
})

FUSE_METHOD_VOID(unlink, 1, 0, (const char *path), {
  l->path = path;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
})

FUSE_METHOD_VOID(rename, 2, 0, (const char *path, const char *dest), {
  l->path = path;
  l->dest = dest;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_string_latin1(env, l->dest, NAPI_AUTO_LENGTH, &(argv[3]));
})

FUSE_METHOD_VOID(link, 2, 0, (const char *path, const char *dest), {
  l->path = path;
  l->dest = dest;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_string_latin1(env, l->dest, NAPI_AUTO_LENGTH, &(argv[3]));
})

FUSE_METHOD_VOID(symlink, 2, 0, (const char *path, const char *dest), {
  l->path = path;
  l->dest = dest;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_string_latin1(env, l->dest, NAPI_AUTO_LENGTH, &(argv[3]));
})

FUSE_METHOD_VOID(mkdir, 2, 0, (const char *path, mode_t mode), {
  l->path = path;
  l->mode = mode;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
  napi_create_uint32(env, l->mode, &(argv[3]));
})

FUSE_METHOD_VOID(rmdir, 1, 0, (const char *path), {
  l->path = path;
}, {
  napi_create_string_latin1(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));
})

static void fuse_native_dispatch_init (uv_async_t* handle, fuse_thread_locals_t* l, fuse_thread_t* ft) {\
  FUSE_NATIVE_CALLBACK(ft->handlers[op_init], {
    napi_value argv[2];

    napi_get_reference_value(env, l->self, &(argv[0]));
    napi_create_uint32(env, l->op, &(argv[1]));

    NAPI_MAKE_CALLBACK(env, NULL, ctx, callback, 2, argv, NULL);
  })
}

NAPI_METHOD(fuse_native_signal_init) {
  NAPI_ARGV(2)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_locals_t *, l, 0);
  int32_t res;
  if (napi_get_value_int32(env, argv[1], &res) != napi_ok) res = -EIO;
  l->res = res;
  uv_sem_post(&(l->sem));
  return NULL;
}

static void * fuse_native_init (struct fuse_conn_info *conn) {
  fuse_thread_locals_t *l = get_thread_locals();

  l->op = op_init;
  l->op_fn = fuse_native_dispatch_init;

  uv_async_send(&(l->async));
  uv_sem_wait(&(l->sem));

  return l->fuse;
}

// Top-level dispatcher

static void fuse_native_dispatch (uv_async_t* handle) {
  fuse_thread_locals_t *l = (fuse_thread_locals_t *) handle->data;
  fuse_thread_t *ft = l->fuse;
  void (*fn)(uv_async_t *, fuse_thread_locals_t *, fuse_thread_t *) = l->op_fn;

  fn(handle, l, ft);
}

static void fuse_native_async_init (uv_async_t* handle) {
  fuse_thread_t *ft = (fuse_thread_t *) handle->data;
  fuse_thread_locals_t *l;

  FUSE_NATIVE_CALLBACK(ft->malloc, {
    napi_value argv[1];
    napi_create_uint32(ft->env, (uint32_t) sizeof(fuse_thread_locals_t), &(argv[0]));

    napi_value buf;
    NAPI_MAKE_CALLBACK(ft->env, NULL, ctx, callback, 1, argv, &buf);

    size_t l_len;

    napi_get_buffer_info(env, buf, (void **) &l, &l_len);
    napi_create_reference(env, buf, 1, &(l->self));
  })


  int err = uv_async_init(uv_default_loop(), &(l->async), (uv_async_cb) fuse_native_dispatch);
  assert(err >= 0);

  uv_unref((uv_handle_t *) &(l->async));

  uv_sem_init(&(l->sem), 0);
  l->async.data = l;
  ft->async.data = l;
  l->fuse = ft;

  uv_sem_post(&(ft->sem));
}

static fuse_thread_locals_t* get_thread_locals () {
  struct fuse_context *ctx = fuse_get_context();
  fuse_thread_t *ft = (fuse_thread_t *) ctx->private_data;

  void *data = pthread_getspecific(thread_locals_key);

  if (data != NULL) {
    return (fuse_thread_locals_t *) data;
  }

  // Need to lock the mutation of l->async.
  uv_mutex_lock(&(ft->mut));
  ft->async.data = ft;

  // Notify the main thread to uv_async_init l->async.
  uv_async_send(&(ft->async));
  uv_sem_wait(&(ft->sem));

  fuse_thread_locals_t *l = (fuse_thread_locals_t*) ft->async.data;

  pthread_setspecific(thread_locals_key, (void *) l);
  uv_mutex_unlock(&(ft->mut));

  return l;
}


// ---------------------------------------------------------------------------------------------
// Fast paths: answered from the answer cache on libfuse's thread when possible, else from JS.

static int fuse_native_getattr_fast (const char *path, struct stat *stat) {
  dircache_t *dc = dc_of_context();
  if (dc != NULL) {
    pthread_rwlock_rdlock(&dc->lock);
    dc_entry_t *e = dc_lookup(dc, path);
    if (e != NULL) *stat = e->st;
    pthread_rwlock_unlock(&dc->lock);
    if (e != NULL) {
      __atomic_fetch_add(&dc->getattr_hits, 1, __ATOMIC_RELAXED);
      return 0;
    }
  }
  return fuse_native_getattr(path, stat);
}

static int fuse_native_fgetattr_fast (const char *path, struct stat *stat, struct fuse_file_info *info) {
  dircache_t *dc = dc_of_context();
  if (dc != NULL) {
    pthread_rwlock_rdlock(&dc->lock);
    dc_entry_t *e = dc_lookup(dc, path);
    if (e != NULL) *stat = e->st;
    pthread_rwlock_unlock(&dc->lock);
    if (e != NULL) {
      __atomic_fetch_add(&dc->getattr_hits, 1, __ATOMIC_RELAXED);
      return 0;
    }
  }
  return fuse_native_fgetattr(path, stat, info);
}

static int fuse_native_readdir_fast (const char *path, void *buf, fuse_fill_dir_t filler, off_t offset, struct fuse_file_info *info) {
  dircache_t *dc = dc_of_context();
  if (dc != NULL) {
    pthread_rwlock_rdlock(&dc->lock);
    dc_dir_t *d = dc_find_dir(dc, path, strlen(path));
    if (d != NULL) {
      for (uint32_t i = 0; i < d->count; i++) {
        if (filler(buf, d->names + d->entries[i].name_off, &d->entries[i].st, 0) == 1) break;
      }
    }
    pthread_rwlock_unlock(&dc->lock);
    if (d != NULL) {
      __atomic_fetch_add(&dc->readdir_hits, 1, __ATOMIC_RELAXED);
      return 0;
    }
  }
  return fuse_native_readdir(path, buf, filler, offset, info);
}

static int fuse_native_read_fast (const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *info) {
  dircache_t *dc = dc_of_context();
  if (dc != NULL && offset >= 0) {
    int slot = -1;
    uint64_t span_off = 0;
    off_t size = 0;
    dc_fd_t f;
    pthread_rwlock_rdlock(&dc->lock);
    dc_entry_t *e = dc_lookup(dc, path);
    if (e != NULL && e->fd_slot >= 0 && !dc->fds[e->fd_slot].stale) {
      slot = e->fd_slot;
      f = dc->fds[slot];
      span_off = e->span_off;
      size = e->st.st_size;
    }
    pthread_rwlock_unlock(&dc->lock);
    // `f.fd` is our own duplicate, open until the FUSE loop is over: no other file can take
    // its number while this thread uses it.
    if (slot >= 0) {
      if (offset >= size) {
        __atomic_fetch_add(&dc->read_hits, 1, __ATOMIC_RELAXED);
        return 0;
      }
      size_t want = len < (size_t) (size - offset) ? len : (size_t) (size - offset);
      size_t done = 0;
      while (done < want) {
        ssize_t n = pread(f.fd, buf + done, want - done, (off_t) (span_off + offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += n;
      }
      // The bytes are in: before anyone sees them, make sure they came from the indexed file.
      struct stat now;
      int cmp = fstat(f.fd, &now) == 0 ? dc_stamp_cmp(&f, &now) : DC_CHANGED;
      if (done == want && cmp != DC_CHANGED) {
        if (cmp == DC_LINKS) {
          // Only the link count moved (and ctime with it): compare with that from now on.
          pthread_rwlock_wrlock(&dc->lock);
          dc->fds[slot].ctim = now.st_ctim;
          dc->fds[slot].nlink = now.st_nlink;
          pthread_rwlock_unlock(&dc->lock);
        }
        __atomic_fetch_add(&dc->read_hits, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&dc->read_bytes, done, __ATOMIC_RELAXED);
        return (int) done;
      }
      // Changed (or short, or failed): never serve these bytes; JS decides and says why.
      if (cmp == DC_CHANGED) {
        pthread_rwlock_wrlock(&dc->lock);
        dc->fds[slot].stale = 1;
        pthread_rwlock_unlock(&dc->lock);
      }
      __atomic_fetch_add(&dc->read_fallbacks, 1, __ATOMIC_RELAXED);
    }
  }
  return fuse_native_read(path, buf, len, offset, info);
}

// Registers an archive file whose byte spans listings may carry: (thread, fd, stamp), the stamp
// a BigInt64Array [dev, ino, size, mtime s, mtime ns, ctime s, ctime ns, nlink] as it was when
// the file was indexed. Returns the id for word 23 of stat arrays (1-based), or 0 when the
// file is not served here (no answer cache, no room, or it already differs from the stamp).
// fuse_native_prime(thread, path, names, stats): puts the packed listing of directory `path` (a
// byte string, as the kernel names it) into the answer cache before anyone asked for it, so that
// its READDIR, and the LOOKUPs of its names, are answered on libfuse's threads with no hop onto
// JS. JS primes the directories below one it has just listed (src/fuse/ops.ts): a first `find`
// then reaches JS once per batch of directories instead of once per directory. Returns whether
// the listing was taken (not when there is no answer cache, or the answer is malformed).
NAPI_METHOD(fuse_native_prime) {
  NAPI_ARGV(4)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  napi_value result;
  bool taken = false;
  dircache_t *dc = ft->dc;
  size_t path_len = 0;
  const char *names;
  size_t names_bytes = 0;
  uint32_t *words;
  ssize_t count = -1;
  if (dc != NULL && dc->budget > 0 && napi_get_value_string_latin1(env, argv[1], NULL, 0, &path_len) == napi_ok) {
    count = packed_listing(env, argv[2], argv[3], &names, &names_bytes, &words);
  }
  if (count >= 0) {
    char *path = malloc(path_len + 1);
    if (path != NULL && napi_get_value_string_latin1(env, argv[1], path, path_len + 1, &path_len) == napi_ok && strlen(path) == path_len) {
      packed_fill(dc, path, names, names_bytes, words, (size_t) count, NULL, NULL);
      taken = true;
    }
    free(path);
  }
  napi_get_boolean(env, taken, &result);
  return result;
}

NAPI_METHOD(fuse_native_span_file) {
  NAPI_ARGV(3)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  NAPI_ARGV_INT32(fd, 1)
  napi_value result;
  uint32_t id = 0;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  dircache_t *dc = ft->dc;
  if (dc != NULL && dc->budget > 0 && fd >= 0 &&
      napi_get_typedarray_info(env, argv[2], &type, &length, &data, NULL, NULL) == napi_ok &&
      type == napi_bigint64_array && length >= 8 && data != NULL && dc->nfds < DC_FDS) {
    int64_t *v = (int64_t *) data;
    dc_fd_t f;
    f.stale = 0;
    f.dev = (dev_t) v[0];
    f.ino = (ino_t) v[1];
    f.size = (off_t) v[2];
    f.mtim.tv_sec = (time_t) v[3];
    f.mtim.tv_nsec = (long) v[4];
    f.ctim.tv_sec = (time_t) v[5];
    f.ctim.tv_nsec = (long) v[6];
    f.nlink = (nlink_t) v[7];
    f.fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    struct stat now;
    if (f.fd >= 0 && (fstat(f.fd, &now) != 0 || !S_ISREG(now.st_mode) || dc_stamp_cmp(&f, &now) != DC_SAME)) {
      close(f.fd);
      f.fd = -1;
    }
    if (f.fd >= 0) {
      pthread_rwlock_wrlock(&dc->lock);
      dc->fds[dc->nfds] = f;
      id = (uint32_t) ++dc->nfds;
      pthread_rwlock_unlock(&dc->lock);
    }
  }
  napi_create_uint32(env, id, &result);
  return result;
}

// Counters of the answer cache: [getattr, readdir, read answered here, bytes read here, reads that fell back to JS, bytes cached, listings cached].
NAPI_METHOD(fuse_native_counters) {
  NAPI_ARGV(1)
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 0);
  napi_value arr;
  napi_create_array(env, &arr);
  dircache_t *dc = ft->dc;
  double v[7] = { 0 };
  if (dc != NULL) {
    pthread_rwlock_rdlock(&dc->lock);
    uint32_t dirs = 0;
    for (dc_dir_t *d = dc->oldest; d != NULL; d = d->newer) dirs++;
    v[0] = dc->getattr_hits; v[1] = dc->readdir_hits; v[2] = dc->read_hits; v[3] = dc->read_bytes;
    v[4] = dc->read_fallbacks; v[5] = dc->bytes; v[6] = dirs;
    pthread_rwlock_unlock(&dc->lock);
  }
  for (uint32_t i = 0; i < 7; i++) {
    napi_value n;
    napi_create_double(env, v[i], &n);
    napi_set_element(env, arr, i, n);
  }
  for (uint32_t i = 0; i < 3; i++) {
    napi_value n;
    napi_create_double(env, (double) __atomic_load_n(&ft->opendir_counters[i], __ATOMIC_RELAXED), &n);
    napi_set_element(env, arr, 7 + i, n);
  }
  return arr;
}

// ---------------------------------------------------------------------------------------------
// Cached directory listings in the kernel (FOPEN_CACHE_DIR) through libfuse 2.
//
// libfuse 2's high-level API has no way to set FOPEN_CACHE_DIR (added to the protocol in 7.28,
// exposed by libfuse 3 as `cache_readdir`), and its readdir needs the handle OPENDIR made, so
// OPENDIR can not be refused either. The kernel channel is therefore wrapped: requests are read
// and replies written here exactly as libfuse's own channel does (read(2) and writev(2) of
// /dev/fuse), and the reply to each OPENDIR gets FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE. The kernel
// then keeps each listing in the directory's page cache and answers later getdents from it
// without any READDIR; an image never changes. (`cacheDirs` option; off: libfuse's channel.)

#define OC_FUSE_INIT 26
#define OC_FUSE_OPENDIR 27
#define OC_FUSE_READDIR 28
#define OC_FUSE_RELEASEDIR 29
#define OC_FOPEN_KEEP_CACHE (1 << 1)
#define OC_FOPEN_CACHE_DIR (1 << 3)
#define OC_FUSE_NO_OPENDIR_SUPPORT (1 << 24)
#define OC_OPENDIR_SLOTS 1024
#define OC_DIR_HANDLES 32
// Uniques of the requests made up here (see "Zero-message OPENDIR"): never a kernel's.
#define OC_OWN_UNIQUE (1ULL << 62)

struct oc_in_header { uint32_t len; uint32_t opcode; uint64_t unique; uint64_t nodeid; uint32_t uid, gid, pid, padding; };
struct oc_out_header { uint32_t len; int32_t error; uint64_t unique; };
struct oc_open_out { uint64_t fh; uint32_t open_flags; uint32_t padding; };
struct oc_init_in { uint32_t major, minor, max_readahead, flags; };
struct oc_open_in { uint32_t flags, unused; };
struct oc_release_in { uint64_t fh; uint32_t flags, release_flags; uint64_t lock_owner; };

typedef struct {
  uint64_t opendir_uniques[OC_OPENDIR_SLOTS];
  // Set from the kernel's INIT: OPENDIR is answered ENOSYS, once, and never sent again.
  int no_opendir;
  uint64_t own_uniques;
  // Handles made for READDIRs without one, kept for the next READDIR of the same directory.
  pthread_mutex_t handles_lock;
  struct oc_dir_handle { uint64_t nodeid, fh, last_used; int busy; } handles[OC_DIR_HANDLES];
  uint64_t handle_clock;
  // fuse_thread_t's opendir_counters: kernel OPENDIRs, handles made, handles reused.
  uint64_t *counters;
} oc_chan_t;

// ---------------------------------------------------------------------------------------------
// Zero-message OPENDIR.
//
// Even with cached listings, every opendir(3) of a directory costs two round trips through
// /dev/fuse, OPENDIR and RELEASEDIR, answered by libfuse without any listing work: a warm `find`
// of 6,756 directories is nothing else, and a find of 122,000 directories sends 244,000 of them
// (bench/README.md). Kernels since 5.1 stop sending both once an OPENDIR is answered ENOSYS
// (`no_opendir`, advertised as FUSE_NO_OPENDIR_SUPPORT in INIT), and then treat every directory
// as opened with FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, so cached listings stay cached.
//
// libfuse 2's high-level READDIR, however, needs the handle its OPENDIR makes (the listing is
// built in it). So the wrapper answers the kernel's OPENDIR with ENOSYS itself, and a READDIR
// that arrives without a handle (fh 0) is given one: the wrapper has libfuse process an OPENDIR
// of its own for that node (same caller ids) before the READDIR, and a RELEASEDIR of that handle
// right after it (at this thread's next receive, when libfuse is done with the READDIR). Their
// replies are taken here and never reach the kernel. All on the same libfuse thread, no JS hop
// (ocimount's JS side implements neither opendir nor releasedir).

static __thread struct {
  uint64_t unique;
  int done;
  int32_t error;
  uint64_t fh;
} oc_capture;

// The handle slot this thread's READDIR is using, given back at this thread's next receive; or,
// when every slot was busy, a handle of its own, released then.
static __thread int oc_busy_slot = -1;
static __thread uint64_t oc_busy_unique;
static __thread uint64_t oc_own_fh;
static __thread struct oc_in_header oc_own_fh_caller;
/** Has libfuse process a request made up here; its reply is captured. 0 or -errno. */
static int oc_own_request (struct fuse_session *se, struct fuse_chan *ch, oc_chan_t *oc, const struct oc_in_header *caller,
                           uint32_t opcode, const void *arg, size_t arglen, uint64_t *fh) {
  char buf[sizeof(struct oc_in_header) + 64];
  struct oc_in_header *h = (struct oc_in_header *) buf;
  *h = *caller;
  h->opcode = opcode;
  h->len = (uint32_t) (sizeof(struct oc_in_header) + arglen);
  h->unique = OC_OWN_UNIQUE | __atomic_add_fetch(&oc->own_uniques, 1, __ATOMIC_RELAXED);
  h->padding = 0;
  memcpy(buf + sizeof(struct oc_in_header), arg, arglen);
  oc_capture.unique = h->unique;
  oc_capture.done = 0;
  // libfuse's worker loop lets a thread be cancelled while it receives (at unmount): not in the
  // middle of a request libfuse is processing.
  int cancel_state;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  fuse_session_process(se, buf, h->len, ch);
  pthread_setcancelstate(cancel_state, NULL);
  oc_capture.unique = 0;
  if (!oc_capture.done) return -EIO;
  if (oc_capture.error != 0) return oc_capture.error;
  if (fh != NULL) *fh = oc_capture.fh;
  return 0;
}

/**
 * Releases a handle made here. The node it was opened on may be forgotten by now (the kernel
 * drops inodes it no longer needs, and libfuse aborts on a node it does not know), so the
 * release names the root: libfuse's RELEASEDIR uses the node only for the path it hands to a
 * releasedir operation, which ocimount does not implement.
 */
static void oc_release_handle (struct fuse_session *se, struct fuse_chan *ch, oc_chan_t *oc, const struct oc_in_header *caller, uint64_t fh) {
  struct oc_release_in rel = { .fh = fh, .flags = O_RDONLY };
  struct oc_in_header root = *caller;
  root.nodeid = FUSE_ROOT_ID;
  oc_own_request(se, ch, oc, &root, OC_FUSE_RELEASEDIR, &rel, sizeof(rel), NULL);
}

/**
 * This thread's READDIR is answered: its kept handle is free for the next READDIR, which the
 * kernel may send (and another thread read) before this one is back from libfuse. That one waits
 * on the handle's lock until libfuse lets go of it, as libfuse's own RELEASEDIR does.
 */
static void oc_free_slot (oc_chan_t *oc) {
  if (oc_busy_slot < 0) return;
  pthread_mutex_lock(&oc->handles_lock);
  oc->handles[oc_busy_slot].busy = 0;
  oc->handles[oc_busy_slot].last_used = ++oc->handle_clock;
  pthread_mutex_unlock(&oc->handles_lock);
  oc_busy_slot = -1;
}

/** libfuse is done with this thread's READDIR: a handle of its own goes, a kept one is free. */
static void oc_give_back (struct fuse_session *se, struct fuse_chan *ch, oc_chan_t *oc) {
  if (oc_own_fh != 0) {
    uint64_t fh = oc_own_fh;
    oc_own_fh = 0;
    oc_release_handle(se, ch, oc, &oc_own_fh_caller, fh);
  }
  oc_free_slot(oc);
}

/**
 * A handle for a READDIR of `in->nodeid` that came without one: the directory's own if a
 * READDIR before made one (a listing that takes several READDIRs is then built once, not once
 * per READDIR), else a new one, in the least recently used free slot, whose old handle is
 * released. 0 or -errno; the slot is this thread's until its next receive.
 */
static int oc_dir_handle (struct fuse_session *se, struct fuse_chan *ch, oc_chan_t *oc, const struct oc_in_header *in, uint64_t *fh) {
  int slot = -1;
  __atomic_add_fetch(&oc->counters[1], 1, __ATOMIC_RELAXED);
  uint64_t old_fh = 0;
  pthread_mutex_lock(&oc->handles_lock);
  for (int i = 0; i < OC_DIR_HANDLES; i++) {
    struct oc_dir_handle *h = &oc->handles[i];
    if (h->busy) continue;
    if (h->fh != 0 && h->nodeid == in->nodeid) {
      slot = i;
      break;
    }
    if (slot < 0 || h->fh == 0 || (oc->handles[slot].fh != 0 && h->last_used < oc->handles[slot].last_used)) slot = i;
  }
  if (slot < 0) {
    // As many READDIRs at once as slots: this one gets a handle of its own.
    pthread_mutex_unlock(&oc->handles_lock);
    struct oc_open_in open_in = { .flags = O_RDONLY | O_DIRECTORY };
    int rc = oc_own_request(se, ch, oc, in, OC_FUSE_OPENDIR, &open_in, sizeof(open_in), fh);
    if (rc == 0 && *fh == 0) rc = -EIO;
    if (rc == 0) {
      oc_own_fh = *fh;
      oc_own_fh_caller = *in;
    }
    return rc;
  }
  struct oc_dir_handle *h = &oc->handles[slot];
  h->busy = 1;
  if (h->fh != 0 && h->nodeid == in->nodeid) {
    *fh = h->fh;
    pthread_mutex_unlock(&oc->handles_lock);
    oc_busy_slot = slot;
    __atomic_add_fetch(&oc->counters[2], 1, __ATOMIC_RELAXED);
    return 0;
  }
  old_fh = h->fh;
  h->fh = 0;
  pthread_mutex_unlock(&oc->handles_lock);

  if (old_fh != 0) oc_release_handle(se, ch, oc, in, old_fh);
  struct oc_open_in open_in = { .flags = O_RDONLY | O_DIRECTORY };
  int rc = oc_own_request(se, ch, oc, in, OC_FUSE_OPENDIR, &open_in, sizeof(open_in), fh);
  if (rc == 0 && *fh == 0) rc = -EIO;
  pthread_mutex_lock(&oc->handles_lock);
  if (rc == 0) {
    h->nodeid = in->nodeid;
    h->fh = *fh;
  }
  pthread_mutex_unlock(&oc->handles_lock);
  oc_busy_slot = slot;
  return rc;
}

/** Answers a kernel request with an error, bypassing libfuse (for requests it never sees). */
static void oc_reply_error (struct fuse_chan *ch, uint64_t unique, int error) {
  struct oc_out_header out = { .len = sizeof(struct oc_out_header), .error = error, .unique = unique };
  struct iovec iov = { .iov_base = &out, .iov_len = sizeof(out) };
  if (writev(fuse_chan_fd(ch), &iov, 1) == -1 && errno != ENOENT) perror("fuse: writing device");
}

static int oc_chan_receive (struct fuse_chan **chp, char *buf, size_t size) {
  struct fuse_chan *ch = *chp;
  struct fuse_session *se = fuse_chan_session(ch);
  oc_chan_t *oc = (oc_chan_t *) fuse_chan_data(ch);
  ssize_t res;
  int err;
  // libfuse has finished this thread's previous request: a directory handle it used is free.
  oc_give_back(se, ch, oc);
restart:
  res = read(fuse_chan_fd(ch), buf, size);
  err = errno;
  if (fuse_session_exited(se)) return 0;
  if (res == -1) {
    // ENOENT: the request was interrupted and is gone; ENODEV: unmounted.
    if (err == ENOENT) goto restart;
    if (err == ENODEV) {
      fuse_session_exit(se);
      return 0;
    }
    if (err != EINTR && err != EAGAIN) perror("fuse: reading device");
    return -err;
  }
  if ((size_t) res < sizeof(struct oc_in_header)) {
    fprintf(stderr, "short read on fuse device\n");
    return -EIO;
  }
  struct oc_in_header *in = (struct oc_in_header *) buf;
  if (in->opcode == OC_FUSE_INIT && (size_t) res >= sizeof(struct oc_in_header) + sizeof(struct oc_init_in)) {
    const struct oc_init_in *init = (const struct oc_init_in *) (buf + sizeof(struct oc_in_header));
    oc->no_opendir = oc->no_opendir >= 0 && init->major == 7 && (init->flags & OC_FUSE_NO_OPENDIR_SUPPORT) != 0;
  } else if (in->opcode == OC_FUSE_OPENDIR) {
    __atomic_add_fetch(&oc->counters[0], 1, __ATOMIC_RELAXED);
    if (oc->no_opendir > 0) {
      oc_reply_error(ch, in->unique, -ENOSYS);
      goto restart;
    }
    __atomic_store_n(&oc->opendir_uniques[in->unique % OC_OPENDIR_SLOTS], in->unique, __ATOMIC_RELAXED);
  } else if (in->opcode == OC_FUSE_READDIR && oc->no_opendir > 0 && (size_t) res >= sizeof(struct oc_in_header) + sizeof(uint64_t)) {
    uint64_t fh;
    memcpy(&fh, buf + sizeof(struct oc_in_header), sizeof(fh));
    if (fh == 0) {
      int rc = oc_dir_handle(se, ch, oc, in, &fh);
      if (rc != 0) {
        oc_give_back(se, ch, oc);
        oc_reply_error(ch, in->unique, rc);
        goto restart;
      }
      memcpy(buf + sizeof(struct oc_in_header), &fh, sizeof(fh));
      oc_busy_unique = in->unique;
    }
  }
  return (int) res;
}

static int oc_chan_send (struct fuse_chan *ch, const struct iovec iov[], size_t count) {
  if (iov == NULL) return 0;
  oc_chan_t *oc = (oc_chan_t *) fuse_chan_data(ch);
  // The reply to a request made up here (zero-message OPENDIR): taken, not sent.
  if (oc_capture.unique != 0 && count >= 1 && iov[0].iov_len >= sizeof(struct oc_out_header) &&
      ((struct oc_out_header *) iov[0].iov_base)->unique == oc_capture.unique) {
    oc_capture.done = 1;
    oc_capture.error = ((struct oc_out_header *) iov[0].iov_base)->error;
    oc_capture.fh = 0;
    if (count >= 2 && iov[1].iov_len >= sizeof(uint64_t)) memcpy(&oc_capture.fh, iov[1].iov_base, sizeof(uint64_t));
    return 0;
  }
  if (oc_busy_slot >= 0 && count >= 1 && iov[0].iov_len >= sizeof(struct oc_out_header) &&
      ((struct oc_out_header *) iov[0].iov_base)->unique == oc_busy_unique) {
    oc_free_slot(oc);
  }
  // Only a successful reply (header plus a whole fuse_open_out) to a request read as OPENDIR;
  // an error reply is the header alone. unique 0 is a notification, never a reply (and the
  // value every empty slot holds).
  if (count >= 2 && iov[0].iov_len == sizeof(struct oc_out_header) && iov[1].iov_len == sizeof(struct oc_open_out)) {
    struct oc_out_header *out = (struct oc_out_header *) iov[0].iov_base;
    if (out->error == 0 && out->unique != 0 &&
        __atomic_load_n(&oc->opendir_uniques[out->unique % OC_OPENDIR_SLOTS], __ATOMIC_RELAXED) == out->unique) {
      ((struct oc_open_out *) iov[1].iov_base)->open_flags |= OC_FOPEN_CACHE_DIR | OC_FOPEN_KEEP_CACHE;
    }
  }
  ssize_t res = writev(fuse_chan_fd(ch), iov, count);
  int err = errno;
  if (res == -1) {
    struct fuse_session *se = fuse_chan_session(ch);
    // ENOENT: the request was interrupted meanwhile; nothing to answer.
    if (!fuse_session_exited(se) && err != ENOENT) perror("fuse: writing device");
    return -err;
  }
  return 0;
}

/** At teardown, once libfuse's workers are joined: the directory handles kept in slots go. */
static void oc_release_kept (struct fuse_session *se, struct fuse_chan *ch) {
  oc_chan_t *oc = (oc_chan_t *) fuse_chan_data(ch);
  struct oc_in_header caller = { 0 };
  for (int i = 0; i < OC_DIR_HANDLES; i++) {
    if (oc->handles[i].fh == 0) continue;
    oc_release_handle(se, ch, oc, &caller, oc->handles[i].fh);
    oc->handles[i].fh = 0;
  }
}

static void oc_chan_destroy (struct fuse_chan *ch) {
  // The descriptor belongs to the channel fuse_mount made (closed by fuse_unmount).
  free(fuse_chan_data(ch));
}

static struct fuse_chan_ops oc_chan_ops = {
  .receive = oc_chan_receive,
  .send = oc_chan_send,
  .destroy = oc_chan_destroy,
};

static void* start_fuse_thread (void *data) {
  fuse_thread_t *ft = (fuse_thread_t *) data;
  fuse_loop_mt(ft->fuse);

  // Every worker is joined: nothing reads the answer cache or its descriptors any more.
  dc_teardown(ft->dc);
  // The session's channel leaves the session first (and the wrapper is freed); then
  // fuse_unmount frees libfuse's own channel, which must not be touched after it.
  if (ft->session_ch != ft->ch) oc_release_kept(fuse_get_session(ft->fuse), ft->session_ch);
  fuse_session_remove_chan(ft->session_ch);
  if (ft->session_ch != ft->ch) fuse_chan_destroy(ft->session_ch);
  fuse_unmount(ft->mnt, ft->ch);
  fuse_destroy(ft->fuse);

  return NULL;
}

NAPI_METHOD(fuse_native_mount) {
  NAPI_ARGV(9)

  NAPI_ARGV_UTF8(mnt, 1024, 0);
  NAPI_ARGV_UTF8(mntopts, 1024, 1);
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 2);
  napi_create_reference(env, argv[3], 1, &(ft->ctx));
  napi_create_reference(env, argv[4], 1, &(ft->malloc));
  napi_value handlers = argv[5];
  NAPI_ARGV_BUFFER_CAST(uint32_t *, implemented, 6)

  for (int i = 0; i < 35; i++) {
    ft->handlers[i] = NULL;
  }

  NAPI_FOR_EACH(handlers, handler) {
    napi_create_reference(env, handler, 1, &ft->handlers[i]);
  }

  ft->env = env;

  // The answer cache's budget in bytes (0 or missing: none).
  double dc_budget = 0;
  if (napi_get_value_double(env, argv[7], &dc_budget) != napi_ok || !(dc_budget > 0)) dc_budget = 0;
  if (dc_budget > 0 && ft->dc == NULL) {
    ft->dc = calloc(1, sizeof(dircache_t));
    if (ft->dc != NULL) {
      // Writers first: a steady stream of lookups on libfuse's threads must not keep the JS
      // thread (adding a listing) waiting. No thread ever takes the read lock twice.
      pthread_rwlockattr_t attr;
      pthread_rwlockattr_init(&attr);
      pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
      pthread_rwlock_init(&ft->dc->lock, &attr);
      pthread_rwlockattr_destroy(&attr);
      ft->dc->budget = (size_t) dc_budget;
    }
  }

  struct fuse_operations ops = { };
  if (implemented[op_access]) ops.access = fuse_native_access;
  if (implemented[op_truncate]) ops.truncate = fuse_native_truncate;
  if (implemented[op_ftruncate]) ops.ftruncate = fuse_native_ftruncate;
  if (implemented[op_getattr]) ops.getattr = fuse_native_getattr_fast;
  if (implemented[op_fgetattr]) ops.fgetattr = fuse_native_fgetattr_fast;
  if (implemented[op_flush]) ops.flush = fuse_native_flush;
  if (implemented[op_fsync]) ops.fsync = fuse_native_fsync;
  if (implemented[op_fsyncdir]) ops.fsyncdir = fuse_native_fsyncdir;
  if (implemented[op_readdir]) ops.readdir = fuse_native_readdir_fast;
  if (implemented[op_readlink]) ops.readlink = fuse_native_readlink;
  if (implemented[op_chown]) ops.chown = fuse_native_chown;
  if (implemented[op_chmod]) ops.chmod = fuse_native_chmod;
  if (implemented[op_mknod]) ops.mknod = fuse_native_mknod;
  if (implemented[op_setxattr]) ops.setxattr = fuse_native_setxattr;
  if (implemented[op_getxattr]) ops.getxattr = fuse_native_getxattr;
  if (implemented[op_listxattr]) ops.listxattr = fuse_native_listxattr;
  if (implemented[op_removexattr]) ops.removexattr = fuse_native_removexattr;
  if (implemented[op_statfs]) ops.statfs = fuse_native_statfs;
  if (implemented[op_open]) ops.open = fuse_native_open;
  if (implemented[op_opendir]) ops.opendir = fuse_native_opendir;
  if (implemented[op_read]) ops.read = fuse_native_read_fast;
  if (implemented[op_write]) ops.write = fuse_native_write;
  if (implemented[op_release]) ops.release = fuse_native_release;
  if (implemented[op_releasedir]) ops.releasedir = fuse_native_releasedir;
  if (implemented[op_create]) ops.create = fuse_native_create;
  if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;
  if (implemented[op_unlink]) ops.unlink = fuse_native_unlink;
  if (implemented[op_rename]) ops.rename = fuse_native_rename;
  if (implemented[op_link]) ops.link = fuse_native_link;
  if (implemented[op_symlink]) ops.symlink = fuse_native_symlink;
  if (implemented[op_mkdir]) ops.mkdir = fuse_native_mkdir;
  if (implemented[op_rmdir]) ops.rmdir = fuse_native_rmdir;
  if (implemented[op_init]) ops.init = fuse_native_init;

  int _argc = (strcmp(mntopts, "-o") <= 0) ? 1 : 2;
  char *_argv[] = {
    (char *) "fuse_bindings_dummy",
    (char *) mntopts
  };

  struct fuse_args args = FUSE_ARGS_INIT(_argc, _argv);
  struct fuse_chan *ch = fuse_mount(mnt, &args);

  if (ch == NULL) {
    napi_throw_error(env, "fuse failed", "fuse failed");
    return NULL;
  }

  // With `cacheDirs`, the session reads and answers through the wrapper channel above.
  struct fuse_chan *session_ch = ch;
  bool cache_dirs = false;
  if (napi_get_value_bool(env, argv[8], &cache_dirs) == napi_ok && cache_dirs) {
    oc_chan_t *oc = calloc(1, sizeof(oc_chan_t));
    // OCIMOUNT_FUSE_ZERO_OPENDIR=0 keeps OPENDIR and RELEASEDIR round trips (A/B measurements).
    const char *zero_opendir = getenv("OCIMOUNT_FUSE_ZERO_OPENDIR");
    if (oc != NULL && zero_opendir != NULL && strcmp(zero_opendir, "0") == 0) oc->no_opendir = -1;
    if (oc != NULL) {
      pthread_mutex_init(&oc->handles_lock, NULL);
      oc->counters = ft->opendir_counters;
    }
    struct fuse_chan *wrapped = oc != NULL ? fuse_chan_new(&oc_chan_ops, fuse_chan_fd(ch), fuse_chan_bufsize(ch), oc) : NULL;
    if (wrapped != NULL) session_ch = wrapped;
    else free(oc);
  }

  struct fuse *fuse = fuse_new(session_ch, &args, &ops, sizeof(struct fuse_operations), ft);

  uv_mutex_init(&(ft->mut));
  uv_sem_init(&(ft->sem), 0);

  strncpy(ft->mnt, mnt, 1024);
  strncpy(ft->mntopts, mntopts, 1024);
  ft->fuse = fuse;
  ft->ch = ch;
  ft->session_ch = session_ch;
  ft->mounted++;

  int err = uv_async_init(uv_default_loop(), &(ft->async), (uv_async_cb) fuse_native_async_init);

  if (fuse == NULL || err < 0) {
    napi_throw_error(env, "fuse failed", "fuse failed");
    return NULL;
  }

  pthread_attr_init(&(ft->attr));
  pthread_create(&(ft->thread), &(ft->attr), start_fuse_thread, ft);

  return NULL;
}

NAPI_METHOD(fuse_native_unmount) {
  NAPI_ARGV(2)
  NAPI_ARGV_UTF8(mnt, 1024, 0);
  NAPI_ARGV_BUFFER_CAST(fuse_thread_t *, ft, 1);

  if (ft != NULL && ft->mounted) {
    // TODO: Investigate why the FUSE thread is not always killed after fusermount.
    // pthread_join(ft->thread, NULL);
  }

  // TODO: fix the async holding the loop
  uv_unref((uv_handle_t *) &(ft->async));
  ft->mounted--;

  return NULL;
}

// Memory a long-running server frees should leave the process. glibc raises its mmap threshold
// each time a large mmapped block is freed (up to 32 MiB), after which blocks of that size come
// from the heap and stay resident when freed: a 2M-entry mount (ocimount's index columns, grown
// by doubling, then copied to their final size) kept ~100 MB of freed memory that way. A fixed
// threshold (4 MiB: every large column, none of the small I/O buffers) makes such blocks mmaps,
// unmapped on free; trim hands back what is free in the heap after a garbage collection.
NAPI_METHOD(fuse_native_malloc_returnable) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
#endif
  return NULL;
}

NAPI_METHOD(fuse_native_malloc_trim) {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return NULL;
}

NAPI_INIT() {
  const napi_node_version* version;
  assert(napi_get_node_version(env, &version) == napi_ok);

  if (version->major > 12 || (version->major == 12 && version->minor >= 16)) {
    IS_ARRAY_BUFFER_DETACH_SUPPORTED = 1;
  }

  pthread_key_create(&(thread_locals_key), NULL); // TODO: add destructor

  NAPI_EXPORT_SIZEOF(fuse_thread_t)

  NAPI_EXPORT_FUNCTION(fuse_native_mount)
  NAPI_EXPORT_FUNCTION(fuse_native_unmount)
  NAPI_EXPORT_FUNCTION(fuse_native_counters)
  NAPI_EXPORT_FUNCTION(fuse_native_span_file)
  NAPI_EXPORT_FUNCTION(fuse_native_prime)
  NAPI_EXPORT_FUNCTION(fuse_native_malloc_returnable)
  NAPI_EXPORT_FUNCTION(fuse_native_malloc_trim)

  NAPI_EXPORT_FUNCTION(fuse_native_signal_getattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_init)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_access)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_statfs)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_fgetattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_getattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_flush)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_fsync)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_fsyncdir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_readdir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_truncate)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_ftruncate)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_utimens)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_readlink)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_chown)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_chmod)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_mknod)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_setxattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_getxattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_listxattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_removexattr)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_open)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_opendir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_read)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_write)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_release)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_releasedir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_create)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_unlink)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_rename)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_link)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_symlink)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_mkdir)
  NAPI_EXPORT_FUNCTION(fuse_native_signal_rmdir)

  NAPI_EXPORT_UINT32(op_getattr)
  NAPI_EXPORT_UINT32(op_init)
  NAPI_EXPORT_UINT32(op_error)
  NAPI_EXPORT_UINT32(op_access)
  NAPI_EXPORT_UINT32(op_statfs)
  NAPI_EXPORT_UINT32(op_fgetattr)
  NAPI_EXPORT_UINT32(op_getattr)
  NAPI_EXPORT_UINT32(op_flush)
  NAPI_EXPORT_UINT32(op_fsync)
  NAPI_EXPORT_UINT32(op_fsyncdir)
  NAPI_EXPORT_UINT32(op_readdir)
  NAPI_EXPORT_UINT32(op_truncate)
  NAPI_EXPORT_UINT32(op_ftruncate)
  NAPI_EXPORT_UINT32(op_utimens)
  NAPI_EXPORT_UINT32(op_readlink)
  NAPI_EXPORT_UINT32(op_chown)
  NAPI_EXPORT_UINT32(op_chmod)
  NAPI_EXPORT_UINT32(op_mknod)
  NAPI_EXPORT_UINT32(op_setxattr)
  NAPI_EXPORT_UINT32(op_getxattr)
  NAPI_EXPORT_UINT32(op_listxattr)
  NAPI_EXPORT_UINT32(op_removexattr)
  NAPI_EXPORT_UINT32(op_open)
  NAPI_EXPORT_UINT32(op_opendir)
  NAPI_EXPORT_UINT32(op_read)
  NAPI_EXPORT_UINT32(op_write)
  NAPI_EXPORT_UINT32(op_release)
  NAPI_EXPORT_UINT32(op_releasedir)
  NAPI_EXPORT_UINT32(op_create)
  NAPI_EXPORT_UINT32(op_unlink)
  NAPI_EXPORT_UINT32(op_rename)
  NAPI_EXPORT_UINT32(op_link)
  NAPI_EXPORT_UINT32(op_symlink)
  NAPI_EXPORT_UINT32(op_mkdir)
  NAPI_EXPORT_UINT32(op_rmdir)
}
