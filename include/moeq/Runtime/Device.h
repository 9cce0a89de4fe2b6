//===- Device.h - what a backend provides to the runtime --------*- C++ -*-===//
//
// The plan interpreter drives a Device: memory, copies, kernels, launches.
// Two backends implement it: cuda (the driver API, loaded with dlopen) and
// the emulator (lib/Runtime/Emulator, only in the full LLVM build; it
// registers itself through registerEmulatorFactory). Tests use fakes.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_RUNTIME_DEVICE_H
#define MOEQ_RUNTIME_DEVICE_H

#include "moeq/Runtime/Plan.h"
#include "moeq/Runtime/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace moeq::runtime {

/// A device address: a CUdeviceptr, or a host pointer on the emulator.
using DeviceAddress = uint64_t;

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
};

struct LaunchParams {
  int kernel = -1;          ///< a handle from Device::loadKernel
  Dim3 grid, block;
  uint32_t sharedBytes = 0; ///< dynamic shared memory
  void **args = nullptr;    ///< args[i] points to the i-th parameter's value
  size_t numArgs = 0;
  void *stream = nullptr;   ///< a CUstream or null (the emulator ignores it)
};

class Device {
public:
  virtual ~Device() = default;
  /// "cuda", "emulator", ...: for messages.
  virtual std::string name() const = 0;

  /// `bytes` of device memory; 0 bytes gives address 0 without allocating.
  virtual Status allocate(size_t bytes, DeviceAddress &address) = 0;
  /// Frees what allocate returned (0 is ignored).
  virtual void release(DeviceAddress address) = 0;
  /// Host -> device; returns once `source` may be reused.
  virtual Status copyToDevice(DeviceAddress destination, const void *source, size_t bytes) = 0;
  /// Device -> host, queued on `stream` after its earlier work, and then
  /// synchronises the stream: `destination` holds the data on return.
  virtual Status copyToHost(void *destination, DeviceAddress source, size_t bytes,
                            void *stream) = 0;
  /// Waits for everything queued on `stream`.
  virtual Status synchronize(void *stream) = 0;

  /// Loads `kernel` from its file under `directory` (the PTX or the
  /// emulation bitcode); `handle` identifies it in launches.
  virtual Status loadKernel(const KernelInfo &kernel, const std::string &directory,
                            int &handle) = 0;
  /// Queues a launch on `params.stream`.
  virtual Status launch(const LaunchParams &params) = 0;
  /// Launches and measures the launch alone (milliseconds). The default
  /// synchronises before and after and reads the wall clock; cuda uses
  /// events.
  virtual Status launchTimed(const LaunchParams &params, double &milliseconds);
};

enum class Backend { Cuda, Emulator };

/// "cuda" / "emulator".
const char *backendName(Backend backend);
bool parseBackend(const std::string &name, Backend &backend);
/// The kernel file a backend loads.
KernelFile kernelFileOf(Backend backend);

/// The CUDA driver backend on device `ordinal` (its primary context).
Status createCudaDevice(int ordinal, std::unique_ptr<Device> &device);

using DeviceFactory = Status (*)(int ordinal, std::unique_ptr<Device> &device);
/// Installs the emulator backend (called by MoeqRuntimeEmulator's
/// registerEmulatorBackend()).
void registerEmulatorFactory(DeviceFactory factory);
/// Whether the emulator backend is linked in and registered.
bool emulatorAvailable();

/// A device of `backend`; fails with a clear message when the emulator was
/// not built in or the CUDA driver is missing.
Status createDevice(Backend backend, int ordinal, std::unique_ptr<Device> &device);

} // namespace moeq::runtime

#endif // MOEQ_RUNTIME_DEVICE_H
