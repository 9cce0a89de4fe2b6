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

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moeq::runtime {

class DeviceParamSources {
public:
  /// Opens the weight files and checks every device parameter of
  /// `manifest` (copied: the manifest may move on).
  Status open(const Manifest &manifest);
  /// Uploads every parameter (converted) to `device`; `addresses[i]` is
  /// device_params[i]. On failure nothing stays allocated.
  Status upload(Device &device, std::vector<DeviceAddress> &addresses) const;

private:
  /// The contiguous run of elements a parameter selects.
  struct Source {
    const SafeTensorsFile *file = nullptr;
    const TensorEntry *entry = nullptr;
    int64_t firstElement = 0, count = 0;
  };
  Status resolve(size_t index, Source &source);

  std::vector<DeviceParam> params;
  std::string manifestPath, directory;
  std::map<std::string, std::unique_ptr<SafeTensorsFile>> files;
  std::vector<Source> sources;
};

} // namespace moeq::runtime

#endif // MOEQ_RUNTIME_WEIGHTS_H
