//===- GPTQ.cpp - Hessian-aware weight quantization -----------------------===//
//
// The blocked ("lazy batch") Cholesky formulation of the GPTQ reference
// implementation, in float64:
//   H += dampening * mean(diag H) * I;  U = chol(H^-1) (upper)
//   for each block of columns [i1, i2):
//     for each column i in the block:
//       q_i = quant(w_i);  e = (w_i - q_i) / U_ii
//       w_j -= e * U_ij  for the block's columns j > i
//     W[:, i2:] -= E * U[i1:i2, i2:]   (one GEMM)
//
//===----------------------------------------------------------------------===//
#include "moeq/Quant/GPTQ.h"

#include "llvm/Support/FormatVariadic.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

// LAPACK (Fortran ABI; OpenBLAS ships it). No LAPACKE in Debian's OpenBLAS.
extern "C" {
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
}

using namespace mlir::moeq::quant;

namespace {

/// Upper Cholesky factor U of H^-1 (H^-1 = U^T U), row-major, in place.
/// LAPACK is column-major: a row-major symmetric matrix is its own
/// transpose, and the row-major upper triangle is LAPACK's lower one.
llvm::Error inverseCholesky(std::vector<double> &h, int64_t n) {
  int dim = int(n), info = 0;
  // Row-major "upper" = column-major "L".
  dpotrf_("L", &dim, h.data(), &dim, &info);
  if (info > 0)
    return llvm::createStringError(llvm::formatv(
        "the Hessian is not positive definite (leading minor {0}); increase the "
        "dampening or the calibration data", info));
  if (info < 0)
    return llvm::createStringError("LAPACK dpotrf rejected argument " +
                                   std::to_string(-info));
  dpotri_("L", &dim, h.data(), &dim, &info);
  if (info != 0)
    return llvm::createStringError("the Hessian is singular (dpotri)");
  // Complete the symmetric inverse (row-major upper triangle is valid).
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j)
      h[i * n + j] = h[j * n + i];
  // Upper factor of the inverse: column-major "L" of a symmetric matrix is
  // the transpose of the row-major upper factor, i.e. the same storage.
  dpotrf_("L", &dim, h.data(), &dim, &info);
  if (info != 0)
    return llvm::createStringError("the inverse Hessian is not positive definite");
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j)
      h[i * n + j] = 0.0;
  return llvm::Error::success();
}

/// The upper Cholesky factor of (H + damp)^-1 in the permuted order
/// `order`, with GPTQ's treatment of unseen inputs (a zero diagonal
/// decouples the column, which is then plainly rounded).
llvm::Expected<std::vector<double>> dampedInverseCholesky(llvm::ArrayRef<double> hessian,
                                                          int64_t cols,
                                                          llvm::ArrayRef<int64_t> order,
                                                          double dampening) {
  std::vector<double> h(cols * cols);
  double meanDiag = 0;
  for (int64_t c = 0; c < cols; ++c)
    meanDiag += hessian[c * cols + c];
  meanDiag /= double(cols);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j)
      h[i * cols + j] = hessian[order[i] * cols + order[j]];
  // Unseen inputs (zero diagonal): a lone diagonal entry decouples them
  // (plain rounding). A negative diagonal is no Gram matrix.
  double unseen = meanDiag > 0 ? meanDiag : 1.0;
  for (int64_t i = 0; i < cols; ++i) {
    if (h[i * cols + i] < 0)
      return llvm::createStringError(llvm::formatv(
          "the Hessian is not positive semi-definite: diagonal entry {0} is {1}", order[i],
          h[i * cols + i]));
    if (h[i * cols + i] == 0) {
      for (int64_t j = 0; j < cols; ++j)
        h[i * cols + j] = h[j * cols + i] = 0.0;
      h[i * cols + i] = unseen;
    }
  }
  double damp = dampening * (meanDiag > 0 ? meanDiag : 1.0);
  for (int64_t i = 0; i < cols; ++i)
    h[i * cols + i] += damp;
  if (llvm::Error err = inverseCholesky(h, cols))
    return std::move(err);
  return h;
}

llvm::Error checkHessian(llvm::ArrayRef<double> hessian, int64_t cols, double dampening) {
  if (int64_t(hessian.size()) != cols * cols)
    return llvm::createStringError(llvm::formatv(
        "the Hessian holds {0} values, expected {1} x {1}", hessian.size(), cols));
  for (double v : hessian)
    if (!std::isfinite(v))
      return llvm::createStringError("the Hessian has a non-finite entry");
  if (!(dampening >= 0))
    return llvm::createStringError("GPTQ dampening must be non-negative");
  return llvm::Error::success();
}

} // namespace

llvm::Expected<std::vector<double>>
mlir::moeq::quant::inverseHessianDiagonal(llvm::ArrayRef<double> hessian, int64_t cols,
                                          double dampening) {
  if (llvm::Error err = checkHessian(hessian, cols, dampening))
    return std::move(err);
  std::vector<int64_t> order(cols);
  std::iota(order.begin(), order.end(), 0);
  llvm::Expected<std::vector<double>> u = dampedInverseCholesky(hessian, cols, order, dampening);
  if (!u)
    return u.takeError();
  std::vector<double> diagonal(cols);
  for (int64_t j = 0; j < cols; ++j)
    diagonal[j] = (*u)[j * cols + j];
  return diagonal;
}

std::vector<uint8_t> mlir::moeq::quant::salientWeights(llvm::ArrayRef<float> weights,
                                                       int64_t rows, int64_t cols,
                                                       llvm::ArrayRef<double> diagonal,
                                                       double zThreshold) {
  std::vector<double> salience(rows * cols);
  double mean = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      double w = weights[r * cols + c], d = diagonal[c];
      mean += salience[r * cols + c] = w * w / (d * d);
    }
  mean /= double(rows * cols);
  double variance = 0;
  for (double s : salience)
    variance += (s - mean) * (s - mean);
  double deviation = std::sqrt(variance / double(rows * cols));
  std::vector<uint8_t> mask(rows * cols, 0);
  if (deviation > 0)
    for (int64_t i = 0; i < rows * cols; ++i)
      mask[i] = std::fabs(salience[i] - mean) / deviation > zThreshold;
  return mask;
}

std::vector<double> mlir::moeq::quant::groupSalience(llvm::ArrayRef<float> weights,
                                                     int64_t rows, int64_t cols,
                                                     int64_t groupSize,
                                                     llvm::ArrayRef<double> diagonal) {
  std::vector<double> groups(cols / groupSize, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      double w = weights[r * cols + c], d = diagonal[c];
      groups[c / groupSize] += w * w / (d * d);
    }
  return groups;
}

std::vector<std::vector<uint8_t>>
mlir::moeq::quant::groupBitCandidates(llvm::ArrayRef<double> salience, unsigned bits) {
  int64_t groups = salience.size();
  std::vector<int64_t> order(groups);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return salience[a] < salience[b]; });
  // b - 1 >= 1 and b + 1 <= 8: only then can bits move between groups.
  int64_t maxK = bits > 1 && bits < 8 ? groups / 2 : 0;
  std::vector<std::vector<uint8_t>> candidates;
  for (int64_t k = 0; k <= maxK; ++k) {
    std::vector<uint8_t> widths(groups, uint8_t(bits));
    for (int64_t i = 0; i < k; ++i) {
      widths[order[i]] = uint8_t(bits - 1);
      widths[order[groups - 1 - i]] = uint8_t(bits + 1);
    }
    candidates.push_back(std::move(widths));
  }
  return candidates;
}

llvm::Expected<QuantizedMatrix>
mlir::moeq::quant::quantizeGPTQ(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                                const Scheme &scheme, llvm::ArrayRef<double> hessian,
                                const GPTQOptions &options) {
  if (llvm::Error err = checkWeights(weights, rows, cols, scheme))
    return std::move(err);
  if (llvm::Error err = checkHessian(hessian, cols, options.dampening))
    return std::move(err);
  int64_t width = scheme.groupWidth(cols);
  bool grouped = scheme.groupSize > 0;
  int64_t block = std::max<int64_t>(options.blockSize, 1);
  if (grouped)
    block = std::max<int64_t>(block / width, 1) * width;

  // Column order: by decreasing diagonal with act-order.
  std::vector<int64_t> order(cols);
  std::iota(order.begin(), order.end(), 0);
  if (options.actOrder)
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return hessian[a * cols + a] > hessian[b * cols + b];
    });

  // Permuted copy of W (rows x cols), float64.
  std::vector<double> w(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      w[r * cols + c] = weights[r * cols + order[c]];
  llvm::Expected<std::vector<double>> factor =
      dampedInverseCholesky(hessian, cols, order, options.dampening);
  if (!factor)
    return factor.takeError();
  const std::vector<double> &u = *factor;

  // SliM-LLM's salient weights (|z-score of w^2 / U_jj^2| > 2), in the
  // original column order, for salience-weighted calibration.
  std::vector<uint8_t> salient;
  if (options.salienceCalibration) {
    std::vector<double> diagonal(cols);
    for (int64_t i = 0; i < cols; ++i)
      diagonal[order[i]] = u[i * cols + i];
    salient = salientWeights(weights, rows, cols, diagonal);
  }

  QuantizedMatrix q = QuantizedMatrix::sized(rows, cols, scheme);
  int64_t groups = scheme.numGroups(cols);
  RangeOptions range{options.mseClip, options.salienceCalibration, options.salientWeight};
  std::vector<float> values(width);
  std::vector<uint32_t> maxCodes(groups);
  for (int64_t g = 0; g < groups; ++g)
    maxCodes[g] = scheme.forGroup(g).maxCode();
  // Level tables weigh each column by its Hessian diagonal (the diagonal
  // part of the GPTQ objective), in original column order.
  std::vector<double> importance(cols);
  for (int64_t c = 0; c < cols; ++c)
    importance[c] = std::max(hessian[c * cols + c], 0.0);
  auto setParams = [&](int64_t row, int64_t group, llvm::ArrayRef<float> source) {
    if (scheme.levelTable) {
      std::vector<float> fitted = fitLevelTable(
          source, llvm::ArrayRef<double>(importance).slice(group * width, width), scheme.bits);
      llvm::copy(fitted, q.table(row, group).begin());
      return;
    }
    llvm::ArrayRef<uint8_t> mask;
    if (!salient.empty())
      mask = llvm::ArrayRef<uint8_t>(salient).slice(row * cols + group * width, width);
    auto [scale, zero] = groupParams(source, scheme.forGroup(group), range, mask);
    q.scales[row * groups + group] = scale;
    q.zeros[row * groups + group] = zero;
  };
  // Static parameters (per channel, or act-order groups): from the
  // original weights, before any error feedback.
  bool staticParams = !grouped || options.actOrder;
  if (staticParams)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t g = 0; g < groups; ++g)
        setParams(r, g, weights.slice(r * cols + g * width, width));

  std::vector<double> err(rows * block);
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    int64_t i2 = std::min(i1 + block, cols), count = i2 - i1;
    for (int64_t i = i1; i < i2; ++i) {
      int64_t column = order[i], group = column / width;
      if (!staticParams && column % width == 0)
        // Groups follow the (current, error-corrected) weights.
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < width; ++c)
            values[c] = float(w[r * cols + i + c]);
          setParams(r, group, values);
        }
      double d = u[i * cols + i];
      for (int64_t r = 0; r < rows; ++r) {
        double wi = w[r * cols + i];
        uint8_t code;
        if (scheme.levelTable) {
          code = nearestLevel(float(wi), q.table(r, group));
        } else {
          float scale = q.scales[r * groups + group], zero = q.zeros[r * groups + group];
          code = quantizeValue(float(wi), scale, zero, maxCodes[group]);
        }
        q.codes[r * cols + column] = code;
        double e = (wi - double(q.value(r, column, code))) / d;
        err[r * block + (i - i1)] = e;
        double *wr = &w[r * cols];
        const double *ui = &u[i * cols];
        for (int64_t j = i + 1; j < i2; ++j)
          wr[j] -= e * ui[j];
      }
    }
    // The block's error reaches the columns after it in one GEMM:
    // W[:, i2:] -= E (rows x count) * U[i1:i2, i2:].
    if (i2 < cols)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols - i2),
                  int(count), -1.0, err.data(), int(block), &u[i1 * cols + i2], int(cols),
                  1.0, &w[i2], int(cols));
  }
  for (float scale : q.scales)
    if (!std::isfinite(scale))
      return llvm::createStringError("a GPTQ group scale overflows f16");
  for (float level : q.levels)
    if (!std::isfinite(level))
      return llvm::createStringError("a GPTQ level table overflows f16");
  return q;
}

double mlir::moeq::quant::hessianLoss(llvm::ArrayRef<float> weights, const QuantizedMatrix &q,
                                      llvm::ArrayRef<double> hessian) {
  std::vector<float> deq = dequantize(q);
  int64_t rows = q.rows, cols = q.cols;
  std::vector<double> delta(rows * cols), product(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i)
    delta[i] = double(weights[i]) - double(deq[i]);
  if (hessian.empty()) // the identity: squared Frobenius norm of W - Q
    return std::inner_product(delta.begin(), delta.end(), delta.begin(), 0.0);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols), int(cols), 1.0,
              delta.data(), int(cols), hessian.data(), int(cols), 0.0, product.data(), int(cols));
  double loss = 0;
  for (int64_t i = 0; i < rows * cols; ++i)
    loss += delta[i] * product[i];
  return loss;
}

llvm::Expected<QuantizedMatrix>
mlir::moeq::quant::quantizeWeights(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                                   const Scheme &scheme, llvm::ArrayRef<double> hessian,
                                   const GPTQOptions &options) {
  if (!hessian.empty())
    return quantizeGPTQ(weights, rows, cols, scheme, hessian, options);
  RangeOptions range{options.mseClip, options.salienceCalibration, options.salientWeight};
  std::vector<uint8_t> salient;
  if (options.salienceCalibration && int64_t(weights.size()) == rows * cols)
    // No Hessian: every U_jj is the same, salience is w^2.
    salient = salientWeights(weights, rows, cols, std::vector<double>(cols, 1.0));
  return quantizeRTN(weights, rows, cols, scheme, range, salient);
}
