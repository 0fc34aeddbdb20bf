// Quick GELU forward and backward, vectorised.
//
// Why a file of its own: GCC vectorises these loops only when it may assume finite values
// and ignore the sign of zero (-ffinite-math-only -fno-signed-zeros, for the clamp and the
// rounding in exp_approx); those flags must not reach the rest of the addon, where a NaN has
// to stay a NaN. Here it does too: y = x / (1 + e^(−1.702x)) and the gradient both multiply
// by x, so a NaN input still gives a NaN output whatever the exponential returns.
// Without vectorisation this loop ran 2× slower than wasm's three kernels (xnnpack's
// sigmoid and two products); vectorised and split over the BLAS threads it is ~20× faster.
#include "activations.h"

#include <math.h>

// e^x: Cephes' range reduction (x = n·ln2 + r, |r| ≤ ln2/2) and degree-5 polynomial, about
// 2 ulp. Clamped to [−87, 88] so that 2^n stays a normal float.
static inline float exp_approx(float x) {
  x = fminf(fmaxf(x, -87.0f), 88.0f);
  const float nf = rintf(x * 1.44269504088896341f);
  const int32_t n = (int32_t)nf;
  float r = x - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union {
    int32_t i;
    float f;
  } scale = {.i = (n + 127) << 23};
  return p * scale.f;
}

// Compiled for AVX-512, AVX2 and plain x86-64; the loader picks what the CPU runs.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

VECTOR_CLONES void quick_gelu(const float* restrict x, float* restrict y, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) y[i] = x[i] / (1.0f + exp_approx(-1.702f * x[i]));
}

VECTOR_CLONES void quick_gelu_grad(const float* restrict x, const float* restrict dy, float* restrict dx, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    const float s = 1.0f / (1.0f + exp_approx(-1.702f * x[i]));
    dx[i] = dy[i] * (s + 1.702f * x[i] * s * (1.0f - s));
  }
}
