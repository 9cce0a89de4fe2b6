//===- EmulatorDevice.cpp - run a plan's kernels on the GPU emulator ------===//
#include "moeq/Runtime/EmulatorBackend.h"

#include "moeq/GPUEmulator/Emulator.h"

#include "llvm/Bitcode/BitcodeReader.h"
#include "llvm/ExecutionEngine/Orc/AbsoluteSymbols.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/ExecutionEngine/Orc/ThreadSafeModule.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/TargetSelect.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

using namespace moeq::runtime;
namespace emu = mlir::moeq::emu;

namespace {

/// Emulated device memory is host memory with the alignment a GPU
/// allocation would have at least (vector loads of 16 bytes, cache lines).
constexpr size_t kAllocationAlignment = 64;

Status toStatus(llvm::Error error) {
  if (!error)
    return Status();
  return Status::error(llvm::toString(std::move(error)));
}

class EmulatorDevice final : public Device {
public:
  static Status create(std::unique_ptr<Device> &device);

  std::string name() const override { return "emulator"; }
  Status allocate(size_t bytes, DeviceAddress &address) override;
  void release(DeviceAddress address) override {
    std::free(reinterpret_cast<void *>(address));
  }
  Status copyToDevice(DeviceAddress destination, const void *source, size_t bytes) override {
    if (bytes)
      std::memcpy(reinterpret_cast<void *>(destination), source, bytes);
    return Status();
  }
  Status copyToHost(void *destination, DeviceAddress source, size_t bytes, void *) override {
    if (bytes)
      std::memcpy(destination, reinterpret_cast<const void *>(source), bytes);
    return Status();
  }
  /// Launches run to completion: there is never queued work.
  Status synchronize(void *) override { return Status(); }
  Status loadKernel(const KernelInfo &kernel, const std::string &directory,
                    int &handle) override;
  Status launch(const LaunchParams &params) override;

private:
  std::unique_ptr<llvm::orc::LLJIT> jit;
  llvm::orc::JITDylib *runtimeLibrary = nullptr; ///< the moeq_emu_* functions
  std::vector<emu::PackedKernel> kernels;
};

Status EmulatorDevice::create(std::unique_ptr<Device> &device) {
  static std::once_flag targetsInitialised;
  std::call_once(targetsInitialised, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
  });
  std::unique_ptr<EmulatorDevice> result(new EmulatorDevice());
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return toStatus(jit.takeError()).prefixed("emulator: cannot create the JIT: ");
  result->jit = std::move(*jit);
  llvm::orc::JITDylib &runtime =
      result->jit->getExecutionSession().createBareJITDylib("moeq_emu_runtime");
  llvm::orc::SymbolMap symbols;
  for (auto [name, address] : emu::runtimeSymbols())
    symbols[result->jit->mangleAndIntern(name)] = {llvm::orc::ExecutorAddr::fromPtr(address),
                                                   llvm::JITSymbolFlags::Exported};
  MOEQ_RETURN_IF_ERROR(toStatus(runtime.define(llvm::orc::absoluteSymbols(std::move(symbols))))
                           .prefixed("emulator: "));
  result->runtimeLibrary = &runtime;
  device = std::move(result);
  return Status();
}

Status EmulatorDevice::allocate(size_t bytes, DeviceAddress &address) {
  address = 0;
  if (bytes == 0)
    return Status();
  size_t rounded = (bytes + kAllocationAlignment - 1) / kAllocationAlignment * kAllocationAlignment;
  void *memory = std::aligned_alloc(kAllocationAlignment, rounded);
  if (!memory)
    return Status::error("emulator: out of host memory allocating " + std::to_string(bytes) +
                         " bytes");
  address = reinterpret_cast<uintptr_t>(memory);
  return Status();
}

Status EmulatorDevice::loadKernel(const KernelInfo &kernel, const std::string &directory,
                                  int &handle) {
  std::string path = joinPath(directory, kernel.emulation);
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return Status::error("cannot read " + path + ": " + buffer.getError().message());
  auto context = std::make_unique<llvm::LLVMContext>();
  auto module = llvm::parseBitcodeFile((*buffer)->getMemBufferRef(), *context);
  if (!module)
    return toStatus(module.takeError()).prefixed(path + ": not LLVM bitcode: ");
  // One JITDylib per kernel: modules of different kernels may define
  // helpers of the same name.
  auto library = jit->createJITDylib("kernel." + std::to_string(kernels.size()) + "." +
                                     kernel.name);
  if (!library)
    return toStatus(library.takeError()).prefixed(path + ": ");
  library->addToLinkOrder(*runtimeLibrary);
  llvm::orc::ThreadSafeModule threadSafe(std::move(*module), std::move(context));
  MOEQ_RETURN_IF_ERROR(
      toStatus(jit->addIRModule(*library, std::move(threadSafe))).prefixed(path + ": "));
  std::string symbol = kernel.entry + "_packed";
  auto address = jit->lookup(*library, symbol);
  if (!address)
    return toStatus(address.takeError())
        .prefixed(path + ": no function " + symbol + " (or it does not link): ");
  handle = int(kernels.size());
  kernels.push_back(address->toPtr<emu::PackedKernel>());
  return Status();
}

Status EmulatorDevice::launch(const LaunchParams &params) {
  if (params.kernel < 0 || size_t(params.kernel) >= kernels.size())
    return Status::error("launch of a kernel that was not loaded");
  emu::LaunchConfig config;
  config.grid = {params.grid.x, params.grid.y, params.grid.z};
  config.block = {params.block.x, params.block.y, params.block.z};
  config.sharedBytes = params.sharedBytes;
  return toStatus(emu::launch(kernels[params.kernel],
                              llvm::ArrayRef<void *>(params.args, params.numArgs), config))
      .prefixed("emulator: ");
}

} // namespace

Status moeq::runtime::createEmulatorDevice(int, std::unique_ptr<Device> &device) {
  return EmulatorDevice::create(device);
}

void moeq::runtime::registerEmulatorBackend() { registerEmulatorFactory(createEmulatorDevice); }
