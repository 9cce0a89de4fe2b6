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

namespace mlir::moeq::quant {

struct GPTQOptions {
  /// Added to the Hessian's diagonal: dampening x mean(diag(H)).
  double dampening = 0.01;
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
};

/// GPTQ of a row-major `rows x cols` weight with the symmetric `cols x cols`
/// Hessian (or Gram) matrix `hessian` (any positive scale; only its shape
/// matters). A column whose diagonal is zero (an input never seen) keeps
/// its weight and is rounded without spreading error (the reference GPTQ
/// zeroes it, which would erase experts no calibration token reached); an
/// all-zero Hessian therefore gives round-to-nearest. Uses LAPACK's Cholesky
/// (dpotrf/dpotri) and BLAS in float64. Fails on non-finite input, a shape
/// mismatch, or a Hessian that is not positive definite after dampening.
llvm::Expected<QuantizedMatrix> quantizeGPTQ(llvm::ArrayRef<float> weights, int64_t rows,
                                             int64_t cols, const Scheme &scheme,
                                             llvm::ArrayRef<double> hessian,
                                             const GPTQOptions &options = {});

/// The GPTQ objective of a quantized matrix: tr((W - Q) H (W - Q)^T), i.e.
/// the summed squared output error on the inputs whose Gram matrix is H.
/// An empty `hessian` stands for the identity (||W - Q||_F^2).
double hessianLoss(llvm::ArrayRef<float> weights, const QuantizedMatrix &q,
                   llvm::ArrayRef<double> hessian);

} // namespace mlir::moeq::quant

#endif // MOEQ_QUANT_GPTQ_H
