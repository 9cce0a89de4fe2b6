/*===- moeq_runtime.h - C API of the moeq runtime ----------------*- C -*-===//
 *
 * Loads a compiled moeq artifact (docs/manifest.md, docs/runtime.md), uploads
 * its weights once and runs MoE layers on caller-provided buffers and a
 * stream. Plain C, no dependencies: usable from C, C++, ctypes.
 *
 * Calls on one artifact must not overlap (it owns one scratch arena); work
 * is queued on the caller's stream, so successive calls on different streams
 * must be ordered by the caller.
 *
 *===----------------------------------------------------------------------===*/
#ifndef MOEQ_RUNTIME_MOEQ_RUNTIME_H
#define MOEQ_RUNTIME_MOEQ_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moeq_artifact moeq_artifact;
/* MOEQ_BACKEND_MAX_ENUM makes every int a valid value of the type (as
   Vulkan's *_MAX_ENUM do): a caller's unknown value is refused with an
   error, and reading it is defined in C++ too. */
typedef enum {
  MOEQ_BACKEND_CUDA = 0,
  MOEQ_BACKEND_EMULATOR = 1,
  MOEQ_BACKEND_MAX_ENUM = 0x7fffffff
} moeq_backend;

/* 0 on success; otherwise non-zero and moeq_last_error() says why
   (thread-local, valid until the next call on this thread). */
const char *moeq_last_error(void);
int moeq_artifact_open(const char *dir, moeq_backend backend, int device, moeq_artifact **out);
void moeq_artifact_close(moeq_artifact *artifact);
int moeq_artifact_num_layers(const moeq_artifact *artifact);        /* MoE layers */
int moeq_artifact_layer(const moeq_artifact *artifact, int i);      /* model layer index of the i-th */
int64_t moeq_artifact_hidden_size(const moeq_artifact *artifact);
/* x, y: T x hidden f16, row-major; device pointers (CUdeviceptr) for cuda,
   host pointers for the emulator. stream: a CUstream or NULL. */
int moeq_run_layer(moeq_artifact *artifact, int layer, const void *x, void *y,
                   int64_t tokens, void *stream);
int moeq_run_layers(moeq_artifact *artifact, int count, const int *layers,
                    const void *const *x, void *const *y, int64_t tokens, void *stream);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOEQ_RUNTIME_MOEQ_RUNTIME_H */
