//===- CostModel.cpp - analytic GPU cost of expert GEMMs ------------------===//
#include "moeq/CostModel/CostModel.h"

#include "llvm/ADT/STLExtras.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

using namespace mlir::moeq::cost;

namespace {

// Public spec sheets (dense); ALU = 32-bit integer lanes x boost clock,
// which bounds the bit-extraction work of in-register dequantisation;
// shared memory = 32 banks x 4 bytes per clock and SM.
// H100/H200 have no int4 tensor-core rate on the spec sheet: w4a4 is
// charged at the int8 rate there (mma.sync s4 is not faster on sm_90).
// Shared memory: per SM (the carveout CTAs can use, including the 1 KiB
// each reserves) and the opt-in maximum of one CTA (CUDA programming
// guide, "Compute Capabilities": 164/163 KiB on sm_80, 228/227 KiB on
// sm_90, 100/99 KiB on sm_89).
const GpuSpec kGpus[] = {
    {"a100", "sm_80", 2.0e12, 312e12, 624e12, 1248e12, 108 * 64 * 1.41e9, 128 * 1.41e9,
     108, 164 * 1024, 64, 163 * 1024},
    {"h100", "sm_90", 3.35e12, 989e12, 1979e12, 1979e12, 132 * 64 * 1.98e9, 128 * 1.98e9,
     132, 228 * 1024, 64, 227 * 1024, 2.0 / 3.0},
    {"h200", "sm_90", 4.8e12, 989e12, 1979e12, 1979e12, 132 * 64 * 1.98e9, 128 * 1.98e9,
     132, 228 * 1024, 64, 227 * 1024, 2.0 / 3.0},
    {"rtx4090", "sm_89", 1.0e12, 165e12, 661e12, 1321e12, 128 * 64 * 2.52e9, 128 * 2.52e9,
     128, 100 * 1024, 48, 99 * 1024},
};

/// One SM sustains at most this multiple of its fair share of HBM
/// bandwidth (memory-level parallelism): a GEMM with fewer tiles than SMs
/// cannot saturate HBM, which is what split-K buys back at small M.
constexpr double kPerSmBandwidthShare = 4.0;
/// Warps per SM needed to keep the tensor pipe busy (latency hiding).
constexpr double kWarpsToSaturate = 8.0;
/// Latency of a global-memory load (HBM, L2 miss), about 800 cycles on
/// A100/H100 in published microbenchmarks; the software pipeline hides it
/// with stages - 1 steps in flight.
constexpr double kMemoryLatencySeconds = 0.5e-6;

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

double activationBytes(const WeightFormat &f) { return f.actBits / 8.0; }

/// Bytes of scales and zero points for `rows` rows over `cols` inputs.
double scaleBytes(const WeightFormat &f, int64_t rows, int64_t cols) {
  if (f.weightBits >= 16)
    return 0;
  int64_t groups = f.groupSize ? ceilDiv(cols, f.groupSize) : 1;
  if (f.levelTable)
    return double(rows) * groups * 2.0 * double(1u << f.weightBits);
  return double(rows) * groups * (f.symmetric ? 2 : 4);
}

double tensorRate(const GpuSpec &gpu, const WeightFormat &f, const Tile &tile) {
  // wgmma tiles are f16 only (isLegal).
  double efficiency = tile.warpGroup ? 1.0 : gpu.mmaSyncEfficiency;
  if (f.actBits <= 4)
    return gpu.int4OpsPerSecond * efficiency;
  if (f.actBits <= 8)
    return gpu.int8OpsPerSecond * efficiency;
  return gpu.f16FlopsPerSecond * efficiency;
}

/// CUDA-core instructions per weight to turn codes into MMA operands:
/// weight-only schemes dequantise in registers (shift/lop3 + f16x2 fma,
/// about one instruction per weight; codes straddling 32-bit words cost
/// half as much again). Weight-activation schemes feed integer codes to the
/// MMA and scale in the epilogue. A level-table lookup costs the code's
/// extraction, an address and an L1 load per weight.
double dequantOpsPerWeight(const WeightFormat &f) {
  if (f.weightBits >= 16 || f.actBits < 16)
    return 0;
  if (f.levelTable)
    return 4.0;
  return 32 % f.weightBits == 0 ? 1.0 : 1.5;
}

} // namespace

llvm::ArrayRef<GpuSpec> mlir::moeq::cost::knownGpus() { return kGpus; }

const GpuSpec *mlir::moeq::cost::lookupGpu(llvm::StringRef name) {
  for (const GpuSpec &gpu : kGpus)
    if (gpu.name == name)
      return &gpu;
  return nullptr;
}

const GpuSpec *mlir::moeq::cost::defaultGpuForChip(llvm::StringRef chip) {
  if (chip == "sm_80")
    return lookupGpu("a100");
  if (chip == "sm_89")
    return lookupGpu("rtx4090");
  if (chip == "sm_90" || chip == "sm_90a")
    return lookupGpu("h100");
  return nullptr;
}

int64_t mlir::moeq::cost::maxSharedBytesPerCtaOnChip(llvm::StringRef chip) {
  static const std::pair<llvm::StringRef, int64_t> kLimits[] = {
      {"sm_80", 163 * 1024}, {"sm_86", 99 * 1024},   {"sm_87", 163 * 1024},
      {"sm_89", 99 * 1024},  {"sm_90", 227 * 1024},  {"sm_90a", 227 * 1024},
      {"sm_100", 227 * 1024}};
  for (auto [name, bytes] : kLimits)
    if (chip == name)
      return bytes;
  return 48 * 1024;
}

GpuSpec mlir::moeq::cost::limitToChip(const GpuSpec &gpu, llvm::StringRef chip) {
  GpuSpec limited = gpu;
  limited.maxSharedBytesPerCta =
      std::min(gpu.maxSharedBytesPerCta, maxSharedBytesPerCtaOnChip(chip));
  // wgmma is in the architecture-specific sm_90a only (PTX ISA 8.0).
  limited.warpGroupMma = chip == "sm_90a";
  return limited;
}

std::string Tile::str() const {
  return std::string(warpGroup ? "wgmma " : "") + std::to_string(bm) + "x" + std::to_string(bn) + "x" + std::to_string(bk) + " w" +
         std::to_string(warps) + " s" + std::to_string(stages) + " k" + std::to_string(splitK);
}

/// Packed weights: the K steps' slices of a packed row (their word offsets
/// and lengths) decide the widest slice and the largest cp.async size that
/// keeps every copy aligned. Uniform widths have a closed form; group-wise
/// widths walk the steps as the kernel does.
static void layoutPackedRows(const Tile &tile, const WeightFormat &format, int64_t k,
                             SharedLayout &layout) {
  int64_t bits = format.weightBits;
  int64_t groupWidth = format.groupSize ? format.groupSize : k;
  int64_t wordsPerRow = (k * bits + 31) / 32;
  bool knownWidths = !format.groupBits.empty() && k % tile.bk == 0 &&
                     int64_t(format.groupBits.size()) * groupWidth == k;
  if (!knownWidths) {
    // Every step's slice is BK * bits / 32 words at a multiple of that.
    bool wholeSteps = k % tile.bk == 0 && (tile.bk * bits) % 32 == 0;
    layout.sliceWords = (tile.bk * bits + 31) / 32;
    int64_t alignment = wholeSteps ? std::gcd(wordsPerRow, layout.sliceWords) : 1;
    layout.copyWords = alignment % 4 == 0 ? 4 : alignment % 2 == 0 ? 2 : 1;
    return;
  }
  // Groups are stored in order, each with its own width; a step's width is
  // that of the group holding its first column.
  auto bitOffset = [&](int64_t col) {
    int64_t group = col / groupWidth, offset = 0;
    for (int64_t g = 0; g < group; ++g)
      offset += groupWidth * format.groupBits[g];
    return offset + (col % groupWidth) * format.groupBits[group];
  };
  int64_t alignment = wordsPerRow;
  for (int64_t step = 0; step < k / tile.bk; ++step) {
    int64_t col = step * tile.bk;
    int64_t words = tile.bk * format.groupBits[col / groupWidth] / 32;
    alignment = std::gcd(alignment, std::gcd(bitOffset(col) / 32, words));
    layout.sliceWords = std::max(layout.sliceWords, words);
  }
  layout.copyWords = alignment % 4 == 0 ? 4 : alignment % 2 == 0 ? 2 : 1;
}

SharedLayout mlir::moeq::cost::getSharedLayout(const Tile &tile, const WeightFormat &format,
                                               int64_t k) {
  SharedLayout layout;
  layout.bm = tile.bm;
  layout.bn = tile.bn;
  layout.stages = tile.stages;
  // Activation rows are padded by 16 bytes so that ldmatrix reads rows from
  // distinct banks.
  // Rows are not padded: ldmatrix's tiles are XOR-swizzled instead
  // (moeq-swizzle-tile-operands), and wgmma reads core matrices (8 rows of
  // 16 bytes, 128 contiguous bytes).
  layout.aRowBytes = format.actBits >= 16 ? 2 * tile.bk : tile.bk * format.actBits / 8;
  layout.coreMatrices = tile.warpGroup;
  if (format.weightBits >= 16) {
    layout.bRowBytes = 2 * tile.bk;
    return layout;
  }
  layoutPackedRows(tile, format, k, layout);
  layout.bRowBytes = 4 * (layout.sliceWords + layout.copyWords);
  if (tile.warpGroup) {
    layout.dequantBytes = 2 * tile.bn * tile.bk;
    layout.bulkWeights = layout.copyWords == 4 && !format.groupWidths;
  }
  return layout;
}

int64_t mlir::moeq::cost::sharedBytesPerCta(const Tile &tile, const WeightFormat &format,
                                            int64_t k) {
  return getSharedLayout(tile, format, k).bytes();
}

bool mlir::moeq::cost::isLegal(const Tile &tile, const WeightFormat &format,
                               const GpuSpec &gpu, int64_t k) {
  // mma.sync k-extent per instruction: 16 (f16), 32 (s8), 64 (s4).
  int64_t mmaK = format.actBits <= 4 ? 64 : format.actBits <= 8 ? 32 : 16;
  if (tile.bm % 16 || tile.bn % (8 * tile.warps / 2) || tile.bk % mmaK)
    return false;
  // wgmma tiles: sm_90a, f16 activations (weight-only and f16 weights),
  // whole warpgroups of 64 rows each.
  WarpGroupGrid groups;
  if (tile.warpGroup && (!gpu.warpGroupMma || format.actBits < 16 || tile.splitK != 1 ||
                         !getWarpGroupGrid(tile, groups)))
    return false;
  if (format.weightBits < 16 && format.groupSize &&
      tile.bk % format.groupSize && format.groupSize % tile.bk)
    return false;
  if (tile.splitK > 1 && ceilDiv(k, tile.bk) < tile.splitK)
    return false;
  return tile.warps <= gpu.maxWarpsPerSm &&
         sharedBytesPerCta(tile, format, k) <= gpu.maxSharedBytesPerCta;
}

/// The load latency the pipeline leaves exposed over `tilesPerSm` tiles,
/// and the total: tensor cores, CUDA cores and shared memory overlap, and
/// loads overlap them (multi-stage pipeline); the slowest resource decides.
static void finishCost(const Tile &tile, int64_t kPerSplit, int64_t tilesPerSm,
                       GemmCost &cost) {
  int64_t steps = kPerSplit / tile.bk;
  int64_t resident = std::max<int64_t>(1, std::min(cost.ctasPerSm, tilesPerSm));
  double latencyPerTile =
      double(steps) * kMemoryLatencySeconds / double(std::max<int64_t>(1, tile.stages - 1));
  cost.latencySeconds = double(ceilDiv(tilesPerSm, resident)) * latencyPerTile;
  cost.seconds = std::max({cost.memorySeconds, cost.computeSeconds, cost.dequantSeconds,
                           cost.sharedSeconds, cost.latencySeconds});
}

/// The CUDA-core and shared-memory parts of a wgmma tile: packed weights
/// are dequantised once per CTA (not once per warp row) into the f16 tile
/// (written, then read by the wgmmas); each warpgroup's wgmmas read its 64
/// activation rows and its weight columns from shared memory.
static GemmCost finishWarpGroupCost(const GpuSpec &gpu, const WeightFormat &format,
                                    const Tile &tile, int64_t kPerSplit, int64_t tilesPerSm,
                                    GemmCost cost) {
  WarpGroupGrid groups;
  (void)getWarpGroupGrid(tile, groups);
  bool packed = format.weightBits < 16;
  double tileDequant = double(tile.bn) * kPerSplit * dequantOpsPerWeight(format);
  cost.dequantSeconds = tilesPerSm * tileDequant / (gpu.aluOpsPerSecond / gpu.sms);
  double weightBytesPerElem = std::min(format.weightBits, 16u) / 8.0;
  double copies = tile.bm * 2.0 + tile.bn * weightBytesPerElem;
  double dequant = packed ? tile.bn * (2.0 + weightBytesPerElem) : 0.0;
  double operands = groups.groupsN * tile.bm * 2.0 + groups.groupsM * tile.bn * 2.0;
  cost.sharedSeconds = tilesPerSm * double(kPerSplit) * (copies + dequant + operands) /
                       gpu.sharedBytesPerSecondPerSm;
  finishCost(tile, kPerSplit, tilesPerSm, cost);
  return cost;
}

GemmCost mlir::moeq::cost::estimateGemm(const GpuSpec &gpu, int64_t m, int64_t n, int64_t k,
                                        const WeightFormat &format, const Tile &tile) {
  GemmCost cost;
  if (m <= 0 || n <= 0 || k <= 0)
    return cost;
  int64_t kPerSplit = ceilDiv(ceilDiv(k, tile.splitK), tile.bk) * tile.bk;
  cost.tiles = ceilDiv(m, tile.bm) * ceilDiv(n, tile.bn) * tile.splitK;
  // Every resident CTA holds its shared memory plus the system's reserve.
  int64_t smem = sharedBytesPerCta(tile, format, k) + kReservedSharedBytesPerCta;
  cost.ctasPerSm = std::max<int64_t>(
      1, std::min({gpu.sharedBytesPerSm / smem, gpu.maxWarpsPerSm / tile.warps, int64_t(32)}));
  cost.waves = ceilDiv(cost.tiles, gpu.sms * cost.ctasPerSm);
  cost.usefulOps = 2.0 * m * n * k;

  // HBM traffic: weights and scales once, activations once (re-reads of
  // A and W tiles hit L2), f16 outputs, and split-K partial sums (f32,
  // written and read back).
  double weightBytes = double(n) * k * std::min(format.weightBits, 16u) / 8.0 +
                       scaleBytes(format, n, k);
  double actBytes = double(m) * k * activationBytes(format) +
                    (format.actBits < 16 ? 4.0 * m : 0.0);
  double outBytes = 2.0 * m * n + (tile.splitK > 1 ? 8.0 * tile.splitK * m * n : 0.0);
  cost.bytes = weightBytes + actBytes + outBytes;
  int64_t activeSms = std::min(cost.tiles, gpu.sms);
  double bandwidth = std::min(gpu.hbmBytesPerSecond,
                              kPerSmBandwidthShare * gpu.hbmBytesPerSecond * activeSms / gpu.sms);
  cost.memorySeconds = cost.bytes / bandwidth;

  // The busiest SM runs ceil(tiles / SMs) tiles back to back; partial tiles
  // are padded to the full BM x BN x K extent, as the MMA instructions are.
  int64_t tilesPerSm = ceilDiv(cost.tiles, gpu.sms);
  double warpsResident = double(std::min(cost.ctasPerSm, tilesPerSm) * tile.warps);
  double tensorEfficiency = std::min(1.0, warpsResident / kWarpsToSaturate);
  double tileOps = 2.0 * tile.bm * tile.bn * kPerSplit;
  cost.computeSeconds =
      tilesPerSm * tileOps / (tensorRate(gpu, format, tile) / gpu.sms * tensorEfficiency);
  if (tile.warpGroup)
    return finishWarpGroupCost(gpu, format, tile, kPerSplit, tilesPerSm, cost);
  // Every warp row of the CTA dequantises the weight fragments it needs.
  WarpGrid grid{1, tile.warps};
  (void)getWarpGrid(tile, grid);
  double tileDequant =
      double(grid.warpsM) * tile.bn * kPerSplit * dequantOpsPerWeight(format);
  cost.dequantSeconds = tilesPerSm * tileDequant / (gpu.aluOpsPerSecond / gpu.sms);
  // Shared memory: the cp.async writes of the A and W tiles, and every
  // warp's fragment reads (its WM rows of A, its WN columns of W per K
  // step): small warp tiles reuse little and run out of bandwidth first.
  double weightBytesPerElem = std::min(format.weightBits, 16u) / 8.0;
  double writes = double(kPerSplit) * (tile.bm * activationBytes(format) +
                                       tile.bn * weightBytesPerElem);
  double reads = double(kPerSplit) * tile.warps *
                 (double(tile.bm) / grid.warpsM * activationBytes(format) +
                  double(tile.bn) / grid.warpsN * weightBytesPerElem);
  cost.sharedSeconds = tilesPerSm * (writes + reads) / gpu.sharedBytesPerSecondPerSm;

  // Pipeline depth: a CTA has stages - 1 K steps in flight, so each step
  // waits at least latency / (stages - 1); CTAs resident on the same SM
  // overlap their waits. Few tiles with short steps are latency-bound
  // (decode), which deeper pipelines and larger BK fix.
  finishCost(tile, kPerSplit, tilesPerSm, cost);
  return cost;
}

std::vector<Tile> mlir::moeq::cost::candidateTiles() {
  std::vector<Tile> tiles;
  for (int64_t bm : {16, 32, 64, 128, 256})
    for (int64_t bn : {64, 128, 256})
      for (int64_t bk : {32, 64, 128})
        for (int64_t warps : {4, 8})
          for (int64_t stages : {2, 3, 4})
            for (int64_t splitK : {1, 2, 4, 8})
              tiles.push_back({bm, bn, bk, warps, stages, splitK});
  // wgmma tiles (sm_90a): 64 rows per warpgroup, no split-K (they are for
  // prefill, where output tiles fill the SMs).
  for (int64_t bm : {64, 128})
    for (int64_t bn : {64, 128, 256})
      for (int64_t bk : {32, 64, 128})
        for (int64_t warps : {4, 8})
          for (int64_t stages : {2, 3, 4})
            tiles.push_back({bm, bn, bk, warps, stages, 1, /*warpGroup=*/true});
  return tiles;
}

BestTile mlir::moeq::cost::bestTile(const GpuSpec &gpu, int64_t m, int64_t n, int64_t k,
                                    const WeightFormat &format) {
  static const std::vector<Tile> candidates = candidateTiles();
  BestTile best;
  bool found = false;
  for (const Tile &tile : candidates) {
    if (!isLegal(tile, format, gpu, k))
      continue;
    GemmCost cost = estimateGemm(gpu, m, n, k, format, tile);
    // Ties (common when memory-bound) go to the tile with fewer stages and
    // less split-K, i.e. the first in candidate order with this time.
    if (!found || cost.seconds < best.cost.seconds * (1 - 1e-12)) {
      best = {tile, cost};
      found = true;
    }
  }
  return best;
}

bool mlir::moeq::cost::getWarpGrid(const Tile &tile, WarpGrid &grid) {
  bool found = false;
  int64_t bestSkew = 0;
  for (int64_t warpsM = 1; warpsM <= tile.warps; warpsM *= 2) {
    int64_t warpsN = tile.warps / warpsM;
    if (tile.bm % (16 * warpsM) || tile.bn % (8 * warpsN))
      continue;
    // Square warp blocks reuse each loaded fragment the most.
    int64_t rows = tile.bm / warpsM, cols = tile.bn / warpsN;
    int64_t skew = std::max(rows, cols) / std::min(rows, cols);
    if (!found || skew < bestSkew) {
      grid = {warpsM, warpsN};
      bestSkew = skew;
      found = true;
    }
  }
  return found;
}

bool mlir::moeq::cost::getWarpGroupGrid(const Tile &tile, WarpGroupGrid &grid) {
  int64_t groups = tile.warpGroups();
  if (tile.warps % 4 || groups < 1 || tile.bm % 64)
    return false;
  int64_t groupsM = tile.bm / 64;
  if (groupsM > groups || groups % groupsM)
    return false;
  int64_t groupsN = groups / groupsM;
  if (tile.bn % groupsN)
    return false;
  int64_t cols = tile.bn / groupsN;
  if (cols % 8 || cols > 256)
    return false;
  grid = {groupsM, groupsN, cols};
  return true;
}

int64_t mlir::moeq::cost::accumulatorsPerThread(const Tile &tile) {
  return tile.bm * tile.bn / (tile.warps * 32);
}

bool mlir::moeq::cost::isEmittable(const Tile &tile, const WeightFormat &format,
                                   const GpuSpec &gpu, int64_t k) {
  WarpGrid grid;
  // Integer MMAs with column groups also keep f32 sums of finished groups.
  bool groupSums = format.actBits < 16 && format.groupSize && format.groupSize < k;
  int64_t accumulators = accumulatorsPerThread(tile) * (groupSums ? 2 : 1);
  if (!isLegal(tile, format, gpu, k) || !getWarpGrid(tile, grid) || k % tile.bk ||
      accumulators > 128)
    return false;
  // Split-K: whole K steps per slice, f32 partial sums reduced by a second
  // kernel; weight-only and f16 weights (integer paths scale per group).
  if (tile.splitK > 1 && ((k / tile.bk) % tile.splitK || format.actBits < 16))
    return false;
  // Group sums are flushed at the end of a K step.
  if (groupSums && format.groupSize % tile.bk)
    return false;
  if (format.weightBits < 16 && (tile.bk * format.weightBits) % 32)
    return false;
  // Integer MMAs take symmetric codes (no zero-point correction term).
  if (format.actBits < 16 && !format.symmetric)
    return false;
  return !format.groupWidths || (format.groupSize && format.groupSize % tile.bk == 0);
}

GemmCost mlir::moeq::cost::estimateSimtGemm(const GpuSpec &gpu, int64_t m, int64_t n, int64_t k,
                                            const WeightFormat &format) {
  GemmCost cost;
  if (m <= 0 || n <= 0 || k <= 0)
    return cost;
  cost.tiles = ceilDiv(n, kSimtBlock) * m;
  cost.ctasPerSm = gpu.maxWarpsPerSm / (kSimtBlock / 32);
  cost.waves = ceilDiv(cost.tiles, gpu.sms * cost.ctasPerSm);
  cost.usefulOps = 2.0 * m * n * k;
  // Weights come from HBM once (the token rows of a column block share them
  // through L2); every thread reads its activation row from L1.
  double weightBytes = double(n) * k * std::min(format.weightBits, 16u) / 8.0 +
                       scaleBytes(format, n, k);
  cost.bytes = weightBytes + 2.0 * m * k + 2.0 * m * n;
  int64_t activeSms = std::min(cost.tiles, gpu.sms);
  double bandwidth = std::min(gpu.hbmBytesPerSecond,
                              kPerSmBandwidthShare * gpu.hbmBytesPerSecond * activeSms / gpu.sms);
  cost.memorySeconds = cost.bytes / bandwidth;
  // Per weight and token: code extraction and dequantisation (as in the
  // tensor-core kernel, but once per token) and one fma; activation
  // quantisation adds a round and a clamp.
  WeightFormat weightOnly = format;
  weightOnly.actBits = 16;
  double opsPerMac = 1.0 + 2.0 * dequantOpsPerWeight(weightOnly) +
                     (format.actBits < 16 ? 4.0 : 0.0);
  // Only the SMs that hold CTAs do the work.
  cost.computeSeconds =
      double(m) * n * k * opsPerMac / (gpu.aluOpsPerSecond * activeSms / gpu.sms);
  cost.seconds = std::max(cost.memorySeconds, cost.computeSeconds);
  return cost;
}

KernelChoice mlir::moeq::cost::chooseKernel(const GpuSpec &gpu, int64_t m, int64_t n, int64_t k,
                                            const WeightFormat &format, KernelPath path,
                                            int64_t warps, bool allowSplitK) {
  KernelChoice simt;
  simt.tile = Tile{1, kSimtBlock, 32, kSimtBlock / 32, 1, 1};
  simt.cost = estimateSimtGemm(gpu, m, n, k, format);
  if (path == KernelPath::Simt)
    return simt;
  std::optional<KernelChoice> best;
  static const std::vector<Tile> candidates = candidateTiles();
  for (const Tile &tile : candidates) {
    if ((warps > 0 && (tile.warps != warps || tile.warpGroup)) ||
        (!allowSplitK && tile.splitK > 1) ||
        !isEmittable(tile, format, gpu, k))
      continue;
    // Split K only when the output tiles alone cannot fill the SMs: beyond
    // that its f32 workspace (4 * S * M * N bytes) buys nothing real.
    if (tile.splitK > 1 && ceilDiv(m, tile.bm) * ceilDiv(n, tile.bn) >= gpu.sms)
      continue;
    GemmCost cost = estimateGemm(gpu, m, n, k, format, tile);
    if (!best || cost.seconds < best->cost.seconds * (1 - 1e-12))
      best = KernelChoice{true, tile, cost};
  }
  if (!best)
    return simt;
  if (path == KernelPath::TensorCore)
    return *best;
  // Ties go to the tensor-core kernel.
  return simt.cost.seconds < best->cost.seconds * (1 - 1e-12) ? simt : *best;
}
