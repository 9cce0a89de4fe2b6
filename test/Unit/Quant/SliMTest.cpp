//===- SliMTest.cpp - SliM-LLM pieces: group bits, salience, SBA, SQC -----===//
//
// Group-wise mixed precision must equal quantizing each column group alone
// at its width (RTN bit for bit; GPTQ with a diagonal Hessian too), pack
// into the documented variable-width stream, and round-trip. Salience is
// checked on a diagonal Hessian, where U_jj = 1 / sqrt(h_jj + damp) is
// known; SBA's candidates and SQC's effect on the weighted error are
// checked against their definitions.
//
//===----------------------------------------------------------------------===//
#include "moeq/Quant/GPTQ.h"

#include "QuantTestUtil.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>

using namespace mlir::moeq::quant;

namespace {

using test::randomMatrix;

TEST(GroupBits, EachGroupIsQuantizedAtItsWidth) {
  const int64_t rows = 5, cols = 128;
  std::vector<float> w = randomMatrix(rows, cols, 1);
  Scheme mixed{2, 32, false, {1, 3, 2, 2}};
  auto q = quantizeRTN(w, rows, cols, mixed);
  ASSERT_TRUE(bool(q)) << llvm::toString(q.takeError());
  for (int64_t g = 0; g < 4; ++g) {
    std::vector<float> slice;
    for (int64_t r = 0; r < rows; ++r)
      slice.insert(slice.end(), w.begin() + r * cols + g * 32, w.begin() + r * cols + g * 32 + 32);
    auto alone = quantizeRTN(slice, rows, 32, mixed.forGroup(g));
    ASSERT_TRUE(bool(alone));
    for (int64_t r = 0; r < rows; ++r) {
      EXPECT_EQ(q->scales[r * 4 + g], alone->scales[r]);
      EXPECT_EQ(q->zeros[r * 4 + g], alone->zeros[r]);
      for (int64_t c = 0; c < 32; ++c)
        ASSERT_EQ(q->codes[r * cols + g * 32 + c], alone->codes[r * 32 + c]);
    }
  }
  // A row is 32*1 + 32*3 + 32*2 + 32*2 = 256 bits = 8 words.
  EXPECT_EQ(mixed.rowBits(cols), 256);
  std::vector<uint32_t> words = packCodes(*q);
  ASSERT_EQ(words.size(), size_t(rows * 8));
  EXPECT_EQ(unpackCodes(words, rows, cols, mixed), q->codes);
  // Layout: group 1 (3-bit codes) starts at bit 32, its second code at 35.
  EXPECT_EQ(mixed.bitOffset(33, cols), 35);
  EXPECT_EQ(mixed.bitOffset(64, cols), 128);
  uint32_t second = (words[1] >> 3) & 7;
  EXPECT_EQ(second, q->codes[33]);
}

TEST(GroupBits, RejectsInconsistentWidths) {
  std::vector<float> w = randomMatrix(2, 64, 2);
  EXPECT_FALSE(bool(quantizeRTN(w, 2, 64, Scheme{2, 32, false, {2}})));
  auto nine = quantizeRTN(w, 2, 64, Scheme{2, 32, false, {9, 2}});
  ASSERT_FALSE(bool(nine));
  EXPECT_NE(llvm::toString(nine.takeError()).find("column group 0"), std::string::npos);
  EXPECT_FALSE(bool(quantizeRTN(w, 2, 64, Scheme{2, 0, false, {2}})));
}

// A diagonal Hessian spreads no error: GPTQ with group bits is RTN with
// group bits, bit for bit.
TEST(GroupBits, GPTQWithDiagonalHessianIsRTN) {
  const int64_t rows = 6, cols = 96;
  std::vector<float> w = randomMatrix(rows, cols, 3);
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; ++i)
    h[i * cols + i] = 1.0 + i % 5;
  Scheme mixed{3, 32, false, {2, 4, 3}};
  auto gptq = quantizeGPTQ(w, rows, cols, mixed, h);
  auto rtn = quantizeRTN(w, rows, cols, mixed);
  ASSERT_TRUE(bool(gptq) && bool(rtn));
  EXPECT_EQ(gptq->codes, rtn->codes);
  EXPECT_EQ(gptq->scales, rtn->scales);
}

TEST(Salience, DiagonalHessianKnownAnswer) {
  const int64_t rows = 3, cols = 8;
  std::vector<float> w = randomMatrix(rows, cols, 4);
  std::vector<double> h(cols * cols, 0.0);
  double meanDiag = 0;
  for (int64_t i = 0; i < cols; ++i)
    meanDiag += h[i * cols + i] = 1.0 + i;
  meanDiag /= cols;
  auto diagonal = inverseHessianDiagonal(h, cols, 0.01);
  ASSERT_TRUE(bool(diagonal)) << llvm::toString(diagonal.takeError());
  for (int64_t j = 0; j < cols; ++j)
    EXPECT_NEAR((*diagonal)[j], 1.0 / std::sqrt(1.0 + j + 0.01 * meanDiag), 1e-12);
  std::vector<double> groups = groupSalience(w, rows, cols, 4, *diagonal);
  ASSERT_EQ(groups.size(), 2u);
  for (int64_t g = 0; g < 2; ++g) {
    double expected = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = g * 4; c < g * 4 + 4; ++c)
        expected += double(w[r * cols + c]) * w[r * cols + c] * (1.0 + c + 0.01 * meanDiag);
    EXPECT_NEAR(groups[g], expected, 1e-9 * expected);
  }
}

TEST(Salience, SalientWeightsAreTheOutliers) {
  const int64_t rows = 16, cols = 64;
  std::vector<float> w = randomMatrix(rows, cols, 5);
  w[3 * cols + 7] = 12.f; // an outlier
  std::vector<double> diagonal(cols, 1.0);
  std::vector<uint8_t> mask = salientWeights(w, rows, cols, diagonal);
  EXPECT_EQ(mask[3 * cols + 7], 1);
  int64_t count = 0;
  for (uint8_t m : mask)
    count += m;
  EXPECT_GT(count, 0);
  EXPECT_LT(count, rows * cols / 10); // |z| > 2: a few percent at most
}

TEST(SBA, CandidatesKeepTheMeanAndFollowSalience) {
  std::vector<double> salience{5.0, 1.0, 9.0, 3.0, 7.0, 2.0};
  auto candidates = groupBitCandidates(salience, 2);
  ASSERT_EQ(candidates.size(), 4u); // k = 0..3
  EXPECT_EQ(candidates[0], (std::vector<uint8_t>{2, 2, 2, 2, 2, 2}));
  // k = 1: least salient (group 1) -> 1 bit, most salient (group 2) -> 3.
  EXPECT_EQ(candidates[1], (std::vector<uint8_t>{2, 1, 3, 2, 2, 2}));
  EXPECT_EQ(candidates[2], (std::vector<uint8_t>{2, 1, 3, 2, 3, 1}));
  for (const auto &c : candidates) {
    int sum = 0;
    for (uint8_t b : c)
      sum += b;
    EXPECT_EQ(sum, 12);
  }
  EXPECT_EQ(groupBitCandidates(salience, 1).size(), 1u);
  EXPECT_EQ(groupBitCandidates(salience, 8).size(), 1u);
}

// The golden-section search finds the exhaustive minimum of every
// unimodal loss (V shapes and plateaus, the minimum anywhere, 1-40
// candidates) in at most log_phi(count) + 4 evaluations, each index once.
TEST(SBA, GoldenSearchFindsTheMinimumOfUnimodalLosses) {
  for (size_t count = 1; count <= 40; ++count) {
    for (size_t minimum = 0; minimum < count; ++minimum) {
      for (double slope : {1.0, 0.25}) {
        std::vector<int> calls(count, 0);
        auto loss = [&](size_t i) -> llvm::Expected<double> {
          ++calls[i];
          double d = double(i) - double(minimum);
          return d < 0 ? -d : slope * d; // asymmetric V
        };
        llvm::Expected<size_t> golden = searchLeastLoss(count, loss, CandidateSearch::Golden);
        ASSERT_TRUE(bool(golden));
        EXPECT_EQ(*golden, minimum) << count << " candidates";
        int evaluations = 0;
        for (int c : calls) {
          EXPECT_LE(c, 1);
          evaluations += c;
        }
        EXPECT_LE(evaluations, int(std::log(double(count)) / std::log(1.618) + 4))
            << count << " candidates, minimum at " << minimum;
      }
    }
  }
  // 17 candidates (k = 0..16 of 32 groups): at most 10 evaluations.
  int evaluations = 0;
  auto bowl = [&](size_t i) -> llvm::Expected<double> {
    ++evaluations;
    return (double(i) - 5.3) * (double(i) - 5.3);
  };
  EXPECT_EQ(*searchLeastLoss(17, bowl, CandidateSearch::Golden), 5u);
  EXPECT_LE(evaluations, 10);
}

TEST(SBA, SearchNeverReturnsWorseThanTheFirstCandidate) {
  // Not unimodal: the golden search may miss the global minimum (index 9)
  // but never returns a loss above index 0's, and the exhaustive search
  // finds it.
  std::vector<double> losses{1.0, 3.0, 0.5, 2.0, 2.5, 2.7, 2.9, 3.1, 3.3, 0.1, 3.5};
  auto loss = [&](size_t i) -> llvm::Expected<double> { return losses[i]; };
  llvm::Expected<size_t> golden = searchLeastLoss(losses.size(), loss, CandidateSearch::Golden);
  ASSERT_TRUE(bool(golden));
  EXPECT_LE(losses[*golden], losses[0]);
  EXPECT_EQ(*searchLeastLoss(losses.size(), loss, CandidateSearch::Exhaustive), 9u);
  // Ties go to the smaller index (uniform widths when nothing is gained).
  auto flat = [](size_t) -> llvm::Expected<double> { return 1.0; };
  EXPECT_EQ(*searchLeastLoss(5, flat, CandidateSearch::Exhaustive), 0u);
  EXPECT_EQ(*searchLeastLoss(5, flat, CandidateSearch::Golden), 0u);
}

TEST(SBA, SearchReturnsTheLossError) {
  auto failing = [](size_t i) -> llvm::Expected<double> {
    if (i == 2)
      return llvm::createStringError("cannot quantize candidate 2");
    return double(i);
  };
  llvm::Expected<size_t> result = searchLeastLoss(4, failing, CandidateSearch::Exhaustive);
  ASSERT_FALSE(bool(result));
  EXPECT_EQ(llvm::toString(result.takeError()), "cannot quantize candidate 2");
  llvm::Expected<size_t> none = searchLeastLoss(0, failing, CandidateSearch::Golden);
  ASSERT_FALSE(bool(none));
  llvm::consumeError(none.takeError());
}

// Where salience is uneven (one group of large weights), moving a bit from
// the least to the most salient group lowers the GPTQ loss at the same
// mean width: SBA's premise, on GPTQ with group bits.
TEST(SBA, UnevenSalienceGainsFromMixedWidths) {
  const int64_t rows = 16, cols = 128, n = 512;
  std::vector<float> w = randomMatrix(rows, cols, 7);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 96; c < 128; ++c)
      w[r * cols + c] *= 8.f;
  std::vector<float> x = randomMatrix(n, cols, 8);
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        h[i * cols + j] += double(x[t * cols + i]) * x[t * cols + j];
  auto diagonal = inverseHessianDiagonal(h, cols);
  ASSERT_TRUE(bool(diagonal));
  std::vector<double> salience = groupSalience(w, rows, cols, 32, *diagonal);
  auto candidates = groupBitCandidates(salience, 2);
  ASSERT_EQ(candidates.size(), 3u);
  EXPECT_EQ(candidates[1][3], 3); // the scaled group is the most salient
  std::vector<double> losses;
  for (const auto &widths : candidates) {
    auto q = quantizeGPTQ(w, rows, cols, Scheme{2, 32, false, widths}, h);
    ASSERT_TRUE(bool(q)) << llvm::toString(q.takeError());
    losses.push_back(hessianLoss(w, *q, h));
  }
  EXPECT_LT(losses[1], 0.8 * losses[0]) << losses[0] << " " << losses[1];
}

// SQC lowers the salience-weighted error it minimises (never raises it:
// p = 1 is a candidate), and with a heavy weight on the salient entries it
// trades the rest for them.
TEST(SQC, LowersTheWeightedError) {
  const int64_t rows = 32, cols = 128;
  std::vector<float> w = randomMatrix(rows, cols, 6);
  std::vector<double> diagonal(cols, 1.0);
  std::vector<uint8_t> mask = salientWeights(w, rows, cols, diagonal);
  Scheme scheme{3, 32, false};
  RangeOptions plain, sqc;
  sqc.salienceCalibration = true;
  sqc.salientWeight = 4.f;
  auto error = [&](const RangeOptions &options) {
    double total = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < cols / 32; ++g) {
        auto group = llvm::ArrayRef<float>(w).slice(r * cols + g * 32, 32);
        auto m = llvm::ArrayRef<uint8_t>(mask).slice(r * cols + g * 32, 32);
        auto [scale, zero] = groupParams(group, scheme, options, m);
        for (int64_t c = 0; c < 32; ++c) {
          float q = (float(quantizeValue(group[c], scale, zero, scheme.maxCode())) - zero) * scale;
          double term = std::pow(std::fabs(double(q) - group[c]), 2.4);
          total += m[c] ? 4.0 * term : term;
        }
      }
    return total;
  };
  double before = error(plain), after = error(sqc);
  EXPECT_LT(after, before);
  EXPECT_LT(after, 0.99 * before);
}

// quantizeWeights without a Hessian takes w^2 as the salience: the plain
// |error|^2.4 sum (lambda = 1) cannot get worse than min/max ranges.
TEST(SQC, DataFreeQuantizerNeverRaisesItsError) {
  const int64_t rows = 16, cols = 128;
  std::vector<float> w = randomMatrix(rows, cols, 9);
  Scheme scheme{3, 32, false};
  GPTQOptions sqc;
  sqc.salienceCalibration = true;
  auto plain = quantizeWeights(w, rows, cols, scheme, {}, {});
  auto calibrated = quantizeWeights(w, rows, cols, scheme, {}, sqc);
  ASSERT_TRUE(bool(plain) && bool(calibrated));
  auto error = [&](const QuantizedMatrix &q) {
    std::vector<float> d = dequantize(q);
    double e = 0;
    for (size_t i = 0; i < d.size(); ++i)
      e += std::pow(std::fabs(double(d[i]) - w[i]), 2.4);
    return e;
  };
  EXPECT_LE(error(*calibrated), error(*plain));
  EXPECT_NE(calibrated->scales, plain->scales);
}

} // namespace
