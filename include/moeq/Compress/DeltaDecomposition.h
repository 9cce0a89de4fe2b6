//===- DeltaDecomposition.h - D^2-MoE delta compression (IR-free) -*- C++ -*-===//
//
// D^2-MoE (ICML 2025) stores the E routed experts of one linear (gate, up or
// down of a layer) as a shared base W_b plus a low-rank delta per expert:
//   W_i ~ W_b + A_i B_i,  A_i: rows x r,  B_i: r x cols.
// The base is the Fisher-weighted merge of the experts; each delta
// W_i - W_b is truncated by an SVD in the space whitened by the Cholesky
// factor of the expert's input Gram matrix, so that the truncation
// minimises the output error on the calibration inputs, not the weight
// error. Row-major matrices (output features x input features); float64
// LAPACK (dpotrf, dgesdd) and BLAS.
//
//===----------------------------------------------------------------------===//
#ifndef MOEQ_COMPRESS_DELTADECOMPOSITION_H
#define MOEQ_COMPRESS_DELTADECOMPOSITION_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <vector>

namespace mlir::moeq::compress {

/// The shared base of E expert matrices (each rows x cols), element by
/// element:  W_b = sum_i f_i F_i W_i / sum_i f_i F_i  with F_i the
/// element-wise Fisher information of expert i and f_i its routing
/// frequency. Without Fisher (empty `fisher`) F_i = 1, and with all f_i
/// equal this is the mean. Where the weighted mass is zero (an element no
/// gradient reached in any used expert) the plain mean is taken.
llvm::Expected<std::vector<float>> mergeBase(llvm::ArrayRef<std::vector<float>> experts,
                                             llvm::ArrayRef<double> frequencies,
                                             llvm::ArrayRef<std::vector<float>> fisher);

/// A low-rank factorisation A (rows x rank) times B (rank x cols).
struct LowRank {
  int64_t rows = 0, cols = 0, rank = 0;
  std::vector<float> a, b;
  /// A B, row-major rows x cols.
  std::vector<float> product() const;
};

/// Truncation-aware SVD (SVD-LLM, as D^2-MoE uses it): with G = X^T X the
/// Gram matrix of the layer's inputs (cols x cols; `dampening` x mean
/// diagonal added) and L its lower Cholesky factor (G = L L^T),
///   SVD(Delta L) = U S V^T,  A = U_r S_r^1/2,  B = S_r^1/2 V_r^T L^-1,
/// which minimises ||(Delta - A B) X^T||_F over rank-r products. An empty
/// or all-zero `gram` (an expert no calibration token reached) means the
/// identity: the plain SVD, minimising ||Delta - A B||_F. `rank` is capped
/// at min(rows, cols).
llvm::Expected<LowRank> truncatedSVD(llvm::ArrayRef<float> delta, int64_t rows, int64_t cols,
                                     llvm::ArrayRef<double> gram, int64_t rank,
                                     double dampening = 0.01);

/// D^2-MoE's shared-V variant: one B for all experts. With G = sum_i G_i
/// and L its Cholesky factor, V_r spans the top-r right singular vectors
/// of the stacked whitened deltas [Delta_1 L; ...; Delta_E L];
/// B = V_r^T L^-1 and A_i = Delta_i L V_r (the least-squares A_i for that B
/// in the whitened norm). Returns E factorisations sharing one `b`.
llvm::Expected<std::vector<LowRank>> sharedBasisSVD(llvm::ArrayRef<std::vector<float>> deltas,
                                                    int64_t rows, int64_t cols,
                                                    llvm::ArrayRef<double> gram, int64_t rank,
                                                    double dampening = 0.01);

/// The output error tr(D G D^T) of D = Delta - A B under the Gram matrix
/// G (empty: the identity, ||D||_F^2).
double whitenedError(llvm::ArrayRef<float> delta, const LowRank &lowRank,
                     llvm::ArrayRef<double> gram);

/// Rank of every expert's delta so that base + deltas of E experts of one
/// linear (rows x cols) keep at most (1 - compression) of the E rows cols
/// original parameters: the base costs `baseParams`, each delta r (rows +
/// cols), or with a shared B, E rows r + r cols in all. Rounded down to a
/// multiple of `multiple`; fails when the base alone exceeds the budget
/// (the error names the largest compression possible).
llvm::Expected<int64_t> rankForCompression(int64_t experts, int64_t rows, int64_t cols,
                                           double compression, double baseParams,
                                           bool sharedB, int64_t multiple);

/// Static structured pruning of the base's intermediate channels (D^2-MoE's
/// static half): the score of channel j is ||W_b,down[:, j]||_2 times the
/// root mean square of activation j over the calibration tokens of all
/// experts (sqrt(sum_i G_down,i[j, j] / tokens)). Returns the channels in
/// keep order: by decreasing score, ties by index.
std::vector<int64_t> rankBaseChannels(llvm::ArrayRef<float> baseDown, int64_t hidden,
                                      int64_t intermediate,
                                      llvm::ArrayRef<std::vector<double>> downGrams,
                                      double tokens);

/// The weight a D^2-MoE expert stands for, rows x cols: pad(base) + a . b,
/// with `base` (baseRows x baseCols, at most rows x cols) in the leading
/// rows and columns (a pruned base keeps the leading channels; the rest is
/// zero), `a` rows x rank and `b` rank x cols, row-major; what the kernels
/// compute (base GEMM + low-rank GEMMs) and the exports write.
std::vector<float> rebuildDeltaWeight(llvm::ArrayRef<float> base, int64_t baseRows,
                                      int64_t baseCols, llvm::ArrayRef<float> a,
                                      llvm::ArrayRef<float> b, int64_t rows, int64_t rank,
                                      int64_t cols);

} // namespace mlir::moeq::compress

#endif // MOEQ_COMPRESS_DELTADECOMPOSITION_H
