//===- Artifact.h - an opened artifact and its plan interpreter -*- C++ -*-===//
//
// Opening an artifact reads and validates the manifest, checks the weight
// tensors and kernel files, then (on a device) uploads every device
// parameter once and loads every launched kernel. Running a layer evaluates
// its buffer sizes for T, carves the scratch buffers out of an arena that
// grows as needed and is reused across calls (no allocation per call once
// warm), binds the caller's x and y, and executes the steps in order on the
// caller's stream.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_ARTIFACT_H
#define MOEQ_RUNTIME_ARTIFACT_H

#include "moeq/Runtime/Device.h"
#include "moeq/Runtime/Plan.h"
#include "moeq/Runtime/Weights.h"

#include <memory>
#include <string>
#include <vector>

namespace moeq::runtime {

/// One executed launch, when a run is timed (moeq-run --bench).
struct LaunchRecord {
  size_t step = 0;
  std::string kernel;
  Dim3 grid, block;
  double milliseconds = 0;
};

class Artifact {
public:
  /// Everything: manifest, weights, kernel files, device, uploads.
  static Status open(const std::string &directory, Backend backend, int ordinal,
                     std::unique_ptr<Artifact> &artifact);
  /// From a checked manifest and its parameter sources (see loadManifest and
  /// DeviceParamSources::open) on `device`: uploads and loads kernels.
  static Status create(Manifest manifest, const DeviceParamSources &params,
                       std::unique_ptr<Device> device, std::unique_ptr<Artifact> &artifact);
  ~Artifact();
  Artifact(const Artifact &) = delete;
  Artifact &operator=(const Artifact &) = delete;

  const Manifest &manifest() const { return plan; }
  Device &device() { return *backend; }

  /// Runs MoE layer `layer` (the model's layer index) on x -> y, both
  /// T x hidden f16 device buffers. T == 0 does nothing. With `launches`,
  /// every launch is timed and recorded (slower: it synchronises).
  Status runLayer(int64_t layer, DeviceAddress x, DeviceAddress y, int64_t tokens, void *stream,
                  std::vector<LaunchRecord> *launches = nullptr);

  /// Scratch memory held now (bytes), for tests.
  size_t deviceArenaBytes() const { return deviceArena.bytes; }
  size_t hostArenaBytes() const { return hostArena.size() * sizeof(uint64_t); }

private:
  Artifact() = default;
  Status uploadAndLoad(const DeviceParamSources &params);
  Status layoutBuffers(const LayerPlan &layer, int64_t tokens, void *stream);
  Status reserveArena(size_t deviceBytes, size_t hostBytes, void *stream);
  Status executeLaunch(const LayerPlan &layer, size_t index, const EvalContext &context,
                       void *stream, std::vector<LaunchRecord> *launches);
  Status executeCopy(const LayerPlan &layer, const Step &step, void *stream);

  struct DeviceArena {
    DeviceAddress address = 0;
    size_t bytes = 0;
  };

  std::unique_ptr<Device> backend; // declared first: destroyed last
  Manifest plan;
  std::vector<DeviceAddress> paramAddresses;
  std::vector<int> kernelHandles; ///< per kernels entry; -1: not launched
  DeviceArena deviceArena;
  std::vector<uint64_t> hostArena; ///< 8-byte aligned host scratch

  // Per-call state, kept to reuse its memory.
  std::vector<size_t> bufferBytes, bufferOffsets;
  std::vector<int64_t> bufferElements;
  std::vector<DeviceAddress> bufferAddresses;
  std::vector<HostBufferView> hostViews;
  std::vector<uint64_t> argSlots;
  std::vector<void *> argPointers;
};

} // namespace moeq::runtime

#endif // MOEQ_RUNTIME_ARTIFACT_H
