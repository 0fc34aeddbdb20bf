// BLAS kernels for the tfjs wasm backend: single-precision matrix products (with tfjs's fused
// bias and activation) computed by the system's OpenBLAS directly on the wasm heap.
//
// JavaScript passes the heap (a Float32Array over the WebAssembly.Memory buffer) and element
// offsets into it; nothing is copied in or out. See README.md for why and how.
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <node_api.h>

#include "activations.h"

// Activation codes, in the order models/backends/wasm-blas.ts lists them.
enum Activation { LINEAR = 0, RELU = 1, RELU6 = 2, PRELU = 3, LEAKYRELU = 4, SIGMOID = 5, ELU = 6 };

#define CHECK(env, call)                                                  \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error((env), NULL, "tfjs-blas: N-API call failed: " #call); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

static int32_t get_int(napi_env env, napi_value value, int* ok) {
  int32_t out = 0;
  if (napi_get_value_int32(env, value, &out) != napi_ok) *ok = 0;
  return out;
}

static double get_double(napi_env env, napi_value value, int* ok) {
  double out = 0;
  if (napi_get_value_double(env, value, &out) != napi_ok) *ok = 0;
  return out;
}

// The data of a typed array of the expected kind, and its length in elements.
static void* typed_array_data(napi_env env, napi_value value, napi_typedarray_type expected, size_t* length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return NULL;
  napi_typedarray_type type;
  void* data = NULL;
  if (napi_get_typedarray_info(env, value, &type, length, &data, NULL, NULL) != napi_ok || type != expected) return NULL;
  return data;
}

typedef struct {
  float* heap;
  int trans_a, trans_b, m, n, k;
  const int32_t* a_offsets;
  const int32_t* b_offsets;
  int64_t c_offset;
  int first, last;  // batch range [first, last)
} GemmWork;

static void run_gemms(const GemmWork* w) {
  const int lda = w->trans_a ? w->m : w->k;
  const int ldb = w->trans_b ? w->k : w->n;
  for (int i = w->first; i < w->last; i++) {
    cblas_sgemm(CblasRowMajor, w->trans_a ? CblasTrans : CblasNoTrans, w->trans_b ? CblasTrans : CblasNoTrans, w->m, w->n, w->k, 1.0f,
                w->heap + w->a_offsets[i], lda, w->heap + w->b_offsets[i], ldb, 0.0f, w->heap + w->c_offset + (int64_t)i * w->m * w->n, w->n);
  }
}

static void* run_gemms_thread(void* arg) {
  run_gemms((const GemmWork*)arg);
  return NULL;
}

// OpenBLAS runs a product single-threaded below m·n·k = 65536·4 (SMP_THRESHOLD_MIN ·
// GEMM_MULTITHREAD_THRESHOLD in interface/gemm.c), so a batch of such products (attention
// scores: 64 images × 4 heads of 37×37×48) would use one core. Those calls never touch
// OpenBLAS's thread pool, so splitting the batch over our own threads is safe and uses the rest.
#define OPENBLAS_SINGLE_THREAD_BELOW (65536L * 4L)
#define MAX_THREADS 64
#define MIN_SPLIT_WORK (1L << 20)
static int configured_threads = 1;

static void gemm_batch(GemmWork* all, int batch) {
  const long work = (long)all->m * all->n * all->k;
  int threads = configured_threads;
  if (threads > batch) threads = batch;
  // Starting a thread costs tens of microseconds: only worth it for a batch with real work.
  if (threads <= 1 || work >= OPENBLAS_SINGLE_THREAD_BELOW || work * batch < MIN_SPLIT_WORK) {
    all->first = 0;
    all->last = batch;
    run_gemms(all);
    return;
  }
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  GemmWork parts[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (int t = 0; t < threads; t++) {
    parts[t] = *all;
    parts[t].first = (int)((long)batch * t / threads);
    parts[t].last = (int)((long)batch * (t + 1) / threads);
    if (t > 0) started[t] = pthread_create(&ids[t], NULL, run_gemms_thread, &parts[t]) == 0;
  }
  run_gemms(&parts[0]);
  for (int t = 1; t < threads; t++) {
    if (started[t]) pthread_join(ids[t], NULL);
    else run_gemms(&parts[t]);  // no thread to be had: do its share here
  }
}

static inline float activate(float x, int activation, float alpha, const float* prelu, int64_t prelu_size, int64_t index) {
  switch (activation) {
    case RELU: return x > 0 ? x : 0;
    case RELU6: return x < 0 ? 0 : (x > 6 ? 6 : x);
    // As the wasm kernel: weights indexed modulo their size (a per-channel vector or a full tensor).
    case PRELU: return x < 0 ? prelu[index % prelu_size] * x : x;
    case LEAKYRELU: return x < 0 ? alpha * x : x;
    case SIGMOID: return 1.0f / (1.0f + expf(-x));
    case ELU: return x < 0 ? expm1f(x) : x;
    default: return x;
  }
}

// Defined with the row kernels below: bias and activation over the product, split over threads.
static int apply_epilogue(float* heap, int64_t out, int64_t rows, int64_t cols, int64_t bias, int64_t bias_size, int activation, float alpha, int64_t prelu, int64_t prelu_size);

// gemm(heap, transA, transB, m, n, k, aOffsets, bOffsets, cOffset,
//      biasOffset, biasSize, activation, alpha, preluOffset, preluSize)
// For batch i (aOffsets.length of them): C_i = op(A_i)·op(B_i), C_i at cOffset + i·m·n, then
// C += bias (biasSize values, broadcast along rows; biasOffset < 0: none) and the activation.
// Offsets count float32 elements from the start of the heap.
static napi_value gemm(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value args[15];
  CHECK(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  if (argc != 15) {
    napi_throw_type_error(env, NULL, "tfjs-blas gemm: expected 15 arguments");
    return NULL;
  }
  size_t heap_length = 0, batch_a = 0, batch_b = 0;
  float* heap = typed_array_data(env, args[0], napi_float32_array, &heap_length);
  const int32_t* a_offsets = typed_array_data(env, args[6], napi_int32_array, &batch_a);
  const int32_t* b_offsets = typed_array_data(env, args[7], napi_int32_array, &batch_b);
  if (!heap || !a_offsets || !b_offsets || batch_a != batch_b) {
    napi_throw_type_error(env, NULL, "tfjs-blas gemm: expected a Float32Array heap and two Int32Array offset lists of one length");
    return NULL;
  }
  int ok = 1;
  GemmWork work = {0};
  work.heap = heap;
  work.trans_a = get_int(env, args[1], &ok);
  work.trans_b = get_int(env, args[2], &ok);
  work.m = get_int(env, args[3], &ok);
  work.n = get_int(env, args[4], &ok);
  work.k = get_int(env, args[5], &ok);
  work.a_offsets = a_offsets;
  work.b_offsets = b_offsets;
  work.c_offset = (int64_t)get_double(env, args[8], &ok);
  const int64_t bias_offset = (int64_t)get_double(env, args[9], &ok);
  const int64_t bias_size = get_int(env, args[10], &ok);
  const int activation = get_int(env, args[11], &ok);
  const float alpha = (float)get_double(env, args[12], &ok);
  const int64_t prelu_offset = (int64_t)get_double(env, args[13], &ok);
  const int64_t prelu_size = get_int(env, args[14], &ok);
  if (!ok || work.m < 0 || work.n < 0 || work.k < 0 || activation < LINEAR || activation > ELU) {
    napi_throw_type_error(env, NULL, "tfjs-blas gemm: bad numeric argument");
    return NULL;
  }
  const int batch = (int)batch_a;
  const int64_t out_size = (int64_t)batch * work.m * work.n;
  // Bounds: a wrong offset from JavaScript must fail here, not corrupt the heap.
  const int64_t a_size = (int64_t)work.m * work.k, b_size = (int64_t)work.k * work.n;
  for (int i = 0; i < batch; i++) {
    if (a_offsets[i] < 0 || a_offsets[i] + a_size > (int64_t)heap_length || b_offsets[i] < 0 || b_offsets[i] + b_size > (int64_t)heap_length) {
      napi_throw_range_error(env, NULL, "tfjs-blas gemm: operand outside the heap");
      return NULL;
    }
  }
  if (work.c_offset < 0 || work.c_offset + out_size > (int64_t)heap_length || (bias_offset >= 0 && (bias_size <= 0 || bias_offset + bias_size > (int64_t)heap_length)) ||
      (activation == PRELU && (prelu_offset < 0 || prelu_size <= 0 || prelu_offset + prelu_size > (int64_t)heap_length))) {
    napi_throw_range_error(env, NULL, "tfjs-blas gemm: output, bias or prelu weights outside the heap");
    return NULL;
  }
  if (work.k == 0) {
    memset(heap + work.c_offset, 0, (size_t)out_size * sizeof(float));
  } else if (out_size > 0) {
    gemm_batch(&work, batch);
  }
  if ((bias_offset >= 0 || activation != LINEAR) && out_size > 0) {
    if (!apply_epilogue(heap, work.c_offset, out_size / work.n, work.n, bias_offset, bias_size, activation, alpha, prelu_offset, prelu_size)) {
      napi_throw_error(env, NULL, "tfjs-blas gemm: out of memory");
      return NULL;
    }
  }
  return NULL;
}

// ---------------------------------------------------------------------------------------
// Row-parallel kernels: layer norm forward and backward, each one pass over memory instead
// of the 8–20 single-threaded wasm kernels tfjs composes them from.

typedef struct RowJob RowJob;
typedef void (*RowFunction)(const RowJob* job, int64_t first, int64_t last, float* partial);
struct RowJob {
  RowFunction run;
  float* heap;
  int64_t rows, cols;
  int64_t x, gamma, beta, dy, out, mean, rstd, dx;  // element offsets (-1: unused)
  float eps;
  // The product's epilogue only (out += bias, then the activation, in place):
  int64_t bias_size, prelu, prelu_size;
  int activation;
  float alpha;
};

typedef struct {
  const RowJob* job;
  int64_t first, last;
  float* partial;
} RowSlice;

static void* run_row_slice(void* arg) {
  RowSlice* slice = arg;
  slice->job->run(slice->job, slice->first, slice->last, slice->partial);
  return NULL;
}

// Splits rows over the configured threads; partial (partial_size floats per thread, zeroed)
// collects per-thread sums that are added into `sums` at the end.
static int parallel_rows(const RowJob* job, int64_t partial_size, float* sums) {
  int threads = configured_threads;
  if (threads > MAX_THREADS) threads = MAX_THREADS;
  if ((int64_t)threads > job->rows) threads = job->rows > 0 ? (int)job->rows : 1;
  if (job->rows * job->cols < 65536) threads = 1;  // thread start-up would cost more than it saves
  float* partials = NULL;
  if (partial_size > 0) {
    partials = calloc((size_t)threads * (size_t)partial_size, sizeof(float));
    if (!partials) return 0;
  }
  RowSlice slices[MAX_THREADS];
  pthread_t ids[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (int t = 0; t < threads; t++) {
    slices[t] = (RowSlice){job, job->rows * t / threads, job->rows * (t + 1) / threads, partials ? partials + (int64_t)t * partial_size : NULL};
    if (t > 0) started[t] = pthread_create(&ids[t], NULL, run_row_slice, &slices[t]) == 0;
  }
  run_row_slice(&slices[0]);
  for (int t = 1; t < threads; t++) {
    if (started[t]) pthread_join(ids[t], NULL);
    else run_row_slice(&slices[t]);
  }
  if (partials) {
    for (int64_t i = 0; i < partial_size; i++) {
      float total = 0;
      for (int t = 0; t < threads; t++) total += partials[(int64_t)t * partial_size + i];
      sums[i] = total;
    }
    free(partials);
  }
  return 1;
}

// y = (x − mean)·rstd·gamma + beta per row; mean and rstd = 1/√(var + eps) kept for the gradient.
// Accumulates in double, as the two-pass moments tfjs computes stay accurate.
static void layer_norm_rows(const RowJob* j, int64_t first, int64_t last, float* partial) {
  const float* gamma = j->heap + j->gamma;
  const float* beta = j->heap + j->beta;
  for (int64_t r = first; r < last; r++) {
    const float* x = j->heap + j->x + r * j->cols;
    float* y = j->heap + j->out + r * j->cols;
    double sum = 0;
    for (int64_t c = 0; c < j->cols; c++) sum += x[c];
    const float mean = (float)(sum / j->cols);
    double squares = 0;
    for (int64_t c = 0; c < j->cols; c++) {
      const double d = x[c] - mean;
      squares += d * d;
    }
    const float rstd = (float)(1.0 / sqrt(squares / j->cols + j->eps));
    for (int64_t c = 0; c < j->cols; c++) y[c] = (x[c] - mean) * rstd * gamma[c] + beta[c];
    j->heap[j->mean + r] = mean;
    j->heap[j->rstd + r] = rstd;
  }
}

// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·gamma, x̂ = (x − mean)·rstd;
// partial holds this slice's Σ dy·x̂ (dgamma) then Σ dy (dbeta).
static void layer_norm_grad_rows(const RowJob* j, int64_t first, int64_t last, float* partial) {
  const float* gamma = j->heap + j->gamma;
  float* dgamma = partial;
  float* dbeta = partial + j->cols;
  for (int64_t r = first; r < last; r++) {
    const float* x = j->heap + j->x + r * j->cols;
    const float* dy = j->heap + j->dy + r * j->cols;
    float* dx = j->heap + j->dx + r * j->cols;
    const float mean = j->heap[j->mean + r], rstd = j->heap[j->rstd + r];
    double g_sum = 0, gx_sum = 0;
    for (int64_t c = 0; c < j->cols; c++) {
      const float xhat = (x[c] - mean) * rstd;
      const float g = dy[c] * gamma[c];
      g_sum += g;
      gx_sum += g * xhat;
      dgamma[c] += dy[c] * xhat;
      dbeta[c] += dy[c];
    }
    const float g_mean = (float)(g_sum / j->cols), gx_mean = (float)(gx_sum / j->cols);
    for (int64_t c = 0; c < j->cols; c++) {
      const float xhat = (x[c] - mean) * rstd;
      dx[c] = rstd * (dy[c] * gamma[c] - g_mean - xhat * gx_mean);
    }
  }
}

// quick GELU rows: y = x·σ(1.702x), and its gradient (activations.c).
static void quick_gelu_rows(const RowJob* j, int64_t first, int64_t last, float* partial) {
  quick_gelu(j->heap + j->x, j->heap + j->out, first * j->cols, last * j->cols);
}

static void quick_gelu_grad_rows(const RowJob* j, int64_t first, int64_t last, float* partial) {
  quick_gelu_grad(j->heap + j->x, j->heap + j->dy, j->heap + j->dx, first * j->cols, last * j->cols);
}

// A product's bias and activation on its rows, in place. Bias and PReLU weights are indexed
// modulo their size over the flat output, as the wasm kernel does; the bias is one value
// per column or one for all (isRowBias in wasm-blas.ts), so a row reads it from column 0.
static void epilogue_rows(const RowJob* j, int64_t first, int64_t last, float* partial) {
  const float* bias = j->gamma >= 0 ? j->heap + j->gamma : NULL;
  const float* prelu = j->activation == PRELU ? j->heap + j->prelu : NULL;
  for (int64_t r = first; r < last; r++) {
    float* out = j->heap + j->x + r * j->cols;
    if (j->activation == LINEAR && bias && j->bias_size == j->cols) {
      for (int64_t c = 0; c < j->cols; c++) out[c] += bias[c];  // the common case, vectorised
      continue;
    }
    for (int64_t c = 0; c < j->cols; c++) {
      float x = out[c];
      if (bias) x += bias[j->bias_size == 1 ? 0 : c];
      out[c] = activate(x, j->activation, j->alpha, prelu, j->prelu_size, r * j->cols + c);
    }
  }
}

static int apply_epilogue(float* heap, int64_t out, int64_t rows, int64_t cols, int64_t bias, int64_t bias_size, int activation, float alpha, int64_t prelu, int64_t prelu_size) {
  RowJob job = {0};
  job.run = epilogue_rows;
  job.heap = heap;
  job.rows = rows;
  job.cols = cols;
  job.x = out;
  job.gamma = bias;
  job.bias_size = bias_size;
  job.activation = activation;
  job.alpha = alpha;
  job.prelu = prelu;
  job.prelu_size = prelu_size;
  return parallel_rows(&job, 0, NULL);
}

// Σ over rows (bias and norm-weight gradients): each thread adds its slice of rows into its
// own partial vector, which vectorises; OpenBLAS's sgemv with a ones vector ran this at about
// a third of the memory bandwidth, on one thread.
static void column_sum_rows(const RowJob* j, int64_t first, int64_t last, float* partial) {
  for (int64_t r = first; r < last; r++) {
    const float* restrict x = j->heap + j->x + r * j->cols;
    for (int64_t c = 0; c < j->cols; c++) partial[c] += x[c];
  }
}

static int in_heap(int64_t offset, int64_t size, size_t heap_length) {
  return offset >= 0 && size >= 0 && offset + size <= (int64_t)heap_length;
}

// A vector of ones, grown as needed: reductions below are products with it.
static float* ones = NULL;
static int64_t ones_length = 0;

static int ensure_ones(int64_t length) {
  if (length <= ones_length) return 1;
  float* grown = realloc(ones, (size_t)length * sizeof(float));
  if (!grown) return 0;
  for (int64_t i = ones_length; i < length; i++) grown[i] = 1.0f;
  ones = grown;
  ones_length = length;
  return 1;
}

// reduce(heap, xOffset, rows, cols, outOffset, overRows, scale)
// x is [rows, cols] row-major. overRows: out[c] = scale·Σ_r x[r][c] (a sum over leading axes,
// as bias gradients need); otherwise out[r] = scale·Σ_c x[r][c] (trailing axes, as a mean over
// features). Over rows: partial sums per thread (column_sum_rows); over columns: one BLAS
// matrix-vector product with a vector of ones.
static napi_value reduce(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value args[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  size_t heap_length = 0;
  float* heap = argc == 7 ? typed_array_data(env, args[0], napi_float32_array, &heap_length) : NULL;
  if (!heap) {
    napi_throw_type_error(env, NULL, "tfjs-blas reduce: expected a Float32Array heap and 6 numbers");
    return NULL;
  }
  int ok = 1;
  const int64_t x_offset = (int64_t)get_double(env, args[1], &ok);
  const int rows = get_int(env, args[2], &ok);
  const int cols = get_int(env, args[3], &ok);
  const int64_t out_offset = (int64_t)get_double(env, args[4], &ok);
  const int over_rows = get_int(env, args[5], &ok);
  const float scale = (float)get_double(env, args[6], &ok);
  const int64_t out_size = over_rows ? cols : rows;
  if (!ok || rows < 0 || cols < 0 || x_offset < 0 || x_offset + (int64_t)rows * cols > (int64_t)heap_length || out_offset < 0 || out_offset + out_size > (int64_t)heap_length) {
    napi_throw_range_error(env, NULL, "tfjs-blas reduce: bad shape or offset outside the heap");
    return NULL;
  }
  if (!ensure_ones(over_rows ? rows : cols)) {
    napi_throw_error(env, NULL, "tfjs-blas reduce: out of memory");
    return NULL;
  }
  if (rows == 0 || cols == 0) {
    memset(heap + out_offset, 0, (size_t)out_size * sizeof(float));
    return NULL;
  }
  if (over_rows) {
    RowJob job = {0};
    job.run = column_sum_rows;
    job.heap = heap;
    job.rows = rows;
    job.cols = cols;
    job.x = x_offset;
    float* sums = malloc((size_t)cols * sizeof(float));
    if (!sums || !parallel_rows(&job, cols, sums)) {
      free(sums);
      napi_throw_error(env, NULL, "tfjs-blas reduce: out of memory");
      return NULL;
    }
    for (int64_t c = 0; c < cols; c++) heap[out_offset + c] = sums[c] * scale;
    free(sums);
    return NULL;
  }
  // OpenBLAS 0.3.21 scales y by beta = 0 instead of overwriting it, so garbage NaNs in a fresh output would survive.
  memset(heap + out_offset, 0, (size_t)out_size * sizeof(float));
  cblas_sgemv(CblasRowMajor, over_rows ? CblasTrans : CblasNoTrans, rows, cols, scale, heap + x_offset, cols, ones, 1, 0.0f, heap + out_offset, 1);
  return NULL;
}

// rowOp(heap, kind, rows, cols, eps, x, gamma, beta, dy, out, mean, rstd, dx, dgamma, dbeta)
// kind 0: layer norm, 1: its gradient, 2: quick GELU, 3: its gradient. Offsets in elements; -1 unused.
static napi_value row_op(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value args[15];
  CHECK(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  size_t heap_length = 0;
  float* heap = argc == 15 ? typed_array_data(env, args[0], napi_float32_array, &heap_length) : NULL;
  if (!heap) {
    napi_throw_type_error(env, NULL, "tfjs-blas rowOp: expected a Float32Array heap and 14 numbers");
    return NULL;
  }
  int ok = 1;
  const int kind = get_int(env, args[1], &ok);
  RowJob job = {0};
  job.heap = heap;
  job.rows = (int64_t)get_double(env, args[2], &ok);
  job.cols = (int64_t)get_double(env, args[3], &ok);
  job.eps = (float)get_double(env, args[4], &ok);
  int64_t* offsets[] = {&job.x, &job.gamma, &job.beta, &job.dy, &job.out, &job.mean, &job.rstd, &job.dx};
  for (int i = 0; i < 8; i++) *offsets[i] = (int64_t)get_double(env, args[5 + i], &ok);
  const int64_t dgamma = (int64_t)get_double(env, args[13], &ok), dbeta = (int64_t)get_double(env, args[14], &ok);
  const int64_t size = job.rows * job.cols;
  int valid = ok && kind >= 0 && kind <= 3 && job.rows >= 0 && job.cols > 0 && in_heap(job.x, size, heap_length);
  if (valid && kind == 0) valid = in_heap(job.gamma, job.cols, heap_length) && in_heap(job.beta, job.cols, heap_length) && in_heap(job.out, size, heap_length) && in_heap(job.mean, job.rows, heap_length) && in_heap(job.rstd, job.rows, heap_length);
  if (valid && kind == 1) valid = in_heap(job.gamma, job.cols, heap_length) && in_heap(job.dy, size, heap_length) && in_heap(job.dx, size, heap_length) && in_heap(job.mean, job.rows, heap_length) && in_heap(job.rstd, job.rows, heap_length) && in_heap(dgamma, job.cols, heap_length) && in_heap(dbeta, job.cols, heap_length);
  if (valid && kind == 2) valid = in_heap(job.out, size, heap_length);
  if (valid && kind == 3) valid = in_heap(job.dy, size, heap_length) && in_heap(job.dx, size, heap_length);
  if (!valid) {
    napi_throw_range_error(env, NULL, "tfjs-blas rowOp: bad kind or shape, or an operand outside the heap");
    return NULL;
  }
  static const RowFunction functions[] = {layer_norm_rows, layer_norm_grad_rows, quick_gelu_rows, quick_gelu_grad_rows};
  job.run = functions[kind];
  float* sums = NULL;
  if (kind == 1) {
    sums = malloc((size_t)job.cols * 2 * sizeof(float));
    if (!sums) {
      napi_throw_error(env, NULL, "tfjs-blas rowOp: out of memory");
      return NULL;
    }
  }
  if (!parallel_rows(&job, kind == 1 ? job.cols * 2 : 0, sums)) {
    free(sums);
    napi_throw_error(env, NULL, "tfjs-blas rowOp: out of memory");
    return NULL;
  }
  if (sums) {
    memcpy(heap + dgamma, sums, (size_t)job.cols * sizeof(float));
    memcpy(heap + dbeta, sums + job.cols, (size_t)job.cols * sizeof(float));
    free(sums);
  }
  return NULL;
}

// configure(threads) -> { threads, coreName, config }: sets OpenBLAS's thread count (and the
// batch split above) and says what OpenBLAS picked.
static napi_value configure(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  int ok = 1;
  int threads = argc >= 1 ? get_int(env, args[0], &ok) : 1;
  if (!ok || threads < 1) {
    napi_throw_range_error(env, NULL, "tfjs-blas configure: threads must be a positive integer");
    return NULL;
  }
  openblas_set_num_threads(threads);
  configured_threads = openblas_get_num_threads();
  napi_value result, value;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_int32(env, configured_threads, &value));
  CHECK(env, napi_set_named_property(env, result, "threads", value));
  CHECK(env, napi_create_string_utf8(env, openblas_get_corename(), NAPI_AUTO_LENGTH, &value));
  CHECK(env, napi_set_named_property(env, result, "coreName", value));
  CHECK(env, napi_create_string_utf8(env, openblas_get_config(), NAPI_AUTO_LENGTH, &value));
  CHECK(env, napi_set_named_property(env, result, "config", value));
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  CHECK(env, napi_create_function(env, "gemm", NAPI_AUTO_LENGTH, gemm, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "gemm", fn));
  CHECK(env, napi_create_function(env, "reduce", NAPI_AUTO_LENGTH, reduce, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "reduce", fn));
  CHECK(env, napi_create_function(env, "rowOp", NAPI_AUTO_LENGTH, row_op, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "rowOp", fn));
  CHECK(env, napi_create_function(env, "configure", NAPI_AUTO_LENGTH, configure, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "configure", fn));
  return exports;
}
