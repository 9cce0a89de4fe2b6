//===- LevelTableTest.cpp - DDQ-style level tables ------------------------===//
//
// A level table is the weighted 1-D k-means of a group with its outer levels
// pinned to the range: checked on data with a known optimum (exact
// clusters), against the uniform grid (never worse), for Lloyd's
// stationarity of the inner levels (each the weighted mean of its weights),
// for the effect of the importance weights, and inside GPTQ
// (a diagonal Hessian reduces it to the importance-weighted fit; a
// correlated one lowers the output error).
//
//===----------------------------------------------------------------------===//
#include "moeq/Quant/GPTQ.h"

#include "QuantTestUtil.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace mlir::moeq::quant;

namespace {

using test::correlatedInputs;
using test::gram;
using test::randomMatrix;

double weightedError(llvm::ArrayRef<float> w, llvm::ArrayRef<double> importance,
                     llvm::ArrayRef<float> levels) {
  double error = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    double e = w[i] - levels[nearestLevel(w[i], levels)];
    error += (importance.empty() ? 1.0 : importance[i]) * e * e;
  }
  return error;
}

TEST(LevelTable, RecoversExactClusters) {
  // Four values (all exact in f16) repeated: the 2-bit table is them.
  std::vector<float> w;
  for (int i = 0; i < 32; ++i)
    w.push_back(std::vector<float>{-1.f, -0.25f, 0.5f, 2.f}[(i * 7) % 4]);
  std::vector<float> levels = fitLevelTable(w, {}, 2);
  EXPECT_EQ(levels, (std::vector<float>{-1.f, -0.25f, 0.5f, 2.f}));
  EXPECT_EQ(weightedError(w, {}, levels), 0.0);
}

TEST(LevelTable, NeverWorseThanTheUniformGrid) {
  std::vector<float> w = randomMatrix(64, 128, 11);
  for (unsigned bits : {1u, 2u, 3u, 4u})
    for (int64_t row = 0; row < 64; ++row) {
      llvm::ArrayRef<float> group = llvm::ArrayRef<float>(w).slice(row * 128, 128);
      float lo = *std::min_element(group.begin(), group.end());
      float hi = *std::max_element(group.begin(), group.end());
      std::vector<float> grid(1u << bits);
      for (size_t l = 0; l < grid.size(); ++l)
        grid[l] = lo + (hi - lo) * float(l) / float(grid.size() - 1);
      std::vector<float> levels = fitLevelTable(group, {}, bits);
      ASSERT_EQ(levels.size(), grid.size());
      EXPECT_TRUE(std::is_sorted(levels.begin(), levels.end()));
      // (f16 rounding of the levels is the only slack.)
      EXPECT_LE(weightedError(group, {}, levels), weightedError(group, {}, grid) * 1.001 + 1e-6)
          << bits << " bits, row " << row;
    }
}

TEST(LevelTable, InnerLevelsAreWeightedMeansOuterLevelsTheRange) {
  std::vector<float> w = randomMatrix(1, 256, 12);
  std::vector<double> importance(256);
  for (int i = 0; i < 256; ++i)
    importance[i] = 0.5 + (i * 13 % 17);
  std::vector<float> levels = fitLevelTable(w, importance, 3);
  std::vector<double> sum(8), mass(8);
  for (int i = 0; i < 256; ++i) {
    uint8_t code = nearestLevel(w[i], levels);
    sum[code] += importance[i] * w[i];
    mass[code] += importance[i];
  }
  // The outer levels are pinned to the range; the inner ones are the
  // weighted means of their weights (Lloyd's fixed point).
  auto half = [](float v) { return llvm::ArrayRef<float>(fitLevelTable({v, v}, {}, 1))[0]; };
  EXPECT_EQ(levels.front(), half(*std::min_element(w.begin(), w.end())));
  EXPECT_EQ(levels.back(), half(*std::max_element(w.begin(), w.end())));
  for (int l = 1; l + 1 < 8; ++l)
    if (mass[l] > 0)
      EXPECT_NEAR(levels[l], sum[l] / mass[l], 2e-3 * (1 + std::abs(levels[l]))) << l;
}

TEST(LevelTable, ImportantWeightsGetCloserLevels) {
  std::vector<float> w = randomMatrix(1, 128, 13);
  std::vector<double> uniform(128, 1.0), skewed(128, 1.0);
  for (int i = 0; i < 128; i += 8)
    skewed[i] = 100.0;
  std::vector<float> plain = fitLevelTable(w, uniform, 2);
  std::vector<float> weighted = fitLevelTable(w, skewed, 2);
  // The table fitted with the importance has the smaller weighted error.
  EXPECT_LT(weightedError(w, skewed, weighted), weightedError(w, skewed, plain));
}

TEST(LevelTable, QuantizerStoresTablesAndDequantizesThroughThem) {
  const int64_t rows = 6, cols = 128;
  std::vector<float> w = randomMatrix(rows, cols, 14);
  Scheme scheme{3, 64, false, {}, true};
  auto q = quantizeRTN(w, rows, cols, scheme);
  ASSERT_TRUE(bool(q)) << llvm::toString(q.takeError());
  EXPECT_TRUE(q->scales.empty());
  ASSERT_EQ(q->levels.size(), size_t(rows * 2 * 8));
  std::vector<float> deq = dequantize(*q);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      llvm::ArrayRef<float> table = q->table(r, c / 64);
      EXPECT_EQ(deq[r * cols + c], table[q->codes[r * cols + c]]);
      EXPECT_EQ(q->codes[r * cols + c], nearestLevel(w[r * cols + c], table));
    }
  // Tables fit better than the uniform asymmetric grid of the same width.
  auto uniform = quantizeRTN(w, rows, cols, Scheme{3, 64, false});
  ASSERT_TRUE(bool(uniform));
  EXPECT_LT(hessianLoss(w, *q, {}), 0.9 * hessianLoss(w, *uniform, {}));
  // Codes pack like integer codes.
  EXPECT_EQ(unpackCodes(packCodes(*q), rows, cols, scheme), q->codes);
}

TEST(LevelTable, GPTQWithDiagonalHessianIsTheImportanceWeightedFit) {
  const int64_t rows = 8, cols = 64;
  std::vector<float> w = randomMatrix(rows, cols, 15);
  std::vector<double> h(cols * cols, 0.0), diagonal(cols);
  for (int64_t i = 0; i < cols; ++i)
    h[i * cols + i] = diagonal[i] = 1.0 + (i * 37 % 11);
  for (Scheme scheme : {Scheme{2, 32, false, {}, true}, Scheme{4, 0, false, {}, true}}) {
    auto viaGPTQ = quantizeGPTQ(w, rows, cols, scheme, h);
    auto direct = quantizeRTN(w, rows, cols, scheme, {}, {}, diagonal);
    ASSERT_TRUE(viaGPTQ && direct);
    EXPECT_EQ(viaGPTQ->codes, direct->codes);
    EXPECT_EQ(viaGPTQ->levels, direct->levels);
  }
}

TEST(LevelTable, GPTQLowersTheOutputError) {
  const int64_t rows = 32, cols = 128, tokens = 512;
  std::vector<float> w = randomMatrix(rows, cols, 16);
  std::vector<double> h = gram(correlatedInputs(tokens, cols, 17), tokens, cols);
  for (unsigned bits : {2u, 3u}) {
    Scheme table{bits, 64, false, {}, true}, grid{bits, 64, false};
    auto rtnTable = quantizeRTN(w, rows, cols, table);
    auto gptqTable = quantizeGPTQ(w, rows, cols, table, h);
    auto gptqGrid = quantizeGPTQ(w, rows, cols, grid, h);
    ASSERT_TRUE(rtnTable && gptqTable && gptqGrid);
    double lossRTN = hessianLoss(w, *rtnTable, h), lossGPTQ = hessianLoss(w, *gptqTable, h);
    EXPECT_LT(lossGPTQ, 0.8 * lossRTN) << bits;
    // At the same code width the table beats the uniform grid under GPTQ.
    EXPECT_LT(lossGPTQ, hessianLoss(w, *gptqGrid, h)) << bits;
  }
}

TEST(LevelTable, RejectsWhatItCannotStore) {
  std::vector<float> w = randomMatrix(2, 64, 18);
  for (Scheme bad : {Scheme{5, 32, false, {}, true}, Scheme{3, 32, true, {}, true},
                     Scheme{2, 32, false, {1, 3}, true}}) {
    auto q = quantizeRTN(w, 2, 64, bad);
    ASSERT_FALSE(bool(q));
    llvm::consumeError(q.takeError());
  }
}

} // namespace
