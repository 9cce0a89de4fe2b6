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
  double sharedBytesPerSecondPerSm; ///< shared-memory bandwidth of one SM (128 B/clk)
  int64_t sms;               ///< streaming multiprocessors
  int64_t sharedBytesPerSm;  ///< shared memory per SM usable by CTAs
  int64_t maxWarpsPerSm;
  /// Largest shared memory one CTA may use (the opt-in maximum,
  /// cudaDevAttrMaxSharedMemoryPerBlockOptin): 163 KiB on A100, 227 KiB on
  /// H100/H200, 99 KiB on sm_89. Each resident CTA also holds
  /// kReservedSharedBytesPerCta of the SM's shared memory.
  int64_t maxSharedBytesPerCta;
  /// Fraction of the f16 tensor-core peak that warp-level mma.sync reaches.
  /// The spec-sheet peak of Hopper is the warpgroup instruction's (wgmma);
  /// mma.sync is limited to about two thirds of it there (FlashAttention-3,
  /// Shah et al. 2024, section 3: "...without which we can only reach
  /// about 2/3 of the peak"). 1 on chips without wgmma.
  double mmaSyncEfficiency = 1.0;
  /// The kernels are compiled for a chip with warpgroup MMA (sm_90a):
  /// wgmma tiles are candidates. Set by limitToChip.
  bool warpGroupMma = false;
};

/// Shared memory the system reserves for every resident CTA on sm_80 and
/// later (cudaDevAttrReservedSharedMemoryPerBlock): 1 KiB.
inline constexpr int64_t kReservedSharedBytesPerCta = 1024;

/// Every GPU the model knows, A100 first.
llvm::ArrayRef<GpuSpec> knownGpus();
/// A GPU by name ("a100", "h100", "h200", "rtx4090"); null if unknown.
const GpuSpec *lookupGpu(llvm::StringRef name);
/// The GPU the cost model assumes for a target chip (sm_80 -> A100,
/// sm_89 -> RTX 4090, sm_90/sm_90a -> H100); null if none matches.
const GpuSpec *defaultGpuForChip(llvm::StringRef chip);

/// The opt-in maximum shared memory of one CTA on a target chip: 163 KiB on
/// sm_80/sm_87, 99 KiB on sm_86/sm_89, 227 KiB on sm_90/sm_90a/sm_100; the
/// 48 KiB every chip allows for one it does not know.
int64_t maxSharedBytesPerCtaOnChip(llvm::StringRef chip);

/// `gpu` with its per-CTA shared memory limited to what `chip` allows, and
/// warpgroup MMA only where `chip` has it (sm_90a): the cost model may
/// price one GPU (`--gpu`) for kernels compiled for another chip
/// (`--arch`), whose limits the kernels must respect.
GpuSpec limitToChip(const GpuSpec &gpu, llvm::StringRef chip);

/// Storage of the weights and the precision of the activations.
struct WeightFormat {
  unsigned weightBits = 16; ///< 1-8, or 16 for unquantized
  unsigned actBits = 16;    ///< 16, 8 or 4
  int64_t groupSize = 0;    ///< 0 = one scale per output channel
  bool symmetric = false;
  /// Column groups have their own widths (SliM-LLM): a kernel's K step
  /// must stay inside one group.
  bool groupWidths = false;
  /// DDQ level tables: 2^bits f16 levels per group instead of a scale and
  /// zero point; each code is dequantised by a table lookup.
  bool levelTable = false;
  /// The width of every column group when known (not owned: the weight
  /// type's storage); with `groupWidths` and none given, every group is
  /// assumed `weightBits` wide.
  llvm::ArrayRef<int64_t> groupBits;
};

struct Tile {
  int64_t bm = 16, bn = 128, bk = 64;
  int64_t warps = 4, stages = 3, splitK = 1;
  /// The Hopper kernel (sm_90a): warpgroup MMAs (wgmma.mma_async) on both
  /// operands in shared memory; 64 rows per warpgroup of 4 warps.
  bool warpGroup = false;
  std::string str() const;
  int64_t warpGroups() const { return warps / 4; }
};

/// Predicted time of one GEMM and what it is made of (seconds, bytes, ops).
struct GemmCost {
  double seconds = 0;
  double memorySeconds = 0;  ///< HBM bytes / bandwidth
  double computeSeconds = 0; ///< waves x per-tile tensor-core time
  double dequantSeconds = 0; ///< waves x per-tile CUDA-core dequantisation time
  double sharedSeconds = 0;  ///< waves x per-tile shared-memory traffic time
  double latencySeconds = 0; ///< load latency the pipeline depth leaves exposed
  double bytes = 0;          ///< HBM traffic
  double usefulOps = 0;      ///< 2 M N K
  int64_t tiles = 0, waves = 0, ctasPerSm = 0;
  bool memoryBound() const {
    return memorySeconds >= computeSeconds && memorySeconds >= dequantSeconds &&
           memorySeconds >= sharedSeconds && memorySeconds >= latencySeconds;
  }
};

/// The shared memory of one CTA of the tensor-core kernel, as the emitter
/// lays it out: `stages` buffers, each BM activation rows then BN weight
/// rows. This is the one definition: the kernel builder takes its row
/// lengths and copy size from here, so that the cost model's legality and
/// the launch's shared memory are the kernel's.
struct SharedLayout {
  int64_t bm = 0, bn = 0, stages = 0;
  /// BK activations (f16, or int8/int4 codes), not padded: the rows
  /// ldmatrix reads are XOR-swizzled into distinct banks
  /// (moeq-swizzle-tile-operands).
  int64_t aRowBytes = 0;
  /// f16 weights: BK halves (ldmatrix, swizzled as for activations). Packed
  /// weights: the widest K step's slice of 32-bit words plus one spare
  /// cp.async chunk (codes straddling the slice end read one word more).
  int64_t bRowBytes = 0;
  /// Packed weights: the words of the widest K step's slice and the
  /// cp.async size in words (4, 2 or 1: the largest that divides every
  /// slice offset, slice length and row length, keeping copies aligned).
  int64_t sliceWords = 0, copyWords = 4;
  /// wgmma tiles: operands in the no-swizzle K-major layout of 8 x 16-byte
  /// core matrices (rows are not padded), and packed weights dequantised
  /// into one f16 tile of BN x BK in that layout after the stages.
  bool coreMatrices = false;
  int64_t dequantBytes = 0;
  /// wgmma tiles whose packed rows are 16-byte multiples at 16-byte
  /// aligned offsets (copyWords 4, one width): each row is one bulk copy
  /// (cp.async.bulk) completing on the stage's mbarrier (8 bytes each,
  /// after the f16 tile).
  bool bulkWeights = false;
  int64_t aStageBytes() const { return bm * aRowBytes; }
  int64_t bStageBytes() const { return bn * bRowBytes; }
  int64_t dequantOffset() const { return stages * (aStageBytes() + bStageBytes()); }
  int64_t barrierOffset() const { return dequantOffset() + dequantBytes; }
  int64_t bytes() const { return barrierOffset() + (bulkWeights ? 8 * stages : 0); }
};
SharedLayout getSharedLayout(const Tile &tile, const WeightFormat &format, int64_t k);

/// Shared memory one CTA of `tile` needs for `format` and K (all pipeline
/// stages): getSharedLayout(tile, format, k).bytes().
int64_t sharedBytesPerCta(const Tile &tile, const WeightFormat &format, int64_t k);

/// The tile can run at all on `gpu` (shared memory within the per-CTA
/// opt-in maximum, warps, tensor-core instruction shape of the activation
/// precision).
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

//===----------------------------------------------------------------------===//
// The kernels moeq emits
//===----------------------------------------------------------------------===//

/// How the tensor-core kernel spreads a BM x BN tile over its warps: a
/// warpsM x warpsN grid, each warp owning a (BM/warpsM) x (BN/warpsN)
/// block of m16n8 MMA tiles.
struct WarpGrid {
  int64_t warpsM = 1, warpsN = 1;
  int64_t warpRows(const Tile &tile) const { return tile.bm / warpsM; }
  int64_t warpCols(const Tile &tile) const { return tile.bn / warpsN; }
};

/// The most square warp grid of `tile` whose warp blocks are whole m16n8
/// tiles; none if there is none.
bool getWarpGrid(const Tile &tile, WarpGrid &grid);

/// How a wgmma tile spreads over its warpgroups: `groupsM` x `groupsN`,
/// each owning 64 rows and `groupCols` columns (one wgmma m64nNk16 per
/// k16, N = groupCols).
struct WarpGroupGrid {
  int64_t groupsM = 1, groupsN = 1, groupCols = 0;
};
/// Warpgroups split the rows first (64 each), then the columns; none if
/// the tile does not split into whole wgmma shapes (N a multiple of 8, at
/// most 256).
bool getWarpGroupGrid(const Tile &tile, WarpGroupGrid &grid);

/// f32 accumulator registers per thread of the tensor-core kernel.
int64_t accumulatorsPerThread(const Tile &tile);

/// The tensor-core kernel can be emitted for this tile: legal for the cost
/// model, a warp grid exists, at most 128 accumulators per thread (no
/// spills), BK divides K, split-K slices of whole K steps (weight-only and
/// f16 weights), and with group-wise widths BK stays inside one group.
bool isEmittable(const Tile &tile, const WeightFormat &format, const GpuSpec &gpu,
                 int64_t k);

/// The SIMT decode kernel: one thread per output feature, `kSimtBlock`
/// threads per CTA, one CTA row per token; dequantises every weight once
/// per token on the CUDA cores.
inline constexpr int64_t kSimtBlock = 128;
GemmCost estimateSimtGemm(const GpuSpec &gpu, int64_t m, int64_t n, int64_t k,
                          const WeightFormat &format);

/// The kernel moeq emits for a GEMM of M tokens: the faster of the SIMT
/// path and the best emittable tensor-core tile.
struct KernelChoice {
  bool tensorCore = false;
  Tile tile;     ///< BM = 1, BN = kSimtBlock for SIMT
  GemmCost cost;
};
enum class KernelPath { Auto, TensorCore, Simt };
/// With a path other than Auto, the best kernel of that family (SIMT if no
/// tensor-core tile can be emitted). `warps` > 0 restricts tensor-core
/// tiles to mma.sync ones of that warp count (a persistent launch shares
/// it across mixes; its scheduler has no wgmma tiles).
KernelChoice chooseKernel(const GpuSpec &gpu, int64_t m, int64_t n, int64_t k,
                          const WeightFormat &format, KernelPath path = KernelPath::Auto,
                          int64_t warps = 0, bool allowSplitK = true);

} // namespace mlir::moeq::cost

#endif // MOEQ_COSTMODEL_COSTMODEL_H
