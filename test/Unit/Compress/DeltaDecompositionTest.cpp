//===- DeltaDecompositionTest.cpp - D^2-MoE merge and delta SVDs ----------===//
//
// Known answers: the Fisher-weighted merge by hand; exact recovery of
// low-rank deltas (plain, whitened, shared basis); Eckart-Young optimality
// of the plain SVD in the Frobenius norm and of the whitened SVD in the
// output-error norm it targets; the rank arithmetic of the compression
// ratio; the channel order of the base pruning.
//
//===----------------------------------------------------------------------===//
#include "moeq/Compress/DeltaDecomposition.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>

using namespace mlir::moeq::compress;

namespace {

std::vector<float> randomMatrix(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> m(rows * cols);
  for (float &v : m)
    v = normal(gen);
  return m;
}

std::vector<float> multiply(const std::vector<float> &a, const std::vector<float> &b,
                            int64_t rows, int64_t inner, int64_t cols) {
  std::vector<float> out(rows * cols, 0.f);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < inner; ++k)
      for (int64_t j = 0; j < cols; ++j)
        out[i * cols + j] += a[i * inner + k] * b[k * cols + j];
  return out;
}

/// X^T X of correlated, unequally scaled inputs (tokens x cols).
std::vector<double> gramOf(int64_t tokens, int64_t cols, unsigned seed) {
  std::vector<float> z = randomMatrix(tokens, cols, seed), mix = randomMatrix(cols, cols, seed + 1);
  std::vector<double> g(cols * cols, 0.0);
  std::vector<double> x(cols);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t k = 0; k < cols; ++k)
        s += z[t * cols + k] * mix[k * cols + j] * (k < cols / 4 ? 1.0 : 0.1);
      x[j] = s * (1 + j % 5);
    }
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        g[i * cols + j] += x[i] * x[j];
  }
  return g;
}

double maxAbsDiff(const std::vector<float> &a, const std::vector<float> &b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

// pad(base) + a . b by hand: a 2x3 weight from a 1x2 base (pruned: one
// row, two columns kept), rank 1.
TEST(RebuildDeltaWeight, PaddedBasePlusLowRankKnownAnswer) {
  std::vector<float> base = {1, 2};
  std::vector<float> a = {3, -1};     // 2 x 1
  std::vector<float> b = {1, 0, 2};   // 1 x 3
  std::vector<float> w = rebuildDeltaWeight(base, 1, 2, a, b, 2, 1, 3);
  std::vector<float> expected = {1 + 3, 2 + 0, 0 + 6, /*row 1:*/ -1, 0, -2};
  EXPECT_EQ(w, expected);
  // An unpruned base and rank 2.
  std::vector<float> full = {1, 1, 1, 1};            // 2 x 2
  std::vector<float> a2 = {1, 0, 0, 1}, b2 = {1, 2, 3, 4}; // identity . b2
  EXPECT_EQ(rebuildDeltaWeight(full, 2, 2, a2, b2, 2, 2, 2),
            (std::vector<float>{2, 3, 4, 5}));
}

TEST(MergeBase, FisherAndFrequencyWeightedKnownAnswer) {
  std::vector<std::vector<float>> w = {{1.f, 2.f}, {3.f, 6.f}};
  std::vector<std::vector<float>> fisher = {{1.f, 0.f}, {3.f, 0.f}};
  auto base = mergeBase(w, {2.0, 1.0}, fisher);
  ASSERT_TRUE(bool(base));
  // Element 0: (2*1*1 + 1*3*3) / (2*1 + 1*3) = 11/5; element 1: no Fisher
  // mass, the plain mean 4.
  EXPECT_FLOAT_EQ((*base)[0], 2.2f);
  EXPECT_FLOAT_EQ((*base)[1], 4.f);
  auto mean = mergeBase(w, {1.0, 1.0}, {});
  ASSERT_TRUE(bool(mean));
  EXPECT_EQ(*mean, (std::vector<float>{2.f, 4.f}));
  auto frequency = mergeBase(w, {3.0, 1.0}, {});
  ASSERT_TRUE(bool(frequency));
  EXPECT_FLOAT_EQ((*frequency)[0], 1.5f);
  auto bad = mergeBase(w, {1.0}, {});
  ASSERT_FALSE(bool(bad));
  llvm::consumeError(bad.takeError());
}

TEST(TruncatedSVD, RecoversLowRankDeltasExactly) {
  const int64_t rows = 24, cols = 16, rank = 3;
  std::vector<float> delta = multiply(randomMatrix(rows, rank, 1), randomMatrix(rank, cols, 2),
                                      rows, rank, cols);
  for (bool whitened : {false, true}) {
    std::vector<double> g = whitened ? gramOf(200, cols, 3) : std::vector<double>();
    auto f = truncatedSVD(delta, rows, cols, g, rank);
    ASSERT_TRUE(bool(f)) << llvm::toString(f.takeError());
    EXPECT_EQ(f->rank, rank);
    EXPECT_LT(maxAbsDiff(f->product(), delta), 1e-4) << whitened;
  }
}

TEST(TruncatedSVD, PlainSVDMeetsEckartYoung) {
  // Delta = U diag(8, 4, 2, 1) V^T with orthonormal U, V (Householder-free:
  // a permutation-sign pattern): the best rank-2 error is 2^2 + 1^2.
  const int64_t n = 4;
  std::vector<float> delta(n * n, 0.f);
  float sigma[] = {8.f, 4.f, 2.f, 1.f};
  int perm[] = {2, 0, 3, 1};
  for (int64_t i = 0; i < n; ++i)
    delta[i * n + perm[i]] = (i % 2 ? -1.f : 1.f) * sigma[i];
  auto f = truncatedSVD(delta, n, n, {}, 2);
  ASSERT_TRUE(bool(f));
  EXPECT_NEAR(whitenedError(delta, *f, {}), 5.0, 1e-9);
}

TEST(TruncatedSVD, WhiteningMinimisesTheOutputError) {
  const int64_t rows = 32, cols = 24;
  std::vector<float> delta = randomMatrix(rows, cols, 4);
  std::vector<double> g = gramOf(300, cols, 5);
  for (int64_t rank : {2, 6, 12}) {
    auto plain = truncatedSVD(delta, rows, cols, {}, rank);
    auto whitened = truncatedSVD(delta, rows, cols, g, rank);
    ASSERT_TRUE(plain && whitened);
    // Each is best in the norm it optimises.
    EXPECT_LT(whitenedError(delta, *whitened, g), whitenedError(delta, *plain, g)) << rank;
    EXPECT_LT(whitenedError(delta, *plain, {}), whitenedError(delta, *whitened, {})) << rank;
  }
}

TEST(SharedBasisSVD, RecoversDeltasWithACommonRowSpace) {
  const int64_t rows = 20, cols = 16, rank = 4, experts = 3;
  std::vector<float> rowSpace = randomMatrix(rank, cols, 6);
  std::vector<std::vector<float>> deltas;
  for (int64_t e = 0; e < experts; ++e)
    deltas.push_back(multiply(randomMatrix(rows, rank, 10 + e), rowSpace, rows, rank, cols));
  std::vector<double> g = gramOf(200, cols, 7);
  auto f = sharedBasisSVD(deltas, rows, cols, g, rank);
  ASSERT_TRUE(bool(f)) << llvm::toString(f.takeError());
  ASSERT_EQ(f->size(), size_t(experts));
  for (int64_t e = 0; e < experts; ++e) {
    EXPECT_EQ((*f)[e].b, (*f)[0].b);
    EXPECT_LT(maxAbsDiff((*f)[e].product(), deltas[e]), 1e-3) << e;
  }
}

TEST(Compression, RankArithmetic) {
  // 8 experts of 512 x 256, base kept whole, 40% compression:
  // (0.6 * 8 - 1) * 131072 / (8 * 768) = 81.06 -> 80 with multiples of 16.
  auto r = rankForCompression(8, 512, 256, 0.4, 512.0 * 256, false, 16);
  ASSERT_TRUE(bool(r));
  EXPECT_EQ(*r, 80);
  // Shared B: (0.6 * 8 - 1) * 131072 / (8 * 512 + 256) = 115.3 -> 112.
  auto shared = rankForCompression(8, 512, 256, 0.4, 512.0 * 256, true, 16);
  ASSERT_TRUE(bool(shared));
  EXPECT_EQ(*shared, 112);
  auto impossible = rankForCompression(8, 512, 256, 0.9, 512.0 * 256, false, 16);
  ASSERT_FALSE(bool(impossible));
  EXPECT_NE(llvm::toString(impossible.takeError()).find("leaves no room"), std::string::npos);
}

TEST(Pruning, ChannelsRankedByActivationWeightedNorm) {
  // hidden 2, intermediate 3: column norms 1, 3, 2; activation energies
  // 4, 0.25, 1 over 1 token -> scores 2, 1.5, 2 -> order 0, 2, 1.
  std::vector<float> down = {1.f, 3.f, 0.f, 0.f, 0.f, 2.f};
  std::vector<double> g = {4, 0, 0, 0, 0.25, 0, 0, 0, 1};
  EXPECT_EQ(rankBaseChannels(down, 2, 3, {g}, 1.0), (std::vector<int64_t>{0, 2, 1}));
}

} // namespace
