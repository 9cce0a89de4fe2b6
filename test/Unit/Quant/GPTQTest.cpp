//===- GPTQTest.cpp - GPTQ/AGQ against known answers and a reference ------===//
//
// The blocked Cholesky GPTQ is checked against (a) round-to-nearest where it
// must reduce to it (diagonal Hessian: no error to spread), (b) an
// independent textbook implementation in this file (the Optimal Brain
// Surgeon form: explicit inverse by Gauss-Jordan, one column eliminated at a
// time), and (c) its purpose: a lower output error than RTN on correlated
// inputs, and, with affinity-weighted Hessians (AGQ), on the weighted error.
//
//===----------------------------------------------------------------------===//
#include "moeq/Quant/GPTQ.h"

#include "QuantTestUtil.h"

#include "gtest/gtest.h"

#include <cmath>
#include <random>
#include <string>

using namespace mlir::moeq::quant;

namespace {

using test::randomMatrix;
using test::correlatedInputs;
using test::gram;

/// Textbook GPTQ (OBS form): explicit inverse of the damped Hessian; after
/// each column, the inverse of the remaining columns by one elimination.
/// Group parameters as quantizeGPTQ without act-order: from the current
/// (error-corrected) weights when a group starts.
QuantizedMatrix referenceGPTQ(std::vector<float> weights, int64_t rows, int64_t cols,
                              const Scheme &scheme, std::vector<double> h,
                              double dampening) {
  double mean = 0;
  for (int64_t i = 0; i < cols; ++i)
    mean += h[i * cols + i];
  mean /= double(cols);
  for (int64_t i = 0; i < cols; ++i)
    h[i * cols + i] += dampening * mean;
  // Gauss-Jordan inverse.
  std::vector<double> a = h, inv(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; ++i)
    inv[i * cols + i] = 1.0;
  for (int64_t p = 0; p < cols; ++p) {
    double pivot = a[p * cols + p];
    for (int64_t j = 0; j < cols; ++j) {
      a[p * cols + j] /= pivot;
      inv[p * cols + j] /= pivot;
    }
    for (int64_t r = 0; r < cols; ++r) {
      if (r == p)
        continue;
      double f = a[r * cols + p];
      for (int64_t j = 0; j < cols; ++j) {
        a[r * cols + j] -= f * a[p * cols + j];
        inv[r * cols + j] -= f * inv[p * cols + j];
      }
    }
  }
  QuantizedMatrix q = QuantizedMatrix::sized(rows, cols, scheme);
  int64_t width = scheme.groupWidth(cols), groups = scheme.numGroups(cols);
  std::vector<double> w(weights.begin(), weights.end());
  for (int64_t i = 0; i < cols; ++i) {
    int64_t g = i / width;
    if (i % width == 0)
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> values(width);
        for (int64_t c = 0; c < width; ++c)
          values[c] = float(w[r * cols + i + c]);
        auto [scale, zero] = groupParams(values, scheme);
        q.scales[r * groups + g] = scale;
        q.zeros[r * groups + g] = zero;
      }
    double d = inv[i * cols + i];
    for (int64_t r = 0; r < rows; ++r) {
      float scale = q.scales[r * groups + g], zero = q.zeros[r * groups + g];
      uint8_t code = quantizeValue(float(w[r * cols + i]), scale, zero, scheme.maxCode());
      q.codes[r * cols + i] = code;
      double e = (w[r * cols + i] - (double(code) - zero) * scale) / d;
      for (int64_t j = i + 1; j < cols; ++j)
        w[r * cols + j] -= e * inv[i * cols + j];
    }
    // Remove column i from the inverse.
    std::vector<double> rowI(inv.begin() + i * cols, inv.begin() + (i + 1) * cols);
    for (int64_t r = 0; r < cols; ++r) {
      double f = inv[r * cols + i] / d;
      for (int64_t j = 0; j < cols; ++j)
        inv[r * cols + j] -= f * rowI[j];
    }
  }
  return q;
}

QuantizedMatrix gptq(const std::vector<float> &w, int64_t rows, int64_t cols,
                     const Scheme &scheme, const std::vector<double> &h,
                     const GPTQOptions &options = {}) {
  llvm::Expected<QuantizedMatrix> q = quantizeGPTQ(w, rows, cols, scheme, h, options);
  if (!q) {
    ADD_FAILURE() << llvm::toString(q.takeError());
    return {};
  }
  return std::move(*q);
}

QuantizedMatrix rtn(const std::vector<float> &w, int64_t rows, int64_t cols,
                    const Scheme &scheme, RangeOptions range = {}) {
  llvm::Expected<QuantizedMatrix> q = quantizeRTN(w, rows, cols, scheme, range);
  if (!q) {
    ADD_FAILURE() << llvm::toString(q.takeError());
    return {};
  }
  return std::move(*q);
}

void expectSame(const QuantizedMatrix &a, const QuantizedMatrix &b) {
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.scales, b.scales);
  EXPECT_EQ(a.zeros, b.zeros);
}

TEST(GPTQTest, DiagonalHessianIsRoundToNearest) {
  // No off-diagonal coupling: no error is spread, whatever the diagonal.
  int64_t rows = 8, cols = 64;
  std::vector<float> w = randomMatrix(rows, cols, 1);
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; ++i)
    h[i * cols + i] = 1.0 + (i * 37 % 11);
  for (Scheme scheme : {Scheme{4, 32, false}, Scheme{3, 0, false}, Scheme{2, 16, true}}) {
    expectSame(gptq(w, rows, cols, scheme, h), rtn(w, rows, cols, scheme));
    GPTQOptions actOrder;
    actOrder.actOrder = true;
    expectSame(gptq(w, rows, cols, scheme, h, actOrder), rtn(w, rows, cols, scheme));
  }
  // An all-zero Hessian (an expert no calibration token reached) too.
  std::vector<double> zero(cols * cols, 0.0);
  expectSame(gptq(w, rows, cols, Scheme{4, 32, false}, zero),
             rtn(w, rows, cols, Scheme{4, 32, false}));
}

TEST(GPTQTest, MatchesTextbookReference) {
  int64_t rows = 16, cols = 96, tokens = 400;
  std::vector<float> w = randomMatrix(rows, cols, 2);
  std::vector<double> h = gram(correlatedInputs(tokens, cols, 3), tokens, cols);
  for (Scheme scheme : {Scheme{4, 32, false}, Scheme{3, 0, false}, Scheme{2, 32, false},
                        Scheme{4, 0, true}}) {
    for (int64_t block : {32, 64, 128}) {
      GPTQOptions options;
      options.blockSize = block;
      QuantizedMatrix got = gptq(w, rows, cols, scheme, h, options);
      QuantizedMatrix want = referenceGPTQ(w, rows, cols, scheme, h, options.dampening);
      // Same decisions but for float64 rounding ties, hence almost the same
      // codes and the same loss.
      int64_t same = 0;
      for (size_t i = 0; i < got.codes.size(); ++i)
        same += got.codes[i] == want.codes[i];
      EXPECT_GE(double(same) / got.codes.size(), 0.995)
          << "bits " << scheme.bits << " group " << scheme.groupSize << " block " << block;
      double lossGot = hessianLoss(w, got, h), lossWant = hessianLoss(w, want, h);
      EXPECT_NEAR(lossGot, lossWant, 1e-3 * lossWant);
    }
  }
}

TEST(GPTQTest, LowerOutputErrorThanRoundToNearest) {
  int64_t rows = 32, cols = 128, tokens = 512;
  std::vector<float> w = randomMatrix(rows, cols, 4);
  std::vector<double> h = gram(correlatedInputs(tokens, cols, 5), tokens, cols);
  for (unsigned bits : {2u, 3u, 4u, 8u})
    for (int64_t group : {int64_t(0), int64_t(32), int64_t(128)}) {
      Scheme scheme{bits, group, false};
      double lossRTN = hessianLoss(w, rtn(w, rows, cols, scheme), h);
      double lossGPTQ = hessianLoss(w, gptq(w, rows, cols, scheme, h), h);
      EXPECT_LT(lossGPTQ, 0.8 * lossRTN) << "w" << bits << " g" << group;
      GPTQOptions actOrder;
      actOrder.actOrder = true;
      double lossAct = hessianLoss(w, gptq(w, rows, cols, scheme, h, actOrder), h);
      EXPECT_LT(lossAct, 0.8 * lossRTN) << "act-order w" << bits << " g" << group;
    }
}

TEST(GPTQTest, AffinityWeightedHessianLowersWeightedError) {
  // AGQ: tokens routed with a high affinity come from another distribution
  // than the many low-affinity ones; the weighted Hessian optimises the
  // error that the combine step actually sees.
  int64_t rows = 32, cols = 64, tokens = 600;
  std::vector<float> x = correlatedInputs(tokens, cols, 6);
  std::vector<float> other = correlatedInputs(tokens, cols, 60);
  std::vector<double> affinity(tokens);
  for (int64_t t = 0; t < tokens; ++t) {
    bool strong = t % 5 == 0;
    affinity[t] = strong ? 0.9 : 0.02;
    if (strong)
      for (int64_t j = 0; j < cols; ++j)
        x[t * cols + j] = other[t * cols + j];
  }
  std::vector<double> plain = gram(x, tokens, cols), weighted = gram(x, tokens, cols, affinity);
  std::vector<float> w = randomMatrix(rows, cols, 7);
  for (unsigned bits : {2u, 3u, 4u}) {
    Scheme scheme{bits, 32, false};
    double lossGPTQ = hessianLoss(w, gptq(w, rows, cols, scheme, plain), weighted);
    double lossAGQ = hessianLoss(w, gptq(w, rows, cols, scheme, weighted), weighted);
    EXPECT_LT(lossAGQ, lossGPTQ) << "w" << bits;
  }
  // With equal affinities AGQ is GPTQ (the Hessian's scale does not matter).
  std::vector<double> half = gram(x, tokens, cols, std::vector<double>(tokens, 0.5));
  expectSame(gptq(w, rows, cols, Scheme{3, 32, false}, half),
             gptq(w, rows, cols, Scheme{3, 32, false}, plain));
}

TEST(GPTQTest, UnseenInputsKeepTheirWeights) {
  int64_t rows = 4, cols = 32, tokens = 100;
  std::vector<float> x = correlatedInputs(tokens, cols, 8);
  for (int64_t t = 0; t < tokens; ++t)
    x[t * cols + 5] = 0.f; // input 5 is never active
  std::vector<double> h = gram(x, tokens, cols);
  std::vector<float> w = randomMatrix(rows, cols, 9);
  Scheme perChannel{4, 0, false};
  QuantizedMatrix q = gptq(w, rows, cols, perChannel, h);
  QuantizedMatrix plain = rtn(w, rows, cols, perChannel);
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_EQ(q.codes[r * cols + 5], plain.codes[r * cols + 5]) << "row " << r;
}

TEST(GPTQTest, RejectsBadInput) {
  int64_t rows = 2, cols = 32;
  std::vector<float> w = randomMatrix(rows, cols, 10);
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; ++i)
    h[i * cols + i] = 1.0;
  auto message = [&](const std::vector<float> &weights, const std::vector<double> &hessian,
                     GPTQOptions options = {}) {
    llvm::Expected<QuantizedMatrix> q =
        quantizeGPTQ(weights, rows, cols, Scheme{4, 32, false}, hessian, options);
    return q ? std::string("ok") : llvm::toString(q.takeError());
  };
  EXPECT_EQ(message(w, std::vector<double>(10, 1.0)),
            "the Hessian holds 10 values, expected 32 x 32");
  std::vector<double> nan = h;
  nan[3] = NAN;
  EXPECT_EQ(message(w, nan), "the Hessian has a non-finite entry");
  std::vector<double> negative = h;
  negative[2 * cols + 2] = -50.0;
  EXPECT_EQ(message(w, negative),
            "the Hessian is not positive semi-definite: diagonal entry 2 is -50.00");
  std::vector<double> indefinite = h; // [[1, 5], [5, 1]]: eigenvalue -4
  indefinite[1] = indefinite[cols] = 5.0;
  EXPECT_NE(message(w, indefinite).find("not positive definite"), std::string::npos);
  std::vector<float> bad = w;
  bad[7] = INFINITY;
  EXPECT_EQ(message(bad, h), "non-finite weight INF at row 0, column 7");
}

/// An ill-conditioned Hessian, as real activations give: correlated
/// features of log-spread scales with a few outliers, fewer tokens than
/// features (rank-deficient: the dampening decides the smallest
/// eigenvalues).
std::vector<double> illConditionedHessian(int64_t cols, int64_t tokens, unsigned seed) {
  std::vector<float> x = correlatedInputs(tokens, cols, seed);
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  for (int64_t j = 0; j < cols; ++j) {
    float scale = std::exp(1.5f * normal(gen)) * (j % 37 == 5 ? 30.f : 1.f);
    for (int64_t t = 0; t < tokens; ++t)
      x[t * cols + j] *= scale;
  }
  return gram(x, tokens, cols);
}

TEST(GPTQTest, Float32PathMatchesTheFloat64Path) {
  // The default path (one factorisation of the reversed Hessian, float32
  // factor and sweep, sgemm) against the float64 reference path (three
  // factorisations, float64 sweep): rounding differences flip a few codes,
  // whose error is then spread differently, so codes differ slightly; the
  // layer-output error, what GPTQ minimises, must not.
  int64_t rows = 48, cols = 256;
  std::vector<float> w = randomMatrix(rows, cols, 21);
  struct Case {
    Scheme scheme;
    bool actOrder, mseClip;
  };
  for (int64_t tokens : {int64_t(512), int64_t(160)}) {
    std::vector<double> h = illConditionedHessian(cols, tokens, 22);
    for (Case c : {Case{{4, 128, false}, false, false}, Case{{3, 64, false}, false, false},
                   Case{{2, 32, false}, false, false}, Case{{4, 0, true}, false, false},
                   Case{{3, 64, false}, true, false}, Case{{4, 128, false}, false, true},
                   Case{{2, 64, false, {}, true}, false, false}}) {
      GPTQOptions reference;
      reference.precision = GPTQOptions::Precision::Float64;
      reference.actOrder = c.actOrder;
      reference.mseClip = c.mseClip;
      GPTQOptions fast = reference;
      fast.precision = GPTQOptions::Precision::Float32;
      GPTQOptions mixed = fast;
      mixed.factorPrecision = GPTQOptions::Precision::Float64;
      QuantizedMatrix want = gptq(w, rows, cols, c.scheme, h, reference);
      double lossWant = hessianLoss(w, want, h);
      for (const GPTQOptions &options : {fast, mixed}) {
        QuantizedMatrix got = gptq(w, rows, cols, c.scheme, h, options);
        int64_t same = 0;
        for (size_t i = 0; i < got.codes.size(); ++i)
          same += got.codes[i] == want.codes[i];
        std::string what = "w" + std::to_string(c.scheme.bits) + " g" +
                           std::to_string(c.scheme.groupSize) +
                           (c.scheme.levelTable ? " lut" : "") + (c.actOrder ? " act-order" : "") +
                           (c.mseClip ? " mse-clip" : "") + " tokens " + std::to_string(tokens) +
                           (options.factorPrecision == GPTQOptions::Precision::Float64
                                ? " (float64 factor)"
                                : "");
        EXPECT_GE(double(same) / got.codes.size(), 0.9) << what;
        double lossGot = hessianLoss(w, got, h);
        EXPECT_NEAR(lossGot, lossWant, 0.01 * lossWant) << what;
      }
    }
  }
}

TEST(GPTQTest, SharedFactorGivesTheSameResult) {
  // One factorisation serves every weight with the same Hessian (an
  // expert's gate and up, or one weight under several schemes).
  int64_t rows = 24, cols = 128;
  std::vector<double> h = illConditionedHessian(cols, 300, 23);
  std::vector<float> gate = randomMatrix(rows, cols, 24), up = randomMatrix(rows, cols, 25);
  for (bool actOrder : {false, true}) {
    GPTQOptions options;
    options.actOrder = actOrder;
    llvm::Expected<GPTQFactor> factor = GPTQFactor::compute(h, cols, options);
    ASSERT_TRUE(bool(factor)) << llvm::toString(factor.takeError());
    for (Scheme scheme : {Scheme{4, 32, false}, Scheme{3, 0, false}, Scheme{2, 64, true}})
      for (const std::vector<float> *w : {&gate, &up}) {
        llvm::Expected<QuantizedMatrix> shared =
            quantizeGPTQ(*w, rows, cols, scheme, *factor, options);
        ASSERT_TRUE(bool(shared)) << llvm::toString(shared.takeError());
        expectSame(*shared, gptq(*w, rows, cols, scheme, h, options));
      }
    // A factor computed for other options is refused.
    GPTQOptions other = options;
    other.actOrder = !actOrder;
    llvm::Expected<QuantizedMatrix> wrong =
        quantizeGPTQ(gate, rows, cols, Scheme{4, 32, false}, *factor, other);
    ASSERT_FALSE(bool(wrong));
    EXPECT_NE(llvm::toString(wrong.takeError()).find("other options"), std::string::npos);
  }
}

TEST(GPTQTest, HessianScaleDoesNotMatter) {
  // The fast path divides H by its mean diagonal: any positive scale gives
  // the same bits (powers of two exactly, others up to that division's
  // rounding, which this matrix does not reach).
  int64_t rows = 16, cols = 96;
  std::vector<double> h = illConditionedHessian(cols, 200, 26);
  std::vector<float> w = randomMatrix(rows, cols, 27);
  std::vector<double> scaled = h;
  for (double &v : scaled)
    v *= 1024.0;
  expectSame(gptq(w, rows, cols, Scheme{3, 32, false}, scaled),
             gptq(w, rows, cols, Scheme{3, 32, false}, h));
}

TEST(GPTQTest, InverseHessianDiagonalFromOneFactorisation) {
  // diag(U) from one Cholesky factorisation of the reversed Hessian against
  // the diagonal of the reference path's U (three factorisations).
  int64_t cols = 80;
  std::vector<double> h = illConditionedHessian(cols, 120, 28);
  llvm::Expected<std::vector<double>> diagonal = inverseHessianDiagonal(h, cols);
  ASSERT_TRUE(bool(diagonal)) << llvm::toString(diagonal.takeError());
  // Independently: H^-1 = U^T U with U upper gives U_jj^2 = the (0, 0)
  // entry of the inverse of the trailing block (H + damp)_{j:, j:}.
  std::vector<double> damped = h;
  double mean = 0;
  for (int64_t i = 0; i < cols; ++i)
    mean += h[i * cols + i];
  mean /= double(cols);
  for (int64_t i = 0; i < cols; ++i)
    damped[i * cols + i] += 0.01 * mean;
  for (int64_t j : {int64_t(0), int64_t(17), cols / 2, cols - 2, cols - 1}) {
    // Solve (H_{j:, j:}) x = e_0 by Gaussian elimination; U_jj^2 = x_0.
    int64_t m = cols - j;
    std::vector<double> a(m * m), b(m, 0.0);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < m; ++c)
        a[r * m + c] = damped[(j + r) * cols + (j + c)];
    b[0] = 1.0;
    for (int64_t p = 0; p < m; ++p)
      for (int64_t r = p + 1; r < m; ++r) {
        double f = a[r * m + p] / a[p * m + p];
        for (int64_t c = p; c < m; ++c)
          a[r * m + c] -= f * a[p * m + c];
        b[r] -= f * b[p];
      }
    std::vector<double> x(m);
    for (int64_t r = m - 1; r >= 0; --r) {
      double sum = b[r];
      for (int64_t c = r + 1; c < m; ++c)
        sum -= a[r * m + c] * x[c];
      x[r] = sum / a[r * m + r];
    }
    EXPECT_NEAR((*diagonal)[j], std::sqrt(x[0]), 1e-9 * std::sqrt(x[0])) << "column " << j;
  }
}

TEST(RangeSearchTest, ClippingNeverIncreasesTheGroupError) {
  // Outliers make min/max ranges wasteful: the search shrinks them.
  int64_t rows = 16, cols = 128;
  std::vector<float> w = randomMatrix(rows, cols, 11);
  for (int64_t r = 0; r < rows; ++r)
    w[r * cols + (r * 13) % cols] *= 6.f;
  for (Scheme scheme : {Scheme{3, 32, false}, Scheme{4, 0, true}, Scheme{2, 64, false}}) {
    QuantizedMatrix plain = rtn(w, rows, cols, scheme);
    QuantizedMatrix clipped = rtn(w, rows, cols, scheme, RangeOptions{true});
    std::vector<float> dp = dequantize(plain), dc = dequantize(clipped);
    int64_t width = scheme.groupWidth(cols);
    int improved = 0;
    for (int64_t start = 0; start < rows * cols; start += width) {
      double ep = 0, ec = 0;
      for (int64_t i = start; i < start + width; ++i) {
        ep += std::pow(std::fabs(double(dp[i]) - w[i]), 2.4);
        ec += std::pow(std::fabs(double(dc[i]) - w[i]), 2.4);
      }
      EXPECT_LE(ec, ep * (1 + 1e-12));
      improved += ec < ep;
    }
    EXPECT_GT(improved, 0) << "bits " << scheme.bits;
  }
}

} // namespace
