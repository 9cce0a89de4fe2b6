//===- Backends.cpp - backend selection and Device defaults ---------------===//
#include "moeq/Runtime/Device.h"

#include <atomic>
#include <chrono>

using namespace moeq::runtime;

namespace {
/// Set once by the emulator library when it is linked in.
std::atomic<DeviceFactory> emulatorFactory{nullptr};
} // namespace

Status Device::launchTimed(const LaunchParams &params, double &milliseconds) {
  MOEQ_RETURN_IF_ERROR(synchronize(params.stream));
  auto start = std::chrono::steady_clock::now();
  MOEQ_RETURN_IF_ERROR(launch(params));
  MOEQ_RETURN_IF_ERROR(synchronize(params.stream));
  milliseconds =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return Status();
}

const char *moeq::runtime::backendName(Backend backend) {
  return backend == Backend::Cuda ? "cuda" : "emulator";
}

bool moeq::runtime::parseBackend(const std::string &name, Backend &backend) {
  if (name == "cuda")
    backend = Backend::Cuda;
  else if (name == "emulator")
    backend = Backend::Emulator;
  else
    return false;
  return true;
}

KernelFile moeq::runtime::kernelFileOf(Backend backend) {
  return backend == Backend::Cuda ? KernelFile::Ptx : KernelFile::Emulation;
}

void moeq::runtime::registerEmulatorFactory(DeviceFactory factory) { emulatorFactory = factory; }

bool moeq::runtime::emulatorAvailable() { return emulatorFactory.load() != nullptr; }

Status moeq::runtime::createDevice(Backend backend, int ordinal,
                                   std::unique_ptr<Device> &device) {
  if (backend == Backend::Cuda)
    return createCudaDevice(ordinal, device);
  DeviceFactory factory = emulatorFactory.load();
  if (!factory)
    return Status::error("this runtime was built without the emulator backend (it needs the "
                         "full LLVM build of moeq)");
  return factory(ordinal, device);
}
