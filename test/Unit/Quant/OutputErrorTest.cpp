//===- OutputErrorTest.cpp - measured expert output error vs brute force --===//
//
// The expert output error against a direct, token-by-token evaluation of
// sum_t c_t^2 ||down(act(gate x) * up x)' - down(act(gate x) * up x)||^2
// written out with plain loops, for every linear and both activations.
//
//===----------------------------------------------------------------------===//
#include "moeq/Quant/OutputError.h"

#include "QuantTestUtil.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cmath>
#include <random>

using namespace mlir::moeq::quant;

namespace {

std::vector<float> randomFloats(size_t n, unsigned seed, float scale = 1.f) {
  return test::randomMatrix(1, int64_t(n), seed, scale);
}

/// Symmetric per-token quantization of one vector, written out here.
std::vector<double> quantizeToken(std::vector<double> v, unsigned bits) {
  if (bits >= 16)
    return v;
  float amax = 0.f, qmax = float((1 << (bits - 1)) - 1);
  for (double x : v)
    amax = std::max(amax, float(std::fabs(x)));
  float scale = amax / qmax;
  for (double &x : v)
    x = double(std::clamp(std::nearbyint(float(x) / scale), -qmax, qmax) * scale);
  return v;
}

/// One token through the expert, plain loops; the inputs of the linear
/// `quantizedInput` (0 gate/up, 2 down, -1 none) quantized to `actBits`.
std::vector<double> expertOutput(const double *xp, int64_t h, int64_t inter,
                                 const std::vector<float> &g, const std::vector<float> &u,
                                 const std::vector<float> &d, bool gelu, int quantizedInput = -1,
                                 unsigned actBits = 16) {
  std::vector<double> x(xp, xp + h);
  std::vector<double> xq = quantizeToken(x, actBits);
  std::vector<double> a(inter), y(h, 0.0);
  for (int64_t i = 0; i < inter; ++i) {
    double gv = 0, uv = 0;
    for (int64_t j = 0; j < h; ++j) {
      gv += double(g[i * h + j]) * (quantizedInput == 0 ? xq[j] : x[j]);
      uv += double(u[i * h + j]) * (quantizedInput == 1 ? xq[j] : x[j]);
    }
    double act = gelu ? 0.5 * gv * (1 + std::erf(gv / std::sqrt(2.0))) : gv / (1 + std::exp(-gv));
    a[i] = act * uv;
  }
  if (quantizedInput == 2)
    a = quantizeToken(a, actBits);
  for (int64_t o = 0; o < h; ++o)
    for (int64_t i = 0; i < inter; ++i)
      y[o] += double(d[o * inter + i]) * a[i];
  return y;
}

TEST(ExpertOutputError, MatchesTokenByTokenEvaluation) {
  const int64_t h = 24, inter = 40, n = 9;
  std::vector<float> gate = randomFloats(inter * h, 1, 0.3f), up = randomFloats(inter * h, 2, 0.3f),
                     down = randomFloats(h * inter, 3, 0.3f);
  std::vector<float> xs = randomFloats(n * h, 4);
  std::vector<double> samples(xs.begin(), xs.end());
  std::vector<double> weights{0.5, 0.25, 0.0, 1.0, 0.75, 0.1, 0.0, 0.9, 0.3}; // two padding rows
  for (unsigned actBits : {16u, 8u, 4u})
  for (bool gelu : {false, true}) {
    auto error = ExpertOutputError::create(samples, weights, h, gate, up, down, inter,
                                           gelu ? GatedActivation::GeLU : GatedActivation::SiLU);
    ASSERT_TRUE(bool(error)) << llvm::toString(error.takeError());
    EXPECT_EQ(error->rows(), 7);
    if (actBits == 16)
      EXPECT_EQ(error->loss(ExpertOutputError::Linear::Gate, gate), 0.0);
    for (auto linear : {ExpertOutputError::Linear::Gate, ExpertOutputError::Linear::Up,
                        ExpertOutputError::Linear::Down}) {
      std::vector<float> g = gate, u = up, d = down;
      std::vector<float> &changed =
          linear == ExpertOutputError::Linear::Gate ? g : linear == ExpertOutputError::Linear::Up ? u : d;
      std::vector<float> noise = randomFloats(changed.size(), 5, 0.05f);
      for (size_t i = 0; i < changed.size(); ++i)
        changed[i] += noise[i];
      int which = linear == ExpertOutputError::Linear::Gate ? 0
                  : linear == ExpertOutputError::Linear::Up ? 1 : 2;
      double expected = 0;
      for (int64_t t = 0; t < n; ++t) {
        std::vector<double> y0 = expertOutput(&samples[t * h], h, inter, gate, up, down, gelu);
        std::vector<double> y1 =
            expertOutput(&samples[t * h], h, inter, g, u, d, gelu, which, actBits);
        double sq = 0;
        for (int64_t o = 0; o < h; ++o)
          sq += (y1[o] - y0[o]) * (y1[o] - y0[o]);
        expected += weights[t] * weights[t] * sq;
      }
      double got = error->loss(linear, changed, actBits);
      EXPECT_GT(expected, 0);
      // (4-bit down inputs: a value at a rounding tie may round either way
      // between the float64 paths; 1e-6 covers one such flip.)
      EXPECT_NEAR(got, expected, (actBits == 16 ? 1e-10 : 1e-6) * expected)
          << "gelu " << gelu << " act bits " << actBits;
    }
  }
}

/// gpt-oss's expert, one token, plain loops: biases on every linear and
/// the clamped SwiGLU.
std::vector<double> clampedExpertOutput(const double *x, int64_t h, int64_t inter,
                                        const std::vector<float> &g, const std::vector<float> &u,
                                        const std::vector<float> &d, const ExpertExtras &b) {
  std::vector<double> y(h);
  std::vector<double> a(inter);
  for (int64_t i = 0; i < inter; ++i) {
    double gv = b.gateBias[i], uv = b.upBias[i];
    for (int64_t j = 0; j < h; ++j) {
      gv += double(g[i * h + j]) * x[j];
      uv += double(u[i * h + j]) * x[j];
    }
    gv = std::min(gv, b.swigluLimit);
    uv = std::max(std::min(uv, b.swigluLimit), -b.swigluLimit);
    a[i] = gv / (1 + std::exp(-b.swigluAlpha * gv)) * (uv + 1);
  }
  for (int64_t o = 0; o < h; ++o) {
    y[o] = b.downBias[o];
    for (int64_t i = 0; i < inter; ++i)
      y[o] += double(d[o * inter + i]) * a[i];
  }
  return y;
}

// Large weights so that the clamp at the limit acts on part of the values.
TEST(ExpertOutputError, ClampedSwiGLUWithBiases) {
  const int64_t h = 16, inter = 24, n = 6;
  std::vector<float> gate = randomFloats(inter * h, 11, 3.f), up = randomFloats(inter * h, 12, 3.f),
                     down = randomFloats(h * inter, 13, 0.3f);
  std::vector<float> xs = randomFloats(n * h, 14);
  std::vector<double> samples(xs.begin(), xs.end());
  std::vector<double> weights{0.5, 0.25, 1.0, 0.75, 0.1, 0.9};
  ExpertExtras extras;
  extras.swigluLimit = 2.5;
  extras.gateBias = randomFloats(inter, 15, 0.5f);
  extras.upBias = randomFloats(inter, 16, 0.5f);
  extras.downBias = randomFloats(h, 17, 0.5f);
  auto error = ExpertOutputError::create(samples, weights, h, gate, up, down, inter,
                                         GatedActivation::ClampedSwiGLU, extras);
  ASSERT_TRUE(bool(error)) << llvm::toString(error.takeError());
  for (auto linear : {ExpertOutputError::Linear::Gate, ExpertOutputError::Linear::Up,
                      ExpertOutputError::Linear::Down}) {
    std::vector<float> g = gate, u = up, d = down;
    std::vector<float> &changed = linear == ExpertOutputError::Linear::Gate ? g
                                  : linear == ExpertOutputError::Linear::Up ? u : d;
    std::vector<float> noise = randomFloats(changed.size(), 18, 0.2f);
    for (size_t i = 0; i < changed.size(); ++i)
      changed[i] += noise[i];
    double expected = 0;
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> y0 = clampedExpertOutput(&samples[t * h], h, inter, gate, up, down, extras);
      std::vector<double> y1 = clampedExpertOutput(&samples[t * h], h, inter, g, u, d, extras);
      for (int64_t o = 0; o < h; ++o)
        expected += weights[t] * weights[t] * (y1[o] - y0[o]) * (y1[o] - y0[o]);
    }
    EXPECT_GT(expected, 0);
    EXPECT_NEAR(error->loss(linear, changed), expected, 1e-10 * expected);
  }
  // A bias of the wrong size is refused.
  ExpertExtras wrong = extras;
  wrong.downBias.pop_back();
  auto bad = ExpertOutputError::create(samples, weights, h, gate, up, down, inter,
                                       GatedActivation::ClampedSwiGLU, wrong);
  ASSERT_FALSE(bool(bad));
  llvm::consumeError(bad.takeError());
}

// Replacing a subset of rows is loss() with the whole matrix in which only
// those rows changed (the reference: the full evaluation above), for every
// linear, with biases and the clamped SwiGLU; with quantized inputs, all
// rows replaced is loss().
TEST(ExpertOutputError, LossOfRowsIsTheLossOfChangingThoseRowsOnly) {
  const int64_t h = 16, inter = 24, n = 7;
  std::vector<float> gate = randomFloats(inter * h, 21, 1.f), up = randomFloats(inter * h, 22, 1.f),
                     down = randomFloats(h * inter, 23, 0.3f);
  std::vector<float> xs = randomFloats(n * h, 24);
  std::vector<double> samples(xs.begin(), xs.end());
  std::vector<double> weights{0.5, 0.0, 1.0, 0.75, 0.1, 0.9, 0.3};
  ExpertExtras extras;
  extras.swigluLimit = 2.0;
  extras.gateBias = randomFloats(inter, 25, 0.5f);
  extras.upBias = randomFloats(inter, 26, 0.5f);
  extras.downBias = randomFloats(h, 27, 0.5f);
  for (GatedActivation activation : {GatedActivation::SiLU, GatedActivation::ClampedSwiGLU}) {
    auto error = ExpertOutputError::create(samples, weights, h, gate, up, down, inter,
                                           activation, extras);
    ASSERT_TRUE(bool(error)) << llvm::toString(error.takeError());
    for (auto linear : {ExpertOutputError::Linear::Gate, ExpertOutputError::Linear::Up,
                        ExpertOutputError::Linear::Down}) {
      const std::vector<float> &original = linear == ExpertOutputError::Linear::Gate ? gate
                                           : linear == ExpertOutputError::Linear::Up ? up
                                                                                     : down;
      int64_t rows = linear == ExpertOutputError::Linear::Down ? h : inter;
      int64_t cols = int64_t(original.size()) / rows;
      std::vector<int64_t> picked{1, 4, 5, rows - 2};
      std::vector<float> noise = randomFloats(picked.size() * cols, 28, 0.2f);
      std::vector<float> whole = original, replacement;
      for (size_t s = 0; s < picked.size(); ++s)
        for (int64_t c = 0; c < cols; ++c) {
          whole[picked[s] * cols + c] += noise[s * cols + c];
          replacement.push_back(whole[picked[s] * cols + c]);
        }
      double expected = error->loss(linear, whole);
      double got = error->lossOfRows(linear, picked, replacement);
      EXPECT_GT(got, 0);
      EXPECT_NEAR(got, expected, 1e-9 * expected);
      // With quantized inputs every row moves: all rows picked is loss().
      std::vector<int64_t> all(rows);
      for (int64_t r = 0; r < rows; ++r)
        all[r] = r;
      double quantized = error->loss(linear, whole, 8);
      EXPECT_NEAR(error->lossOfRows(linear, all, whole, 8), quantized, 1e-9 * quantized);
      // No row replaced: no error.
      EXPECT_EQ(error->lossOfRows(linear, {}, {}), 0.0);
    }
  }
}

TEST(ExpertOutputError, RejectsInconsistentSizes) {
  std::vector<float> w(12);
  std::vector<double> s(6), c(2);
  auto ok = ExpertOutputError::create(s, c, 3, w, w, w, 4, GatedActivation::SiLU);
  EXPECT_TRUE(bool(ok));
  llvm::consumeError(ok.takeError());
  std::vector<double> shortSamples(5);
  auto rows = ExpertOutputError::create(shortSamples, c, 3, w, w, w, 4, GatedActivation::SiLU);
  EXPECT_FALSE(bool(rows));
  llvm::consumeError(rows.takeError());
  std::vector<float> small(11);
  auto bad = ExpertOutputError::create(s, c, 3, small, w, w, 4, GatedActivation::SiLU);
  EXPECT_FALSE(bool(bad));
  llvm::consumeError(bad.takeError());
}

} // namespace
