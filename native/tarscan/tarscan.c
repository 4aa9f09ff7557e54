/*
 * ocimount's plain tar header scanner, for the index of an uncompressed layer in a local file
 * (src/tar/native-scan.ts drives it, src/tar/scan.ts is the reader it serves).
 *
 * Why an addon: a cold mount is mostly the header walk, and in JavaScript a header costs about
 * 10 us (a window copy, a decode, a row); here about 1-2 us, most of it the read
 * (bench/README.md, "Native header scan"). It takes only the members whose meaning is beyond
 * doubt, and stops, without consuming it, at the first header it does not take, so the
 * JavaScript scanner (the one that follows Go's archive/tar in every case) reads that one:
 *   - a regular file ('0'), hard link ('1'), symlink ('2') or directory ('5'), with no
 *     extension header (pax, GNU long name) before it: the caller only starts a run then, and
 *     any other typeflag ends it;
 *   - ustar (not star) or GNU format, checksum right (Go's signed or unsigned sum), every number
 *     field octal and readable, device fields included, as Go and decodeHeader require;
 *   - a path and hard link target that do not climb out of the root, a root entry only as a
 *     directory, and data that ends inside the stream.
 * Anything else (end of archive, a zero block, a short read, a bad header) is the JavaScript
 * scanner's to read and report, so both give the same index, warnings and errors
 * (test/native-scan.test.ts compares them).
 *
 * Surface:
 *   scan(fd, base, size, columns: TypedArray[12], state: Float64Array(7))
 *     reads the stream of `size` bytes at byte `base` of the file open as `fd`;
 *     columns, the index builder's arrays (src/tar/tar-index.ts), in this order: path pool,
 *     path starts, types, modes, uids, gids, sizes, mtimes, mtime nanoseconds, data offsets,
 *     link pool, link rows (Uint32Array of [row, start, end] triples);
 *     state in: [pos, rows, path pool used, links, link pool used, -, slashes]; out: the same
 *     after the run (slashes: in the paths it wrote), and [5] why it stopped: 0 at a header
 *     JavaScript must read, 1 out of room.
 *   scanAsync(same arguments) -> Promise: the same on a thread of libuv's pool.
 * Bytes of JavaScript memory are only touched during the call (scanAsync: until it settles).
 */
#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>

#define BLOCK 512
#define STOP_HEADER 0
#define STOP_ROOM 1
/* The longest path a header alone can name: a 155-byte prefix, '/', a 100-byte name. */
#define MAX_PATH 256
#define MAX_LINK 100
enum { C_POOL, C_STARTS, C_TYPES, C_MODES, C_UIDS, C_GIDS, C_SIZES, C_MTIMES, C_NSECS, C_OFFSETS, C_LINKPOOL, C_LINKROWS, C_COUNT };

typedef struct {
  void *data;
  size_t length; /* elements */
} column;

/* Go's parseOctal as decodeHeader's octalIn reads it: spaces and NULs trimmed at both ends, the
 * text cut at a NUL inside, any other byte not an octal digit is an error (returns 0). */
static int octal(const uint8_t *b, int from, int to, double *out) {
  int start = from, end = to;
  while (start < end && (b[start] == ' ' || b[start] == 0)) start++;
  while (end > start && (b[end - 1] == ' ' || b[end - 1] == 0)) end--;
  uint64_t n = 0;
  for (int i = start; i < end; i++) {
    uint8_t c = b[i];
    if (c == 0) break;
    if (c < '0' || c > '7') return 0;
    n = n * 8 + (uint64_t)(c - '0');
  }
  *out = (double)n; /* at most 12 digits: exact */
  return 1;
}

/* A number field, octal only: base-256 (the high bit of the first byte) is left to JavaScript. */
static int number(const uint8_t *b, int from, int len, double *out) {
  if (b[from] & 0x80) return 0;
  return octal(b, from, from + len, out);
}

static size_t field_len(const uint8_t *b, int from, int len) {
  const uint8_t *nul = memchr(b + from, 0, (size_t)len);
  return nul ? (size_t)(nul - (b + from)) : (size_t)len;
}

static uint32_t byte_sum(const uint8_t *b, int from, int to) {
  uint32_t sum = 0;
  for (int i = from; i < to; i++) sum += b[i];
  return sum;
}

static uint32_t high_bits(const uint8_t *b, int from, int to) {
  uint32_t n = 0;
  for (int i = from; i < to; i++) n += b[i] >> 7;
  return n;
}

/*
 * Go accepts either sum: some old writers summed the bytes as signed chars. The checksum field
 * counts as eight spaces. Plain loops, so that the compiler vectorizes them: this was most of a
 * header's cost as one loop with both sums and a jump over the field.
 */
static int checksum_ok(const uint8_t *b) {
  double stored;
  if (!octal(b, 148, 156, &stored)) return 0;
  uint32_t sum = 8 * 0x20 + byte_sum(b, 0, 148) + byte_sum(b, 156, BLOCK);
  if (stored == (double)sum) return 1;
  return stored == (double)sum - 256.0 * (high_bits(b, 0, 148) + high_bits(b, 156, BLOCK));
}

/*
 * src/paths.ts normalizePath: no empty, '.' or '..' components, no leading or trailing slash;
 * '..' is resolved lexically and climbing past the root fails (returns -1). Writes to out.
 */
static int normalize(const uint8_t *in, size_t n, uint8_t *out) {
  size_t len = 0;
  size_t i = 0;
  while (i <= n) {
    size_t j = i;
    while (j < n && in[j] != '/') j++;
    size_t part = j - i;
    if (part == 0 || (part == 1 && in[i] == '.')) {
      /* skipped */
    } else if (part == 2 && in[i] == '.' && in[i + 1] == '.') {
      if (len == 0) return -1;
      while (len > 0 && out[len - 1] != '/') len--;
      if (len > 0) len--; /* the slash before the dropped component */
    } else {
      if (len > 0) out[len++] = '/';
      memcpy(out + len, in + i, part);
      len += part;
    }
    i = j + 1;
  }
  return (int)len;
}

/* What one taken header adds; filled by take(), written by the caller once room is known. */
typedef struct {
  uint8_t type;
  double mode, uid, gid, size, mtime;
  uint8_t path[MAX_PATH];
  int path_len;
  uint8_t link[MAX_LINK];
  int link_len; /* -1: no link target kept */
  double data_size;
} member;

/* Decodes the header in b when it is one this scanner takes (see the top); 0 when it is not. */
static int take(const uint8_t *b, member *m) {
  uint8_t flag = b[156];
  if (flag != '0' && flag != '1' && flag != '2' && flag != '5') return 0;
  if (!checksum_ok(b)) return 0;
  int is_ustar = memcmp(b + 257, "ustar", 5) == 0;
  int ustar = 0;
  if (is_ustar && b[262] == 0) {
    if (memcmp(b + 508, "tar\0", 4) == 0) return 0; /* star: its prefix is shorter */
    ustar = 1;
  } else if (!(is_ustar && b[262] == ' ' && b[263] == ' ' && b[264] == 0)) {
    return 0; /* v7 */
  }
  double devmajor, devminor;
  if (!number(b, 100, 8, &m->mode) || !number(b, 108, 8, &m->uid) || !number(b, 116, 8, &m->gid) ||
      !number(b, 124, 12, &m->size) || !number(b, 136, 12, &m->mtime) || !number(b, 329, 8, &devmajor) ||
      !number(b, 337, 8, &devminor)) {
    return 0;
  }
  uint8_t raw[MAX_PATH];
  size_t raw_len = 0;
  size_t prefix_len = ustar ? field_len(b, 345, 155) : 0;
  if (prefix_len) {
    memcpy(raw, b + 345, prefix_len);
    raw[prefix_len] = '/';
    raw_len = prefix_len + 1;
  }
  size_t name_len = field_len(b, 0, 100);
  memcpy(raw + raw_len, b, name_len);
  raw_len += name_len;
  m->type = (uint8_t)(flag - '0'); /* EntryType is numbered like the typeflags */
  m->path_len = normalize(raw, raw_len, m->path);
  if (m->path_len < 0) return 0;
  if (m->path_len == 0 && flag != '5') return 0;
  m->link_len = -1;
  size_t link_len = field_len(b, 157, 100);
  if (flag == '2') {
    memcpy(m->link, b + 157, link_len);
    m->link_len = (int)link_len;
  } else if (flag == '1') {
    m->link_len = normalize(b + 157, link_len, m->link);
    if (m->link_len < 0) return 0;
  }
  /* Go's header-only typeflags carry no data, whatever the size field says. */
  m->data_size = flag == '0' ? m->size : 0;
  if (flag != '0') m->size = 0;
  return 1;
}

/* Each column's element type: a wrong one would be written past its end. */
static const napi_typedarray_type COLUMN_TYPES[C_COUNT] = {
  napi_uint8_array, napi_uint32_array, napi_uint8_array, napi_uint16_array, napi_uint32_array, napi_uint32_array,
  napi_float64_array, napi_float64_array, napi_uint32_array, napi_float64_array, napi_uint8_array, napi_uint32_array,
};

static int get_columns(napi_env env, napi_value arr, column *cols) {
  uint32_t n;
  if (napi_get_array_length(env, arr, &n) != napi_ok || n != C_COUNT) return 0;
  for (uint32_t i = 0; i < C_COUNT; i++) {
    napi_value v, ab;
    napi_typedarray_type type;
    size_t offset;
    if (napi_get_element(env, arr, i, &v) != napi_ok) return 0;
    if (napi_get_typedarray_info(env, v, &type, &cols[i].length, &cols[i].data, &ab, &offset) != napi_ok) return 0;
    if (type != COLUMN_TYPES[i]) return 0;
  }
  return 1;
}

/*
 * Headers are read through a window of a few KiB: after a small file the next header is
 * usually in it, so a run of small files costs a read per window instead of one per header
 * (15-20% of the walk measured), while bigger data is jumped over unread.
 */
#define WINDOW (8 * 1024)

typedef struct {
  uint8_t bytes[WINDOW];
  double start; /* stream position of bytes[0] */
  size_t length;
} window;

/* The 512 bytes at stream position `pos`, or NULL when they cannot be read (short or failed:
 * the JavaScript reader reports it). */
static const uint8_t *block_at(int fd, double base, double size, window *w, double pos) {
  if (pos >= w->start && pos + BLOCK <= w->start + (double)w->length) return w->bytes + (size_t)(pos - w->start);
  double room = size - pos;
  size_t want = room < WINDOW ? (size_t)room : WINDOW;
  if (want < BLOCK) return NULL;
  size_t got = 0;
  while (got < BLOCK) {
    ssize_t n = pread(fd, w->bytes + got, want - got, (off_t)(base + pos) + (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  w->start = pos;
  w->length = got;
  return got >= BLOCK ? w->bytes : NULL;
}

/* One call's work: where to read, the columns to write, the state to resume from and report. */
typedef struct {
  int fd;
  double base, size;
  column cols[C_COUNT];
  double *state;
  /* Set only for scanAsync: keep the arrays alive until the work is done. */
  napi_async_work work;
  napi_deferred deferred;
  napi_ref cols_ref, state_ref;
} job;

static void run(job *j) {
  column *cols = j->cols;
  double *state = j->state;
  uint8_t *pool = cols[C_POOL].data, *types = cols[C_TYPES].data, *link_pool = cols[C_LINKPOOL].data;
  uint32_t *starts = cols[C_STARTS].data, *uids = cols[C_UIDS].data, *gids = cols[C_GIDS].data,
           *nsecs = cols[C_NSECS].data, *link_rows = cols[C_LINKROWS].data;
  uint16_t *modes = cols[C_MODES].data;
  double *sizes = cols[C_SIZES].data, *mtimes = cols[C_MTIMES].data, *offsets = cols[C_OFFSETS].data;
  size_t capacity = cols[C_TYPES].length;
  for (int i = C_MODES; i <= C_OFFSETS; i++) {
    if (cols[i].length < capacity) capacity = cols[i].length;
  }
  double pos = state[0];
  size_t row = (size_t)state[1], used = (size_t)state[2], links = (size_t)state[3], link_used = (size_t)state[4];
  double slashes = state[6];
  int why = STOP_HEADER;
  window *w = malloc(sizeof(window));
  if (w == NULL) goto done; /* no room to read: JavaScript reads on */
  w->start = -1;
  w->length = 0;
  const uint8_t *b;
  member m;
  for (;;) {
    if (row >= capacity || used + MAX_PATH > cols[C_POOL].length || link_used + MAX_LINK > cols[C_LINKPOOL].length ||
        (links + 1) * 3 > cols[C_LINKROWS].length || row + 1 >= cols[C_STARTS].length) {
      why = STOP_ROOM;
      break;
    }
    if (j->base + pos < 0 || pos + BLOCK > j->size || (b = block_at(j->fd, j->base, j->size, w, pos)) == NULL || !take(b, &m)) break;
    double data_start = pos + BLOCK;
    if (data_start + m.data_size > j->size) break; /* cut short: JavaScript reports the truncation */
    for (int k = 0; k < m.path_len; k++) slashes += m.path[k] == '/';
    memcpy(pool + used, m.path, (size_t)m.path_len);
    used += (size_t)m.path_len;
    starts[row + 1] = (uint32_t)used;
    types[row] = m.type;
    modes[row] = (uint16_t)((uint64_t)m.mode & 07777);
    uids[row] = (uint32_t)m.uid;
    gids[row] = (uint32_t)m.gid;
    sizes[row] = m.size;
    mtimes[row] = m.mtime;
    nsecs[row] = 0;
    offsets[row] = data_start;
    if (m.link_len >= 0) {
      memcpy(link_pool + link_used, m.link, (size_t)m.link_len);
      link_rows[links * 3] = (uint32_t)row;
      link_rows[links * 3 + 1] = (uint32_t)link_used;
      link_used += (size_t)m.link_len;
      link_rows[links * 3 + 2] = (uint32_t)link_used;
      links++;
    }
    row++;
    pos = data_start + (double)(((uint64_t)m.data_size + BLOCK - 1) / BLOCK * BLOCK);
  }
  free(w);
done:
  state[0] = pos;
  state[1] = (double)row;
  state[2] = (double)used;
  state[3] = (double)links;
  state[4] = (double)link_used;
  state[5] = why;
  state[6] = slashes;
}

/* The arguments of scan and scanAsync into `j`; 0 (with an exception pending) when they are wrong. */
static int job_args(napi_env env, napi_callback_info info, job *j, napi_value *cols_arr, napi_value *state_arr) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) {
    napi_throw_type_error(env, NULL, "ocimount_tarscan: scan needs 5 arguments");
    return 0;
  }
  size_t state_len, offset;
  napi_typedarray_type type;
  napi_value ab;
  if (napi_get_value_int32(env, argv[0], &j->fd) != napi_ok || napi_get_value_double(env, argv[1], &j->base) != napi_ok ||
      napi_get_value_double(env, argv[2], &j->size) != napi_ok || !get_columns(env, argv[3], j->cols) ||
      napi_get_typedarray_info(env, argv[4], &type, &state_len, (void **)&j->state, &ab, &offset) != napi_ok ||
      type != napi_float64_array || state_len < 7) {
    napi_throw_type_error(env, NULL, "ocimount_tarscan: bad arguments");
    return 0;
  }
  *cols_arr = argv[3];
  *state_arr = argv[4];
  return 1;
}

static napi_value scan(napi_env env, napi_callback_info info) {
  job j;
  napi_value cols_arr, state_arr;
  if (!job_args(env, info, &j, &cols_arr, &state_arr)) return NULL;
  run(&j);
  return NULL;
}

static void execute_job(napi_env env, void *data) {
  run((job *)data);
}

static void complete_job(napi_env env, napi_status status, void *data) {
  job *j = (job *)data;
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  if (status == napi_ok) {
    napi_resolve_deferred(env, j->deferred, undefined);
  } else {
    napi_value message, error;
    napi_create_string_utf8(env, "ocimount_tarscan: the scan did not run", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, j->deferred, error);
  }
  napi_delete_reference(env, j->cols_ref);
  napi_delete_reference(env, j->state_ref);
  napi_delete_async_work(env, j->work);
  free(j);
}

/*
 * scan on a thread of libuv's pool: the layers of an image scan side by side without a worker
 * thread's start (a new Node environment, ~100 ms). The caller must leave the arrays alone
 * until the promise settles; they are referenced so they stay alive.
 */
static napi_value scan_async(napi_env env, napi_callback_info info) {
  job *j = (job *)calloc(1, sizeof(job));
  if (j == NULL) {
    napi_throw_error(env, NULL, "ocimount_tarscan: out of memory");
    return NULL;
  }
  napi_value cols_arr, state_arr, promise, name;
  if (!job_args(env, info, j, &cols_arr, &state_arr)) {
    free(j);
    return NULL;
  }
  if (napi_create_reference(env, cols_arr, 1, &j->cols_ref) != napi_ok ||
      napi_create_reference(env, state_arr, 1, &j->state_ref) != napi_ok || napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "ocimount_tarscan", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute_job, complete_job, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    /* Not reached in practice; what was made is left to the process's end. */
    napi_throw_error(env, NULL, "ocimount_tarscan: could not queue the scan");
    return NULL;
  }
  return promise;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "scan", NULL, scan, NULL, NULL, NULL, napi_default, NULL },
    { "scanAsync", NULL, scan_async, NULL, NULL, NULL, napi_default, NULL },
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  return exports;
}
