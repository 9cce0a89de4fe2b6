//===- OutputError.cpp - measured layer-output error of one expert --------===//
#include "moeq/Quant/OutputError.h"
#include "moeq/Quant/Quantizer.h"

#include "llvm/Support/FormatVariadic.h"

#include <cblas.h>

#include <cmath>

using namespace mlir::moeq::quant;

void ExpertOutputError::multiplyTransposed(const std::vector<double> &a, int64_t rows,
                                           int64_t k, llvm::ArrayRef<float> w, int64_t n,
                                           std::vector<double> &out) {
  std::vector<double> wide(w.begin(), w.end());
  out.assign(rows * n, 0.0);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(n), int(k), 1.0,
              a.data(), int(k), wide.data(), int(k), 0.0, out.data(), int(n));
}

std::vector<double> ExpertOutputError::activate(const std::vector<double> &gate,
                                                const std::vector<double> &up) const {
  std::vector<double> out(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    double g = gate[i];
    double act = Activation == GatedActivation::SiLU
                     ? g / (1.0 + std::exp(-g))
                     : 0.5 * g * (1.0 + std::erf(g / std::sqrt(2.0)));
    out[i] = act * up[i];
  }
  return out;
}

double ExpertOutputError::distance(const std::vector<double> &y) const {
  double sum = 0;
  for (int64_t r = 0; r < Rows; ++r) {
    double row = 0;
    for (int64_t j = 0; j < Hidden; ++j) {
      double d = y[r * Hidden + j] - Y[r * Hidden + j];
      row += d * d;
    }
    sum += C[r] * C[r] * row;
  }
  return sum;
}

llvm::Expected<ExpertOutputError>
ExpertOutputError::create(llvm::ArrayRef<double> samples, llvm::ArrayRef<double> weights,
                          int64_t hidden, llvm::ArrayRef<float> gate, llvm::ArrayRef<float> up,
                          llvm::ArrayRef<float> down, int64_t intermediate,
                          GatedActivation activation) {
  int64_t n = weights.size();
  if (int64_t(samples.size()) != n * hidden || int64_t(gate.size()) != intermediate * hidden ||
      int64_t(up.size()) != intermediate * hidden ||
      int64_t(down.size()) != hidden * intermediate)
    return llvm::createStringError("expert output error: inconsistent sizes");
  ExpertOutputError e;
  e.Hidden = hidden;
  e.Intermediate = intermediate;
  e.Activation = activation;
  for (int64_t r = 0; r < n; ++r) {
    if (weights[r] == 0)
      continue;
    e.X.insert(e.X.end(), samples.begin() + r * hidden, samples.begin() + (r + 1) * hidden);
    e.C.push_back(weights[r]);
  }
  e.Rows = e.C.size();
  e.Down.assign(down.begin(), down.end());
  multiplyTransposed(e.X, e.Rows, hidden, gate, intermediate, e.G);
  multiplyTransposed(e.X, e.Rows, hidden, up, intermediate, e.U);
  e.A = e.activate(e.G, e.U);
  multiplyTransposed(e.A, e.Rows, intermediate, down, hidden, e.Y);
  return e;
}

double ExpertOutputError::loss(Linear linear, llvm::ArrayRef<float> replacement,
                               unsigned actBits) const {
  std::vector<double> y;
  if (linear == Linear::Down) {
    std::vector<double> input = A;
    fakeQuantizeActivations(input, Intermediate, actBits);
    multiplyTransposed(input, Rows, Intermediate, replacement, Hidden, y);
    return distance(y);
  }
  std::vector<double> changed, input = X;
  fakeQuantizeActivations(input, Hidden, actBits);
  multiplyTransposed(input, Rows, Hidden, replacement, Intermediate, changed);
  std::vector<double> a =
      linear == Linear::Gate ? activate(changed, U) : activate(G, changed);
  multiplyTransposed(a, Rows, Intermediate, Down, Hidden, y);
  return distance(y);
}
