//===- Emulator.h - run lowered GPU kernels on the CPU (IR-free) -*- C++ -*-===//
//
// Executes a GPU kernel compiled for the CPU (its NVVM intrinsics replaced by
// calls to the runtime below, see `moeq-emulate-gpu-kernels`) with the
// semantics of the PTX ISA: every thread of a CTA is a fiber, barriers and
// warp-collective instructions (ldmatrix, mma.sync, shfl.sync) synchronise
// them, shared memory is one buffer per CTA, cp.async and cp.async.bulk
// copies and wgmma complete at once, mbarrier waits block a fiber until its
// phase completes. CTAs run one after another. Single-threaded and
// deterministic.
//
// The warp-level instructions follow the fragment layouts of the PTX ISA
// ("Matrix Fragments for mma.m16n8k16 / m16n8k32 / m16n8k64", "ldmatrix"),
// written from the specification, independently of the kernels they check.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_GPUEMULATOR_EMULATOR_H
#define MOEQ_GPUEMULATOR_EMULATOR_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace mlir::moeq::emu {

struct Dim3 {
  uint32_t x = 1, y = 1, z = 1;
  uint64_t count() const { return uint64_t(x) * y * z; }
};

/// What shared memory holds when a CTA starts, so that a kernel reading
/// what it did not write fails the checks: f16 NaN halves (0x7e00), or
/// all-ones words (0xffffffff: an f32 NaN, two f16 NaNs, the largest
/// codes). `Alternate` uses the halves in even CTAs and the words in odd
/// ones.
enum class SharedPoison : uint8_t { Alternate, NaNHalves, AllOnes };

struct LaunchConfig {
  Dim3 grid, block;
  uint64_t sharedBytes = 0; ///< dynamic shared memory per CTA
  SharedPoison poison = SharedPoison::Alternate;
};

/// A kernel in the ExecutionEngine's packed form: `args[i]` points to the
/// i-th argument.
using PackedKernel = void (*)(void **);

/// Runs every thread of every CTA of `config` to completion. Fails on a
/// deadlock (a barrier or warp collective that not every thread reaches)
/// and on what the hardware would fault on: a cp.async or ldmatrix address
/// that is misaligned or outside the CTA's shared memory, a cp.async size
/// other than 4, 8 or 16 bytes. Shared memory ends at a protected page: a
/// plain access past `sharedBytes` ends the process with a message.
llvm::Error launch(PackedKernel kernel, llvm::ArrayRef<void *> args,
                   const LaunchConfig &config);

/// The runtime functions the rewritten kernels call, by symbol name.
std::vector<std::pair<const char *, void *>> runtimeSymbols();

//===----------------------------------------------------------------------===//
// Warp-level instruction semantics (also used by the unit tests)
//===----------------------------------------------------------------------===//

enum class MmaKind : int32_t {
  F16F32 = 0, ///< mma.sync.m16n8k16.row.col.f32.f16.f16.f32
  S8S32 = 1,  ///< mma.sync.m16n8k32.row.col.satfinite.s32.s8.s8.s32
  S4S32 = 2,  ///< mma.sync.m16n8k64.row.col.satfinite.s32.s4.s4.s32
};

/// K extent of one instruction: 16 (f16), 32 (s8), 64 (s4).
int mmaK(MmaKind kind);

/// Where element `i` of register `reg` of `lane` sits in the dense operands
/// of mma.sync (the PTX ISA fragment tables): A is 16 x K, B is K x 8, C
/// and D 16 x 8. A and B registers hold 2 (f16), 4 (s8) or 8 (s4)
/// elements, the lowest bits first; C and D registers one.
struct MatrixPosition {
  int row = 0, col = 0;
};
MatrixPosition mmaPositionA(MmaKind kind, int lane, int reg, int i);
MatrixPosition mmaPositionB(MmaKind kind, int lane, int reg, int i);
MatrixPosition mmaPositionC(int lane, int reg);

/// Registers of all 32 lanes: A (4 per lane), B (2), C and D (4).
struct MmaFragments {
  std::array<std::array<uint32_t, 4>, 32> a{}, c{}, d{};
  std::array<std::array<uint32_t, 2>, 32> b{};
};
void executeMma(MmaKind kind, MmaFragments &fragments);

/// A wgmma shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor
/// Format"): start address, leading- and stride-dimension byte offsets
/// (decoded: bytes), base offset and layout type (0: no swizzle).
struct MatrixDescriptor {
  uint32_t start = 0, leadingBytes = 0, strideBytes = 0;
  unsigned baseOffset = 0, layout = 0;
};
MatrixDescriptor decodeMatrixDescriptor(uint64_t descriptor);

/// Byte offset from the descriptor's start of element (row, k) of a
/// K-major f16 operand without swizzle: core matrices of 8 rows x 16
/// bytes, `leadingBytes` apart along K and `strideBytes` apart along the
/// rows.
uint32_t coreMatrixOffset(const MatrixDescriptor &d, int row, int k);

/// Where accumulator register `reg` of thread `thread` (0-127) of a
/// warpgroup sits in the 64 x N result of wgmma.mma_async.m64nNk16 (f32).
MatrixPosition wgmmaPositionD(int thread, int reg);

/// ldmatrix.sync.aligned.m8n8.x{num}[.trans].shared.b16: `rowAddress[l]`
/// is the row lane l points to (lanes 8i..8i+7 give matrix i); result[l][i]
/// is lane l's register i.
void executeLdMatrix(int num, bool transpose,
                     const std::array<const uint8_t *, 32> &rowAddress,
                     std::array<std::array<uint32_t, 4>, 32> &result);

} // namespace mlir::moeq::emu

#endif // MOEQ_GPUEMULATOR_EMULATOR_H
