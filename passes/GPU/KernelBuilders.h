//===- KernelBuilders.h - GPU kernel bodies of the expert GEMMs -*- C++ -*-===//
//
// Internal to passes/GPU: the kernel families `moeq-lower-expert-gemms-to-gpu`
// emits. Each builder fills a `gpu.func` whose signature it defines.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_PASSES_GPU_KERNELBUILDERS_H
#define MOEQ_PASSES_GPU_KERNELBUILDERS_H

#include "moeq/Dialect/MoEQ/IR/MoEQ.h"
#include "moeq/Passes/Kernels.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

namespace mlir::moeq {

struct RoutingSpec;

/// A new `gpu.module @name` holding the kernel `gpu.func @name` of
/// `argTypes` for `target` (NVVM), or for OpenCL SPIR-V with `spirv`,
/// launched with `threads` threads per block.
gpu::GPUFuncOp createKernelModule(ModuleOp module, SymbolTable &symbols, StringRef name,
                                  TargetAttr target, ArrayRef<Type> argTypes, int64_t threads,
                                  bool spirv = false);

/// A `rows x cols` memref (`cols` < 0: a 1-D memref of `rows`) in global
/// memory over a raw pointer whose row count is the i32 `rowsI32`: the
/// descriptor the LLVM lowering expects, cast back to a memref so that the
/// kernel body uses memref ops. The casts cancel in
/// reconcile-unrealized-casts, which leaves a bare pointer in the ABI.
Value viewGlobalPointer(OpBuilder &b, Location loc, Value ptr, Value rowsI32, int64_t cols,
                        Type element);

/// The CTA's dynamic shared memory, `bytes` long, as memref<?xi8,
/// workgroup>. It is declared `.extern .shared .align 16 .b8
/// __dynamic_shmem__moeq[]` (an external zero-size global): upstream's
/// gpu.dynamic_shared_memory makes an internal one, which NVPTX demotes to
/// a 1-byte *static* .shared variable, so that every launch needs static
/// bytes on top of the dynamic ones (docs/kernels.md).
inline constexpr llvm::StringLiteral kDynamicSharedMemoryName = "__dynamic_shmem__moeq";
Value getDynamicSharedMemory(OpBuilder &b, Location loc, gpu::GPUFuncOp func, int64_t bytes);

/// The output element of a thread in the SIMT layout (one CTA row per
/// token, `threads` output features per CTA): (row, column, inside M x N).
struct SimtElement {
  Value row, col, inside;
};
SimtElement getSimtElement(OpBuilder &b, Location loc, Value rows, int64_t n, int64_t threads);

//===----------------------------------------------------------------------===//
// Persistent grouped GEMM (one launch per layer across precision mixes)
//===----------------------------------------------------------------------===//

/// Arguments of the persistent grouped GEMM over experts with `weightTypes`:
///   (X: f16* | Xq: i8*, x_scale: f32*, offsets: i32[E+1],
///    weights: u64[E][kWeightTableColumns], Y: f16*, T: i32)
/// X and Y hold the T token rows sorted by expert; expert e owns rows
/// [offsets[e], offsets[e+1]); weights[e] holds the device addresses of
/// expert e's weight tensors in ABI order (getWeightArgumentTypes: codes,
/// scales, zeros, or codes and levels, or the f16 matrix), zero-padded. A
/// table instead of one parameter per tensor: any expert count fits the
/// kernel parameter space.
SmallVector<Type> getGroupedGemmArgumentTypes(MLIRContext *context, ArrayRef<Type> weightTypes);
MemRefType getWeightTableType(MLIRContext *context, int64_t experts);
/// A static row-major global memref of `type` at the i64 device `address`.
Value viewGlobalAddress(OpBuilder &b, Location loc, Value address, MemRefType type);

/// Shared memory of the grouped kernel: the largest of its mixes.
int64_t getGroupedGemmSharedBytes(ArrayRef<Type> weightTypes, ArrayRef<TileConfigAttr> tiles);

/// Fills `func`: the tiles of all experts (ceil(M_e / BM_e) x ceil(N / BN_e)
/// each, numbered through a prefix sum over the experts) are taken by the
/// CTAs in turn (tile c, c + gridDim.x, ...); each tile dispatches on its
/// expert's precision mix to that mix's tensor-core micro-kernel. All tiles
/// share the warp count; shared memory is the largest mix's.
void buildPersistentGroupedGemm(OpBuilder &b, gpu::GPUFuncOp func, ArrayRef<Type> weightTypes,
                                ArrayRef<TileConfigAttr> tiles);

//===----------------------------------------------------------------------===//
// Split-K
//===----------------------------------------------------------------------===//

/// (workspace: f32[split_k * M][N], Y: f16[M][N], M: i32): Y = sum of the
/// split-K slices, in slice order. Grid (ceil(N / threads), M).
SmallVector<Type> getSplitKReduceArgumentTypes(MLIRContext *context);
void buildSplitKReduceKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t n, int64_t splitK,
                             int64_t threads);

//===----------------------------------------------------------------------===//
// Tensor-core GEMM (mma.sync, ldmatrix, cp.async)
//===----------------------------------------------------------------------===//

/// Arguments of the tensor-core GEMM for `weightType`:
///   weight-only / float: (X: f16*, weight..., Y: f16*, M: i32)
///   w8a8 / w4a4:         (Xq: i8*, x_scale: f32*, weight..., Y: f16*, M: i32)
/// with weight... = (Wq: i32[N][words], scales: f16[N][G], [zeros]) or
/// (W: f16[N][K]). Xq holds the per-token quantized activations (int8, or
/// two int4 per byte) from the activation-quantization kernel.
/// The global memrefs of one weight, in ABI order: the archive tensors of
/// a packed weight (SchemeAttr::getStorageSuffixes), or the f16 matrix.
SmallVector<Type> getWeightArgumentTypes(MLIRContext *context, Type weightType);

SmallVector<Type> getTensorCoreGemmArgumentTypes(MLIRContext *context, Type weightType);

/// Dynamic shared memory of one CTA (all pipeline stages).
int64_t getTensorCoreSharedBytes(Type weightType, TileConfigAttr tile);

/// Fills `func`: CTA tile (blockIdx.y, blockIdx.x) of Y = X W^T, a
/// `tile.stages`-deep cp.async pipeline over K, ldmatrix for activations,
/// in-register dequantisation of the packed codes into f16x2 MMA operands
/// (integer codes for w8a8/w4a4), mma.sync, guarded f16 stores.
/// `xStride` > K: X rows hold that many f16 (a `leading_inputs` linear
/// reads their leading K); weight-only and f16 weights only.
void buildTensorCoreGemm(OpBuilder &b, gpu::GPUFuncOp func, Type weightType,
                         TileConfigAttr tile, int64_t xStride = 0);

/// Fills `func` (Xq: i8*, x_scale: f32*, X: f16*, M: i32): one warp per
/// token row computes scale = max|x| / (2^(bits-1) - 1) (1 for a zero row)
/// and writes round_half_even(x / scale) clamped to +-(2^(bits-1) - 1) as
/// int8, or as int4 pairs (low nibble first). Grid (M), block (32).
void buildActivationQuantKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t k, unsigned bits);
SmallVector<Type> getActivationQuantArgumentTypes(MLIRContext *context);

//===----------------------------------------------------------------------===//
// The kernels around the expert GEMMs (RoutingKernels.cpp)
//===----------------------------------------------------------------------===//

/// Routing: (X: f16[T][H], router: f32[E][H], [score_bias: f32[E]],
/// ids: i32[T][top_k], weights: f32[T][top_k], T: i32). Grid (T), block
/// (128): the CTA's warps compute the token's logits (lanes over H, shuffle
/// reduction) into shared memory, then thread 0 scores and selects
/// (emitTokenRouting, the CPU oracle's code).
SmallVector<Type> getRouteKernelArgumentTypes(MLIRContext *context, const RoutingSpec &spec,
                                              int64_t hidden);
int64_t getRouteKernelSharedBytes(const RoutingSpec &spec);
void buildRouteKernel(OpBuilder &b, gpu::GPUFuncOp func, const RoutingSpec &spec,
                      int64_t hidden);

/// Token sort: (ids: i32[T*top_k], offsets: i32[E+1], sorted_slots: i32[R],
/// slot_rows: i32[R], T: i32), R = T * top_k. Grid (1), block
/// (getSortKernelThreads(E)), shared memory 4 E bytes: expert e's rows are
/// [offsets[e], offsets[e+1]), stable in token order; sorted row r holds
/// slot sorted_slots[r] (= t * top_k + j), slot p went to row slot_rows[p].
SmallVector<Type> getSortKernelArgumentTypes(MLIRContext *context, int64_t numExperts);
int64_t getSortKernelThreads(int64_t numExperts);
void buildSortKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t numExperts, int64_t topK);

/// The ABI of the row kernels below: three pointers and a row count
/// (in0, in1, out, rows); grid (rows), block (128).
SmallVector<Type> getRowwiseKernelArgumentTypes(MLIRContext *context);

/// Row gather: (src: f16[T][cols], sorted_slots: i32[R], dst: f16[R][cols],
/// R: i32): dst[r] = src[sorted_slots[r] / top_k].
void buildGatherRowsKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols, int64_t topK);

/// Row gather scaled by the routing weight (weights on the expert inputs,
/// Llama 4): (src: f16[T][cols], sorted_slots: i32[R], weights: f32[R] (the
/// T x top_k weights by slot), dst: f16[R][cols], R: i32): dst[r] =
/// weights[s] * src[s / top_k] in f32 with s = sorted_slots[r].
SmallVector<Type> getScaledGatherKernelArgumentTypes(MLIRContext *context);
void buildScaledGatherRowsKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols,
                                 int64_t topK);

/// Gated activation: (gate: f16[M][n], up: f16[M][n], out: f16[M][n], M:
/// i32): out = act(gate) * up in f32 (clamped_swiglu: moeq.gated_activation's
/// formula with its alpha and limit).
void buildGatedActivationKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols,
                                Activation activation, double swigluAlpha, double swigluLimit);

/// Combine: (expert_out: f16[R][H], slot_rows: i32[R], [weights:
/// f32[T][top_k]], [shared: f16[T][H]], [shared_gate: f16[T][1]], Y:
/// f16[T][H], T: i32): Y[t] = sum_j weights[t][j] expert_out[slot_rows[t*top_k
/// + j]] (+ shared, times sigmoid(shared_gate[t]) when gated). Without
/// `weighted` (the weights scaled the inputs) the sum is unweighted and there
/// is no weights argument. Grid (T), block (128).
SmallVector<Type> getCombineKernelArgumentTypes(MLIRContext *context, bool weighted,
                                                bool hasShared, bool hasSharedGate);
void buildCombineKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t hidden, int64_t topK,
                        bool weighted, bool hasShared, bool hasSharedGate);

/// Expert biases of a grouped GEMM's output (gpt-oss): (y: f16[R][n],
/// offsets: i32[E + 1], biases: u64[E][kWeightTableColumns] (column 0: the
/// address of expert e's f32[n] bias), R: i32): y[r] += bias of the expert
/// whose rows [offsets[e], offsets[e+1]) hold r, in f32. Grid (R), block
/// (128).
SmallVector<Type> getGroupBiasKernelArgumentTypes(MLIRContext *context, int64_t experts);
void buildGroupBiasKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols, int64_t experts);

/// D^2-MoE base add: (lowrank: f16[M][n], base: f16[M][nb], out: f16[M][n],
/// M: i32): out = lowrank + base in the leading nb columns.
void buildDeltaAddKernel(OpBuilder &b, gpu::GPUFuncOp func, int64_t cols, int64_t baseCols);

} // namespace mlir::moeq

#endif // MOEQ_PASSES_GPU_KERNELBUILDERS_H
