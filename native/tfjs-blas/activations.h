// Elementwise activations of the CLIP MLP, compiled apart from tfjs_blas.c (see binding.gyp:
// this file alone is built with the floating-point flags that let GCC vectorise them).
#ifndef TFJS_BLAS_ACTIVATIONS_H
#define TFJS_BLAS_ACTIVATIONS_H
#include <stdint.h>

// OpenAI CLIP's quick GELU, y = x·σ(1.702x), over [begin, end).
void quick_gelu(const float* x, float* y, int64_t begin, int64_t end);
// Its gradient, dx = dy·(s + 1.702·x·s·(1 − s)) with s = σ(1.702x), over [begin, end).
void quick_gelu_grad(const float* x, const float* dy, float* dx, int64_t begin, int64_t end);

#endif
