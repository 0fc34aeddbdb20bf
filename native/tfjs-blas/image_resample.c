// The image pipeline's resampling off the main thread: PIL's bicubic resize (Pillow's
// ImagingResample for 8-bit RGB, its 22-bit fixed-point arithmetic bit for bit), the center crop
// and the float32 channels-first output, as async Node-API work on libuv's threadpool, so images
// are resampled on every core at once, beside sharp's decoding on the same pool.
//
// Its own addon (vlbench_image.node), linked against nothing but libc: loading it must not load
// OpenBLAS, whose thread count and kernel choice models/backends/wasm-blas.ts sets before it loads.
//
// JavaScript (models/image-resample.ts) computes the per-axis coefficients (Pillow's
// precompute_coeffs + normalize_coeffs_8bpc) and the 3 × 256 float32 values of the normalisation,
// and passes them in: the arithmetic that is done in floating point is done once, in one place,
// and this file only does the integer sums and the table look-ups, which cannot differ from the
// JavaScript fallback.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#include <node_api.h>

#define PRECISION_BITS 22

static inline uint8_t clip8(int32_t sum) {
  int32_t v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

typedef struct {
  const int32_t* first;
  const int32_t* count;
  const int32_t* weights;
  int taps;
} Axis;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep;  // the arguments' typed arrays, alive until the work completes
  const uint8_t* src;
  int width, height;
  int has_h, has_v;
  Axis h, v;
  int left, top, crop_width, crop_height;
  const float* lut;  // 3 × 256 values, or NULL for packed RGB bytes out
  void* out;
  const char* error;
} Job;

// One output pixel of the horizontal pass, as Pillow computes it: three int32 sums of n taps.
static inline void horizontal_pixel(const uint8_t* p, const int32_t* w, int n, uint8_t* o) {
  const int32_t half = 1 << (PRECISION_BITS - 1);
  int32_t r = half, g = half, b = half;
  for (int k = 0; k < n; k++) {
    r += p[3 * k] * w[k];
    g += p[3 * k + 1] * w[k];
    b += p[3 * k + 2] * w[k];
  }
  o[0] = clip8(r);
  o[1] = clip8(g);
  o[2] = clip8(b);
}

// Horizontal pass over input rows [r0, r1), output columns [left, left + cw): packed RGB bytes.
static void horizontal_scalar(const uint8_t* src, int width, int height, const Axis* h, int r0, int r1, int left, int cw, uint8_t* tmp) {
  (void)height;
  for (int r = r0; r < r1; r++) {
    const uint8_t* in = src + (size_t)r * width * 3;
    uint8_t* o = tmp + (size_t)(r - r0) * cw * 3;
    for (int x = 0; x < cw; x++) {
      const int i = left + x;
      horizontal_pixel(in + (size_t)h->first[i] * 3, h->weights + (size_t)i * h->taps, h->count[i], o + 3 * x);
    }
  }
}

#ifdef HAVE_X86
static inline uint32_t load4(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

// The same sums with AVX2: the R, G, B (and one ignored) bytes of two taps as eight int32
// lanes, times their weights, added lane-wise; the lanes of the two taps are added at the end.
// Integer sums in another order are the same sums, and packing with signed then unsigned
// saturation is clip8: the bytes are the scalar pass's. A pixel's four bytes read one past its
// last tap's blue, so where that byte would lie past the image (the last row's right edge) the
// scalar code runs.
__attribute__((target("avx2"))) static void horizontal_avx2(const uint8_t* src, int width, int height, const Axis* h, int r0, int r1, int left, int cw, uint8_t* tmp) {
  const __m128i half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
  for (int r = r0; r < r1; r++) {
    const uint8_t* in = src + (size_t)r * width * 3;
    uint8_t* o = tmp + (size_t)(r - r0) * cw * 3;
    for (int x = 0; x < cw; x++) {
      const int i = left + x;
      const int lo = h->first[i];
      const int n = h->count[i];
      const int32_t* w = h->weights + (size_t)i * h->taps;
      const uint8_t* p = in + (size_t)lo * 3;
      if (r == height - 1 && lo + n == width) {
        horizontal_pixel(p, w, n, o + 3 * x);
        continue;
      }
      __m256i acc = _mm256_setzero_si256();
      int k = 0;
      for (; k + 1 < n; k += 2) {
        const __m128i two = _mm_unpacklo_epi32(_mm_cvtsi32_si128((int)load4(p + 3 * k)), _mm_cvtsi32_si128((int)load4(p + 3 * k + 3)));
        const __m256i weights = _mm256_set_m128i(_mm_set1_epi32(w[k + 1]), _mm_set1_epi32(w[k]));
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(two), weights));
      }
      __m128i sum = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1)), half);
      if (k < n) sum = _mm_add_epi32(sum, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_cvtsi32_si128((int)load4(p + 3 * k))), _mm_set1_epi32(w[k])));
      sum = _mm_srai_epi32(sum, PRECISION_BITS);
      const uint32_t bytes = (uint32_t)_mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(sum, sum), _mm_setzero_si128()));
      o[3 * x] = (uint8_t)bytes;
      o[3 * x + 1] = (uint8_t)(bytes >> 8);
      o[3 * x + 2] = (uint8_t)(bytes >> 16);
    }
  }
}

// Faster still, four taps per step, with 16-bit multiply-adds: each weight split as
// w = hi · 256 + lo (lo = w & 255, hi = w >> 8, which fits 16 bits for every weight but those of
// kernels clipped hard at an edge, where this returns 0 and the pass above runs), so that
// Σ p·w = 256 · Σ p·hi + Σ p·lo. Sums modulo 2^32 are the same sums (the true one fits 32 bits),
// so the bytes are the scalar pass's. A 128-bit lane holds two taps' R, G, B as 16-bit pairs;
// the weights of each column are laid out once per call. Taps past a column's count have weight
// 0, and the 16 bytes read from a step's first tap stay inside the image (else the scalar code).
__attribute__((target("avx2"))) static int horizontal_madd(const uint8_t* src, int width, int height, const Axis* h, int r0, int r1, int left, int cw, uint8_t* tmp) {
  const int groups_max = (h->taps + 3) / 4;
  int16_t* table = aligned_alloc(32, (size_t)cw * groups_max * 2 * 16 * sizeof(int16_t));
  if (!table) return 0;
  for (int x = 0; x < cw; x++) {
    const int i = left + x;
    const int n = h->count[i];
    for (int g = 0; g < groups_max; g++) {
      int16_t* hi = table + ((size_t)x * groups_max + g) * 32;
      int16_t* lo = hi + 16;
      for (int t = 0; t < 4; t++) {
        const int k = 4 * g + t;
        const int32_t w = k < n ? h->weights[(size_t)i * h->taps + k] : 0;
        const int32_t w_hi = w >> 8;
        if (w_hi < -32768 || w_hi > 32767) {
          free(table);
          return 0;
        }
        for (int q = 0; q < 4; q++) {
          hi[(t / 2) * 8 + q * 2 + t % 2] = (int16_t)w_hi;
          lo[(t / 2) * 8 + q * 2 + t % 2] = (int16_t)(w & 255);
        }
      }
    }
  }
  // Lane 0: taps 0 and 1 of the step (bytes 0..5); lane 1: taps 2 and 3 (bytes 6..11).
  const __m256i order = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1, 6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
  const __m128i half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
  const size_t total = (size_t)width * height * 3;
  for (int r = r0; r < r1; r++) {
    const uint8_t* in = src + (size_t)r * width * 3;
    uint8_t* o = tmp + (size_t)(r - r0) * cw * 3;
    for (int x = 0; x < cw; x++) {
      const int i = left + x;
      const int lo_tap = h->first[i];
      const int n = h->count[i];
      const int groups = (n + 3) / 4;
      const uint8_t* p = in + (size_t)lo_tap * 3;
      if ((size_t)(p - src) + (size_t)12 * groups + 4 > total) {
        horizontal_pixel(p, h->weights + (size_t)i * h->taps, n, o + 3 * x);
        continue;
      }
      const int16_t* w = table + (size_t)x * groups_max * 32;
      __m256i sum_hi = _mm256_setzero_si256();
      __m256i sum_lo = _mm256_setzero_si256();
      for (int g = 0; g < groups; g++) {
        const __m256i pixels = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i*)(p + 12 * g))), order);
        sum_hi = _mm256_add_epi32(sum_hi, _mm256_madd_epi16(pixels, _mm256_load_si256((const __m256i*)(w + g * 32))));
        sum_lo = _mm256_add_epi32(sum_lo, _mm256_madd_epi16(pixels, _mm256_load_si256((const __m256i*)(w + g * 32 + 16))));
      }
      const __m256i sum = _mm256_add_epi32(_mm256_slli_epi32(sum_hi, 8), sum_lo);
      __m128i s = _mm_add_epi32(_mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1)), half);
      s = _mm_srai_epi32(s, PRECISION_BITS);
      const uint32_t bytes = (uint32_t)_mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(s, s), _mm_setzero_si128()));
      o[3 * x] = (uint8_t)bytes;
      o[3 * x + 1] = (uint8_t)(bytes >> 8);
      o[3 * x + 2] = (uint8_t)(bytes >> 16);
    }
  }
  free(table);
  return 1;
}
#endif

// The horizontal pass: 0 scalar, 1 AVX2 32-bit multiplies, 2 AVX2 16-bit multiply-adds (falling
// back to 1 where a weight does not split). The best the CPU has, or VLBENCH_IMAGE_SIMD's
// "scalar" or "avx2-mullo" (the tests run each).
static int horizontal_kind = 0;
static const char* const KIND_NAMES[] = {"scalar", "avx2-mullo", "avx2-madd"};

static void horizontal(const uint8_t* src, int width, int height, const Axis* h, int r0, int r1, int left, int cw, uint8_t* tmp) {
#ifdef HAVE_X86
  if (horizontal_kind == 2 && horizontal_madd(src, width, height, h, r0, r1, left, cw, tmp)) return;
  if (horizontal_kind >= 1) {
    horizontal_avx2(src, width, height, h, r0, r1, left, cw, tmp);
    return;
  }
#endif
  horizontal_scalar(src, width, height, h, r0, r1, left, cw, tmp);
}

// One output row of the vertical pass: rows of `source` (stride bytes apart), weighted.
#ifdef HAVE_X86
__attribute__((target_clones("avx2", "default")))
#endif
static void vertical_row(const uint8_t* source, size_t stride, int n, const int32_t* w, int length, int32_t* sums, uint8_t* out) {
  const int32_t half = 1 << (PRECISION_BITS - 1);
  for (int i = 0; i < length; i++) sums[i] = half;
  for (int k = 0; k < n; k++) {
    const uint8_t* row = source + (size_t)k * stride;
    const int32_t wk = w[k];
    for (int i = 0; i < length; i++) sums[i] += row[i] * wk;
  }
  for (int i = 0; i < length; i++) out[i] = clip8(sums[i]);
}

// One cropped output row (packed RGB) to its place in the output.
static void emit_row(const Job* j, int y, const uint8_t* row) {
  const int cw = j->crop_width;
  if (!j->lut) {
    memcpy((uint8_t*)j->out + (size_t)y * cw * 3, row, (size_t)cw * 3);
    return;
  }
  const size_t plane = (size_t)cw * j->crop_height;
  float* r = (float*)j->out + (size_t)y * cw;
  float* g = r + plane;
  float* b = g + plane;
  const float* lr = j->lut;
  const float* lg = j->lut + 256;
  const float* lb = j->lut + 512;
  for (int x = 0; x < cw; x++) {
    r[x] = lr[row[3 * x]];
    g[x] = lg[row[3 * x + 1]];
    b[x] = lb[row[3 * x + 2]];
  }
}

static void run(Job* j) {
  const int cw = j->crop_width, ch = j->crop_height;
  // The input rows the cropped output rows read.
  int r0, r1;
  if (j->has_v) {
    r0 = j->v.first[j->top];
    r1 = r0;
    for (int y = j->top; y < j->top + ch; y++) {
      if (j->v.first[y] < r0) r0 = j->v.first[y];
      if (j->v.first[y] + j->v.count[y] > r1) r1 = j->v.first[y] + j->v.count[y];
    }
  } else {
    r0 = j->top;
    r1 = j->top + ch;
  }
  // Rows of the horizontally resampled (or, without that pass, the input) image, cropped to
  // the output's columns.
  const uint8_t* source;
  size_t stride;
  uint8_t* tmp = NULL;
  if (j->has_h) {
    tmp = malloc((size_t)(r1 - r0) * cw * 3);
    if (!tmp) {
      j->error = "out of memory";
      return;
    }
    horizontal(j->src, j->width, j->height, &j->h, r0, r1, j->left, cw, tmp);
    source = tmp;
    stride = (size_t)cw * 3;
  } else {
    source = j->src + (size_t)r0 * j->width * 3 + (size_t)j->left * 3;
    stride = (size_t)j->width * 3;
  }
  uint8_t* row = malloc((size_t)cw * 3);
  int32_t* sums = malloc((size_t)cw * 3 * sizeof(int32_t));
  if (!row || !sums) {
    j->error = "out of memory";
  } else {
    for (int y = 0; y < ch; y++) {
      if (j->has_v) {
        const int yy = j->top + y;
        vertical_row(source + (size_t)(j->v.first[yy] - r0) * stride, stride, j->v.count[yy], j->v.weights + (size_t)yy * j->v.taps, cw * 3, sums, row);
        emit_row(j, y, row);
      } else {
        emit_row(j, y, source + (size_t)(j->top + y - r0) * stride);
      }
    }
  }
  free(row);
  free(sums);
  free(tmp);
}

static void execute(napi_env env, void* data) { run((Job*)data); }

static void complete(napi_env env, napi_status status, void* data) {
  Job* j = (Job*)data;
  napi_value value;
  if (status != napi_ok || j->error) {
    napi_value message;
    napi_create_string_utf8(env, j->error ? j->error : "vlbench-image: the work was cancelled", NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, NULL, message, &value);
    napi_reject_deferred(env, j->deferred, value);
  } else {
    napi_get_undefined(env, &value);
    napi_resolve_deferred(env, j->deferred, value);
  }
  napi_delete_reference(env, j->keep);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value fail(napi_env env, Job* j, const char* message) {
  free(j);
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static int is_null(napi_env env, napi_value value) {
  napi_valuetype type;
  return napi_typeof(env, value, &type) == napi_ok && (type == napi_null || type == napi_undefined);
}

static void* typed(napi_env env, napi_value value, napi_typedarray_type expected, size_t* length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return NULL;
  napi_typedarray_type type;
  void* data = NULL;
  // A Node Buffer is a Uint8Array.
  if (napi_get_typedarray_info(env, value, &type, length, &data, NULL, NULL) != napi_ok || type != expected) return NULL;
  return data;
}

static int get_int(napi_env env, napi_value value, int* out) {
  int32_t v;
  if (napi_get_value_int32(env, value, &v) != napi_ok) return 0;
  *out = v;
  return 1;
}

// Reads one axis (first, count, weights, taps) from args[i..i+3], checked against the sizes.
static const char* get_axis(napi_env env, napi_value* args, Axis* axis, int in_size, int out_size) {
  size_t n_first, n_count, n_weights;
  axis->first = typed(env, args[0], napi_int32_array, &n_first);
  axis->count = typed(env, args[1], napi_int32_array, &n_count);
  axis->weights = typed(env, args[2], napi_int32_array, &n_weights);
  if (!axis->first || !axis->count || !axis->weights || !get_int(env, args[3], &axis->taps)) return "vlbench-image: an axis is (Int32Array, Int32Array, Int32Array, taps)";
  if (n_first != (size_t)out_size || n_count != (size_t)out_size || axis->taps < 1 || n_weights != (size_t)out_size * axis->taps) return "vlbench-image: an axis's coefficients do not match its output size";
  for (int i = 0; i < out_size; i++) {
    if (axis->first[i] < 0 || axis->count[i] < 0 || axis->count[i] > axis->taps || axis->first[i] + axis->count[i] > in_size) return "vlbench-image: an axis's coefficients read outside the image";
  }
  return NULL;
}

// resampleCrop(src, width, height, outWidth, outHeight,
//              hFirst, hCount, hWeights, hTaps,   (or four nulls: the width is not resampled)
//              vFirst, vCount, vWeights, vTaps,   (or four nulls: the height is not resampled)
//              left, top, cropWidth, cropHeight, lut, out) -> Promise<void>
// src: packed RGB bytes, width × height. The image is resized to outWidth × outHeight and the
// window [left, left + cropWidth) × [top, top + cropHeight) of it is written to out: with lut
// (a Float32Array of 3 × 256), channels first as lut[c * 256 + byte] (out a Float32Array of
// 3 × cropWidth × cropHeight); with lut null, the packed RGB bytes (out a Uint8Array).
static napi_value resample_crop(napi_env env, napi_callback_info info) {
  size_t argc = 19;
  napi_value args[19];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 19) {
    napi_throw_type_error(env, NULL, "vlbench-image resampleCrop: expected 19 arguments");
    return NULL;
  }
  Job* j = calloc(1, sizeof(Job));
  if (!j) {
    napi_throw_error(env, NULL, "vlbench-image: out of memory");
    return NULL;
  }
  size_t n_src;
  int out_width, out_height;
  j->src = typed(env, args[0], napi_uint8_array, &n_src);
  if (!j->src) return fail(env, j, "vlbench-image resampleCrop: src must be a Uint8Array");
  if (!get_int(env, args[1], &j->width) || !get_int(env, args[2], &j->height) || !get_int(env, args[3], &out_width) || !get_int(env, args[4], &out_height)) return fail(env, j, "vlbench-image resampleCrop: sizes must be integers");
  if (j->width < 1 || j->height < 1 || out_width < 1 || out_height < 1 || n_src != (size_t)j->width * j->height * 3) return fail(env, j, "vlbench-image resampleCrop: src is not width × height × 3 bytes");
  j->has_h = !is_null(env, args[5]);
  j->has_v = !is_null(env, args[9]);
  const char* problem = NULL;
  if (j->has_h) problem = get_axis(env, args + 5, &j->h, j->width, out_width);
  else if (out_width != j->width) problem = "vlbench-image resampleCrop: without horizontal coefficients the width must stay";
  if (!problem && j->has_v) problem = get_axis(env, args + 9, &j->v, j->height, out_height);
  else if (!problem && out_height != j->height) problem = "vlbench-image resampleCrop: without vertical coefficients the height must stay";
  if (problem) return fail(env, j, problem);
  if (!get_int(env, args[13], &j->left) || !get_int(env, args[14], &j->top) || !get_int(env, args[15], &j->crop_width) || !get_int(env, args[16], &j->crop_height)) return fail(env, j, "vlbench-image resampleCrop: the crop must be integers");
  if (j->left < 0 || j->top < 0 || j->crop_width < 1 || j->crop_height < 1 || j->left + j->crop_width > out_width || j->top + j->crop_height > out_height) return fail(env, j, "vlbench-image resampleCrop: the crop is not inside the resized image");
  size_t n_out;
  const size_t values = (size_t)j->crop_width * j->crop_height * 3;
  if (is_null(env, args[17])) {
    j->lut = NULL;
    j->out = typed(env, args[18], napi_uint8_array, &n_out);
    if (!j->out || n_out != values) return fail(env, j, "vlbench-image resampleCrop: without a lut, out must be a Uint8Array of cropWidth × cropHeight × 3");
  } else {
    size_t n_lut;
    j->lut = typed(env, args[17], napi_float32_array, &n_lut);
    if (!j->lut || n_lut != 768) return fail(env, j, "vlbench-image resampleCrop: lut must be a Float32Array of 3 × 256");
    j->out = typed(env, args[18], napi_float32_array, &n_out);
    if (!j->out || n_out != values) return fail(env, j, "vlbench-image resampleCrop: with a lut, out must be a Float32Array of 3 × cropWidth × cropHeight");
  }
  // Every typed array stays referenced (so its memory stays) until the work is done.
  napi_value keep, name, promise;
  if (napi_create_array_with_length(env, 19, &keep) != napi_ok) return fail(env, j, "vlbench-image: N-API failed");
  for (uint32_t i = 0; i < 19; i++) napi_set_element(env, keep, i, args[i]);
  if (napi_create_reference(env, keep, 1, &j->keep) != napi_ok) return fail(env, j, "vlbench-image: N-API failed");
  napi_create_string_utf8(env, "vlbench-image:resampleCrop", NAPI_AUTO_LENGTH, &name);
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok || napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok || napi_queue_async_work(env, j->work) != napi_ok) {
    napi_throw_error(env, NULL, "vlbench-image: could not queue the work");
    return NULL;
  }
  return promise;
}

NAPI_MODULE_INIT() {
  napi_value fn;
#ifdef HAVE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) {
    const char* forced = getenv("VLBENCH_IMAGE_SIMD");
    horizontal_kind = forced && strcmp(forced, "scalar") == 0 ? 0 : forced && strcmp(forced, "avx2-mullo") == 0 ? 1 : 2;
  }
#endif
  if (napi_create_function(env, "resampleCrop", NAPI_AUTO_LENGTH, resample_crop, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "resampleCrop", fn) != napi_ok) return NULL;
  // Which horizontal pass runs: "avx2-madd", "avx2-mullo" or "scalar".
  napi_value simd;
  if (napi_create_string_utf8(env, KIND_NAMES[horizontal_kind], NAPI_AUTO_LENGTH, &simd) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "simd", simd) != napi_ok) return NULL;
  return exports;
}
