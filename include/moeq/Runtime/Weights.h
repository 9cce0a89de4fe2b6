//===- Weights.h - the device parameters of an artifact ---------*- C++ -*-===//
//
// Resolves every `device_params` entry against its weight file when the
// artifact is opened (the tensor exists, its dtype converts to the upload
// dtype, `index`/`rows` select exactly the declared shape), so a broken
// artifact fails before any device work; then uploads each entry once.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_WEIGHTS_H
#define MOEQ_RUNTIME_WEIGHTS_H

#include "moeq/Runtime/Device.h"
#include "moeq/Runtime/Plan.h"
#include "moeq/Runtime/SafeTensors.h"

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moeq::runtime {

/// A transposed and/or strided selection of a row-major matrix of
/// `storedRows x storedCols` (the manifest's "transposed", "rows", "step";
/// the compiler's io::MatrixSelection): selected row i is stored row (or,
/// transposed, column) rowOffset + i * rowStep.
struct MatrixGather {
  bool active = false;
  int64_t storedRows = 0, storedCols = 0;
  bool transposed = false;
  int64_t rowOffset = 0, rowCount = -1, rowStep = 1;

  int64_t cols() const { return transposed ? storedRows : storedCols; }
  int64_t rows() const {
    return rowCount >= 0 ? rowCount : (transposed ? storedCols : storedRows);
  }
  int64_t elements() const { return rows() * cols(); }
  void apply(const uint8_t *stored, size_t elementSize, uint8_t *out) const {
    for (int64_t r = 0; r < rows(); ++r) {
      int64_t source = rowOffset + r * rowStep;
      for (int64_t c = 0; c < cols(); ++c) {
        int64_t at = transposed ? c * storedCols + source : source * storedCols + c;
        std::memcpy(out + (r * cols() + c) * elementSize, stored + at * elementSize,
                    elementSize);
      }
    }
  }
};

class DeviceParamSources {
public:
  /// Opens the weight files and checks every device parameter of
  /// `manifest` (copied: the manifest may move on).
  Status open(const Manifest &manifest);
  /// Uploads every parameter (converted) to `device`; `addresses[i]` is
  /// device_params[i]. On failure nothing stays allocated.
  Status upload(Device &device, std::vector<DeviceAddress> &addresses) const;

private:
  /// The contiguous run of elements a parameter selects (or, `gather`,
  /// reads its transposed or strided selection from).
  struct Source {
    const SafeTensorsFile *file = nullptr;
    const TensorEntry *entry = nullptr;
    int64_t firstElement = 0, count = 0;
    MatrixGather gather;
  };
  Status resolve(size_t index, Source &source);

  std::vector<DeviceParam> params;
  std::string manifestPath, directory;
  FileDigests digests;
  bool checkDigests = true;
  std::map<std::string, std::unique_ptr<SafeTensorsFile>> files;
  std::vector<Source> sources;
};

} // namespace moeq::runtime

#endif // MOEQ_RUNTIME_WEIGHTS_H
