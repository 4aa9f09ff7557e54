/*
 * ocimount's block inflater: zlib's raw inflate with Z_BLOCK, for the gzip index pass
 * (src/compress/gzip-seek.ts, zlib's examples/zran.c design).
 *
 * Why an addon: the index pass must stop at deflate block boundaries and know how many bits of
 * the last byte belong to the next block (z_stream.data_type). Node's zlib binding exposes
 * neither, so the pass ran in pako (zlib ported to JavaScript), at a third of native speed or
 * less; it was the pass's main cost (bench/README.md, "Where the first pass spends its time").
 * This is the same zlib code, compiled: no zlib of our own is linked, the symbols are the ones
 * the node binary exports (its bundled zlib), headers from node's include folder.
 *
 * Surface (one stream per handle, raw deflate, window bits 15):
 *   create() -> handle          reset(handle)          message(handle) -> string | undefined
 *   step(handle, input, inOff, inLen, output, outOff, outLen, result: Int32Array(4))
 *     one inflate(Z_BLOCK) call; result = [zlib return code, input bytes used,
 *     output bytes made, data_type]. Buffers are only touched during the call.
 */
#include <stdlib.h>
#include <string.h>
#include <node_api.h>
#include <zlib.h>

#define CHECK(call)                                                                         \
  do {                                                                                      \
    if ((call) != napi_ok) {                                                                \
      napi_throw_error(env, NULL, "ocimount_inflate: N-API call failed: " #call);           \
      return NULL;                                                                          \
    }                                                                                       \
  } while (0)

static void finalize_stream(napi_env env, void *data, void *hint) {
  z_stream *strm = (z_stream *)data;
  inflateEnd(strm);
  free(strm);
}

static z_stream *stream_arg(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "ocimount_inflate: not an inflate handle");
    return NULL;
  }
  return (z_stream *)data;
}

static int bytes_arg(napi_env env, napi_value v, uint8_t **base, size_t *len) {
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "ocimount_inflate: expected a Uint8Array");
    return 0;
  }
  *base = (uint8_t *)data;
  *len = length;
  return 1;
}

static int uint_arg(napi_env env, napi_value v, size_t limit, size_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > (double)limit || d != (double)(size_t)d) {
    napi_throw_range_error(env, NULL, "ocimount_inflate: offset or length out of range");
    return 0;
  }
  *out = (size_t)d;
  return 1;
}

static napi_value create(napi_env env, napi_callback_info info) {
  z_stream *strm = (z_stream *)calloc(1, sizeof(z_stream));
  if (strm == NULL) {
    napi_throw_error(env, NULL, "ocimount_inflate: out of memory");
    return NULL;
  }
  int rc = inflateInit2(strm, -15);
  if (rc != Z_OK) {
    free(strm);
    napi_throw_error(env, NULL, "ocimount_inflate: inflateInit2 failed");
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, strm, finalize_stream, NULL, &handle) != napi_ok) {
    inflateEnd(strm);
    free(strm);
    napi_throw_error(env, NULL, "ocimount_inflate: napi_create_external failed");
    return NULL;
  }
  return handle;
}

static napi_value reset(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  z_stream *strm = stream_arg(env, argv[0]);
  if (strm == NULL) return NULL;
  inflateReset(strm);
  return NULL;
}

static napi_value message(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  z_stream *strm = stream_arg(env, argv[0]);
  if (strm == NULL) return NULL;
  if (strm->msg == NULL) {
    CHECK(napi_get_undefined(env, &result));
  } else {
    CHECK(napi_create_string_utf8(env, strm->msg, NAPI_AUTO_LENGTH, &result));
  }
  return result;
}

static napi_value step(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) {
    napi_throw_type_error(env, NULL, "ocimount_inflate: step needs 8 arguments");
    return NULL;
  }
  z_stream *strm = stream_arg(env, argv[0]);
  if (strm == NULL) return NULL;
  uint8_t *in, *out;
  size_t inSize, outSize, inOff, inLen, outOff, outLen;
  if (!bytes_arg(env, argv[1], &in, &inSize) || !uint_arg(env, argv[2], inSize, &inOff) ||
      !uint_arg(env, argv[3], inSize - inOff, &inLen) || !bytes_arg(env, argv[4], &out, &outSize) ||
      !uint_arg(env, argv[5], outSize, &outOff) || !uint_arg(env, argv[6], outSize - outOff, &outLen)) {
    return NULL;
  }
  napi_typedarray_type type;
  size_t rlen, roff;
  void *rdata;
  napi_value rab;
  if (napi_get_typedarray_info(env, argv[7], &type, &rlen, &rdata, &rab, &roff) != napi_ok || type != napi_int32_array || rlen < 4) {
    napi_throw_type_error(env, NULL, "ocimount_inflate: result must be an Int32Array of 4");
    return NULL;
  }
  int32_t *result = (int32_t *)rdata;
  /* zlib's avail fields are 32-bit: callers pass windows of a few MiB. */
  if (inLen > 0x7fffffff || outLen > 0x7fffffff) {
    napi_throw_range_error(env, NULL, "ocimount_inflate: buffers over 2 GiB");
    return NULL;
  }
  strm->next_in = in + inOff;
  strm->avail_in = (uInt)inLen;
  strm->next_out = out + outOff;
  strm->avail_out = (uInt)outLen;
  int rc = inflate(strm, Z_BLOCK);
  result[0] = rc;
  result[1] = (int32_t)(inLen - strm->avail_in);
  result[2] = (int32_t)(outLen - strm->avail_out);
  result[3] = strm->data_type;
  /* No pointer into JS memory outlives the call. */
  strm->next_in = Z_NULL;
  strm->next_out = Z_NULL;
  strm->avail_in = 0;
  strm->avail_out = 0;
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "create", NULL, create, NULL, NULL, NULL, napi_default, NULL },
    { "reset", NULL, reset, NULL, NULL, NULL, napi_default, NULL },
    { "message", NULL, message, NULL, NULL, NULL, napi_default, NULL },
    { "step", NULL, step, NULL, NULL, NULL, napi_default, NULL },
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  return exports;
}
