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

} // namespace mlir::moeq::quant::test

#endif // MOEQ_TEST_UNIT_QUANT_QUANTTESTUTIL_H
