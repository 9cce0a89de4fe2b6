//===- CostModel.h - analytic GPU cost of expert GEMMs (IR-free) -*- C++ -*-===//
//
// Time of one expert GEMM (M tokens x N outputs x K inputs) on a given GPU
// for a weight scheme and a tile configuration: a roofline over the whole
// kernel (HBM bytes vs. tensor-core work) refined by tile-level effects
// (padding of partial tiles, waves over the SMs, dequantisation work on the
// CUDA cores, split-K reduction traffic). Formulas: docs/cost-model.md.
// All GPU parameters live in one table (CostModel.cpp).
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_COSTMODEL_COSTMODEL_H
#define MOEQ_COSTMODEL_COSTMODEL_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::moeq::cost {

/// Public spec-sheet numbers of one GPU (dense, no sparsity).
struct GpuSpec {
  llvm::StringRef name;      ///< "h100"
  llvm::StringRef chip;      ///< "sm_90"
  double hbmBytesPerSecond;  ///< peak HBM bandwidth
  double f16FlopsPerSecond;  ///< f16/bf16 tensor cores, f32 accumulate
  double int8OpsPerSecond;   ///< int8 tensor cores
  double int4OpsPerSecond;   ///< int4 tensor cores (mma.sync s4)
  double aluOpsPerSecond;    ///< 32-bit integer/FP32 CUDA-core ops (dequantisation)
  int64_t sms;               ///< streaming multiprocessors
  int64_t sharedBytesPerSm;  ///< shared memory per SM usable by CTAs
  int64_t maxWarpsPerSm;
};

/// Every GPU the model knows, A100 first.
llvm::ArrayRef<GpuSpec> knownGpus();
/// A GPU by name ("a100", "h100", "h200", "rtx4090"); null if unknown.
const GpuSpec *lookupGpu(llvm::StringRef name);
/// The GPU the cost model assumes for a target chip (sm_80 -> A100,
/// sm_89 -> RTX 4090, sm_90/sm_90a -> H100); null if none matches.
const GpuSpec *defaultGpuForChip(llvm::StringRef chip);

/// Storage of the weights and the precision of the activations.
struct WeightFormat {
  unsigned weightBits = 16; ///< 1-8, or 16 for unquantized
  unsigned actBits = 16;    ///< 16, 8 or 4
  int64_t groupSize = 0;    ///< 0 = one scale per output channel
  bool symmetric = false;
};

struct Tile {
  int64_t bm = 16, bn = 128, bk = 64;
  int64_t warps = 4, stages = 3, splitK = 1;
  std::string str() const;
};

/// Predicted time of one GEMM and what it is made of (seconds, bytes, ops).
struct GemmCost {
  double seconds = 0;
  double memorySeconds = 0;  ///< HBM bytes / bandwidth
  double computeSeconds = 0; ///< waves x per-tile tensor-core time
  double dequantSeconds = 0; ///< waves x per-tile CUDA-core dequantisation time
  double bytes = 0;          ///< HBM traffic
  double usefulOps = 0;      ///< 2 M N K
  int64_t tiles = 0, waves = 0, ctasPerSm = 0;
  bool memoryBound() const {
    return memorySeconds >= computeSeconds && memorySeconds >= dequantSeconds;
  }
};

/// Shared memory one CTA of `tile` needs for `format` (all pipeline stages).
int64_t sharedBytesPerCta(const Tile &tile, const WeightFormat &format);

/// The tile can run at all on `gpu` (shared memory, warps, tensor-core
/// instruction shape of the activation precision).
bool isLegal(const Tile &tile, const WeightFormat &format, const GpuSpec &gpu, int64_t k);

/// Cost of C[M,N] = A[M,K] W[N,K]^T with `tile`. M = 0 costs nothing.
GemmCost estimateGemm(const GpuSpec &gpu, int64_t m, int64_t n, int64_t k,
                      const WeightFormat &format, const Tile &tile);

/// The tile shapes the tiling search considers (before legality).
std::vector<Tile> candidateTiles();

/// The cheapest legal tile for the problem and its cost.
struct BestTile {
  Tile tile;
  GemmCost cost;
};
BestTile bestTile(const GpuSpec &gpu, int64_t m, int64_t n, int64_t k,
                  const WeightFormat &format);

} // namespace mlir::moeq::cost

#endif // MOEQ_COSTMODEL_COSTMODEL_H
