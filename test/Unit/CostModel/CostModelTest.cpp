//===- CostModelTest.cpp - the cost model in its regimes ------------------===//
//
// Known answers from the roofline: decode GEMMs take the time of their
// bytes over HBM bandwidth, large prefill GEMMs the time of their flops over
// the tensor-core peak; the ridge sits at the spec sheets' ratio; wave
// quantisation and padding of partial tiles show; precision only matters
// where the regime says it should.
//
//===----------------------------------------------------------------------===//
#include "moeq/CostModel/CostModel.h"

#include "gtest/gtest.h"

using namespace mlir::moeq::cost;

namespace {

const WeightFormat kF16{16, 16, 0, false};
const WeightFormat kW4{4, 16, 128, false};
const WeightFormat kW2{2, 16, 128, false};
const WeightFormat kW8A8{8, 8, 0, true};

const GpuSpec &h100() { return *lookupGpu("h100"); }

TEST(CostModel, KnowsTheSpecSheetGpus) {
  for (const char *name : {"a100", "h100", "h200", "rtx4090"})
    EXPECT_NE(lookupGpu(name), nullptr) << name;
  EXPECT_EQ(lookupGpu("v100"), nullptr);
  EXPECT_EQ(defaultGpuForChip("sm_90a")->name, "h100");
  EXPECT_EQ(defaultGpuForChip("sm_80")->name, "a100");
  EXPECT_EQ(defaultGpuForChip("sm_89")->name, "rtx4090");
  EXPECT_EQ(defaultGpuForChip("sm_70"), nullptr);
  EXPECT_DOUBLE_EQ(h100().hbmBytesPerSecond, 3.35e12);
}

// Decode (M = 1): time = weight bytes / bandwidth (1% for activations,
// outputs and scales), so 2-bit weights take about half the 4-bit time.
TEST(CostModel, DecodeIsBandwidthBound) {
  int64_t n = 14336, k = 4096;
  BestTile f16 = bestTile(h100(), 1, n, k, kF16);
  double f16Bytes = 2.0 * n * k;
  EXPECT_TRUE(f16.cost.memoryBound());
  EXPECT_NEAR(f16.cost.seconds, f16Bytes / 3.35e12, 0.01 * f16Bytes / 3.35e12);
  BestTile w4 = bestTile(h100(), 1, n, k, kW4);
  double w4Bytes = n * k * 4.25 / 8;
  EXPECT_TRUE(w4.cost.memoryBound());
  EXPECT_NEAR(w4.cost.seconds, w4Bytes / 3.35e12, 0.02 * w4Bytes / 3.35e12);
  BestTile w2 = bestTile(h100(), 1, n, k, kW2);
  EXPECT_NEAR(w2.cost.seconds / w4.cost.seconds, 2.25 / 4.25, 0.02);
  // H200 only has more bandwidth: decode speeds up by 4.8 / 3.35.
  BestTile h200 = bestTile(*lookupGpu("h200"), 1, n, k, kW4);
  EXPECT_NEAR(w4.cost.seconds / h200.cost.seconds, 4.8 / 3.35, 0.02);
}

// Few tiles cannot saturate HBM: a decode GEMM with N = 256 needs split-K
// to spread its bytes over more SMs, and the best tile uses it.
TEST(CostModel, SmallDecodeUsesSplitK) {
  BestTile t = bestTile(h100(), 1, 256, 4096, kW4);
  EXPECT_GT(t.tile.splitK, 1);
  Tile noSplit = t.tile;
  noSplit.splitK = 1;
  EXPECT_GT(estimateGemm(h100(), 1, 256, 4096, kW4, noSplit).seconds, t.cost.seconds);
}

// Prefill (M = 8192): time = 2 M N K / tensor peak within 10%; bits do not
// matter much there, int8 tensor cores (w8a8) halve it.
// On sm_90 the kernels are mma.sync ones: two thirds of the spec-sheet
// peak (which is wgmma's).
TEST(CostModel, PrefillIsComputeBound) {
  int64_t m = 8192, n = 14336, k = 4096;
  double ideal = 2.0 * m * n * k / (989e12 * 2.0 / 3.0);
  BestTile f16 = bestTile(h100(), m, n, k, kF16);
  EXPECT_FALSE(f16.cost.memoryBound());
  EXPECT_GE(f16.cost.seconds, ideal);
  EXPECT_LT(f16.cost.seconds, 1.10 * ideal);
  BestTile w4 = bestTile(h100(), m, n, k, kW4);
  EXPECT_LT(w4.cost.seconds, 1.10 * ideal);
  BestTile w8a8 = bestTile(h100(), m, n, k, kW8A8);
  EXPECT_NEAR(w8a8.cost.seconds / f16.cost.seconds, 0.5, 0.06);
}

// The ridge: for f16 weights on H100 the tensor-core time overtakes the
// HBM time near M = peak / bandwidth = 295 tokens, for int4 weights about
// 4x earlier (partial waves move it somewhat).
// (With wgmma, sm_90a, whose rate the spec sheet gives.)
TEST(CostModel, RidgePointMatchesTheSpecSheetRatio) {
  GpuSpec hopper = limitToChip(h100(), "sm_90a");
  auto crossover = [&](const WeightFormat &f) {
    for (int64_t m = 8; m <= 4096; m += 8) {
      GemmCost cost = bestTile(hopper, m, 14336, 4096, f).cost;
      if (cost.computeSeconds > cost.memorySeconds)
        return m;
    }
    return int64_t(-1);
  };
  int64_t f16 = crossover(kF16), w4 = crossover(kW4);
  EXPECT_GT(f16, 200);
  EXPECT_LT(f16, 400);
  EXPECT_GT(w4, 40);
  EXPECT_LT(w4, 110);
}

// mma.sync reads its operands from shared memory: a 16 x 32 warp tile
// reuses each byte too little to feed the tensor cores (128 B/clk/SM), a
// 64 x 64 one nearly does; prefill therefore picks large tiles.
TEST(CostModel, SmallWarpTilesAreSharedMemoryBound) {
  int64_t m = 8192, n = 14336, k = 4096;
  GemmCost small = estimateGemm(h100(), m, n, k, kF16, Tile{32, 64, 32, 4, 2, 1});
  EXPECT_GT(small.sharedSeconds, 2 * small.computeSeconds);
  GemmCost large = estimateGemm(h100(), m, n, k, kF16, Tile{128, 256, 32, 8, 2, 1});
  EXPECT_LT(large.sharedSeconds, 1.3 * large.computeSeconds);
  BestTile best = bestTile(h100(), m, n, k, kF16);
  EXPECT_GE(best.tile.bm * best.tile.bn, 128 * 128);
  // Weight-only tiles dequantise once per warp row: 32 x 64 on a 2 x 4
  // warp grid dequantises as much per token as 16 x 64 on 1 x 8.
  WarpGrid grid;
  ASSERT_TRUE(getWarpGrid(Tile{32, 64, 32, 8, 2, 1}, grid));
  EXPECT_EQ(grid.warpsM, 2);
  GemmCost oneRow = estimateGemm(h100(), m, n, k, kW4, Tile{16, 64, 32, 8, 2, 1});
  GemmCost twoRows = estimateGemm(h100(), m, n, k, kW4, Tile{32, 64, 32, 8, 2, 1});
  EXPECT_NEAR(twoRows.dequantSeconds / oneRow.dequantSeconds, 1.0, 0.01); // wave rounding
}

// The kernel choice: decode (M = 1) of a wide GEMM goes to the fastest
// kernel moeq emits, prefill to a tensor-core tile; every choice can be
// emitted, and forcing a family is honoured.
TEST(CostModel, KernelChoiceIsEmittable) {
  for (int64_t m : {1, 16, 512, 8192}) {
    KernelChoice c = chooseKernel(h100(), m, 14336, 4096, kW4);
    if (c.tensorCore)
      EXPECT_TRUE(isEmittable(c.tile, kW4, h100(), 4096)) << m;
  }
  EXPECT_TRUE(chooseKernel(h100(), 8192, 14336, 4096, kW4).tensorCore);
  EXPECT_FALSE(chooseKernel(h100(), 8192, 14336, 4096, kW4, KernelPath::Simt).tensorCore);
  EXPECT_TRUE(chooseKernel(h100(), 1, 14336, 4096, kW4, KernelPath::TensorCore).tensorCore);
  // Decode of the down projection (N = 4096: 64 tiles for 132 SMs) splits
  // K; a persistent launch (no split-K) does not.
  EXPECT_GT(chooseKernel(h100(), 1, 4096, 14336, kW4).tile.splitK, 1);
  EXPECT_EQ(chooseKernel(h100(), 1, 4096, 14336, kW4, KernelPath::Auto, 0, false).tile.splitK, 1);
  // K = 100 has no BK that divides it: only SIMT.
  EXPECT_FALSE(chooseKernel(h100(), 512, 128, 100, kF16, KernelPath::TensorCore).tensorCore);
  // The SIMT kernel dequantises per token: slower than tensor cores at M = 512.
  EXPECT_GT(estimateSimtGemm(h100(), 512, 14336, 4096, kW4).seconds,
            chooseKernel(h100(), 512, 14336, 4096, kW4).cost.seconds);
}

// Pipeline depth: in decode few tiles per SM wait on memory latency every K
// step; a 2-stage pipeline with BK = 32 leaves it exposed (slower than the
// HBM time), 4 stages with BK = 128 hide it, and the chosen kernel does.
TEST(CostModel, ShallowPipelinesExposeLatencyInDecode) {
  int64_t n = 14336, k = 4096;
  GemmCost shallow = estimateGemm(h100(), 1, n, k, kW4, Tile{16, 64, 32, 4, 2, 1});
  EXPECT_GT(shallow.latencySeconds, shallow.memorySeconds);
  GemmCost deep = estimateGemm(h100(), 1, n, k, kW4, Tile{16, 64, 128, 4, 4, 1});
  EXPECT_LT(deep.latencySeconds, deep.memorySeconds);
  EXPECT_NEAR(shallow.latencySeconds / deep.latencySeconds, (128.0 / 32) * (3.0 / 1), 1e-9);
  KernelChoice choice = chooseKernel(h100(), 1, n, k, kW4);
  EXPECT_TRUE(choice.cost.memoryBound());
  EXPECT_GE((choice.tile.stages - 1) * choice.tile.bk, 96);
}

// Waves: 132 SMs run 132 tiles in one wave; one more tile needs a second.
TEST(CostModel, PartialWavesCostAFullTile) {
  Tile tile{128, 128, 64, 8, 2, 1};
  WeightFormat f = kF16;
  GemmCost full = estimateGemm(h100(), 128 * 132, 128, 8192, f, tile);
  GemmCost plusOne = estimateGemm(h100(), 128 * 133, 128, 8192, f, tile);
  EXPECT_EQ(full.tiles, 132);
  EXPECT_NEAR(plusOne.computeSeconds / full.computeSeconds, 2.0, 1e-9);
  // Padding: 1 token costs a 128-row tile of tensor work.
  GemmCost one = estimateGemm(h100(), 1, 128, 8192, f, tile);
  GemmCost full1 = estimateGemm(h100(), 128, 128, 8192, f, tile);
  EXPECT_DOUBLE_EQ(one.computeSeconds, full1.computeSeconds);
}

TEST(CostModel, LegalityFollowsSharedMemoryAndMmaShape) {
  Tile big{256, 256, 128, 8, 4, 1};
  EXPECT_GT(sharedBytesPerCta(big, kF16, 4096), 228 * 1024);
  EXPECT_FALSE(isLegal(big, kF16, h100(), 4096));
  Tile small{16, 128, 32, 4, 3, 1};
  EXPECT_TRUE(isLegal(small, kW4, h100(), 4096));
  // int8 MMA consumes K in steps of 32, int4 in steps of 64.
  EXPECT_FALSE(isLegal(small, WeightFormat{4, 4, 128, true}, h100(), 4096));
  EXPECT_TRUE(isLegal(small, kW8A8, h100(), 4096));
  EXPECT_EQ(estimateGemm(h100(), 0, 128, 128, kF16, small).seconds, 0.0);
}

} // namespace

// Level tables (DDQ): decode reads 2^bits f16 levels per group instead of a
// scale and a zero (w3 g128: 3 + 16 * 8 / 128 = 4 bits per weight against
// 3.25), and every weight costs a lookup (4 instructions from L1): the
// decode GEMV becomes dequantisation-bound, about 2x the grid's time. The
// shared-memory staging of the tables (not done) is what would remove it.
TEST(CostModel, LevelTablesCostTheirBytesAndLookups) {
  int64_t n = 14336, k = 4096;
  WeightFormat grid{3, 16, 128, false};
  WeightFormat table = grid;
  table.levelTable = true;
  BestTile g = bestTile(h100(), 1, n, k, grid), t = bestTile(h100(), 1, n, k, table);
  // (Same tile: the HBM time scales with the bytes.)
  GemmCost sameTile = estimateGemm(h100(), 1, n, k, table, g.tile);
  EXPECT_NEAR(sameTile.memorySeconds / g.cost.memorySeconds, 4.0 / 3.25, 0.01);
  EXPECT_GT(t.cost.dequantSeconds, t.cost.memorySeconds);
  EXPECT_GT(t.cost.seconds, 1.5 * g.cost.seconds);
  EXPECT_GE(bestTile(h100(), 8192, n, k, table).cost.seconds,
            bestTile(h100(), 8192, n, k, grid).cost.seconds);
}

// wgmma tiles exist for sm_90a only, for f16 activations, and win where
// the tensor cores bound the time (prefill): at the spec-sheet peak, 1.5x
// mma.sync's rate.
TEST(CostModel, WarpGroupTilesArePrefillTilesOfSm90a) {
  int64_t m = 8192, n = 14336, k = 4096;
  GpuSpec hopper = limitToChip(h100(), "sm_90a");
  EXPECT_TRUE(hopper.warpGroupMma);
  EXPECT_FALSE(limitToChip(h100(), "sm_90").warpGroupMma);
  EXPECT_FALSE(bestTile(h100(), m, n, k, kF16).tile.warpGroup);
  BestTile f16 = bestTile(hopper, m, n, k, kF16);
  EXPECT_TRUE(f16.tile.warpGroup);
  double ideal = 2.0 * m * n * k / 989e12;
  EXPECT_GE(f16.cost.seconds, ideal);
  EXPECT_LT(f16.cost.seconds, 1.10 * ideal);
  EXPECT_NEAR(bestTile(h100(), m, n, k, kF16).cost.seconds / f16.cost.seconds, 1.5, 0.1);
  KernelChoice w4 = chooseKernel(hopper, m, n, k, kW4);
  EXPECT_TRUE(w4.tensorCore && w4.tile.warpGroup);
  // Decode stays bandwidth-bound: no reason for 64-row tiles.
  EXPECT_FALSE(chooseKernel(hopper, 16, n, k, kW4).tile.warpGroup);
  // Integer activations have no wgmma tile here.
  EXPECT_FALSE(chooseKernel(hopper, m, n, k, kW8A8).tile.warpGroup);
  // A persistent launch (fixed warps) keeps mma.sync tiles.
  EXPECT_FALSE(chooseKernel(hopper, m, n, k, kF16, KernelPath::TensorCore, 8).tile.warpGroup);
}

// Warpgroups own 64 rows each, then split the columns; a warpgroup's
// columns are one wgmma N (a multiple of 8, at most 256).
TEST(CostModel, WarpGroupGrid) {
  WarpGroupGrid grid;
  ASSERT_TRUE(getWarpGroupGrid(Tile{128, 256, 64, 8, 3, 1, true}, grid));
  EXPECT_EQ(grid.groupsM, 2);
  EXPECT_EQ(grid.groupsN, 1);
  EXPECT_EQ(grid.groupCols, 256);
  ASSERT_TRUE(getWarpGroupGrid(Tile{64, 256, 64, 8, 3, 1, true}, grid));
  EXPECT_EQ(grid.groupsM, 1);
  EXPECT_EQ(grid.groupsN, 2);
  EXPECT_EQ(grid.groupCols, 128);
  EXPECT_FALSE(getWarpGroupGrid(Tile{64, 512, 64, 4, 3, 1, true}, grid));
  EXPECT_FALSE(getWarpGroupGrid(Tile{32, 64, 64, 4, 3, 1, true}, grid));
  EXPECT_FALSE(getWarpGroupGrid(Tile{128, 64, 64, 4, 3, 1, true}, grid));
}

// The wgmma layout: unpadded core-matrix rows, and for packed weights one
// f16 tile of BN x BK after the stages.
TEST(CostModel, WarpGroupSharedLayout) {
  Tile tile{64, 128, 64, 4, 3, 1, true};
  SharedLayout f16 = getSharedLayout(tile, kF16, 4096);
  EXPECT_TRUE(f16.coreMatrices);
  EXPECT_EQ(f16.aRowBytes, 128);
  EXPECT_EQ(f16.bRowBytes, 128);
  EXPECT_EQ(f16.bytes(), 3 * (64 + 128) * 128);
  EXPECT_FALSE(f16.bulkWeights);
  SharedLayout w4 = getSharedLayout(tile, kW4, 4096);
  EXPECT_EQ(w4.bRowBytes, 4 * (8 + 4)); // 8 words of codes + a spare 16-byte chunk
  EXPECT_EQ(w4.dequantOffset(), 3 * (64 * 128 + 128 * 48));
  // 32-byte slices at 16-byte aligned offsets: bulk rows, an mbarrier per
  // stage after the f16 tile.
  EXPECT_TRUE(w4.bulkWeights);
  EXPECT_EQ(w4.barrierOffset(), w4.dequantOffset() + 128 * 64 * 2);
  EXPECT_EQ(w4.bytes(), w4.barrierOffset() + 3 * 8);
  // 3-bit slices of 24 bytes are not 16-byte multiples: cp.async chunks.
  SharedLayout w3 = getSharedLayout(tile, WeightFormat{3, 16, 128, false}, 4096);
  EXPECT_FALSE(w3.bulkWeights);
  EXPECT_EQ(w3.bytes(), w3.dequantOffset() + 128 * 64 * 2);
}
