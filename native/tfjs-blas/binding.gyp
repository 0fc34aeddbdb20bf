{
  "targets": [
    {
      "target_name": "tfjs_blas",
      "sources": ["tfjs_blas.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lopenblas", "-lpthread", "-lm"]
    }
  ]
}
