//===- GPTQ.h - Hessian-aware weight quantization (IR-free) -----*- C++ -*-===//
//
// GPTQ (Frantar et al., ICLR 2023): quantizes the input columns of a linear
// one at a time and spreads each column's rounding error over the columns
// not yet quantized, weighted by the inverse Hessian of the layer's
// reconstruction loss ||X W^T - X Q^T||^2 (H = X^T X). MoEQuant's AGQ is the
// same algorithm with the affinity-weighted Hessian sum_t c_t x_t x_t^T, so
// it is this function given the `gram_in_weighted` statistics.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_QUANT_GPTQ_H
#define MOEQ_QUANT_GPTQ_H

#include "moeq/Quant/Quantizer.h"

#include "llvm/ADT/STLFunctionalExtras.h"

namespace mlir::moeq::quant {

struct GPTQOptions {
  /// Added to the Hessian's diagonal: dampening x mean(diag(H)).
  double dampening = 0.01;
  /// Round to nearest only: the row number of the first row given, in
  /// diagnostics (RangeOptions::firstRow).
  int64_t firstRow = 0;
  /// Columns per lazy batch: the error of a batch reaches the remaining
  /// columns in one BLAS update. Rounded down to a multiple of the group
  /// size (at least one group).
  int64_t blockSize = 128;
  /// Quantize columns in order of decreasing Hessian diagonal. With groups,
  /// the group parameters are then fixed before the pass from the original
  /// weights ("static groups"), because the packed format stores groups of
  /// consecutive original columns.
  bool actOrder = false;
  /// Scale/zero per group from the clipping search of quantizeRTN.
  bool mseClip = false;
  /// SliM-LLM's salience-weighted calibration of each group's range
  /// (RangeOptions::salienceCalibration), salient weights from the
  /// Hessian (salientWeights).
  bool salienceCalibration = false;
  float salientWeight = 1.f;
  /// Arithmetic. Float32 (the default): the error sweep in float32 with
  /// BLAS sgemm for the lazy-batch updates; the factorisation in
  /// `factorPrecision`. Float64: the reference form (dpotrf, dpotri,
  /// dpotrf, a float64 sweep with dgemm), kept to check the fast path.
  enum class Precision { Float32, Float64 };
  Precision precision = Precision::Float32;
  /// With Precision::Float32: the precision of the one Cholesky
  /// factorisation and triangular inverse (the O(cols^3) part). Float32
  /// by default; see docs/quantization.md for the accuracy measured.
  Precision factorPrecision = Precision::Float32;
};

/// What GPTQ needs of a Hessian, independent of the weight: the column
/// order (act-order) and U, the upper Cholesky factor of the damped
/// inverse Hessian in that order, H^-1 = U^T U. Computing it is the
/// O(cols^3) part of GPTQ; weights with the same Hessian (an expert's gate
/// and up, one weight under several candidate schemes) share one.
///
/// With Precision::Float32, U comes from ONE Cholesky factorisation and
/// one triangular inverse: for J the reversal permutation, J H J = L L^T
/// (lower) gives H = R R^T with R = J L J upper, so H^-1 = R^-T R^-1 and,
/// Cholesky factors being unique, U = R^-1 = J L^-1 J. The reference
/// (Precision::Float64) takes three (chol, inverse, chol of the inverse).
/// The Hessian is divided by its mean diagonal first (GPTQ does not depend
/// on the Hessian's scale; this makes the factor exactly scale-invariant).
class GPTQFactor {
public:
  /// Checks `hessian` (cols x cols, finite, non-negative diagonal, positive
  /// definite after dampening) and factors it for `options` (dampening,
  /// actOrder, precision, factorPrecision).
  static llvm::Expected<GPTQFactor> compute(llvm::ArrayRef<double> hessian, int64_t cols,
                                            const GPTQOptions &options);

  int64_t cols() const { return Cols; }
  /// Whether this factor is the one `options` ask for.
  bool fits(const GPTQOptions &options) const;
  /// Bytes held (U and bookkeeping).
  size_t memoryBytes() const;

private:
  friend llvm::Expected<QuantizedMatrix> quantizeGPTQ(llvm::ArrayRef<float>, int64_t, int64_t,
                                                      const Scheme &, const GPTQFactor &,
                                                      const GPTQOptions &);
  int64_t Cols = 0;
  GPTQOptions::Precision Precision = GPTQOptions::Precision::Float32;
  GPTQOptions::Precision FactorPrecision = GPTQOptions::Precision::Float32;
  bool ActOrder = false;
  double Dampening = 0;
  std::vector<int64_t> Order;  ///< sweep position -> original column
  std::vector<float> U32;      ///< Float32: U, row-major, zero below the diagonal
  std::vector<double> U64;     ///< Float64: U
  std::vector<double> Diagonal; ///< diag(H) in the original column order
};

/// GPTQ with a precomputed factor of the weight's Hessian (see GPTQFactor);
/// `options` must ask for that factor (GPTQFactor::fits).
llvm::Expected<QuantizedMatrix> quantizeGPTQ(llvm::ArrayRef<float> weights, int64_t rows,
                                             int64_t cols, const Scheme &scheme,
                                             const GPTQFactor &factor,
                                             const GPTQOptions &options = {});

/// GPTQ of a row-major `rows x cols` weight with the symmetric `cols x cols`
/// Hessian (or Gram) matrix `hessian` (any positive scale; only its shape
/// matters). A column whose diagonal is zero (an input never seen) keeps
/// its weight and is rounded without spreading error (the reference GPTQ
/// zeroes it, which would erase experts no calibration token reached); an
/// all-zero Hessian therefore gives round-to-nearest. Uses LAPACK's Cholesky
/// and BLAS (OpenBLAS), in float32 or float64 as `options.precision` says.
/// Fails on non-finite input, a shape mismatch, or a Hessian that is not
/// positive definite after dampening. The result does not depend on how
/// many threads BLAS uses as long as the caller keeps it the same.
llvm::Expected<QuantizedMatrix> quantizeGPTQ(llvm::ArrayRef<float> weights, int64_t rows,
                                             int64_t cols, const Scheme &scheme,
                                             llvm::ArrayRef<double> hessian,
                                             const GPTQOptions &options = {});

/// The quantizer a weight ships with: GPTQ with `hessian` when one is
/// given (GPTQ or AGQ, by which Hessian it is), else round to nearest (GPTQ
/// without data reduces to it). `options` apply where they mean something:
/// act-order and dampening to GPTQ only; salience calibration without a
/// Hessian takes w^2 as the salience.
llvm::Expected<QuantizedMatrix> quantizeWeights(llvm::ArrayRef<float> weights, int64_t rows,
                                                int64_t cols, const Scheme &scheme,
                                                llvm::ArrayRef<double> hessian,
                                                const GPTQOptions &options = {});
/// Same, with the Hessian already factored (null: no Hessian, RTN).
llvm::Expected<QuantizedMatrix> quantizeWeights(llvm::ArrayRef<float> weights, int64_t rows,
                                                int64_t cols, const Scheme &scheme,
                                                const GPTQFactor *factor,
                                                const GPTQOptions &options = {});

/// The number of threads BLAS (OpenBLAS) runs its routines on, and a scope
/// that sets it: the quantization passes run one weight per thread of
/// their own pool with BLAS single-threaded, so that results do not depend
/// on the thread count (OpenBLAS's threaded Cholesky blocks differently).
int getBLASThreads();
void setBLASThreads(int threads);
class ScopedBLASThreads {
public:
  explicit ScopedBLASThreads(int threads) : Saved(getBLASThreads()) { setBLASThreads(threads); }
  ~ScopedBLASThreads() { setBLASThreads(Saved); }
  ScopedBLASThreads(const ScopedBLASThreads &) = delete;
  ScopedBLASThreads &operator=(const ScopedBLASThreads &) = delete;

private:
  int Saved;
};

/// SliM-LLM's salience uses U, the upper Cholesky factor of (H + damp)^-1
/// (GPTQ's "Hinv"): weight salience w_ij^2 / U_jj^2. This returns U's
/// diagonal (unseen inputs as in quantizeGPTQ).
llvm::Expected<std::vector<double>> inverseHessianDiagonal(llvm::ArrayRef<double> hessian,
                                                           int64_t cols,
                                                           double dampening = 0.01);

/// The salient weights: |z-score of w_ij^2 / U_jj^2| > zThreshold over the
/// whole matrix (`diagonal` = inverseHessianDiagonal).
std::vector<uint8_t> salientWeights(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                                    llvm::ArrayRef<double> diagonal, double zThreshold = 2.0);

/// Salience of each column group: the sum of w_ij^2 / U_jj^2 over its
/// columns and all rows.
std::vector<double> groupSalience(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols,
                                  int64_t groupSize, llvm::ArrayRef<double> diagonal);

/// SliM-LLM's salience-determined bit allocation (SBA) candidates at mean
/// width `bits`: for k = 0, 1, ..., groups / 2, the k least salient groups
/// get bits - 1 and the k most salient bits + 1 (the mean stays `bits`;
/// only k = 0 when bits is 1 or 8). The caller keeps the candidate with the
/// least loss.
std::vector<std::vector<uint8_t>> groupBitCandidates(llvm::ArrayRef<double> salience,
                                                     unsigned bits);

/// The index in [0, count) of the least `loss` (ties: the smaller index).
/// Exhaustive: every index. Golden: golden-section search on the integers,
/// for a loss that is unimodal in the index (SBA's k: the error falls
/// while the groups gaining a bit matter more than those losing one, then
/// rises), at most about log_phi(count) + 5 evaluations instead of count (9 of
/// the 17 k of a 4096-wide linear in groups of 128); index 0 is always
/// evaluated, so the result is never worse than it. `loss` is called at
/// most once per index; its first error is returned.
enum class CandidateSearch { Exhaustive, Golden };
llvm::Expected<size_t>
searchLeastLoss(size_t count, llvm::function_ref<llvm::Expected<double>(size_t)> loss,
                CandidateSearch search);

/// SliM-LLM's salience-determined bit allocation (SBA) for one weight at
/// `scheme` (an asymmetric integer group scheme of 2-7 bits): the groups'
/// salience from U's diagonal (`inverseDiagonal`, inverseHessianDiagonal of
/// the quantizer's Hessian; empty: the identity), the candidates of
/// groupBitCandidates, each quantized as quantizeWeights does (through
/// `factor` when given) and scored by `loss`, searched by `search`. The
/// widths with the least loss (all equal to scheme.bits when mixing does
/// not win) and that loss.
struct GroupBitsChoice {
  std::vector<uint8_t> widths;
  double loss = 0;
};
llvm::Expected<GroupBitsChoice>
searchGroupBits(llvm::ArrayRef<float> weights, int64_t rows, int64_t cols, const Scheme &scheme,
                llvm::ArrayRef<double> inverseDiagonal, const GPTQFactor *factor,
                const GPTQOptions &options,
                llvm::function_ref<double(const QuantizedMatrix &)> loss,
                CandidateSearch search);

/// The GPTQ objective of a quantized matrix: tr((W - Q) H (W - Q)^T), i.e.
/// the summed squared output error on the inputs whose Gram matrix is H.
/// An empty `hessian` stands for the identity (||W - Q||_F^2).
double hessianLoss(llvm::ArrayRef<float> weights, const QuantizedMatrix &q,
                   llvm::ArrayRef<double> hessian);

} // namespace mlir::moeq::quant

#endif // MOEQ_QUANT_GPTQ_H
