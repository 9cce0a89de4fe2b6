//===- OutputError.cpp - measured layer-output error of one expert --------===//
#include "moeq/Quant/OutputError.h"
#include "moeq/Quant/Quantizer.h"

#include "llvm/Support/FormatVariadic.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

using namespace mlir::moeq::quant;

void ExpertOutputError::multiplyTransposed(const std::vector<double> &a, int64_t rows,
                                           int64_t k, llvm::ArrayRef<float> w, int64_t n,
                                           std::vector<double> &out,
                                           llvm::ArrayRef<float> bias) {
  std::vector<double> wide(w.begin(), w.end());
  out.assign(rows * n, 0.0);
  for (int64_t r = 0; r < rows && !bias.empty(); ++r)
    for (int64_t j = 0; j < n; ++j)
      out[r * n + j] = bias[j];
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(n), int(k), 1.0,
              a.data(), int(k), wide.data(), int(k), bias.empty() ? 0.0 : 1.0, out.data(),
              int(n));
}

double ExpertOutputError::activate(double g, double u) const {
  if (Activation == GatedActivation::ClampedSwiGLU) {
    double alpha = Extras.swigluAlpha, limit = Extras.swigluLimit;
    g = std::min(g, limit);
    return g / (1.0 + std::exp(-alpha * g)) * (std::clamp(u, -limit, limit) + 1.0);
  }
  double act = Activation == GatedActivation::SiLU
                   ? g / (1.0 + std::exp(-g))
                   : 0.5 * g * (1.0 + std::erf(g / std::sqrt(2.0)));
  return act * u;
}

std::vector<double> ExpertOutputError::activate(const std::vector<double> &gate,
                                                const std::vector<double> &up) const {
  std::vector<double> out(gate.size());
  for (size_t i = 0; i < gate.size(); ++i)
    out[i] = activate(gate[i], up[i]);
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
                          GatedActivation activation, ExpertExtras extras) {
  int64_t n = weights.size();
  auto badBias = [](const std::vector<float> &bias, int64_t size) {
    return !bias.empty() && int64_t(bias.size()) != size;
  };
  if (int64_t(samples.size()) != n * hidden || int64_t(gate.size()) != intermediate * hidden ||
      int64_t(up.size()) != intermediate * hidden ||
      int64_t(down.size()) != hidden * intermediate || badBias(extras.gateBias, intermediate) ||
      badBias(extras.upBias, intermediate) || badBias(extras.downBias, hidden))
    return llvm::createStringError("expert output error: inconsistent sizes");
  ExpertOutputError e;
  e.Hidden = hidden;
  e.Intermediate = intermediate;
  e.Activation = activation;
  e.Extras = std::move(extras);
  for (int64_t r = 0; r < n; ++r) {
    if (weights[r] == 0)
      continue;
    e.X.insert(e.X.end(), samples.begin() + r * hidden, samples.begin() + (r + 1) * hidden);
    e.C.push_back(weights[r]);
  }
  e.Rows = e.C.size();
  e.Down.assign(down.begin(), down.end());
  multiplyTransposed(e.X, e.Rows, hidden, gate, intermediate, e.G, e.Extras.gateBias);
  multiplyTransposed(e.X, e.Rows, hidden, up, intermediate, e.U, e.Extras.upBias);
  e.A = e.activate(e.G, e.U);
  multiplyTransposed(e.A, e.Rows, intermediate, down, hidden, e.Y, e.Extras.downBias);
  return e;
}

double ExpertOutputError::loss(Linear linear, llvm::ArrayRef<float> replacement,
                               unsigned actBits) const {
  std::vector<double> y;
  if (linear == Linear::Down) {
    std::vector<double> input = A;
    fakeQuantizeActivations(input, Intermediate, actBits);
    multiplyTransposed(input, Rows, Intermediate, replacement, Hidden, y, Extras.downBias);
    return distance(y);
  }
  std::vector<double> changed, input = X;
  fakeQuantizeActivations(input, Hidden, actBits);
  multiplyTransposed(input, Rows, Hidden, replacement, Intermediate, changed,
                     linear == Linear::Gate ? Extras.gateBias : Extras.upBias);
  std::vector<double> a =
      linear == Linear::Gate ? activate(changed, U) : activate(G, changed);
  multiplyTransposed(a, Rows, Intermediate, Down, Hidden, y, Extras.downBias);
  return distance(y);
}

double ExpertOutputError::lossOfRows(Linear linear, llvm::ArrayRef<int64_t> rows,
                                     llvm::ArrayRef<float> replacementRows,
                                     unsigned actBits) const {
  int64_t n = rows.size();
  auto biasOfRows = [&](const std::vector<float> &bias) {
    std::vector<float> picked;
    if (!bias.empty())
      for (int64_t row : rows)
        picked.push_back(bias[row]);
    return picked;
  };
  if (linear == Linear::Down) {
    // The replaced rows are output channels: only they move.
    std::vector<double> input = A, y;
    fakeQuantizeActivations(input, Intermediate, actBits);
    multiplyTransposed(input, Rows, Intermediate, replacementRows, n, y,
                       biasOfRows(Extras.downBias));
    double sum = 0;
    for (int64_t r = 0; r < Rows; ++r) {
      double row = 0;
      for (int64_t s = 0; s < n; ++s) {
        double d = y[r * n + s] - Y[r * Hidden + rows[s]];
        row += d * d;
      }
      sum += C[r] * C[r] * row;
    }
    return sum;
  }
  // The replaced rows are intermediate channels: the activation moves in
  // those channels only, and the output by their columns of down.
  std::vector<double> input = X, changed;
  fakeQuantizeActivations(input, Hidden, actBits);
  multiplyTransposed(input, Rows, Hidden, replacementRows, n, changed,
                     biasOfRows(linear == Linear::Gate ? Extras.gateBias : Extras.upBias));
  std::vector<double> delta(Rows * n);
  for (int64_t r = 0; r < Rows; ++r)
    for (int64_t s = 0; s < n; ++s) {
      int64_t at = r * Intermediate + rows[s];
      double moved = linear == Linear::Gate ? activate(changed[r * n + s], U[at])
                                            : activate(G[at], changed[r * n + s]);
      delta[r * n + s] = moved - A[at];
    }
  std::vector<float> downColumns(Hidden * n);
  for (int64_t j = 0; j < Hidden; ++j)
    for (int64_t s = 0; s < n; ++s)
      downColumns[j * n + s] = Down[j * Intermediate + rows[s]];
  std::vector<double> dy;
  multiplyTransposed(delta, Rows, n, downColumns, Hidden, dy);
  double sum = 0;
  for (int64_t r = 0; r < Rows; ++r) {
    double row = 0;
    for (int64_t j = 0; j < Hidden; ++j)
      row += dy[r * Hidden + j] * dy[r * Hidden + j];
    sum += C[r] * C[r] * row;
  }
  return sum;
}
