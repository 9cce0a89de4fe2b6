//===- GPTQ.cpp - Hessian-aware weight quantization -----------------------===//
//
// The blocked ("lazy batch") Cholesky formulation of the GPTQ reference
// implementation:
//   H += dampening * mean(diag H) * I;  U = chol(H^-1) (upper)
//   for each block of columns [i1, i2):
//     for each column i in the block:
//       q_i = quant(w_i);  e = (w_i - q_i) / U_ii
//       w_j -= e * U_ij  for the block's columns j > i
//     W[:, i2:] -= E * U[i1:i2, i2:]   (one GEMM)
//
// Two forms. Float32 (the default, GPTQFactor): U from one Cholesky
// factorisation of the reversed Hessian and one triangular inverse
// (2/3 cols^3 flops instead of 4/3), the sweep in float32 with the in-block
// updates on chunks of rows transposed into a cache-resident tile (the
// per-column work vectorizes over rows) and the lazy-batch update through
// sgemm. Float64: the reference, three factorisations and a float64 sweep.
//
//===----------------------------------------------------------------------===//
#include "moeq/Quant/GPTQ.h"

#include "llvm/Support/FormatVariadic.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

// LAPACK (Fortran ABI; OpenBLAS ships it). No LAPACKE in Debian's OpenBLAS.
extern "C" {
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info);
void dtrtri_(const char *uplo, const char *diag, const int *n, double *a, const int *lda,
             int *info);
void strtri_(const char *uplo, const char *diag, const int *n, float *a, const int *lda,
             int *info);
// OpenBLAS's thread control (cblas.h declares them in OpenBLAS's own
// header only).
void openblas_set_num_threads(int threads);
int openblas_get_num_threads(void);
}

int mlir::moeq::quant::getBLASThreads() { return openblas_get_num_threads(); }
void mlir::moeq::quant::setBLASThreads(int threads) {
  openblas_set_num_threads(std::max(threads, 1));
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

/// The mean of H's diagonal, the scale the fast path divides H by (1 when
/// no input was ever seen).
double hessianScale(llvm::ArrayRef<double> hessian, int64_t cols) {
  double meanDiag = 0;
  for (int64_t c = 0; c < cols; ++c)
    meanDiag += hessian[c * cols + c];
  meanDiag /= double(cols);
  return meanDiag > 0 ? meanDiag : 1.0;
}

/// Fills the lower triangle (row-major; j <= i) of A = J P^T (H / s + damp)
/// P J: the damped Hessian divided by its scale s (hessianScale), in the
/// sweep order `order` (P), reversed (J). Unseen inputs (zero diagonal)
/// are decoupled with a unit diagonal, as in dampedInverseCholesky. Only
/// the lower triangle is read by LAPACK's column-major "U" routines.
template <typename T>
llvm::Error reversedDampedHessian(llvm::ArrayRef<double> hessian, int64_t cols,
                                  llvm::ArrayRef<int64_t> order, double dampening,
                                  std::vector<T> &a) {
  size_t n = size_t(std::max<int64_t>(cols, 1));
  double scale = hessianScale(hessian, cols);
  std::vector<uint8_t> unseen(n, 0);
  for (size_t i = 0; i < n; ++i) {
    double d = hessian[order[i] * cols + order[i]];
    if (d < 0)
      return llvm::createStringError(llvm::formatv(
          "the Hessian is not positive semi-definite: diagonal entry {0} is {1}", order[i], d));
    unseen[i] = d == 0;
  }
  a.assign(n * n, T(0));
  for (size_t i = 0; i < n; ++i) {
    size_t pi = n - 1 - i;
    int64_t ri = order[pi];
    T *row = &a[i * n];
    const double *source = &hessian[ri * cols];
    if (unseen[pi]) {
      row[i] = T(1.0 + dampening);
      continue;
    }
    for (size_t j = 0; j < i; ++j) {
      size_t pj = n - 1 - j;
      row[j] = unseen[pj] ? T(0) : T(source[order[pj]] / scale);
    }
    row[i] = T(source[ri] / scale + dampening);
  }
  return llvm::Error::success();
}

int potrf(double *a, int n) {
  int info = 0;
  dpotrf_("U", &n, a, &n, &info);
  return info;
}
int potrf(float *a, int n) {
  int info = 0;
  spotrf_("U", &n, a, &n, &info);
  return info;
}
int trtri(double *a, int n) {
  int info = 0;
  dtrtri_("U", "N", &n, a, &n, &info);
  return info;
}
int trtri(float *a, int n) {
  int info = 0;
  strtri_("U", "N", &n, a, &n, &info);
  return info;
}

/// Factors `a` (from reversedDampedHessian) in place: afterwards its
/// row-major lower triangle holds L^-1, A = L L^T. (Column-major "U" of
/// LAPACK is the row-major lower triangle: potrf gives A = Ubar^T Ubar,
/// i.e. Ubar^T = L there, and trtri inverts Ubar in place.)
template <typename T>
llvm::Error reversedFactor(std::vector<T> &a, int64_t n, llvm::ArrayRef<int64_t> order) {
  int info = potrf(a.data(), int(n));
  if (info > 0)
    return llvm::createStringError(llvm::formatv(
        "the Hessian is not positive definite (at input {0} of the reversed sweep order); "
        "increase the dampening or the calibration data",
        order[n - info]));
  if (info < 0)
    return llvm::createStringError("LAPACK potrf rejected argument " + std::to_string(-info));
  info = trtri(a.data(), int(n));
  if (info != 0)
    return llvm::createStringError("the Hessian's Cholesky factor is singular (trtri)");
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
  // U = J L^-1 J (GPTQFactor): U's diagonal is 1 / diag(L) reversed, so one
  // Cholesky factorisation gives it; the Hessian's scale s comes back as
  // U(H) = U(H / s) / sqrt(s).
  std::vector<double> a;
  if (llvm::Error err = reversedDampedHessian(hessian, cols, order, dampening, a))
    return std::move(err);
  int info = potrf(a.data(), int(cols));
  if (info > 0)
    return llvm::createStringError(llvm::formatv(
        "the Hessian is not positive definite (at input {0} of the reversed order); increase "
        "the dampening or the calibration data",
        cols - info));
  if (info < 0)
    return llvm::createStringError("LAPACK dpotrf rejected argument " + std::to_string(-info));
  double root = std::sqrt(hessianScale(hessian, cols));
  std::vector<double> diagonal(cols);
  for (int64_t j = 0; j < cols; ++j) {
    int64_t i = cols - 1 - j;
    diagonal[j] = 1.0 / (a[i * cols + i] * root);
  }
  return diagonal;
}

llvm::Expected<GPTQFactor> GPTQFactor::compute(llvm::ArrayRef<double> hessian, int64_t cols,
                                               const GPTQOptions &options) {
  if (cols <= 0)
    return llvm::createStringError("GPTQ needs at least one input column");
  if (llvm::Error err = checkHessian(hessian, cols, options.dampening))
    return std::move(err);
  GPTQFactor factor;
  factor.Cols = cols;
  factor.Precision = options.precision;
  factor.FactorPrecision = options.factorPrecision;
  factor.ActOrder = options.actOrder;
  factor.Dampening = options.dampening;
  factor.Order.resize(cols);
  std::iota(factor.Order.begin(), factor.Order.end(), 0);
  if (options.actOrder)
    std::stable_sort(factor.Order.begin(), factor.Order.end(), [&](int64_t a, int64_t b) {
      return hessian[a * cols + a] > hessian[b * cols + b];
    });
  factor.Diagonal.resize(cols);
  for (int64_t c = 0; c < cols; ++c)
    factor.Diagonal[c] = hessian[c * cols + c];

  if (options.precision == GPTQOptions::Precision::Float64) {
    llvm::Expected<std::vector<double>> u =
        dampedInverseCholesky(hessian, cols, factor.Order, options.dampening);
    if (!u)
      return u.takeError();
    factor.U64 = std::move(*u);
    return factor;
  }

  int64_t n = cols, last = n * n - 1;
  if (options.factorPrecision == GPTQOptions::Precision::Float64) {
    std::vector<double> a;
    if (llvm::Error err = reversedDampedHessian(hessian, cols, factor.Order, options.dampening, a))
      return std::move(err);
    if (llvm::Error err = reversedFactor(a, n, factor.Order))
      return std::move(err);
    factor.U32.assign(n * n, 0.f);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = r; c < n; ++c)
        factor.U32[r * n + c] = float(a[last - (r * n + c)]);
    return factor;
  }
  std::vector<float> a;
  if (llvm::Error err = reversedDampedHessian(hessian, cols, factor.Order, options.dampening, a))
    return std::move(err);
  if (llvm::Error err = reversedFactor(a, n, factor.Order))
    return std::move(err);
  // U = J L^-1 J: U[r][c] = L^-1[n-1-r][n-1-c] = a[last - (r n + c)], the
  // flat array reversed; what lands below the diagonal is zeroed.
  std::reverse(a.begin(), a.end());
  for (int64_t r = 1; r < n; ++r)
    std::fill(a.begin() + r * n, a.begin() + r * n + r, 0.f);
  factor.U32 = std::move(a);
  return factor;
}

bool GPTQFactor::fits(const GPTQOptions &options) const {
  return options.precision == Precision && options.actOrder == ActOrder &&
         options.dampening == Dampening &&
         (Precision == GPTQOptions::Precision::Float64 ||
          options.factorPrecision == FactorPrecision);
}

size_t GPTQFactor::memoryBytes() const {
  return U32.size() * sizeof(float) + U64.size() * sizeof(double) +
         Order.size() * sizeof(int64_t) + Diagonal.size() * sizeof(double);
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

llvm::Expected<size_t>
mlir::moeq::quant::searchLeastLoss(size_t count,
                                   llvm::function_ref<llvm::Expected<double>(size_t)> loss,
                                   CandidateSearch search) {
  if (count == 0)
    return llvm::createStringError("no candidate to search");
  std::vector<std::optional<double>> known(count);
  llvm::Error firstError = llvm::Error::success();
  // The loss at `i`, evaluated once; +inf after an error (kept for the
  // caller), so that the search still terminates.
  auto at = [&](size_t i) -> double {
    if (!known[i]) {
      llvm::Expected<double> value = loss(i);
      if (!value) {
        if (!firstError)
          firstError = value.takeError();
        else
          llvm::consumeError(value.takeError());
        known[i] = std::numeric_limits<double>::infinity();
      } else {
        known[i] = *value;
      }
    }
    return *known[i];
  };
  at(0);
  size_t lo = 0, hi = count - 1;
  if (search == CandidateSearch::Golden && count > 4) {
    // Invariant: the minimum of a unimodal loss lies in [lo, hi], and
    // lo <= left < right <= hi; each step keeps one interior point, so it
    // costs one evaluation. (The iteration bound only guards termination.)
    const double shrink = 0.6180339887498949; // 1 / phi
    auto inner = [&](size_t span) { return size_t(std::lround(shrink * double(span))); };
    size_t left = hi - inner(hi - lo), right = lo + inner(hi - lo);
    if (right <= left)
      right = left + 1;
    for (size_t step = 0; hi - lo > 3 && step < 2 * count; ++step) {
      if (at(left) <= at(right)) {
        hi = right;
        right = left;
        left = hi - inner(hi - lo);
        if (left >= right)
          left = right - 1;
        if (left < lo)
          left = lo;
      } else {
        lo = left;
        left = right;
        right = lo + inner(hi - lo);
        if (right <= left)
          right = left + 1;
        if (right > hi)
          right = hi;
      }
      if (left == right) // (only on a degenerate interval)
        break;
    }
  }
  for (size_t i = lo; i <= hi; ++i)
    at(i);
  if (firstError)
    return std::move(firstError);
  size_t best = 0;
  for (size_t i = 1; i < count; ++i)
    if (known[i] && *known[i] < *known[best])
      best = i;
  return best;
}

llvm::Expected<GroupBitsChoice> mlir::moeq::quant::searchGroupBits(
    llvm::ArrayRef<float> weights, int64_t rows, int64_t cols, const Scheme &scheme,
    llvm::ArrayRef<double> inverseDiagonal, const GPTQFactor *factor, const GPTQOptions &options,
    llvm::function_ref<double(const QuantizedMatrix &)> loss, CandidateSearch search) {
  if (scheme.groupSize <= 0 || cols % scheme.groupSize)
    return llvm::createStringError("group bits need a group scheme that divides the columns");
  // Without a Hessian (data-free) every U_jj is the same: salience w^2.
  std::vector<double> identity;
  if (inverseDiagonal.empty()) {
    identity.assign(cols, 1.0);
    inverseDiagonal = identity;
  }
  std::vector<std::vector<uint8_t>> candidates = groupBitCandidates(
      groupSalience(weights, rows, cols, scheme.groupSize, inverseDiagonal), scheme.bits);
  std::vector<double> losses(candidates.size());
  auto lossAt = [&](size_t k) -> llvm::Expected<double> {
    Scheme storage = scheme;
    storage.groupBits = candidates[k];
    llvm::Expected<QuantizedMatrix> q =
        quantizeWeights(weights, rows, cols, storage, factor, options);
    if (!q)
      return q.takeError();
    return losses[k] = loss(*q);
  };
  llvm::Expected<size_t> chosen = searchLeastLoss(candidates.size(), lossAt, search);
  if (!chosen)
    return chosen.takeError();
  return GroupBitsChoice{std::move(candidates[*chosen]), losses[*chosen]};
}

llvm::Expected<QuantizedMatrix>
mlir::moeq::quant::quantizeGPTQ(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                                const Scheme &scheme, llvm::ArrayRef<double> hessian,
                                const GPTQOptions &options) {
  if (llvm::Error err = checkWeights(weights, rows, cols, scheme))
    return std::move(err);
  llvm::Expected<GPTQFactor> factor = GPTQFactor::compute(hessian, cols, options);
  if (!factor)
    return factor.takeError();
  return quantizeGPTQ(weights, rows, cols, scheme, *factor, options);
}

namespace {

/// The float32 sweep. Per block of columns: the in-block error feedback on
/// tiles of kTileRows rows, transposed (tile[column][row]) so that each
/// column's quantization and each rank-1 update run over contiguous rows;
/// every element sees the same float operations in the same order whatever
/// the tiling. Then the block's errors reach the later columns through one
/// sgemm.
template <typename SetParams>
void sweepFloat32(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                  const Scheme &scheme, llvm::ArrayRef<int64_t> order, const float *u,
                  int64_t block, bool staticParams, llvm::ArrayRef<uint32_t> maxCodes,
                  QuantizedMatrix &q, SetParams setParams) {
  constexpr int64_t kTileRows = 32;
  int64_t width = scheme.groupWidth(cols), groups = scheme.numGroups(cols);
  std::vector<float> w(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    float *dst = &w[r * cols];
    const float *src = &weights[r * cols];
    for (int64_t c = 0; c < cols; ++c)
      dst[c] = src[order[c]];
  }
  std::vector<float> err(rows * block), tile(block * kTileRows, 0.f),
      tileErr(block * kTileRows, 0.f), values(width), sc(kTileRows, 1.f), zr(kTileRows, 0.f);
  std::vector<uint8_t> codes(kTileRows);
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    int64_t i2 = std::min(i1 + block, cols), count = i2 - i1;
    for (int64_t r0 = 0; r0 < rows; r0 += kTileRows) {
      int64_t nr = std::min(kTileRows, rows - r0);
      for (int64_t r = 0; r < nr; ++r) {
        const float *src = &w[(r0 + r) * cols + i1];
        for (int64_t c = 0; c < count; ++c)
          tile[c * kTileRows + r] = src[c];
      }
      int64_t loaded = -1; // the group whose scales and zeros are in sc/zr
      for (int64_t ci = 0; ci < count; ++ci) {
        int64_t i = i1 + ci, column = order[i], group = column / width;
        float *t = &tile[ci * kTileRows];
        float *e = &tileErr[ci * kTileRows];
        if (!staticParams && column % width == 0) {
          // Groups follow the (current, error-corrected) weights.
          for (int64_t r = 0; r < nr; ++r) {
            for (int64_t c = 0; c < width; ++c)
              values[c] = tile[(ci + c) * kTileRows + r];
            setParams(r0 + r, group, values);
          }
          loaded = -1;
        }
        float d = u[i * cols + i];
        if (scheme.levelTable) {
          for (int64_t r = 0; r < nr; ++r) {
            llvm::ArrayRef<float> table = q.table(r0 + r, group);
            uint8_t code = nearestLevel(t[r], table);
            q.codes[(r0 + r) * cols + column] = code;
            e[r] = (t[r] - table[code]) / d;
          }
        } else {
          if (group != loaded) {
            for (int64_t r = 0; r < nr; ++r) {
              sc[r] = q.scales[(r0 + r) * groups + group];
              zr[r] = q.zeros[(r0 + r) * groups + group];
            }
            loaded = group;
          }
          uint32_t maxCode = maxCodes[group];
          for (int64_t r = 0; r < nr; ++r) {
            uint8_t code = quantizeValue(t[r], sc[r], zr[r], maxCode);
            codes[r] = code;
            e[r] = (t[r] - (float(code) - zr[r]) * sc[r]) / d;
          }
          for (int64_t r = 0; r < nr; ++r)
            q.codes[(r0 + r) * cols + column] = codes[r];
        }
        const float *ui = &u[i * cols + i1];
        for (int64_t j = ci + 1; j < count; ++j) {
          float uij = ui[j];
          if (uij == 0.f)
            continue; // (w - e * 0 is w: decoupled inputs cost nothing)
          float *tj = &tile[j * kTileRows];
          for (int64_t r = 0; r < kTileRows; ++r)
            tj[r] -= e[r] * uij;
        }
      }
      for (int64_t r = 0; r < nr; ++r) {
        float *dst = &err[(r0 + r) * block];
        for (int64_t c = 0; c < count; ++c)
          dst[c] = tileErr[c * kTileRows + r];
      }
    }
    // The block's error reaches the columns after it in one GEMM:
    // W[:, i2:] -= E (rows x count) * U[i1:i2, i2:].
    if (i2 < cols)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols - i2),
                  int(count), -1.0f, err.data(), int(block), &u[i1 * cols + i2], int(cols),
                  1.0f, &w[i2], int(cols));
  }
}

/// The float64 reference sweep (the original implementation).
template <typename SetParams>
void sweepFloat64(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                  const Scheme &scheme, llvm::ArrayRef<int64_t> order,
                  const std::vector<double> &u, int64_t block, bool staticParams,
                  llvm::ArrayRef<uint32_t> maxCodes, QuantizedMatrix &q, SetParams setParams) {
  int64_t width = scheme.groupWidth(cols), groups = scheme.numGroups(cols);
  std::vector<double> w(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      w[r * cols + c] = weights[r * cols + order[c]];
  std::vector<float> values(width);
  std::vector<double> err(rows * block);
  for (int64_t i1 = 0; i1 < cols; i1 += block) {
    int64_t i2 = std::min(i1 + block, cols), count = i2 - i1;
    for (int64_t i = i1; i < i2; ++i) {
      int64_t column = order[i], group = column / width;
      if (!staticParams && column % width == 0)
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
    if (i2 < cols)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols - i2),
                  int(count), -1.0, err.data(), int(block), &u[i1 * cols + i2], int(cols),
                  1.0, &w[i2], int(cols));
  }
}

} // namespace

llvm::Expected<QuantizedMatrix>
mlir::moeq::quant::quantizeGPTQ(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                                const Scheme &scheme, const GPTQFactor &factor,
                                const GPTQOptions &options) {
  if (llvm::Error err = checkWeights(weights, rows, cols, scheme))
    return std::move(err);
  if (factor.cols() != cols || !factor.fits(options))
    return llvm::createStringError(llvm::formatv(
        "the GPTQ factor was computed for {0} columns and other options, not for this weight "
        "({1} columns)",
        factor.cols(), cols));
  int64_t width = scheme.groupWidth(cols);
  bool grouped = scheme.groupSize > 0;
  int64_t block = std::max<int64_t>(options.blockSize, 1);
  if (grouped)
    block = std::max<int64_t>(block / width, 1) * width;
  llvm::ArrayRef<int64_t> order = factor.Order;
  bool fast = factor.Precision == GPTQOptions::Precision::Float32;
  auto diagonalOfU = [&](int64_t i) {
    return fast ? double(factor.U32[i * cols + i]) : factor.U64[i * cols + i];
  };

  // SliM-LLM's salient weights (|z-score of w^2 / U_jj^2| > 2), in the
  // original column order, for salience-weighted calibration. (The fast
  // factor is of H / mean(diag H): every U_jj carries the same factor, which
  // the z-score does not see.)
  std::vector<uint8_t> salient;
  if (options.salienceCalibration) {
    std::vector<double> diagonal(cols);
    for (int64_t i = 0; i < cols; ++i)
      diagonal[order[i]] = diagonalOfU(i);
    salient = salientWeights(weights, rows, cols, diagonal);
  }

  QuantizedMatrix q = QuantizedMatrix::sized(rows, cols, scheme);
  int64_t groups = scheme.numGroups(cols);
  RangeOptions range{options.mseClip, options.salienceCalibration, options.salientWeight};
  std::vector<uint32_t> maxCodes(groups);
  for (int64_t g = 0; g < groups; ++g)
    maxCodes[g] = scheme.forGroup(g).maxCode();
  // Level tables weigh each column by its Hessian diagonal (the diagonal
  // part of the GPTQ objective), in original column order.
  std::vector<double> importance(cols);
  for (int64_t c = 0; c < cols; ++c)
    importance[c] = std::max(factor.Diagonal[c], 0.0);
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

  if (fast)
    sweepFloat32(weights, rows, cols, scheme, order, factor.U32.data(), block, staticParams,
                 maxCodes, q, setParams);
  else
    sweepFloat64(weights, rows, cols, scheme, order, factor.U64, block, staticParams, maxCodes,
                 q, setParams);
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
  return quantizeWeights(weights, rows, cols, scheme, static_cast<const GPTQFactor *>(nullptr),
                         options);
}

llvm::Expected<QuantizedMatrix>
mlir::moeq::quant::quantizeWeights(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                                   const Scheme &scheme, const GPTQFactor *factor,
                                   const GPTQOptions &options) {
  if (factor)
    return quantizeGPTQ(weights, rows, cols, scheme, *factor, options);
  RangeOptions range{options.mseClip, options.salienceCalibration, options.salientWeight,
                     options.firstRow};
  std::vector<uint8_t> salient;
  if (options.salienceCalibration && int64_t(weights.size()) == rows * cols)
    // No Hessian: every U_jj is the same, salience is w^2.
    salient = salientWeights(weights, rows, cols, std::vector<double>(cols, 1.0));
  return quantizeRTN(weights, rows, cols, scheme, range, salient);
}
