//===- CApi.cpp - the C API (moeq_runtime.h) over moeq::runtime::Artifact -===//
//
// Every entry point catches everything: a C caller (ctypes, a C program)
// gets a non-zero result and a message, never an exception or an abort.
//
//===----------------------------------------------------------------------===//
#include "moeq/Runtime/moeq_runtime.h"

#include "moeq/Runtime/Artifact.h"

#include <cstdint>
#include <exception>
#include <string>

using namespace moeq::runtime;

struct moeq_artifact {
  std::unique_ptr<Artifact> artifact;
};

namespace {

thread_local std::string lastError;

int report(const Status &status) {
  if (status.ok()) {
    lastError.clear();
    return 0;
  }
  lastError = status.message();
  return 1;
}

/// Runs `body` (returning a Status) with exceptions turned into messages.
template <typename Body>
int guarded(const char *function, Body body) {
  try {
    return report(body());
  } catch (const std::exception &error) {
    lastError = std::string(function) + ": internal error: " + error.what();
  } catch (...) {
    lastError = std::string(function) + ": internal error";
  }
  return 1;
}

DeviceAddress addressOf(const void *pointer) {
  return DeviceAddress(reinterpret_cast<uintptr_t>(pointer));
}

Status checkArtifact(const moeq_artifact *artifact) {
  if (!artifact || !artifact->artifact)
    return Status::error("null artifact");
  return Status();
}

Status checkBuffers(const void *x, const void *y, int64_t tokens) {
  if (tokens < 0)
    return Status::error("negative token count " + std::to_string(tokens));
  if (tokens > 0 && (!x || !y))
    return Status::error("null x or y for " + std::to_string(tokens) + " tokens");
  return Status();
}

} // namespace

extern "C" {

const char *moeq_last_error(void) { return lastError.c_str(); }

int moeq_artifact_open(const char *dir, moeq_backend backend, int device, moeq_artifact **out) {
  return guarded("moeq_artifact_open", [&]() -> Status {
    if (!dir || !out)
      return Status::error("moeq_artifact_open: null directory or result pointer");
    *out = nullptr;
    if (backend != MOEQ_BACKEND_CUDA && backend != MOEQ_BACKEND_EMULATOR)
      return Status::error("unknown backend " + std::to_string(int(backend)) +
                           " (MOEQ_BACKEND_CUDA = 0, MOEQ_BACKEND_EMULATOR = 1)");
    std::unique_ptr<moeq_artifact> result(new moeq_artifact());
    MOEQ_RETURN_IF_ERROR(Artifact::open(
        dir, backend == MOEQ_BACKEND_CUDA ? Backend::Cuda : Backend::Emulator, device,
        result->artifact));
    *out = result.release();
    return Status();
  });
}

void moeq_artifact_close(moeq_artifact *artifact) {
  try {
    delete artifact;
  } catch (...) {
  }
}

int moeq_artifact_num_layers(const moeq_artifact *artifact) {
  int count = -1;
  guarded("moeq_artifact_num_layers", [&]() -> Status {
    MOEQ_RETURN_IF_ERROR(checkArtifact(artifact));
    count = int(artifact->artifact->manifest().layers.size());
    return Status();
  });
  return count;
}

int moeq_artifact_layer(const moeq_artifact *artifact, int i) {
  int layer = -1;
  guarded("moeq_artifact_layer", [&]() -> Status {
    MOEQ_RETURN_IF_ERROR(checkArtifact(artifact));
    const auto &layers = artifact->artifact->manifest().layers;
    if (i < 0 || size_t(i) >= layers.size())
      return Status::error("no MoE layer #" + std::to_string(i) + " (the artifact has " +
                           std::to_string(layers.size()) + ")");
    layer = int(layers[i].layer);
    return Status();
  });
  return layer;
}

int64_t moeq_artifact_hidden_size(const moeq_artifact *artifact) {
  int64_t hidden = -1;
  guarded("moeq_artifact_hidden_size", [&]() -> Status {
    MOEQ_RETURN_IF_ERROR(checkArtifact(artifact));
    hidden = artifact->artifact->manifest().hiddenSize;
    return Status();
  });
  return hidden;
}

int moeq_run_layer(moeq_artifact *artifact, int layer, const void *x, void *y, int64_t tokens,
                   void *stream) {
  return guarded("moeq_run_layer", [&]() -> Status {
    MOEQ_RETURN_IF_ERROR(checkArtifact(artifact));
    MOEQ_RETURN_IF_ERROR(checkBuffers(x, y, tokens));
    return artifact->artifact->runLayer(layer, addressOf(x), addressOf(y), tokens, stream);
  });
}

int moeq_run_layers(moeq_artifact *artifact, int count, const int *layers,
                    const void *const *x, void *const *y, int64_t tokens, void *stream) {
  return guarded("moeq_run_layers", [&]() -> Status {
    MOEQ_RETURN_IF_ERROR(checkArtifact(artifact));
    if (count < 0 || (count > 0 && (!layers || !x || !y)))
      return Status::error("moeq_run_layers: bad layer count or null arrays");
    for (int i = 0; i < count; ++i) {
      MOEQ_RETURN_IF_ERROR(checkBuffers(x[i], y[i], tokens));
      MOEQ_RETURN_IF_ERROR(artifact->artifact->runLayer(layers[i], addressOf(x[i]),
                                                        addressOf(y[i]), tokens, stream));
    }
    return Status();
  });
}

} // extern "C"
