//===- DeltaDecomposition.cpp - D^2-MoE base merge and delta SVDs ---------===//
#include "moeq/Compress/DeltaDecomposition.h"

#include "llvm/Support/FormatVariadic.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

// LAPACK (Fortran ABI; OpenBLAS ships it).
extern "C" {
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work,
             const int *lwork, int *iwork, int *info);
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
             double *w, double *work, const int *lwork, int *iwork, const int *liwork,
             int *info);
}

using namespace mlir::moeq::compress;
using llvm::createStringError;

namespace {

/// Lower Cholesky factor L (row-major) of G + dampening * mean(diag G) * I;
/// the identity for an empty or all-zero G.
llvm::Expected<std::vector<double>> whiteningFactor(llvm::ArrayRef<double> gram, int64_t n,
                                                    double dampening) {
  std::vector<double> l(n * n, 0.0);
  double meanDiag = 0;
  if (!gram.empty()) {
    if (int64_t(gram.size()) != n * n)
      return createStringError(
          llvm::formatv("Gram matrix has {0} entries, expected {1} x {1}", gram.size(), n));
    for (int64_t i = 0; i < n; ++i)
      meanDiag += gram[i * n + i];
    meanDiag /= double(n);
  }
  if (!(meanDiag > 0)) {
    for (int64_t i = 0; i < n; ++i)
      l[i * n + i] = 1.0;
    return l;
  }
  std::copy(gram.begin(), gram.end(), l.begin());
  for (int64_t i = 0; i < n; ++i)
    l[i * n + i] += dampening * meanDiag;
  // Row-major symmetric = column-major symmetric; LAPACK's column-major
  // upper factor U (G = U^T U) read row-major is L = U^T.
  int dim = int(n), info = 0;
  dpotrf_("U", &dim, l.data(), &dim, &info);
  if (info != 0)
    return createStringError(llvm::formatv(
        "the input Gram matrix is not positive definite after dampening (LAPACK dpotrf "
        "info {0})",
        info));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j)
      l[i * n + j] = 0.0;
  return l;
}

/// Delta (rows x cols, float) times L (cols x cols), float64.
std::vector<double> whiten(llvm::ArrayRef<float> delta, int64_t rows, int64_t cols,
                           const std::vector<double> &l) {
  std::vector<double> d(delta.begin(), delta.end()), out(rows * cols);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols), int(cols), 1.0,
              d.data(), int(cols), l.data(), int(cols), 0.0, out.data(), int(cols));
  return out;
}

/// X L^-1 in place for row-major X (r x cols).
void solveRightLower(std::vector<double> &x, int64_t r, int64_t cols,
                     const std::vector<double> &l) {
  if (r == 0)
    return;
  cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, int(r),
              int(cols), 1.0, l.data(), int(cols), x.data(), int(cols));
}

llvm::Error checkFinite(llvm::ArrayRef<float> values, const char *what) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      return createStringError(llvm::formatv("{0} has a non-finite value at {1}", what, i));
  return llvm::Error::success();
}

} // namespace

std::vector<float> LowRank::product() const {
  std::vector<float> out(rows * cols, 0.f);
  if (rank > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols), int(rank), 1.f,
                a.data(), int(rank), b.data(), int(cols), 0.f, out.data(), int(cols));
  return out;
}

llvm::Expected<std::vector<float>>
mlir::moeq::compress::mergeBase(llvm::ArrayRef<std::vector<float>> experts,
                                llvm::ArrayRef<double> frequencies,
                                llvm::ArrayRef<std::vector<float>> fisher) {
  if (experts.empty())
    return createStringError("no expert to merge");
  size_t size = experts.front().size();
  if (frequencies.size() != experts.size() || (!fisher.empty() && fisher.size() != experts.size()))
    return createStringError("one frequency (and Fisher matrix) per expert is needed");
  for (size_t i = 0; i < experts.size(); ++i) {
    if (experts[i].size() != size || (!fisher.empty() && fisher[i].size() != size))
      return createStringError(llvm::formatv("expert {0} has another shape", i));
    if (!(frequencies[i] >= 0) || !std::isfinite(frequencies[i]))
      return createStringError(llvm::formatv("expert {0} has an invalid frequency", i));
    if (llvm::Error err = checkFinite(experts[i], "an expert weight"))
      return std::move(err);
    if (!fisher.empty())
      for (float v : fisher[i])
        if (!(v >= 0) || !std::isfinite(v))
          return createStringError(
              llvm::formatv("the Fisher information of expert {0} is negative or not finite",
                            i));
  }
  std::vector<float> base(size);
  for (size_t k = 0; k < size; ++k) {
    double num = 0, den = 0, plain = 0;
    for (size_t i = 0; i < experts.size(); ++i) {
      double weight = frequencies[i] * (fisher.empty() ? 1.0 : double(fisher[i][k]));
      num += weight * experts[i][k];
      den += weight;
      plain += experts[i][k];
    }
    base[k] = float(den > 0 ? num / den : plain / double(experts.size()));
  }
  return base;
}

llvm::Expected<LowRank> mlir::moeq::compress::truncatedSVD(llvm::ArrayRef<float> delta,
                                                           int64_t rows, int64_t cols,
                                                           llvm::ArrayRef<double> gram,
                                                           int64_t rank, double dampening) {
  if (rows <= 0 || cols <= 0 || int64_t(delta.size()) != rows * cols || rank < 0)
    return createStringError("truncatedSVD: inconsistent shape or rank");
  if (llvm::Error err = checkFinite(delta, "a delta"))
    return std::move(err);
  auto l = whiteningFactor(gram, cols, dampening);
  if (!l)
    return l.takeError();
  int64_t k = std::min(rows, cols);
  rank = std::min(rank, k);
  std::vector<double> m = whiten(delta, rows, cols, *l);
  // Column-major copy for LAPACK.
  std::vector<double> mc(rows * cols), s(k), u(rows * k), vt(k * cols);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      mc[j * rows + i] = m[i * cols + j];
  int mRows = int(rows), nCols = int(cols), ldu = int(rows), ldvt = int(k), info = 0, lwork = -1;
  std::vector<int> iwork(8 * k);
  double query = 0;
  dgesdd_("S", &mRows, &nCols, mc.data(), &mRows, s.data(), u.data(), &ldu, vt.data(), &ldvt,
          &query, &lwork, iwork.data(), &info);
  lwork = int(query);
  std::vector<double> work(std::max(lwork, 1));
  dgesdd_("S", &mRows, &nCols, mc.data(), &mRows, s.data(), u.data(), &ldu, vt.data(), &ldvt,
          work.data(), &lwork, iwork.data(), &info);
  if (info != 0)
    return createStringError(llvm::formatv("LAPACK dgesdd failed (info {0})", info));
  LowRank out;
  out.rows = rows;
  out.cols = cols;
  out.rank = rank;
  out.a.resize(rows * rank);
  std::vector<double> b(rank * cols);
  for (int64_t t = 0; t < rank; ++t) {
    double root = std::sqrt(std::max(s[t], 0.0));
    for (int64_t i = 0; i < rows; ++i)
      out.a[i * rank + t] = float(u[t * rows + i] * root);
    for (int64_t j = 0; j < cols; ++j)
      b[t * cols + j] = vt[j * k + t] * root;
  }
  solveRightLower(b, rank, cols, *l);
  out.b.assign(b.begin(), b.end());
  return out;
}

llvm::Expected<std::vector<LowRank>>
mlir::moeq::compress::sharedBasisSVD(llvm::ArrayRef<std::vector<float>> deltas, int64_t rows,
                                     int64_t cols, llvm::ArrayRef<double> gram, int64_t rank,
                                     double dampening) {
  if (deltas.empty() || rows <= 0 || cols <= 0 || rank < 0)
    return createStringError("sharedBasisSVD: no delta, or an invalid shape or rank");
  for (const std::vector<float> &d : deltas) {
    if (int64_t(d.size()) != rows * cols)
      return createStringError("sharedBasisSVD: deltas of different shapes");
    if (llvm::Error err = checkFinite(d, "a delta"))
      return std::move(err);
  }
  auto l = whiteningFactor(gram, cols, dampening);
  if (!l)
    return l.takeError();
  rank = std::min(rank, cols);
  // C = sum_i (Delta_i L)^T (Delta_i L): its top eigenvectors are the top
  // right singular vectors of the stacked whitened deltas.
  std::vector<std::vector<double>> whitened;
  std::vector<double> c(cols * cols, 0.0);
  for (const std::vector<float> &d : deltas) {
    whitened.push_back(whiten(d, rows, cols, *l));
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, int(cols), int(rows), 1.0,
                whitened.back().data(), int(cols), 1.0, c.data(), int(cols));
  }
  // Row-major upper = column-major lower.
  int n = int(cols), info = 0, lwork = -1, liwork = -1, iquery = 0;
  double query = 0;
  std::vector<double> eigenvalues(cols);
  dsyevd_("V", "L", &n, c.data(), &n, eigenvalues.data(), &query, &lwork, &iquery, &liwork,
          &info);
  lwork = int(query);
  liwork = iquery;
  std::vector<double> work(std::max(lwork, 1));
  std::vector<int> iwork(std::max(liwork, 1));
  dsyevd_("V", "L", &n, c.data(), &n, eigenvalues.data(), work.data(), &lwork, iwork.data(),
          &liwork, &info);
  if (info != 0)
    return createStringError(llvm::formatv("LAPACK dsyevd failed (info {0})", info));
  // Column-major eigenvectors, ascending eigenvalues: vector t of the
  // largest r is column cols - 1 - t, i.e. c[(cols - 1 - t) * cols + j].
  std::vector<double> v(cols * rank); // row-major cols x rank (V_r)
  for (int64_t t = 0; t < rank; ++t)
    for (int64_t j = 0; j < cols; ++j)
      v[j * rank + t] = c[(cols - 1 - t) * cols + j];
  std::vector<double> b(rank * cols);
  for (int64_t t = 0; t < rank; ++t)
    for (int64_t j = 0; j < cols; ++j)
      b[t * cols + j] = v[j * rank + t];
  solveRightLower(b, rank, cols, *l);
  std::vector<float> sharedB(b.begin(), b.end());
  std::vector<LowRank> out;
  for (const std::vector<double> &w : whitened) {
    LowRank f;
    f.rows = rows;
    f.cols = cols;
    f.rank = rank;
    std::vector<double> a(rows * rank, 0.0);
    if (rank > 0)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(rank), int(cols),
                  1.0, w.data(), int(cols), v.data(), int(rank), 0.0, a.data(), int(rank));
    f.a.assign(a.begin(), a.end());
    f.b = sharedB;
    out.push_back(std::move(f));
  }
  return out;
}

double mlir::moeq::compress::whitenedError(llvm::ArrayRef<float> delta, const LowRank &lowRank,
                                           llvm::ArrayRef<double> gram) {
  std::vector<float> approx = lowRank.product();
  int64_t rows = lowRank.rows, cols = lowRank.cols;
  std::vector<double> d(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i)
    d[i] = double(delta[i]) - double(approx[i]);
  if (gram.empty())
    return std::inner_product(d.begin(), d.end(), d.begin(), 0.0);
  std::vector<double> dg(rows * cols);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols), int(cols), 1.0,
              d.data(), int(cols), gram.data(), int(cols), 0.0, dg.data(), int(cols));
  return std::inner_product(d.begin(), d.end(), dg.begin(), 0.0);
}

llvm::Expected<int64_t> mlir::moeq::compress::rankForCompression(int64_t experts, int64_t rows,
                                                                 int64_t cols,
                                                                 double compression,
                                                                 double baseParams,
                                                                 bool sharedB,
                                                                 int64_t multiple) {
  if (!(compression > 0 && compression < 1))
    return createStringError(
        llvm::formatv("compression must be in (0, 1), got {0}", compression));
  double original = double(experts) * rows * cols;
  double budget = (1 - compression) * original - baseParams;
  double perRank = sharedB ? double(experts) * rows + cols : double(experts) * (rows + cols);
  int64_t rank = budget > 0 ? int64_t(std::floor(budget / perRank)) : 0;
  multiple = std::max<int64_t>(multiple, 1);
  rank = rank / multiple * multiple;
  rank = std::min(rank, std::min(rows, cols));
  if (rank <= 0)
    return createStringError(llvm::formatv(
        "compression {0} leaves no room for the deltas: the base alone keeps {1:P1} of the "
        "expert parameters and rank-{2} deltas need {3:P1} more",
        compression, baseParams / original, multiple, multiple * perRank / original));
  return rank;
}

std::vector<int64_t>
mlir::moeq::compress::rankBaseChannels(llvm::ArrayRef<float> baseDown, int64_t hidden,
                                       int64_t intermediate,
                                       llvm::ArrayRef<std::vector<double>> downGrams,
                                       double tokens) {
  std::vector<double> score(intermediate, 0.0);
  for (int64_t j = 0; j < intermediate; ++j) {
    double norm = 0, energy = 0;
    for (int64_t h = 0; h < hidden; ++h)
      norm += double(baseDown[h * intermediate + j]) * baseDown[h * intermediate + j];
    for (const std::vector<double> &g : downGrams)
      if (!g.empty())
        energy += g[j * intermediate + j];
    score[j] = std::sqrt(norm) * std::sqrt(tokens > 0 ? energy / tokens : 1.0);
  }
  std::vector<int64_t> order(intermediate);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  return order;
}

std::vector<float> mlir::moeq::compress::rebuildDeltaWeight(llvm::ArrayRef<float> base,
                                                            int64_t baseRows, int64_t baseCols,
                                                            llvm::ArrayRef<float> a,
                                                            llvm::ArrayRef<float> b, int64_t rows,
                                                            int64_t rank, int64_t cols) {
  std::vector<float> out(size_t(rows * cols), 0.f);
  for (int64_t r = 0; r < baseRows; ++r)
    for (int64_t c = 0; c < baseCols; ++c)
      out[r * cols + c] = base[r * baseCols + c];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < rank; ++k) {
      float ark = a[r * rank + k];
      for (int64_t c = 0; c < cols; ++c)
        out[r * cols + c] += ark * b[k * cols + c];
    }
  return out;
}
