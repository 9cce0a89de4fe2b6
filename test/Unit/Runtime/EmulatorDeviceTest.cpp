//===- EmulatorDeviceTest.cpp - the emulator backend of the runtime -------===//
//
// Kernels built here with LLVM's IRBuilder in the form the compiler's
// emulation bitcode has (`void <name>_packed(void **args)`, special
// registers through moeq_emu_sreg), written as bitcode files and run
// through the emulator device and through the C API.
//
//===----------------------------------------------------------------------===//
#include "moeq/Runtime/EmulatorBackend.h"
#include "moeq/Runtime/moeq_runtime.h"

#include "RuntimeTestUtil.h"

#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

using namespace moeq::runtime;
using namespace moeq::runtime::test;

namespace {

/// moeq_emu_sreg's register numbers (lib/GPUEmulator/Emulator.cpp).
enum SpecialRegister { TidX = 0, NtidX = 3, CtaidX = 6 };

/// A kernel `<name>_packed(void **args)` whose body `emitBody` builds from
/// the loaded argument slots; returns after it.
template <typename EmitBody>
void writeKernel(const std::string &path, const std::string &name, EmitBody emitBody) {
  llvm::LLVMContext context;
  llvm::Module module(name, context);
  llvm::IRBuilder<> builder(context);
  llvm::Type *ptr = builder.getPtrTy();
  llvm::FunctionType *type = llvm::FunctionType::get(builder.getVoidTy(), {ptr}, false);
  llvm::Function *kernel = llvm::Function::Create(type, llvm::Function::ExternalLinkage,
                                                  name + "_packed", module);
  builder.SetInsertPoint(llvm::BasicBlock::Create(context, "entry", kernel));
  llvm::FunctionCallee sreg = module.getOrInsertFunction(
      "moeq_emu_sreg", llvm::FunctionType::get(builder.getInt32Ty(), {builder.getInt32Ty()}, false));
  // args[i] points to the i-th parameter's value.
  auto slot = [&](int i) {
    return builder.CreateLoad(ptr, builder.CreateConstGEP1_64(ptr, kernel->getArg(0), i));
  };
  auto special = [&](SpecialRegister which) {
    return builder.CreateCall(sreg, {builder.getInt32(which)});
  };
  emitBody(builder, slot, special);
  builder.CreateRetVoid();
  std::error_code error;
  llvm::raw_fd_ostream out(path, error);
  ASSERT_FALSE(error) << error.message();
  llvm::WriteBitcodeToFile(module, out);
}

/// ids(out: i32*, scale: i32): out[ctaid * ntid + tid] = ctaid * scale + tid.
void writeIdsKernel(const std::string &path) {
  writeKernel(path, "ids", [](llvm::IRBuilder<> &b, auto slot, auto special) {
    llvm::Value *out = b.CreateLoad(b.getPtrTy(), slot(0));
    llvm::Value *scale = b.CreateLoad(b.getInt32Ty(), slot(1));
    llvm::Value *tid = special(TidX), *ntid = special(NtidX), *ctaid = special(CtaidX);
    llvm::Value *index = b.CreateAdd(b.CreateMul(ctaid, ntid), tid);
    llvm::Value *value = b.CreateAdd(b.CreateMul(ctaid, scale), tid);
    b.CreateStore(value, b.CreateGEP(b.getInt32Ty(), out, {b.CreateZExt(index, b.getInt64Ty())}));
  });
}

/// copy_rows(x: f16*, y: f16*, cols: i32): y[row * cols + tid] = x[...] with
/// row = ctaid.x, one thread per column (16-bit copies).
void writeCopyRowsKernel(const std::string &path) {
  writeKernel(path, "copy_rows", [](llvm::IRBuilder<> &b, auto slot, auto special) {
    llvm::Value *x = b.CreateLoad(b.getPtrTy(), slot(0));
    llvm::Value *y = b.CreateLoad(b.getPtrTy(), slot(1));
    llvm::Value *cols = b.CreateLoad(b.getInt32Ty(), slot(2));
    llvm::Value *index = b.CreateZExt(b.CreateAdd(b.CreateMul(special(CtaidX), cols), special(TidX)),
                                      b.getInt64Ty());
    llvm::Value *value = b.CreateLoad(b.getInt16Ty(), b.CreateGEP(b.getInt16Ty(), x, {index}));
    b.CreateStore(value, b.CreateGEP(b.getInt16Ty(), y, {index}));
  });
}

KernelInfo idsKernel() {
  KernelInfo kernel;
  kernel.name = kernel.entry = "ids";
  kernel.emulation = "ids.emu.bc";
  kernel.arguments = {ArgType::Pointer, ArgType::I32};
  return kernel;
}

TEST(RuntimeEmulator, RunsAKernelWithItsSpecialRegisters) {
  TempDir dir;
  writeIdsKernel(dir.file("ids.emu.bc"));
  std::unique_ptr<Device> device;
  Status status = createEmulatorDevice(0, device);
  ASSERT_TRUE(status.ok()) << status.message();
  int handle = -1;
  status = device->loadKernel(idsKernel(), dir.path, handle);
  ASSERT_TRUE(status.ok()) << status.message();

  DeviceAddress out = 0;
  ASSERT_TRUE(device->allocate(12 * sizeof(int32_t), out).ok());
  EXPECT_EQ(out % 64, 0u);
  uint64_t outSlot = out;
  int32_t scale = 1000;
  void *args[] = {&outSlot, &scale};
  LaunchParams params;
  params.kernel = handle;
  params.grid = {3, 1, 1};
  params.block = {4, 1, 1};
  params.args = args;
  params.numArgs = 2;
  double milliseconds = -1;
  status = device->launchTimed(params, milliseconds);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_GE(milliseconds, 0);
  int32_t values[12];
  ASSERT_TRUE(device->copyToHost(values, out, sizeof(values), nullptr).ok());
  for (int cta = 0; cta < 3; ++cta)
    for (int thread = 0; thread < 4; ++thread)
      EXPECT_EQ(values[cta * 4 + thread], cta * 1000 + thread);
  device->release(out);
}

TEST(RuntimeEmulator, KernelLoadErrorsNameTheFile) {
  TempDir dir;
  std::unique_ptr<Device> device;
  ASSERT_TRUE(createEmulatorDevice(0, device).ok());
  int handle = -1;
  writeFile(dir.file("ids.emu.bc"), "not bitcode");
  Status status = device->loadKernel(idsKernel(), dir.path, handle);
  EXPECT_EQ(status.message().rfind(dir.file("ids.emu.bc") + ": not LLVM bitcode: ", 0), 0u)
      << status.message();

  writeIdsKernel(dir.file("ids.emu.bc"));
  KernelInfo renamed = idsKernel();
  renamed.entry = "other";
  status = device->loadKernel(renamed, dir.path, handle);
  EXPECT_EQ(status.message().rfind(dir.file("ids.emu.bc") + ": no function other_packed", 0), 0u)
      << status.message();

  LaunchParams params;
  params.kernel = 5;
  EXPECT_EQ(device->launch(params).message(), "launch of a kernel that was not loaded");
}

TEST(RuntimeEmulator, InvalidLaunchesAreErrors) {
  TempDir dir;
  writeIdsKernel(dir.file("ids.emu.bc"));
  std::unique_ptr<Device> device;
  ASSERT_TRUE(createEmulatorDevice(0, device).ok());
  int handle = -1;
  ASSERT_TRUE(device->loadKernel(idsKernel(), dir.path, handle).ok());
  LaunchParams params;
  params.kernel = handle;
  params.block = {2048, 1, 1};
  EXPECT_EQ(device->launch(params).message(),
            "emulator: invalid launch: 2048 threads per CTA, 1 CTAs");
}

/// A one-layer artifact whose plan copies x to y with copy_rows, opened and
/// run through the C API on the emulator.
TEST(RuntimeEmulator, RunsAnArtifactThroughTheCApi) {
  registerEmulatorBackend();
  TempDir dir;
  std::system(("mkdir -p '" + dir.path + "/kernels'").c_str());
  writeCopyRowsKernel(dir.file("kernels/copy_rows.emu.bc"));
  writeFile(dir.file("manifest.json"), R"({
    "format": "moeq-artifact", "version": 3, )" +
                                           filesMember(dir.path, {"kernels/copy_rows.emu.bc"}) + R"(
    "kernels": [{"name": "copy_rows", "emulation": "kernels/copy_rows.emu.bc",
                 "arguments": ["ptr", "ptr", "i32"]}],
    "layers": [{"layer": 3, "plan": {
      "buffers": [{"name": "x", "dtype": "f16", "shape": ["T", 8], "binding": "input"},
                  {"name": "y", "dtype": "f16", "shape": ["T", 8], "binding": "output"}],
      "steps": [{"launch": "copy_rows", "grid": ["T", 1, 1], "block": [8, 1, 1],
                 "args": [{"buffer": "x"}, {"buffer": "y"}, {"i32": 8}]}]}}]})");
  moeq_artifact *artifact = nullptr;
  ASSERT_EQ(moeq_artifact_open(dir.path.c_str(), MOEQ_BACKEND_EMULATOR, 0, &artifact), 0)
      << moeq_last_error();
  EXPECT_EQ(moeq_artifact_num_layers(artifact), 1);
  EXPECT_EQ(moeq_artifact_layer(artifact, 0), 3);
  EXPECT_EQ(moeq_artifact_layer(artifact, 1), -1);
  EXPECT_STREQ(moeq_last_error(), "no MoE layer #1 (the artifact has 1)");
  EXPECT_EQ(moeq_artifact_hidden_size(artifact), 8);

  std::vector<uint16_t> x(5 * 8), y(5 * 8, 0);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = uint16_t(0x3C00 + i);
  ASSERT_EQ(moeq_run_layer(artifact, 3, x.data(), y.data(), 5, nullptr), 0) << moeq_last_error();
  EXPECT_EQ(x, y);
  EXPECT_STREQ(moeq_last_error(), "");

  std::vector<uint16_t> x2(5 * 8, 7), y2(5 * 8, 0);
  const void *xs[] = {x2.data()};
  void *ys[] = {y2.data()};
  int layers[] = {3};
  ASSERT_EQ(moeq_run_layers(artifact, 1, layers, xs, ys, 5, nullptr), 0) << moeq_last_error();
  EXPECT_EQ(x2, y2);

  EXPECT_NE(moeq_run_layer(artifact, 0, x.data(), y.data(), 5, nullptr), 0);
  EXPECT_EQ(std::string(moeq_last_error()),
            "layer 0 is not a MoE layer of " + dir.path + " (MoE layers: 3)");
  moeq_artifact_close(artifact);
}

} // namespace
