{
  "targets": [
    {
      "target_name": "vlbench_image",
      "sources": ["image_resample.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    },
    {
      "target_name": "activations",
      "type": "static_library",
      "sources": ["activations.c"],
      "cflags": ["-O3", "-fPIC", "-std=c11", "-Wall", "-Wextra", "-fno-math-errno", "-fno-trapping-math", "-ffinite-math-only", "-fno-signed-zeros"]
    },
    {
      "target_name": "tfjs_blas",
      "sources": ["tfjs_blas.c"],
      "dependencies": ["activations"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lopenblas", "-lpthread", "-lm"]
    }
  ]
}
