//===- QuantTestUtil.h - shared helpers of the quantizer tests --*- C++ -*-===//
#ifndef MOEQ_TEST_UNIT_QUANT_QUANTTESTUTIL_H
#define MOEQ_TEST_UNIT_QUANT_QUANTTESTUTIL_H

#include <cstdint>
#include <random>
#include <vector>

namespace mlir::moeq::quant::test {

/// A row-major `rows x cols` matrix of N(0, scale^2) values from `seed`.
inline std::vector<float> randomMatrix(int64_t rows, int64_t cols, unsigned seed,
                                       float scale = 1.f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.f, scale);
  std::vector<float> m(rows * cols);
  for (float &v : m)
    v = normal(gen);
  return m;
}

/// X^T X (cols x cols) of `tokens` inputs whose features are correlated
/// (x = z A, A random) and of unequal scale, as real activations are.
/// With `weight`, sum_t weight[t] x_t x_t^T.
inline std::vector<double> gram(const std::vector<float> &x, int64_t tokens, int64_t cols,
                         const std::vector<double> &weight = {}) {
  std::vector<double> h(cols * cols, 0.0);
  for (int64_t t = 0; t < tokens; ++t) {
    double c = weight.empty() ? 1.0 : weight[t];
    for (int64_t i = 0; i < cols; ++i)
      for (int64_t j = 0; j < cols; ++j)
        h[i * cols + j] += c * double(x[t * cols + i]) * x[t * cols + j];
  }
  return h;
}

inline std::vector<float> correlatedInputs(int64_t tokens, int64_t cols, unsigned seed) {
  std::vector<float> z = randomMatrix(tokens, cols, seed);
  std::vector<float> a = randomMatrix(cols, cols, seed + 1);
  std::vector<float> x(tokens * cols, 0.f);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t k = 0; k < cols; ++k)
        s += double(z[t * cols + k]) * a[k * cols + j] * (k < cols / 4 ? 1.0 : 0.2);
      x[t * cols + j] = float(s * (1.0 + (j % 7)));
    }
  return x;
}

} // namespace mlir::moeq::quant::test

#endif // MOEQ_TEST_UNIT_QUANT_QUANTTESTUTIL_H
