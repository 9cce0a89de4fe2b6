//===- Kernels.h - naming and sizing of the emitted GEMM kernels -*- C++ -*-===//
//
// What the kernel tiling, the kernel lowering and the artifact export agree
// on: the cost model's view of a weight, tile attributes, kernel names and
// the shared memory a kernel is launched with.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_KERNELS_H
#define MOEQ_PASSES_KERNELS_H

#include "moeq/CostModel/CostModel.h"
#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <optional>
#include <string>

namespace mlir::moeq {

/// The storage the cost model sees for a scheme or a weight type (a float
/// weight is f16; group-wise widths set `groupWidths`).
cost::WeightFormat getWeightFormat(SchemeAttr scheme);
cost::WeightFormat getWeightFormat(Type weightType);

cost::Tile toCostTile(TileConfigAttr tile);
TileConfigAttr getTileConfig(MLIRContext *context, const cost::KernelChoice &choice);

/// The GPU the cost model prices: `gpuName` if given, else the one of the
/// module's `moeq.target` chip (sm_90 without one). Null, after an error
/// on `module`, if unknown.
const cost::GpuSpec *resolveCostModelGpu(ModuleOp module, StringRef gpuName);

/// The kernel moeq emits for `m` rows of `weightType` on `gpu`.
cost::KernelChoice chooseKernelFor(const cost::GpuSpec &gpu, int64_t m, Type weightType,
                                   cost::KernelPath path = cost::KernelPath::Auto,
                                   int64_t warps = 0, bool allowSplitK = true);
/// The cost model's form of the `kernel-path` option.
cost::KernelPath toCostModelPath(GemmKernelPath path);

/// `gemm_<scheme>[_gb<widths>]_n<N>_k<K>[_x<inputCols>]_<simt |
/// mma<BM>x<BN>x<BK>w<W>s<S>>` (`_x`: rows of `inputCols` > K activations,
/// a `leading_inputs` linear).
std::string getGemmKernelName(Type weightType, TileConfigAttr tile, int64_t inputCols = 0);
/// `splitk_reduce_n<N>_s<S>`: the reduction of split-K partial sums.
std::string getSplitKReduceKernelName(int64_t n, int64_t splitK);
/// `quant_a<bits>_k<K>`: the activation quantization of w8a8/w4a4 kernels.
std::string getActivationQuantKernelName(PackedWeightType weightType);

/// Columns of the weight-address table of a persistent grouped GEMM: the
/// most device tensors one expert's weight has (codes, scales, zeros).
inline constexpr int64_t kWeightTableColumns = 3;


/// Why the groups cannot share one persistent launch (empty if they can):
/// every tile on the tensor-core path with one warp count, one activation
/// format.
std::string checkPersistentLaunch(ArrayRef<Type> weightTypes, ArrayRef<TileConfigAttr> tiles);

/// `moe_gemm_n<N>_k<K>_e<E>_<hash of the mixes and tiles>`.
std::string getGroupedKernelName(ArrayRef<Type> weightTypes, ArrayRef<TileConfigAttr> tiles);
/// Dynamic shared memory of the persistent kernel (the largest mix's).
int64_t getGroupedKernelSharedBytes(ArrayRef<Type> weightTypes, ArrayRef<TileConfigAttr> tiles);

/// Dynamic shared memory a kernel is launched with (0 for SIMT kernels).
int64_t getKernelSharedBytes(Type weightType, TileConfigAttr tile);

/// A module with one `moeq.grouped_matmul` of `weightType` tiled with
/// `tile` for `chip`, kernels not yet built: what the kernel checker and
/// the kernel benchmark compile. Null (after a diagnostic) on failure.
OwningOpRef<ModuleOp> buildSingleGemmModule(MLIRContext *context, Type weightType,
                                            TileConfigAttr tile, StringRef chip,
                                            int64_t inputCols = 0);

} // namespace mlir::moeq

#endif // MOEQ_PASSES_KERNELS_H
