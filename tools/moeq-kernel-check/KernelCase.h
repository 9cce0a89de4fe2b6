//===- KernelCase.h - kernel launches recorded for replay on a GPU -*- C++ -*-===//
//
// What moeq-kernel-check runs on the GPU emulator, described so that a GPU
// can run the same launches (bench/gpu/check_kernels.py, no moeq build
// needed there): a case directory holds
//
//   case.json          the kernels, and per run its buffers and launches
//   <kernel>.ptx       the PTX of each kernel (gpu-module-to-binary, isa)
//   data.safetensors   inputs, the emulator's outputs (`<run>.<buffer>.emu`)
//                      and double-precision references (`.ref`)
//
// Every launch argument is a buffer (a device pointer) or an i32. A buffer
// is an input (uploaded from a tensor), an output (poisoned before the run,
// compared with the emulator's result afterwards; rows past `rows` are
// canaries that must keep their poison) or scratch (poisoned, only checked
// to be written). The format is in bench/gpu/README.md.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_TOOLS_KERNELCASE_H
#define MOEQ_TOOLS_KERNELCASE_H

#include "moeq/GPUEmulator/Emulator.h"
#include "moeq/IO/SafeTensors.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <deque>
#include <map>
#include <string>
#include <vector>

namespace mlir::moeq::kcase {

/// How a GPU output must match the emulator's.
enum class Compare {
  Bitwise, ///< bit for bit (integer MMAs, the activation quantization, probes)
  Ulp,     ///< within `tolerance_ulps` f16 ulps (f16 tensor-core sums differ in order)
  Written, ///< every element written (not the poison), values not compared
};

/// The poison a buffer holds before a run: f16 NaN halves (0x7e00), f32
/// NaN words (0x7fc00000) or 0xff bytes.
enum class Poison { F16NaN, F32NaN, Ones };

/// One launch argument: a buffer by name, an i32, or a table of buffer
/// addresses (u64, `columns` per row, zero-padded: the weights of a
/// persistent grouped GEMM).
struct Arg {
  std::string buffer;
  int32_t value = 0;
  std::vector<std::vector<std::string>> table;
  int64_t columns = 0;
  static Arg of(llvm::StringRef name) { return {name.str(), 0, {}, 0}; }
  static Arg i32(int32_t v) { return {"", v, {}, 0}; }
  static Arg addressTable(std::vector<std::vector<std::string>> rows, int64_t columns) {
    return {"", 0, std::move(rows), columns};
  }
};

/// One run: buffers (host memory the emulator works on) and launches.
class Run {
public:
  explicit Run(std::string name) : name(std::move(name)) {}

  /// An input uploaded from `data` (copied now: it must be final).
  void input(llvm::StringRef buffer, io::DType dtype, llvm::ArrayRef<int64_t> shape,
             const void *data);
  /// An input shared by every run (weights): the case-level tensor `tensor`.
  void sharedInput(llvm::StringRef buffer, llvm::StringRef tensor, const void *data);
  /// An output of `shape` at `data`, filled with `poison` by the caller
  /// before the first launch; rows [`rows`, shape[0]) are canaries. Its
  /// contents are taken by finish().
  void output(llvm::StringRef buffer, io::DType dtype, llvm::ArrayRef<int64_t> shape,
              void *data, int64_t rows, Compare compare, Poison poison);
  /// The double-precision reference of output `buffer` (its first `rows`).
  void reference(llvm::StringRef buffer, std::vector<double> values,
                 llvm::ArrayRef<int64_t> shape);

  /// Runs `kernel` on the emulator with `args` (if `kernel`) and records
  /// the launch.
  llvm::Error launch(llvm::StringRef kernelName, emu::PackedKernel kernel,
                     const emu::LaunchConfig &config, llvm::ArrayRef<Arg> args);

  /// Takes the outputs' contents (the emulator's results) into the case.
  void finish();

  const std::string &getName() const { return name; }

private:
  friend class Case;
  struct Buffer {
    std::string name, tensor; // tensor: the input's data (inputs only)
    io::DType dtype = io::DType::U8;
    std::vector<int64_t> shape;
    void *data = nullptr;
    bool isOutput = false;
    int64_t rows = 0;
    Compare compare = Compare::Bitwise;
    Poison poison = Poison::Ones;
    std::string reference;
  };
  Buffer *find(llvm::StringRef buffer);

  std::string name;
  std::deque<Buffer> buffers;
  // Stable storage of the emulator's arguments (it reads each through a
  // pointer).
  std::deque<void *> pointers;
  std::deque<int32_t> scalars;
  std::deque<std::vector<uint64_t>> tables;
  llvm::json::Array launches;
  std::map<std::string, std::pair<io::DType, std::vector<int64_t>>> pendingTensors;
  std::map<std::string, std::vector<uint8_t>> tensors; // inputs and references
};

/// A case directory in the making.
class Case {
public:
  Case(std::string kind, std::string description, std::string arch)
      : kind(std::move(kind)), description(std::move(description)), arch(std::move(arch)) {}

  void setKernelPTX(llvm::StringRef kernel, std::string ptx) { ptxOf[kernel.str()] = std::move(ptx); }
  /// A tensor every run may use (weights).
  void addTensor(llvm::StringRef name, io::DType dtype, llvm::ArrayRef<int64_t> shape,
                 const void *data);
  Run &addRun(llvm::StringRef name) { return runs.emplace_back(name.str()); }
  /// Extra top-level fields of case.json.
  void set(llvm::StringRef key, llvm::json::Value value) { extra[key.str()] = std::move(value); }

  /// Writes the case to `dir` (created), taking the outputs' contents now.
  llvm::Error write(llvm::StringRef dir);

private:
  std::string kind, description, arch;
  std::map<std::string, std::string> ptxOf;
  io::SafeTensorsWriter shared;
  std::deque<Run> runs;
  llvm::json::Object extra;
};

/// Bytes of `count` elements of `dtype`.
size_t byteSize(io::DType dtype, llvm::ArrayRef<int64_t> shape);

} // namespace mlir::moeq::kcase

#endif // MOEQ_TOOLS_KERNELCASE_H
